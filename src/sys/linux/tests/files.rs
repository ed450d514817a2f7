//! Where objects live, with which permissions, and how bad or planted files are refused.

use crate::support::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, MutexOptions, NamedMutex, Security};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("files::layout_and_modes", layout_and_modes),
        Trial::test(
            "files::umask_000_and_077_give_the_same_modes",
            umask_does_not_matter,
        ),
        Trial::test(
            "files::bad_files_are_refused_and_left_alone",
            bad_files_are_refused,
        ),
        Trial::test(
            "files::planted_links_and_special_files_are_refused",
            planted_links,
        ),
        Trial::test(
            "files::foreign_or_open_local_files_are_refused",
            foreign_local_files,
        ),
        Trial::test(
            "files::squatted_directories_are_passed_by",
            squatted_directories,
        ),
        Trial::test("files::long_and_odd_names_map_to_safe_files", odd_names),
        Trial::test(
            "files::stale_object_of_a_killed_process_is_reused",
            stale_object,
        ),
        Trial::test(
            "files::empty_file_held_open_is_waited_for",
            empty_file_held_open,
        ),
        Trial::test(
            "files::dead_flag_on_a_live_object_is_refused",
            dead_flag_on_a_live_object,
        ),
        Trial::test("files::recursion_limit", recursion_limit),
    ]
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn layout_and_modes() -> Result<(), libtest_mimic::Failed> {
    let root = fresh_root("layout");
    let opts = MutexOptions::new().root(&root);
    let (local, _) = opts.create("plain")?;
    let user_dir = root.join(format!("namedmutex-{}", uid()));
    check(mode(&user_dir) == 0o711, || {
        format!("user dir mode {:o}", mode(&user_dir))
    })?;
    check(mode(&local_dir(&root)) == 0o700, || "local dir mode".into())?;
    check(mode(&user_dir.join("registry")) == 0o644, || {
        "registry mode".into()
    })?;
    let file = local_dir(&root).join("plain");
    check(mode(&file) == 0o600, || {
        format!("local object mode {:o}", mode(&file))
    })?;
    let gid = std::fs::metadata(&root)?.gid();
    let cases = [
        ("Global\\cu", Security::CurrentUser, 0o600),
        ("Global\\all", Security::Everyone, 0o666),
        ("Global\\grp", Security::UnixGroup(gid), 0o660),
    ];
    let mut held = Vec::new();
    for (name, security, want) in cases {
        let (m, existed) = opts.clone().security(security).create(name)?;
        check(!existed, || format!("{name} existed"))?;
        let path = root.join(format!("namedmutex-global.{}", &name[7..]));
        check(mode(&path) == want, || {
            format!("{name}: mode {:o}, want {want:o}", mode(&path))
        })?;
        if let Security::UnixGroup(g) = security {
            check(std::fs::metadata(&path)?.gid() == g, || {
                "group not set".into()
            })?;
        }
        held.push((m, path));
    }
    drop(local);
    check(!file.exists(), || {
        "the local object file outlived its last handle".into()
    })?;
    for (m, path) in held {
        drop(m);
        check(!path.exists(), || {
            format!("{} outlived its last handle", path.display())
        })?;
    }
    Ok(())
}

fn umask_does_not_matter() -> Result<(), libtest_mimic::Failed> {
    for mask in ["000", "077"] {
        let root = fresh_root(&format!("umask{mask}"));
        let root_s = root.to_str().unwrap();
        let mut peer = Peer::spawn("umask", &[mask, root_s], &[]);
        peer.expect("created")?;
        let user_dir = root.join(format!("namedmutex-{}", uid()));
        let got = [
            mode(&user_dir),
            mode(&local_dir(&root)),
            mode(&user_dir.join("registry")),
            mode(&local_dir(&root).join("umask-local")),
            mode(&root.join("namedmutex-global.umask-global")),
        ];
        check(got == [0o711, 0o700, 0o644, 0o600, 0o600], || {
            format!("umask {mask}: modes {:?}", got.map(|m| format!("{m:o}")))
        })?;
        check(peer.finish()? == 0, || "umask child failed".into())?;
    }
    Ok(())
}

/// A valid object page, as a starting point for damaged ones.
fn valid_page(root: &Path, name: &str) -> Vec<u8> {
    let opts = MutexOptions::new().root(root);
    let (m, _) = opts.create(name).unwrap();
    let bytes = std::fs::read(local_dir(root).join(name)).unwrap();
    drop(m);
    bytes
}

fn bad_files_are_refused() -> Result<(), libtest_mimic::Failed> {
    let root = fresh_root("bad");
    let good = valid_page(&root, "victim");
    let opts = MutexOptions::new().root(&root);
    for (name, bytes, want) in damaged_pages(&good) {
        check_refused(&opts, name, &local_dir(&root).join(name), &bytes, want)?;
    }
    Ok(())
}

fn planted_links() -> Result<(), libtest_mimic::Failed> {
    let root = fresh_root("links");
    let opts = MutexOptions::new().root(&root);
    let _ = opts.create("warmup")?; // creates the directories
    let target = root.join("target-file");
    std::fs::write(&target, b"precious")?;
    let local = local_dir(&root);
    std::os::unix::fs::symlink(&target, local.join("link"))?;
    std::os::unix::fs::symlink(&target, root.join("namedmutex-global.link"))?;
    std::fs::create_dir(local.join("dir"))?;
    let fifo = std::ffi::CString::new(local.join("fifo").to_str().unwrap())?;
    // SAFETY: a valid NUL-terminated path.
    check(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) } == 0, || {
        "mkfifo".into()
    })?;
    for name in ["link", "Global\\link", "dir", "fifo"] {
        let err = opts.create(name).err().ok_or(format!("{name} accepted"))?;
        check(err.kind() == ErrorKind::TypeMismatch, || {
            format!("{name}: {err}")
        })?;
        let err = opts.open(name).err().ok_or(format!("{name} opened"))?;
        check(err.kind() == ErrorKind::TypeMismatch, || {
            format!("open {name}: {err}")
        })?;
    }
    check(std::fs::read(&target)? == b"precious", || {
        "followed a link".into()
    })?;
    Ok(())
}

fn foreign_local_files() -> Result<(), libtest_mimic::Failed> {
    let root = fresh_root("foreign");
    let good = valid_page(&root, "loose");
    let opts = MutexOptions::new().root(&root);
    let path = local_dir(&root).join("loose");
    std::fs::write(&path, &good)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    let err = opts
        .open("loose")
        .err()
        .ok_or("a 0644 private object was accepted")?;
    check(err.kind() == ErrorKind::AccessDenied, || format!("{err}"))?;
    if is_root() {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        std::os::unix::fs::chown(&path, Some(12345), None)?;
        let err = opts
            .open("loose")
            .err()
            .ok_or("another user's file was accepted")?;
        check(err.kind() == ErrorKind::AccessDenied, || format!("{err}"))?;
    } else {
        println!("(not root: the foreign-owner case needs chown)");
    }
    Ok(())
}

fn squatted_directories() -> Result<(), libtest_mimic::Failed> {
    // A link where our user directory goes: never followed; the directory moves to the
    // next name of the chain (user_dir.rs).
    let root = fresh_root("squat-link");
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir(&elsewhere)?;
    std::os::unix::fs::symlink(&elsewhere, root.join(format!("namedmutex-{}", uid())))?;
    let m = MutexOptions::new().root(&root).create("x")?.0;
    check(std::fs::read_dir(&elsewhere)?.next().is_none(), || {
        "something was made through the planted link".into()
    })?;
    check(
        root.join(format!("namedmutex-{}.1/local/x", uid()))
            .exists(),
        || "the object is not in the next directory of the chain".into(),
    )?;
    drop(m);
    // An error about the root says what to change: for a root given explicitly, the
    // directory (issue 17: not the environment variable, which this caller did not use).
    let missing = root.join("no-such-dir");
    let err = MutexOptions::new()
        .root(&missing)
        .create("x")
        .err()
        .ok_or("used a missing root")?;
    check(
        err.to_string()
            .contains("given explicitly: choose another directory"),
        || format!("message: {err}"),
    )?;
    // A world-writable root without the sticky bit.
    let open_root = fresh_root("squat-open");
    set_mode(&open_root, 0o777);
    let err = MutexOptions::new()
        .root(&open_root)
        .create("x")
        .err()
        .ok_or("used an unsafe root")?;
    check(err.kind() == ErrorKind::AccessDenied, || format!("{err}"))?;
    set_mode(&open_root, 0o1777);
    drop(MutexOptions::new().root(&open_root).create("x")?);
    // Another user's directory where ours goes.
    if is_root() {
        let root = fresh_root("squat-owner");
        let dir = root.join(format!("namedmutex-{}", uid()));
        std::fs::create_dir(&dir)?;
        std::os::unix::fs::chown(&dir, Some(12345), None)?;
        // `.1` squatted too, `.2` free: ours goes to `.2`.
        let next = root.join(format!("namedmutex-{}.1", uid()));
        std::fs::create_dir(&next)?;
        std::os::unix::fs::chown(&next, Some(12345), None)?;
        drop(MutexOptions::new().root(&root).create("x")?);
        check(
            root.join(format!("namedmutex-{}.2/local", uid())).is_dir(),
            || "the directory did not move past two squatted names".into(),
        )?;
        check(
            std::fs::read_dir(&dir)?.next().is_none() && std::fs::read_dir(&next)?.next().is_none(),
            || "something was made in a squatter's directory".into(),
        )?;
    } else {
        println!("(not root: the squatted-owner case needs chown)");
    }
    Ok(())
}

fn odd_names() -> Result<(), libtest_mimic::Failed> {
    let root = fresh_root("odd");
    let opts = MutexOptions::new().root(&root);
    let long = "é".repeat(259); // 259 UTF-16 units, 518 bytes of UTF-8
    let names = ["a/b", "..", ".", "%41", "A", "tab\tname", long.as_str()];
    let mut held = Vec::new();
    for name in names {
        let (m, existed) = opts.create(name)?;
        check(!existed, || {
            format!("{name:?} collided with an earlier name")
        })?;
        held.push(m);
    }
    for entry in std::fs::read_dir(local_dir(&root))? {
        let file = entry?.file_name().into_string().unwrap();
        check(
            !file.starts_with('.') && !file.contains('/') && file.len() <= 200,
            || format!("unsafe file name {file:?}"),
        )?;
    }
    for (name, m) in names.iter().zip(&held) {
        let again = opts.open(name)?;
        check(
            again.name() == Some(*name) && m.name() == Some(*name),
            || "name".into(),
        )?;
    }
    drop(held);
    check(
        std::fs::read_dir(local_dir(&root))?.next().is_none(),
        || "files left".into(),
    )?;
    Ok(())
}

fn stale_object() -> Result<(), libtest_mimic::Failed> {
    let name = unique("stale");
    let mut peer = Peer::spawn("hold", &[&name, "2"], &[]);
    peer.expect("holding")?;
    peer.kill();
    let path = local_dir(&root()).join(&name);
    check(path.exists(), || {
        "the killed process's object file is already gone".into()
    })?;
    let info = namedmutex::info(&name)?.ok_or("info lost the stale object")?;
    check(info.stale, || format!("not reported stale: {info:?}"))?;
    let err = NamedMutex::open(&name)
        .err()
        .ok_or("opened a dead object")?;
    check(err.kind() == ErrorKind::NotFound, || format!("{err}"))?;
    check(!path.exists(), || "the stale file was not removed".into())?;
    // And create after a crash reports a new, free object.
    let mut peer = Peer::spawn("hold", &[&name, "1"], &[]);
    peer.expect("holding")?;
    peer.kill();
    let (m, existed) = NamedMutex::create(&name, false)?;
    check(!existed, || {
        "create reported a dead object as existing".into()
    })?;
    check(
        m.wait(Some(std::time::Duration::ZERO))? == namedmutex::WaitStatus::Acquired,
        || "a recreated object is not free".into(),
    )?;
    m.release()?;
    Ok(())
}

/// A new object's file exists empty between its creator's `O_EXCL` create and its write
/// (FORMAT.md). Here this process plays a creator that has locked its empty file and not yet
/// written it; a child creating the same name must wait, not fail or replace the file. Then
/// the "creator" either finishes (writes a valid page: the child opens that object) or dies
/// (drops its lock: the child removes the empty file and creates its own).
fn empty_file_held_open() -> Result<(), libtest_mimic::Failed> {
    use std::os::fd::AsRawFd;
    let root = fresh_root("unfinished");
    let root_s = root.to_str().unwrap();
    let env = [("NAMEDMUTEX_ROOT", root_s)];
    for finishes in [true, false] {
        let name = format!("unfinished-{finishes}");
        let page = valid_page(&root, &name);
        let path = local_dir(&root).join(&name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        set_mode(&path, 0o600);
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        check(rc == 0, || "flock of the empty file".into())?;
        let mut child = Peer::spawn("create", &[&name], &env);
        child.expect("started")?;
        // While the empty file is held open, the child keeps looking (its limit is 2 s).
        child.silent_for(Duration::from_millis(300))?;
        let len = std::fs::metadata(&path)?.len();
        check(len == 0, || {
            format!("the held empty file became {len} bytes")
        })?;
        // A creator that finishes keeps its handle (and lock); one that dies loses both.
        let (want, keep) = if finishes {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&page, 0)?;
            ("created existed=true", Some(file))
        } else {
            drop(file);
            ("created existed=false", None)
        };
        let line = child.expect("created")?;
        drop(keep);
        check(line == want, || {
            format!("finishes={finishes}: child said {line:?}")
        })?;
        let len = std::fs::metadata(&path)?.len();
        check(len == 4096, || format!("the object file is {len} bytes"))?;
        check(child.finish()? == 0, || "the create child failed".into())?;
    }
    Ok(())
}

/// `DEAD` set in the flags of an object that a process still has open (only damage does
/// that: a closer sets it while no other process has the file open): an open retries while
/// it could be a removal in progress, then refuses it with `Corrupt` naming the flag, rather
/// than `Busy`; the holder is unaffected, and with the flag cleared the name opens again.
fn dead_flag_on_a_live_object() -> Result<(), libtest_mimic::Failed> {
    use std::os::unix::fs::FileExt;
    let name = unique("dead-flag");
    let mut holder = Peer::spawn("hold", &[&name, "0"], &[]);
    holder.expect("holding")?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(local_dir(&root()).join(&name))?;
    let mut flags = [0u8; 4];
    let flags_at = field("FLAGS");
    file.read_exact_at(&mut flags, flags_at)?;
    file.write_all_at(&(u32::from_le_bytes(flags) | 2).to_le_bytes(), flags_at)?;
    let started = std::time::Instant::now();
    let err = NamedMutex::open(&name)
        .err()
        .ok_or("opened an object marked DEAD")?;
    check(err.kind() == ErrorKind::Corrupt, || {
        format!("{:?}: {err}", err.kind())
    })?;
    check(err.to_string().contains("DEAD"), || format!("{err}"))?;
    check(started.elapsed() >= Duration::from_secs(2), || {
        format!("gave up after {:?}", started.elapsed())
    })?;
    file.write_all_at(&flags, flags_at)?;
    let m = NamedMutex::open(&name)?;
    drop(m);
    check(holder.finish()? == 0, || "the holder failed".into())?;
    Ok(())
}

fn recursion_limit() -> Result<(), libtest_mimic::Failed> {
    use std::os::unix::fs::FileExt;
    let root = fresh_root("recursion");
    let opts = MutexOptions::new().root(&root);
    let (m, _) = opts.initial_owner(true).create("deep")?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(local_dir(&root).join("deep"))?;
    let count_at = field("COUNT");
    file.write_all_at(&0x7FFF_FFFFu32.to_le_bytes(), count_at)?;
    let err = m.wait(None).err().ok_or("passed the recursion limit")?;
    check(
        err.kind() == ErrorKind::RecursionLimit && err.win32_code() == Some(587),
        || format!("{err:?}"),
    )?;
    let mut count = [0u8; 4];
    file.read_exact_at(&mut count, count_at)?;
    check(u32::from_le_bytes(count) == 0x7FFF_FFFF, || {
        "the failed wait changed the count".into()
    })?;
    file.write_all_at(&1u32.to_le_bytes(), count_at)?;
    m.release()?;
    check(m.release().is_err(), || {
        "count 1 needed two releases".into()
    })?;
    Ok(())
}

/// The offset of an object page's field, from the crate's typed format.
fn field(name: &str) -> u64 {
    namedmutex::__format::offset(namedmutex::__format::OBJECT_FIELDS, name) as u64
}
