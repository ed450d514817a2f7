//! Helpers shared by the Linux-only test crates (`src/sys/linux/tests`, `tests/reliability`),
//! which include this file with `#[path]`: a private namespace root, unique names, child
//! processes with watchdogs, a small random generator. Each crate uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The name of the thread registry's file in a user directory (the portable backend's is
/// its own, so that it never shares one with the Linux backend).
pub const REGISTRY_FILE: &str = if cfg!(feature = "portable-backend") {
    "registry-portable"
} else {
    "registry"
};

/// Registry slots a process uses besides its threads' (the portable backend's process slot).
pub const PROCESS_SLOTS: usize = if cfg!(feature = "portable-backend") {
    1
} else {
    0
};

/// How long any single step may take before the test fails instead of hanging.
pub const WATCHDOG: Duration = Duration::from_secs(20);

pub type TestResult = Result<(), libtest_mimic::Failed>;

/// Points `NAMEDMUTEX_ROOT` at a fresh directory (mode 0755) for this process and children.
pub fn init_root() {
    let exe = std::env::current_exe().expect("current_exe");
    let crate_name = exe
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.split('-').next())
        .unwrap_or("tests")
        .to_owned();
    let dir = std::env::temp_dir().join(format!("namedmutex-{crate_name}-{}", std::process::id()));
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
    let dir = root().join(format!("sub-{}", unique(tag)));
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

/// The effective uid of this process.
pub fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

pub fn is_root() -> bool {
    uid() == 0
}

/// The directory of `Local\` objects of `uid` under `root`.
pub fn local_dir_of(root: &Path, uid: u32) -> PathBuf {
    root.join(format!("namedmutex-{uid}")).join("local")
}

/// The directory of our `Local\` objects under `root`.
pub fn local_dir(root: &Path) -> PathBuf {
    local_dir_of(root, uid())
}

/// The object files left under `root`: every entry of our local directory, and every
/// `namedmutex-global.*` or temporary file in the root itself.
pub fn leftover_files(root: &Path) -> Vec<String> {
    let mut left = Vec::new();
    if let Ok(entries) = std::fs::read_dir(local_dir(root)) {
        for e in entries.flatten() {
            left.push(format!("local/{}", e.file_name().to_string_lossy()));
        }
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("namedmutex-global.") || name.starts_with(".nmtx-tmp") {
                left.push(name);
            }
        }
    }
    left
}

/// How a child ended, in words.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (_, Some(sig)) => format!("signal {sig}"),
        _ => format!("{status:?}"),
    }
}

/// A child process running `--child ROLE args`, spoken to in lines.
pub struct Peer {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

/// Who a child runs as.
#[derive(Clone, Copy)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// The copy of this binary that the user can execute.
    pub exe: &'static Path,
}

impl Peer {
    pub fn spawn(role: &str, args: &[&str], env: &[(&str, &str)]) -> Peer {
        Peer::spawn_with(None, role, args, env, |_| {})
    }

    /// Runs the child as another user with `setpriv`.
    pub fn spawn_as(user: RunAs, role: &str, args: &[&str], env: &[(&str, &str)]) -> Peer {
        Peer::spawn_with(Some(user), role, args, env, |_| {})
    }

    /// Runs the child through a wrapper program (`unshare ...`), which runs this binary.
    pub fn spawn_wrapped(
        wrapper: &[&str],
        role: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Peer {
        Peer::spawn_with(None, role, args, env, |cmd| {
            let exe = std::env::current_exe().unwrap();
            *cmd = Command::new(wrapper[0]);
            cmd.args(&wrapper[1..]).arg(exe);
        })
    }

    /// `adjust` may change or replace the command before the role and its arguments are
    /// added.
    pub fn spawn_with(
        user: Option<RunAs>,
        role: &str,
        args: &[&str],
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Peer {
        let mut cmd = match user {
            None => Command::new(std::env::current_exe().unwrap()),
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", u.uid))
                    .arg(format!("--regid={}", u.gid))
                    .arg("--clear-groups")
                    .arg(u.exe)
                    .current_dir("/");
                c
            }
        };
        adjust(&mut cmd);
        cmd.arg("--child").arg(role).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // A child never outlives a test process that dies.
        // SAFETY: prctl is async-signal-safe and touches nothing of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
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

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next line the child prints, or a failure after `limit`.
    pub fn line_within(&mut self, limit: Duration) -> Result<String, String> {
        self.lines.recv_timeout(limit).map_err(|e| {
            let _ = self.child.kill();
            format!(
                "child {} gave no answer within {limit:?} ({e})",
                self.child.id()
            )
        })
    }

    /// Checks that the child prints nothing for `limit` (it is blocked, as it should be);
    /// the child keeps running.
    pub fn silent_for(&mut self, limit: Duration) -> Result<(), String> {
        match self.lines.recv_timeout(limit) {
            Ok(line) => Err(format!("child {} said {line:?}", self.child.id())),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(()),
            Err(e) => Err(format!("child {} ended ({e})", self.child.id())),
        }
    }

    /// The next line the child prints, or a failure after the watchdog.
    pub fn expect_line(&mut self) -> Result<String, String> {
        self.line_within(WATCHDOG)
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

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the child to end, without closing its stdin.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!(
                    "child {} did not exit within {limit:?}",
                    self.child.id()
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits (bounded) for the child to exit on its own, then collects the lines it wrote
    /// that were not read yet.
    pub fn exit_and_lines(&mut self) -> Result<(ExitStatus, Vec<String>), String> {
        let status = self.wait_exit(WATCHDOG)?;
        let mut lines = Vec::new();
        while let Ok(l) = self.line_within(Duration::from_millis(200)) {
            lines.push(l);
        }
        Ok((status, lines))
    }

    /// Closes stdin, waits (bounded) for the child to exit and returns its exit code.
    pub fn finish(mut self) -> Result<i32, String> {
        drop(self.stdin.take());
        let status = self.wait_exit(WATCHDOG)?;
        status
            .code()
            .ok_or_else(|| format!("child ended by {}", describe(status)))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails with `message` unless `cond`.
/// Returns once the main thread of process `pid` sleeps in a futex call (it waits on a
/// mutex), or fails after the watchdog.
pub fn until_asleep(pid: i32) -> Result<(), String> {
    let path = format!("/proc/{pid}/syscall");
    let futex = libc::SYS_futex.to_string();
    let start = Instant::now();
    loop {
        let line = std::fs::read_to_string(&path).unwrap_or_default();
        if line.split_whitespace().next() == Some(futex.as_str()) {
            return Ok(());
        }
        if start.elapsed() > WATCHDOG {
            return Err(format!(
                "process {pid} never slept in a futex call: {line:?}"
            ));
        }
        std::thread::yield_now();
    }
}

pub fn check(cond: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(message()) }
}

/// Polls `cond` (a look at shared memory or the file system) until it holds, failing after
/// `limit` with `what`.
pub fn wait_until(
    limit: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// xorshift64*: small, fast, reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Seeded from the clock and pid.
    pub fn from_time() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng::new(t ^ (u64::from(std::process::id()) << 32))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(pid, sig) };
}

/// Damaged versions of the valid object page `good`, each with the error kind that create
/// and open of it must give (all Win32 error 6): every header check at its boundary and far
/// from it, a wrong name (`good` itself, under another name), a truncated and an oversized
/// file, and garbage. Shared by the `Local\` cases (`src/sys/linux/tests/files.rs`) and the
/// `Global\` ones (`tests/reliability/badfiles.rs`).
pub fn damaged_pages(good: &[u8]) -> Vec<(&'static str, Vec<u8>, namedmutex::ErrorKind)> {
    use namedmutex::ErrorKind::{Corrupt, Incompatible, TypeMismatch};
    let put = |bytes: &[u8], offset: usize| {
        let mut b = good.to_vec();
        b[offset..offset + bytes.len()].copy_from_slice(bytes);
        b
    };
    let u32_at = |value: u32, offset: usize| put(&value.to_le_bytes(), offset);
    let mut rng = Rng::new(12345);
    let garbage: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    vec![
        ("bad-magic", put(b"notmagic", 0), TypeMismatch),
        ("bad-version", u32_at(99, 8), Incompatible),
        ("bad-version-0", u32_at(0, 8), Incompatible),
        ("bad-kind", u32_at(2, 12), TypeMismatch),
        ("bad-kind-far", u32_at(7, 12), TypeMismatch),
        ("bad-size-field", u32_at(4095, 16), Corrupt),
        ("bad-size-field-far", u32_at(8192, 16), Corrupt),
        ("bad-name-len", u32_at(1025, 20), Corrupt),
        ("bad-name-len-far", u32_at(5000, 20), Corrupt),
        ("wrong-name", good.to_vec(), Corrupt),
        ("truncated", good[..4095].to_vec(), Corrupt),
        ("truncated-far", good[..100].to_vec(), Corrupt),
        ("oversized", [good, &[0][..]].concat(), Corrupt),
        ("oversized-far", [good, &[0; 4096][..]].concat(), Corrupt),
        ("garbage", garbage, TypeMismatch),
    ]
}

/// Writes `bytes` as the object file `path` of the mutex `name` (mode 0600), then checks
/// that create and open of `name` both fail with `want` (Win32 error 6) and leave the file
/// exactly as it was.
pub fn check_refused(
    opts: &namedmutex::MutexOptions,
    name: &str,
    path: &Path,
    bytes: &[u8],
    want: namedmutex::ErrorKind,
) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("write {}: {e}", path.display()))?;
    set_mode(path, 0o600);
    for op in ["create", "open"] {
        let result = match op {
            "create" => opts.create(name).map(|_| ()),
            _ => opts.open(name).map(|_| ()),
        };
        let err = result
            .err()
            .ok_or_else(|| format!("{op} {name}: accepted a bad file"))?;
        check(err.kind() == want && err.win32_code() == Some(6), || {
            format!(
                "{op} {name}: {:?} ({err}, code {:?}), want {want:?} (6)",
                err.kind(),
                err.win32_code()
            )
        })?;
    }
    let now = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    check(now == bytes, || {
        format!("{name}: the refused file was changed")
    })
}

/// The `main` of a Linux-only test binary: runs `child` for `--child ROLE ...` (the binary
/// re-executed as a helper process); otherwise runs the trials `trials` makes, in a private
/// namespace root that is removed afterwards.
pub fn harness(child: fn(&[String]) -> i32, trials: impl FnOnce() -> Vec<libtest_mimic::Trial>) {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        std::process::exit(child(&args[2..]));
    }
    init_root();
    let conclusion = libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials());
    cleanup_root();
    conclusion.exit();
}

/// Child side: writes one line to the parent (stdout, flushed at once).
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

/// Child side: blocks until the parent closes our stdin (or the parent dies).
pub fn wait_for_stdin_close() {
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
}
