//! Which server, and how each connection to it is made: the URL, plus the per-session
//! settings that detect a dead client or a lost network without an administrator.
//!
//! The detection figures (README, "Across machines"): a killed client's socket closes at once
//! and the server releases its locks in milliseconds; a host that vanishes or a partition is
//! noticed by TCP keepalives (idle 2 s, interval 1 s, 2 probes: about 4 s) or, when data is
//! unacknowledged, by `tcp_user_timeout` (5 s); a session busy in a query notices a vanished
//! client within `client_connection_check_interval` (1 s).

use super::hosts::{host_label, host_order, single_host};
use super::libpq_env;
use super::sql_error::{connect_failure, describe};
use super::tls;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::sync::Arc;
use std::time::Duration;

/// What the SQL run with a connection's check answered ([`Server::connect_and`]).
pub(crate) type Answer = std::result::Result<Vec<postgres::SimpleQueryMessage>, postgres::Error>;

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

/// One way to connect: a configuration, and for `sslmode=allow` the configuration of the
/// second try, with TLS, when the first (without) fails; `host`: which host, for messages,
/// where hosts are tried one by one.
struct Try {
    config: postgres::Config,
    with_tls: Option<postgres::Config>,
    host: Option<String>,
}

/// A server as the caller named it: the URL (or key=value string) and the parsed
/// configuration with the library's settings applied.
#[derive(Clone)]
pub(crate) struct Server {
    /// What the caller gave, without a password: the key of this process's sessions.
    pub key: Arc<str>,
    /// How to connect: a single-host configuration per host, tried in libpq's order
    /// (`hosts.rs`), each with its own password where the password file gives the hosts
    /// different ones; one try where the URL names one host.
    tries: Arc<[Try]>,
    /// The whole configuration, every host in it, with the library's settings.
    #[cfg(test)]
    config: Arc<postgres::Config>,
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
        // The URL's connect_timeout, read as libpq does (its 0 is no bound, which the
        // crate would read as unset); then what the URL leaves out, libpq's environment may
        // give (libpq_env.rs); messages name what came from there.
        if let Some(secs) = &tls_settings.connect_timeout {
            libpq_env::fill_setting(&mut config, "connect_timeout", secs, &|bad| {
                format!("connect_timeout {bad:?} in {:?}", redact(url))
            })?;
        }
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
        // libpq's places for a password the URL does not give (password.rs): one for every
        // host, or, where the hosts' differ, one each (below).
        let mut password_file_skipped = None;
        let mut per_host = None;
        if config.get_password().is_none() {
            let found = super::password::look_up(&config);
            match found.shared() {
                Some(Some(password)) => {
                    config.password(password);
                }
                Some(None) => {}
                None => per_host = Some(found.passwords),
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
            // Never a standby (marker writes fail there, and its locks are not the
            // primary's): `checked` asks whether the session is read-only, in the query it
            // makes anyway, rather than the crate in one of its own (a round trip more per
            // connection); so the hosts are tried one by one, below.
            .target_session_attrs(postgres::config::TargetSessionAttrs::Any);
        // What pg_stat_activity shows: the URL's application_name, as libpq sends it, else
        // "namedmutex".
        if config.get_application_name().is_none() {
            config.application_name("namedmutex");
        }
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
        let allow = tls_settings.mode == tls::Mode::Allow && cfg!(feature = "postgres-tls");
        let make_try = |config: postgres::Config, host: Option<String>| Try {
            with_tls: allow.then(|| {
                let mut second = config.clone();
                second.ssl_mode(postgres::config::SslMode::Prefer);
                second
            }),
            config,
            host,
        };
        let hosts = config.get_hosts().len().max(config.get_hostaddrs().len());
        let tries: Arc<[Try]> = if hosts <= 1 {
            Arc::new([make_try(config.clone(), None)])
        } else {
            host_order(&config)
                .into_iter()
                .map(|i| {
                    let mut one = single_host(&config, i);
                    if let Some(Some(password)) = per_host.as_ref().and_then(|p| p.get(i)) {
                        one.password(password.as_str());
                    }
                    make_try(one, Some(host_label(&config, i)))
                })
                .collect()
        };
        Ok(Server {
            tls: tls::connector(&tls_settings, &key)?,
            key,
            tries,
            #[cfg(test)]
            config: Arc::new(config),
            password_file_skipped,
        })
    }

    /// A new connection with the library's settings, checked to be a session of its own.
    pub fn connect(&self) -> Result<postgres::Client> {
        self.connect_and("").map(|(client, _)| client)
    }

    /// [`connect`](Self::connect), with `then` (SQL, one statement or several) run in the
    /// same round trip as the connection's check, in the one transaction of a simple query:
    /// the messages of `then`, or its error (the connection is good either way). `then`
    /// runs on every host tried, a read-only one included, before the check's answer
    /// passes that host over: it must leave nothing behind there (what writes fails there,
    /// and is undone).
    pub fn connect_and(&self, then: &str) -> Result<(postgres::Client, Answer)> {
        let mut failed = Vec::new();
        for one in self.tries.iter() {
            let what = match self.connect_with(one) {
                Ok(client) => match self.checked(client, then)? {
                    Ok(connected) => return Ok(connected),
                    Err(read_only) => read_only,
                },
                Err(what) => what,
            };
            failed.push(match &one.host {
                Some(host) => format!("{host}: {what}"),
                None => what,
            });
        }
        // The last try's answer, then (hosts tried one by one) what the earlier ones met.
        let last = failed
            .pop()
            .unwrap_or_else(|| "no host to connect to".into());
        let earlier = if failed.is_empty() {
            String::new()
        } else {
            format!(" (before it, {})", failed.join("; "))
        };
        Err(Error::new(
            ErrorKind::Io,
            format!(
                "cannot connect to PostgreSQL at {}: {last}{earlier}",
                self.key
            ),
        ))
    }

    /// Refuses a connection whose session settings did not arrive. They travel in the
    /// startup packet's `options`: a pooler that drops them (PgBouncer with
    /// `ignore_startup_parameters = options`) is also one that may give each transaction
    /// another server session, which advisory locks cannot survive. A read-only session (a
    /// standby's, as libpq's `target_session_attrs=read-write` finds it) is `Ok(Err(why))`:
    /// the next host is tried. `then` runs in the same simple query, after the check
    /// ([`connect_and`](Self::connect_and)); where it fails, the check runs again alone,
    /// since the failure hid its answer.
    fn checked(
        &self,
        mut client: postgres::Client,
        then: &str,
    ) -> Result<std::result::Result<(postgres::Client, Answer), String>> {
        const CHECK: &str = "SELECT current_setting('client_connection_check_interval'), \
                                    current_setting('transaction_read_only')";
        let (check, answer) = if then.is_empty() {
            (client.simple_query(CHECK), Ok(Vec::new()))
        } else {
            match client.simple_query(&format!("{CHECK}; {then}")) {
                // The check's row and its CommandComplete, then `then`'s messages.
                Ok(all) => split_answer(Ok(all), 1),
                Err(e) => (client.simple_query(CHECK), Err(e)),
            }
        };
        let check =
            check.map_err(|e| super::sql_error::sql_error(&self.key, "checking the session", e))?;
        let row = check.iter().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => Some((
                row.get(0).unwrap_or_default().to_owned(),
                row.get(1).unwrap_or_default().to_owned(),
            )),
            _ => None,
        });
        let Some((interval, read_only)) = row else {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "PostgreSQL at {} answered no row to the session check",
                    self.key
                ),
            ));
        };
        if read_only == "on" {
            return Ok(Err(
                "the server is read-only (a standby, or default_transaction_read_only is on): namedmutex writes its claims on the primary".into(),
            ));
        }
        if interval != "1s" {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the connection to PostgreSQL at {} did not keep its session settings (client_connection_check_interval is {interval:?}): a connection pooler such as PgBouncer stands in between; namedmutex needs a direct connection or session pooling, because advisory locks belong to a server session",
                    self.key
                ),
            ));
        }
        Ok(Ok((client, answer)))
    }

    /// One try: its configuration, then, for `sslmode=allow`, the same with TLS; what it
    /// met when it fails.
    fn connect_with(&self, one: &Try) -> std::result::Result<postgres::Client, String> {
        let skipped = self.password_file_skipped.as_deref();
        match (one.config.connect(tls::copy_of(&self.tls)), &one.with_tls) {
            (Ok(client), _) => Ok(client),
            (Err(without), Some(with_tls)) => {
                with_tls.connect(tls::copy_of(&self.tls)).map_err(|e| {
                    format!(
                        "{} (with TLS; without TLS: {})",
                        connect_failure(e, skipped),
                        describe(without)
                    )
                })
            }
            (Err(e), None) => Err(connect_failure(e, skipped)),
        }
    }

    /// The whole configuration, with the library's settings.
    #[cfg(test)]
    pub fn config(&self) -> &postgres::Config {
        &self.config
    }

    /// How many tries a connection makes (one per host).
    #[cfg(test)]
    pub(super) fn tries(&self) -> usize {
        self.tries.len()
    }
}

/// `url` with its password replaced by `***`, for messages and keys.
pub(crate) fn redact(url: &str) -> String {
    tls::redact_secrets(url)
}

/// `answer` split after its first `statements` statements (each ends with a
/// CommandComplete): theirs, and the rest's.
pub(crate) fn split_answer(answer: Answer, statements: usize) -> (Answer, Answer) {
    match answer {
        Ok(mut messages) => {
            let mut ended = 0;
            let at = messages
                .iter()
                .position(|m| {
                    if matches!(m, postgres::SimpleQueryMessage::CommandComplete(_)) {
                        ended += 1;
                    }
                    ended == statements
                })
                .map_or(messages.len(), |at| at + 1);
            let rest = messages.split_off(at);
            (Ok(messages), Ok(rest))
        }
        // The first half carries the error; the rest is not used then (nothing ran).
        Err(e) => (Err(e), Ok(Vec::new())),
    }
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
    fn application_name_is_the_urls_else_namedmutex() {
        let name = |url: &str| {
            Server::parse(url)
                .unwrap()
                .config()
                .get_application_name()
                .map(str::to_owned)
        };
        assert_eq!(name("postgresql://db/x").as_deref(), Some("namedmutex"));
        assert_eq!(
            name("postgresql://db/x?application_name=billing").as_deref(),
            Some("billing")
        );
        assert_eq!(
            name("host=db application_name=cron").as_deref(),
            Some("cron")
        );
    }

    #[test]
    fn connect_timeout_reads_as_in_libpq() {
        let timeout = |url: &str| {
            Server::parse(url)
                .unwrap()
                .config()
                .get_connect_timeout()
                .copied()
        };
        assert_eq!(timeout("postgresql://db/x"), Some(CONNECT_TIMEOUT));
        assert_eq!(
            timeout("postgresql://db/x?connect_timeout=0"),
            Some(Duration::MAX)
        );
        assert_eq!(timeout("host=db connect_timeout=-3"), Some(Duration::MAX));
        assert_eq!(
            timeout("postgresql://db/x?connect_timeout=1"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            timeout("host=db connect_timeout=30"),
            Some(Duration::from_secs(30))
        );
        let e = Server::parse("postgresql://bob:s3cret@db/x?connect_timeout=soon").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidParameter);
        assert!(e.to_string().contains("connect_timeout \"soon\""), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
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
