//! The scenarios, one function each.

use crate::support::*;
use namedmutex::{ErrorKind, MutexOptions, NamedMutex, WaitAny, WaitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A scenario: its name and its function.
type Scenario = (&'static str, fn() -> TestResult);

pub fn all() -> Vec<Scenario> {
    vec![
        ("kill::holder_is_abandoned_exactly_once", holder_killed),
        ("kill::waiter_in_the_queue_blocks_nobody", waiter_killed),
        ("kill::while_releasing_never_reports_twice", releaser_killed),
        (
            "kill::wait_any_wakes_after_the_owner_dies",
            wait_any_after_kill,
        ),
        (
            "kill::a_new_object_is_free_while_the_last_owners_session_ends",
            new_object_while_the_owner_ends,
        ),
        ("session::terminated_owner_learns_it_lost", terminated_owner),
        (
            "session::timed_out_waits_leave_no_error_in_the_log",
            timed_out_waits_log_nothing,
        ),
        (
            "session::dropped_async_waits_leave_no_error_in_the_log",
            dropped_waits_log_nothing,
        ),
        (
            "session::a_wait_dropped_as_it_is_granted_leaves_no_error_in_the_log",
            dropped_as_granted_log_nothing,
        ),
        (
            "session::waits_cancelled_while_they_wait_leave_no_error_in_the_log",
            cancelled_in_the_wait_log_nothing,
        ),
        (
            "session::a_wait_dropped_while_it_claims_is_not_cancelled",
            dropped_while_claiming,
        ),
        (
            "session::the_first_acquisition_takes_the_session_connected_ahead",
            connected_ahead,
        ),
        (
            "session::a_session_connected_ahead_and_not_taken_ends",
            connected_ahead_unused,
        ),
        (
            "session::server_restart_every_holder_learns",
            server_restart,
        ),
        (
            "fencing::tokens_increase_across_a_server_crash",
            crash_keeps_tokens_increasing,
        ),
        (
            "fencing::the_sequence_jumps_only_after_a_crash",
            jumps_only_after_a_crash,
        ),
        ("session::network_partition_releases_in_time", partition),
        (
            "fencing::tokens_strictly_increase_across_processes",
            fencing_tokens,
        ),
        ("input::unparsable_url", unparsable_url),
        ("input::server_down", server_down),
        ("input::role_without_grants", role_without_grants),
        ("input::roles_have_their_own_local_namespace", second_role),
        ("input::future_schema_version_is_refused", future_schema),
        (
            "input::first_use_leaves_no_error_in_the_log",
            first_use_logs_no_error,
        ),
        (
            "input::older_functions_are_upgraded_by_their_owner",
            older_functions,
        ),
        (
            "input::lock_down_keeps_ungranted_roles_off_the_keys",
            lock_down,
        ),
        ("input::transaction_pooler_is_refused", transaction_pooler),
        (
            "inspect::info_counts_handles_waiters_and_the_owner",
            info_counts,
        ),
        (
            "input::a_standby_is_passed_over_for_the_primary",
            standby_passed_over,
        ),
    ]
}

/// An owner killed with SIGKILL: the next acquirer is told once, the one after is not.
fn holder_killed() -> TestResult {
    let name = unique("holder");
    let (m, _) = opts().create(&name).ctx("create")?;
    let mut c = Client::spawn("hold", &url(), &name)?;
    c.expect("held")?;
    ensure(
        m.wait(Some(Duration::ZERO)).ctx("poll")? == WaitStatus::TimedOut,
        "the mutex was free while the client held it",
    )?;
    let killed = Instant::now();
    c.kill()?;
    let s = m.wait(Some(watchdog())).ctx("wait after the kill")?;
    let latency = killed.elapsed();
    ensure(s == WaitStatus::Abandoned, format!("after SIGKILL: {s:?}"))?;
    m.release().ctx("release")?;
    let s = m.wait(Some(watchdog())).ctx("second wait")?;
    ensure(s == WaitStatus::Acquired, format!("second acquirer: {s:?}"))?;
    m.release().ctx("release")?;
    println!("    note: SIGKILL to abandoned acquisition: {latency:?}");
    Ok(())
}

/// A waiter killed while queued on the server: no false abandonment, nobody stuck.
fn waiter_killed() -> TestResult {
    let name = unique("waiter");
    let (m, _) = opts().create(&name).ctx("create")?;
    m.wait(None).ctx("own it")?;
    let mut admin = admin();
    let before = ownership_locks(&mut admin, false);
    let mut c = Client::spawn("wait", &url(), &name)?;
    c.expect("waiting")?;
    wait_until("the client queued on the server", || {
        ownership_locks(&mut admin, false) > before
    })?;
    c.kill()?;
    m.release().ctx("release")?;
    // Another thread (a session of its own) acquires: a plain acquisition, at once.
    let m = Arc::new(m);
    let s = acquire_on_another_thread(&m).ctx("wait after the waiter died")?;
    ensure(
        s == WaitStatus::Acquired,
        format!("after a killed waiter: {s:?}"),
    )
}

/// Owners killed at random points of a lock/release loop: each kill gives at most one
/// abandonment, and the acquisition after it is plain.
fn releaser_killed() -> TestResult {
    let name = unique("cycle");
    let (m, _) = opts().create(&name).ctx("create")?;
    let mut abandoned = 0;
    for round in 0..6 {
        let mut c = Client::spawn("cycle", &url(), &name)?;
        c.expect("cycling")?;
        std::thread::sleep(Duration::from_millis(20 + 13 * round));
        c.kill()?;
        let s = m.wait(Some(watchdog())).ctx("wait after the kill")?;
        ensure(s != WaitStatus::TimedOut, "stuck after a kill")?;
        if s == WaitStatus::Abandoned {
            abandoned += 1;
        }
        m.release().ctx("release")?;
        wait_expecting(
            &m,
            WaitStatus::Acquired,
            &format!("round {round}: the acquisition after the first"),
        )?;
    }
    println!("    note: 6 kills in a lock/release loop, {abandoned} while owning");
    Ok(())
}

/// wait-any on two mutexes whose owner process is killed: woken, told it was abandoned.
fn wait_any_after_kill() -> TestResult {
    let (a_name, b_name) = (unique("any-a"), unique("any-b"));
    let (a, _) = opts().create(&a_name).ctx("create a")?;
    let (b, _) = opts().create(&b_name).ctx("create b")?;
    let mut ca = Client::spawn("hold", &url(), &a_name)?;
    ca.expect("held")?;
    let mut cb = Client::spawn("hold", &url(), &b_name)?;
    cb.expect("held")?;
    let r = namedmutex::wait_any(&[&a, &b], Some(Duration::from_millis(100))).ctx("wait_any")?;
    ensure(r == WaitAny::TimedOut, format!("both held: {r:?}"))?;
    cb.kill()?;
    let r = namedmutex::wait_any(&[&a, &b], Some(watchdog())).ctx("wait_any")?;
    ensure(
        r == WaitAny::Abandoned(1),
        format!("after b's owner died: {r:?}"),
    )?;
    b.release().ctx("release b")?;
    ca.kill()?;
    let r = namedmutex::wait_all(&[&a, &b], Some(watchdog())).ctx("wait_all")?;
    ensure(
        r == WaitStatus::Abandoned,
        format!("wait_all after a's owner died: {r:?}"),
    )?;
    a.release().ctx("a")?;
    b.release().ctx("b")
}

/// `pg_terminate_backend` of the owner's session: the owner learns it lost ownership
/// (`still_owned`, then `OwnershipLost` on release); the next owner is told `Abandoned`.
fn terminated_owner() -> TestResult {
    let name = unique("terminate");
    let (m, _) = opts().create(&name).ctx("create")?;
    let g = m.lock().ctx("lock")?;
    ensure(g.still_owned().ctx("still_owned")?, "not owned after lock")?;
    let mut admin = admin();
    let pid = owner_backend(&mut admin, &name).ok_or("no owner session on the server")?;
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .ctx("terminate")?;
    wait_until("the owner's session ended", || {
        owner_backend(&mut admin, &name).is_none()
    })?;
    let m2 = Arc::new(opts().open(&name).ctx("open")?);
    let s = acquire_on_another_thread(&m2).ctx("wait")?;
    ensure(s == WaitStatus::Abandoned, format!("next owner: {s:?}"))?;
    expect_lost(g, "after termination")?;
    // The thread can use the server again.
    let s = m.wait(Some(watchdog())).ctx("wait again")?;
    ensure(s == WaitStatus::Acquired, format!("afterwards: {s:?}"))?;
    m.release().ctx("release")
}

/// A server restart while a thread and a process hold mutexes: both lose them, the next
/// owners are told `Abandoned`, and fencing tokens keep increasing.
fn server_restart() -> TestResult {
    let (mine, theirs) = (unique("restart-mine"), unique("restart-theirs"));
    let (m, _) = opts().create(&mine).ctx("create")?;
    let g = m.lock().ctx("lock")?;
    let before = g.fencing_token().ok_or("no fencing token")?;
    let mut c = Client::spawn("hold", &url(), &theirs)?;
    let their_token = token_of(&c.expect("held")?)?;
    pg_server("restart")?;
    expect_lost(g, "after the restart")?;
    // This process's handle session reconnects and takes its handles again.
    let (m, _) = opts().create(&mine).ctx("create again")?;
    let g = m.lock().ctx("lock again")?;
    ensure(
        g.abandoned(),
        "the next owner of a mutex held across the restart was not told",
    )?;
    let after = g.fencing_token().ok_or("no token")?;
    ensure(
        after > before && after > their_token,
        format!("tokens {before}, {their_token} then {after}"),
    )?;
    drop(g);
    let (t, _) = opts()
        .keep_abandoned(true)
        .create(&theirs)
        .ctx("create theirs")?;
    let s = t.wait(Some(watchdog())).ctx("wait theirs")?;
    ensure(
        s == WaitStatus::Abandoned,
        format!("the process's mutex after the restart: {s:?}"),
    )?;
    t.release().ctx("release")?;
    drop(c);
    Ok(())
}

/// A server crash (stopped at once: no shutdown checkpoint, and WAL still in its memory is
/// lost) while a thread claims as fast as it can: every token after the crash is beyond
/// every token handed out before it, with `synchronous_commit` on (each claim waits for its
/// WAL) and off (each new session starts beyond a durable jump: functions.sql,
/// `fencing_gap`). With it on, a mutex held across the crash is reported `Abandoned` to its
/// next owner, and its holder learns it lost it.
fn crash_keeps_tokens_increasing() -> TestResult {
    for (commit, options) in [
        ("on", ""),
        ("off", "?options=-c%20synchronous_commit%3Doff"),
    ] {
        let server = format!("{}{options}", url());
        let name = unique(&format!("crash-{commit}"));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (claimer_server, claimer_name) = (server.clone(), name.clone());
        // Claims until the server goes away; answers the highest token it was given.
        let claimer = std::thread::spawn(move || -> Result<(u64, u32), String> {
            let (m, _) = MutexOptions::new()
                .server(&claimer_server)
                .create(&claimer_name)
                .ctx("create")?;
            let (mut highest, mut claims) = (0, 0u32);
            let deadline = Instant::now() + watchdog();
            while let Ok(g) = m.lock() {
                highest = highest.max(g.fencing_token().ok_or("no fencing token")?);
                claims += 1;
                if claims == 200 {
                    let _ = ready_tx.send(());
                }
                // The crash may come between the claim and its release: then this is the
                // end, as a failed lock is (the loop never reconnects after the crash).
                if g.release().is_err() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err("the server never went away".into());
                }
            }
            Ok((highest, claims))
        });
        // With commits that wait for their WAL, a claim survives the crash.
        let held = (commit == "on")
            .then(|| -> Result<_, String> {
                let (h, _) = MutexOptions::new()
                    .server(&server)
                    .create(&format!("{name}-held"))
                    .ctx("create the held mutex")?;
                Ok(h)
            })
            .transpose()?;
        ready_rx
            .recv_timeout(watchdog())
            .ctx(&format!("200 claims with synchronous_commit {commit}"))?;
        // Taken just before the crash: only its own commit can have made it durable.
        let held_guard = held
            .as_ref()
            .map(|h| h.lock().ctx("lock the held mutex"))
            .transpose()?;
        pg_server("crash")?;
        if let (Some(h), Some(g)) = (&held, held_guard) {
            expect_lost(g, "after the crash")?;
            let g = h.lock().ctx("lock the held mutex after the crash")?;
            ensure(
                g.abandoned(),
                "the next owner of a mutex held across the crash was not told",
            )?;
            g.release().ctx("release the held mutex")?;
        }
        let (highest, claims) = claimer.join().map_err(|_| "the claimer panicked")??;
        let (m, _) = MutexOptions::new()
            .server(&server)
            .create(&name)
            .ctx("create after the crash")?;
        let g = m.lock().ctx("lock after the crash")?;
        let after = g.fencing_token().ok_or("no token after the crash")?;
        ensure(
            after > highest,
            format!(
                "synchronous_commit {commit}: token {after} after the crash, {highest} before it ({claims} claims)"
            ),
        )?;
        g.release().ctx("release")?;
    }
    Ok(())
}

/// The fencing sequence's durable jump (functions.sql, `fencing_gap`) comes once, in the
/// first session after a crash: new sessions and a clean restart leave the sequence where it
/// was (before revision 4, every session jumped it, one at a time).
fn jumps_only_after_a_crash() -> TestResult {
    const JUMP: u64 = 1 << 24;
    let name = unique("jump");
    // A token taken on a new thread: a new session, which calls fencing_gap as it starts.
    let token = || -> Result<u64, String> {
        let name = name.clone();
        std::thread::spawn(move || -> Result<u64, String> {
            let (m, _) = opts().create(&name).ctx("create")?;
            let g = m.lock().ctx("lock")?;
            let token = g.fencing_token().ok_or("no fencing token")?;
            g.release().ctx("release")?;
            Ok(token)
        })
        .join()
        .map_err(|_| "the session's thread panicked")?
    };
    let step = |before: u64, after: u64, jumped: bool, when: &str| -> TestResult {
        ensure(
            after > before && (after - before >= JUMP) == jumped,
            format!(
                "{when}: token {before}, then {after}: {}",
                if jumped { "no jump" } else { "a jump" }
            ),
        )
    };
    let first = token()?;
    let second = token()?;
    step(first, second, false, "a second session")?;
    pg_server("restart")?;
    let clean = token()?;
    step(second, clean, false, "after a clean restart")?;
    pg_server("crash")?;
    let crashed = token()?;
    step(clean, crashed, true, "after a crash")?;
    let next = token()?;
    step(crashed, next, false, "a second session after the crash")
}

/// A client whose network goes down while it holds: the server releases within the
/// documented time (keepalives 2 s + 2 × 1 s, or the 5 s user timeout), and the next owner
/// is told `Abandoned`.
fn partition() -> TestResult {
    let name = unique("partition");
    let (m, _) = opts().create(&name).ctx("create")?;
    let port = server_port()?;
    // A veth pair and a /24 of this process's own (pg-server.sh trusts 10.213.0.0/16), so
    // that another run of this test on the machine meanwhile is not disturbed.
    let tag = std::process::id();
    let (host_if, ns_if) = (format!("nmv{tag}a"), format!("nmv{tag}b"));
    let net = tag % 256;
    let host_addr = format!("10.213.{net}.1/24");
    let netns_url = format!("postgresql://postgres@10.213.{net}.1:{port}/postgres");
    let ip = |args: &[&str]| -> TestResult {
        let ok = std::process::Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success());
        ensure(ok, format!("ip {args:?} failed"))
    };
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &host_if])
        .stderr(std::process::Stdio::null())
        .status();
    let mut cmd = std::process::Command::new("unshare");
    cmd.arg("--net")
        .env("NM_NETNS_IF", &ns_if)
        .env("NM_NETNS_ADDR", format!("10.213.{net}.2/24"));
    let mut c = Client::spawn_with(cmd, "netns-hold", &netns_url, &name)?;
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
    ])?;
    ip(&["link", "set", &ns_if, "netns", &c.pid().to_string()])?;
    ip(&["addr", "add", &host_addr, "dev", &host_if])?;
    ip(&["link", "set", &host_if, "up"])?;
    let held = c.expect("held");
    if held.is_err() {
        let _ = ip(&["link", "del", &host_if]);
    }
    held?;
    let cut = Instant::now();
    ip(&["link", "set", &host_if, "down"])?;
    let s = m
        .wait(Some(Duration::from_secs(15)))
        .ctx("wait after the cut");
    let released = cut.elapsed();
    let _ = ip(&["link", "del", &host_if]);
    let s = s?;
    ensure(
        s == WaitStatus::Abandoned,
        format!("after the partition: {s:?} ({released:?})"),
    )?;
    m.release().ctx("release")?;
    println!("    note: network cut to abandoned acquisition: {released:?}");
    ensure(
        released < Duration::from_secs(8),
        format!("released only after {released:?}"),
    )
}

/// Fencing tokens of one name over acquisitions by this process and by others, killed or
/// not: strictly increasing.
fn fencing_tokens() -> TestResult {
    let name = unique("fence");
    let (m, _) = opts().create(&name).ctx("create")?;
    let mut seen = Vec::new();
    for round in 0..4 {
        let g = m.lock().ctx("lock")?;
        seen.push(g.fencing_token().ok_or("no token")?);
        drop(g);
        let mut c = Client::spawn("hold", &url(), &name)?;
        seen.push(token_of(&c.expect("held")?)?);
        if round % 2 == 0 {
            c.kill()?;
        } else {
            drop(c);
        }
    }
    let g = m.lock().ctx("lock")?;
    seen.push(g.fencing_token().ok_or("no token")?);
    ensure(
        seen.windows(2).all(|w| w[0] < w[1]),
        format!("tokens not strictly increasing: {seen:?}"),
    )
}

fn unparsable_url() -> TestResult {
    let e = refused(
        "postgresql://u:secret@host:notaport/db",
        "x",
        "created with a bad URL",
    )?;
    ensure(e.kind() == ErrorKind::InvalidParameter, format!("{e}"))?;
    ensure(
        !e.to_string().contains("secret"),
        format!("the password leaked: {e}"),
    )
}

fn server_down() -> TestResult {
    let e = refused(
        "postgresql://postgres@127.0.0.1:1/postgres",
        "x",
        "created on a server that is down",
    )?;
    ensure(
        e.kind() == ErrorKind::Io && e.to_string().contains("cannot connect to PostgreSQL at"),
        format!("{e}"),
    )
}

/// A role that was not granted namedmutex_user: a clear refusal naming the grant.
fn role_without_grants() -> TestResult {
    let mut admin = admin();
    // The schema exists (this makes it), so the stranger meets the grant check.
    drop(opts().create(&unique("schema")).ctx("install")?);
    ensure_role(&mut admin, "nm_stranger", false)?;
    let stranger = url().replacen("postgres@", "nm_stranger@", 1);
    let e = refused(
        &stranger,
        &unique("stranger"),
        "a role without grants created a mutex",
    )?;
    ensure(
        e.kind() == ErrorKind::AccessDenied
            && e.to_string()
                .contains("GRANT namedmutex_user TO nm_stranger"),
        format!("{e}"),
    )?;
    // Nor can it take a namedmutex lock key through the functions.
    let mut direct = postgres::Client::connect(&stranger, postgres::NoTls).ctx("connect")?;
    let r = direct.query(
        "SELECT namedmutex.try_acquire(1, gen_random_uuid(), 'h', 1, 1)",
        &[],
    );
    ensure(r.is_err(), "the stranger called namedmutex.try_acquire")
}

/// Two granted roles: `Local\` is per role; a private `Global\` object names its creator.
fn second_role() -> TestResult {
    let mut admin = admin();
    drop(opts().create(&unique("schema")).ctx("install")?);
    ensure_role(&mut admin, "nm_other", true)?;
    let other = url().replacen("postgres@", "nm_other@", 1);
    let name = unique("role");
    let (_mine, _) = opts().create(&name).ctx("create mine")?;
    let (_theirs, existed) = MutexOptions::new()
        .server(&other)
        .create(&name)
        .ctx("create theirs")?;
    ensure(!existed, "Local\\ of another role was the same object")?;
    let global = format!("Global\\{}", unique("private"));
    let (_g, _) = opts().create(&global).ctx("create Global")?;
    let e = MutexOptions::new()
        .server(&other)
        .open(&global)
        .err()
        .ok_or("another role opened a private Global object")?;
    ensure(
        e.kind() == ErrorKind::AccessDenied && e.to_string().contains("created by role postgres"),
        format!("{e}"),
    )?;
    let open = format!("Global\\{}", unique("open"));
    let (_o, _) = opts()
        .security(namedmutex::Security::Everyone)
        .create(&open)
        .ctx("create Everyone")?;
    let (_o2, existed) = MutexOptions::new()
        .server(&other)
        .create(&open)
        .ctx("open Everyone")?;
    ensure(existed, "an Everyone object was not shared")
}

/// Makes the login role `name` if it does not exist, granted namedmutex_user or not.
fn ensure_role(admin: &mut postgres::Client, name: &str, granted: bool) -> TestResult {
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
                     CREATE ROLE {name} LOGIN;
                 END IF;
             END $$;"
        ))
        .ctx("create role")?;
    if granted {
        admin
            .batch_execute(&format!("GRANT namedmutex_user TO {name}"))
            .ctx("grant")?;
    }
    Ok(())
}

/// A database set up with `--lock-down`: a role without grants cannot take a namedmutex
/// lock key with PostgreSQL's own functions; a granted role still uses namedmutex there.
fn lock_down() -> TestResult {
    let mut admin = admin();
    drop(opts().create(&unique("schema")).ctx("install")?);
    ensure_role(&mut admin, "nm_stranger", false)?;
    ensure_role(&mut admin, "nm_other", true)?;
    let db_url = fresh_database(&mut admin, "nm_locked")?;
    namedmutex::setup_server(&db_url, true).ctx("setup --lock-down")?;
    let stranger = db_url.replacen("postgres@", "nm_stranger@", 1);
    let mut direct = postgres::Client::connect(&stranger, postgres::NoTls).ctx("connect")?;
    for sql in [
        "SELECT pg_advisory_lock(1852665601, 1)",
        "SELECT pg_try_advisory_lock(7930462161551179777)",
        "SELECT pg_advisory_xact_lock(1852665601, 1)",
    ] {
        let e = direct
            .query(sql, &[])
            .err()
            .ok_or_else(|| format!("a role without grants ran {sql}"))?;
        ensure(
            e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            format!("{sql}: {e}"),
        )?;
    }
    let other = db_url.replacen("postgres@", "nm_other@", 1);
    take_and_release(&other, "locked", "a granted role")
}

/// Waits that time out, a thread's and an async one (which waits in 200 ms slices), leave
/// no ERROR in the server's log: with revision 4's `wait`, each slice and each timeout
/// failed its statement with "canceling statement due to lock timeout".
fn timed_out_waits_log_nothing() -> TestResult {
    let (m, _) = opts().create(&unique("quiet")).ctx("create")?;
    let m = Arc::new(m);
    let g = m.lock().ctx("lock")?;
    let log = ServerLog::mark()?;
    let waited = wait_on_another_thread(&m, Duration::from_millis(300))?;
    ensure(
        waited == WaitStatus::TimedOut,
        format!("a thread's wait while held: {waited:?}"),
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ctx("runtime")?;
    let waiter = m.clone();
    let got = rt.block_on(async move {
        waiter
            .lock_async_for(Duration::from_millis(900))
            .await
            .map(|g| g.is_some())
    });
    ensure(
        matches!(got, Ok(false)),
        format!("an async wait while held: {got:?}"),
    )?;
    g.release().ctx("release")?;
    log.expect_none("ERROR")
}

/// Async waits dropped at every moment of their life (before the first statement, during
/// the look at the mutex, in the wait itself): each stops, the mutex still works, and the
/// server logs no ERROR (it logged `canceling statement due to user request` for each before
/// revision 6; 83 lines with the function's handler removed). A cancel request reaches a
/// wait statement only, and only once its function answers a cancel (`cancel.rs`).
fn dropped_waits_log_nothing() -> TestResult {
    // From 0 to 19.9 ms, by 0.1 ms: a new session's first statements take about that long.
    held_waits_dropped_quietly("dropped", 200, |i| Duration::from_micros(i * 100))
}

/// Async waits dropped after the settle time, while they wait in the server's queue: each
/// gets a cancel request, which the server delivers as two signals (the backend's pid, then
/// its process group). The second may land after the function caught the first: it must
/// not fail the statement either (functions.sql revision 8, `wait_granted`).
fn cancelled_in_the_wait_log_nothing() -> TestResult {
    // Past the settle time (50 ms) and the grace time (20 ms after the drop), so that the
    // request reaches the wait itself: 70 to 77.9 ms, by 0.1 ms.
    held_waits_dropped_quietly("cancelled", 80, |i| Duration::from_micros(70_000 + i * 100))
}

/// `rounds` async waits for a mutex this thread holds, wait `i` dropped `after(i)` after it
/// began: each stops, the mutex works after, and the server logs no ERROR for this test's
/// sessions (its URL names its application).
fn held_waits_dropped_quietly(tag: &str, rounds: u64, after: fn(u64) -> Duration) -> TestResult {
    let (app, m) = quiet_mutex(tag)?;
    let g = m.lock().ctx("lock")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ctx("runtime")?;
    let log = ServerLog::mark()?;
    for i in 0..rounds {
        let waiter = m.clone();
        let after = after(i);
        let ended = rt.block_on(async move {
            tokio::time::timeout(after, waiter.lock_async())
                .await
                .is_ok()
        });
        ensure(
            !ended,
            format!("drop {i}: the wait ended while the mutex was held"),
        )?;
    }
    drop(rt);
    g.release().ctx("release")?;
    let waited = wait_on_another_thread(&m, watchdog())?;
    ensure(
        waited == WaitStatus::Acquired,
        format!("after the dropped waits: {waited:?}"),
    )?;
    no_error_logged(&log, &app, &format!("{rounds} dropped waits"))
}

/// A mutex on the server whose sessions name the application returned (`unique(tag)`), so
/// that a test can tell its own lines in the server's log.
fn quiet_mutex(tag: &str) -> Result<(String, Arc<NamedMutex>), String> {
    let app = unique(tag);
    let url = format!("{}?application_name={app}", url());
    let (m, _) = MutexOptions::new()
        .server(&url)
        .create(&unique(tag))
        .ctx("create")?;
    Ok((app, Arc::new(m)))
}

/// Fails if the server logged an ERROR for application `app` since `log`'s mark.
fn no_error_logged(log: &ServerLog, app: &str, during: &str) -> TestResult {
    let errors = log.lines_of(app, "ERROR")?;
    let cancels = errors
        .iter()
        .filter(|l| l.contains("canceling statement due to user request"))
        .count();
    ensure(
        errors.is_empty(),
        format!(
            "during {during}, the server logged {} ERROR lines ({cancels} cancels): {errors:?}",
            errors.len()
        ),
    )
}

/// Async waits dropped just before the owner releases, as when a `select!`'s other branch
/// completes as the owner lets go: the server logs no ERROR. Each wait has run longer than
/// the settle time when it is dropped, so without the grace time (cancel.rs) its cancel
/// request would go at once, and could land in the statement of a wait the release just
/// granted. Round `i` releases `i` × 20 µs after the drop, sweeping the request's way to
/// the server; each round must leave the mutex working.
fn dropped_as_granted_log_nothing() -> TestResult {
    const ROUNDS: u64 = 150;
    let (app, m) = quiet_mutex("granted")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ctx("runtime")?;
    let log = ServerLog::mark()?;
    let mut dropped = 0;
    for round in 0..ROUNDS {
        // The owner, on a thread of its own: takes the mutex, says so, and releases it the
        // time it is told after it is told.
        let (held, is_held) = std::sync::mpsc::channel::<()>();
        let (go, release) = std::sync::mpsc::channel::<Duration>();
        let owned = m.clone();
        let owner = std::thread::spawn(move || -> TestResult {
            let g = owned.lock().ctx("the owner's lock")?;
            held.send(()).ctx("say held")?;
            let after = release.recv_timeout(watchdog()).ctx("the release cue")?;
            let at = Instant::now() + after;
            while Instant::now() < at {
                std::hint::spin_loop();
            }
            g.release().ctx("the owner's release")
        });
        is_held
            .recv_timeout(watchdog())
            .ctx(&format!("round {round}: the owner's acquisition"))?;
        let waiter = m.clone();
        let outcome = rt.block_on(async move {
            let cue = async move {
                // Longer than the settle time (50 ms).
                tokio::time::sleep(Duration::from_millis(80)).await;
                go.send(Duration::from_micros(round * 20))
                    .map_err(|_| "the owner is gone".to_owned())
            };
            let bounded = tokio::time::timeout(watchdog(), async {
                tokio::select! {
                    // The wait is dropped here, as the owner is told to release.
                    cued = cue => cued.map(|()| false),
                    got = waiter.lock_async() => {
                        got.map(drop).map(|()| true).map_err(|e| e.to_string())
                    }
                }
            });
            bounded
                .await
                .map_err(|_| "neither the cue nor the wait within the watchdog".to_owned())?
        });
        let acquired = outcome.map_err(|e| format!("round {round}: {e}"))?;
        if !acquired {
            dropped += 1;
        }
        owner
            .join()
            .map_err(|_| format!("round {round}: the owner panicked"))??;
    }
    let waited = wait_on_another_thread(&m, watchdog())?;
    ensure(
        waited == WaitStatus::Acquired,
        format!("after the rounds: {waited:?}"),
    )?;
    ensure(
        dropped == ROUNDS,
        format!("{dropped} of {ROUNDS} waits were dropped: the others ended while held"),
    )?;
    no_error_logged(&log, &app, &format!("{ROUNDS} waits dropped as granted"))
}

/// After a kill, the server may end the killed process's handle session before its owning
/// session. A create in between makes a new object, which starts free and not abandoned
/// (semantics.md §6): at once, as it gets an id of its own that nobody holds (revision 9;
/// before it, its first acquirer waited for the last owner's session to end). With
/// `keep_abandoned` the last owner's claim is kept for the next acquirer, who waits for that
/// session to end and is told. A raw session plays the owner whose session outlives its
/// handles, and ends once the new object exists.
fn new_object_while_the_owner_ends() -> TestResult {
    for keep in [false, true] {
        let name = unique("new-object");
        let options = opts().keep_abandoned(keep);
        let (m, _) = options.create(&name).ctx("create")?;
        let mut owner = admin();
        raw_claim(&mut owner, &name, "0d4b9e0e-5a8f-4a8e-9f63-0f7b6c1e2a01")?;
        // The last handle: the object is gone; its owner's session lives on.
        drop(m);
        let (m, existed) = options.create(&name).ctx("create again")?;
        ensure(!existed, "the name outlived its last handle")?;
        let now = m.wait(Some(Duration::ZERO)).ctx("poll")?;
        let expected = if keep {
            WaitStatus::TimedOut
        } else {
            WaitStatus::Acquired
        };
        ensure(
            now == expected,
            format!(
                "a poll while the last owner's session holds the lock (keep_abandoned {keep}): {now:?}"
            ),
        )?;
        // The owner's session ends, as a killed process's does when the server notices.
        drop(owner);
        if keep {
            wait_expecting(
                &m,
                WaitStatus::Abandoned,
                "the new object's first acquirer (keep_abandoned)",
            )?;
        } else {
            m.release().ctx("release")?;
        }
        // Nothing of the old object's is left on the new one: free, and not abandoned.
        wait_expecting(
            &m,
            WaitStatus::Acquired,
            &format!("the next acquisition (keep_abandoned {keep})"),
        )?;
    }
    Ok(())
}

/// An async wait dropped after its wait was granted, while its claim waits for the row lock
/// of a release that has not committed yet: no cancel request is sent (it would fail the
/// claim, and the server would log an ERROR), the claim completes when the release commits,
/// and the acquisition is given back (the next owner is told `Acquired`).
fn dropped_while_claiming() -> TestResult {
    let app = unique("claiming");
    let url = format!("{}?application_name={app}", url());
    let name = unique("claiming");
    let (m, _) = MutexOptions::new()
        .server(&url)
        .create(&name)
        .ctx("create")?;
    let m = Arc::new(m);
    // The owner: a session of the test's own, which can release without committing.
    let mut owner = admin();
    let me = "6f1c0a52-9d4e-4c43-9a57-2f6f0c1e7d11";
    let id = raw_claim(&mut owner, &name, me)?;
    let log = ServerLog::mark()?;
    let claiming = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The owner's side, on a thread: releases once the async wait waits, then tells the
    // test when the waiter's claim is blocked by the release's uncommitted row.
    let ready = claiming.clone();
    let (app2, seen) = (app.clone(), ready.clone());
    let owner_side = std::thread::spawn(move || -> Result<postgres::Client, String> {
        let mut watch = admin();
        let mut blocked_in = |function: &str| sessions_of(&mut watch, &app2, Some(function)) == 1;
        wait_until("the async wait waits", || blocked_in("wait_granted"))?;
        owner.batch_execute("BEGIN").ctx("begin")?;
        owner
            .query_one(
                "SELECT namedmutex.release($1, $2::text::uuid, NULL)",
                &[&id, &me],
            )
            .ctx("the owner's release")?;
        wait_until("the claim waits for the release", || blocked_in("claim"))?;
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(owner)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ctx("runtime")?;
    let waiter = m.clone();
    let ended = rt.block_on(async move {
        let blocked = async {
            while !ready.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::select! {
            biased;
            _ = blocked => None,
            // Dropped (a cancel fired) when the claim is blocked.
            r = waiter.lock_async() => Some(r.map(|g| g.abandoned())),
        }
    });
    let mut owner = owner_side
        .join()
        .map_err(|_| "the owner's thread panicked".to_owned())??;
    ensure(
        ended.is_none(),
        format!("the async wait ended before its claim: {ended:?}"),
    )?;
    // A cancel request, had one been sent, fails the blocked claim within milliseconds:
    // the claim must still wait a second later (the release has not committed).
    let mut watch = admin();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        let still = sessions_of(&mut watch, &app, Some("claim"));
        ensure(
            still == 1,
            format!(
                "{still} blocked claims before the release committed (-1: the count failed; 0: a cancel reached the claim)"
            ),
        )?;
        std::thread::sleep(Duration::from_millis(20));
    }
    owner.batch_execute("COMMIT").ctx("commit")?;
    let next = wait_on_another_thread(&m, watchdog())?;
    ensure(
        next == WaitStatus::Acquired,
        format!("the next owner after the dropped wait: {next:?}"),
    )?;
    let errors = log.lines_of(&app, "ERROR")?;
    ensure(
        errors.is_empty(),
        format!("the server logged ERROR lines: {errors:?}"),
    )
}

/// A process's first open of a server connects its first acquisition's session meanwhile
/// (`sys/pg/ahead.rs`): two sessions before anything is acquired, and still two once the
/// acquisition is made, which took that session instead of connecting a third.
fn connected_ahead() -> TestResult {
    ahead_then_acquire(false)
}

/// A session connected ahead that no acquisition takes within 5 s (`sys/pg/ahead.rs`
/// UNUSED_FOR) is ended: a process that opens and does not acquire keeps one session, its
/// handle session, after that; its acquisition then connects one of its own.
fn connected_ahead_unused() -> TestResult {
    ahead_then_acquire(true)
}

/// A child opens, then (after its session connected ahead ended, if `left_unused`)
/// acquires and releases, and exits; its sessions are counted at each step.
fn ahead_then_acquire(left_unused: bool) -> TestResult {
    let mut watch = admin();
    let app = unique("ahead");
    let url = format!("{}?application_name={app}", url());
    let mut client = Client::spawn("ahead", &url, &unique("ahead"))?;
    client.expect("opened")?;
    let opened = Instant::now();
    wait_until("a second session before any acquisition", || {
        sessions_of(&mut watch, &app, None) == 2
    })?;
    if left_unused {
        wait_until("the unused session to end", || {
            sessions_of(&mut watch, &app, None) == 1
        })?;
        let after = opened.elapsed();
        ensure(
            after >= Duration::from_secs(4),
            format!("the session connected ahead ended {after:?} after the open (5 s expected)"),
        )?;
    }
    client.send("go")?;
    let got = client.expect("got")?;
    ensure(got == "acquired", format!("the acquisition: {got}"))?;
    let now = sessions_of(&mut watch, &app, None);
    let why = if left_unused {
        "it connected its own"
    } else {
        "the one connected ahead taken"
    };
    ensure(
        now == 2,
        format!("{now} sessions once the acquisition was made (2: {why})"),
    )?;
    client.send("release")?;
    let status = client.wait_exit()?;
    ensure(status.success(), format!("the client exited with {status}"))?;
    wait_until("the client's sessions to end", || {
        sessions_of(&mut watch, &app, None) == 0
    })
}

/// The first use of a new database installs the schema without an ERROR in the server's
/// log (it looked for the schema by calling into it, which failed there, once per database).
fn first_use_logs_no_error() -> TestResult {
    let db_url = fresh_database(&mut admin(), "nm_first_use")?;
    let log = ServerLog::mark()?;
    take_and_release(&db_url, "first-use", "the first use of a database")?;
    log.expect_none("ERROR")
}

/// A database whose schema a future version installed: refused with `Incompatible`.
fn future_schema() -> TestResult {
    let db_url = fresh_database(&mut admin(), "nm_future")?;
    namedmutex::setup_server(&db_url, false).ctx("setup")?;
    let mut c = postgres::Client::connect(&db_url, postgres::NoTls).ctx("connect")?;
    c.batch_execute("UPDATE namedmutex.meta SET version = 99")
        .ctx("update")?;
    drop(c);
    // A new URL spelling: this process has not checked it yet.
    let fresh = format!("{db_url}?application_name=future");
    let e = refused(&fresh, "x", "created on a future schema")?;
    ensure(
        e.kind() == ErrorKind::Incompatible && e.to_string().contains("version 99"),
        format!("{e}"),
    )
}

/// A database whose functions an older library installed (revision 1, before functions
/// had a revision): a granted role that does not own them uses them as they are; their
/// owner's first connection replaces them in place, keeping entry points SECURITY DEFINER
/// and granted, helpers granted to nobody.
fn older_functions() -> TestResult {
    let mut admin = admin();
    ensure_role(&mut admin, "nm_other", true)?;
    let db_url = fresh_database(&mut admin, "nm_upgrade")?;
    namedmutex::setup_server(&db_url, false).ctx("setup")?;
    let mut c = postgres::Client::connect(&db_url, postgres::NoTls).ctx("connect")?;
    c.batch_execute("DROP FUNCTION namedmutex.revision()")
        .ctx("drop revision()")?;
    let revision = |c: &mut postgres::Client| -> Result<Option<i32>, String> {
        let present: bool = c
            .query_one(
                "SELECT to_regprocedure('namedmutex.revision()') IS NOT NULL",
                &[],
            )
            .ctx("look up revision()")?
            .get(0);
        if !present {
            return Ok(None);
        }
        Ok(Some(
            c.query_one("SELECT namedmutex.revision()", &[])
                .ctx("revision()")?
                .get(0),
        ))
    };
    // A role that does not own the functions: they stay, and work.
    let other = format!(
        "{}?application_name=older-other",
        db_url.replacen("postgres@", "nm_other@", 1)
    );
    take_and_release(&other, "older", "a granted role on older functions")?;
    ensure(
        revision(&mut c)?.is_none(),
        "a role that does not own the functions replaced them",
    )?;
    // Their owner: replaced. An entry point that would fail shows whether it was.
    c.batch_execute(
        "CREATE OR REPLACE FUNCTION namedmutex.try_acquire(p_id int, p_me uuid, p_host text, \
         p_pid int, p_tid int, OUT got boolean, OUT abandoned boolean, OUT note text, OUT token bigint) \
         LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN RAISE EXCEPTION 'revision 1'; END $$",
    )
    .ctx("plant an old try_acquire")?;
    let owner = format!("{db_url}?application_name=older-owner");
    take_and_release(&owner, "upgraded", "the owner")?;
    // functions.sql's revision: what its revision() returns.
    let newest: i32 = include_str!("../../src/sys/pg/functions.sql")
        .split("FUNCTION namedmutex.revision()")
        .nth(1)
        .and_then(|rest| rest.split("RETURN ").nth(1))
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.trim().parse().ok())
        .ok_or("functions.sql's revision() returns no number")?;
    ensure(
        revision(&mut c)? == Some(newest),
        format!(
            "after the owner's connection: revision {:?}",
            revision(&mut c)?
        ),
    )?;
    let rows = c
        .query(
            "SELECT p.proname::text, p.prosecdef, p.proconfig IS NOT NULL, \
                    has_function_privilege('namedmutex_user', p.oid, 'EXECUTE') \
             FROM pg_proc p WHERE p.pronamespace = 'namedmutex'::regnamespace",
            &[],
        )
        .ctx("the functions' attributes")?;
    for r in &rows {
        let (name, definer, pinned, granted): (String, bool, bool, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let entry = !name.starts_with('_');
        ensure(
            definer == entry && pinned == entry && granted == entry,
            format!(
                "{name}: SECURITY DEFINER {definer}, search_path set {pinned}, granted to namedmutex_user {granted}"
            ),
        )?;
    }
    ensure(
        rows.iter().any(|r| r.get::<_, String>(0) == "_claim"),
        "no helper _claim after the upgrade",
    )
}

/// PgBouncer in transaction mode between client and server: refused with a clear error,
/// and nothing stays locked on the server.
/// Both ways PgBouncer can be set up: refusing the session settings (its default), or
/// dropping them silently (`ignore_startup_parameters = options`).
fn transaction_pooler() -> TestResult {
    for ignore in [false, true] {
        let Some(port) = pgbouncer::start(ignore)? else {
            return Err("pgbouncer is not installed (tools/test-all.sh installs it)".into());
        };
        let pooled = format!("postgresql://postgres@127.0.0.1:{port}/postgres");
        let name = unique("pooled");
        let r = MutexOptions::new().server(&pooled).create(&name);
        pgbouncer::stop();
        let e = r
            .err()
            .ok_or("created a mutex through a transaction pooler")?;
        ensure(
            e.to_string().contains("PgBouncer"),
            format!("ignore_startup_parameters={ignore}: {e}"),
        )?;
        // Nothing was left behind: no such object exists on the server.
        let found = namedmutex::MutexOptions::new()
            .server(&url())
            .info(&name)
            .ctx("info")?;
        ensure(
            found.is_none(),
            format!("the pooled attempt left {found:?}"),
        )?;
    }
    Ok(())
}

/// `info` reads the live facts from the server's lock table: the processes with a handle,
/// the sessions waiting, and whether the owner's session still holds the lock.
fn info_counts() -> TestResult {
    let name = unique("counts");
    let (m, _) = opts().create(&name).ctx("create")?;
    let m = Arc::new(m);
    let info = || -> Result<namedmutex::MutexInfo, String> {
        opts()
            .info(&name)
            .ctx("info")?
            .ok_or_else(|| "info found no mutex".to_owned())
    };
    let mut c = Client::spawn("hold", &url(), &name)?;
    c.expect("held")?;
    let held = info()?;
    ensure(
        held.handles == 2 && held.waiters == 0 && held.count == 1,
        format!("held by another process: {held:?}"),
    )?;
    let owner = held.owner.ok_or("no owner")?;
    ensure(
        owner.alive && owner.pid == Some(c.pid()),
        format!("the owner is the holding process {}: {owner:?}", c.pid()),
    )?;
    // A waiter in this process: its session queues on the lock.
    let waiter = m.clone();
    let waiting = std::thread::spawn(move || {
        let s = waiter.wait(Some(watchdog()));
        if matches!(s, Ok(s) if s.is_acquired()) {
            let _ = waiter.release();
        }
        s
    });
    wait_until("info shows the waiter", || {
        info().is_ok_and(|i| i.waiters == 1)
    })?;
    c.kill()?;
    let got = waiting
        .join()
        .map_err(|_| "the waiter panicked")?
        .ctx("the waiter")?;
    ensure(
        got == WaitStatus::Abandoned,
        format!("the waiter after the owner's death: {got:?}"),
    )?;
    // The dead process's handle session ends when the server notices, a moment after.
    wait_until("info shows the dead process's handle gone", || {
        info().is_ok_and(|i| i.handles == 1)
    })?;
    let after = info()?;
    ensure(
        after.waiters == 0 && after.count == 0 && after.owner.is_none(),
        format!("after the owner died and the waiter released: {after:?}"),
    )
}

/// A hot standby of the test server (read-only, as every standby): first in a multi-host
/// URL it is passed over for the primary, as libpq's `target_session_attrs=read-write`
/// passes it over (the library asks in the query that checks the session, not in a round
/// trip of its own); alone, it is refused with an error that says it is read-only.
fn standby_passed_over() -> TestResult {
    let standby = Standby::start()?;
    let primary_port = server_port()?;
    let both = format!(
        "postgresql://postgres@127.0.0.1:{},127.0.0.1:{primary_port}/postgres?sslmode=disable",
        standby.port
    );
    // On the standby, creating the mutex (a write) would fail: this ran on the primary.
    take_and_release(&both, "standby-first", "a standby, then the primary")?;
    let alone = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        standby.port
    );
    let e = refused(&alone, &unique("standby-only"), "a standby alone was used")?;
    ensure(
        e.kind() == ErrorKind::Io && e.to_string().contains("the server is read-only"),
        format!("a standby alone: {e}"),
    )
}

/// A hot standby of the test server (`tools/pg-server.sh standby`), stopped when dropped
/// (or, failing that, with the server).
struct Standby {
    dir: String,
    port: String,
}

impl Standby {
    fn start() -> Result<Standby, String> {
        // In the server's directory: stopping the server stops it too, should this test be
        // abandoned by its watchdog before it stops it itself.
        let dir = std::path::Path::new(&pg_dir()?)
            .join(format!("standby-{}", std::process::id()))
            .to_string_lossy()
            .into_owned();
        let out = std::process::Command::new("tools/pg-server.sh")
            .args(["standby", &dir, &pg_dir()?])
            .stderr(std::process::Stdio::inherit())
            .output()
            .ctx("tools/pg-server.sh standby")?;
        // Stopped, whatever is found wrong below.
        let mut standby = Standby {
            dir,
            port: String::new(),
        };
        ensure(out.status.success(), "tools/pg-server.sh standby failed")?;
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        standby.port = url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .ok_or(format!("no port in the standby's URL {url:?}"))?
            .to_owned();
        Ok(standby)
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tools/pg-server.sh")
            .args(["stop", &self.dir])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A PgBouncer in transaction mode in front of the test server.
mod pgbouncer {
    use crate::support::*;

    fn dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("nm-pgbouncer-{}", std::process::id()))
    }

    /// Starts it (as the postgres user); `None` when pgbouncer is not installed.
    pub fn start(ignore_options: bool) -> Result<Option<u16>, String> {
        if !std::path::Path::new("/usr/sbin/pgbouncer").exists() {
            return Ok(None);
        }
        let server_port = server_port()?;
        // A port the kernel says is free (an ephemeral one, not handed out again at once).
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .ctx("find a free port")?
            .port();
        let dir = dir();
        std::fs::create_dir_all(&dir).ctx("mkdir")?;
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\npostgres = host=127.0.0.1 port={server_port} dbname=postgres\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n\
                 auth_file = {d}/users.txt\npool_mode = transaction\nunix_socket_dir =\n{ignore}\
                 pidfile = {d}/pgbouncer.pid\nlogfile = {d}/pgbouncer.log\n",
                d = dir.display(),
                ignore = if ignore_options {
                    "ignore_startup_parameters = options\n"
                } else {
                    ""
                },
            ),
        )
        .ctx("write pgbouncer.ini")?;
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").ctx("users")?;
        let _ = std::process::Command::new("chown")
            .args(["-R", "postgres", dir.to_str().unwrap()])
            .status();
        let ok = std::process::Command::new("su")
            .args([
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                &format!("/usr/sbin/pgbouncer -d {}/pgbouncer.ini", dir.display()),
            ])
            .status()
            .is_ok_and(|s| s.success());
        ensure(ok, "pgbouncer did not start")?;
        wait_until("pgbouncer listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(Some(port))
    }

    pub fn stop() {
        if let Ok(pid) = std::fs::read_to_string(dir().join("pgbouncer.pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(dir());
    }
}
