//! Integration tests: they drive the real `namedmutex` binary, each test in a fresh
//! namespace root (`NAMEDMUTEX_ROOT`, a new directory of mode 0755). Every wait on a child
//! process is bounded by a watchdog that kills it and fails the test.

// Listing and inspection (which these tests check) have a backend on Linux only.
#![cfg(target_os = "linux")]

mod support;

use namedmutex::MutexOptions;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long any child may run, or any awaited condition may take, before the test fails.
const WATCHDOG: Duration = Duration::from_secs(20);

const BIN: &str = env!("CARGO_BIN_EXE_namedmutex");

/// A fresh namespace root, removed at the end of the test.
struct Root {
    dir: PathBuf,
}

impl Root {
    fn new() -> Root {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "namedmutex-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Root { dir }
    }

    /// The binary with this root; stdin is /dev/null unless changed.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("NAMEDMUTEX_ROOT", &self.dir)
            .stdin(Stdio::null());
        c
    }

    /// Runs to completion (bounded) and collects the output.
    fn run(&self, args: &[&str]) -> Out {
        output(self.cmd(args))
    }

    /// Library options for this root (to inspect, or keep a handle open).
    fn opts(&self) -> MutexOptions {
        MutexOptions::new().root(&self.dir)
    }

    /// Starts `hold NAME` (stdin piped) and waits for its `held` line.
    fn hold(&self, extra: &[&str], name: &str) -> Holder {
        let mut args = vec!["hold"];
        args.extend_from_slice(extra);
        args.push(name);
        let mut cmd = self.cmd(&args);
        cmd.stderr(Stdio::piped());
        let mut holder = Holder::start(cmd);
        let full = if extra.contains(&"--global") {
            format!("Global\\{name}")
        } else {
            name.to_owned()
        };
        assert_eq!(holder.next_line(), format!("held {full}"));
        holder
    }

    /// Starts the binary in the background with stdout read line by line (stderr and
    /// stdin as `cmd` leaves them).
    fn background(&self, args: &[&str]) -> Holder {
        Holder::start(self.cmd(args))
    }

    /// Polls the mutex until `pred` holds for its snapshot (bounded).
    fn until(&self, name: &str, what: &str, pred: impl Fn(&namedmutex::MutexInfo) -> bool) {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            if let Some(info) = self.opts().info(name).unwrap() {
                if pred(&info) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{name}: never became {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child's stdout as a channel of lines, read by a thread.
fn lines_of(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A background `namedmutex` (hold, or a run) that is killed if the test forgets it.
struct Holder {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Holder {
    /// Starts `cmd` with stdin and stdout piped (stdout read line by line).
    fn start(mut cmd: Command) -> Holder {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        let stdin = child.stdin.take();
        Holder {
            child: Some(child),
            stdin,
            lines,
        }
    }

    /// The child's stderr as a channel of lines (when it was piped).
    fn stderr_lines(&mut self) -> mpsc::Receiver<String> {
        lines_of(self.child.as_mut().unwrap().stderr.take().unwrap())
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(WATCHDOG) {
            Ok(line) => line,
            Err(e) => {
                self.kill();
                panic!("no line from the child within {WATCHDOG:?}: {e}");
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: plain system call on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, sig) }, 0);
    }

    /// Closes stdin and waits (bounded) for the exit.
    fn finish(&mut self) -> ExitStatus {
        self.stdin.take();
        self.wait_exit()
    }

    /// Waits (bounded) for the exit, stdin left as it is.
    fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        wait_bounded(&mut child, "background namedmutex")
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Out {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Out {
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.stdout))
    }
}

fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    support::wait_bounded(child, WATCHDOG, what)
}

fn output(mut cmd: Command) -> Out {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    collect(&mut child)
}

fn collect(child: &mut Child) -> Out {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(child, "namedmutex");
    Out {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Starts a command in the background with piped output, to collect later.
fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn absent(root: &Root, name: &str) -> bool {
    root.opts().info(name).unwrap().is_none()
}

// ---------------------------------------------------------------------------------------

#[test]
fn two_runs_contend() {
    let root = Root::new();
    // The first run holds the lock while its command reads stdin.
    let mut first = root
        .cmd(&[
            "run",
            "job",
            "--",
            "sh",
            "-c",
            "echo ready; read x; echo done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let first_pid = first.id();
    let stdin = first.stdin.take();
    let lines = lines_of(first.stdout.take().unwrap());
    let mut first = Holder {
        child: Some(first),
        stdin,
        lines,
    };
    assert_eq!(first.next_line(), "ready");

    // The second times out with the conflict code and says who holds the lock.
    let second = root.run(&["run", "--timeout", "200ms", "job", "--", "echo", "second"]);
    assert_eq!(second.code(), 75, "{}", second.stderr);
    assert_eq!(second.stdout, "");
    assert!(
        second.stderr.contains(&format!("pid {first_pid}")),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.starts_with("namedmutex: job: "),
        "{}",
        second.stderr
    );
    assert_eq!(second.stderr.lines().count(), 1, "{}", second.stderr);

    // --conflict-exit-code (and -E) change it; --quiet silences the message.
    let e = root.run(&["run", "-t", "0", "-E", "9", "-q", "job", "true"]);
    assert_eq!((e.code(), e.stderr.as_str()), (9, ""));
    let e = root.run(&["run", "-t", "0", "--conflict-exit-code", "0", "job", "true"]);
    assert_eq!(e.code(), 0);

    // A third waits, and gets the lock once the first ends.
    let mut waiting = spawn(root.cmd(&["run", "-t", "20s", "job", "--", "echo", "third"]));
    root.until("job", "waited on", |i| i.waiters >= 1);
    let first_status = first.finish();
    assert_eq!(first_status.code(), Some(0));
    let third = collect(&mut waiting);
    assert_eq!(
        (third.code(), third.stdout.as_str()),
        (0, "third\n"),
        "{}",
        third.stderr
    );

    // And then it is free for anyone.
    let second = root.run(&["run", "--timeout", "5s", "job", "--", "echo", "second"]);
    assert_eq!((second.code(), second.stdout.as_str()), (0, "second\n"));
    assert!(
        absent(&root, "job"),
        "the last handle closed: the mutex is gone"
    );
}

/// A holder is SIGKILLed while a `run` waits: the run is told who died.
fn killed_holder(on_abandoned: &str) -> (Out, u32) {
    let root = Root::new();
    let mut holder = root.hold(&[], "db");
    let holder_pid = holder.pid();
    let mut run = spawn(root.cmd(&[
        "run",
        "--on-abandoned",
        on_abandoned,
        "db",
        "--",
        "echo",
        "ran",
    ]));
    root.until("db", "waited on", |i| i.waiters >= 1);
    holder.signal(libc::SIGKILL);
    holder.wait_exit();
    let out = collect(&mut run);
    // Released and closed. The file may outlive the run as a stale object: the kernel
    // reports the holder's death (robust futexes) before it drops the holder's file locks,
    // so a run that ends at once can still see the dying holder's handle. The next open
    // removes a stale object.
    let after = root.opts().info("db").unwrap();
    assert!(
        after.as_ref().is_none_or(|i| i.stale && i.owner.is_none()),
        "{after:?}"
    );
    (out, holder_pid)
}

#[test]
fn killed_holder_with_on_abandoned_fail() {
    let (out, pid) = killed_holder("fail");
    assert_eq!(out.code(), 79, "{}", out.stderr);
    assert_eq!(out.stdout, "", "the command must not run");
    assert!(out.stderr.contains(&format!("pid {pid}")), "{}", out.stderr);
    assert!(out.stderr.contains("died"), "{}", out.stderr);
    assert!(
        out.stderr.contains("hold db"),
        "the command line: {}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn killed_holder_with_on_abandoned_proceed() {
    let (out, pid) = killed_holder("proceed");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(out.stdout, "ran\n");
    assert!(out.stderr.contains(&format!("pid {pid}")), "{}", out.stderr);
    assert!(out.stderr.contains("warning"), "{}", out.stderr);
}

#[test]
fn abandoned_mutex_seen_by_info_list_and_wait() {
    let root = Root::new();
    let mut holder = root.hold(&[], "res");
    let pid = holder.pid();
    // Keep the object alive with a handle of our own (it would vanish with its last one).
    let _handle = root.opts().open("res").unwrap();
    holder.signal(libc::SIGKILL);
    holder.wait_exit();

    let info = root.run(&["info", "--json", "res"]);
    assert_eq!(info.code(), 3, "abandoned: {}", info.stdout);
    let v = info.json();
    assert_eq!(v["state"], "abandoned");
    assert_eq!(v["abandoned"], true);
    assert_eq!(v["owner"]["alive"], false);
    assert_eq!(v["owner"]["pid"], pid);

    let list = root.run(&["list", "--json"]).json();
    let entry = &list.as_array().unwrap()[0];
    assert_eq!(
        (&entry["name"], &entry["abandoned"]),
        (&"res".into(), &true.into())
    );
    let text = root.run(&["list"]).stdout;
    assert!(text.contains("abandoned"), "{text}");

    // `wait` takes it over, says so, and releases it.
    let wait = root.run(&["wait", "-t", "5s", "res"]);
    assert_eq!(wait.code(), 79, "{}", wait.stderr);
    assert!(
        wait.stderr.contains(&format!("pid {pid}")),
        "{}",
        wait.stderr
    );

    // Reported once: now it is an ordinary free mutex that remembers the abandoner.
    let info = root.run(&["info", "--json", "res"]);
    assert_eq!(info.code(), 0);
    let v = info.json();
    assert_eq!(v["state"], "free");
    assert_eq!(v["owner"], Value::Null);
    assert_eq!(v["abandon_count"], 1);
    assert_eq!(v["last_abandoner"]["pid"], pid);
    assert_eq!(root.run(&["wait", "-t", "0", "res"]).code(), 0);
}

#[test]
fn timeouts() {
    let root = Root::new();
    let _holder = root.hold(&[], "t");

    let start = Instant::now();
    let out = root.run(&["run", "-t", "300ms", "t", "true"]);
    let took = start.elapsed();
    assert_eq!(out.code(), 75);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(
        out.stderr.contains("timed out after 300ms"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("waiting for"),
        "no status line off a terminal"
    );

    // 0 polls once; plain seconds are accepted.
    let out = root.run(&["wait", "--timeout", "0", "t"]);
    assert_eq!(out.code(), 75);
    assert!(out.stderr.contains("held by pid"), "{}", out.stderr);
    assert_eq!(root.run(&["wait", "-t", "0.1", "t"]).code(), 75);
    assert_eq!(root.run(&["wait", "-w", "0", "-E", "3", "t"]).code(), 3);

    // hold times out without printing its line.
    let out = root.run(&["hold", "-t", "50ms", "t"]);
    assert_eq!((out.code(), out.stdout.as_str()), (75, ""));

    // A free mutex is taken at once, even with a zero timeout.
    assert_eq!(root.run(&["wait", "-t", "0", "other"]).code(), 0);
    assert_eq!(root.run(&["run", "-t", "0", "other", "true"]).code(), 0);
}

#[test]
fn list_and_info_json() {
    let root = Root::new();
    let local = root.hold(&[], "alpha");
    let global = root.hold(&["--global"], "beta");
    // A free mutex: a handle kept open by this process.
    let _free = root.opts().create("gamma").unwrap();

    let list = root.run(&["list", "--json"]);
    assert_eq!(list.code(), 0);
    let v = list.json();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "gamma"]);
    let alpha = &v[0];
    assert_eq!(alpha["state"], "held");
    assert_eq!(alpha["namespace"], "local");
    assert_eq!(alpha["owner"]["pid"], local.pid());
    assert_eq!(
        alpha["owner"]["tid"],
        local.pid(),
        "hold acquires on its main thread"
    );
    assert_eq!(alpha["owner"]["alive"], true);
    assert_eq!(alpha["owner"]["same_pid_namespace"], true);
    assert_eq!(alpha["owner"]["cmdline"][1], "hold");
    assert_eq!(alpha["count"], 1);
    assert_eq!(alpha["abandoned"], false);
    assert_eq!(alpha["stale"], false);
    assert!(alpha["handles"].as_u64().unwrap() >= 1);
    assert_eq!(v[1]["state"], "free");
    assert_eq!(v[1]["owner"], Value::Null);

    let g = root.run(&["list", "--global", "--json"]).json();
    assert_eq!(g.as_array().unwrap().len(), 1);
    assert_eq!(g[0]["name"], "Global\\beta");
    assert_eq!(g[0]["namespace"], "global");
    assert_eq!(g[0]["owner"]["pid"], global.pid());
    assert_eq!(
        root.run(&["list", "--all", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // The table names the mutex, its state and the owner's pid and command.
    let text = root.run(&["list", "-a"]).stdout;
    let row = text.lines().find(|l| l.starts_with("alpha")).expect(&text);
    assert!(
        row.contains("held") && row.contains(&local.pid().to_string()),
        "{row}"
    );
    assert!(row.contains("hold alpha"), "{row}");
    assert!(text.lines().next().unwrap().starts_with("NAME"), "{text}");

    // info: one object, exit status by state.
    let info = root.run(&["info", "--json", "alpha"]);
    assert_eq!(info.code(), 1);
    assert_eq!(info.json()["owner"]["pid"], local.pid());
    let info = root.run(&["info", "--json", "--global", "beta"]);
    assert_eq!(
        (info.code(), info.json()["owner"]["pid"].clone()),
        (1, global.pid().into())
    );
    assert_eq!(root.run(&["info", "Global\\beta"]).code(), 1);
    let info = root.run(&["info", "--json", "gamma"]);
    assert_eq!(
        (info.code(), info.json()["state"].clone()),
        (0, "free".into())
    );
    let info = root.run(&["info", "--json", "nothing"]);
    assert_eq!((info.code(), info.json()), (2, Value::Null));
    let info = root.run(&["info", "alpha"]);
    assert!(
        info.stdout.contains(&format!("pid {}", local.pid())),
        "{}",
        info.stdout
    );
    let quiet = root.run(&["info", "-q", "alpha"]);
    assert_eq!((quiet.code(), quiet.stdout.as_str()), (1, ""));

    // An empty namespace lists nothing.
    let empty = Root::new();
    assert_eq!(empty.run(&["list"]).stdout, "");
    assert_eq!(empty.run(&["list", "--json"]).json(), Value::Array(vec![]));
}

#[test]
fn bad_names() {
    let root = Root::new();
    for (args, shown) in [
        (vec!["run", "Global\\a\\b", "--", "true"], "Global\\a\\b"),
        (vec!["info", "Local\\"], "Local\\"),
        (vec!["hold", "Global\\"], "Global\\"),
        (vec!["wait", "a\\b"], "a\\b"),
        (vec!["info", ""], "\"\""),
    ] {
        let out = root.run(&args);
        assert_eq!(out.code(), 65, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .starts_with(&format!("namedmutex: {shown}: invalid name")),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert_eq!(out.stdout, "");
    }
    let long = "x".repeat(300);
    assert_eq!(root.run(&["run", &long, "true"]).code(), 65);
    // --global with a Local\ prefix is a contradiction on the command line.
    assert_eq!(
        root.run(&["run", "--global", "Local\\x", "true"]).code(),
        64
    );
}

#[test]
fn bad_durations() {
    let root = Root::new();
    for bad in ["10x", "abc", "1..2", "-5", "5 s", ""] {
        let arg = format!("--timeout={bad}");
        let out = root.run(&["run", &arg, "job", "true"]);
        assert_eq!(out.code(), 64, "{bad:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("'{bad}'")),
            "{bad:?}: {}",
            out.stderr
        );
        assert!(out.stderr.starts_with("namedmutex: "), "{}", out.stderr);
        // The first line says what was wrong; clap's pointer to --help follows.
        assert!(
            out.stderr
                .lines()
                .next()
                .unwrap()
                .contains(&format!("'{bad}'"))
        );
        assert!(
            out.stderr.trim_end().ends_with("try '--help'."),
            "{}",
            out.stderr
        );
    }
    let out = root.run(&["wait", "-t", "2x", "job"]);
    assert_eq!(out.code(), 64);
    assert!(out.stderr.contains("unknown unit \"x\""), "{}", out.stderr);
    assert!(absent(&root, "job"), "nothing was created");
}

#[test]
fn exit_status_passes_through() {
    let root = Root::new();
    for (script, code) in [
        ("exit 0", 0),
        ("exit 7", 7),
        ("exit 255", 255),
        ("kill -9 $$", 137),
    ] {
        // (A command killed by a signal leaves the lock abandoned unless told otherwise:
        // see a_command_killed_by_a_signal_leaves_the_lock_abandoned.)
        let out = root.run(&[
            "run",
            "--on-killed",
            "release",
            "job",
            "--",
            "sh",
            "-c",
            script,
        ]);
        assert_eq!(out.code(), code, "{script}: {}", out.stderr);
        assert!(absent(&root, "job"), "released and gone after {script}");
    }
    let out = root.run(&[
        "run",
        "job",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 4",
    ]);
    assert_eq!(
        (out.code(), out.stdout.as_str(), out.stderr.as_str()),
        (4, "out\n", "err\n")
    );
    // Without `--`, and with options for the command.
    assert_eq!(root.run(&["run", "job", "sh", "-c", "exit 5"]).code(), 5);

    let out = root.run(&["run", "job", "no-such-command-xyz"]);
    assert_eq!(out.code(), 127);
    assert!(
        out.stderr
            .contains("no-such-command-xyz: command not found"),
        "{}",
        out.stderr
    );
    let not_exec = root.dir.join("not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    let out = root.run(&["run", "job", not_exec.to_str().unwrap()]);
    assert_eq!(out.code(), 126, "{}", out.stderr);
    assert!(absent(&root, "job"));
}

#[test]
fn signals_are_forwarded_to_the_command() {
    let root = Root::new();
    let script = r#"trap "echo got; exit 3" TERM; echo ready; while :; do sleep 0.05; done"#;
    let mut run = root.background(&["run", "job", "--", "sh", "-c", script]);
    assert_eq!(run.next_line(), "ready");
    root.until("job", "held", |i| i.owner.is_some());
    run.signal(libc::SIGTERM);
    assert_eq!(run.next_line(), "got");
    assert_eq!(run.wait_exit().code(), Some(3));
    assert!(absent(&root, "job"), "released when the command ended");
}

#[test]
fn hold_ends_on_signal_or_stdin_close() {
    let root = Root::new();
    let mut h = root.hold(&[], "h");
    assert_eq!(root.run(&["info", "h"]).code(), 1);
    h.signal(libc::SIGTERM);
    assert_eq!(h.wait_exit().code(), Some(128 + libc::SIGTERM));
    assert!(absent(&root, "h"));

    let mut h = root.hold(&[], "h");
    h.stdin.as_mut().unwrap().write_all(b"ignored\n").unwrap();
    assert_eq!(root.run(&["info", "h"]).code(), 1, "still held after input");
    assert_eq!(h.finish().code(), Some(0), "stdin closed");
    assert!(absent(&root, "h"));

    let mut h = root.hold(&["--ignore-stdin"], "h");
    h.stdin.take();
    assert_eq!(
        root.run(&["info", "h"]).code(),
        1,
        "still held after stdin closed"
    );
    h.signal(libc::SIGINT);
    assert_eq!(h.wait_exit().code(), Some(128 + libc::SIGINT));
    assert!(absent(&root, "h"));
}

#[test]
fn a_signal_while_waiting_ends_the_wait() {
    let root = Root::new();
    let _holder = root.hold(&[], "w");
    let mut waiting = spawn(root.cmd(&["run", "w", "--", "echo", "ran"]));
    root.until("w", "waited on", |i| i.waiters >= 1);
    // SAFETY: plain system call on our own child.
    unsafe { libc::kill(waiting.id() as i32, libc::SIGTERM) };
    let out = collect(&mut waiting);
    assert_eq!((out.code(), out.stdout.as_str()), (128 + libc::SIGTERM, ""));
}

#[test]
fn completions() {
    let root = Root::new();
    for (shell, marker) in [
        ("bash", "_namedmutex()"),
        ("zsh", "#compdef namedmutex"),
        ("fish", "complete -c namedmutex"),
        ("elvish", "namedmutex"),
        ("powershell", "namedmutex"),
    ] {
        let out = root.run(&["completions", shell]);
        assert_eq!(out.code(), 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains(marker), "{shell}");
        assert!(
            out.stdout.contains("on-abandoned"),
            "{shell}: options are completed"
        );
    }
    assert_eq!(root.run(&["completions", "tcsh"]).code(), 64);
}

#[test]
fn help_and_usage() {
    let root = Root::new();
    for sub in ["run", "hold", "wait", "list", "info", "completions"] {
        let out = root.run(&[sub, "--help"]);
        assert_eq!(out.code(), 0, "{sub}");
        assert!(
            out.stdout.contains("Examples:"),
            "{sub} --help has examples"
        );
    }
    let out = root.run(&["--help"]);
    assert!(out.stdout.contains("Exit status:") && out.stdout.contains("75"));
    assert_eq!(root.run(&["--version"]).code(), 0);
    assert_eq!(root.run(&[]).code(), 64);
    assert_eq!(root.run(&["frobnicate"]).code(), 64);
    assert_eq!(root.run(&["run", "job"]).code(), 64, "no command");
    assert_eq!(
        root.run(&["run", "--on-abandoned", "maybe", "j", "true"])
            .code(),
        64
    );
}

#[test]
fn root_option_overrides_the_environment() {
    let root = Root::new();
    let other = Root::new();
    let _h = root.hold(&[], "r");
    let dir = root.dir.to_str().unwrap();
    assert_eq!(other.run(&["info", "r"]).code(), 2);
    assert_eq!(other.run(&["--root", dir, "info", "r"]).code(), 1);
    assert_eq!(other.run(&["info", "--root", dir, "r"]).code(), 1);
}

#[test]
fn environment_errors_have_their_own_status() {
    let root = Root::new();
    let missing = root.dir.join("missing");
    let out = root.run(&["--root", missing.to_str().unwrap(), "run", "x", "true"]);
    assert_eq!(out.code(), 70, "{}", out.stderr);
    assert!(out.stderr.starts_with("namedmutex: x: "), "{}", out.stderr);
    assert!(!out.stderr.contains("invalid name"), "{}", out.stderr);

    // A root that others may write to without the sticky bit is refused: permission.
    let open = root.dir.join("world-writable");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = root.run(&["--root", open.to_str().unwrap(), "list"]);
    assert_eq!(out.code(), 77, "{}", out.stderr);
    assert!(out.stderr.contains("access denied"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn flock_compatible_options() {
    let root = Root::new();
    // -n and --wait, against a held lock and a free one.
    {
        let _h = root.hold(&[], "f");
        assert_eq!(
            root.run(&["run", "-n", "f", "true"]).code(),
            75,
            "-n while held"
        );
        assert_eq!(
            root.run(&["run", "--nb", "f", "true"]).code(),
            75,
            "--nb while held"
        );
        assert_eq!(
            root.run(&["run", "--wait", "0", "f", "true"]).code(),
            75,
            "--wait 0"
        );
        let out = root.run(&["run", "-n", "-E", "1", "f", "true"]);
        assert_eq!(out.code(), 1, "flock's conflict status with -E 1");
        let out = root.run(&["run", "-n", "-q", "--verbose", "f", "true"]);
        assert!(out.stderr.contains("timed out after"), "{}", out.stderr);
        assert_eq!(
            root.run(&["run", "-n", "-t", "1", "f", "true"]).code(),
            64,
            "-n with -t"
        );
    }
    let out = root.run(&["run", "-n", "--verbose", "f", "true"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("f: got the lock after"),
        "{}",
        out.stderr
    );

    // -c runs a command line through the shell, before or after the name.
    let out = root.run(&["run", "-c", "echo a && echo b", "f"]);
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (0, "a\nb\n"),
        "{}",
        out.stderr
    );
    assert_eq!(root.run(&["run", "f", "-c", "exit 3"]).code(), 3);
    assert_eq!(
        root.run(&["run", "-c", "true", "f", "extra"]).code(),
        64,
        "-c with COMMAND"
    );
    let out = root.run(&["run", "f", "echo a && echo b"]);
    assert_eq!(out.code(), 127);
    assert!(
        out.stderr
            .contains("use -c: namedmutex run f -c \"echo a && echo b\""),
        "{}",
        out.stderr
    );

    // Accepted: -x (every lock is exclusive) and -o (the command never holds it).
    assert_eq!(root.run(&["run", "-x", "-o", "f", "true"]).code(), 0);
    // Refused with the reason, before anything is created.
    for (option, why) in [
        ("-s", "one holder at a time"),
        ("--shared", "one holder at a time"),
        ("-u", "no file descriptor to unlock"),
        ("-F", "must stay alive"),
    ] {
        let out = root.run(&["run", option, "g", "true"]);
        assert_eq!(out.code(), 64, "{option}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{option}: {}", out.stderr);
        assert!(absent(&root, "g"), "{option} created the mutex");
    }
    assert_eq!(root.run(&["hold", "-s", "g"]).code(), 64, "hold -s");

    // Usage errors keep clap's hints, and a negative timeout says what to do.
    let out = root.run(&["run", "--timout", "1", "f", "true"]);
    assert_eq!(out.code(), 64);
    assert!(
        out.stderr
            .contains("a similar argument exists: '--timeout'"),
        "{}",
        out.stderr
    );
    let out = root.run(&["run", "--on-abandoned", "maybe", "f", "true"]);
    assert!(
        out.stderr.contains("[possible values: proceed, fail]"),
        "{}",
        out.stderr
    );
    let out = root.run(&["run", "-t", "-1", "f", "true"]);
    assert_eq!(out.code(), 64);
    assert!(out.stderr.contains("cannot be negative"), "{}", out.stderr);
}

#[test]
fn manual_pages() {
    let root = Root::new();
    let out = root.run(&["manpage"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stdout.contains(".TH namedmutex 1"), "{}", out.stdout);
    assert!(
        out.stdout.contains("abandoned"),
        "the long description is in the page"
    );
    for sub in ["run", "hold", "wait", "list", "info"] {
        let out = root.run(&["manpage", sub]);
        assert_eq!(out.code(), 0, "{sub}: {}", out.stderr);
        assert!(
            out.stdout.contains(&format!(".TH namedmutex-{sub} 1")),
            "{sub}"
        );
    }
    assert!(root.run(&["manpage", "run"]).stdout.contains("nonblock"));
    let out = root.run(&["manpage", "bogus"]);
    assert_eq!(out.code(), 64);
    assert!(out.stderr.contains("one of: run, hold"), "{}", out.stderr);
}

#[test]
fn names_with_control_characters_stay_on_one_line() {
    let root = Root::new();
    let _m = root.opts().create("two\nlines\u{1b}[31m").unwrap();
    let out = root.run(&["list"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().count(),
        2,
        "header and one row: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("two\\nlines\\u{1b}[31m"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains('\u{1b}'),
        "no raw escape reaches the terminal"
    );
    let out = root.run(&["info", "two\nlines\u{1b}[31m"]);
    assert!(out.stdout.contains("two\\nlines"), "{}", out.stdout);
    // JSON keeps the name exact.
    let v = root.run(&["list", "--json"]).json();
    assert_eq!(v[0]["name"], "two\nlines\u{1b}[31m");
}

#[test]
fn root_errors_say_what_to_change() {
    let root = Root::new();
    let missing = root.dir.join("missing");
    let missing = missing.to_str().unwrap();
    // Given with --root: the hint is about that option's directory, not the variable.
    let out = root.run(&["--root", missing, "info", "x"]);
    assert_eq!(out.code(), 70, "{}", out.stderr);
    assert!(out.stderr.contains("given explicitly"), "{}", out.stderr);
    assert!(!out.stderr.contains("NAMEDMUTEX_ROOT"), "{}", out.stderr);
    // From the variable.
    let out = output({
        let mut c = root.cmd(&["info", "x"]);
        c.env("NAMEDMUTEX_ROOT", missing);
        c
    });
    assert_eq!(out.code(), 70, "{}", out.stderr);
    assert!(
        out.stderr.contains("from $NAMEDMUTEX_ROOT"),
        "{}",
        out.stderr
    );
    // Set but empty: refused, not silently /dev/shm.
    let out = output({
        let mut c = root.cmd(&["info", "x"]);
        c.env("NAMEDMUTEX_ROOT", "");
        c
    });
    assert_eq!(out.code(), 70, "{}", out.stderr);
    assert!(
        out.stderr.contains("NAMEDMUTEX_ROOT is set but empty"),
        "{}",
        out.stderr
    );
}

#[test]
fn group_option_shares_a_global_mutex_with_a_group() {
    use std::os::unix::fs::MetadataExt;
    let root = Root::new();
    // SAFETY: getegid has no preconditions.
    let gid = unsafe { libc::getegid() }.to_string();
    let _h = root.hold(&["--group", &gid, "--global"], "grp");
    let meta = std::fs::metadata(root.dir.join("namedmutex-global.grp")).unwrap();
    assert_eq!(meta.gid().to_string(), gid);
    assert_eq!(
        meta.mode() & 0o777,
        0o660,
        "group may read and write, others nothing"
    );
    let out = root.run(&[
        "run",
        "--group",
        "no-such-group-here",
        "-g",
        "other",
        "true",
    ]);
    assert_eq!(out.code(), 64, "{}", out.stderr);
    assert!(out.stderr.contains("no such group"), "{}", out.stderr);
    assert_eq!(
        root.run(&["run", "--group", &gid, "--everyone", "-g", "x", "true"])
            .code(),
        64
    );
}

/// Waits (bounded) until process `pid` is in state `state` (`/proc/<pid>/stat`).
fn until_state(pid: u32, state: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let now = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        if now == Some(state) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} never reached {state}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_stopped_holder_is_shown_as_stopped() {
    let root = Root::new();
    let h = root.hold(&[], "paused");
    h.signal(libc::SIGSTOP);
    until_state(h.pid(), "T");
    let out = root.run(&["list"]);
    assert!(out.stdout.contains("held,stopped"), "{}", out.stdout);
    let out = root.run(&["info", "paused"]);
    assert!(out.stdout.contains("[stopped"), "{}", out.stdout);
    assert_eq!(
        root.run(&["list", "--json"]).json()[0]["owner"]["stopped"],
        true
    );
    h.signal(libc::SIGCONT);
    until_state(h.pid(), "S");
    let out = root.run(&["list"]);
    assert!(!out.stdout.contains("stopped"), "{}", out.stdout);
}

#[test]
fn a_holder_in_a_nested_pid_namespace_is_shown_by_its_pid_out_here() {
    if euid() != 0 {
        println!("skipped: a PID namespace needs root (unshare --pid)");
        return;
    }
    /// Kills `unshare` (and with --kill-child, the holder) however the test ends.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let root = Root::new();
    let mut child = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            BIN,
            "hold",
        ])
        .args(["--ignore-stdin", "nsjob"])
        .env("NAMEDMUTEX_ROOT", &root.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("unshare (util-linux)");
    let lines = lines_of(child.stdout.take().unwrap());
    let _child = KillOnDrop(child);
    let first = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("the holder in the new namespace says held");
    assert_eq!(first, "held nsjob");
    let v = root.run(&["info", "--json", "nsjob"]).json();
    let owner = &v["owner"];
    assert_eq!(owner["pid"], 1, "as the holder sees itself: {v}");
    assert_eq!(owner["same_pid_namespace"], false);
    let seen = owner["visible_pid"].as_u64().expect("translated") as u32;
    let status = std::fs::read_to_string(format!("/proc/{seen}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(
        nspid.split_whitespace().skip(1).collect::<Vec<_>>(),
        vec![seen.to_string(), "1".to_owned()],
        "{nspid}"
    );
    let text = root.run(&["info", "nsjob"]).stdout;
    assert!(
        text.contains(&format!("pid {seen} (1 in its PID namespace)")),
        "{text}"
    );
    let list = root.run(&["list"]).stdout;
    assert!(list.contains(&format!(" {seen} ")), "{list}");
}

#[test]
fn a_planted_file_is_named_the_same_way_by_run_and_info() {
    use std::os::unix::fs::OpenOptionsExt;
    let root = Root::new();
    assert_eq!(root.run(&["list"]).code(), 0); // makes our directories
    let uid = euid();
    let path = root.dir.join(format!("namedmutex-{uid}/local/planted"));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap()
        .write_all(&[0u8; 4096])
        .unwrap();
    let run = root.run(&["run", "planted", "true"]);
    let info = root.run(&["info", "planted"]);
    assert_eq!(
        (run.code(), info.code()),
        (70, 70),
        "{}{}",
        run.stderr,
        info.stderr
    );
    assert_eq!(run.stderr, info.stderr, "the same words for the same file");
    assert!(run.stderr.contains("not a mutex"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("the file is {}", path.display())),
        "{}",
        run.stderr
    );
}

// ----- crash truth (issue 15) -----------------------------------------------------------

/// Checks that `child` is still running (blocked, as it should be) for all of `period`.
fn still_running_for(child: &mut Child, period: Duration, failure: &str) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert!(child.try_wait().unwrap().is_none(), "{failure}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Our effective user id.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                == Some("Z")
        }
    }
}

fn until_ended(pid: u32, what: &str) {
    let deadline = Instant::now() + WATCHDOG;
    while !ended(pid) {
        assert!(Instant::now() < deadline, "{what} (pid {pid}) never ended");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A command that dies by a signal leaves the lock abandoned; the next run is told which
/// command died and how, once, even though no process had the mutex open in between.
#[test]
fn a_command_killed_by_a_signal_leaves_the_lock_abandoned() {
    let root = Root::new();
    for (sig, name) in [(9, "SIGKILL"), (11, "SIGSEGV"), (6, "SIGABRT")] {
        let script = format!("kill -{sig} $$");
        let out = root.run(&["run", "job", "--", "sh", "-c", &script]);
        assert_eq!(out.code(), 128 + sig, "{script}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("killed by {name}")),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("left abandoned"), "{}", out.stderr);

        let info = root.run(&["info", "--json", "job"]);
        assert_eq!(info.code(), 3, "abandoned: {}", info.stdout);
        let v = info.json();
        assert_eq!(v["kept_for_report"], true);
        assert!(
            v["abandon_note"]
                .as_str()
                .unwrap()
                .contains(&format!("`sh -c '{script}'`")),
            "{v}"
        );

        let next = root.run(&["run", "--on-abandoned", "fail", "job", "--", "echo", "ran"]);
        assert_eq!(next.code(), 79, "{}", next.stderr);
        assert_eq!(next.stdout, "");
        assert!(
            next.stderr.contains(&format!("killed by {name}")),
            "{}",
            next.stderr
        );
        // Told once: the run after that is ordinary.
        let again = root.run(&["run", "--on-abandoned", "fail", "job", "--", "echo", "ran"]);
        assert_eq!(
            (again.code(), again.stdout.as_str(), again.stderr.as_str()),
            (0, "ran\n", "")
        );
        assert!(absent(&root, "job"));
    }
    // --on-killed release: a plain release, nothing to report.
    let out = root.run(&[
        "run",
        "--on-killed",
        "release",
        "job",
        "--",
        "sh",
        "-c",
        "kill -9 $$",
    ]);
    assert_eq!(out.code(), 137);
    assert!(absent(&root, "job"));
}

/// `namedmutex run` itself SIGKILLed: its command dies with it (no orphan runs beside the
/// next holder), and the next run is told, even with nobody else holding the mutex open.
#[test]
fn a_killed_wrapper_takes_its_command_with_it_and_the_next_run_is_told() {
    let root = Root::new();
    let mut run = root.cmd(&["run", "migrate", "--", "sh", "-c", "echo $$; exec sleep 30"]);
    run.stderr(Stdio::piped());
    let mut run = Holder::start(run);
    let command_pid: u32 = run.next_line().parse().unwrap();
    let wrapper_pid = run.pid();
    run.signal(libc::SIGKILL);
    run.wait_exit();
    until_ended(command_pid, "the command of a killed wrapper");

    let next = root.run(&[
        "run",
        "-t",
        "0",
        "--on-abandoned",
        "fail",
        "migrate",
        "--",
        "echo",
        "ran",
    ]);
    assert_eq!(next.code(), 79, "{}", next.stderr);
    assert!(
        next.stderr.contains(&format!("pid {wrapper_pid}")),
        "{}",
        next.stderr
    );

    // --no-keep-abandoned: Win32's rule, the crash nobody else saw is forgotten.
    let mut run = root.hold(&["--no-keep-abandoned"], "forgetful");
    run.signal(libc::SIGKILL);
    run.wait_exit();
    let next = root.run(&[
        "run",
        "-t",
        "0",
        "--on-abandoned",
        "fail",
        "forgetful",
        "--",
        "echo",
        "ran",
    ]);
    assert_eq!(
        (next.code(), next.stdout.as_str()),
        (0, "ran\n"),
        "{}",
        next.stderr
    );
}

/// Signals that would kill a process by default but that the wrapper does not act on
/// itself are forwarded to the command, never fatal to the wrapper alone.
#[test]
fn other_signals_are_forwarded_not_fatal() {
    let root = Root::new();
    for (sig, label) in [
        (libc::SIGUSR1, "USR1"),
        (libc::SIGALRM, "ALRM"),
        (libc::SIGUSR2, "USR2"),
    ] {
        let script =
            format!(r#"trap "echo got; exit 4" {label}; echo ready; while :; do sleep 0.05; done"#);
        let mut run = root.background(&["run", "job", "--", "sh", "-c", &script]);
        assert_eq!(run.next_line(), "ready");
        run.signal(sig);
        assert_eq!(run.next_line(), "got", "{label}");
        assert_eq!(run.wait_exit().code(), Some(4), "{label}");
        assert!(absent(&root, "job"), "{label}: released");
    }
    // hold: such a signal ends the hold and releases.
    let mut h = root.hold(&[], "h");
    h.signal(libc::SIGUSR1);
    assert_eq!(h.wait_exit().code(), Some(128 + libc::SIGUSR1));
    assert!(absent(&root, "h"));
}

/// `hold --while-pid PID` holds while PID lives, and refuses a PID that does not exist
/// without taking the lock.
#[test]
fn hold_while_pid() {
    let root = Root::new();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let mut h = root.hold(&["--while-pid", &pid], "scripted");
    h.stdin.take(); // stdin does not matter with --while-pid
    assert_eq!(root.run(&["info", "-q", "scripted"]).code(), 1, "held");
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_eq!(h.wait_exit().code(), Some(0));
    assert!(absent(&root, "scripted"));

    let out = root.run(&["hold", "--while-pid", "999999999", "scripted"]);
    assert_eq!(out.code(), 64, "{}", out.stderr);
    assert!(
        out.stderr.contains("no such process") || out.stderr.contains("--while-pid"),
        "{}",
        out.stderr
    );
    assert!(
        absent(&root, "scripted"),
        "the lock was taken for a missing process"
    );
}

/// `prune` removes what killed holders left, and leaves what is in use or kept. (Every new
/// holder's first create also sweeps a few stale files, so how many are left for `prune`
/// depends on the order: it is counted, then checked against what `prune` says.)
#[test]
fn prune_removes_stale_files() {
    let root = Root::new();
    let _live = root.hold(&[], "live");
    let mut kept = root.hold(&[], "kept");
    kept.signal(libc::SIGKILL);
    kept.wait_exit();
    for i in 0..5 {
        let mut h = root.hold(&["--no-keep-abandoned"], &format!("job-{i}"));
        h.signal(libc::SIGKILL);
        h.wait_exit();
    }
    let local = root.dir.join(format!("namedmutex-{}/local", euid()));
    let files = || std::fs::read_dir(&local).unwrap().count();
    let stale = files() - 2;
    assert!(stale >= 1, "no stale file left to prune");
    let out = root.run(&["prune"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "Local\\: removed {stale}, in use 1, kept for an abandonment report 1, left alone 0\n"
        )
    );
    assert_eq!(files(), 2);
    assert_eq!(root.run(&["prune", "-q"]).stdout, "");
    // The kept one is still reported to its next holder.
    assert_eq!(root.run(&["wait", "-t", "5s", "kept"]).code(), 79);
}

/// A cleaner removing the user's directory under a holder (what systemd-logind's
/// RemoveIPC does at logout) is reported loudly by the holder.
#[test]
fn a_holder_warns_when_a_cleaner_removes_its_file() {
    let root = Root::new();
    let user_dir = root.dir.join(format!("namedmutex-{}", euid()));
    // logind's RemoveIPC removes the whole user directory; a tmp cleaner removes old files.
    for (name, cleaner) in [("cleaned", "RemoveIPC"), ("aged", "tmp cleaner")] {
        let mut h = root.cmd(&["hold", "--ignore-stdin", name]);
        h.stderr(Stdio::piped());
        let mut h = Holder::start(h);
        let err = h.stderr_lines();
        assert_eq!(h.next_line(), format!("held {name}"));
        if cleaner == "RemoveIPC" {
            std::fs::remove_dir_all(&user_dir).unwrap();
        } else {
            std::fs::remove_file(user_dir.join("local").join(name)).unwrap();
        }
        let warning = err
            .recv_timeout(WATCHDOG)
            .unwrap_or_else(|_| panic!("{cleaner}: no warning from the holder"));
        assert!(
            warning.contains("WARNING") && warning.contains("removed"),
            "{cleaner}: {warning}"
        );
        if cleaner == "RemoveIPC" {
            // No split: a new run does not make the directory afresh beside the holder. With
            // a timeout it gives up naming the holder; without, it waits for it to end.
            let out = root.run(&["run", "-t", "300ms", name, "--", "echo", "ran"]);
            assert_eq!(
                (out.code(), out.stdout.as_str()),
                (75, ""),
                "{}",
                out.stderr
            );
            assert!(
                out.stderr.contains(&format!("pid {}", h.pid())) && out.stderr.contains("removed"),
                "{}",
                out.stderr
            );
            let mut waiting = spawn(root.cmd(&["run", name, "--", "echo", "ran"]));
            still_running_for(
                &mut waiting,
                Duration::from_millis(500),
                "ran beside the holder",
            );
            // The override: a run told to go on anyway does not wait.
            let mut split = root.cmd(&["run", "-t", "0", "split", "--", "echo", "split"]);
            split.env("NAMEDMUTEX_ALLOW_SPLIT", "1");
            let out = output(split);
            assert_eq!(
                (out.code(), out.stdout.as_str()),
                (0, "split\n"),
                "{}",
                out.stderr
            );
            h.signal(libc::SIGTERM);
            h.wait_exit();
            let out = collect(&mut waiting);
            assert_eq!(
                (out.code(), out.stdout.as_str()),
                (0, "ran\n"),
                "{}",
                out.stderr
            );
            assert!(out.stderr.contains("waiting"), "{}", out.stderr);
        } else {
            h.signal(libc::SIGTERM);
            h.wait_exit();
        }
    }
}

/// A process stopped while it holds an object file's lock (a closer or creator stopped
/// half-way) makes `run` wait without a timeout, and with one, the timeout governs and the
/// message names the process and says it is stopped.
#[test]
fn a_stopped_file_lock_holder_does_not_fail_a_waiting_run() {
    let root = Root::new();
    let mut h = root.hold(&["--no-keep-abandoned"], "job");
    h.signal(libc::SIGKILL);
    h.wait_exit(); // a stale file nobody holds a lock on
    let file = root.dir.join(format!("namedmutex-{}/local/job", euid()));
    let locker = "import fcntl, os, signal, sys\n\
                  f = open(sys.argv[1], 'r+')\n\
                  fcntl.flock(f, fcntl.LOCK_EX)\n\
                  print('locked', flush=True)\n\
                  os.kill(os.getpid(), signal.SIGSTOP)\n\
                  sys.stdin.readline()\n";
    let mut stopper = Command::new("python3")
        .arg("-c")
        .arg(locker)
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stopper_pid = stopper.id();
    let said = lines_of(stopper.stdout.take().unwrap());
    assert_eq!(said.recv_timeout(WATCHDOG).unwrap(), "locked");
    until_state(stopper_pid, "T");

    let out = root.run(&["run", "-t", "300ms", "job", "--", "echo", "ran"]);
    assert_eq!(out.code(), 75, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("pid {stopper_pid}")) && out.stderr.contains("stopped"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("busy: busy"), "{}", out.stderr);

    let mut waiting = spawn(root.cmd(&["run", "job", "--", "echo", "ran"]));
    still_running_for(
        &mut waiting,
        Duration::from_millis(2500),
        "a run without a timeout gave up",
    );
    // SAFETY: plain system call on our own child.
    unsafe { libc::kill(stopper_pid as i32, libc::SIGCONT) };
    drop(stopper.stdin.take()); // it reads EOF, unlocks by exiting
    wait_bounded(&mut stopper, "the lock holder");
    let out = collect(&mut waiting);
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (0, "ran\n"),
        "{}",
        out.stderr
    );
}

/// The README's idiom for a lock held by the rest of a script: when the script is killed
/// (SIGKILL: no trap runs), the lock is released, not leaked.
#[test]
fn hold_while_pid_from_a_script_that_is_killed() {
    let root = Root::new();
    let out_file = root.dir.join("held.txt");
    let script = format!(
        "{BIN} hold --while-pid $$ deploy > '{}' &\n\
         until grep -q '^held' '{}'; do sleep 0.05; done\n\
         echo ready\n\
         sleep 30\n",
        out_file.display(),
        out_file.display()
    );
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(&script).env("NAMEDMUTEX_ROOT", &root.dir);
    let mut sh = Holder::start(sh);
    assert_eq!(sh.next_line(), "ready");
    assert_eq!(
        root.run(&["info", "-q", "deploy"]).code(),
        1,
        "held for the script"
    );
    sh.signal(libc::SIGKILL);
    sh.wait_exit();
    let deadline = Instant::now() + WATCHDOG;
    while !absent(&root, "deploy") {
        assert!(
            Instant::now() < deadline,
            "the lock outlived the killed script"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// How long a lock taken by the command has been held is always known, also when it was
/// taken without waiting (issue 17): `info` gives the time and `list` the HELD column.
#[test]
fn hold_time_is_known_for_uncontended_locks() {
    let root = Root::new();
    let _h = root.hold(&[], "timed");
    let v = root.run(&["info", "--json", "timed"]).json();
    assert!(v["owner"]["acquired"].is_string(), "{v}");
    assert!(v["owner"]["held_for_secs"].as_f64().is_some(), "{v}");
    let table = root.run(&["list"]).stdout;
    let row = table.lines().find(|l| l.starts_with("timed")).unwrap();
    // NAME STATE PID TID COUNT WAITERS HANDLES HELD COMMAND: HELD is a duration, not "-".
    let held = row.split_whitespace().nth(7).unwrap();
    assert_ne!(held, "-", "{table}");
}

/// A test user (created with useradd if missing; root only): uid and gid.
fn test_user(name: &str) -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let ok = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", name])
            .status()
            .is_ok_and(|s| s.success());
        // (Another test run on the machine may have made it meanwhile.)
        assert!(ok || id("-u").is_some(), "useradd {name}");
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// Between users (issue 17): an object the caller may not open is listed as such, with
/// its creator, instead of being hidden; root lists every user's `Local\` locks; another
/// user listing every user's is told whose it could not read.
#[test]
fn list_shows_what_others_hold() {
    if euid() != 0 {
        println!("skipped: other users need root (setpriv, useradd)");
        return;
    }
    let root = Root::new();
    std::fs::set_permissions(&root.dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let bin = user_binary(&root);
    let (u1, g1) = test_user("nmtest1");
    let (u2, g2) = test_user("nmtest2");
    let as_user = |uid: u32, gid: u32, args: &[&str]| as_test_user(&bin, uid, gid, &root.dir, args);
    let background = |c: Command, name: &str| {
        let mut h = Holder::start(c);
        assert_eq!(h.next_line(), format!("held {name}"));
        h
    };
    let _theirs = background(
        as_user(u2, g2, &["hold", "--global", "priv"]),
        "Global\\priv",
    );
    let _mine = background(as_user(u1, g1, &["hold", "mine"]), "mine");

    let out = output(as_user(u1, g1, &["list", "--global"]));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains("Global\\priv"))
        .unwrap_or_else(|| panic!("another user's private lock is hidden:\n{}", out.stdout));
    assert!(
        row.starts_with(&u2.to_string()) && row.contains("no-access"),
        "{row}"
    );
    let json = output(as_user(u1, g1, &["list", "--global", "--json"])).json();
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Global\\priv")
        .unwrap();
    assert_eq!(
        (
            &entry["accessible"],
            &entry["creator_uid"],
            &entry["handles"]
        ),
        (&false.into(), &u2.into(), &1.into()),
        "{entry}"
    );

    // Root sees every user's Local\ namespace.
    let out = root.run(&["list", "--all-users"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains("mine"))
        .unwrap_or_else(|| panic!("root does not see nmtest1's lock:\n{}", out.stdout));
    assert!(
        row.starts_with(&u1.to_string()) && row.contains("held"),
        "{row}"
    );

    // nmtest1 sees its own, and is told whose it could not read.
    let out = output(as_user(u1, g1, &["list", "--all-users"]));
    assert!(out.stdout.contains("mine"), "{}", out.stdout);
    assert!(
        out.stderr.contains("not readable by you") && out.stderr.contains(&u2.to_string()),
        "{}",
        out.stderr
    );
}

/// `list` and `info` on a root this process may not write to (issue 17): a read-only bind
/// mount of a root with live mutexes, and, for another user, a root owned by root with
/// mode 0755. Nothing is made there; what exists is shown.
#[test]
fn list_and_info_on_a_root_we_may_not_write() {
    if euid() != 0 {
        println!("skipped: mounts and other users need root");
        return;
    }
    let root = Root::new();
    let _local = root.hold(&[], "ro-local");
    let _global = root.hold(&["--global", "--everyone"], "ro-global");
    // A read-only view of the same root.
    let view = root.dir.with_extension("ro");
    std::fs::create_dir(&view).unwrap();
    let mount = |args: &[&str]| {
        let ok = Command::new("mount").args(args).status().unwrap().success();
        assert!(ok, "mount {args:?}");
    };
    mount(&["--bind", root.dir.to_str().unwrap(), view.to_str().unwrap()]);
    let unmount = scopeguard(|| {
        let _ = Command::new("umount").arg(&view).status();
        let _ = std::fs::remove_dir(&view);
    });
    mount(&["-o", "remount,bind,ro", view.to_str().unwrap()]);
    let in_view = |args: &[&str]| {
        let mut all = vec!["--root", view.to_str().unwrap()];
        all.extend_from_slice(args);
        root.run(&all)
    };
    let out = in_view(&["list", "--all"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("ro-local") && out.stdout.contains("Global\\ro-global"),
        "{}",
        out.stdout
    );
    assert_eq!(in_view(&["info", "-q", "ro-local"]).code(), 1, "held");
    assert_eq!(in_view(&["info", "-q", "absent"]).code(), 2);
    let run = in_view(&["run", "-t", "0", "other", "--", "true"]);
    assert_ne!(
        run.code(),
        0,
        "made a mutex on a read-only root: {}",
        run.stderr
    );
    drop(unmount);

    // Another user, in a root owned by root (0755) that it may not write to.
    std::fs::set_permissions(&root.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = user_binary(&root);
    let (uid, gid) = test_user("nmtest1");
    let out = output(as_test_user(&bin, uid, gid, &root.dir, &["list", "--all"]));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stdout.contains("Global\\ro-global"), "{}", out.stdout);
    assert!(
        !root.dir.join(format!("namedmutex-{uid}")).exists(),
        "a directory was made for the other user"
    );
}

/// A copy of the binary that test users can run (target/ may be private to root).
fn user_binary(root: &Root) -> std::path::PathBuf {
    let bin_dir = root.dir.join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.join("namedmutex");
    std::fs::copy(BIN, &bin).unwrap();
    bin
}

/// `bin ARGS` run as the user `uid`/`gid` (with `setpriv`) in the root `dir`.
fn as_test_user(
    bin: &std::path::Path,
    uid: u32,
    gid: u32,
    dir: &std::path::Path,
    args: &[&str],
) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(bin)
        .args(args)
        .env("NAMEDMUTEX_ROOT", dir)
        .current_dir("/");
    c
}

/// Runs `f` when dropped (cleanup that must happen even when an assertion fails).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
