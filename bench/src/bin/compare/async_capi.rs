//! Scenario 7: async tasks and the C ABI (issue 16). Uncontended costs against the
//! synchronous call in the same run, and 1000 tasks contending from 4 processes.

use crate::Config;
use crate::capi_shared::SharedLoop;
use crate::report::Report;
use crate::scenarios::{Op, attempt, header, measure_rows, row, time_cells};
use namedmutex::{NamedMutex, synchapi};
use namedmutex_bench::env::Env;
use namedmutex_bench::proc::Worker;
use std::fmt::Write;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// Processes and tasks per process of the contended part.
const PROCESSES: usize = 4;
const TASKS_PER_PROCESS: usize = 250;

// The rows, by label (the verdicts below look their rows up by it).
const SYNC: &str = "sync `wait(None)` + `release()`";
const UNBIASED: &str = "sync, bias revoked (ordinary CAS path)";
const ASYNC: &str = "`lock_async().await` + drop (tokio current-thread)";
const SPAWN_BLOCKING: &str = "`spawn_blocking(lock + drop)`.await";
const C_ABI: &str = "C ABI `nm_wait_for_single_object` + `nm_release_mutex`";
const CALL_ALONE: &str =
    "the C ABI's work behind an out-of-line `extern \"C\"` call, without its handle table";
const C_SHARED: &str = "the same from a C program linked with the shared library";

/// The C ABI's wait without its handle table: `wait_for_single_object` behind a call
/// that cannot be inlined, as every C call is. With [`unchecked_release`], what crossing
/// the call costs by itself: the floor under the C ABI rows, which add the handle's
/// look-up and the reader announcement that make a closed or garbage handle an error.
#[inline(never)]
extern "C" fn unchecked_wait(m: &NamedMutex) -> u32 {
    synchapi::wait_for_single_object(m, synchapi::INFINITE).unwrap_or(synchapi::WAIT_FAILED)
}

/// The C ABI's release without its handle table (see [`unchecked_wait`]).
#[inline(never)]
extern "C" fn unchecked_release(m: &NamedMutex) -> i32 {
    i32::from(synchapi::release_mutex(m).is_ok())
}

fn create(tag: &str) -> Arc<NamedMutex> {
    let name = format!("s7-{tag}-{}", std::process::id());
    Arc::new(NamedMutex::create(&name, false).expect("create").0)
}

pub fn async_and_capi(cfg: &Config, env: &Env, report: &mut Report) {
    let biased = create("biased");
    let plain = create("plain");
    // Revoke `plain`'s bias for good, as scenario 1 does: another thread waits in vain.
    plain.wait(None).expect("wait");
    std::thread::scope(|s| {
        s.spawn(|| plain.wait(Some(Duration::from_millis(20))).expect("wait"));
    });
    plain.release().expect("release");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let cname = std::ffi::CString::new(format!("s7-capi-{}", std::process::id())).expect("name");
    // SAFETY: a NUL-terminated name, and a NULL out-parameter (allowed).
    let ch = unsafe { capi::nm_create_mutex(cname.as_ptr(), 0, std::ptr::null_mut()) };
    assert_ne!(ch, 0, "nm_create_mutex");
    // The same calls from a C program linked with the shared library, where it can be
    // built (a C compiler): its own process, its own mutex.
    let shared = match SharedLoop::start(env, &format!("s7-capi-so-{}", std::process::id())) {
        Ok(shared) => Some(std::cell::RefCell::new(shared)),
        Err(why) => {
            eprintln!("scenario 7: no row for the shared library: {why}");
            None
        }
    };
    let mut rows: Vec<(&str, Op<'_>)> = vec![
        (
            SYNC,
            Box::new(|n| {
                for _ in 0..n {
                    black_box(biased.wait(None).expect("wait"));
                    biased.release().expect("release");
                }
            }),
        ),
        (
            UNBIASED,
            Box::new(|n| {
                for _ in 0..n {
                    black_box(plain.wait(None).expect("wait"));
                    plain.release().expect("release");
                }
            }),
        ),
        (
            ASYNC,
            Box::new(|n| {
                rt.block_on(async {
                    for _ in 0..n {
                        drop(black_box(plain.lock_async().await.expect("lock_async")));
                    }
                })
            }),
        ),
        (
            "`lock_async_owned().await` + drop (an `Arc` clone and drop more)",
            Box::new(|n| {
                rt.block_on(async {
                    for _ in 0..n {
                        drop(black_box(
                            plain.lock_async_owned().await.expect("lock_async_owned"),
                        ));
                    }
                })
            }),
        ),
        (
            SPAWN_BLOCKING,
            Box::new(|n| {
                rt.block_on(async {
                    for _ in 0..n {
                        let m = plain.clone();
                        tokio::task::spawn_blocking(move || {
                            drop(black_box(m.lock().expect("lock")))
                        })
                        .await
                        .expect("join");
                    }
                })
            }),
        ),
        (
            C_ABI,
            Box::new(|n| {
                for _ in 0..n {
                    black_box(capi::nm_wait_for_single_object(ch, capi::NM_INFINITE));
                    capi::nm_release_mutex(ch);
                }
            }),
        ),
        (
            CALL_ALONE,
            Box::new(|n| {
                for _ in 0..n {
                    black_box(unchecked_wait(&biased));
                    black_box(unchecked_release(&biased));
                }
            }),
        ),
    ];
    if let Some(shared) = &shared {
        rows.push((C_SHARED, Box::new(|n| shared.borrow_mut().run(n))));
    }
    let sums = measure_rows(&rows, cfg.micro, cfg.runs);
    capi::nm_close_handle(ch);

    let of = |label: &str| rows.iter().position(|(l, _)| *l == label).map(|i| &sums[i]);
    let measured = |label: &str| of(label).expect("a row measured in every run");
    let (sync, plain_sync, task, blocking, c, alone) = (
        measured(SYNC),
        measured(UNBIASED),
        measured(ASYNC),
        measured(SPAWN_BLOCKING),
        measured(C_ABI),
        measured(CALL_ALONE),
    );
    let through_shared = of(C_SHARED);

    let mut s = String::from("## 7. Async tasks and the C ABI\n\n");
    let _ = writeln!(
        s,
        "One process, one thread, nothing else using the mutex; time per acquire + release. \
         The async rows take the mutex for the process (`lock_async`; README, \"Async\") on a \
         tokio current-thread runtime; `spawn_blocking` is what async users do without it. \
         The C ABI rows call its functions: linked statically into this harness (as a C \
         program linked with `libnamedmutex_capi.a` runs them), then from a C program \
         linked with `-lnamedmutex_capi`, which picks the shared library, whose \
         thread-locals (the handle table's reader record, the calling thread's token) cost \
         a `__tls_get_addr` call each (`bench/c/capi_loop.c`, timed through a pipe per \
         batch).\n"
    );
    header(&mut s, &["way", "acquire+release", "spread", "÷ sync"]);
    for (i, (label, _)) in rows.iter().enumerate() {
        let [m, spread, r] = time_cells(Some(&sums[i]), Some(sync));
        row(&mut s, &[(*label).to_owned(), m, spread, r]);
    }
    // The verdict compares like with like: the same mutex, on the path a process-owned
    // acquisition can take. A bias belongs to one thread, and an async acquisition to the
    // process, so the biased synchronous row is out of its reach by design; its ratio is
    // shown beside.
    report.target(
        "async uncontended acquire+release ≤ 2× the synchronous call (the same unbiased mutex)",
        format!(
            "{:.1} ns vs {:.1} ns ({:.2}×); against a thread's biased call {:.1} ns ({:.2}×)",
            task.median,
            plain_sync.median,
            task.median / plain_sync.median,
            sync.median,
            task.median / sync.median
        ),
        Some(task.median <= 2.0 * plain_sync.median),
    );
    report.target(
        "async ≥ 10× faster than `spawn_blocking` around `lock`",
        format!(
            "{:.0} ns vs {:.0} ns ({:.0}×)",
            task.median,
            blocking.median,
            blocking.median / task.median
        ),
        Some(blocking.median >= 10.0 * task.median),
    );
    let shared_text = through_shared.map_or_else(
        || "; the shared library not measured".to_owned(),
        |so| {
            format!(
                "; from C through the shared library {:.1} ns ({:.2}×)",
                so.median,
                so.median / sync.median
            )
        },
    );
    report.target(
        "C ABI uncontended wait+release ≤ 1.2× the Rust call",
        format!(
            "{:.1} ns vs {:.1} ns ({:.2}×) linked statically{shared_text}; the same work \
             behind an out-of-line call with no handle to look up {:.1} ns ({:.2}×)",
            c.median,
            sync.median,
            c.median / sync.median,
            alone.median,
            alone.median / sync.median
        ),
        Some(
            c.median <= 1.2 * sync.median
                && through_shared.is_none_or(|so| so.median <= 1.2 * sync.median),
        ),
    );

    let window = if cfg.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3)
    };
    let _ = writeln!(
        s,
        "\n{PROCESSES} processes × {TASKS_PER_PROCESS} tasks (tokio, 2 worker threads each) loop \
         for {} ms: `lock_async().await`, count, drop, `yield_now().await`. A ticker task in \
         each process sleeps 1 ms at a time and records how late it wakes: a blocked worker \
         thread would show as a late tick.\n",
        window.as_millis()
    );
    match attempt(|| contend(env, window)) {
        Some(r) => {
            header(
                &mut s,
                &[
                    "acquisitions",
                    "per task min",
                    "per task max",
                    "max/min",
                    "worst ticker delay",
                ],
            );
            let ratio = r.max as f64 / r.min.max(1) as f64;
            row(
                &mut s,
                &[
                    r.total.to_string(),
                    r.min.to_string(),
                    r.max.to_string(),
                    format!("{ratio:.2}"),
                    format!("{:.2} ms", r.worst_tick_us as f64 / 1000.0),
                ],
            );
            report.target(
                "1000 tasks in 4 processes: no task starves (max/min ≤ 3)",
                format!(
                    "max/min {ratio:.2} ({} acquisitions); worst ticker delay {:.2} ms",
                    r.total,
                    r.worst_tick_us as f64 / 1000.0
                ),
                Some(r.min > 0 && ratio <= 3.0),
            );
        }
        None => {
            let _ = writeln!(s, "**The contended measurement failed** (see stderr).");
            report.target(
                "1000 tasks in 4 processes: no task starves (max/min ≤ 3)",
                "failed".into(),
                None,
            );
        }
    }
    report.section(s);
}

struct Contended {
    total: u64,
    min: u64,
    max: u64,
    worst_tick_us: u64,
}

fn contend(env: &Env, window: Duration) -> Contended {
    let name = format!("s7-tasks-{}", std::process::id());
    let answer = Duration::from_secs(30);
    let mut workers: Vec<Worker> = (0..PROCESSES)
        .map(|_| {
            Worker::spawn(
                env,
                "async-contend",
                &[
                    name.clone(),
                    TASKS_PER_PROCESS.to_string(),
                    window.as_millis().to_string(),
                ],
                answer + window * 2,
            )
        })
        .collect();
    for w in &mut workers {
        w.expect("ready", answer);
    }
    for w in &mut workers {
        w.send("go");
    }
    let mut r = Contended {
        total: 0,
        min: u64::MAX,
        max: 0,
        worst_tick_us: 0,
    };
    for mut w in workers {
        let line = w.expect("result", answer + window * 2);
        let f: Vec<u64> = line
            .split_whitespace()
            .map(|x| x.parse().expect("a number"))
            .collect();
        r.total += f[0];
        r.min = r.min.min(f[1]);
        r.max = r.max.max(f[2]);
        r.worst_tick_us = r.worst_tick_us.max(f[3]);
        w.finish(answer);
    }
    r
}
