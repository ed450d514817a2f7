//! `list` and `info` on Windows: the kernel's object directories, and each mutex's state.
//!
//! `Local\` names live in the session's directory (`\Sessions\<id>\BaseNamedObjects`),
//! `Global\` names in `\BaseNamedObjects`. `list` reads the directory whole (`directory.rs`)
//! and keeps the entries of type `Mutant`; for each (and for
//! `info`), a handle with only `MUTANT_QUERY_STATE` access is opened by name and asked with
//! `NtQueryMutant` for its count and abandoned state, and with `NtQueryObject` how many
//! handles the object has. Opening a handle changes nothing about ownership; the object
//! lives a moment longer while the handle is open, as a handle of a process inspecting it
//! on Windows does.
//!
//! What Windows tells: held or free, the owner's recursion count, abandoned, the number of
//! handles, and, on Windows 10 and later, the owner's process and thread
//! (`MutantOwnerInformation`; Wine does not answer it: then the owner is unknown). It does
//! not tell who created an object, when, or how many threads wait.

use super::RawMutex;
use super::directory;
use super::error;
use super::handle::Handle;
use super::name::to_wide;
use crate::sys::contract::Result;
use crate::sys::contract::{MutexInfo, OwnerInfo};
use crate::sys::contract::{Name, Namespace};
use crate::sys::{Inspect, Spec, Swept};
use windows_sys::Wdk::Foundation::{NtQueryObject, OBJECT_ATTRIBUTES, ObjectBasicInformation};
use windows_sys::Wdk::Storage::FileSystem::NtOpenDirectoryObject;
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_FILE_NOT_FOUND, HANDLE, NTSTATUS, UNICODE_STRING,
};
use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;
use windows_sys::Win32::System::Threading::{GetCurrentProcessId, OpenMutexW};
use windows_sys::Win32::System::WindowsProgramming::PUBLIC_OBJECT_BASIC_INFORMATION;

windows_link::link!("ntdll.dll" "system" fn NtQueryMutant(handle: HANDLE, class: u32, info: *mut core::ffi::c_void, length: u32, returned: *mut u32) -> NTSTATUS);

/// `MUTANT_QUERY_STATE`: the right to ask a mutant its state.
const MUTANT_QUERY_STATE: u32 = 0x0001;
/// `DIRECTORY_QUERY`: the right to list an object directory.
const DIRECTORY_QUERY: u32 = 0x0001;
/// `OBJ_CASE_INSENSITIVE`, as object names are looked up.
const OBJ_CASE_INSENSITIVE: u32 = 0x40;
/// `MutantBasicInformation` and `MutantOwnerInformation`.
const MUTANT_BASIC: u32 = 0;
const MUTANT_OWNER: u32 = 1;

/// `MUTANT_BASIC_INFORMATION`.
#[repr(C)]
#[derive(Default)]
struct MutantBasic {
    current_count: i32,
    owned_by_caller: u8,
    abandoned_state: u8,
}

/// `CLIENT_ID`.
#[repr(C)]
#[derive(Default)]
struct ClientId {
    process: usize,
    thread: usize,
}

impl Inspect for RawMutex {
    fn info(_: &Spec, name: &Name<'_>) -> Result<Option<MutexInfo>> {
        snapshot(name.full, name.namespace)
    }

    fn list(_: &Spec, namespace: Namespace) -> Result<Vec<MutexInfo>> {
        let mut found = Vec::new();
        for object in mutant_names(namespace)? {
            let full = match namespace {
                Namespace::Global => format!("Global\\{object}"),
                Namespace::Local => format!("Local\\{object}"),
            };
            match snapshot(&full, namespace) {
                Ok(Some(mut info)) => {
                    if namespace == Namespace::Local {
                        info.name = object; // as the Linux backend lists them: no prefix
                    }
                    found.push(info);
                }
                Ok(None) => {} // gone meanwhile
                // Gone meanwhile, and the name taken by an object of another type.
                Err(e) if e.kind() == crate::sys::contract::ErrorKind::TypeMismatch => {}
                Err(e) if e.kind() == crate::sys::contract::ErrorKind::AccessDenied => {
                    let name = match namespace {
                        Namespace::Global => format!("Global\\{object}"),
                        Namespace::Local => object,
                    };
                    found.push(MutexInfo::inaccessible(name, namespace, 0, 0));
                }
                Err(e) => return Err(e),
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// Every user's `Local\`: Windows keeps one namespace per session, not per user, and this
    /// lists the caller's session.
    fn list_all_users(opts: &Spec) -> Result<(Vec<MutexInfo>, Vec<u32>)> {
        Ok((Self::list(opts, Namespace::Local)?, Vec::new()))
    }

    /// Windows removes an object with its last handle, whatever killed its processes: there is
    /// never anything to prune.
    fn prune(_: &Spec, _: Namespace) -> Result<Swept> {
        Ok(crate::sys::Swept::default())
    }
}

/// The state of the mutex `full` (a name with its prefix); `None` when there is none.
fn snapshot(full: &str, namespace: Namespace) -> Result<Option<MutexInfo>> {
    let wide = to_wide(full);
    // SAFETY: `wide` is a NUL-terminated UTF-16 string that outlives the call.
    let raw = unsafe { OpenMutexW(MUTANT_QUERY_STATE, 0, wide.as_ptr()) };
    // SAFETY: a non-NULL result is a new handle that nothing else owns.
    let Some(handle) = (unsafe { Handle::from_raw(raw) }) else {
        let code = error::last_error();
        if code == ERROR_FILE_NOT_FOUND {
            return Ok(None);
        }
        let what = if code == ERROR_ACCESS_DENIED {
            format!("the mutex {full:?} may not be inspected by this user")
        } else {
            format!("cannot inspect the mutex {full:?}")
        };
        return Err(error::from_code(code, what));
    };
    let Some(basic) = query_mutant::<MutantBasic>(&handle, MUTANT_BASIC) else {
        return Err(crate::sys::contract::Error::new(
            crate::sys::contract::ErrorKind::Io,
            format!("cannot query the state of the mutex {full:?}"),
        ));
    };
    let held = basic.current_count <= 0;
    let abandoned = basic.abandoned_state != 0;
    let owner = (held || abandoned).then(|| {
        let (pid, tid) = owner_of(&handle);
        OwnerInfo {
            pid,
            tid,
            same_pid_namespace: true,
            uid: None,
            acquired: None,
            alive: !abandoned,
            visible_pid: pid,
            stopped: false,
        }
    });
    let name = match namespace {
        Namespace::Global => full.to_owned(),
        Namespace::Local => full.strip_prefix("Local\\").unwrap_or(full).to_owned(),
    };
    // Ours is one of the handles. Windows records no creator, times or waiters.
    let handles = handle_count(&handle).saturating_sub(1);
    Ok(Some(MutexInfo {
        owner,
        count: if held {
            (1 - basic.current_count) as u32
        } else {
            0
        },
        accessible: true,
        ..MutexInfo::inaccessible(name, namespace, 0, handles)
    }))
}

/// The owner's process and thread, where Windows answers (10 and later).
fn owner_of(handle: &Handle) -> (Option<u32>, Option<u32>) {
    match query_mutant::<ClientId>(handle, MUTANT_OWNER) {
        Some(id) if id.process != 0 => (Some(id.process as u32), Some(id.thread as u32)),
        _ => (None, None),
    }
}

/// `NtQueryMutant` for the information class `class`, whose structure is `T`.
fn query_mutant<T: Default>(handle: &Handle, class: u32) -> Option<T> {
    let mut info = T::default();
    let mut returned = 0u32;
    // SAFETY: `info` is a writable `T`, the structure of `class`, of the length given.
    let status = unsafe {
        NtQueryMutant(
            handle.raw(),
            class,
            (&raw mut info).cast(),
            size_of::<T>() as u32,
            &mut returned,
        )
    };
    (status == 0).then_some(info)
}

/// How many handles the object has (0 when Windows does not say).
fn handle_count(handle: &Handle) -> u32 {
    let mut basic = PUBLIC_OBJECT_BASIC_INFORMATION::default();
    let mut returned = 0u32;
    // SAFETY: `basic` is a writable PUBLIC_OBJECT_BASIC_INFORMATION of the length given.
    let status = unsafe {
        NtQueryObject(
            handle.raw(),
            ObjectBasicInformation,
            (&raw mut basic).cast(),
            size_of::<PUBLIC_OBJECT_BASIC_INFORMATION>() as u32,
            &mut returned,
        )
    };
    if status == 0 { basic.HandleCount } else { 0 }
}

/// The names of the mutants in the object directory of `namespace`.
fn mutant_names(namespace: Namespace) -> Result<Vec<String>> {
    let path = match namespace {
        Namespace::Global => "\\BaseNamedObjects".to_owned(),
        Namespace::Local => {
            let mut session = 0u32;
            // SAFETY: plain call with a pointer to a writable u32.
            if unsafe { ProcessIdToSessionId(GetCurrentProcessId(), &mut session) } == 0 {
                return Err(error::last("cannot find this process's session"));
            }
            format!("\\Sessions\\{session}\\BaseNamedObjects")
        }
    };
    let wide: Vec<u16> = path.encode_utf16().collect();
    let bytes = (wide.len() * 2) as u16;
    let object_name = UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: wide.as_ptr().cast_mut(),
    };
    let attributes = OBJECT_ATTRIBUTES {
        Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: std::ptr::null_mut(),
        ObjectName: &object_name,
        Attributes: OBJ_CASE_INSENSITIVE,
        SecurityDescriptor: std::ptr::null(),
        SecurityQualityOfService: std::ptr::null(),
    };
    let mut raw: HANDLE = std::ptr::null_mut();
    // SAFETY: `attributes` and the name it points to are valid for the call; `raw` receives
    // a new handle.
    let status = unsafe { NtOpenDirectoryObject(&mut raw, DIRECTORY_QUERY, &attributes) };
    if status != 0 {
        return Err(crate::sys::contract::Error::new(
            crate::sys::contract::ErrorKind::Io,
            format!("cannot open the object directory {path} (NTSTATUS {status:#x})"),
        ));
    }
    // SAFETY: NtOpenDirectoryObject succeeded: `raw` is a new handle nothing else owns.
    let dir = unsafe { Handle::from_raw(raw) }.ok_or_else(|| {
        crate::sys::contract::Error::new(crate::sys::contract::ErrorKind::Io, "no directory handle")
    })?;
    Ok(directory::entries(&dir, &path)?
        .into_iter()
        .filter(|entry| entry.type_name == "Mutant")
        .map(|entry| entry.name)
        .collect())
}
