//! Waiting on several mutexes at once (`WaitForMultipleObjects`): the handles' tokens, then
//! the protocol's wait-any or wait-all (`crate::protocol::multi`), which sleeps on up to 128
//! words in one `futex_waitv` call (64 mutexes × their owners' lifelines).

use super::object::Object;
use crate::protocol::multi;
use crate::sys::contract::WaitAny as Multi;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::time::Duration;

/// The most mutexes one wait takes (`MAXIMUM_WAIT_OBJECTS`).
pub(super) const MAX_OBJECTS: usize = 64;

pub(super) fn wait(objs: &[&Object], all: bool, timeout: Option<Duration>) -> Result<Multi> {
    if objs.is_empty() || objs.len() > MAX_OBJECTS {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            format!(
                "a wait takes 1 to {MAX_OBJECTS} mutexes, not {}",
                objs.len()
            ),
        ));
    }
    let mut tokens = Vec::with_capacity(objs.len());
    for obj in objs {
        tokens.push(obj.token()?);
    }
    if all {
        multi::wait_all(objs, &tokens, timeout)
    } else {
        multi::wait_any(objs, &tokens, timeout)
    }
}
