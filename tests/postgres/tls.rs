//! TLS to the server (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`), against the test
//! server of tools/pg-server.sh: its certificate names `localhost` only, signed by
//! `DIR/ca.crt`; its role `tls_only` is refused without TLS, and `cert_only` without the
//! client certificate `DIR/client.crt`.

use crate::support::*;
use namedmutex::{ErrorKind, MutexOptions, WaitStatus};
use std::time::Duration;

/// A scenario: its name and its function.
type Scenario = (&'static str, fn() -> TestResult);

pub fn all() -> Vec<Scenario> {
    if cfg!(not(feature = "postgres-tls")) {
        return vec![("tls::modes_that_need_tls_name_the_feature", needs_feature)];
    }
    vec![
        (
            "tls::verify_full_encrypts_every_session",
            verify_full_encrypts,
        ),
        (
            "tls::verify_full_refuses_a_name_the_certificate_lacks",
            verify_full_wrong_name,
        ),
        ("tls::verify_ca_accepts_the_address", verify_ca_address),
        ("tls::roots_of_another_ca_are_refused", foreign_roots),
        (
            "tls::the_systems_roots_do_not_vouch_for_a_private_ca",
            system_roots,
        ),
        (
            "tls::require_without_roots_encrypts_unchecked",
            require_without_roots,
        ),
        (
            "tls::a_server_that_insists_refuses_disable",
            disable_refused,
        ),
        ("tls::allow_connects_without_tls_first", allow_without_tls),
        (
            "tls::allow_uses_tls_where_the_server_insists",
            allow_with_tls,
        ),
        (
            "tls::allow_refused_both_ways_says_why_each_time",
            allow_refused_both_ways,
        ),
        ("tls::a_missing_root_file_is_named", missing_root_file),
        (
            "tls::an_exiting_process_ends_its_sessions",
            exiting_process_ends_sessions,
        ),
        (
            "tls::a_revocation_list_without_the_server_lets_it_in",
            revocation_list_clean,
        ),
        (
            "tls::a_revoked_server_certificate_is_refused",
            revoked_server,
        ),
        (
            "tls::revocation_lists_are_named_when_missing_or_unchecked",
            revocation_list_errors,
        ),
        (
            "tls::a_cancelled_async_wait_cancels_over_tls",
            async_cancel_over_tls,
        ),
        (
            "tls::direct_negotiation_offers_alpn_postgresql",
            direct_negotiation,
        ),
        (
            "tls::a_client_certificate_logs_in_its_role",
            client_certificate,
        ),
        (
            "tls::a_key_that_is_not_the_certificates_is_refused",
            mismatched_key,
        ),
        (
            "tls::a_role_that_needs_a_certificate_is_refused_without",
            no_client_certificate,
        ),
        (
            "tls::an_encrypted_key_is_read_with_sslpassword",
            encrypted_client_key,
        ),
        (
            "tls::an_encrypted_key_without_its_password_is_named",
            encrypted_key_refusals,
        ),
        #[cfg(unix)]
        ("tls::a_key_others_may_read_is_refused", key_too_open),
    ]
}

/// The test server's URL for role `tls_only` at `host`, with `params`.
fn tls_url(host: &str, params: &str) -> Result<String, String> {
    role_url("tls_only", host, params)
}

/// The test server's URL for `role` at `host`, with `params`.
fn role_url(role: &str, host: &str, params: &str) -> Result<String, String> {
    let port = server_port()?;
    Ok(format!(
        "postgresql://{role}@{host}:{port}/postgres?{params}"
    ))
}

fn ca() -> Result<String, String> {
    Ok(format!("{}/ca.crt", pg_dir()?))
}

/// The URL for `role` at `host` that checks the server against the test CA (`mode`:
/// `verify-ca` or `verify-full`), with `more` parameters after it.
fn verified_url(role: &str, host: &str, mode: &str, more: &str) -> Result<String, String> {
    role_url(
        role,
        host,
        &format!("sslmode={mode}&sslrootcert={}{more}", ca()?),
    )
}

/// Whether every namedmutex session of `role` is encrypted, and how many there are.
fn tls_sessions(role: &str) -> Result<(bool, i64), String> {
    let row = admin()
        .query_one(
            "SELECT coalesce(bool_and(s.ssl), false), count(*) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) \
             WHERE a.usename = $1 AND a.application_name = 'namedmutex'",
            &[&role],
        )
        .ctx("pg_stat_ssl")?;
    Ok((row.get(0), row.get(1)))
}

/// Takes and gives back `name` on `url`, holding it across a second thread's failed try;
/// meanwhile every session of `role` is encrypted.
fn use_mutex(url: &str, name: &str, role: &str) -> TestResult {
    let (m, _) = MutexOptions::new().server(url).create(name).ctx("create")?;
    let m = std::sync::Arc::new(m);
    let g = m.lock().ctx("lock")?;
    ensure(g.fencing_token().is_some(), "no fencing token")?;
    let polled = wait_on_another_thread(&m, Duration::ZERO)?;
    ensure(
        polled == WaitStatus::TimedOut,
        format!("another thread's try while held: {polled:?}"),
    )?;
    let (encrypted, sessions) = tls_sessions(role)?;
    ensure(
        encrypted && sessions >= 2,
        format!("{sessions} sessions of {role}, all encrypted: {encrypted}"),
    )?;
    g.release().ctx("release")
}

/// Processes that take and give back a mutex over TLS and then exit (`exit`, their handle
/// still open), and processes that open one and exit without acquiring it, end every
/// session with Terminate: the server logs no connection reset for them (it did for the
/// handle session, once per process, before `sys/pg/at_exit.rs`; and for the session
/// connected ahead of an acquisition that never came, before `ahead::take_all`).
fn exiting_process_ends_sessions() -> TestResult {
    let app = unique("exit");
    let url = tls_url(
        "127.0.0.1",
        &format!("sslmode=require&application_name={app}"),
    )?;
    let log = ServerLog::mark()?;
    let name = unique("exit");
    for _ in 0..5 {
        let mut client = Client::spawn("once", &url, &name)?;
        client.expect("done")?;
        let status = client.wait_exit()?;
        ensure(status.success(), format!("the client exited with {status}"))?;
    }
    // Processes that open and exit without acquiring: the session connected ahead for
    // their first acquisition (sys/pg/ahead.rs), made or still connecting, ends too.
    for _ in 0..5 {
        let mut client = Client::spawn("ahead", &url, &name)?;
        client.expect("opened")?;
        client.send("exit")?;
        let status = client.wait_exit()?;
        ensure(status.success(), format!("the client exited with {status}"))?;
    }
    // Gone from pg_stat_activity: each backend has logged whatever it logs and ended.
    let mut admin = admin();
    wait_until("the clients' sessions to end", || {
        sessions_of(&mut admin, &app, None) == 0
    })?;
    // Theirs only.
    let resets = log.lines_of(&app, "could not receive data from client")?;
    ensure(
        resets.is_empty(),
        format!("the server logged connection resets: {resets:?}"),
    )
}

fn verify_full_encrypts() -> TestResult {
    let url = verified_url("tls_only", "localhost", "verify-full", "")?;
    use_mutex(&url, &unique("verify-full"), "tls_only")
}

fn verify_full_wrong_name() -> TestResult {
    let url = verified_url("tls_only", "127.0.0.1", "verify-full", "")?;
    expect_refusal(
        &url,
        "verify-full connected to a server whose certificate lacks the name",
        ErrorKind::Io,
        "not valid for name",
    )
}

/// Creating a mutex at `url` fails (`why`: why it must) with `kind`, saying `needle`.
fn expect_refusal(url: &str, why: &str, kind: ErrorKind, needle: &str) -> TestResult {
    let e = refused(url, &unique("refused"), why)?;
    ensure(
        e.kind() == kind && e.to_string().contains(needle),
        format!(
            "expected {kind:?} saying {needle:?}, got {:?}: {e}",
            e.kind()
        ),
    )
}

fn verify_ca_address() -> TestResult {
    let url = verified_url("tls_only", "127.0.0.1", "verify-ca", "")?;
    use_mutex(&url, &unique("verify-ca"), "tls_only")
}

/// The server's own certificate as the only root: no CA of its chain, so refused.
fn foreign_roots() -> TestResult {
    let url = tls_url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}/server.crt", pg_dir()?),
    )?;
    expect_refusal(
        &url,
        "connected with roots that do not include the server's CA",
        ErrorKind::Io,
        "UnknownIssuer",
    )
}

/// `sslrootcert=system`: the operating system's roots, which do not include the test CA
/// (or, on a machine without any, a refusal that says so).
fn system_roots() -> TestResult {
    let url = tls_url("localhost", "sslmode=verify-full&sslrootcert=system")?;
    let e = refused(
        &url,
        &unique("system"),
        "the system's roots vouched for the test server's private CA",
    )?;
    ensure(
        e.to_string().contains("UnknownIssuer")
            || e.to_string()
                .contains("no trusted root of the system could be read"),
        format!("{e}"),
    )
}

fn require_without_roots() -> TestResult {
    use_mutex(
        &tls_url("127.0.0.1", "sslmode=require")?,
        &unique("require"),
        "tls_only",
    )
}

fn disable_refused() -> TestResult {
    expect_refusal(
        &tls_url("127.0.0.1", "sslmode=disable")?,
        "connected without TLS as a role the server insists on TLS for",
        ErrorKind::Io,
        "no encryption",
    )
}

/// `sslmode=allow` as a role the server lets in either way: no TLS (libpq's `allow` tries
/// without first; `prefer`, tried first with TLS, would encrypt on this server).
fn allow_without_tls() -> TestResult {
    admin()
        .batch_execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nm_allow') \
             THEN CREATE ROLE nm_allow LOGIN SUPERUSER; END IF; END $$",
        )
        .ctx("create the role nm_allow")?;
    let url = role_url("nm_allow", "127.0.0.1", "sslmode=allow")?;
    let (m, _) = MutexOptions::new()
        .server(&url)
        .create(&unique("allow"))
        .ctx("create")?;
    let g = m.lock().ctx("lock")?;
    let (encrypted, sessions) = tls_sessions("nm_allow")?;
    ensure(
        !encrypted && sessions >= 1,
        format!("{sessions} sessions of nm_allow, all encrypted: {encrypted}"),
    )?;
    g.release().ctx("release")
}

/// `sslmode=allow` as the role refused without TLS: the try without fails, the one with
/// TLS gets in, and every session is encrypted.
fn allow_with_tls() -> TestResult {
    use_mutex(
        &tls_url("127.0.0.1", "sslmode=allow")?,
        &unique("allow-tls"),
        "tls_only",
    )
}

/// `sslmode=allow` as a role refused both ways (`cert_only` without a certificate): one
/// error that says what each try met, naming the server once.
fn allow_refused_both_ways() -> TestResult {
    let e = refused(
        &role_url("cert_only", "127.0.0.1", "sslmode=allow")?,
        &unique("allow-refused"),
        "cert_only connected without a certificate",
    )?;
    let text = e.to_string();
    ensure(
        text.contains("certificate")
            && text.contains("without TLS:")
            && text.contains("no encryption")
            && text.matches("cannot connect to PostgreSQL").count() == 1,
        format!("the error of allow refused both ways: {text}"),
    )
}

fn missing_root_file() -> TestResult {
    expect_refusal(
        &tls_url(
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/root.pem",
        )?,
        "connected with a root file that does not exist",
        ErrorKind::InvalidParameter,
        "/nonexistent/root.pem",
    )
}

/// `sslcrl` with a list of the CA that revokes nothing: the server is let in, over TLS.
fn revocation_list_clean() -> TestResult {
    let more = format!("&sslcrl={}/nothing-revoked.crl", pg_dir()?);
    let url = verified_url("tls_only", "localhost", "verify-full", &more)?;
    use_mutex(&url, &unique("crl-clean"), "tls_only")
}

/// A list that revokes the server's certificate, as a file (`sslcrl`) or in a directory
/// (`sslcrldir`), and under `verify-ca` too: refused, saying why.
fn revoked_server() -> TestResult {
    let d = pg_dir()?;
    for (mode, more) in [
        ("verify-full", format!("&sslcrl={d}/server-revoked.crl")),
        ("verify-ca", format!("&sslcrldir={d}/crl-dir")),
    ] {
        expect_refusal(
            &verified_url("tls_only", "localhost", mode, &more)?,
            &format!("{mode} connected to a server whose certificate is revoked ({more})"),
            ErrorKind::Io,
            "Revoked",
        )?;
    }
    Ok(())
}

/// A list that does not exist, or one where no roots check the chain (so it could not be
/// applied), is an error that names it, not a list silently ignored.
fn revocation_list_errors() -> TestResult {
    expect_refusal(
        &verified_url(
            "tls_only",
            "localhost",
            "verify-full",
            "&sslcrl=/nonexistent/revoked.crl",
        )?,
        "connected with a revocation list that does not exist",
        ErrorKind::InvalidParameter,
        "/nonexistent/revoked.crl",
    )?;
    expect_refusal(
        &tls_url(
            "localhost",
            &format!("sslmode=require&sslcrl={}/server-revoked.crl", pg_dir()?),
        )?,
        "connected with a revocation list but no roots to check it with",
        ErrorKind::InvalidParameter,
        "sslrootcert",
    )?;
    // A directory without a list under a hashed name (its files are a CA database) is
    // refused, saying how to make one.
    expect_refusal(
        &verified_url(
            "tls_only",
            "localhost",
            "verify-full",
            &format!("&sslcrldir={}/crl-db", pg_dir()?),
        )?,
        "connected with a revocation list directory that holds no hashed list",
        ErrorKind::InvalidParameter,
        "openssl rehash",
    )?;
    // A file that is not a revocation list (here: a certificate) is named too.
    expect_refusal(
        &verified_url(
            "tls_only",
            "localhost",
            "verify-full",
            &format!("&sslcrl={}/ca.crt", pg_dir()?),
        )?,
        "connected with a revocation list file that holds none",
        ErrorKind::InvalidParameter,
        "ca.crt",
    )
}

/// A dropped `lock_async` future sends its cancel request with the session's TLS settings
/// (with `sslmode=require` the `postgres` crate sends none without TLS), the server cancels
/// the wait, and the mutex still works for everyone.
fn async_cancel_over_tls() -> TestResult {
    // Its sessions log at DEBUG1 (tls_only is a superuser, as it must be to set that), where
    // wait_granted says it answered a cancel: the proof that the cancel arrived.
    let app = unique("cancel-tls");
    let url = verified_url(
        "tls_only",
        "localhost",
        "verify-full",
        &format!("&options=-c%20log_min_messages%3Ddebug1&application_name={app}"),
    )?;
    let (m, _) = MutexOptions::new()
        .server(&url)
        .create(&unique("cancel"))
        .ctx("create")?;
    let m = std::sync::Arc::new(m);
    let g = m.lock().ctx("lock")?;
    let waiter = m.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ctx("runtime")?;
    let log = ServerLog::mark()?;
    let timed_out = rt.block_on(async move {
        tokio::time::timeout(Duration::from_millis(300), waiter.lock_async())
            .await
            .is_err()
    });
    ensure(timed_out, "the async wait ended while the mutex was held")?;
    // Answered by wait_granted (DEBUG1), or, in the rare race where the cancel reaches the
    // statement before its function starts, failed with an ERROR: either way it arrived.
    // (How rare: session::dropped_async_waits_leave_no_error_in_the_log.)
    wait_until("the server cancels the dropped wait's statement", || {
        let answered = log.lines_of(&app, "namedmutex: the wait for mutex");
        let failed = log.lines_of(&app, "canceling statement due to user request");
        answered.is_ok_and(|l| !l.is_empty()) || failed.is_ok_and(|l| !l.is_empty())
    })?;
    drop(rt);
    g.release().ctx("release")?;
    let again = m.clone();
    let s = std::thread::spawn(move || {
        let s = again.wait(Some(watchdog()));
        if let Ok(WaitStatus::Acquired) = s {
            again.release()?;
        }
        s
    })
    .join()
    .map_err(|_| "the second waiter panicked".to_string())?
    .ctx("wait after the cancel")?;
    ensure(
        s == WaitStatus::Acquired,
        format!("after the cancel: {s:?}"),
    )
}

/// Without the `postgres-tls` feature, a mode that needs TLS is refused, naming it.
fn needs_feature() -> TestResult {
    expect_refusal(
        &tls_url("127.0.0.1", "sslmode=require")?,
        "sslmode=require connected in a build without TLS",
        ErrorKind::Unsupported,
        "postgres-tls",
    )
}

/// `cert_only` logs in with its certificate (`cert` authentication checks its name).
fn client_certificate() -> TestResult {
    let d = pg_dir()?;
    let client = format!("&sslcert={d}/client.crt&sslkey={d}/client.key");
    let url = verified_url("cert_only", "localhost", "verify-full", &client)?;
    use_mutex(&url, &unique("client-cert"), "cert_only")
}

fn no_client_certificate() -> TestResult {
    let url = verified_url("cert_only", "localhost", "verify-full", "")?;
    expect_refusal(
        &url,
        "cert_only logged in without a client certificate",
        ErrorKind::Io,
        "requires a valid client certificate",
    )
}

/// A client certificate with another certificate's key (the server's): refused before any
/// handshake, saying the two do not match.
fn mismatched_key() -> TestResult {
    let d = pg_dir()?;
    let client = format!("&sslcert={d}/client.crt&sslkey={d}/server.key");
    let url = verified_url("cert_only", "localhost", "verify-full", &client)?;
    expect_refusal(
        &url,
        "a client certificate with another key logged in",
        ErrorKind::InvalidParameter,
        "server.key is not the key of the client certificate",
    )
}

/// The client key encrypted (PKCS#8), with its password in `sslpassword`: the role that
/// needs the certificate logs in, and the password is in no message.
fn encrypted_client_key() -> TestResult {
    let d = pg_dir()?;
    let client =
        format!("&sslcert={d}/client.crt&sslkey={d}/client-enc.key&sslpassword=key-secret");
    let url = verified_url("cert_only", "localhost", "verify-full", &client)?;
    use_mutex(&url, &unique("encrypted-key"), "cert_only")
}

/// No password, a wrong one, or a key in OpenSSL's traditional encrypted format: refused
/// before connecting, naming the file and what to do, never showing the password.
fn encrypted_key_refusals() -> TestResult {
    let d = pg_dir()?;
    for (key, password, needle) in [
        (
            "client-enc.key",
            "",
            "is encrypted: give its password with sslpassword",
        ),
        (
            "client-enc.key",
            "&sslpassword=wrong-secret",
            "cannot be decrypted with sslpassword",
        ),
        (
            "client-trad.key",
            "&sslpassword=key-secret",
            "openssl pkcs8 -topk8",
        ),
    ] {
        let client = format!("&sslcert={d}/client.crt&sslkey={d}/{key}{password}");
        let url = verified_url("cert_only", "localhost", "verify-full", &client)?;
        let e = refused(
            &url,
            &unique("encrypted-refused"),
            "a key that cannot be used was used",
        )?;
        let text = e.to_string();
        ensure(
            e.kind() == ErrorKind::InvalidParameter
                && text.contains(needle)
                && text.contains(key)
                && !text.contains("secret"),
            format!(
                "{key} {password:?}: expected InvalidParameter saying {needle:?}, got {:?}: {text}",
                e.kind()
            ),
        )?;
    }
    Ok(())
}

/// A copy of the client key that others may read: refused before connecting, naming it.
#[cfg(unix)]
fn key_too_open() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let d = pg_dir()?;
    let open_key = format!("{d}/client-open-{}.key", std::process::id());
    std::fs::copy(format!("{d}/client.key"), &open_key).ctx("copy the key")?;
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).ctx("chmod 644")?;
    let client = format!("&sslcert={d}/client.crt&sslkey={open_key}");
    let url = verified_url("cert_only", "localhost", "verify-full", &client)?;
    let result = expect_refusal(
        &url,
        "a private key that others may read was used",
        ErrorKind::InvalidParameter,
        "may be read by others (mode 644)",
    );
    let _ = std::fs::remove_file(&open_key);
    result
}

/// `sslnegotiation=direct` (PostgreSQL 17): TLS from the first byte, offering the ALPN
/// protocol "postgresql", without which PostgreSQL 17 refuses the connection. The test
/// server is PostgreSQL 15, so tools/direct-tls-proxy.py stands in front of it as such a
/// server. With `sslmode=prefer` direct negotiation is refused before connecting, as libpq
/// refuses it (a fallback to no TLS cannot follow a handshake sent at once).
fn direct_negotiation() -> TestResult {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let d = pg_dir()?;
    let server_port = server_port()?;
    let mut proxy = Command::new("python3")
        .args([
            "tools/direct-tls-proxy.py",
            &format!("{d}/server.crt"),
            &format!("{d}/server.key"),
            &server_port,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ctx("start tools/direct-tls-proxy.py")?;
    // Its lines (its port, then one per client), read on a thread so every wait is bounded.
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let out = BufReader::new(proxy.stdout.take().ok_or("no proxy stdout")?);
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let result = (|| -> TestResult {
        let port = lines.recv_timeout(watchdog()).ctx("the proxy's port")?;
        let direct = format!(
            "postgresql://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={d}/ca.crt&sslnegotiation=direct"
        );
        let name = unique("direct");
        let (m, _) = MutexOptions::new()
            .server(&direct)
            .create(&name)
            .ctx("create over direct TLS")?;
        let g = m.lock().ctx("lock over direct TLS")?;
        g.release().ctx("release over direct TLS")?;
        let first = lines.recv_timeout(watchdog()).ctx("the proxy's answer")?;
        ensure(first == "accepted", format!("the proxy said: {first}"))?;
        let weak = direct.replace("sslmode=verify-full", "sslmode=prefer");
        let e = MutexOptions::new()
            .server(&weak)
            .create(&name)
            .err()
            .ok_or("sslmode=prefer with sslnegotiation=direct connected")?;
        let text = e.to_string();
        ensure(
            text.contains("sslnegotiation=direct") && text.contains("prefer"),
            format!("prefer with direct: {text}"),
        )
    })();
    drop(proxy.stdin.take()); // the proxy ends when its input closes
    let ended = wait_until("the proxy to end", || {
        matches!(proxy.try_wait(), Ok(Some(_)))
    });
    if ended.is_err() {
        let _ = proxy.kill();
        let _ = proxy.wait();
    }
    result.and(ended)
}
