//! Scenario 10, the portable backend (macOS's and FreeBSD's design: record-lock lifelines, a watcher
//! thread, one-word waits, no biasing) on Linux, against the Linux backend and the robust
//! pthread mutex in the same run. Its workers are a second build of this harness with
//! `--features portable-backend` (built here into `target/portable`), which runs the same
//! roles; the coordinator opens none of its objects (the two backends refuse each other's).

use crate::Config;
use crate::report::Report;
use crate::scenarios::{
    abandon_with, attempt, contend_with, header, row, spread_of, uncontended_unbiased, verdict,
};
use crate::variant_build;
use namedmutex_bench::env::Env;
use namedmutex_bench::peers::Peer;
use namedmutex_bench::stats::{self, summarize};
use std::fmt::Write;
use std::path::PathBuf;

/// Builds the harness with the portable backend; its path, or why not.
fn build() -> Result<PathBuf, String> {
    let target = variant_build::target_dir()?.join("portable");
    let dir = target
        .to_str()
        .ok_or("a target directory that is not UTF-8")?;
    variant_build::cargo_release(
        &[
            "-p",
            "namedmutex-bench",
            "--bin",
            "compare",
            "--features",
            "portable-backend",
            "--target-dir",
            dir,
        ],
        "the portable harness",
    )?;
    Ok(target.join("release").join("compare"))
}

pub fn portable(cfg: &Config, env: &Env, report: &mut Report) {
    let mut s = String::from(
        "## 10. The portable backend (macOS and FreeBSD) on Linux\n\n\
         The backend macOS and FreeBSD use, built on Linux with `--features portable-backend` \
         and Linux shims (`FUTEX_WAIT` on one word, a pidfd watched by epoll for the watcher, \
         the same record locks): what it costs against the Linux backend and the robust \
         pthread mutex, measured here in the same run. Its numbers on a real Mac or FreeBSD \
         machine will differ (other kernels' wake-ups and process-exit paths).\n\n",
    );
    if cfg!(feature = "portable-backend") {
        s.push_str("Not measured: this harness is itself the portable build.\n");
        report.section(s);
        return;
    }
    if cfg.quick {
        // Its build (the whole harness again, in a target directory of its own) takes
        // longer than every quick measurement together; CI runs the quick mode.
        s.push_str("Not measured in a quick run: a full run builds the portable harness.\n");
        report.section(s);
        return;
    }
    let exe = match build() {
        Ok(exe) => exe,
        Err(e) => {
            let _ = writeln!(s, "Not measured: {e}.");
            report.section(s);
            return;
        }
    };

    // Uncontended: the portable build's `uncontended-nobias` worker measures its namedmutex
    // (the portable backend) and the robust pthread mutex in one process, alternating.
    let (nm, pthread) = uncontended_unbiased(cfg, env, Some(&exe), "s10-portable");
    let _ = writeln!(
        s,
        "### Uncontended wait + release (one process, no biasing, {} runs alternating)\n",
        cfg.runs
    );
    header(&mut s, &["lock", "median", "spread", "÷ pthread"]);
    for (label, x) in [
        ("**namedmutex, portable backend**", &nm),
        (
            "pthread robust+recursive+pshared, in that process",
            &pthread,
        ),
    ] {
        row(
            &mut s,
            &[
                label.into(),
                stats::ns(x.median),
                format!("{}–{}", stats::ns(x.min), stats::ns(x.max)),
                stats::ratio(x.median / pthread.median),
            ],
        );
    }
    let r = nm.median / pthread.median;
    report.target_noisy(
        "portable backend: uncontended ≤ 1.0× the robust pthread mutex",
        format!(
            "{} ({} vs {})",
            stats::ratio(r),
            stats::ns(nm.median),
            stats::ns(pthread.median)
        ),
        verdict(r <= 1.0),
        nm.min <= pthread.max,
    );

    // Contended: the same contend role, Linux backend and portable backend alternating.
    let _ = writeln!(
        s,
        "\n### Contended throughput (scenario 4's loop), Linux backend vs portable backend\n\n\
         {} runs of {} ms each, alternating; fairness from one {} s run of the portable backend.\n",
        cfg.runs,
        cfg.contend_window.as_millis(),
        cfg.fair_window.as_secs()
    );
    header(
        &mut s,
        &[
            "processes",
            "Linux backend",
            "portable backend",
            "portable ÷ Linux",
            "portable max/min",
            "longest wait",
            "exclusion violations",
        ],
    );
    let mut worst_ratio = f64::INFINITY;
    let mut worst_fair: f64 = 0.0;
    let mut noisy = true;
    for &n in &cfg.counts {
        let (mut linux, mut port) = (Vec::new(), Vec::new());
        let mut violations = 0;
        for run in 0..cfg.runs {
            let tag = format!("p{n}-{run}");
            if let Some(c) =
                attempt(|| contend_with(env, Peer::NamedMutex, n, cfg.contend_window, &tag, None))
            {
                linux.push(c.throughput);
                violations += c.violations;
            }
            let tag = format!("pp{n}-{run}");
            if let Some(c) = attempt(|| {
                contend_with(
                    env,
                    Peer::NamedMutex,
                    n,
                    cfg.contend_window,
                    &tag,
                    Some(&exe),
                )
            }) {
                port.push(c.throughput);
                violations += c.violations;
            }
        }
        let fair = attempt(|| {
            contend_with(
                env,
                Peer::NamedMutex,
                n,
                cfg.fair_window,
                &format!("pp{n}-fair"),
                Some(&exe),
            )
        });
        if linux.is_empty() || port.is_empty() {
            row(&mut s, &[n.to_string(), "failed".into()]);
            continue;
        }
        let (l, p) = (summarize(&linux), summarize(&port));
        let ratio = p.median / l.median;
        worst_ratio = worst_ratio.min(ratio);
        noisy &= p.max >= l.min;
        let (spread, wait, v) = match &fair {
            Some(f) => {
                let spread = spread_of(&f.counts);
                worst_fair = worst_fair.max(spread);
                (
                    stats::ratio(spread),
                    stats::ns(f.max_wait_ns as f64),
                    violations + f.violations,
                )
            }
            None => ("failed".into(), String::new(), violations),
        };
        row(
            &mut s,
            &[
                n.to_string(),
                stats::rate(l.median),
                stats::rate(p.median),
                stats::ratio(ratio),
                spread,
                wait,
                v.to_string(),
            ],
        );
    }
    report.target_noisy(
        "portable backend: contended throughput ≥ 0.8× the Linux backend's at 2–16 processes",
        format!("worst {}", stats::ratio(worst_ratio)),
        verdict(worst_ratio >= 0.8),
        noisy,
    );
    report.target(
        "portable backend: max/min ≤ 3 under contention",
        format!("worst {}", stats::ratio(worst_fair)),
        verdict(worst_fair <= 3.0),
    );

    // Abandonment: a holder killed while a waiter sleeps; the waiter's watcher wakes it.
    let _ = writeln!(
        s,
        "\n### Abandonment: holder killed (SIGKILL), waiter asleep ({} trials, as scenario 5)\n",
        cfg.abandon_trials
    );
    header(
        &mut s,
        &["backend", "p50", "p99", "max", "told it was abandoned"],
    );
    let mut p99_portable = None;
    for (label, exe) in [
        ("Linux backend", None),
        (
            "**portable backend** (woken by its watcher)",
            Some(exe.as_path()),
        ),
    ] {
        match attempt(|| abandon_with(env, Peer::NamedMutex, cfg.abandon_trials, exe)) {
            Some(mut a) if !a.latencies.is_empty() => {
                a.latencies.sort_by(f64::total_cmp);
                let p50 = stats::percentile_sorted(&a.latencies, 50.0);
                let p99 = stats::percentile_sorted(&a.latencies, 99.0);
                let max = a.latencies[a.latencies.len() - 1];
                if exe.is_some() {
                    p99_portable = Some((p99, a.told, a.latencies.len()));
                }
                row(
                    &mut s,
                    &[
                        label.into(),
                        stats::ns(p50),
                        stats::ns(p99),
                        stats::ns(max),
                        format!("{} of {}", a.told, a.latencies.len()),
                    ],
                );
            }
            _ => row(&mut s, &[label.into(), "failed".into()]),
        }
    }
    match p99_portable {
        Some((p99, told, of)) => report.target(
            "portable backend: abandonment p99 < 1 ms after the kill, every waiter told",
            format!("p99 {}, told {told} of {of}", stats::ns(p99)),
            verdict(p99 < 1e6 && told == of),
        ),
        None => report.target(
            "portable backend: abandonment p99 < 1 ms",
            "failed".into(),
            None,
        ),
    }
    report.section(s);
}
