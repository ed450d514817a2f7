//! Hostile local users (needs root: creates the users `nmtest1` and `nmtest2` if missing,
//! and runs children as them with `setpriv`; skipped with a message otherwise).
//!
//! `nmtest1` is "us", `nmtest2` the attacker. Checked:
//!
//! - `Local\`: the attacker cannot open, create, squat, delete, list or lock our objects:
//!   their create of the same name makes their own object (a different namespace), and a
//!   lock they hold on our registry (which they can read) blocks nothing;
//! - planting a link, a directory or a file of theirs where our user directory or a
//!   `Global\` object goes gets a clear refusal for us, not a hang;
//! - `Global\` with `Security::CurrentUser`: the attacker gets `AccessDenied` and cannot
//!   delete or lock the file; with `Security::Everyone` they can open, wait and release, a
//!   holder of theirs that dies is reported `Abandoned` to us, and one that holds forever
//!   is just a holder (timeouts work);
//! - an attacker holding `flock` on a shared `Global\` file cannot block us indefinitely:
//!   processes that already have the object go on; a new open gives `Busy` after 2 s;
//! - what a user granted `Everyone` can do by writing the file (RELIABILITY.md): truncating
//!   it makes processes that have it mapped fault (SIGBUS); new opens refuse it (`Corrupt`,
//!   after 2 s: an empty file held open looks like an object still being created).

use crate::support::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, MutexOptions, NamedMutex, Security, WaitStatus};
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("hostile::local_namespace_is_private", local_private),
        Trial::test("hostile::planted_files_are_refused_or_passed_by", planted),
        Trial::test(
            "hostile::same_user_inside_a_user_namespace",
            same_user_in_userns,
        ),
        Trial::test("hostile::global_current_user_is_private", global_private),
        Trial::test("hostile::global_everyone_is_shared", global_everyone),
        Trial::test(
            "hostile::flock_on_a_global_file_blocks_nobody_forever",
            flock_hold,
        ),
        Trial::test("hostile::truncating_an_everyone_object", truncate_everyone),
    ]
}

struct Users {
    us: RunAs,
    them: RunAs,
}

/// The two test users, created if missing, and a copy of this binary they can run; `None`
/// (with the reason) when that is impossible.
fn users() -> Result<&'static Users, String> {
    static USERS: OnceLock<Result<Users, String>> = OnceLock::new();
    USERS
        .get_or_init(|| {
            if !is_root() {
                return Err(
                    "needs root to create users and switch to them (CI runs as root)".into(),
                );
            }
            let ids = |name: &str| -> Result<(u32, u32), String> {
                let id = |flag: &str| -> Option<u32> {
                    let out = std::process::Command::new("id")
                        .args([flag, name])
                        .output()
                        .ok()?;
                    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
                };
                if id("-u").is_none() {
                    let status = std::process::Command::new("useradd")
                        .args(["-M", "-s", "/usr/sbin/nologin", name])
                        .status()
                        .map_err(|e| format!("useradd: {e}"))?;
                    // (Another test run on the machine may have made it meanwhile.)
                    if !status.success() && id("-u").is_none() {
                        return Err(format!("useradd {name} failed"));
                    }
                }
                Ok((id("-u").ok_or("id -u")?, id("-g").ok_or("id -g")?))
            };
            if std::process::Command::new("setpriv")
                .arg("--version")
                .output()
                .is_err()
            {
                return Err("setpriv (util-linux) is missing".into());
            }
            let (u1, g1) = ids("nmtest1")?;
            let (u2, g2) = ids("nmtest2")?;
            // A copy of this binary the users can reach (target/ may be private).
            let dir = root().join("bin");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            set_mode(&dir, 0o755);
            let exe = dir.join("reliability");
            std::fs::copy(std::env::current_exe().unwrap(), &exe).map_err(|e| e.to_string())?;
            set_mode(&exe, 0o755);
            let exe: &'static Path = Box::leak(exe.into_boxed_path());
            Ok(Users {
                us: RunAs {
                    uid: u1,
                    gid: g1,
                    exe,
                },
                them: RunAs {
                    uid: u2,
                    gid: g2,
                    exe,
                },
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A fresh root shared by everybody, like /dev/shm (root-owned, 01777).
fn shared_root(tag: &str) -> PathBuf {
    let dir = fresh_root(tag);
    set_mode(&dir, 0o1777);
    dir
}

macro_rules! need_users {
    () => {
        match users() {
            Ok(u) => u,
            Err(why) => {
                println!("skipped: {why}");
                return Ok(());
            }
        }
    };
}

/// Runs `hostile SUB args` as `who` and expects its last line to be `ok`; returns the
/// lines it printed.
fn run_as(who: RunAs, root: &Path, args: &[&str]) -> Result<Vec<String>, String> {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let mut peer = Peer::spawn_as(
        who,
        "hostile",
        &all,
        &[("NAMEDMUTEX_ROOT", root.to_str().unwrap())],
    );
    let mut lines = Vec::new();
    loop {
        let line = peer.expect_line()?;
        if line == "ok" {
            break;
        }
        if line.starts_with("fail") {
            return Err(format!(
                "{args:?} as uid {}: {line} (after {lines:?})",
                who.uid
            ));
        }
        lines.push(line);
    }
    let code = peer.finish()?;
    check(code == 0, || format!("{args:?} exited with {code}"))?;
    Ok(lines)
}

fn spawn_as(who: RunAs, root: &Path, args: &[&str]) -> Peer {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    Peer::spawn_as(
        who,
        "hostile",
        &all,
        &[("NAMEDMUTEX_ROOT", root.to_str().unwrap())],
    )
}

fn local_private() -> TestResult {
    let u = need_users!();
    let root = shared_root("hostile-local");
    let mut holder = spawn_as(u.us, &root, &["hold", "secret", "current"]);
    holder.expect("holding")?;
    let us = u.us.uid.to_string();
    for l in run_as(u.them, &root, &["attack-local", &us, "secret"])? {
        println!("  attacker: {l}");
    }
    // A lock the attacker holds on our registry (which they may read) blocks nothing.
    let mut locker = spawn_as(
        u.them,
        &root,
        &["lock-file", &format!("namedmutex-{us}/{REGISTRY_FILE}")],
    );
    locker.expect("locked shared")?;
    locker.send("exclusive");
    locker.expect("locked exclusive")?;
    run_as(u.us, &root, &["use-local", "secret"])?;
    drop(locker);
    holder.send("");
    drop(holder);
    Ok(())
}

fn planted() -> TestResult {
    let u = need_users!();
    let us = u.us.uid.to_string();
    // Our user directory's name squatted as a link, a directory or a file: never followed
    // or used; our processes move to `namedmutex-<uid>.1` and agree on it (one holds, a
    // second times out), also after the squatter removes its plant and squats `.2` (the
    // name freed below ours is passed over: issue 15, case 7).
    for kind in ["symlink", "dir", "file"] {
        let root = shared_root("hostile-plant");
        run_as(u.them, &root, &["plant-user-dir", &us, kind])?;
        let mut holder = spawn_as(u.us, &root, &["hold", "x", "current"]);
        holder.expect("holding")?;
        let moved = root.join(format!("namedmutex-{us}.1"));
        check(moved.join("local").is_dir(), || {
            format!("{kind}: no directory of ours at {}", moved.display())
        })?;
        let lines = run_as(u.us, &root, &["expect-timeout", "x"])?;
        run_as(u.them, &root, &["unplant-user-dir", &us])?;
        let again = run_as(u.us, &root, &["expect-timeout", "x"])?;
        println!(
            "  our user directory's name planted as a {kind}: moved to .1; a second process: {}; after the plant went and .2 was squatted: {}",
            lines.join("; "),
            again.join("; ")
        );
        holder.send("");
        drop(holder);
    }
    // Others find a moved directory too: the death of our holder of an `Everyone` object
    // is seen through the registry in `.1` (without it, a waiter could not tell).
    let root = shared_root("hostile-plant-moved");
    run_as(u.them, &root, &["plant-user-dir", &us, "dir"])?;
    let mut holder = spawn_as(u.us, &root, &["hold", "Global\\moved", "everyone"]);
    holder.expect("holding")?;
    let mut waiter = spawn_as(u.them, &root, &["wait-abandoned", "Global\\moved"]);
    waiter.expect("waiting")?;
    holder.kill();
    let status = waiter.expect("status")?;
    check(status == "status Abandoned then Acquired", || {
        format!("the other user's waiter: {status}")
    })?;
    println!("  the other user waiting on our holder, whose directory moved: {status}");
    let root = shared_root("hostile-plant-global");
    run_as(u.them, &root, &["plant-globals"])?;
    for (object, want) in [
        ("planted-link", "TypeMismatch"),
        ("planted-dir", "TypeMismatch"),
        ("planted-fifo", "TypeMismatch"),
        ("planted-garbage", "TypeMismatch"),
        ("planted-private", "AccessDenied"),
    ] {
        let lines = run_as(
            u.us,
            &root,
            &["expect-refusal", &format!("Global\\{object}"), want],
        )?;
        println!("  Global\\{object}: {}", lines.join("; "));
    }
    Ok(())
}

/// A user inside a user namespace (`unshare --user --map-root-user`, as rootless containers
/// run) shares its `Local\\` namespace with the same user outside: one holds, the other
/// times out, both ways, and a holder killed inside is reported outside. A root whose owner
/// is not mapped there is refused unless `NAMEDMUTEX_TRUST_UNMAPPED_ROOT=1` (issue 15).
fn same_user_in_userns() -> TestResult {
    let u = need_users!();
    let root = shared_root("hostile-userns");
    let root_s = root.to_str().unwrap();
    let inside = |role_args: &[&str], trust: bool| {
        let mut all = vec!["run"];
        all.extend_from_slice(role_args);
        let mut env = vec![("NAMEDMUTEX_ROOT", root_s)];
        if trust {
            env.push(("NAMEDMUTEX_TRUST_UNMAPPED_ROOT", "1"));
        }
        Peer::spawn_with(None, "hostile", &all, &env, |cmd| {
            *cmd = std::process::Command::new("setpriv");
            cmd.arg(format!("--reuid={}", u.us.uid))
                .arg(format!("--regid={}", u.us.gid))
                .arg("--clear-groups")
                .args(["unshare", "--user", "--map-root-user"])
                .arg(u.us.exe)
                .current_dir("/");
        })
    };
    let finish = |mut peer: Peer| -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        loop {
            let line = peer.expect_line()?;
            if line == "ok" {
                return Ok(lines);
            }
            if let Some(why) = line.strip_prefix("fail ") {
                return Err(why.to_owned());
            }
            lines.push(line);
        }
    };
    // Refused without the opt-in, naming it.
    let refused = finish(inside(&["expect-refusal", "x", "AccessDenied"], false))?;
    check(
        refused
            .iter()
            .any(|l| l.contains("NAMEDMUTEX_TRUST_UNMAPPED_ROOT")),
        || format!("the refusal does not name the opt-in: {refused:?}"),
    )?;
    // Outside holds, inside times out.
    let mut outside = spawn_as(u.us, &root, &["hold", "x", "current"]);
    outside.expect("holding")?;
    let lines = finish(inside(&["expect-timeout", "x"], true))?;
    outside.send("");
    drop(outside);
    // Inside holds, outside times out; inside killed, outside told.
    let mut holder = inside(&["hold", "y", "current"], true);
    holder.expect("holding")?;
    let blocked = run_as(u.us, &root, &["expect-timeout", "y"])?;
    let mut waiter = spawn_as(u.us, &root, &["wait-abandoned", "y"]);
    waiter.expect("waiting")?;
    holder.kill();
    let status = waiter.expect("status")?;
    check(status == "status Abandoned then Acquired", || {
        format!("outside, after the holder inside was killed: {status}")
    })?;
    println!(
        "  inside without the opt-in: refused; held outside, inside: {}; held inside, outside: {}; killed inside, outside: {status}",
        lines.join("; "),
        blocked.join("; ")
    );
    Ok(())
}

fn global_private() -> TestResult {
    let u = need_users!();
    let root = shared_root("hostile-global-private");
    let mut holder = spawn_as(u.us, &root, &["hold", "Global\\priv", "current"]);
    holder.expect("holding")?;
    let us = u.us.uid.to_string();
    for l in run_as(u.them, &root, &["attack-global-private", "priv", &us])? {
        println!("  attacker: {l}");
    }
    holder.send("");
    drop(holder);
    Ok(())
}

fn global_everyone() -> TestResult {
    let u = need_users!();
    let root = shared_root("hostile-global-everyone");
    let mut owner = spawn_as(u.us, &root, &["hold", "Global\\pub", "everyone-free"]);
    owner.expect("holding")?;
    // They may open, wait, release.
    run_as(u.them, &root, &["use-everyone", "Global\\pub"])?;
    // A holder of theirs that holds forever is just a holder: our timed wait times out.
    let mut theirs = spawn_as(u.them, &root, &["hold", "Global\\pub", "everyone"]);
    theirs.expect("holding")?;
    let lines = run_as(u.us, &root, &["expect-timeout", "Global\\pub"])?;
    println!("  held by the other user: {}", lines.join("; "));
    // Their holder dies: we get Abandoned (read through their registry), once.
    let mut waiter = spawn_as(u.us, &root, &["wait-abandoned", "Global\\pub"]);
    waiter.expect("waiting")?;
    theirs.kill();
    let line = waiter.expect("status")?;
    check(line == "status Abandoned then Acquired", || {
        format!("after the other user's holder died: {line}")
    })?;
    check(waiter.finish()? == 0, || "waiter failed".into())?;
    drop(owner);
    Ok(())
}

fn flock_hold() -> TestResult {
    let u = need_users!();
    let root = shared_root("hostile-flock");
    let mut ours = spawn_as(u.us, &root, &["hold-and-serve", "Global\\flk"]);
    ours.expect("ready")?;
    // While we have it open, the other user can only share the file lock: harmless.
    let mut locker = spawn_as(u.them, &root, &["lock-file", "namedmutex-global.flk"]);
    locker.expect("locked shared")?;
    ours.send("cycle");
    let line = ours.expect("cycled")?;
    println!("  the other user holding LOCK_SH: our holder {line}");
    run_as(u.us, &root, &["use-everyone", "Global\\flk"])?;
    // Our last handle closes: their shared lock keeps the file (documented).
    ours.send("");
    check(ours.finish()? == 0, || "our holder failed".into())?;
    check(root.join("namedmutex-global.flk").exists(), || {
        "the file went away although another process still had it locked".into()
    })?;
    // Nobody of ours has it now: they convert to LOCK_EX. A new open is refused with
    // Busy after the bound (2 s), not blocked forever.
    locker.send("exclusive");
    locker.expect("locked exclusive")?;
    let lines = run_as(u.us, &root, &["expect-busy", "Global\\flk"])?;
    println!(
        "  the other user holding LOCK_EX: a new open: {}",
        lines.join("; ")
    );
    drop(locker);
    // Their lock gone, the object is stale (no handle anywhere): removed by the next open.
    run_as(u.us, &root, &["recreate", "Global\\flk"])?;
    Ok(())
}

fn truncate_everyone() -> TestResult {
    let u = need_users!();
    let root = shared_root("hostile-truncate");
    let mut ours = spawn_as(u.us, &root, &["hold-and-serve", "Global\\trunc"]);
    ours.expect("ready")?;
    let _ = run_as(u.them, &root, &["truncate", "namedmutex-global.trunc"])?;
    // New opens refuse the damaged file.
    let lines = run_as(u.us, &root, &["expect-refusal", "Global\\trunc", "Corrupt"])?;
    println!("  a new open of the truncated object: {}", lines.join("; "));
    // The process that had it mapped faults at its next access (documented).
    ours.send("cycle");
    let outcome = match ours.line_within(Duration::from_secs(5)) {
        Ok(line) => format!("survived ({line})"),
        Err(_) => {
            let status = ours.wait_exit(WATCHDOG)?;
            check(status.signal() == Some(libc::SIGBUS), || {
                format!("the holder ended with {}", describe(status))
            })?;
            "died with SIGBUS, as RELIABILITY.md says".into()
        }
    };
    println!("  the process holding the truncated object: {outcome}");
    Ok(())
}

// ----- child side -------------------------------------------------------------------------

fn lines() -> impl Iterator<Item = String> {
    std::io::stdin().lock().lines().map_while(Result::ok)
}

fn env_root() -> PathBuf {
    PathBuf::from(std::env::var_os("NAMEDMUTEX_ROOT").expect("root"))
}

fn io_kind(r: std::io::Result<impl Sized>) -> String {
    match r {
        Ok(_) => "succeeded".into(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// `--child hostile SUB ...`.
pub fn child(args: &[String]) -> i32 {
    let sub: Vec<&str> = args.iter().map(String::as_str).collect();
    if sub.first() == Some(&"hold-many") {
        return hold_many();
    }
    // `run SUB ...`: checks that say `fail ...` or end with `ok`.
    match run_sub(&sub[1..]) {
        Ok(()) => {
            say("ok");
            0
        }
        Err(e) => {
            say(format!("fail {e}"));
            1
        }
    }
}

/// Reads `hold NAME` lines, creates each and keeps it; closes everything at EOF.
fn hold_many() -> i32 {
    let mut held = Vec::new();
    for line in lines() {
        if let Some(name) = line.strip_prefix("hold ") {
            held.push(NamedMutex::create(name, false).expect("hold-many create").0);
            say(format!("held {name}"));
        }
    }
    drop(held);
    0
}

fn expect_denied(what: &str, r: std::io::Result<impl Sized>) -> Result<(), String> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            say(format!("{what}: refused"));
            Ok(())
        }
        other => Err(format!("{what}: {}", io_kind(other))),
    }
}

fn run_sub(sub: &[&str]) -> Result<(), String> {
    let root = env_root();
    let arg = |i: usize| sub.get(i).copied().unwrap_or("");
    match arg(0) {
        "hold" => {
            // hold NAME current|everyone|everyone-free: create (Everyone if asked), own it
            // unless `-free`, say `holding`, keep it until stdin closes.
            let security = if arg(2).starts_with("everyone") {
                Security::Everyone
            } else {
                Security::CurrentUser
            };
            let (m, _) = MutexOptions::new()
                .security(security)
                .create(arg(1))
                .map_err(|e| e.to_string())?;
            let own = !arg(2).ends_with("-free");
            if own {
                m.wait(Some(WATCHDOG)).map_err(|e| e.to_string())?;
            }
            say("holding");
            for _ in lines() {}
            if own {
                let _ = m.release();
            }
            Ok(())
        }
        "attack-local" => {
            let (victim, name) = (arg(1), arg(2));
            match NamedMutex::open(name) {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    say("open: not found (our own namespace)")
                }
                other => return Err(format!("open of the other user's name gave {other:?}")),
            }
            let (m, existed) = NamedMutex::create(name, false).map_err(|e| e.to_string())?;
            if existed {
                return Err("create found the other user's object".into());
            }
            match m.wait(Some(Duration::ZERO)) {
                Ok(WaitStatus::Acquired) => say("create: our own object, free"),
                other => return Err(format!("our own object: {other:?}")),
            }
            m.release().map_err(|e| e.to_string())?;
            let user_dir = root.join(format!("namedmutex-{victim}"));
            let local = user_dir.join("local");
            let file = local.join(name);
            expect_denied("read their object", std::fs::File::open(&file))?;
            expect_denied(
                "write their object",
                std::fs::OpenOptions::new().write(true).open(&file),
            )?;
            expect_denied("stat their object", std::fs::metadata(&file))?;
            expect_denied("delete their object", std::fs::remove_file(&file))?;
            expect_denied("list their objects", std::fs::read_dir(&local))?;
            expect_denied(
                "plant a file among them",
                std::fs::write(local.join("planted"), b"x"),
            )?;
            expect_denied(
                "write their registry",
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(user_dir.join(REGISTRY_FILE)),
            )?;
            match std::fs::rename(&user_dir, root.join("stolen")) {
                Err(e)
                    if e.raw_os_error() == Some(libc::EPERM)
                        || e.raw_os_error() == Some(libc::EACCES) =>
                {
                    say("rename their directory: refused (sticky root)")
                }
                other => return Err(format!("rename their directory: {}", io_kind(other))),
            }
            match std::fs::remove_dir_all(&user_dir) {
                Err(_) if user_dir.join(REGISTRY_FILE).exists() => {
                    say("delete their directory: refused")
                }
                other => return Err(format!("delete their directory: {}", io_kind(other))),
            }
            Ok(())
        }
        "lock-file" => {
            // lock-file RELATIVE: open (read-only if that is all we may) and flock(LOCK_EX).
            let path = root.join(arg(1));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .or_else(|_| std::fs::File::open(&path))
                .map_err(|e| format!("open {}: {e}", path.display()))?;
            use std::os::fd::AsRawFd;
            // lock-file takes LOCK_SH (all it can get while others have the file open), and
            // on an `exclusive` line converts it to LOCK_EX (possible once nobody else has).
            let lock = |op: i32| {
                // SAFETY: flock on a descriptor we own.
                unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) == 0 }
            };
            if !lock(libc::LOCK_SH) {
                return Err("flock(LOCK_SH) failed".into());
            }
            say("locked shared");
            for line in lines() {
                if line == "exclusive" {
                    if lock(libc::LOCK_EX) {
                        say("locked exclusive");
                    } else {
                        return Err("flock(LOCK_EX) failed".into());
                    }
                }
            }
            drop(f);
            Ok(())
        }
        "use-local" => {
            // With an attacker's lock on our registry: opening, a bounded wait on the held
            // object, and a fresh object all work.
            let m = NamedMutex::open(arg(1)).map_err(|e| e.to_string())?;
            let started = Instant::now();
            match m.wait(Some(Duration::from_millis(200))) {
                Ok(WaitStatus::TimedOut) => say(format!(
                    "held object: timed out after {:?}",
                    started.elapsed()
                )),
                other => return Err(format!("wait on our held object: {other:?}")),
            }
            let (n, _) = NamedMutex::create("fresh", false).map_err(|e| e.to_string())?;
            std::thread::scope(|s| {
                s.spawn(|| n.wait(Some(WATCHDOG)).map(|_| n.release()))
                    .join()
                    .unwrap()
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            Ok(())
        }
        "plant-user-dir" => {
            let target = root.join(format!("namedmutex-{}", arg(1)));
            match arg(2) {
                "symlink" => std::os::unix::fs::symlink("/tmp", &target),
                "dir" => std::fs::create_dir(&target).map(|()| {
                    let _ =
                        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777));
                }),
                _ => std::fs::write(&target, b"squatter"),
            }
            .map_err(|e| format!("planting: {e}"))
        }
        "unplant-user-dir" => {
            // Removes the plant at our victim's primary name and squats the name after theirs.
            let target = root.join(format!("namedmutex-{}", arg(1)));
            let _ = std::fs::remove_file(&target).or_else(|_| std::fs::remove_dir(&target));
            if target.symlink_metadata().is_ok() {
                return Err("the plant is still there".into());
            }
            std::fs::create_dir(root.join(format!("namedmutex-{}.2", arg(1))))
                .map_err(|e| format!("squatting .2: {e}"))
        }
        "plant-globals" => {
            let g = |n: &str| root.join(format!("namedmutex-global.{n}"));
            std::fs::write(root.join("target"), b"precious").map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(root.join("target"), g("planted-link"))
                .map_err(|e| e.to_string())?;
            std::fs::create_dir(g("planted-dir")).map_err(|e| e.to_string())?;
            let fifo = std::ffi::CString::new(g("planted-fifo").to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            if unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) } != 0 {
                return Err("mkfifo".into());
            }
            std::fs::set_permissions(g("planted-fifo"), std::fs::Permissions::from_mode(0o666))
                .map_err(|e| e.to_string())?;
            std::fs::write(g("planted-garbage"), vec![0x5Au8; 4096]).map_err(|e| e.to_string())?;
            std::fs::set_permissions(g("planted-garbage"), std::fs::Permissions::from_mode(0o666))
                .map_err(|e| e.to_string())?;
            // A real object of ours, private: the name is taken, and not for them.
            let (m, _) =
                NamedMutex::create("Global\\planted-private", false).map_err(|e| e.to_string())?;
            std::mem::forget(m); // keep it (the process ends; the file stays, stale)
            Ok(())
        }
        "expect-refusal" => {
            let (name, want) = (arg(1), arg(2));
            let started = Instant::now();
            for op in ["create", "open"] {
                let r = if op == "create" {
                    NamedMutex::create(name, false).map(|_| ())
                } else {
                    NamedMutex::open(name).map(|_| ())
                };
                match r {
                    Err(e) if format!("{:?}", e.kind()) == want => {
                        say(format!("{op}: {e} ({:?})", started.elapsed()))
                    }
                    other => return Err(format!("{op} {name}: {other:?}, want {want}")),
                }
            }
            if started.elapsed() > Duration::from_secs(5) {
                return Err(format!("the refusal took {:?}", started.elapsed()));
            }
            Ok(())
        }
        "attack-global-private" => {
            let object = arg(1);
            let name = format!("Global\\{object}");
            for op in ["open", "create"] {
                let r = if op == "open" {
                    NamedMutex::open(&name).map(|_| ())
                } else {
                    NamedMutex::create(&name, false).map(|_| ())
                };
                match r {
                    // The refusal names the creator and what would share the mutex.
                    Err(e)
                        if e.kind() == ErrorKind::AccessDenied
                            && e.to_string()
                                .contains(&format!("created by uid {}", arg(2)))
                            && e.to_string().contains("only its creator may open it")
                            && e.to_string().contains("--everyone or --group") =>
                    {
                        say(format!("{op}: {e}"))
                    }
                    other => return Err(format!("{op} {name}: {other:?}")),
                }
            }
            let file = root.join(format!("namedmutex-global.{object}"));
            expect_denied("open the file to lock it", std::fs::File::open(&file))?;
            match std::fs::remove_file(&file) {
                Err(e)
                    if e.raw_os_error() == Some(libc::EPERM)
                        || e.raw_os_error() == Some(libc::EACCES) =>
                {
                    say("delete: refused (sticky root)")
                }
                other => return Err(format!("delete: {}", io_kind(other))),
            }
            match std::fs::rename(&file, root.join("moved")) {
                Err(_) => say("rename: refused"),
                Ok(()) => return Err("rename succeeded".into()),
            }
            Ok(())
        }
        "use-everyone" => {
            let m = NamedMutex::open(arg(1)).map_err(|e| e.to_string())?;
            let s = m.wait(Some(WATCHDOG)).map_err(|e| e.to_string())?;
            if !s.is_acquired() {
                return Err(format!("wait gave {s:?}"));
            }
            m.release().map_err(|e| e.to_string())?;
            say(format!("open, wait ({s:?}), release: fine"));
            Ok(())
        }
        "recreate" => {
            match NamedMutex::open(arg(1)) {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                other => return Err(format!("open of a stale object: {other:?}")),
            }
            let (m, existed) = NamedMutex::create(arg(1), true).map_err(|e| e.to_string())?;
            if existed {
                return Err("create found the stale object".into());
            }
            m.release().map_err(|e| e.to_string())?;
            say("stale object removed; create works");
            Ok(())
        }
        "expect-timeout" => {
            let m = NamedMutex::open(arg(1)).map_err(|e| e.to_string())?;
            let started = Instant::now();
            match m.wait(Some(Duration::from_millis(300))) {
                Ok(WaitStatus::TimedOut) if started.elapsed() < Duration::from_secs(3) => {
                    say(format!("timed out after {:?}", started.elapsed()))
                }
                other => return Err(format!("{other:?} after {:?}", started.elapsed())),
            }
            Ok(())
        }
        "wait-abandoned" => {
            let m = NamedMutex::open(arg(1)).map_err(|e| e.to_string())?;
            say("waiting");
            let first = m.wait(Some(WATCHDOG)).map_err(|e| e.to_string())?;
            let second = m.wait(Some(Duration::ZERO)).map_err(|e| e.to_string())?;
            say(format!("status {first:?} then {second:?}"));
            let _ = m.release();
            let _ = m.release();
            Ok(())
        }
        "hold-and-serve" => {
            // Creates NAME (Everyone), says `ready`; on each `cycle` line waits and releases
            // and says `cycled`; ends at EOF.
            let (m, _) = MutexOptions::new()
                .security(Security::Everyone)
                .create(arg(1))
                .map_err(|e| e.to_string())?;
            say("ready");
            for line in lines() {
                if line == "cycle" {
                    let started = Instant::now();
                    let s = m.wait(Some(WATCHDOG)).map_err(|e| e.to_string())?;
                    m.release().map_err(|e| e.to_string())?;
                    say(format!("cycled: {s:?} in {:?}", started.elapsed()));
                }
            }
            Ok(())
        }
        "expect-busy" => {
            let started = Instant::now();
            match NamedMutex::open(arg(1)) {
                Err(e)
                    if e.kind() == ErrorKind::Busy
                        && started.elapsed() < Duration::from_secs(5) =>
                {
                    say(format!("{e} (after {:?})", started.elapsed()))
                }
                other => return Err(format!("{other:?} after {:?}", started.elapsed())),
            }
            Ok(())
        }
        "truncate" => {
            let path = root.join(arg(1));
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| format!("open for writing: {e}"))?;
            f.set_len(0).map_err(|e| e.to_string())?;
            say("truncated to 0 bytes");
            Ok(())
        }
        other => Err(format!("unknown hostile step {other:?}")),
    }
}
