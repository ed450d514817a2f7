//! semantics.md §8: namespaces and security.

use crate::trial;
use crate::util::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, MutexOptions, NamedMutex, Security, WaitStatus};
use std::sync::Arc;
use std::time::Duration;

pub fn trials() -> Vec<Trial> {
    let mut v = vec![
        trial(
            "namespaces::plain_and_local_prefix_are_one_object",
            plain_is_local,
        ),
        trial(
            "namespaces::global_is_visible_as_global_and_separate_from_local",
            global_vs_local,
        ),
        trial(
            "namespaces::security_choices_for_global_objects",
            security_choices,
        ),
    ];
    if cfg!(target_os = "linux") {
        v.push(trial(
            "namespaces::symlinks_in_the_namespace_are_not_followed",
            symlinks,
        ));
        v.push(
            trial(
                "namespaces::other_users_cannot_reach_local_or_private_global",
                other_user,
            )
            .with_ignored_flag(!running_as_root()),
        );
    }
    v
}

fn running_as_root() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: geteuid has no preconditions.
        #[allow(unsafe_code)]
        let euid = unsafe { libc::geteuid() };
        euid == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// `x` and `Local\x` are the same object, in both directions and across processes.
fn plain_is_local() -> TestResult {
    let u = unique("local");
    let (m, existed) =
        NamedMutex::create(&format!("Local\\{u}"), true).ctx("create Local\\x (owner)")?;
    ensure!(!existed, "new name reported existing");
    let (plain, existed) = NamedMutex::create(&u, false).ctx("create x")?;
    ensure!(existed, "create(\"x\") did not find Local\\x");
    let plain = Arc::new(plain);
    let o = plain.clone();
    expect_wait(
        on_new_thread(move || o.wait(Some(Duration::ZERO)))?,
        WaitStatus::TimedOut,
        "other thread via \"x\" while Local\\x is owned",
    )?;
    plain.release().ctx("release through the \"x\" handle")?;
    drop(m);
    // The other direction, from another process.
    let v = unique("local2");
    let (_h, _) = NamedMutex::create(&v, true).ctx("create y (owner)")?;
    let mut c = ChildProc::spawn("local")?;
    let hc = c.open(&format!("Local\\{v}"))?;
    ensure_eq!(
        c.wait(hc, Some(0))?,
        0x102,
        "child via Local\\y while y is owned"
    );
    let (hc2, existed) = c.create(&format!("Local\\{v}"), true)?;
    ensure!(existed, "child create(Local\\y) did not find y");
    c.expect_err(&format!("release {hc2}"), ErrorKind::NotOwner, 288)?;
    Ok(())
}

/// `Global\x` is reached as `Global\x` (by another process too) and is not `x` nor
/// `Local\x`. (On Windows in session 0 both prefixes reach one namespace: noted, not failed.)
fn global_vs_local() -> TestResult {
    let u = unique("global");
    let global = format!("Global\\{u}");
    let mut c = ChildProc::spawn("global-owner")?;
    let (hc, existed) = c.create(&global, true)?;
    ensure!(!existed, "new Global name reported existing");
    let g = NamedMutex::open(&global).ctx("open Global\\x from another process")?;
    expect_wait(
        g.wait(Some(Duration::ZERO)),
        WaitStatus::TimedOut,
        "poll Global\\x while the child owns it",
    )?;
    let (g2, existed) = NamedMutex::create(&global, true).ctx("create Global\\x again")?;
    ensure!(existed, "create(Global\\x) did not find the child's object");
    expect_err(
        g2.release(),
        ErrorKind::NotOwner,
        288,
        "create(owner) of an existing Global name",
    )?;
    let same_session = cfg!(windows) && !under_wine() && NamedMutex::open(&u).is_ok();
    if same_session {
        note(
            "Windows session 0: Local\\ and Global\\ are one namespace here; distinctness not checked",
        );
    } else {
        expect_err(
            NamedMutex::open(&u),
            ErrorKind::NotFound,
            2,
            "open(\"x\") while only Global\\x exists",
        )?;
        expect_err(
            NamedMutex::open(&format!("Local\\{u}")),
            ErrorKind::NotFound,
            2,
            "open(Local\\x) while only Global\\x exists",
        )?;
        let (l, existed) =
            NamedMutex::create(&format!("Local\\{u}"), false).ctx("create Local\\x")?;
        ensure!(!existed, "create(Local\\x) found Global\\x");
        expect_wait(
            l.wait(Some(Duration::ZERO)),
            WaitStatus::Acquired,
            "Local\\x is free while Global\\x is owned",
        )?;
        l.release().ctx("release Local\\x")?;
        let hl = c.open(&u)?;
        ensure_eq!(
            c.wait(hl, Some(0))?,
            0,
            "child acquires Local x while owning Global\\x"
        );
        c.ok(&format!("release {hl}"))?;
    }
    c.ok(&format!("release {hc}"))?;
    take_and_release(&g, "Global\\x after the child released")?;
    Ok(())
}

/// Global objects can be created with each `Security` choice and opened by the same user;
/// on Linux the file modes follow the table in security.rs, and Local objects stay private.
fn security_choices() -> TestResult {
    for sec in [Security::CurrentUser, Security::Everyone] {
        let name = format!("Global\\{}", unique("sec"));
        let (m, existed) = MutexOptions::new()
            .security(sec)
            .initial_owner(true)
            .create(&name)
            .ctx(&format!("create with {sec:?}"))?;
        ensure!(!existed, "new name reported existing");
        let mut c = ChildProc::spawn("same-user")?;
        let h = c.open(&name)?;
        ensure_eq!(
            c.wait(h, Some(0))?,
            0x102,
            "same user's child while we own it ({sec:?})"
        );
        m.release().ctx("release")?;
        ensure_eq!(
            c.wait(h, Some(0))?,
            0,
            "same user's child after release ({sec:?})"
        );
        c.ok(&format!("release {h}"))?;
    }
    #[cfg(windows)]
    {
        expect_err(
            MutexOptions::new()
                .security(Security::UnixGroup(0))
                .create(&format!("Global\\{}", unique("sec"))),
            ErrorKind::InvalidParameter,
            87,
            "Security::UnixGroup on Windows",
        )?;
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let root = TempRoot::new("sec")?;
        // SAFETY: getegid has no preconditions.
        #[allow(unsafe_code)]
        let gid = unsafe { libc::getegid() };
        let cases = [
            ("Global\\", Security::CurrentUser, 0o600),
            ("Global\\", Security::Everyone, 0o666),
            ("Global\\", Security::UnixGroup(gid), 0o660),
            ("Local\\", Security::Everyone, 0o600),
            ("", Security::Everyone, 0o600),
        ];
        for (prefix, sec, mode) in cases {
            let before = root.object_files();
            let name = format!("{prefix}{}", unique("mode"));
            let (m, _) = MutexOptions::new()
                .root(&root.path)
                .security(sec)
                .create(&name)
                .ctx(&format!("create {name:?} with {sec:?}"))?;
            let new: Vec<_> = root
                .object_files()
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect();
            ensure!(
                new.len() == 1,
                "expected one new object file for {name:?}, found {new:?}"
            );
            let meta = std::fs::symlink_metadata(&new[0]).map_err(|e| e.to_string())?;
            ensure_eq!(
                meta.permissions().mode() & 0o7777,
                mode,
                "mode of the object file of {name:?} with {sec:?}"
            );
            if let Security::UnixGroup(g) = sec {
                ensure_eq!(meta.gid(), g, "group of the object file with {sec:?}");
            }
            drop(m);
        }
    }
    Ok(())
}

/// Linux: a symbolic link planted where an object file belongs is never followed: create
/// and open fail with ERROR_INVALID_HANDLE (6), the link's target is untouched, and a link
/// to another name's valid object does not give access to that object.
fn symlinks() -> TestResult {
    #[cfg(target_os = "linux")]
    {
        use crate::names::linux_files::{all_refused, object_path};
        for (a, b) in [
            (unique("target"), unique("link")),
            (
                format!("Global\\{}", unique("target")),
                format!("Global\\{}", unique("link")),
            ),
        ] {
            let root = TempRoot::new("symlink")?;
            let link_path = object_path(&root, &b)?;
            // A link to a file of ours.
            let target = root.path.join("victim");
            std::fs::write(&target, b"precious").map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(&target, &link_path).map_err(|e| e.to_string())?;
            all_refused(
                &root.path,
                &b,
                &[ErrorKind::TypeMismatch],
                "a symlink to a plain file",
            )?;
            ensure_eq!(
                std::fs::read(&target).map_err(|e| e.to_string())?,
                b"precious".to_vec(),
                "the symlink's target"
            );
            std::fs::remove_file(&link_path).map_err(|e| e.to_string())?;
            // A link to the valid object file of another name.
            let (ma, _) = MutexOptions::new()
                .root(&root.path)
                .initial_owner(true)
                .create(&a)
                .ctx("create a")?;
            let a_files: Vec<_> = root
                .object_files()
                .into_iter()
                .filter(|p| p != &target)
                .collect();
            ensure!(
                a_files.len() == 1,
                "expected one object file for a, found {a_files:?}"
            );
            std::os::unix::fs::symlink(&a_files[0], &link_path).map_err(|e| e.to_string())?;
            all_refused(
                &root.path,
                &b,
                &[ErrorKind::TypeMismatch],
                "a symlink to another name's object",
            )?;
            ensure!(
                std::fs::symlink_metadata(&link_path)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false),
                "the symlink was replaced"
            );
            std::fs::remove_file(&link_path).map_err(|e| e.to_string())?;
            ma.release().ctx("release a")?;
            drop(ma);
            let _ = std::fs::remove_file(&target);
        }
    }
    Ok(())
}

/// Linux, as root: a child running as user `nobody` in a shared sticky root cannot see or
/// squat our `Local\` names, cannot open a `Global\` object created with the default
/// security, and can use one created with `Security::Everyone`.
fn other_user() -> TestResult {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        let root = TempRoot::new("users")?;
        std::fs::set_permissions(&root.path, std::fs::Permissions::from_mode(0o1777))
            .map_err(|e| e.to_string())?;
        // The child binary must be executable by `nobody`.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let bin_dir = TempRoot::new("bin")?;
        let copy = bin_dir.path.join("behaviour-child");
        std::fs::copy(&exe, &copy).map_err(|e| format!("copy the test binary: {e}"))?;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let opts = MutexOptions::new().root(&root.path);
        let root_path = root.path.clone();
        let mut c = ChildProc::spawn_with("nobody", |cmd| {
            *cmd = std::process::Command::new(&copy);
            cmd.arg("--child")
                .arg("nobody")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .env("NAMEDMUTEX_ROOT", &root_path)
                .uid(65534)
                .gid(65534);
        })?;
        // Local: invisible and unsquattable.
        let local = unique("private");
        let (ml, _) = opts
            .clone()
            .initial_owner(true)
            .create(&local)
            .ctx("create Local")?;
        c.expect_err(&format!("open {}", enc(&local)), ErrorKind::NotFound, 2)?;
        let (hl, existed) = c.create(&local, true)?;
        ensure!(!existed, "another user's create found our Local\\ object");
        ensure_eq!(c.wait(hl, Some(0))?, 0, "the other user's own Local object");
        // Global with the default security: refused to others.
        let private = format!("Global\\{}", unique("private"));
        let (mp, _) = opts
            .clone()
            .initial_owner(false)
            .create(&private)
            .ctx("create Global (CurrentUser)")?;
        c.expect_err(
            &format!("open {}", enc(&private)),
            ErrorKind::AccessDenied,
            5,
        )?;
        c.expect_err(
            &format!("create {} 1", enc(&private)),
            ErrorKind::AccessDenied,
            5,
        )?;
        // Global for everyone: shared.
        let public = format!("Global\\{}", unique("public"));
        let (mpub, _) = opts
            .clone()
            .security(Security::Everyone)
            .initial_owner(true)
            .create(&public)
            .ctx("create Global (Everyone)")?;
        let hp = c.open(&public)?;
        ensure_eq!(
            c.wait(hp, Some(0))?,
            0x102,
            "other user polls while we own the public object"
        );
        c.expect_err(&format!("release {hp}"), ErrorKind::NotOwner, 288)?;
        mpub.release().ctx("release public")?;
        ensure_eq!(
            c.wait(hp, Some(0))?,
            0,
            "other user acquires the public object"
        );
        expect_wait(
            mpub.wait(Some(Duration::ZERO)),
            WaitStatus::TimedOut,
            "we poll while the other user owns it",
        )?;
        c.ok(&format!("release {hp}"))?;
        take_and_release(&mpub, "we acquire after the other user released")?;
        ml.release().ctx("release Local")?;
        drop((ml, mp, mpub));
        c.kill()?;
    }
    Ok(())
}
