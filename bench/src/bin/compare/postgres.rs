//! Scenario 9: the PostgreSQL backend (issue 18), on a server this scenario starts itself
//! (tools/pg-server.sh, with fsync on, on the first free port) and stops at the end: the
//! uncontended cost against the bare `pg_advisory_lock` + `pg_advisory_unlock` pair on one
//! connection (claims written with `synchronous_commit` on and off), abandonment latency
//! after a SIGKILL, and 16 processes × 4 threads contending.

use crate::Config;
use crate::report::Report;
use crate::scenarios::{Op, attempt, header, measure_rows, row, time_cells};
use namedmutex::{MutexOptions, NamedMutex, WaitStatus};
use namedmutex_bench::env::Env;
use namedmutex_bench::proc::Worker;
use namedmutex_bench::stats;
use std::fmt::Write;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server for this scenario, stopped when dropped.
struct Server {
    dir: PathBuf,
    url: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/pg-server.sh")
}

impl Server {
    fn start() -> Server {
        let dir = std::env::temp_dir().join(format!("nmbench-pg-{}", std::process::id()));
        let out = Command::new(script())
            .args(["start", dir.to_str().expect("a UTF-8 temporary directory")])
            // The first free port (not the tests' server's, should one be set).
            .env_remove("NAMEDMUTEX_TEST_PG_PORT")
            .env("NAMEDMUTEX_TEST_PG_FSYNC", "on")
            .stderr(std::process::Stdio::null())
            .output()
            .expect("run tools/pg-server.sh");
        assert!(out.status.success(), "tools/pg-server.sh start failed");
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Server { dir, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", self.dir.to_str().unwrap_or_default()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

pub fn postgres(cfg: &Config, env: &Env, report: &mut Report) {
    let server = Server::start();
    let url = server.url.clone();
    // The same server, with the claim's commit not waiting for the WAL flush.
    let async_url = format!("{url}?options=-c%20synchronous_commit%3Doff");
    let mut s = String::from("## 9. Across machines: PostgreSQL\n\n");
    let _ = writeln!(
        s,
        "A PostgreSQL 15 server on this machine (loopback, fsync on), started for this \
         scenario. One thread, nothing else using the lock; time per acquire + release. The \
         bare pair is `SELECT pg_advisory_lock($1)` and `SELECT pg_advisory_unlock($1)`, \
         prepared, on one connection: what a hand-written advisory lock costs, with no \
         abandonment report and no fencing token; sqlx's `PgAdvisoryLock` is the same pair \
         through an async driver. namedmutex also writes the claim that makes \
         both possible: once with `synchronous_commit` on (the default: a claim survives a \
         server crash), once off. The last row is the floor of any design that writes \
         its claim and clears it: the bare pair with a one-row `UPDATE` in each of its two \
         statements (one round trip each, as namedmutex's), `synchronous_commit` off.\n"
    );
    let mut bare = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let lock = bare
        .prepare("SELECT pg_advisory_lock($1)")
        .expect("prepare");
    let unlock = bare
        .prepare("SELECT pg_advisory_unlock($1)")
        .expect("prepare");
    let key = 9_000_000_000_i64 + i64::from(std::process::id());
    let bare = std::cell::RefCell::new(bare);
    // sqlx's advisory lock (what async Rust services use today), on a current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let sqlx_conn = std::cell::RefCell::new(Some(
        rt.block_on(<sqlx::PgConnection as sqlx::Connection>::connect(&url))
            .expect("sqlx connect"),
    ));
    let sqlx_lock = sqlx::postgres::PgAdvisoryLock::new(format!("s9-sqlx-{}", std::process::id()));
    let sync_m = open(&url, "uncontended");
    let async_m = open(&async_url, "uncontended-async");
    let floor = std::cell::RefCell::new(WritingPair::prepare(&async_url));
    let rows: Vec<(&str, Op<'_>)> = vec![
        (
            BARE,
            Box::new(|n| {
                let mut c = bare.borrow_mut();
                for _ in 0..n {
                    black_box(c.execute(&lock, &[&key]).expect("lock"));
                    c.execute(&unlock, &[&key]).expect("unlock");
                }
            }),
        ),
        (
            "sqlx `PgAdvisoryLock::acquire` + `release_now` (tokio)",
            Box::new(|n| {
                let mut slot = sqlx_conn.borrow_mut();
                let conn = slot.take().expect("the sqlx connection");
                let lock = &sqlx_lock;
                let conn = rt.block_on(async move {
                    let mut conn = conn;
                    for _ in 0..n {
                        let guard = lock.acquire(conn).await.expect("sqlx acquire");
                        conn = black_box(guard).release_now().await.expect("sqlx release");
                    }
                    conn
                });
                *slot = Some(conn);
            }),
        ),
        (
            SYNC_ON,
            Box::new(|n| {
                for _ in 0..n {
                    black_box(sync_m.wait(None).expect("wait"));
                    sync_m.release().expect("release");
                }
            }),
        ),
        (
            SYNC_OFF,
            Box::new(|n| {
                for _ in 0..n {
                    black_box(async_m.wait(None).expect("wait"));
                    async_m.release().expect("release");
                }
            }),
        ),
        (WRITING_PAIR, Box::new(|n| floor.borrow_mut().run(key, n))),
    ];
    let sums = measure_rows(&rows, cfg.micro * 5, cfg.runs);

    let of = |label: &str| {
        let at = rows.iter().position(|(l, _)| *l == label);
        &sums[at.expect("a row of this scenario")]
    };
    let (bare, on, off, writing) = (of(BARE), of(SYNC_ON), of(SYNC_OFF), of(WRITING_PAIR));
    header(&mut s, &["way", "acquire+release", "spread", "÷ bare pair"]);
    for (i, (label, _)) in rows.iter().enumerate() {
        let [m, spread, r] = time_cells(Some(&sums[i]), Some(bare));
        row(&mut s, &[(*label).to_owned(), m, spread, r]);
    }
    let versus_bare = |x: &stats::Summary| {
        format!(
            "{} ({})",
            stats::ns(x.median),
            stats::ratio(x.median / bare.median)
        )
    };
    report.target(
        "PostgreSQL: uncontended acquire+release ≤ 1.5× the bare advisory-lock pair",
        format!(
            "{} vs {}; synchronous_commit off: {}; the bare pair with a one-row write in each \
             statement (the floor of a written claim): {}",
            versus_bare(on),
            stats::ns(bare.median),
            versus_bare(off),
            versus_bare(writing),
        ),
        Some(on.median <= 1.5 * bare.median),
    );

    let trials = if cfg.quick { 10 } else { 30 };
    let _ = writeln!(
        s,
        "\n**Abandonment.** {trials} times: a worker process acquires, this process's waiter \
         queues on the server, the worker is SIGKILLed; the time from the kill to the \
         waiter's return with `Abandoned`.\n"
    );
    match attempt(|| abandonment(env, &url, trials)) {
        Some(mut lat) => {
            lat.sort_by(f64::total_cmp);
            let (p50, p99) = (
                stats::percentile_sorted(&lat, 50.0),
                stats::percentile_sorted(&lat, 99.0),
            );
            header(&mut s, &["trials", "p50", "p99", "max"]);
            row(
                &mut s,
                &[
                    trials.to_string(),
                    stats::ns(p50),
                    stats::ns(p99),
                    stats::ns(lat[lat.len() - 1]),
                ],
            );
            report.target(
                "PostgreSQL: abandonment after SIGKILL of the owner, p99 < 50 ms",
                format!("p50 {}, p99 {}", stats::ns(p50), stats::ns(p99)),
                Some(p99 < 50e6),
            );
        }
        None => {
            let _ = writeln!(s, "(failed: see the run's output)\n");
            report.target(
                "PostgreSQL: abandonment after SIGKILL, p99 < 50 ms",
                "failed".into(),
                Some(false),
            );
        }
    }

    let window = if cfg.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let _ = writeln!(
        s,
        "\n**Contention.** 16 processes × 4 threads loop on lock/release of one mutex for {} \
         s (64 server sessions).\n",
        window.as_secs()
    );
    match attempt(|| contention(env, &url, window)) {
        Some(counts) => {
            let total: u64 = counts.iter().sum();
            let (min, max) = (
                *counts.iter().min().unwrap_or(&0),
                *counts.iter().max().unwrap_or(&0),
            );
            let ratio = max as f64 / min.max(1) as f64;
            header(
                &mut s,
                &[
                    "acquisitions",
                    "per thread min",
                    "per thread max",
                    "max/min",
                ],
            );
            row(
                &mut s,
                &[
                    total.to_string(),
                    min.to_string(),
                    max.to_string(),
                    format!("{ratio:.2}"),
                ],
            );
            report.target(
                "PostgreSQL: 16 processes × 4 threads, max/min ≤ 3, no deadlock",
                format!(
                    "max/min {ratio:.2} ({total} acquisitions in {} s)",
                    window.as_secs()
                ),
                Some(ratio <= 3.0 && min > 0),
            );
        }
        None => {
            let _ = writeln!(s, "(failed: see the run's output)\n");
            report.target(
                "PostgreSQL: 16 × 4 contending",
                "failed".into(),
                Some(false),
            );
        }
    }
    report.section(s);
    drop(server);
}

// The uncontended rows, by label (the verdict looks its rows up by it).
const BARE: &str = "bare `pg_advisory_lock` + `pg_advisory_unlock`";
const SYNC_ON: &str = "namedmutex `wait(None)` + `release()`, synchronous_commit on";
const SYNC_OFF: &str = "namedmutex, synchronous_commit off";
const WRITING_PAIR: &str =
    "the bare pair with a one-row `UPDATE` in each statement, synchronous_commit off";

/// The floor under namedmutex's uncontended cost: the bare pair, each statement also
/// updating one row (a transaction id, a heap update, WAL and a commit record each), as any
/// design must that writes who holds the lock before the holder goes on and clears it at
/// release (bench/README.md, "PostgreSQL").
struct WritingPair {
    client: postgres::Client,
    lock: postgres::Statement,
    unlock: postgres::Statement,
}

impl WritingPair {
    fn prepare(url: &str) -> WritingPair {
        let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS nmbench_claim (id int PRIMARY KEY, n bigint NOT NULL);
                 INSERT INTO nmbench_claim VALUES (1, 0) ON CONFLICT DO NOTHING",
            )
            .expect("the floor's table");
        let with_write = |call: &str| {
            format!(
                "WITH w AS (UPDATE nmbench_claim SET n = n + 1 WHERE id = 1 RETURNING 1) \
                 SELECT {call} FROM w"
            )
        };
        let lock = client
            .prepare(&with_write("pg_advisory_lock($1)"))
            .expect("prepare");
        let unlock = client
            .prepare(&with_write("pg_advisory_unlock($1)"))
            .expect("prepare");
        WritingPair {
            client,
            lock,
            unlock,
        }
    }

    fn run(&mut self, key: i64, n: u64) {
        for _ in 0..n {
            black_box(self.client.query_one(&self.lock, &[&key]).expect("lock"));
            let released: bool = self
                .client
                .query_one(&self.unlock, &[&key])
                .expect("unlock")
                .get(0);
            assert!(released, "the floor's pair did not hold its lock");
        }
    }
}

fn open(url: &str, tag: &str) -> NamedMutex {
    MutexOptions::new()
        .server(url)
        .create(&format!("s9-{tag}-{}", std::process::id()))
        .expect("create on the server")
        .0
}

/// Kill-to-`Abandoned` latencies, in nanoseconds.
fn abandonment(env: &Env, url: &str, trials: usize) -> Vec<f64> {
    let name = format!("s9-abandon-{}", std::process::id());
    let m = Arc::new(
        MutexOptions::new()
            .server(url)
            .create(&name)
            .expect("create")
            .0,
    );
    let mut admin = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let queued = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1852665601 AND NOT granted",
                &[],
            )
            .map(|r| r.get(0))
            .unwrap_or(0)
    };
    let mut latencies = Vec::new();
    for _ in 0..trials {
        let mut w = Worker::spawn(
            env,
            "pg-hold",
            &[url.to_owned(), name.clone()],
            Duration::from_secs(60),
        );
        w.expect("held", Duration::from_secs(20));
        let o = m.clone();
        let waiter = std::thread::spawn(move || {
            let s = o.wait(Some(Duration::from_secs(20))).expect("wait");
            let t = Instant::now();
            o.release().expect("release");
            (s, t)
        });
        let started = Instant::now();
        while queued(&mut admin) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the waiter never queued"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        let killed = Instant::now();
        w.kill_now();
        let (status, got) = waiter.join().expect("the waiter");
        assert_eq!(status, WaitStatus::Abandoned, "after the kill");
        latencies.push((got - killed).as_nanos() as f64);
        w.reap();
    }
    latencies
}

/// Acquisitions per thread of 16 processes × 4 threads in `window`.
fn contention(env: &Env, url: &str, window: Duration) -> Vec<u64> {
    let name = format!("s9-contend-{}", std::process::id());
    let _keep = MutexOptions::new()
        .server(url)
        .create(&name)
        .expect("create");
    let mut workers: Vec<Worker> = (0..16)
        .map(|_| {
            Worker::spawn(
                env,
                "pg-contend",
                &[url.to_owned(), name.clone(), "4".to_owned()],
                Duration::from_secs(120),
            )
        })
        .collect();
    for w in &mut workers {
        w.expect("ready", Duration::from_secs(30));
    }
    for w in &mut workers {
        w.send("go");
    }
    std::thread::sleep(window);
    for w in &mut workers {
        w.send("stop");
    }
    let mut counts = Vec::new();
    for w in &mut workers {
        let line = w.expect("counts", Duration::from_secs(60));
        counts.extend(
            line.split_whitespace()
                .map(|c| c.parse::<u64>().expect("a count")),
        );
    }
    for w in workers {
        w.finish(Duration::from_secs(20));
    }
    counts
}
