//! Scenario 8: the `namedmutex` command against `flock(1)`, as a shell script runs them
//! (issue 17): `namedmutex run NAME -- true` and `flock FILE true`, alternating, one process
//! each, wall time from spawn to exit.

use crate::Config;
use crate::report::Report;
use crate::scenarios::{header, row, time_cells};
use namedmutex_bench::env::Env;
use namedmutex_bench::stats::summarize;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `namedmutex` binary built beside this one (`cargo build --release -p namedmutex-cli`).
fn cli_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.join("namedmutex");
    path.is_file().then_some(path)
}

fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("spawn");
    let took = start.elapsed();
    assert!(status.success(), "{cmd:?}: {status}");
    took
}

pub fn cli_startup(cfg: &Config, env: &Env, report: &mut Report) {
    let mut s = String::from("## 8. The command against flock(1)\n\n");
    let Some(cli) = cli_binary() else {
        let _ = writeln!(
            s,
            "Skipped: no `namedmutex` binary beside this one (build it first: \
             `cargo build --release -p namedmutex-cli`)."
        );
        report.section(s);
        report.target(
            "`run NAME -- true` ≤ 1.1× `flock FILE true`",
            "not measured (CLI not built)".into(),
            None,
        );
        return;
    };
    let pairs = if cfg.quick { 20 } else { 200 };
    let name = format!("s8-{}", std::process::id());
    let lock_file = env.root().join("s8.lock");
    let mut nm = Vec::new();
    let mut fl = Vec::new();
    for _ in 0..pairs {
        nm.push(ns(timed(
            Command::new(&cli)
                .args(["run", &name, "--", "true"])
                .envs(env.vars()),
        )));
        fl.push(ns(timed(Command::new("flock").arg(&lock_file).arg("true"))));
    }
    let (nm, fl) = (summarize(&nm), summarize(&fl));
    let _ = writeln!(
        s,
        "Each command started {pairs} times, alternating, as a script would: from spawn to \
         exit, including start-up, the lock, running `true` and the release.\n"
    );
    header(&mut s, &["command", "median", "spread", "÷ flock"]);
    let [m, spread, r] = time_cells(Some(&nm), Some(&fl));
    row(
        &mut s,
        &["`namedmutex run NAME -- true`".into(), m, spread, r],
    );
    let [m, spread, r] = time_cells(Some(&fl), Some(&fl));
    row(&mut s, &["`flock FILE true`".into(), m, spread, r]);
    report.target(
        "`run NAME -- true` ≤ 1.1× `flock FILE true`",
        format!(
            "{:.0} µs vs {:.0} µs ({:.2}×)",
            nm.median / 1000.0,
            fl.median / 1000.0,
            nm.median / fl.median
        ),
        Some(nm.median <= 1.1 * fl.median),
    );
    report.section(s);
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}
