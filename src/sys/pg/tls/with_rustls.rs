//! The connector with TLS: rustls with its ring provider, and a verifier that checks what
//! the `sslmode` asks for.

use super::{ClientCert, Mode, Revocation, Roots, Settings};
use crate::sys::contract::{Error, ErrorKind, Result};
use rustls::InconsistentKeys;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
    UnixTime,
};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use zeroize::{Zeroize, Zeroizing};

pub(in crate::sys::pg) type Connector = tokio_postgres_rustls::MakeRustlsConnect;

/// The connector for `settings`: rustls with ring, whatever provider the rest of the
/// program installed, and a verifier that checks what the mode asks for.
pub(in crate::sys::pg) fn connector(settings: &Settings, server: &str) -> Result<Connector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = match &settings.roots {
        Roots::None => None,
        roots => {
            let store = root_store(roots, server)?;
            let mut builder = WebPkiServerVerifier::builder_with_provider(store, provider.clone());
            let crls = revocation_lists(&settings.revocation, server)?;
            if !crls.is_empty() {
                // As libpq has OpenSSL check (CRL_CHECK | CRL_CHECK_ALL): every certificate
                // of the chain, one no list covers fails, and so does an expired list.
                builder = builder.with_crls(crls).enforce_revocation_expiration();
            }
            let verifier = builder.build().map_err(|e| {
                tls_error(server, format!("trusted roots or revocation lists: {e}"))
            })?;
            Some(verifier)
        }
    };
    let verifier = Arc::new(Verifier {
        chain,
        check_name: settings.mode == Mode::VerifyFull,
        provider: provider.clone(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(server, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &settings.client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let (certs, mut key) = client_identity(client, server)?;
            // Loaded from a borrow (rustls's `with_client_auth_cert` takes the key and drops
            // it as it is), so that this copy of the key's bytes is wiped as soon as the
            // signing key holds them.
            let signer = rustls::crypto::ring::sign::any_supported_type(&key);
            key.zeroize();
            let signer =
                signer.map_err(|e| tls_error(server, format!("the client's private key: {e}")))?;
            let certified = CertifiedKey::new(certs, signer);
            match certified.keys_match() {
                // As rustls itself: a key whose match cannot be told is not refused.
                Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
                Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                    return Err(tls_error(
                        server,
                        format!(
                            "the private key {} is not the key of the client certificate {}",
                            client.key.display(),
                            client.cert.display()
                        ),
                    ));
                }
                Err(e) => {
                    return Err(tls_error(server, format!("the client certificate: {e}")));
                }
            }
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
        }
    };
    // PostgreSQL 17 refuses TLS begun at once (`sslnegotiation=direct`) unless the client
    // offers this ALPN protocol; libpq 17 offers it on every TLS connection, and servers
    // before 17 ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
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
            let certs = read_certs(path, "root certificate", server)?;
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

/// The revocation lists of `sslcrl` and of every file in `sslcrldir`, read at each
/// connection (as the roots are); a file named must hold at least one.
fn revocation_lists(
    revocation: &Revocation,
    server: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let mut files = Vec::new();
    files.extend(revocation.file.clone());
    if let Some(dir) = &revocation.dir {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            tls_error(
                server,
                format!(
                    "the revocation list directory {} cannot be read: {e}",
                    dir.display()
                ),
            )
        })?;
        // As OpenSSL's hashed directory (what libpq hands sslcrldir to): the lists are
        // the files named HASH.rN; anything else there is not read.
        let mut in_dir: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_hashed_crl_name)
            })
            .filter(|p| p.is_file())
            .collect();
        if in_dir.is_empty() {
            return Err(tls_error(
                server,
                format!(
                    "the revocation list directory {} holds no list under a hashed name (HASH.r0, as `openssl rehash {}` makes)",
                    dir.display(),
                    dir.display()
                ),
            ));
        }
        in_dir.sort();
        files.extend(in_dir);
    }
    let mut crls = Vec::new();
    for path in files {
        let read = CertificateRevocationListDer::pem_file_iter(&path)
            .and_then(|crls| crls.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| unreadable(server, "revocation list", &path, e))?;
        if read.is_empty() {
            return Err(tls_error(
                server,
                format!(
                    "the revocation list file {} holds no PEM revocation list (X509 CRL)",
                    path.display()
                ),
            ));
        }
        crls.extend(read);
    }
    Ok(crls)
}

/// Whether `name` is how OpenSSL's hashed directory names a revocation list: eight
/// lowercase hex digits of the issuer's name hash (the name OpenSSL looks up), `.r`, and a
/// sequence number.
fn is_hashed_crl_name(name: &str) -> bool {
    let Some((hash, n)) = name.split_once(".r") else {
        return false;
    };
    hash.len() == 8
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
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

/// The client's certificate chain and private key, read from their PEM files.
fn client_identity(
    client: &ClientCert,
    server: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs = read_certs(&client.cert, "client certificate", server)?;
    // The file's text holds the key (encrypted or not): wiped when it goes.
    let text = std::fs::read_to_string(&client.key)
        .map(Zeroizing::new)
        .map_err(|e| {
            tls_error(
                server,
                format!(
                    "the private key file {} cannot be read: {e}",
                    client.key.display()
                ),
            )
        })?;
    if text.contains(ENCRYPTED_BEGIN) {
        return Ok((certs, decrypted_key(client, &text, server)?));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(tls_error(
            server,
            format!(
                "the private key file {} is encrypted in OpenSSL's traditional format, which namedmutex cannot read: convert it to encrypted PKCS#8 with `openssl pkcs8 -topk8 -in OLD -out NEW` (it asks for both passwords) and give the password with sslpassword",
                client.key.display()
            ),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(text.as_bytes())
        .map_err(|e| unreadable(server, "private key", &client.key, e))?;
    Ok((certs, key))
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// An encrypted PKCS#8 key (the `ENCRYPTED PRIVATE KEY` block of `text`), decrypted with
/// `sslpassword`.
fn decrypted_key(client: &ClientCert, text: &str, server: &str) -> Result<PrivateKeyDer<'static>> {
    let file = client.key.display();
    let Some(password) = &client.password else {
        return Err(tls_error(
            server,
            format!("the private key file {file} is encrypted: give its password with sslpassword"),
        ));
    };
    let start = text.find(ENCRYPTED_BEGIN).unwrap_or(0);
    let end = text[start..]
        .find(ENCRYPTED_END)
        .map_or(text.len(), |e| start + e + ENCRYPTED_END.len());
    let (_, document) = pkcs8::Document::from_pem(&text[start..end]).map_err(|e| {
        tls_error(
            server,
            format!("the encrypted private key in {file} cannot be read: {e}"),
        )
    })?;
    let decrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .and_then(|info| info.decrypt(password.0.as_bytes()))
        .map_err(|e| {
            tls_error(
                server,
                format!("the private key file {file} cannot be decrypted with sslpassword (is it the right password?): {e}"),
            )
        })?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        decrypted.as_bytes().to_vec(),
    )))
}

/// The certificates of a PEM file (`what` it is, for messages): at least one.
fn read_certs(path: &Path, what: &str, server: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| unreadable(server, what, path, e))?;
    if certs.is_empty() {
        return Err(tls_error(
            server,
            format!("the {what} file {} holds no certificate", path.display()),
        ));
    }
    Ok(certs)
}

fn unreadable(server: &str, what: &str, path: &Path, e: rustls::pki_types::pem::Error) -> Error {
    tls_error(
        server,
        format!("the {what} file {} cannot be read: {e}", path.display()),
    )
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
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
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

#[cfg(test)]
mod tests {
    use super::is_hashed_crl_name;

    #[test]
    fn only_openssl_hashed_names_are_lists() {
        for name in ["24891caf.r0", "0000abcd.r12"] {
            assert!(is_hashed_crl_name(name), "{name}");
        }
        for name in [
            "server-revoked.crl",
            "24891caf.0",
            "24891caf.r",
            "2489caf.r0",
            "README",
            "24891caf.r0x",
            "0000ABCD.r0",
        ] {
            assert!(!is_hashed_crl_name(name), "{name}");
        }
    }
}
