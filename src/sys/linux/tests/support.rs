//! Shared helpers: a private namespace root, unique names, child processes with watchdogs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long any single step may take before the test fails instead of hanging.
pub const WATCHDOG: Duration = Duration::from_secs(20);

/// Points `NAMEDMUTEX_ROOT` at a fresh directory for this test process and its children.
pub fn init_root() {
    let dir = std::env::temp_dir().join(format!("namedmutex-linux-tests-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test root");
    set_mode(&dir, 0o755);
    // SAFETY: called at the start of main, before any other thread exists.
    unsafe { std::env::set_var("NAMEDMUTEX_ROOT", &dir) };
}

/// The test root.
pub fn root() -> PathBuf {
    PathBuf::from(std::env::var_os("NAMEDMUTEX_ROOT").expect("root set"))
}

/// Removes the test root.
pub fn cleanup_root() {
    let _ = std::fs::remove_dir_all(root());
}

/// A fresh directory (mode 0755) for tests that need their own root.
pub fn fresh_root(tag: &str) -> PathBuf {
    let dir = root().join(format!("sub-{tag}-{}", unique("r")));
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o755);
    dir
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A name unique to this process and call.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The uid of this process.
pub fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The directory of `Local\` objects under `root`.
pub fn local_dir(root: &Path) -> PathBuf {
    root.join(format!("namedmutex-{}", uid())).join("local")
}

/// Whether this process may create users, namespaces and chown files.
pub fn is_root() -> bool {
    uid() == 0
}

/// A child process running `--child ROLE args`, spoken to in lines.
pub struct Peer {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    pub fn spawn(role: &str, args: &[&str], env: &[(&str, &str)]) -> Peer {
        Peer::spawn_command(
            Command::new(std::env::current_exe().unwrap()),
            role,
            args,
            env,
        )
    }

    /// Runs the child through a wrapper program (`unshare`, ...).
    pub fn spawn_wrapped(
        wrapper: &[&str],
        role: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Peer {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(std::env::current_exe().unwrap());
        Peer::spawn_command(cmd, role, args, env)
    }

    fn spawn_command(mut cmd: Command, role: &str, args: &[&str], env: &[(&str, &str)]) -> Peer {
        cmd.arg("--child").arg(role).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Peer {
            child,
            stdin,
            lines,
        }
    }

    /// The next line the child prints, or a failure after the watchdog.
    pub fn expect_line(&mut self) -> Result<String, String> {
        self.lines.recv_timeout(WATCHDOG).map_err(|e| {
            let _ = self.child.kill();
            format!(
                "child {} gave no answer within {WATCHDOG:?} ({e})",
                self.child.id()
            )
        })
    }

    /// Waits for a line that starts with `prefix`.
    pub fn expect(&mut self, prefix: &str) -> Result<String, String> {
        let line = self.expect_line()?;
        if line.starts_with(prefix) {
            Ok(line)
        } else {
            let _ = self.child.kill();
            Err(format!(
                "expected a line starting with {prefix:?}, got {line:?}"
            ))
        }
    }

    pub fn send(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the child to exit (bounded) and returns its exit code.
    pub fn finish(mut self) -> Result<i32, String> {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + WATCHDOG;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status.code().unwrap_or(-1));
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                return Err("child did not exit within the watchdog".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails with `message` unless `cond`.
pub fn check(cond: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(message()) }
}
