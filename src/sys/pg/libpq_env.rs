//! libpq's environment variables: what a URL leaves out, the environment may give, as it
//! does to `psql` (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGCONNECT_TIMEOUT`,
//! `PGPASSWORD`, `PGPASSFILE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`,
//! `PGSSLCRL`, `PGSSLCRLDIR`). What the URL says always wins.

use crate::sys::contract::{Error, ErrorKind, Result};
use std::time::Duration;

/// The variable `name`, when set, not empty and valid UTF-8.
pub(super) fn var(name: &str) -> Option<String> {
    std::env::var_os(name)
        .and_then(|v| v.into_string().ok())
        .filter(|v| !v.is_empty())
}

/// Fills in what `config` (from a URL) leaves out of host, port, user, database and connect
/// timeout from the environment; returns what it took, as `NAME=value` for messages (the
/// user falls back to `USER`, as libpq's does, without being named).
pub(super) fn fill(config: &mut postgres::Config) -> Result<Vec<String>> {
    let mut from_env = Vec::new();
    if config.get_hosts().is_empty() {
        if let Some(hosts) = var("PGHOST") {
            for host in hosts.split(',') {
                config.host(host.trim());
            }
            from_env.push(format!("PGHOST={hosts}"));
        }
    }
    if config.get_ports().is_empty() {
        if let Some(ports) = var("PGPORT") {
            for port in ports.split(',') {
                let port: u16 = port.trim().parse().map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidParameter,
                        format!("PGPORT {port:?} is not a port number (1-65535)"),
                    )
                })?;
                config.port(port);
            }
            from_env.push(format!("PGPORT={ports}"));
        }
    }
    if config.get_user().is_none() {
        // libpq's default: PGUSER, else the operating system user.
        if let Some(user) = var("PGUSER") {
            from_env.push(format!("PGUSER={user}"));
            config.user(&user);
        } else if let Some(user) = var("USER") {
            config.user(&user);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(dbname) = var("PGDATABASE") {
            from_env.push(format!("PGDATABASE={dbname}"));
            config.dbname(&dbname);
        }
    }
    if config.get_connect_timeout().is_none() {
        let timeout = var("PGCONNECT_TIMEOUT").map(|t| {
            t.trim().parse::<u64>().map_err(|_| {
                Error::new(
                    ErrorKind::InvalidParameter,
                    format!("PGCONNECT_TIMEOUT {t:?} is not a number of seconds"),
                )
            })
        });
        // Less than 2 seconds is 2, as in libpq; 0 (no bound, to libpq) keeps namedmutex's.
        if let Some(secs) = timeout.transpose()?.filter(|&secs| secs > 0) {
            config.connect_timeout(Duration::from_secs(secs.max(2)));
            from_env.push(format!("PGCONNECT_TIMEOUT={secs}"));
        }
    }
    Ok(from_env)
}
