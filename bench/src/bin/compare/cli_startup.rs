//! Scenario 8: the `namedmutex` command against `flock(1)`, as a shell script runs them
//! (issue 17): `namedmutex run NAME -- true` and `flock FILE true`, alternating, one process
//! each, wall time from spawn to exit. Two builds of the command: the default one (glibc,
//! dynamically linked) and the static musl one (`--target x86_64-unknown-linux-musl`, built
//! here when that target is installed), whose start-up has no dynamic loading.

use crate::Config;
use crate::report::Report;
use crate::scenarios::{header, row, time_cells};
use crate::variant_build;
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

/// The musl target the static build is made for.
const MUSL: &str = "x86_64-unknown-linux-musl";

/// Builds the command for [`MUSL`]; its path, or why not.
fn musl_binary() -> Result<PathBuf, String> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err("only built on x86-64 Linux".into());
    }
    variant_build::cargo_release(
        &["-p", "namedmutex-cli", "--target", MUSL],
        "the static musl command (rustup target add x86_64-unknown-linux-musl)",
    )?;
    Ok(variant_build::target_dir()?
        .join(MUSL)
        .join("release")
        .join("namedmutex"))
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
    let musl = musl_binary();
    let pairs = if cfg.quick { 20 } else { 200 };
    let name = format!("s8-{}", std::process::id());
    let lock_file = env.root().join("s8.lock");
    let run = |bin: &PathBuf| {
        ns(timed(
            Command::new(bin)
                .args(["run", &name, "--", "true"])
                .envs(env.vars()),
        ))
    };
    let (mut nm, mut nm_musl, mut fl) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..pairs {
        nm.push(run(&cli));
        if let Ok(bin) = &musl {
            nm_musl.push(run(bin));
        }
        fl.push(ns(timed(Command::new("flock").arg(&lock_file).arg("true"))));
    }
    let (nm, fl) = (summarize(&nm), summarize(&fl));
    // The musl build's times, or why it was not measured.
    let nm_musl = musl.map(|_| summarize(&nm_musl));
    let _ = writeln!(
        s,
        "Each command started {pairs} times, in turn, as a script would: from spawn to \
         exit, including start-up, the lock, running `true` and the release. The default \
         build links glibc dynamically; the static musl build (`cargo build --release -p \
         namedmutex-cli --target {MUSL}`) starts without dynamic loading.\n"
    );
    header(&mut s, &["command", "median", "spread", "÷ flock"]);
    let [m, spread, r] = time_cells(Some(&nm), Some(&fl));
    row(
        &mut s,
        &["`namedmutex run NAME -- true`".into(), m, spread, r],
    );
    let musl_cells = match &nm_musl {
        Ok(x) => time_cells(Some(x), Some(&fl)),
        Err(why) => [format!("not measured: {why}"), String::new(), String::new()],
    };
    let [m, spread, r] = musl_cells;
    row(
        &mut s,
        &["the same, static musl build".into(), m, spread, r],
    );
    let [m, spread, r] = time_cells(Some(&fl), Some(&fl));
    row(&mut s, &["`flock FILE true`".into(), m, spread, r]);
    let versus = |x: &namedmutex_bench::stats::Summary| {
        format!(
            "{:.0} µs vs {:.0} µs ({:.2}×)",
            x.median / 1000.0,
            fl.median / 1000.0,
            x.median / fl.median
        )
    };
    report.target(
        "`run NAME -- true` ≤ 1.1× `flock FILE true` (default glibc build)",
        versus(&nm),
        Some(nm.median <= 1.1 * fl.median),
    );
    report.target(
        "`run NAME -- true` ≤ 1.1× `flock FILE true` (static musl build)",
        nm_musl
            .as_ref()
            .map_or_else(|why| format!("not measured: {why}"), versus),
        nm_musl.as_ref().ok().map(|x| x.median <= 1.1 * fl.median),
    );
    report.section(s);
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}
