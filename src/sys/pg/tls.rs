//! TLS to the server, configured by the URL as libpq configures it: `sslmode` (`disable`,
//! `allow`, `prefer` (the default), `require`, `verify-ca`, `verify-full`) and `sslrootcert`
//! (a PEM file of trusted roots, or `system` for the operating system's). The `postgres`
//! crate knows only `disable`, `prefer` and `require` and no `sslrootcert`, so both are taken
//! out of the URL here and the crate is told `require` when TLS is a must.
//!
//! What is checked, as in libpq:
//!
//! | sslmode | TLS | certificate chain | host name |
//! |---|---|---|---|
//! | `disable` | never | | |
//! | `allow`, `prefer` | when the server offers it | when a root file exists | no |
//! | `require` | always | when a root file exists | no |
//! | `verify-ca` | always | always | no |
//! | `verify-full` | always | always | always |
//!
//! The root file is `sslrootcert`, else `~/.postgresql/root.crt` when it exists. `allow` is
//! treated as `prefer` (the `postgres` crate tries TLS first). Without the `postgres-tls`
//! feature a mode that needs TLS is refused with an error that names the feature.

use crate::error::{Error, ErrorKind, Result};
use std::path::PathBuf;

/// How much TLS a URL asks for (`sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
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

/// The TLS settings of a URL, and the URL without the parameters only this module reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    pub mode: Mode,
    pub roots: Roots,
}

impl Settings {
    /// Splits `url` into the URL for the `postgres` crate and the TLS settings.
    pub fn take_from(url: &str) -> Result<(String, Settings)> {
        let (rest, mode, root) = if is_url(url) {
            take_from_url(url)?
        } else {
            take_from_key_values(url)?
        };
        let mode = match mode.as_deref() {
            None | Some("prefer") | Some("allow") => Mode::Prefer,
            Some("disable") => Mode::Disable,
            Some("require") => Mode::Require,
            Some("verify-ca") => Mode::VerifyCa,
            Some("verify-full") => Mode::VerifyFull,
            Some(other) => {
                return Err(invalid(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        };
        let roots = match root.as_deref() {
            Some("system") => Roots::System,
            Some(path) if !path.is_empty() => Roots::File(PathBuf::from(path)),
            _ => match default_root_file() {
                Some(path) if path.is_file() => Roots::File(path),
                _ => Roots::None,
            },
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
        // What the `postgres` crate understands: TLS required, or tried, or never.
        let crate_mode = match mode {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "require",
        };
        let rest = with_param(&rest, "sslmode", crate_mode, is_url(url));
        Ok((rest, Settings { mode, roots }))
    }
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
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

fn is_url(url: &str) -> bool {
    url.starts_with("postgresql://") || url.starts_with("postgres://")
}

/// libpq's default root file.
fn default_root_file() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("APPDATA"))?;
    let dir = if cfg!(windows) {
        "postgresql"
    } else {
        ".postgresql"
    };
    Some(PathBuf::from(home).join(dir).join("root.crt"))
}

/// The parameters this module reads, taken out of a URL's query.
type Taken = (String, Option<String>, Option<String>);

fn take_from_url(url: &str) -> Result<Taken> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None, None));
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key)?.as_str() {
            "sslmode" => mode = Some(decode(value)?),
            "sslrootcert" => root = Some(decode(value)?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode, root))
}

/// Percent-decoding of a URL's query part.
fn decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(format!("{s:?} in the URL has a bad %-escape")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("{s:?} in the URL is not UTF-8")))
}

/// The same for a `key=value key='quoted value'` string (libpq's rules: spaces around `=`,
/// single quotes, backslash escapes).
fn take_from_key_values(s: &str) -> Result<Taken> {
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        let after_key = rest[key_end..].trim_start();
        let Some(after_eq) = after_key.strip_prefix('=') else {
            // Not ours to judge: the `postgres` crate reports it.
            kept.push(rest.to_string());
            break;
        };
        let after_eq = after_eq.trim_start();
        let (value, len) = value_at(after_eq)?;
        let raw = &after_eq[..len];
        match key {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => kept.push(format!("{key}={raw}")),
        }
        rest = after_eq[len..].trim_start();
    }
    Ok((kept.join(" "), mode, root))
}

/// The value at the start of `s` and how many bytes it takes there.
fn value_at(s: &str) -> Result<(String, usize)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    if s.starts_with('\'') {
        chars.next();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => value.push(e),
                    None => break,
                },
                '\'' => return Ok((value, i + 1)),
                c => value.push(c),
            }
        }
        return Err(invalid(format!(
            "the connection string has an unterminated quoted value: {s:?}"
        )));
    }
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => return Ok((value, i)),
            '\\' => {
                if let Some((_, e)) = chars.next() {
                    value.push(e);
                }
            }
            c => value.push(c),
        }
    }
    Ok((value, s.len()))
}

/// `url` with `key=value` added (a URL's query or a key=value string).
fn with_param(url: &str, key: &str, value: &str, url_form: bool) -> String {
    if !url_form {
        return format!("{url} {key}={value}").trim_start().to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
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

/// Without the `postgres-tls` feature: no TLS, and modes that need it are refused.
#[cfg(not(feature = "postgres-tls"))]
pub(super) fn connector(settings: &Settings, server: &str) -> Result<Connector> {
    match settings.mode {
        Mode::Disable | Mode::Prefer => Ok(postgres::NoTls),
        mode => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "sslmode={} for PostgreSQL at {server} needs TLS, and this build of namedmutex has none: build it with the cargo feature postgres-tls",
                mode.name()
            ),
        )),
    }
}

#[cfg(feature = "postgres-tls")]
mod with_rustls {
    use super::{Mode, Roots, Settings};
    use crate::error::{Error, ErrorKind, Result};
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
    use std::sync::{Arc, OnceLock};

    pub(in super::super) type Connector = tokio_postgres_rustls::MakeRustlsConnect;

    /// The connector for `settings`: rustls with ring, whatever provider the rest of the
    /// program installed, and a verifier that checks what the mode asks for.
    pub(in super::super) fn connector(settings: &Settings, server: &str) -> Result<Connector> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = match &settings.roots {
            Roots::None => None,
            roots => {
                let store = root_store(roots, server)?;
                let verifier = WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                    .build()
                    .map_err(|e| tls_error(server, format!("trusted roots: {e}")))?;
                Some(verifier)
            }
        };
        let verifier = Arc::new(Verifier {
            chain,
            check_name: settings.mode == Mode::VerifyFull,
            provider: provider.clone(),
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(server, e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    /// The trusted roots: a file is read each time (a renewed one is seen at the next
    /// open), the system's once per process (reading them takes milliseconds).
    fn root_store(roots: &Roots, server: &str) -> Result<Arc<RootCertStore>> {
        static SYSTEM: OnceLock<std::result::Result<Arc<RootCertStore>, String>> = OnceLock::new();
        let mut store = RootCertStore::empty();
        match roots {
            Roots::None => {}
            Roots::System => {
                return SYSTEM
                    .get_or_init(system_roots)
                    .clone()
                    .map_err(|e| tls_error(server, e));
            }
            Roots::File(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| {
                        tls_error(
                            server,
                            format!(
                                "the root certificate file {} cannot be read: {e}",
                                path.display()
                            ),
                        )
                    })?;
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(tls_error(
                        server,
                        format!(
                            "the root certificate file {} holds no usable certificate",
                            path.display()
                        ),
                    ));
                }
            }
        }
        Ok(Arc::new(store))
    }

    fn system_roots() -> std::result::Result<Arc<RootCertStore>, String> {
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let first = found
                .errors
                .first()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(format!(
                "sslrootcert=system, but no trusted root of the system could be read{first}"
            ));
        }
        Ok(Arc::new(store))
    }

    fn tls_error(server: &str, what: String) -> Error {
        Error::new(
            ErrorKind::InvalidParameter,
            format!("TLS to PostgreSQL at {server}: {what}"),
        )
    }

    /// Checks the chain when roots were given, the host name only for `verify-full`, and
    /// the handshake's signatures always (what is not checked is who the server is, never
    /// that it holds the certificate's key).
    #[derive(Debug)]
    struct Verifier {
        chain: Option<Arc<WebPkiServerVerifier>>,
        check_name: bool,
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for Verifier {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            let Some(chain) = &self.chain else {
                return Ok(ServerCertVerified::assertion());
            };
            match chain.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) if !self.check_name => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (_, s) = split("host=db sslmode=allow");
        assert_eq!(s.mode, Mode::Prefer);
    }

    #[test]
    fn bad_settings_are_named() {
        let err = |url: &str| Settings::take_from(url).unwrap_err().to_string();
        assert!(err("postgresql://db/x?sslmode=sometimes").contains("\"sometimes\""));
        assert!(
            err("postgresql://db/x?sslmode=require&sslrootcert=system").contains("verify-full")
        );
        let no_roots = "host=db sslmode=verify-full sslrootcert=";
        if default_root_file().is_none_or(|f| !f.is_file()) {
            assert!(err(no_roots).contains("no trusted roots"));
        }
        assert!(err("host=db sslrootcert='open").contains("unterminated"));
        assert!(err("postgresql://db/x?sslrootcert=%zz").contains("%-escape"));
    }
}
