//! Criterion micro benchmarks: scenario 1 (uncontended acquire + release, recursive at
//! depth 2) and scenario 2 (open + close of an existing name held open by another process;
//! create + destroy of a fresh name; the raw shm_open + mmap + flock + munmap + close
//! sequence), for every peer; and namedmutex's waits on several mutexes (wait_any over 2
//! and 64, wait_all over 2 and 64) against a single wait. `cargo bench -p namedmutex-bench`.
//!
//! The existing names are held open by a helper process: this bench executable started
//! again with `NMBENCH_ROLE=hold`.

use criterion::{BenchmarkId, Criterion};
use namedmutex_bench::env::Env;
use namedmutex_bench::peers::{self, AnyLock, Lock, Opener, Peer};
use namedmutex_bench::proc::Worker;
use namedmutex_bench::{roles, with_lock};
use std::hint::black_box;
use std::time::Duration;

fn uncontended(c: &mut Criterion, env: &Env) {
    let mut g = c.benchmark_group("uncontended");
    for peer in Peer::ALL {
        let lock = AnyLock::create(peer, env, "micro-s1");
        with_lock!(&lock, |l| {
            g.bench_function(BenchmarkId::new("acquire+release", peer.key()), |b| {
                b.iter(|| {
                    black_box(l.acquire());
                    l.release();
                })
            });
            if peer.recursive() {
                g.bench_function(BenchmarkId::new("recursive depth 2", peer.key()), |b| {
                    b.iter(|| {
                        black_box(l.acquire());
                        black_box(l.acquire());
                        l.release();
                        l.release();
                    })
                });
            }
        });
    }
    g.finish();
}

fn open_close(c: &mut Criterion, env: &Env) {
    let mut args = vec!["micro-exist".to_owned()];
    args.extend(Opener::ALL.iter().map(|o| o.key().to_owned()));
    let mut holder = Worker::spawn(env, "hold", &args, Duration::from_secs(3600));
    holder.expect("ready", Duration::from_secs(20));
    let mut g = c.benchmark_group("open+close");
    for opener in Opener::ALL {
        g.bench_function(BenchmarkId::new("existing", opener.key()), |b| {
            b.iter(|| peers::open_close_existing(opener, env, "micro-exist"))
        });
    }
    let mut serial = 0u64;
    for opener in Opener::ALL {
        g.bench_function(BenchmarkId::new("fresh", opener.key()), |b| {
            b.iter(|| {
                serial += 1;
                peers::create_destroy_fresh(opener, env, &format!("micro-fresh{serial}"));
            })
        });
    }
    g.finish();
    holder.finish(Duration::from_secs(20));
}

/// `wait_any` / `wait_all` against a single wait, uncontended. For wait_any over 64, the
/// first 63 mutexes are held by another thread, so the call has to reach the last one.
fn multi_wait(c: &mut Criterion, env: &Env) {
    use namedmutex::{MutexOptions, NamedMutex};
    let opts = MutexOptions::new().root(env.root());
    let make = |i: usize| opts.create(&format!("micro-multi{i}")).expect("create").0;
    let all: Vec<NamedMutex> = (0..64).map(make).collect();
    let refs: Vec<&NamedMutex> = all.iter().collect();
    let mut g = c.benchmark_group("multi-wait");
    g.bench_function("single wait+release", |b| {
        b.iter(|| {
            black_box(refs[0].wait(None).unwrap());
            refs[0].release().unwrap();
        })
    });
    for n in [2, 64] {
        g.bench_function(BenchmarkId::new("wait_all+release", n), |b| {
            b.iter(|| {
                black_box(namedmutex::wait_all(&refs[..n], None).unwrap());
                for m in &refs[..n] {
                    m.release().unwrap();
                }
            })
        });
    }
    g.bench_function(BenchmarkId::new("wait_any+release", "2, first free"), |b| {
        b.iter(|| {
            let got = namedmutex::wait_any(&refs[..2], None).unwrap();
            refs[got.index().unwrap()].release().unwrap();
        })
    });
    // Another thread holds the first 63 until the group ends.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let holders = &refs[..63];
        s.spawn(move || {
            for m in holders {
                m.wait(None).unwrap();
            }
            held_tx.send(()).unwrap();
            let _ = done_rx.recv();
            for m in holders {
                m.release().unwrap();
            }
        });
        held_rx.recv().unwrap();
        g.bench_function(BenchmarkId::new("wait_any+release", "64, last free"), |b| {
            b.iter(|| {
                let got = namedmutex::wait_any(&refs, None).unwrap();
                refs[got.index().unwrap()].release().unwrap();
            })
        });
        done_tx.send(()).unwrap();
    });
    g.finish();
}

fn main() {
    if roles::is_worker() {
        roles::run();
        return;
    }
    let env = Env::create();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    uncontended(&mut c, &env);
    open_close(&mut c, &env);
    multi_wait(&mut c, &env);
    c.final_summary();
}
