//! The six scenarios of issue 5. Each measures every peer, repeats, and adds a table and its
//! targets to the report.

use crate::Config;
use crate::charts::{self, Chart, Series};
use crate::report::Report;
use namedmutex_bench::control::ControlPage;
use namedmutex_bench::env::Env;
use namedmutex_bench::peers::{self, AnyLock, Lock, NmLock, Opener, Peer};
use namedmutex_bench::proc::Worker;
use namedmutex_bench::stats::{self, Summary, summarize};
use namedmutex_bench::{calibrate, ns_per_op, roles, with_lock};
use std::fmt::Write;
use std::hint::black_box;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::time::{Duration, Instant};

/// How long a worker may take to start and answer.
const ANSWER: Duration = Duration::from_secs(20);

/// Runs `f`, turning a panic into `None` (the panic message is on stderr already).
pub fn attempt<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// A labelled timed loop: `op(n)` runs `n` iterations.
pub type Op<'a> = Box<dyn Fn(u64) + 'a>;

/// Each row's loop calibrated to run about `target`, then timed `runs` times, the rows
/// interleaved (so that a slow moment of the machine hits all of them): a summary per row.
pub fn measure_rows(rows: &[(&str, Op<'_>)], target: Duration, runs: usize) -> Vec<Summary> {
    let iters: Vec<u64> = rows.iter().map(|(_, op)| calibrate(op, target)).collect();
    let mut samples = vec![Vec::new(); rows.len()];
    for _ in 0..runs {
        for (i, (_, op)) in rows.iter().enumerate() {
            samples[i].push(ns_per_op(op, iters[i]));
        }
    }
    samples.iter().map(|v| summarize(v)).collect()
}

/// A table row: label, then cells.
pub fn row(s: &mut String, cells: &[String]) {
    let _ = writeln!(s, "| {} |", cells.join(" | "));
}

pub fn header(s: &mut String, cells: &[&str]) {
    let _ = writeln!(s, "| {} |", cells.join(" | "));
    let _ = writeln!(
        s,
        "|{}",
        cells
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    );
}

/// `median`, `min–max`, `÷ base` cells for a duration summary.
pub fn time_cells(x: Option<&Summary>, base: Option<&Summary>) -> [String; 3] {
    match x {
        None => ["failed".into(), String::new(), String::new()],
        Some(x) => {
            let (m, spread) = stats::ns_spread(x);
            let r = base.map_or("–".into(), |b| stats::ratio(x.median / b.median));
            [m, spread, r]
        }
    }
}

/// `a vs b: a/b×` for two medians.
fn versus(a: &Summary, b: &Summary) -> String {
    format!(
        "{} vs {}: {}",
        stats::ns(a.median),
        stats::ns(b.median),
        stats::ratio(a.median / b.median)
    )
}

/// The `uncontended-nobias` worker's medians (of `exe`, another build of the harness, when
/// given): namedmutex and the robust pthread mutex in one process that may not bias, over
/// locks named `name`.
pub(crate) fn uncontended_unbiased(
    cfg: &Config,
    env: &Env,
    exe: Option<&std::path::Path>,
    name: &str,
) -> (Summary, Summary) {
    let args = [
        cfg.runs.to_string(),
        cfg.micro.as_millis().to_string(),
        name.to_owned(),
    ];
    let watchdog = Duration::from_secs(600);
    let mut worker = match exe {
        Some(exe) => Worker::spawn_exe(exe, env, "uncontended-nobias", &args, watchdog),
        None => Worker::spawn(env, "uncontended-nobias", &args, watchdog),
    };
    let mut samples = |tag: &str| -> Summary {
        let line = worker.expect(tag, watchdog);
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        summarize(&v)
    };
    let medians = (samples("nm"), samples("pthread"));
    worker.finish(Duration::from_secs(10));
    medians
}

pub(crate) fn verdict(ok: bool) -> Option<bool> {
    Some(ok)
}

// ---------------------------------------------------------------- 1. uncontended

pub fn uncontended(cfg: &Config, env: &Env, report: &mut Report) {
    let mut locks: Vec<(Peer, AnyLock)> = Peer::ALL
        .into_iter()
        .map(|p| (p, AnyLock::create(p, env, "s1")))
        .collect();
    let mut labels: Vec<String> = Peer::ALL.iter().map(|p| p.label().to_owned()).collect();
    // A mutex after its first contention, when biasing has stopped for it: we hold it while
    // another thread waits for it in vain (setting WAITERS, or revoking our bias), so our
    // release makes it an ordinary mutex for good.
    let unbiased = NmLock::open(env, "s1-unbiased");
    unbiased.acquire();
    std::thread::scope(|s| {
        s.spawn(|| {
            let status = unbiased.0.wait(Some(Duration::from_millis(50)));
            assert!(
                matches!(status, Ok(namedmutex::WaitStatus::TimedOut)),
                "{status:?}"
            );
        });
    });
    unbiased.release();
    locks.push((Peer::NamedMutex, AnyLock::NamedMutex(unbiased)));
    labels.push("namedmutex, bias revoked (ordinary CAS path)".to_owned());
    let pair = |l: &AnyLock, n: u64| {
        with_lock!(l, |l| for _ in 0..n {
            black_box(l.acquire());
            l.release();
        })
    };
    let depth2 = |l: &AnyLock, n: u64| {
        with_lock!(l, |l| for _ in 0..n {
            black_box(l.acquire());
            black_box(l.acquire());
            l.release();
            l.release();
        })
    };
    let iters: Vec<(u64, u64)> = locks
        .iter()
        .map(|(p, l)| {
            let a = calibrate(|n| pair(l, n), cfg.micro);
            let b = if p.recursive() {
                calibrate(|n| depth2(l, n), cfg.micro)
            } else {
                0
            };
            (a, b)
        })
        .collect();
    let mut single = vec![Vec::new(); locks.len()];
    let mut rec = vec![Vec::new(); locks.len()];
    for _ in 0..cfg.runs {
        for (i, (p, l)) in locks.iter().enumerate() {
            single[i].push(ns_per_op(|n| pair(l, n), iters[i].0));
            if p.recursive() {
                rec[i].push(ns_per_op(|n| depth2(l, n), iters[i].1));
            }
        }
    }
    let single: Vec<Summary> = single.iter().map(|v| summarize(v)).collect();
    let rec: Vec<Option<Summary>> = rec
        .iter()
        .map(|v| (!v.is_empty()).then(|| summarize(v)))
        .collect();
    let nm = 0;
    let mut s = String::from("## 1. Uncontended acquire + release\n\n");
    let _ = writeln!(
        s,
        "One process, one thread, no other user of the lock: `acquire(); release()` in a \
         loop (depth 2: `acquire(); acquire(); release(); release()`), time per pair.\n"
    );
    header(
        &mut s,
        &[
            "peer",
            "acquire+release",
            "spread",
            "÷ namedmutex",
            "recursive, depth 2",
            "spread",
            "÷ namedmutex",
        ],
    );
    for (i, (p, _)) in locks.iter().enumerate() {
        let a = time_cells(Some(&single[i]), Some(&single[nm]));
        let b = match &rec[i] {
            Some(r) => time_cells(Some(r), rec[nm].as_ref()),
            None => [
                match p {
                    Peer::Sem => "n/a (no owner: deadlocks)".into(),
                    Peer::Flock => "n/a (one unlock frees all)".into(),
                    _ => "n/a (not recursive: deadlocks)".into(),
                },
                String::new(),
                String::new(),
            ],
        };
        let mut cells = vec![labels[i].clone()];
        cells.extend(a);
        cells.extend(b);
        row(&mut s, &cells);
    }
    let idx = |p: Peer| Peer::ALL.iter().position(|&q| q == p).expect("peer");
    let last = locks.len() - 1;
    report.target(
        "(no target) uncontended once the bias is revoked: the ordinary path",
        format!(
            "{} vs {}: {}",
            stats::ns(single[last].median),
            stats::ns(single[idx(Peer::Pthread)].median),
            stats::ratio(single[last].median / single[idx(Peer::Pthread)].median)
        ),
        None,
    );
    // Where biasing is unavailable: measured in a worker that may not bias.
    let (nobias, nobias_pthread) = uncontended_unbiased(cfg, env, None, "s1-nobias");
    for (label, x) in [
        (
            "namedmutex, biasing unavailable (a process with NAMEDMUTEX_BIAS=0)",
            &nobias,
        ),
        (
            "pthread robust+recursive+pshared, in that process",
            &nobias_pthread,
        ),
    ] {
        let mut cells = vec![label.to_owned()];
        cells.extend(time_cells(Some(x), Some(&single[nm])));
        cells.extend([String::new(), String::new(), String::new()]);
        row(&mut s, &cells);
    }
    report.target(
        "where biasing is unavailable, uncontended ≤ 1.0× the robust pthread mutex",
        versus(&nobias, &nobias_pthread),
        verdict(nobias.median <= nobias_pthread.median),
    );
    let vs_pthread = single[nm].median / single[idx(Peer::Pthread)].median;
    let vs_flock = single[idx(Peer::Flock)].median / single[nm].median;
    report.target(
        "uncontended ≤ 0.7× the robust pthread mutex",
        format!(
            "{} vs {}: {}",
            stats::ns(single[nm].median),
            stats::ns(single[idx(Peer::Pthread)].median),
            stats::ratio(vs_pthread)
        ),
        verdict(vs_pthread <= 0.7),
    );
    report.target(
        "uncontended ≥ 50× faster than flock",
        format!("{} faster", stats::ratio(vs_flock)),
        verdict(vs_flock >= 50.0),
    );
    if let (Some(r), Some(pr)) = (&rec[nm], &rec[idx(Peer::Pthread)]) {
        let x = r.median / pr.median;
        report.target(
            "recursive (depth 2) ≤ 0.7× the robust pthread mutex",
            format!(
                "{} vs {}: {}",
                stats::ns(r.median),
                stats::ns(pr.median),
                stats::ratio(x)
            ),
            verdict(x <= 0.7),
        );
    }
    report.section(s);
}

// ---------------------------------------------------------------- 2. open and close

pub fn open_close(cfg: &Config, env: &Env, report: &mut Report) {
    let mut args = vec!["exist".to_owned()];
    args.extend(Opener::ALL.iter().map(|o| o.key().to_owned()));
    let mut holder = Worker::spawn(env, "hold", &args, Duration::from_secs(1800));
    holder.expect("ready", ANSWER);

    let mut serial = 0u64;
    let mut fresh_name = move || {
        serial += 1;
        format!("fresh{serial}")
    };
    let existing = |o: Opener, n: u64| {
        for _ in 0..n {
            peers::open_close_existing(o, env, "exist");
        }
    };
    let mut fresh = |o: Opener, n: u64| {
        for _ in 0..n {
            let name = fresh_name();
            peers::create_destroy_fresh(o, env, &name);
        }
    };
    let openers = Opener::ALL;
    let mut ex = vec![Vec::new(); openers.len()];
    let mut fr = vec![Vec::new(); openers.len()];
    let iters: Vec<(u64, u64)> = openers
        .iter()
        .map(|&o| {
            (
                calibrate(|n| existing(o, n), cfg.micro),
                calibrate(|n| fresh(o, n), cfg.micro),
            )
        })
        .collect();
    for _ in 0..cfg.runs {
        for (i, &o) in openers.iter().enumerate() {
            ex[i].push(ns_per_op(|n| existing(o, n), iters[i].0));
            fr[i].push(ns_per_op(|n| fresh(o, n), iters[i].1));
        }
    }
    drop(holder); // kills it
    let ex: Vec<Summary> = ex.iter().map(|v| summarize(v)).collect();
    let fr: Vec<Summary> = fr.iter().map(|v| summarize(v)).collect();
    let raw = openers.len() - 1;
    let nm = 0;

    let mut s = String::from("## 2. Create-or-open + close\n\n");
    let _ = writeln!(
        s,
        "*Existing*: the name is held open by another process, so every open is a full open \
         (namedmutex: `create` of an existing name, then drop of the handle). *Fresh*: create a \
         new name and destroy it (namedmutex: `create` + drop of the last handle, which \
         removes it; pthread: create the file, `pthread_mutex_init`, unmap, unlink; sem: \
         `sem_open(O_CREAT|O_EXCL)`, `sem_close`, `sem_unlink`; flock and named-lock: create \
         the lock file, close, unlink, since neither removes it). The reference is the raw \
         `shm_open + mmap + flock(LOCK_SH) + munmap + close` sequence (fresh: with \
         `O_CREAT|O_EXCL`, `ftruncate` and `shm_unlink`).\n"
    );
    header(
        &mut s,
        &[
            "opener",
            "existing",
            "spread",
            "÷ namedmutex",
            "÷ raw",
            "fresh",
            "spread",
            "÷ namedmutex",
            "÷ raw",
        ],
    );
    for (i, o) in openers.iter().enumerate() {
        let mut cells = vec![o.label().to_owned()];
        cells.extend(time_cells(Some(&ex[i]), Some(&ex[nm])));
        cells.push(stats::ratio(ex[i].median / ex[raw].median));
        cells.extend(time_cells(Some(&fr[i]), Some(&fr[nm])));
        cells.push(stats::ratio(fr[i].median / fr[raw].median));
        row(&mut s, &cells);
    }
    for (what, t) in [
        ("open+close of an existing name", &ex),
        ("create+destroy of a fresh name", &fr),
    ] {
        let x = t[nm].median / t[raw].median;
        report.target(
            &format!("{what} ≤ 2× the raw sequence"),
            format!(
                "{} vs {}: {}",
                stats::ns(t[nm].median),
                stats::ns(t[raw].median),
                stats::ratio(x)
            ),
            verdict(x <= 2.0),
        );
    }
    report.section(s);
}

// ---------------------------------------------------------------- 3. hand-off

/// How long the holder keeps the lock after the other worker announced it is waiting:
/// short (the waiter is still arriving or polling) and long (the waiter is asleep).
const HOLDS_NS: [u64; 2] = [5_000, 200_000];

/// The distributions of `samples` (ns, one vector per peer in `Peer::ALL` order) as a chart
/// of cumulative fractions on a logarithmic time axis.
fn distribution_chart(file: &str, title: &str, samples: &[Vec<f64>]) -> Chart {
    Chart {
        file: file.into(),
        title: title.into(),
        x_label: "latency (µs, log scale)".into(),
        y_label: "fraction at most this late".into(),
        log_x: true,
        series: Peer::ALL
            .iter()
            .zip(samples)
            .filter(|(_, v)| !v.is_empty())
            .map(|(p, v)| Series {
                label: p.label().to_owned(),
                points: charts::cdf_us(v),
            })
            .collect(),
    }
}

/// One ping-pong run: the hand-off latencies (ns) of the measured window.
fn pingpong_once(env: &Env, peer: Peer, window: Duration, tag: &str, hold_ns: u64) -> Vec<f64> {
    let name = format!("s3-{tag}");
    let lock = AnyLock::create(peer, env, &name);
    let ctl_path = env.dir.join(format!("ctl-{name}-{}", peer.key()));
    let ctl = ControlPage::create(&ctl_path);
    let watchdog = window + Duration::from_secs(120);
    let mut workers: Vec<Worker> = Vec::new();
    for id in 0..2 {
        let args = [
            peer.key().to_owned(),
            name.clone(),
            ctl_path.display().to_string(),
            id.to_string(),
            hold_ns.to_string(),
        ];
        let mut w = Worker::spawn(env, "pingpong", &args, watchdog);
        w.expect("ready", ANSWER); // worker 0 holds the lock once it is ready
        workers.push(w);
    }
    for w in &mut workers {
        w.send("go");
    }
    let c = ctl.get();
    std::thread::sleep(Duration::from_millis(50)); // warm-up, not synchronisation
    c.measuring.store(1, Release);
    std::thread::sleep(window);
    c.measuring.store(0, Release);
    c.stop.store(1, Release);
    let mut samples = Vec::new();
    for w in &mut workers {
        let line = w.expect("done", ANSWER);
        samples.extend(
            line.split_whitespace()
                .filter_map(|x| x.parse::<f64>().ok()),
        );
    }
    for w in workers {
        w.finish(ANSWER);
    }
    drop(lock);
    let _ = std::fs::remove_file(&ctl_path);
    samples
}

pub fn handoff(cfg: &Config, env: &Env, report: &mut Report) {
    // [hold][peer] -> per-run medians and p99s
    let mut p50: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); Peer::ALL.len()]; HOLDS_NS.len()];
    let mut p99 = p50.clone();
    let mut count = vec![vec![0usize; Peer::ALL.len()]; HOLDS_NS.len()];
    // Every hand-off of every run, for the charts of the distributions.
    let mut every: Vec<Vec<Vec<f64>>> = p50.clone();
    for run in 0..cfg.runs {
        for (h, &hold) in HOLDS_NS.iter().enumerate() {
            for (i, &p) in Peer::ALL.iter().enumerate() {
                let tag = format!("{run}-{h}");
                if let Some(mut v) =
                    attempt(|| pingpong_once(env, p, cfg.handoff_window, &tag, hold))
                {
                    if v.is_empty() {
                        continue;
                    }
                    v.sort_by(f64::total_cmp);
                    p50[h][i].push(stats::percentile_sorted(&v, 50.0));
                    p99[h][i].push(stats::percentile_sorted(&v, 99.0));
                    count[h][i] += v.len();
                    every[h][i].extend_from_slice(&v);
                }
            }
        }
    }
    let mut s = String::from(
        "## 3. Hand-off between two processes

",
    );
    let _ = writeln!(
        s,
        "Two processes hand one lock back and forth. The holder waits until the other \
         process has announced (through the control page) that it is about to acquire, keeps \
         the lock for a further *hold* time, notes the time and releases; the other's acquire \
         returns and notes the time. Hand-off latency = acquire return − release call, both \
         CLOCK_MONOTONIC. A *5 µs* hold finds the waiter arriving or still polling (namedmutex: \
         yielding); a *200 µs* hold finds it asleep in the kernel, so the wake-up is measured \
         (the semaphore, a bare futex wake, shows the floor). The control page only says \
         when to release; ownership moves through the lock alone. Per run ({} ms window, \
         after 50 ms of warm-up) the median and 99th percentile of all hand-offs; the table \
         shows the median over {} runs of those, and the spread of the run medians. Lower is \
         better.\n",
        cfg.handoff_window.as_millis(),
        cfg.runs
    );
    header(
        &mut s,
        &[
            "hold",
            "peer",
            "hand-off p50",
            "spread",
            "÷ namedmutex",
            "hand-off p99",
            "hand-offs measured",
        ],
    );
    for (h, &hold) in HOLDS_NS.iter().enumerate() {
        report.chart(distribution_chart(
            &format!("handoff-{}us.svg", hold / 1000),
            &format!(
                "Hand-off latency with a {} hold (all runs)",
                stats::ns(hold as f64)
            ),
            &every[h],
        ));
    }
    let mut ok = true;
    let mut noise = true;
    let mut measured = Vec::new();
    for (h, &hold) in HOLDS_NS.iter().enumerate() {
        let sums: Vec<Option<Summary>> = p50[h]
            .iter()
            .map(|v| (!v.is_empty()).then(|| summarize(v)))
            .collect();
        for (i, p) in Peer::ALL.iter().enumerate() {
            let mut cells = vec![stats::ns(hold as f64), p.label().to_owned()];
            cells.extend(time_cells(sums[i].as_ref(), sums[0].as_ref()));
            cells.push(if p99[h][i].is_empty() {
                String::new()
            } else {
                stats::ns(summarize(&p99[h][i]).median)
            });
            cells.push(count[h][i].to_string());
            row(&mut s, &cells);
        }
        match (&sums[0], &sums[1]) {
            (Some(nm), Some(pt)) => {
                if nm.median > pt.median {
                    ok = false;
                    noise &= nm.min <= pt.max;
                }
                measured.push(format!(
                    "{} hold: {} vs {} ({})",
                    stats::ns(hold as f64),
                    stats::ns(nm.median),
                    stats::ns(pt.median),
                    stats::ratio(nm.median / pt.median)
                ));
            }
            _ => ok = false,
        }
    }
    report.target_noisy(
        "hand-off at least as fast as the robust pthread mutex (p50, namedmutex vs pthread)",
        measured.join("; "),
        verdict(ok),
        noise,
    );
    report.section(s);
}

// ---------------------------------------------------------------- 4. contention

pub(crate) struct Contended {
    /// Acquisitions per second, all processes.
    pub throughput: f64,
    pub counts: Vec<u64>,
    pub max_wait_ns: u64,
    pub violations: u64,
}

fn contend_once(env: &Env, peer: Peer, n: usize, window: Duration, tag: &str) -> Contended {
    contend_with(env, peer, n, window, tag, None)
}

/// [`contend_once`] with the workers of `exe` (another build of the harness) when given; the
/// coordinator then opens nothing itself (its backend may not read that build's objects).
pub(crate) fn contend_with(
    env: &Env,
    peer: Peer,
    n: usize,
    window: Duration,
    tag: &str,
    exe: Option<&std::path::Path>,
) -> Contended {
    let name = format!("s4-{tag}");
    let lock = exe.is_none().then(|| AnyLock::create(peer, env, &name));
    let ctl_path = env.dir.join(format!("ctl-{name}-{}", peer.key()));
    let ctl = ControlPage::create(&ctl_path);
    let watchdog = window + Duration::from_secs(120);
    let mut workers: Vec<Worker> = (0..n)
        .map(|id| {
            let args = [
                peer.key().to_owned(),
                name.clone(),
                ctl_path.display().to_string(),
                id.to_string(),
            ];
            match exe {
                Some(exe) => Worker::spawn_exe(exe, env, "contend", &args, watchdog),
                None => Worker::spawn(env, "contend", &args, watchdog),
            }
        })
        .collect();
    for w in &mut workers {
        w.expect("ready", ANSWER);
    }
    for w in &mut workers {
        w.send("go");
    }
    let c = ctl.get();
    std::thread::sleep(Duration::from_millis(50)); // warm-up
    c.measuring.store(1, Release);
    let t1 = Instant::now();
    std::thread::sleep(window);
    c.measuring.store(0, Release);
    let t2 = Instant::now();
    c.stop.store(1, Release);
    for w in &mut workers {
        w.expect("done", ANSWER);
    }
    for w in workers {
        w.finish(ANSWER);
    }
    let counts = ctl.counts(n);
    let result = Contended {
        throughput: counts.iter().sum::<u64>() as f64 / (t2 - t1).as_secs_f64(),
        max_wait_ns: ctl.max_wait_ns(n),
        violations: c.violations.load(Relaxed),
        counts,
    };
    drop(lock);
    let _ = std::fs::remove_file(&ctl_path);
    result
}

pub(crate) fn spread_of(counts: &[u64]) -> f64 {
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    let min = counts.iter().copied().min().unwrap_or(0) as f64;
    if min == 0.0 { f64::INFINITY } else { max / min }
}

pub fn contention(cfg: &Config, env: &Env, report: &mut Report) {
    let mut s = String::from("## 4. Contended throughput and fairness\n\n");
    let _ = writeln!(
        s,
        "N processes loop: `acquire`; critical section ({} atomic increments of one shared \
         cache line, plus a check that nobody else is inside); `release`; {} iterations of \
         private arithmetic. *Throughput*: acquisitions per second of all processes over a \
         {} ms window, {} runs. *Fairness* comes from one longer run of {} s: acquisitions of \
         the busiest process ÷ the least busy one (**max/min**), and the longest single \
         wait. Higher throughput is better; ÷ namedmutex above 1 means the peer is faster.{}\n",
        roles::CS_WRITES,
        roles::OUTSIDE_WORK,
        cfg.contend_window.as_millis(),
        cfg.runs,
        cfg.fair_window.as_secs(),
        if cfg.quick {
            " **Quick mode: the fairness run is shorter than the 5 s of the target.**"
        } else {
            ""
        }
    );
    header(
        &mut s,
        &[
            "processes",
            "peer",
            "throughput",
            "spread",
            "÷ namedmutex",
            "max/min",
            "longest wait",
            "exclusion violations",
        ],
    );
    let mut all_ok = true;
    let mut fair_ok = true;
    let mut noise = true;
    let mut worst_ratio = f64::INFINITY;
    let mut worst_fair: f64 = 0.0;
    let mut notes = Vec::new();
    let mut curves: Vec<Vec<(f64, f64)>> = vec![Vec::new(); Peer::ALL.len()];
    for &n in &cfg.counts {
        let mut tp: Vec<Vec<f64>> = vec![Vec::new(); Peer::ALL.len()];
        let mut viol = vec![0u64; Peer::ALL.len()];
        for run in 0..cfg.runs {
            for (i, &p) in Peer::ALL.iter().enumerate() {
                let tag = format!("{n}-{run}");
                if let Some(r) = attempt(|| contend_once(env, p, n, cfg.contend_window, &tag)) {
                    tp[i].push(r.throughput);
                    viol[i] += r.violations;
                }
            }
        }
        let fair: Vec<Option<Contended>> = Peer::ALL
            .iter()
            .map(|&p| attempt(|| contend_once(env, p, n, cfg.fair_window, &format!("{n}-fair"))))
            .collect();
        let sums: Vec<Option<Summary>> = tp
            .iter()
            .map(|v| (!v.is_empty()).then(|| summarize(v)))
            .collect();
        for (i, p) in Peer::ALL.iter().enumerate() {
            let mut cells = vec![n.to_string(), p.label().to_owned()];
            match &sums[i] {
                Some(x) => {
                    curves[i].push((n as f64, x.median / 1e6));
                    cells.push(stats::rate(x.median));
                    cells.push(format!("{}–{}", stats::rate(x.min), stats::rate(x.max)));
                    cells.push(
                        sums[0]
                            .as_ref()
                            .map_or("–".into(), |b| stats::ratio(x.median / b.median)),
                    );
                }
                None => cells.extend(["failed".into(), String::new(), String::new()]),
            }
            match &fair[i] {
                Some(f) => {
                    cells.push(stats::ratio(spread_of(&f.counts)));
                    cells.push(stats::ns(f.max_wait_ns as f64));
                    cells.push((viol[i] + f.violations).to_string());
                }
                None => cells.extend(["failed".into(), String::new(), String::new()]),
            }
            row(&mut s, &cells);
        }
        match (&sums[0], &sums[1], &fair[0]) {
            (Some(nm), Some(pt), Some(f)) => {
                let r = nm.median / pt.median;
                let fr = spread_of(&f.counts);
                worst_ratio = worst_ratio.min(r);
                worst_fair = worst_fair.max(fr);
                if r < 1.0 {
                    all_ok = false;
                    noise &= nm.max >= pt.min;
                    notes.push(format!(
                        "{n} processes: namedmutex reaches {} of the pthread mutex's throughput",
                        stats::ratio(r)
                    ));
                }
                if fr > 3.0 {
                    all_ok = false;
                    fair_ok = false;
                    notes.push(format!(
                        "{n} processes: namedmutex max/min {}",
                        stats::ratio(fr)
                    ));
                }
            }
            _ => {
                all_ok = false;
                fair_ok = false;
            }
        }
    }
    report.chart(Chart {
        file: "throughput.svg".into(),
        title: "Contended throughput (median of runs)".into(),
        x_label: "processes".into(),
        y_label: "acquisitions per second (millions)".into(),
        log_x: false,
        series: Peer::ALL
            .iter()
            .zip(curves)
            .filter(|(_, points)| !points.is_empty())
            .map(|(p, points)| Series {
                label: p.label().to_owned(),
                points,
            })
            .collect(),
    });
    report.target_noisy(
        &format!(
            "contended throughput ≥ the robust pthread mutex at {} processes, max/min per process ≤ 3 over a {} s run",
            cfg.counts
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            cfg.fair_window.as_secs()
        ),
        format!(
            "worst namedmutex ÷ pthread throughput {}, worst max/min {}{}",
            stats::ratio(worst_ratio),
            stats::ratio(worst_fair),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            }
        ),
        verdict(all_ok),
        fair_ok && noise,
    );
    report.section(s);
}

// ---------------------------------------------------------------- 5. abandonment

pub(crate) struct Abandoned {
    pub latencies: Vec<f64>,
    pub told: usize,
    pub timeouts: usize,
}

fn abandon_trials(env: &Env, peer: Peer, trials: usize) -> Abandoned {
    abandon_with(env, peer, trials, None)
}

/// [`abandon_trials`] with the workers of `exe` when given (see [`contend_with`]).
pub(crate) fn abandon_with(
    env: &Env,
    peer: Peer,
    trials: usize,
    exe: Option<&std::path::Path>,
) -> Abandoned {
    let name = format!(
        "s5-{}{}",
        peer.key(),
        if exe.is_some() { "-other" } else { "" }
    );
    let lock = exe.is_none().then(|| AnyLock::create(peer, env, &name));
    let args = [peer.key().to_owned(), name.clone()];
    let spawn = |role: &str, watchdog: Duration| match exe {
        Some(exe) => Worker::spawn_exe(exe, env, role, &args, watchdog),
        None => Worker::spawn(env, role, &args, watchdog),
    };
    let mut waiter = spawn("abandon-wait", Duration::from_secs(1800));
    waiter.expect("ready", ANSWER);
    let mut out = Abandoned {
        latencies: Vec::new(),
        told: 0,
        timeouts: 0,
    };
    for _ in 0..trials {
        let mut holder = spawn("abandon-hold", Duration::from_secs(120));
        holder.expect("held", ANSWER);
        waiter.send("wait");
        waiter.expect("waiting", ANSWER);
        waiter.wait_until_blocked(Duration::from_secs(10));
        let t0 = holder.kill_now();
        let got = waiter.expect("got", ANSWER);
        holder.reap();
        let mut parts = got.split_whitespace();
        let status = parts.next().unwrap_or("?").to_owned();
        let t1: u64 = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
        match status.as_str() {
            "abandoned" => out.told += 1,
            "timeout" => {
                out.timeouts += 1;
                continue;
            }
            _ => {}
        }
        out.latencies.push(t1.saturating_sub(t0) as f64);
    }
    waiter.finish(ANSWER);
    drop(lock);
    out
}

pub fn abandonment(cfg: &Config, env: &Env, report: &mut Report) {
    let mut s = String::from("## 5. Abandonment: holder killed, waiter blocked\n\n");
    let _ = writeln!(
        s,
        "A holder process acquires and is then killed with SIGKILL while a waiter process \
         is blocked in the lock (checked through `/proc/<pid>/syscall` before the kill). \
         Time from just before `kill()` to the waiter's return, both read from \
         CLOCK_MONOTONIC; {} trials per peer, each with a new holder process.\n",
        cfg.abandon_trials
    );
    header(
        &mut s,
        &[
            "peer",
            "p50",
            "p99",
            "max",
            "÷ namedmutex (p50)",
            "told it was abandoned",
        ],
    );
    let mut nm_p: Option<(f64, f64)> = None;
    let mut every: Vec<Vec<f64>> = vec![Vec::new(); Peer::ALL.len()];
    for (i, p) in Peer::ALL.into_iter().enumerate() {
        let trials = if p == Peer::Sem {
            1
        } else {
            cfg.abandon_trials
        };
        let mut cells = vec![p.label().to_owned()];
        match attempt(|| abandon_trials(env, p, trials)) {
            Some(a) if a.latencies.is_empty() => {
                cells.push(format!(
                    "never: still taken {} ms after the kill ({} of {} trials)",
                    300, a.timeouts, trials
                ));
                cells.extend([String::new(), String::new(), String::new(), "no".into()]);
            }
            Some(mut a) => {
                a.latencies.sort_by(f64::total_cmp);
                every[i] = a.latencies.clone();
                let p50 = stats::percentile_sorted(&a.latencies, 50.0);
                let p99 = stats::percentile_sorted(&a.latencies, 99.0);
                let max = a.latencies[a.latencies.len() - 1];
                if p == Peer::NamedMutex {
                    nm_p = Some((p50, p99));
                }
                cells.push(stats::ns(p50));
                cells.push(stats::ns(p99));
                cells.push(stats::ns(max));
                cells.push(nm_p.map_or("–".into(), |(b, _)| stats::ratio(p50 / b)));
                cells.push(if p.reports_abandonment() {
                    format!("{} of {}", a.told, a.latencies.len())
                } else {
                    "no (flock is just released)".into()
                });
            }
            None => cells.push("failed".into()),
        }
        row(&mut s, &cells);
    }
    report.chart(distribution_chart(
        "abandonment.svg",
        "Abandonment: kill of the holder to the waiter's return",
        &every,
    ));
    match nm_p {
        Some((p50, p99)) => report.target(
            "abandonment p99 < 1 ms after the kill",
            format!("p99 {} (p50 {})", stats::ns(p99), stats::ns(p50)),
            verdict(p99 < 1e6),
        ),
        None => report.target("abandonment p99 < 1 ms", "failed".into(), None),
    }
    report.section(s);
}

// ---------------------------------------------------------------- 6. scale

struct ScaleResult {
    open_ns: f64,
    close_ns: f64,
    rss: f64,
    shm: f64,
    files: f64,
    fds: f64,
    maps: f64,
}

fn parse_fields(line: &str) -> Vec<f64> {
    line.split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect()
}

fn scale_once(env: &Env, peer: Peer, n: usize, tag: &str) -> ScaleResult {
    let args = [peer.key().to_owned(), n.to_string(), tag.to_owned()];
    let mut w = Worker::spawn(env, "scale-open", &args, Duration::from_secs(600));
    let v = parse_fields(&w.expect("result", Duration::from_secs(300)));
    w.finish(ANSWER);
    let n = n as f64;
    ScaleResult {
        open_ns: v[0],
        close_ns: v[1],
        rss: v[2] / n,
        shm: v[3] / n,
        files: v[4],
        fds: v[5] / n,
        maps: v[6] / n,
    }
}

pub fn scale(cfg: &Config, env: &Env, report: &mut Report) {
    let n = cfg.scale_n;
    let mut s = format!("## 6. Scale\n\n### {n} named mutexes in one process\n\n");
    let _ = writeln!(
        s,
        "A fresh process creates {n} locks with distinct names and keeps them all open, then \
         acquires and releases each once. Memory per lock: growth of `Rss` in \
         `/proc/self/smaps_rollup`, and the tmpfs pages of the objects' files (`st_blocks`). \
         Open and close times are per lock; {} run(s), median and spread.\n",
        cfg.scale_runs
    );
    header(
        &mut s,
        &[
            "peer",
            "create+open",
            "spread",
            "÷ namedmutex",
            "close",
            "RSS / lock",
            "shared memory / lock",
            "fds / lock",
            "mappings / lock",
        ],
    );
    let mut results: Vec<Vec<ScaleResult>> = (0..Peer::ALL.len()).map(|_| Vec::new()).collect();
    for run in 0..cfg.scale_runs {
        for (i, &p) in Peer::ALL.iter().enumerate() {
            if let Some(r) = attempt(|| scale_once(env, p, n, &run.to_string())) {
                results[i].push(r);
            }
        }
    }
    let open: Vec<Option<Summary>> = results
        .iter()
        .map(|v| {
            (!v.is_empty()).then(|| summarize(&v.iter().map(|r| r.open_ns).collect::<Vec<_>>()))
        })
        .collect();
    let mut nm_shm = None;
    for (i, p) in Peer::ALL.iter().enumerate() {
        let mut cells = vec![p.label().to_owned()];
        cells.extend(time_cells(open[i].as_ref(), open[0].as_ref()));
        match results[i].last() {
            Some(r) => {
                let close = summarize(&results[i].iter().map(|r| r.close_ns).collect::<Vec<_>>());
                cells.push(stats::ns(close.median));
                cells.push(stats::bytes(r.rss));
                cells.push(format!("{} ({} files)", stats::bytes(r.shm), r.files));
                cells.push(format!("{:.2}", r.fds));
                cells.push(format!("{:.2}", r.maps));
                if i == 0 {
                    nm_shm = Some((r.shm, r.rss, r.files));
                }
            }
            None => cells.push("failed".into()),
        }
        row(&mut s, &cells);
    }

    // Registry growth.
    let threads = cfg.threads;
    let root = env.dir.join("threads-root");
    std::fs::create_dir(&root).expect("create a root for the thread test");
    std::fs::set_permissions(
        &root,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .expect("chmod");
    let reg = attempt(|| {
        let args = [root.display().to_string(), threads.to_string()];
        let mut w = Worker::spawn(env, "scale-threads", &args, Duration::from_secs(600));
        let v = parse_fields(&w.expect("result", Duration::from_secs(300)));
        w.finish(ANSWER);
        v
    });
    let _ = writeln!(
        s,
        "\n### {threads} threads, each acquiring and releasing one mutex (registry growth)\n\n\
         A fresh process in a fresh root; its main thread registers, then {threads} threads \
         that are all alive at once each acquire and release the same named mutex; then a \
         second wave of {threads} new threads does the same. The registry is the per-user \
         file of thread slots; its resident size is its allocated tmpfs pages (`st_blocks`).\n"
    );
    header(&mut s, &["registry", "value"]);
    let mut registry_ok = None;
    if let Some(v) = &reg {
        let (size, before, w1, w2) = (v[0], v[1], v[2], v[3]);
        row(
            &mut s,
            &["file size (fixed at creation)".into(), stats::bytes(size)],
        );
        row(
            &mut s,
            &[
                "resident after the main thread".into(),
                stats::bytes(before),
            ],
        );
        row(
            &mut s,
            &[
                format!("resident after wave 1 ({threads} threads)"),
                stats::bytes(w1),
            ],
        );
        row(
            &mut s,
            &[
                format!("resident after wave 2 ({threads} more)"),
                stats::bytes(w2),
            ],
        );
        row(
            &mut s,
            &[
                "growth per thread, wave 1".into(),
                stats::bytes((w1 - before) / threads as f64),
            ],
        );
        row(
            &mut s,
            &[
                "thread start + first acquire + release, per thread (wave 1, wave 2)".into(),
                format!("{}, {}", stats::ns(v[4]), stats::ns(v[5])),
            ],
        );
        registry_ok = Some((w2 <= size, size));
    } else {
        row(&mut s, &["failed".into(), String::new()]);
    }
    match (nm_shm, registry_ok) {
        (Some((shm, rss, files)), Some((bounded, size))) => report.target(
            "memory ≤ one page of shared memory per mutex, plus a bounded registry",
            format!(
                "{} shared memory and {} RSS per mutex ({files} files); registry at most {} (fixed file size)",
                stats::bytes(shm),
                stats::bytes(rss),
                stats::bytes(size)
            ),
            verdict(shm <= 4096.0 && bounded),
        ),
        _ => report.target("memory per mutex", "failed".into(), None),
    }
    report.section(s);
}
