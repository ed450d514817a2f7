//! `SECURITY_ATTRIBUTES` for a create: whether the handle is inheritable, and the DACL that
//! says who may open the object.
//!
//! | name | descriptor |
//! |---|---|
//! | unnamed | none (the token's default): nobody can open it by name anyway |
//! | `name`, `Local\name` | `D:P(A;;GA;;;<user SID>)`, whatever [`Security`] says: `Local\` objects are private to their user on every platform |
//! | `Global\name`, [`Security::CurrentUser`] | `D:P(A;;GA;;;<user SID>)` |
//! | `Global\name`, [`Security::Everyone`] | `D:P(A;;GA;;;WD)` |
//! | `Global\name`, [`Security::UnixGroup`] | [`ErrorKind::InvalidParameter`] |
//!
//! `P` protects the DACL from inheriting the directory's entries, and `GA` (`GENERIC_ALL`)
//! maps to `MUTEX_ALL_ACCESS`. The user is the process token's user.

use super::error;
use super::handle::Handle;
use super::name::{from_wide_ptr, to_wide};
use crate::sys::Spec;
use crate::sys::contract::Security;
use crate::sys::contract::{Error, ErrorKind, Result};
use crate::sys::contract::{Name, Namespace};
use std::ffi::c_void;
use std::sync::OnceLock;
use windows_sys::Win32::Foundation::{HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
    TokenUser,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// `SECURITY_ATTRIBUTES` and the descriptor it points to, which lives as long as it does.
pub(super) struct Attributes {
    sa: SECURITY_ATTRIBUTES,
    // Owns the memory `sa.lpSecurityDescriptor` points to; it is on the heap, so moving
    // `Attributes` does not move it.
    _descriptor: Option<LocalDescriptor>,
}

impl Attributes {
    /// The attributes for creating `name` with `opts`; `what` names the object in errors.
    pub(super) fn for_create(
        name: Option<&Name<'_>>,
        opts: &Spec,
        what: &str,
    ) -> Result<Attributes> {
        let sddl = match name.map(|n| n.namespace) {
            None => None,
            Some(Namespace::Local) => Some(owner_only(what)?),
            Some(Namespace::Global) => match opts.security {
                Security::CurrentUser => Some(owner_only(what)?),
                Security::Everyone => Some("D:P(A;;GA;;;WD)".to_owned()),
                Security::UnixGroup(gid) => {
                    return Err(Error::new(
                        ErrorKind::InvalidParameter,
                        format!(
                            "cannot create {what}: Security::UnixGroup({gid}) has no meaning on Windows; use CurrentUser or Everyone"
                        ),
                    ));
                }
            },
        };
        let descriptor = sddl
            .map(|sddl| LocalDescriptor::from_sddl(&sddl, what))
            .transpose()?;
        let sa = SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: descriptor.as_ref().map_or(std::ptr::null_mut(), |d| d.0),
            bInheritHandle: opts.inheritable.into(),
        };
        Ok(Attributes {
            sa,
            _descriptor: descriptor,
        })
    }

    /// For the `lpMutexAttributes` parameter; valid while `self` is.
    pub(super) fn as_ptr(&self) -> *const SECURITY_ATTRIBUTES {
        &self.sa
    }
}

/// A security descriptor allocated by the OS with `LocalAlloc`, freed with `LocalFree`.
struct LocalDescriptor(PSECURITY_DESCRIPTOR);

impl LocalDescriptor {
    fn from_sddl(sddl: &str, what: &str) -> Result<LocalDescriptor> {
        let wide = to_wide(sddl);
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `wide` is NUL-terminated and alive for the call; `sd` is a valid place for
        // the result; the size out-parameter is optional.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 || sd.is_null() {
            return Err(error::last(format!(
                "cannot create {what}: cannot build the security descriptor {sddl:?}"
            )));
        }
        Ok(LocalDescriptor(sd))
    }
}

impl Drop for LocalDescriptor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from ConvertStringSecurityDescriptorToSecurityDescriptorW,
        // which allocates with LocalAlloc, and is freed only here.
        unsafe { LocalFree(self.0) };
    }
}

/// The SDDL of a DACL that grants everything to the current user and nothing to anyone else.
fn owner_only(what: &str) -> Result<String> {
    Ok(format!("D:P(A;;GA;;;{})", current_user_sid(what)?))
}

/// The process token's user SID as a string (`S-1-5-21-...`). It cannot change during the
/// life of the process, so it is looked up once.
pub(super) fn current_user_sid(what: &str) -> Result<&'static str> {
    static SID: OnceLock<String> = OnceLock::new();
    if let Some(sid) = SID.get() {
        return Ok(sid);
    }
    let sid = look_up_user_sid()
        .map_err(|(code, step)| error::from_code(code, format!("cannot create {what}: {step}")))?;
    Ok(SID.get_or_init(|| sid))
}

/// Reads the user SID from the process token. On failure: the Win32 code and the step.
fn look_up_user_sid() -> std::result::Result<String, (u32, &'static str)> {
    let mut raw_token: HANDLE = std::ptr::null_mut();
    // SAFETY: the current-process pseudo-handle needs no closing; `raw_token` is a valid place
    // for the new handle.
    let ok = unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut raw_token) };
    if ok == 0 {
        return Err((error::last_error(), "cannot open the process token"));
    }
    // SAFETY: OpenProcessToken succeeded, so `raw_token` is a new handle only we hold.
    let token = unsafe { Handle::from_raw(raw_token) }
        .ok_or((error::last_error(), "cannot open the process token"))?;

    // TOKEN_USER is followed by the SID it points to, so its size is only known by asking.
    let mut needed = 0u32;
    // SAFETY: a NULL buffer of length 0 asks for the size, written to `needed`.
    unsafe {
        GetTokenInformation(token.raw(), TokenUser, std::ptr::null_mut(), 0, &mut needed);
    }
    if needed == 0 {
        return Err((error::last_error(), "cannot read the token's user"));
    }
    // u64 elements keep the buffer aligned for TOKEN_USER (pointer alignment).
    let mut buffer = vec![0u64; (needed as usize).div_ceil(size_of::<u64>())];
    let buffer_len = (buffer.len() * size_of::<u64>()) as u32;
    // SAFETY: `buffer` is writable for `buffer_len` bytes and suitably aligned.
    let ok = unsafe {
        GetTokenInformation(
            token.raw(),
            TokenUser,
            buffer.as_mut_ptr().cast::<c_void>(),
            buffer_len,
            &mut needed,
        )
    };
    if ok == 0 {
        return Err((error::last_error(), "cannot read the token's user"));
    }
    // SAFETY: GetTokenInformation filled `buffer` with a TOKEN_USER (aligned, see above),
    // whose `Sid` points into the same buffer, which lives until the end of this function.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };

    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` is a valid SID (see above); `text` is a valid place for the result.
    let ok = unsafe { ConvertSidToStringSidW(sid, &mut text) };
    if ok == 0 || text.is_null() {
        return Err((error::last_error(), "cannot convert the user's SID to text"));
    }
    // SAFETY: ConvertSidToStringSidW returned a NUL-terminated string, allocated with
    // LocalAlloc, that we free right after copying it.
    let sid_string = unsafe {
        let s = from_wide_ptr(text);
        LocalFree(text.cast::<c_void>());
        s
    };
    Ok(sid_string)
}
