//! semantics.md §1: names.

use crate::trial;
use crate::util::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, NamedMutex, WaitStatus};
use std::sync::Arc;
use std::time::Duration;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("names::empty_name_is_an_unnamed_private_mutex", empty_name),
        trial("names::prefix_alone_is_invalid_name_123", prefix_alone),
        trial(
            "names::backslash_after_prefix_is_path_not_found_3",
            backslash,
        ),
        trial("names::over_max_path_is_name_too_long_206", too_long),
        trial("names::nul_inside_is_invalid_name_123", nul_inside),
        trial(
            "names::any_other_character_is_allowed_and_exact",
            other_characters,
        ),
        trial("names::comparison_is_case_sensitive", case_sensitive),
        trial("names::other_object_kind_is_invalid_handle_6", other_kind),
    ]
}

/// `""` gives an unnamed mutex: never opened_existing, distinct per call, no name, and
/// `open("")` is refused with InvalidParameter (87).
fn empty_name() -> TestResult {
    let (m1, existed) = NamedMutex::create("", true).ctx("create(\"\", true)")?;
    ensure!(!existed, "create(\"\") reported opened_existing");
    ensure_eq!(m1.name(), None, "name() of an unnamed mutex");
    let (m2, existed) = NamedMutex::create("", false).ctx("second create(\"\")")?;
    ensure!(!existed, "a second create(\"\") reported opened_existing");
    let m3 = NamedMutex::create_unnamed(false).ctx("create_unnamed")?;
    let (m1, m2, m3) = (Arc::new(m1), Arc::new(m2), Arc::new(m3));
    // The main thread owns m1; another thread finds m2 and m3 free, m1 taken.
    let other = Actor::new("other");
    let (a, b, c) = (m1.clone(), m2.clone(), m3.clone());
    let (r1, r2, r3) = other.run(move || {
        let r1 = a.wait(Some(Duration::ZERO));
        let r2 = b.wait(Some(Duration::ZERO));
        let r3 = c.wait(Some(Duration::ZERO));
        (r1, r2, r3)
    })?;
    expect_wait(
        r1,
        WaitStatus::TimedOut,
        "other thread: wait(0) on the owned unnamed m1",
    )?;
    expect_wait(
        r2,
        WaitStatus::Acquired,
        "other thread: wait(0) on unnamed m2 (a distinct object)",
    )?;
    expect_wait(
        r3,
        WaitStatus::Acquired,
        "other thread: wait(0) on unnamed m3 (a distinct object)",
    )?;
    let (b, c) = (m2.clone(), m3.clone());
    let (x, y) = other.run(move || (b.release(), c.release()))?;
    x.ctx("release m2")?;
    y.ctx("release m3")?;
    m1.release().ctx("release m1")?;
    expect_err(
        NamedMutex::open(""),
        ErrorKind::InvalidParameter,
        87,
        "open(\"\")",
    )?;
    other.finish()
}

/// `Local\` or `Global\` with nothing after it: ERROR_INVALID_NAME (123), for create and
/// open alike.
fn prefix_alone() -> TestResult {
    for name in ["Local\\", "Global\\"] {
        expect_err(
            NamedMutex::create(name, false),
            ErrorKind::InvalidName,
            123,
            &format!("create({name:?})"),
        )?;
        expect_err(
            NamedMutex::open(name),
            ErrorKind::InvalidName,
            123,
            &format!("open({name:?})"),
        )?;
    }
    Ok(())
}

/// A backslash after the optional prefix: ERROR_PATH_NOT_FOUND (3). Prefixes are exact, so
/// `global\x` and `LOCAL\x` are ordinary names with a backslash.
fn backslash() -> TestResult {
    let u = unique("bs");
    let names = [
        format!("a\\{u}"),
        format!("Global\\a\\{u}"),
        format!("Local\\a\\{u}"),
        format!("Foo\\{u}"),
        format!("global\\{u}"),
        format!("LOCAL\\{u}"),
        format!("GLOBAL\\{u}"),
        format!("\\{u}"),
        format!("{u}\\"),
        format!("Global\\\\{u}"),
    ];
    for name in &names {
        expect_err(
            NamedMutex::create(name, false),
            ErrorKind::PathNotFound,
            3,
            &format!("create({name:?})"),
        )?;
        expect_err(
            NamedMutex::create(name, true),
            ErrorKind::PathNotFound,
            3,
            &format!("create({name:?}, owner)"),
        )?;
        expect_err(
            NamedMutex::open(name),
            ErrorKind::PathNotFound,
            3,
            &format!("open({name:?})"),
        )?;
    }
    Ok(())
}

/// `name` padded with `pad` to exactly `units` UTF-16 code units.
fn padded(name: &str, pad: char, units: usize) -> String {
    let mut s = name.to_owned();
    while s.encode_utf16().count() + pad.len_utf16() <= units {
        s.push(pad);
    }
    while s.encode_utf16().count() < units {
        s.push('x');
    }
    s
}

/// More than MAX_PATH (260) UTF-16 code units in the whole name, prefix included:
/// ERROR_FILENAME_EXCED_RANGE (206); exactly 260 works.
fn too_long() -> TestResult {
    let cases = [
        (unique("long"), 'x'),
        (format!("Global\\{}", unique("long")), 'x'),
        (format!("Local\\{}", unique("long")), 'x'),
        (unique("long-bmp"), 'é'),
        (unique("long-astral"), '😀'),
    ];
    for (base, pad) in cases {
        let ok = padded(&base, pad, 260);
        ensure_eq!(ok.encode_utf16().count(), 260, "test name length");
        let (m, existed) = NamedMutex::create(&ok, false).ctx("create with 260 units")?;
        ensure!(!existed, "a new 260-unit name reported opened_existing");
        ensure_eq!(m.name(), Some(ok.as_str()), "name() of a 260-unit name");
        let again = NamedMutex::open(&ok).ctx("open with 260 units")?;
        drop(again);
        let over = format!("{ok}y");
        expect_err(
            NamedMutex::create(&over, false),
            ErrorKind::NameTooLong,
            206,
            &format!("create with 261 units ({pad:?} padding)"),
        )?;
        expect_err(
            NamedMutex::open(&over),
            ErrorKind::NameTooLong,
            206,
            "open with 261 units",
        )?;
        if pad.len_utf16() == 2 {
            // 259 units + one astral character = 261 units in 260 chars... or fewer chars.
            let mut s = padded(&base, 'x', 259);
            s.push('😀');
            expect_err(
                NamedMutex::create(&s, false),
                ErrorKind::NameTooLong,
                206,
                "a name whose last character makes 261 UTF-16 units",
            )?;
        }
        drop(m);
    }
    let huge = "x".repeat(40_000);
    expect_err(
        NamedMutex::create(&huge, false),
        ErrorKind::NameTooLong,
        206,
        "create with 40000 units",
    )?;
    Ok(())
}

/// A NUL character inside the name: ERROR_INVALID_NAME (123).
fn nul_inside() -> TestResult {
    let u = unique("nul");
    for name in [
        format!("{u}\0x"),
        format!("Global\\{u}\0"),
        format!("Local\\\0{u}"),
        "\0".to_owned(),
    ] {
        expect_err(
            NamedMutex::create(&name, false),
            ErrorKind::InvalidName,
            123,
            &format!("create({name:?})"),
        )?;
        expect_err(
            NamedMutex::open(&name),
            ErrorKind::InvalidName,
            123,
            &format!("open({name:?})"),
        )?;
    }
    Ok(())
}

/// Any other character is allowed and stored exactly: names that differ in any way are
/// different objects; the same string finds the same object.
fn other_characters() -> TestResult {
    let u = unique("chars");
    let mut names: Vec<String> = [
        "/",
        "a/b",
        "/x/",
        " ",
        "with space",
        " lead",
        "trail ",
        "tab\tnl\n",
        ".",
        "..",
        "../up",
        "./dot",
        "a/../b",
        "ünïcødé",
        "e\u{301}",
        "\u{e9}",
        "😀",
        "\u{feff}bom",
        "%s%n",
        "*?<>|\"':",
        "CON",
        "nul",
        "registry",
        "registry-portable",
        "local",
        ".nmtx-tmp",
        "-",
        "x.lock",
    ]
    .iter()
    .map(|s| format!("{u}{s}"))
    .collect();
    names.push(format!("Global\\{u}/g"));
    names.push(format!("Local\\{u}/l"));
    // Bare names that a file-based backend must not confuse with paths. Only where the
    // namespace belongs to this run (on Windows, Local\ is shared by parallel runs).
    if cfg!(unix) {
        for bare in [
            ".",
            "..",
            "/",
            "registry",
            "registry-portable",
            "local",
            "Global\\.",
            "Global\\..",
        ] {
            names.push(bare.to_owned());
        }
    }
    let mut held = Vec::new();
    for name in &names {
        let (m, existed) = NamedMutex::create(name, false).ctx(&format!("create({name:?})"))?;
        ensure!(
            !existed,
            "create({name:?}) reported opened_existing: it collided with another name of this list"
        );
        ensure_eq!(m.name(), Some(name.as_str()), "name() of {name:?}");
        let (_, existed) =
            NamedMutex::create(name, false).ctx(&format!("second create({name:?})"))?;
        ensure!(
            existed,
            "a second create({name:?}) did not find the first object"
        );
        let opened = NamedMutex::open(name).ctx(&format!("open({name:?})"))?;
        ensure_eq!(
            opened.name(),
            Some(name.as_str()),
            "name() of the opened {name:?}"
        );
        held.push((m, opened));
    }
    // The same object: owning through one handle blocks another thread's poll of the other.
    let (owner, other_handle) = &held[5];
    ensure_eq!(
        owner.wait(Some(Duration::ZERO)).ctx("wait")?,
        WaitStatus::Acquired,
        "poll"
    );
    let probe = Arc::new(other_handle.try_clone().ctx("try_clone")?);
    let r = on_new_thread(move || probe.wait(Some(Duration::ZERO)))?;
    expect_wait(
        r,
        WaitStatus::TimedOut,
        "other thread polling the same name",
    )?;
    owner.release().ctx("release")?;
    Ok(())
}

/// Comparison is case-sensitive: `Foo` and `foo` are two objects.
fn case_sensitive() -> TestResult {
    let u = unique("case");
    let name = format!("CaseTest-{u}");
    let (m, existed) = NamedMutex::create(&name, true).ctx("create CaseTest")?;
    ensure!(!existed, "new name reported opened_existing");
    for other in [name.to_lowercase(), name.to_uppercase()] {
        expect_err(
            NamedMutex::open(&other),
            ErrorKind::NotFound,
            2,
            &format!("open({other:?}) while only {name:?} exists"),
        )?;
    }
    let lower = name.to_lowercase();
    let (l, existed) = NamedMutex::create(&lower, false).ctx("create casetest")?;
    ensure!(
        !existed,
        "create({lower:?}) found {name:?}: names must be case-sensitive"
    );
    // Distinct objects: the owner of one does not block the other.
    let l = Arc::new(l);
    free_for_another_thread(&l, "other thread: wait(0) on the lower-case object")?;
    m.release().ctx("release")?;
    // Prefixes are matched exactly too: `local\x` is not `Local\x` (it is a path).
    let (_g, _) = NamedMutex::create(&format!("Global\\{u}"), false).ctx("create Global\\")?;
    expect_err(
        NamedMutex::open(&format!("global\\{u}")),
        ErrorKind::PathNotFound,
        3,
        "open(global\\...) spelled in lower case",
    )?;
    Ok(())
}

/// A name that belongs to another kind of object: ERROR_INVALID_HANDLE (6) for create and
/// open, and nothing is overwritten (on Linux an empty file is no foreign object but a dead
/// creator's unfinished one, and is replaced).
fn other_kind() -> TestResult {
    #[cfg(windows)]
    {
        win_event::check()
    }
    #[cfg(target_os = "linux")]
    {
        linux_files::check()
    }
    #[cfg(not(any(windows, target_os = "linux")))]
    {
        Ok(())
    }
}

#[cfg(windows)]
mod win_event {
    //! On Windows: an event of the same name.
    #![allow(unsafe_code)]

    use crate::util::*;
    use namedmutex::{ErrorKind, NamedMutex};
    use std::ffi::c_void;

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn CreateEventW(
            attrs: *const c_void,
            manual: i32,
            initial: i32,
            name: *const u16,
        ) -> *mut c_void;
        fn CloseHandle(h: *mut c_void) -> i32;
    }

    pub fn check() -> TestResult {
        for name in [unique("event"), format!("Local\\{}", unique("event"))] {
            let wide: Vec<u16> = name.encode_utf16().chain(Some(0)).collect();
            // SAFETY: a NUL-terminated wide string and null attributes are valid arguments.
            let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, wide.as_ptr()) };
            ensure!(!event.is_null(), "CreateEventW({name:?}) failed");
            let r1 = NamedMutex::create(&name, false);
            let r2 = NamedMutex::create(&name, true);
            let r3 = NamedMutex::open(&name);
            // SAFETY: closes the handle CreateEventW returned, once.
            unsafe { CloseHandle(event) };
            expect_err(r1, ErrorKind::TypeMismatch, 6, "create on an event's name")?;
            expect_err(
                r2,
                ErrorKind::TypeMismatch,
                6,
                "create(owner) on an event's name",
            )?;
            expect_err(r3, ErrorKind::TypeMismatch, 6, "open of an event's name")?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
pub mod linux_files {
    //! On Linux: files in the namespace that are not valid mutex objects. The object file of
    //! a name is found by creating it in a private root and looking at what appears.

    use crate::util::*;
    use namedmutex::{ErrorKind, MutexOptions, NamedMutex};
    use std::path::{Path, PathBuf};

    /// The object file `name` uses in `root` (found by creating it), after it is gone again.
    pub fn object_path(root: &TempRoot, name: &str) -> Result<PathBuf, String> {
        let before = root.object_files();
        let (m, _) = MutexOptions::new()
            .root(&root.path)
            .create(name)
            .ctx("create in a private root")?;
        let after = root.object_files();
        let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
        ensure!(
            new.len() == 1,
            "expected exactly one new object file for {name:?}, found {new:?}"
        );
        let path = new[0].clone();
        drop(m);
        ensure!(
            !path.exists(),
            "the object file {} remains after its only handle closed",
            path.display()
        );
        Ok(path)
    }

    fn create_in(root: &Path, name: &str, owner: bool) -> namedmutex::Result<(NamedMutex, bool)> {
        MutexOptions::new()
            .root(root)
            .initial_owner(owner)
            .create(name)
    }

    fn open_in(root: &Path, name: &str) -> namedmutex::Result<NamedMutex> {
        MutexOptions::new().root(root).open(name)
    }

    /// Create (with and without owner) and open must all fail with code 6; `kinds` are
    /// the acceptable kinds.
    pub fn all_refused(root: &Path, name: &str, kinds: &[ErrorKind], what: &str) -> TestResult {
        let results = [
            ("create", create_in(root, name, false).map(|_| ())),
            ("create(owner)", create_in(root, name, true).map(|_| ())),
            ("open", open_in(root, name).map(|_| ())),
        ];
        for (op, r) in results {
            match r {
                Ok(()) => return Err(format!("{op} over {what} succeeded; expected error 6")),
                Err(e) => {
                    ensure!(
                        kinds.contains(&e.kind()) && e.win32_code() == Some(6),
                        "{op} over {what}: expected {kinds:?} (6), got {:?} ({:?}): {e}",
                        e.kind(),
                        e.win32_code()
                    );
                }
            }
        }
        Ok(())
    }

    pub fn check() -> TestResult {
        use std::os::unix::fs::PermissionsExt;
        for name in [unique("kind"), format!("Global\\{}", unique("kind"))] {
            let root = TempRoot::new("kind")?;
            let path = object_path(&root, &name)?;
            let set_mode = |p: &Path| {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("chmod: {e}"))
            };

            // A full-size file that is not a mutex object.
            let junk: Vec<u8> = b"this is not a namedmutex object. "
                .iter()
                .copied()
                .cycle()
                .take(4096)
                .collect();
            std::fs::write(&path, &junk).map_err(|e| format!("write junk: {e}"))?;
            set_mode(&path)?;
            all_refused(&root.path, &name, &[ErrorKind::TypeMismatch], "a junk file")?;
            let now = std::fs::read(&path).map_err(|e| format!("read junk: {e}"))?;
            ensure!(now == junk, "the junk file was modified by create/open");
            std::fs::remove_file(&path).map_err(|e| e.to_string())?;

            // A short file.
            let content = b"nmtx";
            std::fs::write(&path, content).map_err(|e| e.to_string())?;
            set_mode(&path)?;
            all_refused(
                &root.path,
                &name,
                &[ErrorKind::TypeMismatch, ErrorKind::Corrupt],
                "a file of 4 bytes",
            )?;
            let now = std::fs::read(&path).map_err(|e| e.to_string())?;
            ensure!(now == content, "a 4-byte file was modified");
            std::fs::remove_file(&path).map_err(|e| e.to_string())?;

            // An empty file nobody holds is what a creator killed before writing its new
            // object leaves (FORMAT.md): open finds no object, create replaces it.
            std::fs::write(&path, b"").map_err(|e| e.to_string())?;
            set_mode(&path)?;
            match open_in(&root.path, &name) {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                other => {
                    return Err(format!(
                        "open over an unheld empty file: expected NotFound, got {:?}",
                        other.map(|_| ())
                    ));
                }
            }
            ensure!(!path.exists(), "open left the dead creator's empty file");
            std::fs::write(&path, b"").map_err(|e| e.to_string())?;
            set_mode(&path)?;
            let (m, existed) =
                create_in(&root.path, &name, true).ctx("create over an unheld empty file")?;
            ensure!(
                !existed,
                "create over an empty file reported opened_existing"
            );
            let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
            ensure!(len == 4096, "the new object file is {len} bytes");
            m.release().ctx("release the initial ownership")?;
            drop(m);

            // A directory.
            std::fs::create_dir(&path).map_err(|e| e.to_string())?;
            all_refused(&root.path, &name, &[ErrorKind::TypeMismatch], "a directory")?;
            ensure!(path.is_dir(), "the directory was replaced");
            std::fs::remove_dir(&path).map_err(|e| e.to_string())?;

            // A FIFO: must not block the open (bounded by running it on a helper thread).
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|e| e.to_string())?;
            // SAFETY: a valid NUL-terminated path.
            #[allow(unsafe_code)]
            let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
            ensure!(rc == 0, "mkfifo: {}", std::io::Error::last_os_error());
            let (root_path, n) = (root.path.clone(), name.clone());
            let r = on_new_thread(move || {
                all_refused(&root_path, &n, &[ErrorKind::TypeMismatch], "a FIFO")
            })?;
            r?;
            std::fs::remove_file(&path).map_err(|e| e.to_string())?;

            // The name is usable again once the foreign file is gone.
            let (m, existed) = create_in(&root.path, &name, false).ctx("create after cleanup")?;
            ensure!(
                !existed,
                "create after removing the foreign file reported opened_existing"
            );
            drop(m);
        }
        Ok(())
    }
}
