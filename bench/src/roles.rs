//! What worker processes do. A worker is this crate's binary (the `compare` harness or the
//! criterion bench) started with `NMBENCH_ROLE=<role>`; it reads its parameters from its
//! arguments and talks to the coordinator by lines (see `proc.rs`).
//!
//! | role | arguments | does |
//! |---|---|---|
//! | `hold` | name opener... | creates `name` for each opener, says `ready`, holds them until stdin closes |
//! | `pingpong` | peer name control id hold_ns | hands one lock back and forth with the other worker |
//! | `contend` | peer name control id | lock, short critical section, unlock, short pause; repeat |
//! | `abandon-hold` | peer name | acquires, says `held`, waits to be killed |
//! | `abandon-wait` | peer name | on `wait`: says `waiting`, acquires, says `got <status> <t_ns>` |
//! | `scale-open` | peer n tag | opens `n` new locks, reports time and memory |
//! | `scale-threads` | root n | `n` live threads each lock one mutex, twice; reports registry size |
//! | `uncontended-nobias` | runs micro_ms (name) | with biasing off: namedmutex and the robust pthread mutex uncontended, alternating; says `nm v...` and `pthread v...` (ns per pair) |
//! | `pg-hold`, `pg-contend` | | see `pg_roles.rs` |
//! | `async-contend` | name tasks window_ms | on `go`: `tasks` tokio tasks loop on `lock_async` for the window; says `result total min max worst_tick_us` |

use crate::control::{Control, ControlPage};
use crate::env::Env;
use crate::peers::{AnyLock, Got, Lock, Opener, Peer, SemLock};
use crate::proc::{hear, say, worker_init};
use crate::with_lock;
use std::hint::black_box;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Instant;

/// Atomic increments of the shared cache line inside each critical section.
pub const CS_WRITES: usize = 16;
/// Iterations of private arithmetic between critical sections.
pub const OUTSIDE_WORK: u32 = 200;

/// Whether this process was started as a worker.
pub fn is_worker() -> bool {
    std::env::var_os(crate::proc::ROLE_ENV).is_some()
}

/// Runs this worker's role with the process's arguments (after the program name).
pub fn run() {
    worker_init();
    let role = std::env::var(crate::proc::ROLE_ENV).expect("NMBENCH_ROLE");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = Env::from_env();
    let peer = |i: usize| Peer::from_key(&args[i]).unwrap_or_else(|| panic!("peer {}", args[i]));
    match role.as_str() {
        "hold" => hold(&env, &args[0], &args[1..]),
        "pingpong" => pingpong(
            &env,
            peer(0),
            &args[1],
            Path::new(&args[2]),
            num(&args[3]),
            num(&args[4]) as u64,
        ),
        "contend" => contend(&env, peer(0), &args[1], Path::new(&args[2]), num(&args[3])),
        "abandon-hold" => abandon_hold(&env, peer(0), &args[1]),
        "abandon-wait" => abandon_wait(&env, peer(0), &args[1]),
        "scale-open" => scale_open(&env, peer(0), num(&args[1]), &args[2]),
        "scale-threads" => scale_threads(Path::new(&args[0]), num(&args[1])),
        "async-contend" => async_contend(&args[0], num(&args[1]), num(&args[2])),
        "uncontended-nobias" => uncontended_nobias(
            &env,
            num(&args[0]),
            num(&args[1]),
            args.get(2).map_or("s1-nobias", String::as_str),
        ),
        other if crate::pg_roles::run(other, &args) => {}
        other => panic!("unknown role {other:?}"),
    }
}

fn num(s: &str) -> usize {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

fn hold(env: &Env, name: &str, openers: &[String]) {
    let held: Vec<_> = openers
        .iter()
        .map(|k| {
            let opener = Opener::ALL
                .into_iter()
                .find(|o| o.key() == k)
                .unwrap_or_else(|| panic!("opener {k}"));
            crate::peers::hold(opener, env, name)
        })
        .collect();
    say("ready");
    while hear().is_some() {}
    drop(held);
}

/// Two workers hand one lock back and forth. The holder of phase `k` (worker `k % 2`)
/// waits until the other has announced it is about to wait for phase `k + 1`, holds on for
/// `hold_ns` more (so the waiter is inside its acquire, polling or asleep), notes the time
/// and releases. The waiter's acquire returns: it notes the latency and publishes phase
/// `k + 1`. The old holder, having seen that, announces itself as the next waiter. The
/// control page only says *when* to release: ownership moves through the lock alone.
fn pingpong(env: &Env, peer: Peer, name: &str, control: &Path, id: usize, hold_ns: u64) {
    let lock = AnyLock::open(peer, env, name);
    let page = ControlPage::open(control);
    let c = page.get();
    let id = id as u64;
    pin_to_cpu(id as usize);
    if id == 0 {
        with_lock!(&lock, |l| l.acquire()); // the holder of phase 0
    }
    say("ready");
    assert_eq!(hear().as_deref(), Some("go"));
    let samples = with_lock!(&lock, |l| pingpong_loop(l, c, id, hold_ns));
    let list: Vec<String> = samples.iter().map(|x| x.to_string()).collect();
    say(&format!("done {}", list.join(" ")));
}

/// Keeps the two ping-pong workers on different CPUs, so every hand-off crosses CPUs (left
/// to the scheduler, some hand-offs are same-CPU context switches and others cross-CPU
/// wake-ups, a bimodal mix that differs from run to run).
fn pin_to_cpu(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return;
    }
    // SAFETY: cpu_set_t is plain data; the calls only read and write `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % cpus, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn pingpong_loop(l: &impl Lock, c: &Control, id: u64, hold_ns: u64) -> Vec<u64> {
    let stopped = || c.stop.load(Relaxed) != 0;
    let mut samples: Vec<u64> = Vec::with_capacity(1 << 16);
    // The phase this worker holds next.
    let mut mine = id;
    if id == 1 {
        c.waiting.store(1, Release);
        l.acquire();
        c.phase.store(1, Release);
    }
    loop {
        // Holding phase `mine`: wait for the other to queue up behind us.
        while c.waiting.load(Acquire) != mine + 1 {
            if stopped() {
                l.release();
                return samples;
            }
            std::hint::spin_loop();
        }
        let until = crate::mono_ns() + hold_ns;
        while crate::mono_ns() < until {
            std::hint::spin_loop();
        }
        c.t_release.store(crate::mono_ns(), Release);
        l.release();
        // Let the other take it before queueing up ourselves (no barging back).
        while c.phase.load(Acquire) != mine + 1 {
            if stopped() {
                return samples;
            }
            std::hint::spin_loop();
        }
        mine += 2;
        c.waiting.store(mine, Release);
        l.acquire();
        let t = crate::mono_ns();
        let latency = t.saturating_sub(c.t_release.load(Acquire));
        c.phase.store(mine, Release);
        if c.measuring.load(Relaxed) != 0 {
            samples.push(latency);
        }
    }
}

fn contend(env: &Env, peer: Peer, name: &str, control: &Path, id: usize) {
    let lock = AnyLock::open(peer, env, name);
    let page = ControlPage::open(control);
    let c = page.get();
    let slot = &c.slots[id];
    let me = id as u64 + 1;
    say("ready");
    assert_eq!(hear().as_deref(), Some("go"));
    let mut local = id as u64;
    with_lock!(&lock, |l| {
        while c.stop.load(Relaxed) == 0 {
            let t0 = Instant::now();
            l.acquire();
            let waited = t0.elapsed().as_nanos() as u64;
            if c.holder.swap(me, Relaxed) != 0 {
                c.violations.fetch_add(1, Relaxed);
            }
            for i in 0..CS_WRITES {
                c.shared.0[i % 8].fetch_add(1, Relaxed);
            }
            c.holder.store(0, Relaxed);
            l.release();
            if c.measuring.load(Relaxed) != 0 {
                slot.count.store(slot.count.load(Relaxed) + 1, Relaxed);
                if waited > slot.max_wait_ns.load(Relaxed) {
                    slot.max_wait_ns.store(waited, Relaxed);
                }
            }
            for _ in 0..OUTSIDE_WORK {
                local = black_box(
                    local
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1),
                );
            }
        }
    });
    black_box(local);
    say("done");
}

fn abandon_hold(env: &Env, peer: Peer, name: &str) {
    let lock = AnyLock::open(peer, env, name);
    with_lock!(&lock, |l| l.acquire());
    say("held");
    while hear().is_some() {}
    // Not killed: leave without releasing (the process exit abandons it all the same).
}

fn abandon_wait(env: &Env, peer: Peer, name: &str) {
    let lock = AnyLock::open(peer, env, name);
    say("ready");
    while let Some(cmd) = hear() {
        assert_eq!(cmd, "wait");
        say("waiting");
        let got = match &lock {
            // No owner, so it never comes back: wait a bounded time to show it.
            AnyLock::Sem(s) => SemLock::acquire_within(s, 300).then_some(Got::Acquired),
            other => Some(with_lock!(other, |l| l.acquire())),
        };
        let t = crate::mono_ns();
        let status = match got {
            Some(Got::Abandoned) => "abandoned",
            Some(Got::Acquired) => "acquired",
            None => "timeout",
        };
        say(&format!("got {status} {t}"));
        if got.is_some() {
            with_lock!(&lock, |l| l.release());
        }
    }
}

/// Files of `peer`'s objects whose names start with `stem`.
fn object_files(env: &Env, peer: Peer, stem: &str) -> Vec<PathBuf> {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let (dir, prefix) = match peer {
        Peer::NamedMutex => (
            env.dir.join(format!("namedmutex-{uid}")).join("local"),
            stem.to_owned(),
        ),
        Peer::Pthread => (env.peers.clone(), format!("pthread-{stem}")),
        Peer::Sem => (
            PathBuf::from("/dev/shm"),
            format!("sem.{}-{stem}", env.prefix),
        ),
        Peer::Flock => (env.peers.clone(), format!("flock-{stem}")),
        Peer::NamedLock => (env.peers.clone(), format!("namedlock-{stem}")),
    };
    std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// A field of /proc/self/smaps_rollup, in bytes.
fn rollup(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn count_lines(path: &str) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

fn scale_open(env: &Env, peer: Peer, n: usize, tag: &str) {
    let stem = format!("scale{tag}-");
    let rss0 = rollup("Rss:");
    let fds0 = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let maps0 = count_lines("/proc/self/maps");
    let t0 = Instant::now();
    let locks: Vec<AnyLock> = (0..n)
        .map(|i| AnyLock::create(peer, env, &format!("{stem}{i}")))
        .collect();
    let open_ns = t0.elapsed().as_nanos() as f64 / n as f64;
    // One acquire+release each, so every lock word has been used.
    for lock in &locks {
        with_lock!(lock, |l| {
            l.acquire();
            l.release();
        });
    }
    let rss1 = rollup("Rss:");
    let fds1 = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let maps1 = count_lines("/proc/self/maps");
    let files = object_files(env, peer, &stem);
    let shm: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.blocks() * 512)
        .sum();
    let t1 = Instant::now();
    drop(locks);
    let close_ns = t1.elapsed().as_nanos() as f64 / n as f64;
    for f in object_files(env, peer, &stem) {
        let _ = std::fs::remove_file(f);
    }
    say(&format!(
        "result {open_ns:.0} {close_ns:.0} {} {} {} {} {}",
        rss1.saturating_sub(rss0),
        shm,
        files.len(),
        fds1.saturating_sub(fds0),
        maps1.saturating_sub(maps0),
    ));
}

fn scale_threads(root: &Path, n: usize) {
    let opts = namedmutex::MutexOptions::new().root(root);
    let (m, _) = opts.create("threads").expect("create");
    assert!(m.wait(None).expect("wait").is_acquired());
    m.release().expect("release");
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let registry = root.join(format!("namedmutex-{uid}")).join("registry");
    let blocks = || std::fs::metadata(&registry).expect("registry").blocks() * 512;
    let size = std::fs::metadata(&registry).expect("registry").len();
    let before = blocks();
    let mut after = Vec::new();
    let mut took = Vec::new();
    for _wave in 0..2 {
        let barrier = std::sync::Barrier::new(n + 1);
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..n {
                std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn_scoped(s, || {
                        assert!(m.wait(None).expect("wait").is_acquired());
                        m.release().expect("release");
                        barrier.wait(); // all n alive at once: no slot can be reused
                    })
                    .expect("spawn a thread");
            }
            barrier.wait();
        });
        took.push(t.elapsed().as_nanos() as f64 / n as f64);
        after.push(blocks());
    }
    let acquired = m.wait(None).expect("wait").is_acquired();
    assert!(acquired);
    m.release().expect("release");
    say(&format!(
        "result {size} {before} {} {} {:.0} {:.0}",
        after[0], after[1], took[0], took[1]
    ));
}

/// Scenario 1's last rows: where a process may not bias (`NAMEDMUTEX_BIAS=0`, `membarrier`
/// refused by seccomp, an old kernel), a fresh namedmutex against the robust pthread mutex
/// in the same process, alternating.
fn uncontended_nobias(env: &Env, runs: usize, micro_ms: usize, name: &str) {
    // SAFETY: set before any thread exists and before the library reads it.
    unsafe { std::env::set_var("NAMEDMUTEX_BIAS", "0") };
    let locks = [
        AnyLock::create(Peer::NamedMutex, env, name),
        AnyLock::create(Peer::Pthread, env, name),
    ];
    let pair = |l: &AnyLock, n: u64| {
        with_lock!(l, |l| for _ in 0..n {
            black_box(l.acquire());
            l.release();
        })
    };
    let target = std::time::Duration::from_millis(micro_ms as u64);
    let iters: Vec<u64> = locks
        .iter()
        .map(|l| crate::calibrate(|n| pair(l, n), target))
        .collect();
    let mut samples = [Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (i, l) in locks.iter().enumerate() {
            samples[i].push(crate::ns_per_op(|n| pair(l, n), iters[i]));
        }
    }
    for (label, v) in ["nm", "pthread"].iter().zip(&samples) {
        let values: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
        say(&format!("{label} {}", values.join(" ")));
    }
}

/// Scenario 7's contended part: `tasks` tasks of a 2-worker tokio runtime take the mutex
/// `name` in turn until the window ends, while a ticker task measures how late it wakes.
fn async_contend(name: &str, tasks: usize, window_ms: usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::time::Duration;
    let mutex = Arc::new(
        namedmutex::NamedMutex::create(name, false)
            .expect("create")
            .0,
    );
    say("ready");
    assert_eq!(hear().as_deref(), Some("go"), "expected go");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let worst_tick = Arc::new(AtomicU64::new(0));
    let counts: Vec<u64> = rt.block_on(async {
        let ticker = {
            let (stop, worst) = (stop.clone(), worst_tick.clone());
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let t = Instant::now();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let late = t.elapsed().saturating_sub(Duration::from_millis(1));
                    worst.fetch_max(late.as_micros() as u64, Relaxed);
                }
            })
        };
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (m, stop) = (mutex.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Relaxed) {
                        let guard = m.lock_async().await.expect("lock_async");
                        n += 1;
                        drop(guard);
                        tokio::task::yield_now().await;
                    }
                    n
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(window_ms as u64)).await;
        stop.store(true, Relaxed);
        let mut counts = Vec::with_capacity(tasks);
        for h in handles {
            counts.push(h.await.expect("a task"));
        }
        ticker.await.expect("the ticker");
        counts
    });
    let total: u64 = counts.iter().sum();
    let min = counts.iter().copied().min().unwrap_or(0);
    let max = counts.iter().copied().max().unwrap_or(0);
    say(&format!(
        "result {total} {min} {max} {}",
        worst_tick.load(Relaxed)
    ));
    while hear().is_some() {}
}
