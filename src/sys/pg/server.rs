//! Which server, and how each connection to it is made: the URL, plus the per-session
//! settings that detect a dead client or a lost network without an administrator.
//!
//! The detection figures (README, "Across machines"): a killed client's socket closes at once
//! and the server releases its locks in milliseconds; a host that vanishes or a partition is
//! noticed by TCP keepalives (idle 2 s, interval 1 s, 2 probes: about 4 s) or, when data is
//! unacknowledged, by `tcp_user_timeout` (5 s); a session busy in a query notices a vanished
//! client within `client_connection_check_interval` (1 s).

use super::libpq_env;
use super::sql_error::connect_error;
use super::tls;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::sync::Arc;
use std::time::Duration;

/// TCP keepalive: first probe after this much idleness.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(2);
/// TCP keepalive: between probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// TCP keepalive: unanswered probes before the connection is dead.
const KEEPALIVE_RETRIES: u32 = 2;
/// Unacknowledged data older than this ends the connection (`TCP_USER_TIMEOUT`).
const USER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The server checks a busy session's client this often (PostgreSQL 14+).
const CHECK_INTERVAL_MS: u32 = 1000;

/// A server as the caller named it: the URL (or key=value string) and the parsed
/// configuration with the library's settings applied.
#[derive(Clone)]
pub(crate) struct Server {
    /// What the caller gave, without a password: the key of this process's sessions.
    pub key: Arc<str>,
    config: Arc<postgres::Config>,
    /// `sslmode=allow`: the configuration of the second try, with TLS, when the first
    /// (without) fails.
    with_tls: Option<Arc<postgres::Config>>,
    /// How connections (and cancel requests) speak TLS, from the URL's `sslmode`.
    pub tls: tls::Connector,
    /// Why a password file was not read, for the error of a connection that then fails.
    password_file_skipped: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("url", &self.key).finish()
    }
}

impl Server {
    /// Parses `url` (`postgresql://user@host:port/db` or `host=... user=...`) and applies
    /// the detection settings, unless the URL sets them itself.
    pub fn parse(url: &str) -> Result<Server> {
        let (for_crate, tls_settings) = tls::Settings::take_from(url).map_err(|e| {
            Error::new(
                e.kind(),
                format!("the PostgreSQL URL {:?}: {e}", redact(url)),
            )
        })?;
        let mut config: postgres::Config = for_crate.parse().map_err(|e| {
            Error::new(
                ErrorKind::InvalidParameter,
                format!(
                    "{:?} is not a PostgreSQL URL or connection string: {e}",
                    redact(url)
                ),
            )
        })?;
        // What the URL leaves out, libpq's environment may give (libpq_env.rs); messages
        // name what came from there.
        let from_service = tls_settings.service.fill(&mut config)?;
        let mut from_env = libpq_env::fill(&mut config)?;
        if from_service {
            from_env.insert(0, tls_settings.service.from.clone());
        }
        if config.get_hosts().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidParameter,
                format!(
                    "the PostgreSQL URL {:?} names no host (nor does PGHOST)",
                    redact(url)
                ),
            ));
        }
        // libpq's places for a password the URL does not give (password.rs).
        let mut password_file_skipped = None;
        if config.get_password().is_none() {
            let found = super::password::look_up(&config);
            if let Some(password) = found.password {
                config.password(password);
            }
            password_file_skipped = found.skipped;
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES)
            .tcp_user_timeout(USER_TIMEOUT)
            .application_name("namedmutex")
            // Never a standby: marker writes fail there, and its locks are not the primary's.
            .target_session_attrs(postgres::config::TargetSessionAttrs::ReadWrite);
        // The server's side of the same detection: its keepalives and user timeout on this
        // session's socket find a client host that vanished.
        let options = format!(
            "-c client_connection_check_interval={CHECK_INTERVAL_MS} \
             -c tcp_keepalives_idle={} -c tcp_keepalives_interval={} \
             -c tcp_keepalives_count={KEEPALIVE_RETRIES} -c tcp_user_timeout={} {}",
            KEEPALIVE_IDLE.as_secs(),
            KEEPALIVE_INTERVAL.as_secs(),
            USER_TIMEOUT.as_millis(),
            config.get_options().unwrap_or("")
        );
        config.options(options.trim_end());
        let key: Arc<str> = if from_env.is_empty() {
            redact(url).into()
        } else {
            format!("{} (with {})", redact(url), from_env.join(", ")).into()
        };
        // `allow`: a second try with TLS, where this build has TLS to try.
        let with_tls = (tls_settings.mode == tls::Mode::Allow && cfg!(feature = "postgres-tls"))
            .then(|| {
                let mut second = config.clone();
                second.ssl_mode(postgres::config::SslMode::Prefer);
                Arc::new(second)
            });
        Ok(Server {
            tls: tls::connector(&tls_settings, &key)?,
            key,
            config: Arc::new(config),
            with_tls,
            password_file_skipped,
        })
    }

    /// A new connection with the library's settings, checked to be a session of its own.
    pub fn connect(&self) -> Result<postgres::Client> {
        let skipped = self.password_file_skipped.as_deref();
        let mut client = match (self.config.connect(tls::copy_of(&self.tls)), &self.with_tls) {
            (Ok(client), _) => client,
            (Err(without), Some(with_tls)) => {
                with_tls.connect(tls::copy_of(&self.tls)).map_err(|e| {
                    let e = connect_error(&self.key, e, skipped);
                    let first = connect_error(&self.key, without, skipped);
                    Error::new(e.kind(), format!("{e} (with TLS; without: {first})"))
                })?
            }
            (Err(e), None) => return Err(connect_error(&self.key, e, skipped)),
        };
        // The settings travel in the startup packet's `options`: a pooler that drops them
        // (PgBouncer with `ignore_startup_parameters = options`) is also one that may give
        // each transaction another server session, which advisory locks cannot survive.
        let interval: String = client
            .query_one(
                "SELECT current_setting('client_connection_check_interval')",
                &[],
            )
            .map_err(|e| super::sql_error::sql_error(&self.key, "checking the session", e))?
            .get(0);
        if interval != "1s" {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the connection to PostgreSQL at {} did not keep its session settings (client_connection_check_interval is {interval:?}): a connection pooler such as PgBouncer stands in between; namedmutex needs a direct connection or session pooling, because advisory locks belong to a server session",
                    self.key
                ),
            ));
        }
        Ok(client)
    }

    /// The configuration, with the library's settings.
    #[cfg(test)]
    pub fn config(&self) -> &postgres::Config {
        &self.config
    }
}

/// `url` with its password replaced by `***`, for messages and keys.
pub(crate) fn redact(url: &str) -> String {
    tls::redact_secrets(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgresql://bob:s3cret@db:5432/x"),
            "postgresql://bob:***@db:5432/x"
        );
        assert_eq!(redact("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(
            redact("host=db password=s3cret user=bob"),
            "host=db password=*** user=bob"
        );
        let err = Server::parse("postgresql://bob:s3cret@db:notaport/x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidParameter);
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn detection_settings_are_applied() {
        let s = Server::parse("postgresql://bob@db/x").unwrap();
        assert_eq!(s.config().get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(s.config().get_tcp_user_timeout(), Some(&USER_TIMEOUT));
        assert!(
            s.config()
                .get_options()
                .unwrap()
                .contains("client_connection_check_interval=1000")
        );
        assert!(Server::parse("postgresql:///x").is_err());
    }
}
