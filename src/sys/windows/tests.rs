//! Windows-only tests: the backend through the crate's API, and the OS's own answers to the
//! calls semantics.md is built on, made directly. They run on Windows and, from Linux, under
//! Wine (`tools/wine/README.md`); where Wine 8 answers differently from Windows the test
//! checks the answer of the system it runs on ([`is_wine`]) and says so.
//!
//! The tests that need a second process start this test executable again with
//! [`CHILD_ENV`] set, running only [`child_entry`].

use super::handle::Handle;
use super::name::to_wide;
use super::{MAX_WAIT_MS, RawMutex, millis_until};
use crate::sys::Backend as _;
use crate::{Access, ErrorKind, MutexOptions, Name, NamedMutex, Namespace, Security, WaitStatus};
use std::ffi::c_void;
use std::os::windows::io::AsRawHandle;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, ERROR_FILENAME_EXCED_RANGE,
    ERROR_INVALID_HANDLE, ERROR_INVALID_NAME, ERROR_INVALID_PARAMETER, ERROR_NOT_OWNER,
    ERROR_PATH_NOT_FOUND, HANDLE, LocalFree, WAIT_ABANDONED, WAIT_FAILED, WAIT_OBJECT_0,
    WAIT_TIMEOUT,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{DACL_SECURITY_INFORMATION, GetKernelObjectSecurity};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Threading::{
    CREATE_MUTEX_INITIAL_OWNER, CreateEventW, CreateMutexExW, MUTEX_ALL_ACCESS, OpenMutexW,
    ReleaseMutex, TerminateProcess, WaitForMultipleObjects, WaitForSingleObject,
};

/// `MUTANT_QUERY_STATE`: the one specific right of a mutex (the same bit as
/// `MUTEX_MODIFY_STATE`).
const MUTANT_QUERY_STATE: u32 = 0x0001;
/// `SYNCHRONIZE`.
const SYNCHRONIZE: u32 = 0x0010_0000;

// ---------------------------------------------------------------------------------------
// Helpers

/// A name no other test (or earlier run) uses.
fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "nmwin-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether this is Wine rather than Windows: Wine's ntdll exports `wine_get_version`.
fn is_wine() -> bool {
    let ntdll = to_wide("ntdll.dll");
    // SAFETY: `ntdll` is NUL-terminated; GetModuleHandleW does not add a reference, and ntdll
    // stays loaded for the life of the process, so the module handle needs no release.
    let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
    if module.is_null() {
        return false;
    }
    // SAFETY: `module` is a loaded module and the name is a NUL-terminated ANSI string.
    unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }.is_some()
}

/// `CreateMutexExW` called directly: the handle (if any) and `GetLastError` right after.
fn raw_create(name: Option<&[u16]>, flags: u32, access: u32) -> (Option<Handle>, u32) {
    super::error::set_last_error(0);
    let name_ptr = name.map_or(std::ptr::null(), <[u16]>::as_ptr);
    // SAFETY: a NULL attributes pointer means the defaults; `name_ptr` is NULL or points to a
    // NUL-terminated string that outlives the call.
    let raw = unsafe { CreateMutexExW(std::ptr::null(), name_ptr, flags, access) };
    let code = super::error::last_error();
    // SAFETY: a non-NULL handle returned by CreateMutexExW is new and ours alone.
    (unsafe { Handle::from_raw(raw) }, code)
}

/// [`raw_create`] of a name given as a `&str`.
fn raw_create_named(name: &str, flags: u32, access: u32) -> (Option<Handle>, u32) {
    raw_create(Some(&to_wide(name)), flags, access)
}

/// `OpenMutexW` called directly.
fn raw_open(name: &str, access: u32) -> (Option<Handle>, u32) {
    let wide = to_wide(name);
    super::error::set_last_error(0);
    // SAFETY: `wide` is NUL-terminated and outlives the call.
    let raw = unsafe { OpenMutexW(access, 0, wide.as_ptr()) };
    let code = super::error::last_error();
    // SAFETY: a non-NULL handle returned by OpenMutexW is new and ours alone.
    (unsafe { Handle::from_raw(raw) }, code)
}

/// `WaitForSingleObject` called directly: its result and, when it failed, `GetLastError`.
fn raw_wait(handle: &Handle, millis: u32) -> (u32, u32) {
    // SAFETY: the handle is open while borrowed.
    let result = unsafe { WaitForSingleObject(handle.raw(), millis) };
    let code = if result == WAIT_FAILED {
        super::error::last_error()
    } else {
        0
    };
    (result, code)
}

/// `ReleaseMutex` called directly: `Ok` or the Win32 code.
fn raw_release(handle: &Handle) -> Result<(), u32> {
    // SAFETY: the handle is open while borrowed.
    if unsafe { ReleaseMutex(handle.raw()) } != 0 {
        Ok(())
    } else {
        Err(super::error::last_error())
    }
}

/// `WaitForMultipleObjects` called directly over `handles` (which may repeat a value).
fn raw_wait_multiple(handles: &[HANDLE], wait_all: bool, millis: u32) -> (u32, u32) {
    // SAFETY: `handles` points to `handles.len()` handles that the caller keeps open; the
    // OS checks the count itself.
    let result = unsafe {
        WaitForMultipleObjects(
            handles.len() as u32,
            handles.as_ptr(),
            wait_all.into(),
            millis,
        )
    };
    let code = if result == WAIT_FAILED {
        super::error::last_error()
    } else {
        0
    };
    (result, code)
}

/// The DACL of the object behind `handle`, in SDDL (`GetKernelObjectSecurity`).
fn dacl_sddl(handle: HANDLE) -> String {
    let mut buffer = vec![0u64; 512];
    let mut needed = 0u32;
    // SAFETY: `buffer` is writable for the length passed; the handle is open.
    let ok = unsafe {
        GetKernelObjectSecurity(
            handle,
            DACL_SECURITY_INFORMATION,
            buffer.as_mut_ptr().cast::<c_void>(),
            (buffer.len() * 8) as u32,
            &mut needed,
        )
    };
    assert_ne!(
        ok,
        0,
        "GetKernelObjectSecurity: {}",
        super::error::last_error()
    );
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `buffer` holds the self-relative descriptor just read; `text` receives a
    // LocalAlloc'd string.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            buffer.as_mut_ptr().cast::<c_void>(),
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            std::ptr::null_mut(),
        )
    };
    assert_ne!(
        ok, 0,
        "ConvertSecurityDescriptorToStringSecurityDescriptorW"
    );
    // SAFETY: `text` is the NUL-terminated string just returned; it is freed right after.
    unsafe {
        let s = super::name::from_wide_ptr(text);
        LocalFree(text.cast::<c_void>());
        s
    }
}

/// [`RawMutex::create`] of `name` with `opts`, for tests that look at the handle itself.
fn raw_mutex(name: &str, opts: &MutexOptions) -> RawMutex {
    let parsed = Name::parse(name).unwrap();
    RawMutex::create(parsed.as_ref().map(Into::into).as_ref(), &opts.spec)
        .unwrap()
        .0
}

/// The environment variable that makes this test executable act as a child process.
const CHILD_ENV: &str = "NAMEDMUTEX_WINDOWS_TEST_CHILD";

/// Starts this test executable again, running only [`child_entry`] with `role`.
///
/// Under Wine, `CreateProcess` has failed once in a CI run with `ERROR_INTERNAL_ERROR`
/// (1359) while other tests started processes too (it passed on the next runs): that code
/// alone is tried again, a few times. Anything else fails the test at once.
fn spawn_child(role: &str) -> Child {
    const ERROR_INTERNAL_ERROR: i32 = 1359;
    let mut tries = 0;
    loop {
        let spawned = Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "--exact",
                "sys::windows::tests::child_entry",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, role)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Err(e) if e.raw_os_error() == Some(ERROR_INTERNAL_ERROR) && tries < 3 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50 * tries));
            }
            other => return other.expect("spawn the child test process"),
        }
    }
}

/// Exit codes of the `inherit:` child role.
const CHILD_TIMED_OUT: i32 = 10;
const CHILD_ACQUIRED: i32 = 11;
const CHILD_ABANDONED: i32 = 12;
const CHILD_ERROR: i32 = 13;

/// Not a test of its own: in a child started by [`spawn_child`] it plays its role, and
/// otherwise it does nothing.
///
/// - `own:NAME`: creates NAME owning it, then sleeps (the parent kills it).
/// - `inherit:VALUE`: adopts the inherited handle VALUE, polls it, and exits with
///   [`CHILD_TIMED_OUT`], [`CHILD_ACQUIRED`] or [`CHILD_ABANDONED`], still owning the mutex
///   if it acquired it.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    if let Some(name) = role.strip_prefix("own:") {
        let (_m, existed) = NamedMutex::create(name, true).expect("child create");
        assert!(!existed);
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(0);
    } else if let Some(value) = role.strip_prefix("inherit:") {
        let value: u64 = value.parse().expect("handle value");
        // SAFETY: the parent passed the value of a handle it made inheritable, and this
        // process uses it nowhere else.
        let m = match unsafe { NamedMutex::from_inherited_handle(value) } {
            Ok(m) => m,
            Err(_) => std::process::exit(CHILD_ERROR),
        };
        let code = match m.wait(Some(Duration::ZERO)) {
            Ok(WaitStatus::TimedOut) => CHILD_TIMED_OUT,
            Ok(WaitStatus::Acquired) => CHILD_ACQUIRED,
            Ok(WaitStatus::Abandoned) => CHILD_ABANDONED,
            Err(_) => CHILD_ERROR,
        };
        // Exits without releasing: the mutex, if acquired, is abandoned.
        std::process::exit(code);
    }
    panic!("unknown child role {role:?}");
}

// ---------------------------------------------------------------------------------------
// The backend through the crate's API

#[test]
fn create_then_create_again_reports_existing_and_ignores_initial_owner() {
    let name = unique("create");
    let (a, existed) = NamedMutex::create(&name, true).unwrap();
    assert!(!existed);
    let (b, existed) = NamedMutex::create(&name, true).unwrap();
    assert!(existed);
    // The first call's thread owns it (count 1); the second call took nothing.
    a.release().unwrap();
    let err = b.release().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotOwner);
    assert_eq!(err.win32_code(), Some(ERROR_NOT_OWNER));
    assert!(err.to_string().contains(&name), "{err}");
}

#[test]
fn local_prefix_and_no_prefix_are_the_same_object() {
    let name = unique("local");
    let (_a, existed) = NamedMutex::create(&name, false).unwrap();
    assert!(!existed);
    let (_b, existed) = NamedMutex::create(&format!("Local\\{name}"), false).unwrap();
    assert!(existed);
    let (_g, existed) = NamedMutex::create(&format!("Global\\{name}"), false).unwrap();
    assert!(!existed, "Global\\ is another namespace");
}

#[test]
fn open_missing_and_open_an_event_map_to_the_common_kinds() {
    let name = unique("open");
    let err = NamedMutex::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.win32_code(), Some(ERROR_FILE_NOT_FOUND));

    let wide = to_wide(&name);
    // SAFETY: default attributes; `wide` is NUL-terminated and outlives the call.
    let raw = unsafe { CreateEventW(std::ptr::null(), 1, 0, wide.as_ptr()) };
    // SAFETY: a non-NULL handle returned by CreateEventW is new and ours alone.
    let _event = unsafe { Handle::from_raw(raw) }.expect("CreateEventW");
    let err = NamedMutex::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    assert_eq!(err.win32_code(), Some(ERROR_INVALID_HANDLE));
    let err = NamedMutex::create(&name, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    assert_eq!(err.win32_code(), Some(ERROR_INVALID_HANDLE));
}

#[test]
fn recursion_and_release_through_a_clone() {
    let m = NamedMutex::create_unnamed(false).unwrap();
    assert_eq!(m.wait(None).unwrap(), WaitStatus::Acquired);
    assert_eq!(m.wait(Some(Duration::ZERO)).unwrap(), WaitStatus::Acquired);
    let copy = m.try_clone().unwrap();
    copy.release().unwrap();
    m.release().unwrap();
    assert_eq!(copy.release().unwrap_err().kind(), ErrorKind::NotOwner);
}

#[test]
fn another_thread_times_out_no_earlier_than_asked() {
    let m = NamedMutex::create_unnamed(true).unwrap();
    let other = m.try_clone().unwrap();
    let (status, elapsed) = std::thread::spawn(move || {
        let start = Instant::now();
        let status = other.wait(Some(Duration::from_millis(50))).unwrap();
        (status, start.elapsed())
    })
    .join()
    .unwrap();
    assert_eq!(status, WaitStatus::TimedOut);
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    m.release().unwrap();
}

#[test]
fn wait_milliseconds_round_up_and_cap() {
    let now = Instant::now();
    assert_eq!(millis_until(now, now), 0);
    assert_eq!(millis_until(now, now + Duration::from_secs(1)), 0);
    assert_eq!(millis_until(now + Duration::from_nanos(1), now), 1);
    assert_eq!(millis_until(now + Duration::from_micros(1500), now), 2);
    assert_eq!(millis_until(now + Duration::from_millis(7), now), 7);
    let far = now + Duration::from_millis(u64::from(u32::MAX) * 3);
    assert_eq!(millis_until(far, now), MAX_WAIT_MS);
    assert_eq!(MAX_WAIT_MS, 0xFFFF_FFFE);
}

#[test]
fn a_timeout_too_large_for_one_call_still_acquires_a_free_mutex() {
    let m = NamedMutex::create_unnamed(false).unwrap();
    assert_eq!(m.wait(Some(Duration::MAX)).unwrap(), WaitStatus::Acquired);
    let long = Duration::from_millis(u64::from(u32::MAX) + 10);
    assert_eq!(m.wait(Some(long)).unwrap(), WaitStatus::Acquired);
    m.release().unwrap();
    m.release().unwrap();
}

#[test]
fn access_rights_are_checked_by_the_os() {
    let name = unique("access");
    let (owner, _) = NamedMutex::create(&name, false).unwrap();
    let sync_only = MutexOptions::new()
        .access(Access::SYNCHRONIZE)
        .open(&name)
        .unwrap();
    assert_eq!(sync_only.wait(None).unwrap(), WaitStatus::Acquired);
    sync_only.release().unwrap();

    let query_only = MutexOptions::new()
        .access(Access::MUTEX_MODIFY_STATE)
        .open(&name)
        .unwrap();
    let err = query_only.wait(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    assert_eq!(err.win32_code(), Some(ERROR_ACCESS_DENIED));
    drop(owner);
}

#[test]
fn created_handle_gets_the_desired_access() {
    let opts = MutexOptions::new().access(Access::MUTEX_MODIFY_STATE);
    let (m, _) = opts.create(&unique("create-access")).unwrap();
    assert_eq!(
        m.wait(Some(Duration::ZERO)).unwrap_err().kind(),
        ErrorKind::AccessDenied
    );
}

#[test]
fn inheritable_handles_and_adoption() {
    let plain = NamedMutex::create_unnamed(false).unwrap();
    assert_eq!(plain.inheritable_handle(), None);
    let m = raw_mutex("", &MutexOptions::new().inheritable(true));
    let value = m.inheritable_handle().expect("inheritable");
    assert!(super::handle::is_inheritable(value as usize as HANDLE, "h").unwrap());
    // A clone is not inheritable, like std's try_clone.
    let clone = m.try_clone().unwrap();
    assert_eq!(clone.inheritable_handle(), None);
    assert!(!super::handle::is_inheritable(clone.handle.raw(), "h").unwrap());

    // Adopting a bad value fails without closing anything.
    // SAFETY: the value is not a handle at all; the call must fail without touching it.
    let err = unsafe { NamedMutex::from_inherited_handle(0x7FFF_FFF0) }.unwrap_err();
    assert_eq!(err.win32_code(), Some(ERROR_INVALID_HANDLE));

    // Adopting a duplicate (standing in for an inherited copy) works.
    let dup = m.handle.duplicate(true, "m").unwrap();
    let dup_value = dup.raw() as usize as u64;
    std::mem::forget(dup);
    // SAFETY: `dup_value` is an inheritable handle to a mutex, forgotten above so that only
    // the adopting NamedMutex owns it.
    let adopted = unsafe { NamedMutex::from_inherited_handle(dup_value) }.unwrap();
    assert_eq!(adopted.name(), None);
    assert_eq!(adopted.inheritable_handle(), Some(dup_value));
    adopted.wait(None).unwrap();
    m.release().unwrap();
}

#[test]
fn an_inherited_unnamed_mutex_is_shared_with_a_child_process() {
    let m = MutexOptions::new()
        .inheritable(true)
        .initial_owner(true)
        .create("")
        .unwrap()
        .0;
    let value = m.inheritable_handle().unwrap();
    // While we own it, the child's poll times out.
    let status = spawn_child(&format!("inherit:{value}")).wait().unwrap();
    assert_eq!(status.code(), Some(CHILD_TIMED_OUT));
    m.release().unwrap();
    // Free: the child acquires it and exits owning it, so it is abandoned.
    let status = spawn_child(&format!("inherit:{value}")).wait().unwrap();
    assert_eq!(status.code(), Some(CHILD_ACQUIRED));
    assert_eq!(
        m.wait(Some(Duration::from_secs(10))).unwrap(),
        WaitStatus::Abandoned
    );
    m.release().unwrap();
}

#[test]
fn security_descriptors_of_created_objects() {
    let user = super::security::current_user_sid("test").unwrap();
    assert!(user.starts_with("S-1-"), "{user}");

    let local = raw_mutex(&unique("sd-local"), &MutexOptions::new());
    let dacl = dacl_sddl(local.handle.raw());
    println!("DACL of a Local\\ object: {dacl}");
    assert!(dacl.contains(user) && !dacl.contains(";WD)"), "{dacl}");

    // Local names are private whatever Security says.
    let everyone = MutexOptions::new().security(Security::Everyone);
    let local_everyone = raw_mutex(&unique("sd-local-everyone"), &everyone);
    let dacl = dacl_sddl(local_everyone.handle.raw());
    assert!(dacl.contains(user) && !dacl.contains(";WD)"), "{dacl}");

    let global = raw_mutex(
        &format!("Global\\{}", unique("sd-global")),
        &MutexOptions::new(),
    );
    let dacl = dacl_sddl(global.handle.raw());
    assert!(dacl.starts_with("D:P") && dacl.contains(user), "{dacl}");

    let global_everyone = raw_mutex(&format!("Global\\{}", unique("sd-everyone")), &everyone);
    let dacl = dacl_sddl(global_everyone.handle.raw());
    println!("DACL of a Global\\ object for Everyone: {dacl}");
    assert!(dacl.contains(";WD)"), "{dacl}");

    let err = MutexOptions::new()
        .security(Security::UnixGroup(100))
        .create(&format!("Global\\{}", unique("sd-group")))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    assert_eq!(err.win32_code(), Some(ERROR_INVALID_PARAMETER));
}

// ---------------------------------------------------------------------------------------
// The OS's own answers (the table in tools/wine/README.md)

#[test]
fn os_accepts_local_global_and_slash_names() {
    for prefix in ["Local\\", "Global\\", "", "a/"] {
        let name = format!("{prefix}{}", unique("accept"));
        let (handle, code) = raw_create_named(&name, 0, MUTEX_ALL_ACCESS);
        assert!(handle.is_some(), "{name}: {code}");
        assert_eq!(code, 0, "{name}");
    }
    let (handle, code) = raw_create_named("a/b", 0, MUTEX_ALL_ACCESS);
    assert!(
        handle.is_some() && (code == 0 || code == ERROR_ALREADY_EXISTS),
        "{code}"
    );
}

#[test]
fn os_refuses_backslashes_and_empty_names_after_a_prefix() {
    for (name, expected) in [
        ("Global\\a\\b", ERROR_PATH_NOT_FOUND),
        ("a\\b", ERROR_PATH_NOT_FOUND),
        ("Foo\\bar", ERROR_PATH_NOT_FOUND),
        ("Local\\", ERROR_INVALID_NAME),
        ("Global\\", ERROR_INVALID_NAME),
    ] {
        let (handle, code) = raw_create_named(name, 0, MUTEX_ALL_ACCESS);
        assert!(handle.is_none(), "{name}");
        assert_eq!(code, expected, "{name}");
    }
}

#[test]
fn os_name_lengths() {
    // 260 and 261 UTF-16 units: the OS takes both; namedmutex refuses 261 before asking it.
    let base = unique("len");
    for len in [260usize, 261] {
        let name = format!("{base}{}", "x".repeat(len - base.len()));
        let (handle, code) = raw_create_named(&name, 0, MUTEX_ALL_ACCESS);
        assert!(handle.is_some(), "{len}: {code}");
        assert_eq!(code, 0, "{len}");
    }
    let err = NamedMutex::create(&"z".repeat(261), false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NameTooLong);
    assert_eq!(err.win32_code(), Some(ERROR_FILENAME_EXCED_RANGE));

    // Much longer names, straight to the OS.
    for len in [32767usize, 40000] {
        let name = format!("{base}{}", "y".repeat(len - base.len()));
        let (handle, code) = raw_create_named(&name, 0, MUTEX_ALL_ACCESS);
        println!(
            "name of {len} units: handle {}, last error {code}",
            handle.is_some()
        );
        if is_wine() {
            // Wine 8 takes any length and silently cuts the name to 32766 units (its
            // RtlInitUnicodeString caps a string at 0xFFFC bytes): the object answers to
            // the first 32766 units, and not to fewer.
            assert!(handle.is_some(), "{len}: {code}");
            assert_eq!(code, 0);
            let (same, code) = raw_open(&name[..32766], MUTEX_ALL_ACCESS);
            assert!(same.is_some(), "{len}: {code}");
            let (shorter, code) = raw_open(&name[..32765], MUTEX_ALL_ACCESS);
            assert!(shorter.is_none());
            assert_eq!(code, ERROR_FILE_NOT_FOUND);
        } else {
            // Windows either takes it or refuses it as too long; never anything else.
            assert!(
                handle.is_some() || code == ERROR_FILENAME_EXCED_RANGE,
                "{len}: {code}"
            );
        }
    }
}

#[test]
fn os_open_with_access_zero() {
    let name = unique("access0");
    let (_owner, _) = raw_create_named(&name, 0, MUTEX_ALL_ACCESS);
    let (handle, code) = raw_open(&name, 0);
    println!(
        "OpenMutexW(access 0): handle {}, last error {code}",
        handle.is_some()
    );
    if is_wine() {
        // Wine 8 differs from Windows here (semantics.md): it opens.
        assert!(handle.is_some(), "{code}");
    } else {
        assert!(handle.is_none());
        assert_eq!(code, ERROR_ACCESS_DENIED);
    }
}

#[test]
fn os_create_ex_with_an_unknown_flag() {
    let name = unique("flag2");
    let (handle, code) = raw_create_named(&name, 2, MUTEX_ALL_ACCESS);
    println!(
        "CreateMutexExW(flags 2): handle {}, last error {code}",
        handle.is_some()
    );
    if is_wine() {
        // Wine 8 ignores flags other than CREATE_MUTEX_INITIAL_OWNER.
        assert!(handle.is_some(), "{code}");
        assert_eq!(code, 0);
    } else {
        // Windows (and ReactOS) refuse them.
        assert!(handle.is_none());
        assert_eq!(code, ERROR_INVALID_PARAMETER);
    }
    // namedmutex checks the flags itself, so its answer is the same everywhere.
    let err =
        crate::synchapi::create_mutex_ex(&unique("flag2"), 2, MUTEX_ALL_ACCESS, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    assert_eq!(err.win32_code(), Some(ERROR_INVALID_PARAMETER));
}

#[test]
fn os_wait_for_multiple_objects_edge_cases() {
    let (a, _) = raw_create(None, 0, MUTEX_ALL_ACCESS);
    let a = a.unwrap();
    let b = a.duplicate(false, "a").unwrap();

    // The same object twice in one wait-all: one handle twice, and two handles.
    let same_twice = raw_wait_multiple(&[a.raw(), a.raw()], true, 0);
    let two_handles = raw_wait_multiple(&[a.raw(), b.raw()], true, 0);
    println!("wait-all [a, a]: {same_twice:?}; wait-all [a, dup(a)]: {two_handles:?}");
    for (result, code) in [same_twice, two_handles] {
        if is_wine() {
            // Wine 8 acquires (twice); Windows refuses with 87.
            assert_eq!(result, WAIT_OBJECT_0);
            raw_release(&a).unwrap();
            raw_release(&a).unwrap();
        } else {
            assert_eq!((result, code), (WAIT_FAILED, ERROR_INVALID_PARAMETER));
        }
    }
    assert_eq!(raw_release(&a), Err(ERROR_NOT_OWNER));

    let none = raw_wait_multiple(&[], false, 0);
    println!("nCount 0: {none:?}");
    assert_eq!(none, (WAIT_FAILED, ERROR_INVALID_PARAMETER));

    let many = vec![a.raw(); 65];
    let too_many = raw_wait_multiple(&many, false, 0);
    println!("nCount 65: {too_many:?}");
    assert_eq!(too_many, (WAIT_FAILED, ERROR_INVALID_PARAMETER));
    assert_eq!(
        raw_release(&a),
        Err(ERROR_NOT_OWNER),
        "nothing was acquired"
    );
}

#[test]
fn os_abandoned_when_the_owning_thread_returns() {
    let (m, _) = raw_create(None, 0, MUTEX_ALL_ACCESS);
    let m = m.unwrap();
    let theirs = m.duplicate(false, "m").unwrap();
    std::thread::spawn(move || {
        assert_eq!(raw_wait(&theirs, 0).0, WAIT_OBJECT_0);
        // Returns owning it (and closes its handle).
    })
    .join()
    .unwrap();
    assert_eq!(raw_wait(&m, 1000).0, WAIT_ABANDONED);
    assert_eq!(raw_wait(&m, 0).0, WAIT_OBJECT_0, "reported once; recursion");
    raw_release(&m).unwrap();
    raw_release(&m).unwrap();
    assert_eq!(raw_release(&m), Err(ERROR_NOT_OWNER));
}

#[test]
fn os_abandoned_when_the_owning_process_is_terminated() {
    let name = unique("killed");
    let mut child = spawn_child(&format!("own:{name}"));
    // Creation and ownership are atomic: once the name exists, the child owns it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let handle = loop {
        if let (Some(h), _) = raw_open(&name, MUTEX_ALL_ACCESS) {
            break h;
        }
        assert!(Instant::now() < deadline, "the child never created {name}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(raw_wait(&handle, 0).0, WAIT_TIMEOUT);
    // SAFETY: the child's process handle is open while `child` lives.
    let ok = unsafe { TerminateProcess(child.as_raw_handle(), 1) };
    assert_ne!(ok, 0);
    child.wait().unwrap();
    assert_eq!(raw_wait(&handle, 10_000).0, WAIT_ABANDONED);
    raw_release(&handle).unwrap();
    // The same through the crate.
    let m = NamedMutex::open(&name).unwrap();
    assert_eq!(m.wait(Some(Duration::ZERO)).unwrap(), WaitStatus::Acquired);
    m.release().unwrap();
}

#[test]
fn os_owner_closes_its_only_handle_then_its_thread_exits() {
    // Someone else keeps the object alive: the closed handle did not release it, and the
    // thread's exit abandons it.
    let name = unique("close-kept");
    let (keeper, _) = raw_create_named(&name, 0, MUTEX_ALL_ACCESS);
    let keeper = keeper.unwrap();
    let thread_name = name.clone();
    std::thread::spawn(move || {
        let (h, _) = raw_open(&thread_name, MUTEX_ALL_ACCESS);
        let h = h.unwrap();
        assert_eq!(raw_wait(&h, 0).0, WAIT_OBJECT_0);
        drop(h); // its only handle
        std::thread::sleep(Duration::from_millis(20));
    })
    .join()
    .unwrap();
    assert_eq!(raw_wait(&keeper, 1000).0, WAIT_ABANDONED);
    raw_release(&keeper).unwrap();

    // Nobody else has a handle: closing the last one destroys the object, owned or not,
    // and the name is free again.
    let name = unique("close-last");
    let thread_name = name.clone();
    std::thread::spawn(move || {
        let (h, code) =
            raw_create_named(&thread_name, CREATE_MUTEX_INITIAL_OWNER, MUTEX_ALL_ACCESS);
        assert_eq!(code, 0);
        drop(h);
        let (again, code) = raw_open(&thread_name, MUTEX_ALL_ACCESS);
        assert!(again.is_none());
        assert_eq!(code, ERROR_FILE_NOT_FOUND);
    })
    .join()
    .unwrap();
    let (h, code) = raw_create_named(&name, 0, MUTEX_ALL_ACCESS);
    assert_eq!(code, 0, "a new object");
    assert_eq!(raw_wait(&h.unwrap(), 0).0, WAIT_OBJECT_0, "not abandoned");
}

#[test]
fn os_query_state_only_handle() {
    let name = unique("query");
    let (owner, _) = raw_create_named(&name, CREATE_MUTEX_INITIAL_OWNER, MUTEX_ALL_ACCESS);
    let owner = owner.unwrap();
    let (query, code) = raw_open(&name, MUTANT_QUERY_STATE);
    let query = query.unwrap_or_else(|| panic!("open MUTANT_QUERY_STATE: {code}"));
    // Waiting needs SYNCHRONIZE.
    assert_eq!(raw_wait(&query, 0), (WAIT_FAILED, ERROR_ACCESS_DENIED));
    // Releasing needs no particular right: ownership is what counts.
    let released = raw_release(&query);
    println!("ReleaseMutex via MUTANT_QUERY_STATE: {released:?}");
    assert_eq!(released, Ok(()));
    assert_eq!(raw_release(&owner), Err(ERROR_NOT_OWNER), "count was 1");

    let (sync, _) = raw_open(&name, SYNCHRONIZE);
    let sync = sync.unwrap();
    assert_eq!(raw_wait(&sync, 0).0, WAIT_OBJECT_0);
    assert_eq!(raw_release(&sync), Ok(()));
}

/// `list` and `info` (issue 17): a held mutex with its count and handles, a free one, an
/// abandoned one, both namespaces, and an absent name.
#[test]
fn list_and_info_read_the_kernel_objects() {
    let held = unique("info-held");
    let (m, _) = NamedMutex::create(&held, true).unwrap();
    assert!(m.wait(Some(Duration::ZERO)).unwrap().is_acquired()); // count 2
    let clone = m.try_clone().unwrap();
    let info = crate::info(&held).unwrap().expect("held mutex");
    assert_eq!(info.name, held);
    assert_eq!(info.count, 2);
    assert!(info.handles >= 2, "two handles, found {}", info.handles);
    let owner = info.owner.expect("held: an owner");
    assert!(owner.alive);
    if !is_wine() {
        assert_eq!(owner.pid, Some(std::process::id()));
    }

    let global = format!("Global\\{}", unique("info-global"));
    let (g, _) = NamedMutex::create(&global, false).unwrap();
    let free = crate::info(&global).unwrap().expect("global mutex");
    assert!(free.owner.is_none() && free.count == 0);
    assert!(
        crate::list(Namespace::Global)
            .unwrap()
            .iter()
            .any(|i| i.name == global)
    );
    let local = crate::list(Namespace::Local).unwrap();
    let row = local.iter().find(|i| i.name == held).expect("listed");
    assert_eq!(row.count, 2);

    // A thread that ends owning leaves it abandoned.
    let abandoned = unique("info-abandoned");
    let (a, _) = NamedMutex::create(&abandoned, false).unwrap();
    let a = std::sync::Arc::new(a);
    let owner_side = a.clone();
    std::thread::spawn(move || assert!(owner_side.wait(None).unwrap().is_acquired()))
        .join()
        .unwrap();
    let info = crate::info(&abandoned).unwrap().unwrap();
    assert!(
        info.owner.as_ref().is_some_and(|o| !o.alive),
        "abandoned: {info:?}"
    );
    assert_eq!(a.wait(Some(Duration::ZERO)).unwrap(), WaitStatus::Abandoned);
    a.release().unwrap();

    assert!(crate::info(&unique("info-absent")).unwrap().is_none());
    m.release().unwrap();
    m.release().unwrap();
    drop((clone, g));
}
