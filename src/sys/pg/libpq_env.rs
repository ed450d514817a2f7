//! libpq's environment variables: what a URL leaves out, the environment may give, as it
//! does to `psql` (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGCONNECT_TIMEOUT`,
//! `PGPASSWORD`, `PGPASSFILE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`,
//! `PGSSLCRL`, `PGSSLCRLDIR`, `PGSSLNEGOTIATION`). What the URL says always wins.

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
    for (key, name) in [
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("dbname", "PGDATABASE"),
        ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ] {
        if let Some(value) = var(name) {
            if fill_setting(config, key, &value, &|bad| format!("{name} {bad:?}"))? {
                from_env.push(format!("{name}={value}"));
            }
        }
    }
    if config.get_user().is_none() {
        // libpq's default: the operating system user.
        if let Some(user) = var("USER") {
            config.user(&user);
        }
    }
    Ok(from_env)
}

/// Sets libpq's setting `key` to `value` where `config` has none yet, as libpq reads it
/// from the environment or a service file (`service.rs`); `named(bad)` names a bad value in
/// an error. True when it set something; false for a key this does not handle.
pub(super) fn fill_setting(
    config: &mut postgres::Config,
    key: &str,
    value: &str,
    named: &dyn Fn(&str) -> String,
) -> Result<bool> {
    let invalid = |bad: &str, why: &str| {
        Error::new(
            ErrorKind::InvalidParameter,
            format!("{} is not {why}", named(bad)),
        )
    };
    match key {
        "host" if config.get_hosts().is_empty() => {
            for host in value.split(',') {
                config.host(host.trim());
            }
        }
        "port" if config.get_ports().is_empty() => {
            for port in value.split(',') {
                let number = port
                    .trim()
                    .parse()
                    .map_err(|_| invalid(port, "a port number (1-65535)"))?;
                config.port(number);
            }
        }
        "user" if config.get_user().is_none() => {
            config.user(value);
        }
        "dbname" if config.get_dbname().is_none() => {
            config.dbname(value);
        }
        "password" if config.get_password().is_none() => {
            config.password(value);
        }
        "options" if config.get_options().is_none() => {
            config.options(value);
        }
        "connect_timeout" if config.get_connect_timeout().is_none() => {
            let secs: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid(value, "a number of seconds"))?;
            // As in libpq: 0 or less is no bound (`Duration::MAX`, which tokio's timer
            // reads as never), and less than 2 seconds is 2.
            config.connect_timeout(match secs {
                ..=0 => Duration::MAX,
                _ => Duration::from_secs(secs.max(2) as u64),
            });
        }
        _ => return Ok(false),
    }
    Ok(true)
}
