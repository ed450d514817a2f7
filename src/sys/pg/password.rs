//! The password of a connection whose URL has none, from where libpq looks: `PGPASSWORD`,
//! then the password file (`PGPASSFILE`, else `~/.pgpass`; on Windows
//! `%APPDATA%\postgresql\pgpass.conf`, where no mode is checked), so that a cron job or a
//! service need not put its password in a URL that `ps` shows.
//!
//! The file is libpq's: one `host:port:database:user:password` per line, `*` matching any
//! value in the first four fields, `\` escaping `:` and `\`, `#` starting a comment, the
//! first matching line winning. A connection over a Unix socket matches `localhost`; the
//! port defaults to 5432 and the database to the user. As libpq does, a file that its group
//! or others may read is not used; unlike libpq, which prints a warning, the reason is kept
//! and added to a failed connection's error ([`Lookup::skipped`]).
//!
//! With several hosts in one URL, each host's password is looked up on its own, as libpq
//! does; where they differ, `server.rs` connects host by host, each with its own.

use super::libpq_env::var;
use postgres::config::Host;
use std::path::{Path, PathBuf};

/// What the lookup found.
#[derive(Debug, Default)]
pub(crate) struct Lookup {
    /// The password of each host of the configuration, in its order (all the same from
    /// `PGPASSWORD`; `None` where the file has no entry). Empty when there is none at all.
    pub passwords: Vec<Option<String>>,
    /// Why a password file was not read, for the error of a connection that then fails.
    pub skipped: Option<String>,
}

impl Lookup {
    /// The one password every host gets, if they all get the same (or none at all):
    /// `Some(None)` when none has one; `None` when the hosts differ.
    pub fn shared(&self) -> Option<Option<&str>> {
        let first = self.passwords.first().and_then(|p| p.as_deref());
        self.passwords
            .iter()
            .all(|p| p.as_deref() == first)
            .then_some(first)
    }
}

/// The passwords for `config`, which has none of its own: `PGPASSWORD`, else each host's
/// first matching entry in the password file.
pub(crate) fn look_up(config: &postgres::Config) -> Lookup {
    let hosts = config
        .get_hosts()
        .len()
        .max(config.get_hostaddrs().len())
        .max(1);
    if let Some(password) = var("PGPASSWORD") {
        return Lookup {
            passwords: vec![Some(password); hosts],
            skipped: None,
        };
    }
    let Some(file) = password_file() else {
        return Lookup::default();
    };
    let text = match read_private(&file) {
        Ok(Some(text)) => text,
        Ok(None) => return Lookup::default(),
        Err(why) => {
            return Lookup {
                passwords: Vec::new(),
                skipped: Some(why),
            };
        }
    };
    let user = config.get_user().unwrap_or_default();
    let database = config.get_dbname().unwrap_or(user);
    let passwords = (0..hosts)
        .map(|i| {
            let (host, port) = host_and_port(config, i);
            find(&text, [&host, &port, database, user])
        })
        .collect();
    Lookup {
        passwords,
        skipped: None,
    }
}

/// Host `i` of `config` as libpq matches it in the password file: its name, else its
/// `hostaddr`, with a Unix socket as `localhost`; and its port (one port for all hosts, or
/// one each; 5432 by default).
fn host_and_port(config: &postgres::Config, i: usize) -> (String, String) {
    let host = match config.get_hosts().get(i) {
        Some(Host::Tcp(name)) if !name.is_empty() => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(_)) => "localhost".to_owned(),
        _ => match config.get_hostaddrs().get(i) {
            Some(addr) => addr.to_string(),
            None => "localhost".to_owned(),
        },
    };
    let port = super::hosts::port_of(config, i).unwrap_or(5432);
    (host, port.to_string())
}

/// `PGPASSFILE`, or libpq's default: `.pgpass` in the home directory
/// (`%APPDATA%\postgresql\pgpass.conf` on Windows).
fn password_file() -> Option<PathBuf> {
    if let Some(file) = var("PGPASSFILE") {
        return Some(PathBuf::from(file));
    }
    if cfg!(windows) {
        return std::env::var_os("APPDATA")
            .filter(|a| !a.is_empty())
            .map(|appdata| Path::new(&appdata).join("postgresql").join("pgpass.conf"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| Path::new(&home).join(".pgpass"))
}

/// The file's text; `None` when there is no such file; `Err` (why) when it is not a plain
/// file that only its owner may read, or cannot be read.
fn read_private(file: &Path) -> Result<Option<String>, String> {
    let meta = match std::fs::metadata(file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "the password file {} was not read: {e}",
                file.display()
            ));
        }
    };
    if !meta.is_file() {
        return Err(format!(
            "the password file {} was not read: it is not a plain file",
            file.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "the password file {} was not read: its group or others may access it (mode {mode:o}); make it private with chmod 600, as libpq requires",
                file.display()
            ));
        }
    }
    std::fs::read_to_string(file)
        .map(Some)
        .map_err(|e| format!("the password file {} was not read: {e}", file.display()))
}

/// The password of the first line of `text` whose host, port, database and user match
/// `wanted` (each field `*` or equal).
fn find(text: &str, wanted: [&str; 4]) -> Option<String> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| {
            let fields = split(line)?;
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want);
            matches.then(|| fields[4].clone())
        })
}

/// The five fields of a line, unescaped; `None` for a line with fewer (libpq skips it).
/// The password is the rest of the line after the fourth separator.
fn split(line: &str) -> Option<[String; 5]> {
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut()?.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut()?.push(c),
        }
    }
    fields.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANT: [&str; 4] = ["db.example", "5432", "locks", "app"];

    #[test]
    fn the_first_matching_line_wins_and_star_matches_anything() {
        let text = "# a comment\nother:5432:locks:app:no\ndb.example:5432:locks:app:first\n*:*:*:app:second\n";
        assert_eq!(find(text, WANT).as_deref(), Some("first"));
        assert_eq!(find("*:*:*:app:any\n", WANT).as_deref(), Some("any"));
        assert_eq!(find("*:5433:*:app:x\n*:*:*:other:y\n", WANT), None);
        assert_eq!(
            find("db.example:5432:locks:app:crlf\r\n", WANT).as_deref(),
            Some("crlf")
        );
    }

    #[test]
    fn each_host_is_matched_with_its_own_port() {
        let config: postgres::Config = "host=a,b port=5433,5434 user=u".parse().unwrap();
        assert_eq!(host_and_port(&config, 0), ("a".into(), "5433".into()));
        assert_eq!(host_and_port(&config, 1), ("b".into(), "5434".into()));
        let one_port: postgres::Config = "host=a,/run/pg port=6000".parse().unwrap();
        assert_eq!(
            host_and_port(&one_port, 1),
            ("localhost".into(), "6000".into())
        );
        let by_address: postgres::Config = "hostaddr=10.0.0.7".parse().unwrap();
        assert_eq!(
            host_and_port(&by_address, 0),
            ("10.0.0.7".into(), "5432".into())
        );
        let differ = Lookup {
            passwords: vec![None, Some("b".into())],
            skipped: None,
        };
        assert_eq!(differ.shared(), None);
        let same = Lookup {
            passwords: vec![Some("x".into()); 2],
            skipped: None,
        };
        assert_eq!(same.shared(), Some(Some("x")));
        assert_eq!(Lookup::default().shared(), Some(None));
    }

    #[test]
    fn backslash_escapes_colons_and_itself() {
        let text = "db.example:5432:locks:app:pa\\:ss\\\\word:with:colons\n";
        assert_eq!(find(text, WANT).as_deref(), Some("pa:ss\\word:with:colons"));
        let escaped_user = "*:*:*:a\\:pp:x\n";
        assert_eq!(
            find(escaped_user, ["h", "1", "d", "a:pp"]).as_deref(),
            Some("x")
        );
    }

    #[test]
    fn short_lines_and_comments_are_skipped() {
        assert_eq!(find("db.example:5432:locks\n#*:*:*:app:c\n", WANT), None);
        assert_eq!(
            find("db.example:5432:locks:app:\n", WANT).as_deref(),
            Some("")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_may_read_is_not_used_and_says_why() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nm-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_private(&file).unwrap().as_deref(),
            Some("*:*:*:*:secret\n")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let why = read_private(&file).unwrap_err();
        assert!(
            why.contains("mode 640") && why.contains("chmod 600"),
            "{why}"
        );
        assert_eq!(read_private(&dir.join("missing")).unwrap(), None);
        assert!(read_private(&dir).unwrap_err().contains("not a plain file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
