//! Exhaustion: every limit gives a clear error, never a hang or a crash.
//!
//! - more live threads than registry slots, across processes, and reuse of the slots of a
//!   killed process (the single-process case is in `src/sys/linux/tests/kernel.rs`);
//! - a full file system (a 64 KiB tmpfs, needs root): `ResourceExhausted`, and nothing
//!   half-made left in the directories;
//! - a missing root: `PathNotFound`, naming the directory;
//! - too many open files (`RLIMIT_NOFILE` lowered in a child): `ResourceExhausted`.

use crate::support::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, MutexOptions, NamedMutex};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "exhaust::registry_slots_across_processes",
            registry_across_processes,
        ),
        Trial::test("exhaust::full_file_system", full_file_system),
        Trial::test("exhaust::missing_root", missing_root),
        Trial::test("exhaust::too_many_open_files", too_many_open_files),
    ]
}

fn registry_across_processes() -> TestResult {
    let root = fresh_root("slots");
    let root_s = root.to_str().unwrap();
    // Two processes of two threads each fill it (and their process slots, where the backend
    // has them).
    let slots = (4 + 2 * PROCESS_SLOTS).to_string();
    let env = [
        ("NAMEDMUTEX_ROOT", root_s),
        ("NAMEDMUTEX_REGISTRY_SLOTS", slots.as_str()),
    ];
    let mut a = Peer::spawn("fill", &["2"], &env);
    a.expect("filled")?;
    let mut b = Peer::spawn("fill", &["2"], &env);
    b.expect("filled")?;
    // Full: a fifth thread gets a clear error at once, in another process.
    let mut c = Peer::spawn("register-once", &[], &env);
    let line = c.expect_line()?;
    check(
        line.starts_with("err ResourceExhausted") && line.contains("NAMEDMUTEX_REGISTRY_SLOTS"),
        || format!("a thread beyond the slots got: {line}"),
    )?;
    check(c.finish()? == 0, || "register-once failed".into())?;
    // A killed process's slots are reused.
    a.kill();
    let mut d = Peer::spawn("fill", &["2"], &env);
    d.expect("filled")?;
    println!(
        "  {slots} slots: 2 + 2 live threads fill them; a fifth is refused ({line}); the slots of a killed process are reused"
    );
    drop((b, d));
    Ok(())
}

/// A 64 KiB tmpfs mounted at a fresh directory, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount() -> Result<Tmpfs, String> {
        let dir = std::env::temp_dir().join(unique("namedmutex-full"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn full_file_system() -> TestResult {
    if !is_root() {
        println!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return Ok(());
    }
    let fs = match Tmpfs::mount() {
        Ok(fs) => fs,
        Err(e) => {
            println!("skipped: cannot mount a tmpfs here ({e})");
            return Ok(());
        }
    };
    let root_s = fs.0.to_str().unwrap();
    let mut peer = Peer::spawn("fullfs", &[root_s], &[("NAMEDMUTEX_ROOT", root_s)]);
    let (status, lines) = peer.exit_and_lines()?;
    check(status.code() == Some(0), || {
        format!(
            "the child on a full file system ended with {}{}; it said {lines:?}",
            describe(status),
            if status.signal() == Some(libc::SIGBUS) {
                " (SIGBUS: a shared mapping of a file the full tmpfs could not back)"
            } else {
                ""
            }
        )
    })?;
    for l in &lines {
        println!("  {l}");
    }
    Ok(())
}

fn missing_root() -> TestResult {
    let missing = std::env::temp_dir()
        .join(unique("namedmutex-missing"))
        .join("deeper");
    let err = MutexOptions::new()
        .root(&missing)
        .create("x")
        .err()
        .ok_or("a missing root was accepted")?;
    check(err.kind() == ErrorKind::PathNotFound, || format!("{err:?}"))?;
    check(err.to_string().contains(missing.to_str().unwrap()), || {
        format!("the message does not name the directory: {err}")
    })?;
    // Given explicitly: the hint is about that directory, not the environment variable.
    check(err.to_string().contains("choose another directory"), || {
        format!("the message does not say how to choose another: {err}")
    })?;
    // The same through the environment, in a child, with open and with a file as root.
    let file_root = root().join(unique("a-file"));
    std::fs::write(&file_root, b"not a directory")?;
    for bad in [missing.as_path(), file_root.as_path()] {
        let mut peer = Peer::spawn(
            "try-root",
            &[],
            &[("NAMEDMUTEX_ROOT", bad.to_str().unwrap())],
        );
        let line = peer.expect_line()?;
        check(
            line.starts_with("err PathNotFound")
                && line.contains(bad.to_str().unwrap())
                && line.contains("from $NAMEDMUTEX_ROOT: set it to another directory"),
            || format!("NAMEDMUTEX_ROOT={}: {line}", bad.display()),
        )?;
        check(peer.finish()? == 0, || "try-root failed".into())?;
    }
    println!("  {err}");
    Ok(())
}

fn too_many_open_files() -> TestResult {
    let root = fresh_root("nofile");
    let root_s = root.to_str().unwrap();
    let mut peer = Peer::spawn("nofile", &[root_s], &[("NAMEDMUTEX_ROOT", root_s)]);
    let (status, lines) = peer.exit_and_lines()?;
    check(status.code() == Some(0), || {
        format!(
            "the child with few descriptors ended with {}: {lines:?}",
            describe(status)
        )
    })?;
    for l in &lines {
        println!("  {l}");
    }
    Ok(())
}

// ----- child roles ---------------------------------------------------------------------------

/// `--child fill N`: N threads register (wait + release) and stay alive until stdin closes.
pub fn fill(args: &[String]) -> i32 {
    let n: usize = args[0].parse().unwrap();
    let name = format!("fill-{}", std::process::id());
    let (m, _) = NamedMutex::create(&name, false).expect("create");
    let m = std::sync::Arc::new(m);
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let stop_rx = std::sync::Arc::new(std::sync::Mutex::new(stop_rx));
    let (ok_tx, ok_rx) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (m, stop_rx, ok_tx) = (m.clone(), stop_rx.clone(), ok_tx.clone());
            std::thread::spawn(move || {
                let r = m.wait(Some(WATCHDOG)).and_then(|_| m.release());
                let _ = ok_tx.send(r.map_err(|e| e.to_string()));
                let _ = stop_rx.lock().unwrap().recv();
            })
        })
        .collect();
    for _ in 0..n {
        match ok_rx.recv_timeout(WATCHDOG) {
            Ok(Ok(())) => {}
            other => {
                say(format!("fail {other:?}"));
                return 1;
            }
        }
    }
    say(format!("filled {n}"));
    wait_for_stdin_close();
    drop(stop_tx);
    for t in threads {
        let _ = t.join();
    }
    0
}

/// `--child register-once`: one wait; says `ok` or `err KIND MESSAGE`.
pub fn register_once(_: &[String]) -> i32 {
    let name = format!("once-{}", std::process::id());
    let (m, _) = NamedMutex::create(&name, false).expect("create");
    match m.wait(Some(WATCHDOG)) {
        Ok(_) => {
            let _ = m.release();
            say("ok");
        }
        Err(e) => say(format!("err {:?} {e}", e.kind())),
    }
    0
}

/// `--child try-root`: create and open under the environment's root; says the error.
pub fn try_root(_: &[String]) -> i32 {
    let a = NamedMutex::create("x", false).err();
    let b = NamedMutex::open("x").err();
    match (a, b) {
        (Some(a), Some(b)) if a.kind() == b.kind() => say(format!("err {:?} {a}", a.kind())),
        other => say(format!("unexpected {other:?}")),
    }
    0
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `--child fullfs ROOT`: fills the file system under ROOT, then creates.
pub fn fullfs(args: &[String]) -> i32 {
    let root = Path::new(&args[0]);
    let fail = |why: String| {
        say(format!("fail {why}"));
        1
    };
    let (warm, _) = NamedMutex::create("warm", false).expect("warm-up create");
    warm.wait(None).expect("warm-up wait");
    warm.release().expect("warm-up release");
    // Fill every block.
    let mut filler = std::fs::File::create(root.join("filler")).expect("filler");
    let block = vec![0xA5u8; 4096];
    let mut filled = 0usize;
    loop {
        use std::io::Write;
        match filler.write(&block) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => return fail(format!("filling: {e}")),
        }
    }
    let _ = filler.sync_all();
    let local = root.join(format!("namedmutex-{}", uid())).join("local");
    let before_local = files_in(&local);
    let before_root = files_in(root);
    for name in ["new-local", "Global\\new-global"] {
        match NamedMutex::create(name, false) {
            Err(e) if e.kind() == ErrorKind::ResourceExhausted => {
                say(format!(
                    "full ({filled} bytes filled): create {name:?}: {e}"
                ));
            }
            other => {
                return fail(format!(
                    "create {name:?} on a full file system gave {other:?}"
                ));
            }
        }
    }
    // A new thread needs a new registry slot, on a page nobody touched yet.
    let r = std::thread::spawn(|| {
        let (m, _) = NamedMutex::create("warm", false)?;
        let s = m.wait(Some(WATCHDOG))?;
        m.release()?;
        Ok::<_, namedmutex::Error>(s)
    })
    .join()
    .unwrap();
    match &r {
        Ok(_) => say("a new thread registered (its slot's page was already there)"),
        Err(e) if e.kind() == ErrorKind::ResourceExhausted => {
            say(format!("a new thread could not register: {e}"))
        }
        Err(e) => return fail(format!("a new thread's wait gave {e:?}")),
    }
    // Threads one after another, until the registry needs a page nobody touched yet
    // (32 slots of 128 bytes per page; scans move on to fresh slots first).
    let mut registered = 0;
    let mut refused = None;
    for _ in 0..80 {
        let r = std::thread::spawn(|| {
            let (m, _) = NamedMutex::create("warm", false)?;
            m.wait(Some(WATCHDOG))?;
            m.release()
        })
        .join()
        .unwrap();
        match r {
            Ok(()) => registered += 1,
            Err(e) if e.kind() == ErrorKind::ResourceExhausted => {
                refused = Some(e);
                break;
            }
            Err(e) => return fail(format!("registering thread {registered}: {e:?}")),
        }
    }
    say(format!(
        "{registered} more threads registered one after another{}",
        refused.map(|e| format!(", then: {e}")).unwrap_or_default()
    ));
    if files_in(&local) != before_local || files_in(root) != before_root {
        return fail(format!(
            "half-made files: local {:?} -> {:?}, root {:?} -> {:?}",
            before_local,
            files_in(&local),
            before_root,
            files_in(root)
        ));
    }
    drop(filler);
    let _ = std::fs::remove_file(root.join("filler"));
    match NamedMutex::create("new-local", false) {
        Ok(_) => say("after freeing space, create works"),
        Err(e) => return fail(format!("after freeing space: {e}")),
    }
    0
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// `--child nofile ROOT`: with RLIMIT_NOFILE just above what is open, creates mutexes
/// until a clear error; then closing some makes room again.
pub fn nofile(args: &[String]) -> i32 {
    let root = Path::new(&args[0]);
    let fail = |why: String| {
        say(format!("fail {why}"));
        1
    };
    let (warm, _) = NamedMutex::create("warm", false).expect("warm-up");
    warm.wait(None).expect("warm-up wait");
    warm.release().expect("warm-up release");
    let limit = open_fds() + 6;
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: a valid rlimit structure, for this (child) process only.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
        return fail("setrlimit".into());
    }
    let mut held = Vec::new();
    let err = loop {
        match NamedMutex::create(&format!("nf-{}", held.len()), false) {
            Ok((m, _)) => held.push(m),
            Err(e) => break e,
        }
        if held.len() > 1000 {
            return fail("RLIMIT_NOFILE had no effect".into());
        }
    };
    if err.kind() != ErrorKind::ResourceExhausted {
        return fail(format!("after {} mutexes: {err:?}", held.len()));
    }
    say(format!(
        "RLIMIT_NOFILE {limit}: {} named mutexes, then: {err}",
        held.len()
    ));
    for (what, r) in [
        (
            "create_unnamed",
            NamedMutex::create_unnamed(false).map(|_| ()),
        ),
        ("another root", {
            let other = root.join("other-root");
            let _ = std::fs::create_dir(&other);
            MutexOptions::new().root(&other).create("x").map(|_| ())
        }),
        ("open", NamedMutex::open("nf-0").map(|_| ())),
    ] {
        match r {
            // open of a name this process holds needs no descriptor.
            Ok(()) if what == "open" => {}
            Err(e) if e.kind() == ErrorKind::ResourceExhausted => {
                say(format!("{what}: {e}"));
            }
            other => return fail(format!("{what} with no descriptor left: {other:?}")),
        }
    }
    // Existing handles keep working.
    if let Err(e) = held[0]
        .wait(Some(Duration::ZERO))
        .and_then(|_| held[0].release())
    {
        return fail(format!("an existing handle failed: {e}"));
    }
    held.truncate(held.len() / 2);
    match NamedMutex::create("nf-again", false) {
        Ok(_) => say("after closing some, create works again"),
        Err(e) => return fail(format!("after closing some: {e}")),
    }
    0
}
