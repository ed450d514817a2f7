//! TLS to the server, configured by the URL as libpq configures it: `sslmode` (`disable`,
//! `allow`, `prefer` (the default), `require`, `verify-ca`, `verify-full`) and `sslrootcert`
//! (a PEM file of trusted roots, or `system` for the operating system's). The `postgres`
//! crate knows only `disable`, `prefer` and `require` and no `sslrootcert`, so both are taken
//! out of the URL here and the crate is told `require` when TLS is a must, and `disable`
//! for the first try of `allow` (the server's `Server` tries again with TLS).
//!
//! What is checked, as in libpq:
//!
//! | sslmode | TLS | certificate chain | host name |
//! |---|---|---|---|
//! | `disable` | never | | |
//! | `allow` | only when a connection without it fails | when a root file exists | no |
//! | `prefer` | when the server offers it | when a root file exists | no |
//! | `require` | always | when a root file exists | no |
//! | `verify-ca` | always | always | no |
//! | `verify-full` | always | always | always |
//!
//! The root file is `sslrootcert`, else `~/.postgresql/root.crt` when it exists. A client certificate is
//! `sslcert` with its key `sslkey` (PEM), else `~/.postgresql/postgresql.crt` and `.key` when
//! they exist; a key encrypted as PKCS#8 is decrypted with `sslpassword` (one in OpenSSL's
//! traditional encrypted format is refused, naming the command that converts it); as libpq
//! does, a key that others may read is refused; a key that is not the certificate's is
//! refused before connecting, naming both files. This library's copies of a key (the file's
//! text, the decoded or decrypted key) are wiped once ring's signing key holds it, which
//! keeps it in memory while the connection's configuration lives. Revocation lists
//! (`sslcrl`, a PEM file of CRLs, and `sslcrldir`, a directory of such files under
//! OpenSSL's hashed names, `HASH.rN`, the only ones OpenSSL reads there; else
//! `~/.postgresql/root.crl` when it exists) are checked with the chain, for every
//! certificate in it, as libpq asks OpenSSL to: a certificate no list covers, or a list past
//! its next update, fails too. Stricter than libpq, a list named but missing, or named
//! where no roots check the chain, is an error instead of being ignored.
//! `sslnegotiation=direct` (PostgreSQL 17; also from a service file or `PGSSLNEGOTIATION`,
//! with `require` or a stricter mode only, as libpq) is the `postgres` crate's: TLS from the
//! first byte; the connector offers the ALPN protocol `postgresql` on every connection, which
//! PostgreSQL 17 requires for it. Without the `postgres-tls` feature a mode that needs TLS
//! is refused with an error that names the feature.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the settings a URL asks for, and the connector without TLS |
//! | `url_params.rs` | the two forms of a connection string, and the parameters taken out |
//! | `with_rustls.rs` | the connector with TLS (feature `postgres-tls`) |

use super::libpq_env::var;
use super::service::Service;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};
pub(super) use url_params::redact as redact_secrets;
use url_params::{Params, is_url, take_params, with_param};

mod url_params;
#[cfg(feature = "postgres-tls")]
mod with_rustls;

/// How much TLS a URL asks for (`sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
    /// Without TLS first, with it when that fails.
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Where trusted roots come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Roots {
    /// No file named and none at the default place: the chain is not checked.
    None,
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trusted roots.
    System,
}

/// A client certificate and its private key (PEM files), which the server may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `sslpassword`: what decrypts an encrypted key.
    pub password: Option<Secret>,
}

/// A secret that `Debug` does not show.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where certificate revocation lists come from: a PEM file of them (`sslcrl`) and a
/// directory of such files, named `HASH.rN` (`sslcrldir`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Revocation {
    pub file: Option<PathBuf>,
    pub dir: Option<PathBuf>,
}

/// The TLS settings of a URL, and the URL without the parameters only this module reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    pub mode: Mode,
    pub roots: Roots,
    pub client: Option<ClientCert>,
    pub revocation: Revocation,
    /// The service file's section the URL named, whose other settings the caller applies.
    pub service: Service,
    /// The URL's `connect_timeout`, as written (the caller applies it: `libpq_env.rs`).
    pub connect_timeout: Option<String>,
}

impl Settings {
    /// Splits `url` into the URL for the `postgres` crate and the TLS settings.
    pub fn take_from(url: &str) -> Result<(String, Settings)> {
        let (rest, params) = take_params(url)?;
        let service = Service::find(params.service.as_deref())?;
        Settings::with_service(is_url(url), rest, params, service)
    }

    /// [`Settings::take_from`] once the URL's parameters (`params`, the rest of the URL
    /// `rest`) and the service they name are known.
    fn with_service(
        url_form: bool,
        rest: String,
        mut params: Params,
        service: Service,
    ) -> Result<(String, Settings)> {
        // What the URL leaves out, a service file (service.rs) may give, else libpq's
        // environment (which has no variable for sslpassword).
        params.sslpassword = params.sslpassword.or_else(|| service.get("sslpassword"));
        let or_else = |given: Option<String>, key: &str, env: &str| {
            given.or_else(|| service.get(key)).or_else(|| var(env))
        };
        let mode_from = match (&params.sslmode, service.get("sslmode")) {
            (Some(_), _) => String::new(),
            (None, Some(_)) => format!(" (from {})", service.from),
            (None, None) => " (from PGSSLMODE)".to_owned(),
        };
        params.sslmode = or_else(params.sslmode, "sslmode", "PGSSLMODE");
        params.sslrootcert = or_else(params.sslrootcert, "sslrootcert", "PGSSLROOTCERT");
        params.sslcert = or_else(params.sslcert, "sslcert", "PGSSLCERT");
        params.sslkey = or_else(params.sslkey, "sslkey", "PGSSLKEY");
        params.sslcrl = or_else(params.sslcrl, "sslcrl", "PGSSLCRL");
        params.sslcrldir = or_else(params.sslcrldir, "sslcrldir", "PGSSLCRLDIR");
        params.sslnegotiation =
            or_else(params.sslnegotiation, "sslnegotiation", "PGSSLNEGOTIATION");
        let mode = match params.sslmode.as_deref() {
            None | Some("prefer") => Mode::Prefer,
            Some("allow") => Mode::Allow,
            Some("disable") => Mode::Disable,
            Some("require") => Mode::Require,
            Some("verify-ca") => Mode::VerifyCa,
            Some("verify-full") => Mode::VerifyFull,
            Some(other) => {
                return Err(invalid(format!(
                    "sslmode {other:?}{mode_from} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        };
        let roots = match params.sslrootcert.as_deref() {
            Some("system") => Roots::System,
            Some(path) if !path.is_empty() => Roots::File(PathBuf::from(path)),
            _ => match default_file("root.crt") {
                Some(path) if path.is_file() => Roots::File(path),
                _ => Roots::None,
            },
        };
        // Without TLS there is nothing to present a certificate in.
        let client = match mode {
            Mode::Disable => None,
            _ => client_cert(
                params.sslcert.as_deref(),
                params.sslkey.as_deref(),
                params.sslpassword.take(),
            )?,
        };
        if roots == Roots::System && mode != Mode::VerifyFull {
            return Err(invalid(format!(
                "sslrootcert=system needs sslmode=verify-full (it is {}): the system's roots vouch for host names, so the name must be checked",
                mode.name()
            )));
        }
        if roots == Roots::None && matches!(mode, Mode::VerifyCa | Mode::VerifyFull) {
            return Err(invalid(format!(
                "sslmode={} checks the server's certificate, but no trusted roots were given: name a PEM file with sslrootcert=PATH (or put it at ~/.postgresql/root.crt), or trust the system's roots with sslrootcert=system",
                mode.name()
            )));
        }
        let revocation = match mode {
            Mode::Disable => Revocation::default(),
            _ => revocation(
                params.sslcrl.as_deref(),
                params.sslcrldir.as_deref(),
                &roots,
            )?,
        };
        // What the `postgres` crate understands: TLS required, or tried, or never (`allow`'s
        // first try; `Server::connect` makes the second).
        let crate_mode = match mode {
            Mode::Disable | Mode::Allow => "disable",
            Mode::Prefer => "prefer",
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "require",
        };
        let mut rest = with_param(&rest, "sslmode", crate_mode, url_form);
        match params.sslnegotiation.as_deref() {
            None | Some("postgres") => {}
            // TLS begun at once has no answer to fall back from, as libpq says.
            Some("direct") if matches!(mode, Mode::Require | Mode::VerifyCa | Mode::VerifyFull) => {
                rest = with_param(&rest, "sslnegotiation", "direct", url_form);
            }
            Some("direct") => {
                return Err(invalid(format!(
                    "sslnegotiation=direct needs sslmode=require, verify-ca or verify-full (it is {}): TLS begun at once cannot fall back to a connection without it",
                    mode.name()
                )));
            }
            Some(other) => {
                return Err(invalid(format!(
                    "sslnegotiation {other:?} is not one of postgres, direct"
                )));
            }
        }
        Ok((
            rest,
            Settings {
                mode,
                roots,
                client,
                revocation,
                service,
                connect_timeout: params.connect_timeout,
            },
        ))
    }
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Allow => "allow",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidParameter, message)
}

/// A file at libpq's default place (`~/.postgresql/`, `%APPDATA%\postgresql\`).
fn default_file(name: &str) -> Option<PathBuf> {
    let (home, dir) = if cfg!(windows) {
        (std::env::var_os("APPDATA")?, "postgresql")
    } else {
        (std::env::var_os("HOME")?, ".postgresql")
    };
    Some(PathBuf::from(home).join(dir).join(name))
}

/// The client certificate: named (`sslcert`, `sslkey`: both must exist), or at the default
/// place with its key beside it (used when the certificate is there), or none.
fn client_cert(
    cert: Option<&str>,
    key: Option<&str>,
    password: Option<String>,
) -> Result<Option<ClientCert>> {
    let named = cert.filter(|c| !c.is_empty());
    let cert = match named {
        Some(c) => PathBuf::from(c),
        None => match default_file("postgresql.crt") {
            Some(c) if c.is_file() => c,
            _ => return Ok(None),
        },
    };
    if !cert.is_file() {
        return Err(invalid(format!(
            "the client certificate file {} (sslcert) does not exist",
            cert.display()
        )));
    }
    let key = match key.filter(|k| !k.is_empty()) {
        Some(k) => PathBuf::from(k),
        None if named.is_some() => {
            return Err(invalid(format!(
                "sslcert={} needs its private key: name it with sslkey=PATH",
                cert.display()
            )));
        }
        None => cert.with_file_name("postgresql.key"),
    };
    check_key_file(&key)?;
    Ok(Some(ClientCert {
        cert,
        key,
        password: password.map(Secret),
    }))
}

/// The revocation lists: named (they must exist), or `root.crl` at the default place when
/// it exists and roots check the chain, or none.
fn revocation(file: Option<&str>, dir: Option<&str>, roots: &Roots) -> Result<Revocation> {
    let file = file.filter(|f| !f.is_empty()).map(PathBuf::from);
    let dir = dir.filter(|d| !d.is_empty()).map(PathBuf::from);
    if file.is_none() && dir.is_none() {
        return Ok(Revocation {
            file: default_file("root.crl").filter(|f| f.is_file() && *roots != Roots::None),
            dir: None,
        });
    }
    if *roots == Roots::None {
        return Err(invalid(
            "sslcrl and sslcrldir check the server's certificate chain against revocation lists, but no trusted roots check that chain: name them with sslrootcert=PATH (or put them at ~/.postgresql/root.crt)".to_owned(),
        ));
    }
    if let Some(f) = file.as_ref().filter(|f| !f.is_file()) {
        return Err(invalid(format!(
            "the revocation list file {} (sslcrl) does not exist",
            f.display()
        )));
    }
    if let Some(d) = dir.as_ref().filter(|d| !d.is_dir()) {
        return Err(invalid(format!(
            "the revocation list directory {} (sslcrldir) does not exist",
            d.display()
        )));
    }
    Ok(Revocation { file, dir })
}

/// libpq's rule for a private key file: a regular file that group and others cannot read
/// (or, owned by root, that others cannot and the group may only read).
fn check_key_file(key: &Path) -> Result<()> {
    let meta = std::fs::metadata(key).map_err(|e| {
        invalid(format!(
            "the private key file {} (sslkey) cannot be read: {e}",
            key.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(invalid(format!(
            "the private key file {} (sslkey) is not a regular file",
            key.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let too_open = if meta.uid() == 0 { 0o037 } else { 0o077 };
        if meta.mode() & too_open != 0 {
            return Err(invalid(format!(
                "the private key file {} (sslkey) may be read by others (mode {:o}): make it u=rw (0600) or less, or u=rw,g=r (0640) if root owns it",
                key.display(),
                meta.mode() & 0o777
            )));
        }
    }
    Ok(())
}

#[cfg(feature = "postgres-tls")]
pub(super) use with_rustls::{Connector, connector};

#[cfg(not(feature = "postgres-tls"))]
pub(super) type Connector = postgres::NoTls;

/// A connector for one more connection (a connection takes its connector by value).
pub(super) fn copy_of(connector: &Connector) -> Connector {
    #[cfg(feature = "postgres-tls")]
    return connector.clone();
    #[cfg(not(feature = "postgres-tls"))]
    return *connector;
}

/// Without the `postgres-tls` feature: no TLS, and modes that need it are refused. (Under
/// `prefer` a client certificate goes unused, as with libpq and a server without TLS.)
#[cfg(not(feature = "postgres-tls"))]
pub(super) fn connector(settings: &Settings, server: &str) -> Result<Connector> {
    match settings.mode {
        Mode::Disable | Mode::Allow | Mode::Prefer => Ok(postgres::NoTls),
        mode => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "sslmode={} for PostgreSQL at {server} needs TLS, and this build of namedmutex has none: build it with the cargo feature postgres-tls",
                mode.name()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own (`tag`) with a client certificate and a private key (mode
    /// 0600) that only a connection would read.
    fn cert_and_key(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("namedmutex-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("c.crt"), dir.join("c.key"));
        std::fs::write(&cert, "read only when connecting").unwrap();
        std::fs::write(&key, "read only when connecting").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        (dir, cert, key)
    }

    fn split(url: &str) -> (String, Settings) {
        Settings::take_from(url).unwrap()
    }

    #[test]
    fn a_url_loses_the_parameters_the_crate_does_not_know() {
        let (rest, s) = split(
            "postgresql://u@db/x?sslmode=verify-full&application_name=a&sslrootcert=%2Ftmp%2Fca%20x.pem",
        );
        assert_eq!(
            rest,
            "postgresql://u@db/x?application_name=a&sslmode=require"
        );
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.roots, Roots::File(PathBuf::from("/tmp/ca x.pem")));
        let (rest, s) = split("postgresql://u@db/x");
        assert_eq!(rest, "postgresql://u@db/x?sslmode=prefer");
        assert_eq!(s.mode, Mode::Prefer);
        let (rest, s) = split("postgres://u@db/x?sslmode=disable");
        assert_eq!(rest, "postgres://u@db/x?sslmode=disable");
        assert_eq!(s.mode, Mode::Disable);
    }

    /// `sslnegotiation` reaches the `postgres` crate only as `direct`, from the URL, else a
    /// service file, else `PGSSLNEGOTIATION` (read the same way as the others: `or_else`).
    #[test]
    fn direct_negotiation_is_passed_on_with_a_mode_that_requires_tls() {
        let (rest, _) = split("postgresql://u@db/x?sslnegotiation=direct&sslmode=require");
        assert_eq!(
            rest,
            "postgresql://u@db/x?sslmode=require&sslnegotiation=direct"
        );
        let (rest, _) = split("host=db sslnegotiation=postgres sslmode=require");
        assert_eq!(rest, "host=db sslmode=require");
        let service = Service::from_entries(&[("sslnegotiation", "direct")]);
        let (rest, params) = take_params("host=db sslmode=verify-ca sslrootcert=/x.pem").unwrap();
        let (rest, _) = Settings::with_service(false, rest, params, service).unwrap();
        assert_eq!(rest, "host=db sslmode=require sslnegotiation=direct");
    }

    #[test]
    fn a_key_value_string_keeps_its_quoting() {
        let (rest, s) = split(
            "host=db  user = 'o\\'brien' sslmode=verify-ca sslrootcert='/tmp/my ca.pem' dbname=x",
        );
        assert_eq!(rest, "host=db user='o\\'brien' dbname=x sslmode=require");
        assert_eq!(s.mode, Mode::VerifyCa);
        assert_eq!(s.roots, Roots::File(PathBuf::from("/tmp/my ca.pem")));
        let (rest, s) = split("host=db sslmode=require");
        assert_eq!(rest, "host=db sslmode=require");
        assert_eq!(s.mode, Mode::Require);
        let (rest, s) = split("host=db sslmode=allow");
        assert_eq!(
            (rest.as_str(), s.mode),
            ("host=db sslmode=disable", Mode::Allow)
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let err = |url: &str| Settings::take_from(url).unwrap_err().to_string();
        assert!(err("postgresql://db/x?sslmode=sometimes").contains("\"sometimes\""));
        assert!(
            err("postgresql://db/x?sslmode=require&sslrootcert=system").contains("verify-full")
        );
        let no_roots = "host=db sslmode=verify-full sslrootcert=";
        if default_file("root.crt").is_none_or(|f| !f.is_file()) {
            assert!(err(no_roots).contains("no trusted roots"));
        }
        assert!(err("host=db sslrootcert='open").contains("unterminated"));
        assert!(err("postgresql://db/x?sslnegotiation=sideways").contains("\"sideways\""));
        let weak = err("postgresql://db/x?sslnegotiation=direct");
        assert!(
            weak.contains("sslnegotiation=direct") && weak.contains("prefer"),
            "{weak}"
        );
        assert!(err("postgresql://db/x?sslrootcert=%zz").contains("%-escape"));
    }

    #[test]
    fn a_service_gives_the_tls_settings_the_url_leaves_out() {
        let (dir, cert, key) = cert_and_key("svc");
        let service = Service::from_entries(&[
            ("sslmode", "require"),
            ("sslcert", &cert.display().to_string()),
            ("sslkey", &key.display().to_string()),
            ("sslpassword", "from-the-service"),
        ]);
        let with = |url: &str| {
            let (rest, params) = take_params(url).unwrap();
            Settings::with_service(false, rest, params, service.clone()).unwrap()
        };
        let (rest, s) = with("host=db");
        assert_eq!(
            (rest.as_str(), s.mode),
            ("host=db sslmode=require", Mode::Require)
        );
        let client = s.client.expect("the service's client certificate");
        assert_eq!((client.cert, client.key), (cert.clone(), key.clone()));
        assert_eq!(client.password, Some(Secret("from-the-service".into())));
        // What the URL says wins.
        let (_, s) = with("host=db sslmode=verify-full sslrootcert=system sslpassword=mine");
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.client.unwrap().password, Some(Secret("mine".into())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_client_certificate_needs_a_private_key_kept_private() {
        let (dir, cert, key) = cert_and_key("key");
        let err = |url: String| Settings::take_from(&url).unwrap_err().to_string();
        let named = format!("host=db sslcert={}", cert.display());
        assert!(err(named.clone()).contains("sslkey=PATH"));
        let missing = format!("host=db sslcert={}/none.crt sslkey=x", dir.display());
        assert!(err(missing).contains("does not exist"));
        let with_key = format!("{named} sslkey={}", key.display());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |m| std::fs::set_permissions(&key, std::fs::Permissions::from_mode(m));
            mode(0o644).unwrap();
            assert!(err(with_key.clone()).contains("may be read by others (mode 644)"));
            mode(0o600).unwrap();
        }
        let (rest, s) = split(&with_key);
        assert_eq!(rest, "host=db sslmode=prefer");
        assert_eq!(
            s.client,
            Some(ClientCert {
                cert,
                key,
                password: None
            })
        );
        // Nothing is read without TLS.
        let (_, s) = split(&format!("{named} sslmode=disable"));
        assert_eq!(s.client, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
