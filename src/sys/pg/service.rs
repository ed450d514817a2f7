//! libpq's connection service file: `service=NAME` in the URL (or `PGSERVICE`) names a
//! section of `PGSERVICEFILE` (else `~/.pg_service.conf`), else of
//! `PGSYSCONFDIR/pg_service.conf` (else `/etc/postgresql-common/pg_service.conf`, where
//! Debian's libpq looks). Its `key=value` lines fill in what the URL leaves out, before
//! libpq's environment variables do, as libpq orders them; the first file that has the
//! section is the only one read.
//!
//! ```text
//! # ~/.pg_service.conf
//! [locks]
//! host=db.internal
//! dbname=locks
//! sslmode=verify-full
//! sslrootcert=/etc/ssl/db-ca.pem
//! ```
//!
//! Keys this library does not use are an error that names the file and the line, never
//! ignored: a section written for `psql` with a setting that matters elsewhere should not
//! connect silently without it.

use super::libpq_env::{fill_setting, var};
use crate::sys::contract::{Error, ErrorKind, Result};
use std::path::PathBuf;

/// The keys a section may set: what `postgres::Config` takes, and the TLS settings.
const CONFIG_KEYS: &[&str] = &[
    "host",
    "port",
    "dbname",
    "user",
    "password",
    "connect_timeout",
    "options",
];
const TLS_KEYS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
];

/// One service's settings, and where they came from (for messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Service {
    /// `NAME (FILE)`, or empty when no service was asked for.
    pub from: String,
    entries: Vec<(String, String)>,
}

impl Service {
    /// The service `name` asks for (`None`: `PGSERVICE`, else no service).
    pub fn find(name: Option<&str>) -> Result<Service> {
        let Some(name) = name.map(str::to_owned).or_else(|| var("PGSERVICE")) else {
            return Ok(Service::default());
        };
        let mut looked = Vec::new();
        for file in files() {
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    looked.push(file.display().to_string());
                    continue;
                }
                Err(e) => {
                    return Err(invalid(format!(
                        "the service file {} cannot be read: {e}",
                        file.display()
                    )));
                }
            };
            let what = file.display().to_string();
            if let Some(entries) = section(&text, &name, &what)? {
                return Ok(Service {
                    from: format!("service {name} ({what})"),
                    entries,
                });
            }
            looked.push(what);
        }
        Err(invalid(format!(
            "the service {name:?} is defined in no service file (looked in {})",
            looked.join(", ")
        )))
    }

    /// A service of these settings, as if read from a file.
    #[cfg(test)]
    pub fn from_entries(entries: &[(&str, &str)]) -> Service {
        Service {
            from: "service test".into(),
            entries: entries
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The value of `key`, if the section sets it.
    pub fn get(&self, key: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Fills in what `config` (from a URL) leaves out; returns whether it gave anything.
    pub fn fill(&self, config: &mut postgres::Config) -> Result<bool> {
        let mut gave = false;
        for (key, value) in &self.entries {
            let named = |bad: &str| format!("{}: {key}={bad:?}", self.from);
            gave |= fill_setting(config, key, value, &named)?;
        }
        Ok(gave)
    }
}

/// The files searched, in order.
fn files() -> Vec<PathBuf> {
    let user = var("PGSERVICEFILE").map(PathBuf::from).or_else(|| {
        let home = std::env::var_os(if cfg!(windows) { "APPDATA" } else { "HOME" })?;
        let name = if cfg!(windows) {
            "postgresql/.pg_service.conf"
        } else {
            ".pg_service.conf"
        };
        Some(PathBuf::from(home).join(name))
    });
    let system = var("PGSYSCONFDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/postgresql-common"))
        .join("pg_service.conf");
    user.into_iter().chain([system]).collect()
}

/// The `key=value` entries of section `[name]` in a service file's `text` (`what` names
/// the file), or `None` when it has no such section.
fn section(text: &str, name: &str, what: &str) -> Result<Option<Vec<(String, String)>>> {
    let mut found = None::<Vec<(String, String)>>;
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(group) = line.strip_prefix('[') {
            if found.is_some() {
                break; // libpq reads the first section of that name only
            }
            inside = group.strip_suffix(']') == Some(name);
            if inside {
                found = Some(Vec::new());
            }
            continue;
        }
        if !inside {
            continue;
        }
        let at = format!("{what}, line {}", i + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(invalid(format!(
                "{at}: {line:?} is not key=value (service {name:?})"
            )));
        };
        let key = key.trim();
        if key == "service" {
            return Err(invalid(format!(
                "{at}: a service may not name another service (service {name:?})"
            )));
        }
        if !CONFIG_KEYS.contains(&key) && !TLS_KEYS.contains(&key) {
            return Err(invalid(format!(
                "{at}: {key:?} is not a setting namedmutex uses (it takes {} and {})",
                CONFIG_KEYS.join(", "),
                TLS_KEYS.join(", ")
            )));
        }
        if let Some(entries) = found.as_mut() {
            entries.push((key.to_owned(), value.trim().to_owned()));
        }
    }
    Ok(found)
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidParameter, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FILE: &str = "\
# comment
[other]
host=elsewhere

[locks]
  host = db1,db2
port=5433
# a comment inside
sslmode=verify-full
[locks]
host=ignored
";

    #[test]
    fn a_section_is_read_up_to_the_next() {
        let entries = section(FILE, "locks", "f").unwrap().unwrap();
        assert_eq!(
            entries,
            [
                ("host".into(), "db1,db2".into()),
                ("port".into(), "5433".into()),
                ("sslmode".into(), "verify-full".into()),
            ]
        );
        assert_eq!(section(FILE, "nothing", "f").unwrap(), None);
        let other = section(FILE, "other", "f").unwrap().unwrap();
        assert_eq!(other, [("host".into(), "elsewhere".into())]);
    }

    #[test]
    fn bad_lines_are_named_with_their_file_and_line() {
        let err = |text: &str| section(text, "s", "/etc/x.conf").unwrap_err().to_string();
        assert!(err("[s]\nhost db\n").contains("/etc/x.conf, line 2"));
        assert!(err("[s]\nservice=t\n").contains("another service"));
        let unknown = err("\n[s]\ngssencmode=require\n");
        assert!(unknown.contains("line 3") && unknown.contains("gssencmode"));
        // Other sections are not judged.
        assert_eq!(
            section("[t]\nanything\n[s]\nport=1\n", "s", "f")
                .unwrap()
                .map(|e| e.len()),
            Some(1)
        );
    }

    #[test]
    fn the_url_wins_and_the_service_fills_the_rest() {
        let service = Service {
            from: "service s (f)".into(),
            entries: vec![
                ("host".into(), "db1".into()),
                ("port".into(), "5433".into()),
                ("user".into(), "svc".into()),
                ("dbname".into(), "locks".into()),
                ("connect_timeout".into(), "1".into()),
            ],
        };
        let mut config: postgres::Config = "postgresql://me@/mine".parse().unwrap();
        assert!(service.fill(&mut config).unwrap());
        assert_eq!(config.get_user(), Some("me"));
        assert_eq!(config.get_dbname(), Some("mine"));
        assert_eq!(config.get_ports(), [5433]);
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(2)));
        assert!(matches!(config.get_hosts(), [postgres::config::Host::Tcp(h)] if h == "db1"));
        let bad = Service {
            from: "service s (f)".into(),
            entries: vec![("port".into(), "lots".into())],
        };
        let e = bad.fill(&mut "host=x".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("service s (f): port=\"lots\""));
    }
}
