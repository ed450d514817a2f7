//! Other builds of this workspace that a scenario measures beside the one running (the
//! portable backend's harness, the static musl build of the command): built here, with the
//! cargo that runs this harness, so that a full run measures the code it was started from.

use std::path::{Path, PathBuf};

/// The workspace this harness was built from.
pub fn workspace() -> Result<&'static Path, String> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| "no workspace above the bench crate".to_owned())
}

/// `cargo build --release -q` with `args`, in the workspace; `what` names the build in
/// errors.
pub fn cargo_release(args: &[&str], what: &str) -> Result<(), String> {
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .current_dir(workspace()?)
        .args(["build", "--release", "-q"])
        .args(args)
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build of {what}: {status}"))
    }
}

/// The workspace's `target` directory.
pub fn target_dir() -> Result<PathBuf, String> {
    Ok(workspace()?.join("target"))
}
