//! The whole comparison in one run: every scenario of issue 5 against every peer, written
//! to a Markdown report.
//!
//! ```text
//! cargo run --release -p namedmutex-bench --bin compare -- --out BENCHMARKS.md [--quick]
//!     [--only 1,2,...,9] [--counts 2,4,8,16]
//! ```
//!
//! `--counts` limits scenario 4 to the given process counts (to rerun one row).
//!
//! Workers are this binary re-executed with `NMBENCH_ROLE` set (see the library's `roles`).

mod async_capi;
mod capi_shared;
mod charts;
mod cli_startup;
mod portable;
mod postgres;
mod report;
mod scenarios;
mod variant_build;

use namedmutex_bench::env::Env;
use namedmutex_bench::{machine, roles};
use report::Report;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long and how often to measure.
pub struct Config {
    pub quick: bool,
    /// Repetitions of each measurement.
    pub runs: usize,
    /// Length of one timed loop of a micro measurement.
    pub micro: Duration,
    /// Measured window of one ping-pong run.
    pub handoff_window: Duration,
    /// Measured window of one throughput run.
    pub contend_window: Duration,
    /// Measured window of the fairness run.
    pub fair_window: Duration,
    /// Process counts of scenario 4.
    pub counts: Vec<usize>,
    /// Abandonment trials per peer.
    pub abandon_trials: usize,
    /// Mutexes of scenario 6, and repetitions of it.
    pub scale_n: usize,
    pub scale_runs: usize,
    /// Threads per wave of scenario 6.
    pub threads: usize,
}

impl Config {
    fn new(quick: bool) -> Config {
        if quick {
            Config {
                quick,
                runs: 3,
                micro: Duration::from_millis(10),
                handoff_window: Duration::from_millis(150),
                contend_window: Duration::from_millis(150),
                fair_window: Duration::from_secs(1),
                counts: vec![2, 4, 8, 16],
                abandon_trials: 50,
                scale_n: 10_000,
                scale_runs: 1,
                threads: 1000,
            }
        } else {
            Config {
                quick,
                runs: 7,
                micro: Duration::from_millis(40),
                handoff_window: Duration::from_millis(500),
                contend_window: Duration::from_millis(500),
                fair_window: Duration::from_secs(5),
                counts: vec![2, 4, 8, 16],
                abandon_trials: 200,
                scale_n: 10_000,
                scale_runs: 3,
                threads: 1000,
            }
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: compare [--out FILE] [--quick] [--only 1,2,...] [--counts 2,4,...]");
    std::process::exit(2);
}

/// A comma-separated list of numbers, or the usage message.
fn list_arg<T: std::str::FromStr>(arg: Option<String>) -> Vec<T> {
    let list = arg.unwrap_or_else(|| usage());
    list.split(',')
        .map(|s| s.trim().parse().unwrap_or_else(|_| usage()))
        .collect()
}

fn main() {
    if roles::is_worker() {
        roles::run();
        return;
    }
    let mut out = PathBuf::from("BENCHMARKS.md");
    let mut quick = false;
    let mut only: Option<Vec<u32>> = None;
    let mut counts: Option<Vec<usize>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--quick" => quick = true,
            "--only" => only = Some(list_arg(args.next())),
            "--counts" => counts = Some(list_arg(args.next())),
            _ => usage(),
        }
    }
    let mut cfg = Config::new(quick);
    if let Some(counts) = counts {
        cfg.counts = counts;
    }
    // One line per failure: the report says which measurement failed and why.
    std::panic::set_hook(Box::new(|info| eprintln!("error: {info}")));
    // The whole run is bounded too: a hang anywhere ends it.
    // SAFETY: alarm only sets a timer.
    unsafe { libc::alarm(if quick { 600 } else { 3600 }) };

    let env = Env::create();
    let started = Instant::now();
    let mut report = Report::new(&cfg, machine::Machine::current());
    let wanted = |n: u32| only.as_ref().is_none_or(|o| o.contains(&n));
    type Scenario = fn(&Config, &Env, &mut Report);
    let all: [(u32, &str, Scenario); 10] = [
        (1, "uncontended", scenarios::uncontended),
        (2, "open and close", scenarios::open_close),
        (3, "hand-off", scenarios::handoff),
        (4, "contention", scenarios::contention),
        (5, "abandonment", scenarios::abandonment),
        (6, "scale", scenarios::scale),
        (7, "async tasks and the C ABI", async_capi::async_and_capi),
        (8, "the command against flock(1)", cli_startup::cli_startup),
        (9, "across machines: PostgreSQL", postgres::postgres),
        (10, "the portable backend", portable::portable),
    ];
    for (n, what, run) in all {
        if !wanted(n) {
            continue;
        }
        eprintln!(
            "[{:>6.1}s] scenario {n}: {what}",
            started.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&cfg, &env, &mut report)
        }));
        if let Err(e) = result {
            report.failed(n, what, &panic_message(&e));
        }
        eprintln!("          took {:.1}s", t.elapsed().as_secs_f64());
    }
    report.finish(started.elapsed());
    // The charts go beside the report: BENCHMARKS.md → BENCHMARKS-charts/.
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("BENCHMARKS");
    let charts_dir = format!("{stem}-charts");
    let parent = out.parent().unwrap_or(std::path::Path::new(""));
    for failure in report.write_charts(&parent.join(&charts_dir)) {
        eprintln!("error: a chart was not written: {failure}");
    }
    std::fs::write(&out, report.render(&charts_dir)).expect("write the report");
    eprintln!(
        "wrote {} in {:.1}s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
}

/// The message of a caught panic.
pub fn panic_message(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".to_owned())
}
