//! Chaos: `PROCS` processes × `THREADS` threads hammer three named mutexes (and one that
//! is created and destroyed all the time) with random recursion depths, timeouts,
//! try-locks, handle clones and closes, while a killer SIGKILLs random processes
//! (respawning them), SIGSTOPs others for a moment, and threads end while owning.
//!
//! Invariants, checked through shared memory that every process maps:
//!
//! - **one owner**: each mutex has an `owner` word in its own file. A thread that acquires
//!   swaps its identity in and must find 0 (or, with `Abandoned`, a dead thread's
//!   identity); it re-checks the word while inside, and swaps it back to 0 before its final
//!   release. Two threads inside at once are caught by either side.
//! - **every `Abandoned` matches a death**: the identity found in `owner` must be dead
//!   (its process was marked killed before the SIGKILL, or the thread bumped its generation
//!   before ending). A thread that dies between its wait returning and the swap (state
//!   `WANT`), or between clearing `owner` and releasing (`RELEASING`), leaves `owner` 0:
//!   the parent then gives the mutex one *credit*; abandonments found with `owner` 0 must
//!   not outnumber the credits. An `Acquired` that finds a dead identity is a missed
//!   abandonment.
//! - **no hang**: every thread bumps a progress counter after each operation; the parent
//!   fails if one makes none for the watchdog's 20 s (stops last at most 400 ms, and reset
//!   the clocks, so a mutex held by a stopped process never counts against anyone). Timed
//!   waits must return within their timeout plus 5 s.
//! - **clean end**: after everything stops, each mutex is free, or owned by a dead thread
//!   and then the next wait returns `Abandoned` exactly once; and when the last handles
//!   close, no object file is left in the root.

use crate::shm::Shm;
use crate::support::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, MutexOptions, NamedMutex, WaitStatus};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::time::{Duration, Instant};

const PROCS: usize = 6;
const THREADS: usize = 3;
/// The three checked mutexes (kept alive by the parent's handles) and the churn mutex.
const NAMES: [&str; 4] = [
    "chaos-a",
    "Local\\chaos-b",
    "Global\\chaos-c",
    "chaos-churn",
];
const CHURN: usize = 3;
const NM: usize = NAMES.len();

// Control file: global words, then one 4 KiB block per process slot.
const G_STOP: usize = 0;
const G_VIOLATIONS: usize = 8;
const C_TIMEOUTS: usize = 16;
const C_TRY_BUSY: usize = 24;
const C_CLONES: usize = 32;
const C_REOPENS: usize = 40;
const C_THREAD_ENDS: usize = 48;
const C_RECURSIONS: usize = 56;
const C_FOREVER: usize = 64;
const C_RECREATED: usize = 72;
const C_MAX_WAIT_US: usize = 80;
const C_OPS: usize = 88;
const C_PRUNES: usize = 96;
const C_ABANDONED_ON_PURPOSE: usize = 104;
const SLOT_BASE: usize = 4096;
const SLOT_SIZE: usize = 4096;
const S_INC: usize = 0;
const S_KILLED: usize = 8;
const THREAD_BASE: usize = 64;
const THREAD_SIZE: usize = 128;
const T_GEN: usize = 0;
const T_PROGRESS: usize = 8;
const T_STATE: usize = 16;
// Per-mutex file.
const M_OWNER: usize = 0;
const M_ENTRIES: usize = 8;
const M_ABANDONS: usize = 16;
const M_UNEXPLAINED: usize = 24;
const M_CREDITS: usize = 32;
const M_SIZE: usize = 4096;
// Thread states per mutex.
const NONE: u64 = 0;
const WANT: u64 = 1;
const HOLD: u64 = 2;
const RELEASING: u64 = 3;

fn slot_at(s: usize) -> usize {
    SLOT_BASE + s * SLOT_SIZE
}
fn thread_at(s: usize, t: usize) -> usize {
    slot_at(s) + THREAD_BASE + t * THREAD_SIZE
}

fn identity(s: usize, t: usize, inc: u64, generation: u64) -> u64 {
    ((s as u64 + 1) << 56)
        | ((t as u64 + 1) << 48)
        | ((inc & 0xFF_FFFF) << 24)
        | (generation & 0xFF_FFFF)
}

fn describe_id(id: u64) -> String {
    format!(
        "proc {} thread {} incarnation {} gen {}",
        (id >> 56) as i64 - 1,
        ((id >> 48) & 0xFF) as i64 - 1,
        (id >> 24) & 0xFF_FFFF,
        id & 0xFF_FFFF
    )
}

/// Whether the thread `id` has died: its process was marked killed (before the SIGKILL) or
/// replaced, or the thread bumped its generation on its way out.
fn is_dead(ctl: &Shm, id: u64) -> bool {
    let s = (id >> 56) as usize - 1;
    let t = ((id >> 48) & 0xFF) as usize - 1;
    let inc = (id >> 24) & 0xFF_FFFF;
    let generation = id & 0xFF_FFFF;
    if s >= PROCS || t >= 64 {
        return false;
    }
    if inc < ctl.u64(slot_at(s) + S_INC).load(Acquire)
        || ctl.u64(slot_at(s) + S_KILLED).load(Acquire) >= inc
    {
        return true;
    }
    generation < ctl.u64(thread_at(s, t) + T_GEN).load(Acquire)
}

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "chaos::kill_stop_and_abandon_under_load",
        chaos,
    )]
}

fn duration() -> Duration {
    let secs = std::env::var("NAMEDMUTEX_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

#[derive(Default)]
struct Counts {
    kills: u64,
    stops: u64,
    respawns: u64,
}

struct Proc {
    peer: Peer,
}

fn spawn_proc(dir: &Path, root: &Path, s: usize, inc: u64) -> Proc {
    let s_str = s.to_string();
    let inc_str = inc.to_string();
    let threads = THREADS.to_string();
    let mut env = vec![("NAMEDMUTEX_ROOT", root.to_str().unwrap())];
    if s % 2 == 1 {
        env.push(("NAMEDMUTEX_FUTEX_WAITV", "0")); // half of them on the fallback
    }
    Proc {
        peer: Peer::spawn(
            "chaos",
            &[dir.to_str().unwrap(), &s_str, &inc_str, &threads],
            &env,
        ),
    }
}

fn chaos() -> TestResult {
    let run_for = duration();
    let root = fresh_root("chaos");
    let dir = std::env::temp_dir().join(unique("namedmutex-chaos-shm"));
    std::fs::create_dir_all(&dir)?;
    let result = chaos_in(&root, &dir, run_for);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn chaos_in(root: &Path, dir: &Path, run_for: Duration) -> TestResult {
    let ctl = Shm::create(&dir.join("ctl"), SLOT_BASE + PROCS * SLOT_SIZE);
    let mx: Vec<Shm> = (0..NM)
        .map(|m| Shm::create(&dir.join(format!("mx{m}")), M_SIZE))
        .collect();
    let opts = MutexOptions::new().root(root);
    // The parent's handles keep the three checked objects alive throughout.
    let keep: Vec<NamedMutex> = NAMES[..CHURN]
        .iter()
        .map(|n| opts.create(n).map(|(m, _)| m))
        .collect::<Result<_, _>>()?;
    let mut procs: Vec<Proc> = (0..PROCS)
        .map(|s| {
            ctl.u64(slot_at(s) + S_INC).store(1, SeqCst);
            spawn_proc(dir, root, s, 1)
        })
        .collect();
    let mut counts = Counts::default();
    let mut rng = Rng::from_time();
    let mut last: Vec<Vec<(u64, Instant)>> = vec![vec![(0, Instant::now()); THREADS]; PROCS];
    let started = Instant::now();
    let mut failure: Option<String> = None;
    while started.elapsed() < run_for && failure.is_none() {
        // Pacing of the chaos, not synchronisation: whatever happens meanwhile is checked.
        std::thread::sleep(Duration::from_millis(30 + rng.below(220)));
        failure = watch(&ctl, &mut procs, &mut last);
        if failure.is_some() {
            break;
        }
        let s = rng.below(PROCS as u64) as usize;
        if rng.one_in(6) {
            let pid = procs[s].peer.pid();
            signal(pid, libc::SIGSTOP);
            std::thread::sleep(Duration::from_millis(50 + rng.below(350)));
            signal(pid, libc::SIGCONT);
            counts.stops += 1;
            let now = Instant::now();
            for row in last.iter_mut() {
                for cell in row.iter_mut() {
                    cell.1 = now;
                }
            }
        } else {
            kill_and_respawn(&ctl, &mx, &mut procs, s, dir, root)?;
            counts.kills += 1;
            counts.respawns += 1;
            for cell in last[s].iter_mut() {
                *cell = (0, Instant::now());
            }
        }
    }
    // Stop: every thread finishes its sequence (releasing all) and its process exits 0.
    ctl.u64(G_STOP).store(1, SeqCst);
    for (s, p) in procs.iter_mut().enumerate() {
        let status = p.peer.wait_exit(WATCHDOG)?;
        if status.code() != Some(0) && failure.is_none() {
            failure = Some(format!("process {s} ended with {}", describe(status)));
        }
    }
    let violations = ctl.u64(G_VIOLATIONS).load(SeqCst);
    let mut report = Vec::new();
    let (mut entries, mut abandons) = (0, 0);
    for (m, name) in NAMES.iter().enumerate() {
        let e = mx[m].u64(M_ENTRIES).load(SeqCst);
        let a = mx[m].u64(M_ABANDONS).load(SeqCst);
        let u = mx[m].u64(M_UNEXPLAINED).load(SeqCst);
        let c = mx[m].u64(M_CREDITS).load(SeqCst);
        entries += e;
        abandons += a;
        report.push(format!(
            "  {name}: {e} entries, {a} abandoned ({u} with the owner record empty, {c} credits)"
        ));
        if u > c && failure.is_none() {
            failure = Some(format!(
                "{name}: {u} abandonments found no dead owner recorded, but only {c} deaths happened in the windows that explain that"
            ));
        }
    }
    // Every checked mutex is free, or owned by a dead thread and abandoned exactly once.
    let mut final_abandons = 0;
    for (m, handle) in keep.iter().enumerate() {
        // On a fresh thread: one thread can register under at most 8 roots.
        let checked = std::thread::scope(|s| {
            s.spawn(|| final_check(&opts, &ctl, &mx[m], NAMES[m], handle))
                .join()
                .unwrap()
        });
        match checked {
            Ok(abandoned) => final_abandons += u64::from(abandoned),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    drop(keep);
    // The churn mutex lost its last handle with its last process: gone, or stale and
    // removed by this open.
    match opts.open(NAMES[CHURN]) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => {
            failure.get_or_insert(format!(
                "{}: after every process ended, open gave {other:?}",
                NAMES[CHURN]
            ));
        }
    }
    let left = leftover_files(root);
    if !left.is_empty() {
        failure.get_or_insert(format!("object files left in the root: {left:?}"));
    }
    let c = |off| ctl.u64(off).load(SeqCst);
    println!(
        "  chaos {:?}, {PROCS} processes x {THREADS} threads: {entries} entries, {} kills, {} stops, {} threads ended owning, {abandons} abandons (+{final_abandons} at the end), {} recursive waits, {} timeouts, {} busy try-locks, {} infinite waits (longest {} ms), {} clones, {} reopens, {} churn objects recreated after their holder died, {} operations, {} given up with abandon, {} prunes, violations = {violations}",
        started.elapsed(),
        counts.kills,
        counts.stops,
        c(C_THREAD_ENDS),
        c(C_RECURSIONS),
        c(C_TIMEOUTS),
        c(C_TRY_BUSY),
        c(C_FOREVER),
        c(C_MAX_WAIT_US) / 1000,
        c(C_CLONES),
        c(C_REOPENS),
        c(C_RECREATED),
        c(C_OPS),
        c(C_ABANDONED_ON_PURPOSE),
        c(C_PRUNES),
    );
    for line in report {
        println!("{line}");
    }
    if violations > 0 {
        failure.get_or_insert(format!(
            "{violations} violations (details on stderr, lines starting with VIOLATION)"
        ));
    }
    match failure {
        None => Ok(()),
        Some(f) => Err(f.into()),
    }
}

/// Checks progress and unexpected exits; `Some(reason)` to stop the run.
fn watch(ctl: &Shm, procs: &mut [Proc], last: &mut [Vec<(u64, Instant)>]) -> Option<String> {
    if ctl.u64(G_VIOLATIONS).load(SeqCst) > 0 {
        return Some("a violation was recorded".into());
    }
    for (s, p) in procs.iter_mut().enumerate() {
        if let Ok(Some(status)) = p.peer.child.try_wait() {
            return Some(format!(
                "process {s} ended by itself with {}",
                describe(status)
            ));
        }
        for (t, cell) in last[s].iter_mut().enumerate() {
            let v = ctl.u64(thread_at(s, t) + T_PROGRESS).load(SeqCst);
            if v != cell.0 {
                *cell = (v, Instant::now());
            } else if cell.1.elapsed() > WATCHDOG {
                let states: Vec<u64> = (0..NM)
                    .map(|m| ctl.u64(thread_at(s, t) + T_STATE + 8 * m).load(SeqCst))
                    .collect();
                let infos: Vec<String> = NAMES
                    .iter()
                    .map(|n| format!("{n}: {:?}", namedmutex::info(n)))
                    .collect();
                return Some(format!(
                    "process {s} thread {t} made no progress for {WATCHDOG:?} (states {states:?}); {infos:?}"
                ));
            }
        }
    }
    None
}

fn kill_and_respawn(
    ctl: &Shm,
    mx: &[Shm],
    procs: &mut [Proc],
    s: usize,
    dir: &Path,
    root: &Path,
) -> Result<(), String> {
    let inc = ctl.u64(slot_at(s) + S_INC).load(SeqCst);
    // Marked before the signal: a survivor that sees the death can already tell.
    ctl.u64(slot_at(s) + S_KILLED).store(inc, SeqCst);
    signal(procs[s].peer.pid(), libc::SIGKILL);
    let status = procs[s].peer.wait_exit(WATCHDOG)?;
    if status.code().is_some() {
        return Err(format!(
            "process {s} had already ended with {} before it was killed",
            describe(status)
        ));
    }
    for t in 0..THREADS {
        for (m, file) in mx.iter().enumerate() {
            let state = ctl.u64(thread_at(s, t) + T_STATE + 8 * m);
            if matches!(state.load(SeqCst), WANT | RELEASING) {
                file.u64(M_CREDITS).fetch_add(1, SeqCst);
            }
            state.store(NONE, SeqCst);
        }
        ctl.u64(thread_at(s, t) + T_GEN).store(0, SeqCst);
        ctl.u64(thread_at(s, t) + T_PROGRESS).store(0, SeqCst);
    }
    ctl.u64(slot_at(s) + S_INC).store(inc + 1, SeqCst);
    procs[s] = spawn_proc(dir, root, s, inc + 1);
    Ok(())
}

/// After every process ended: `name` is free, or its owner is dead and the next wait is
/// `Abandoned` once. Returns whether it was abandoned.
fn final_check(
    opts: &MutexOptions,
    ctl: &Shm,
    mxf: &Shm,
    name: &str,
    handle: &NamedMutex,
) -> Result<bool, String> {
    let info = opts
        .info(name)
        .map_err(|e| format!("{name}: info: {e}"))?
        .ok_or_else(|| format!("{name}: the object vanished while the parent held a handle"))?;
    let recorded = mxf.u64(M_OWNER).load(SeqCst);
    let owner_dead = match &info.owner {
        None => false,
        Some(o) if !o.alive => true,
        Some(o) => {
            return Err(format!(
                "{name}: owned by a live thread after all ended: {o:?}"
            ));
        }
    };
    let status = handle
        .wait(Some(Duration::from_secs(5)))
        .map_err(|e| format!("{name}: final wait: {e}"))?;
    let want = if owner_dead {
        WaitStatus::Abandoned
    } else {
        WaitStatus::Acquired
    };
    check(status == want, || {
        format!("{name}: final wait gave {status:?}, info said {info:?}")
    })?;
    if owner_dead {
        if recorded == 0 {
            let credits = mxf.u64(M_CREDITS).load(SeqCst);
            let used = mxf.u64(M_UNEXPLAINED).load(SeqCst);
            check(used < credits, || {
                format!("{name}: abandoned at the end with no owner recorded and no credit left")
            })?;
        } else {
            check(is_dead(ctl, recorded), || {
                format!(
                    "{name}: abandoned at the end, but the recorded owner lives: {}",
                    describe_id(recorded)
                )
            })?;
        }
    } else {
        check(recorded == 0, || {
            format!(
                "{name}: free at the end, but {} recorded itself as owner",
                describe_id(recorded)
            )
        })?;
    }
    // Abandoned once: a second thread now finds it free.
    handle
        .release()
        .map_err(|e| format!("{name}: release: {e}"))?;
    let again = std::thread::scope(|sc| {
        sc.spawn(|| {
            let r = handle.wait(Some(Duration::from_secs(5)));
            if matches!(r, Ok(WaitStatus::Acquired | WaitStatus::Abandoned)) {
                let _ = handle.release();
            }
            r
        })
        .join()
        .unwrap()
    });
    check(matches!(again, Ok(WaitStatus::Acquired)), || {
        format!("{name}: the wait after the final one gave {again:?}")
    })?;
    Ok(owner_dead)
}

// ----- the child process ------------------------------------------------------------------

struct Ctx {
    ctl: Shm,
    mx: Vec<Shm>,
    slot: usize,
    inc: u64,
}

impl Ctx {
    fn stop(&self) -> bool {
        self.ctl.u64(G_STOP).load(Relaxed) != 0
    }
    fn count(&self, off: usize) {
        self.ctl.u64(off).fetch_add(1, Relaxed);
    }
    fn violation(&self, what: String) {
        self.ctl.u64(G_VIOLATIONS).fetch_add(1, SeqCst);
        eprintln!(
            "VIOLATION (proc {} incarnation {}): {what}",
            self.slot, self.inc
        );
    }
    fn state(&self, t: usize, m: usize) -> &std::sync::atomic::AtomicU64 {
        self.ctl.u64(thread_at(self.slot, t) + T_STATE + 8 * m)
    }
}

/// `--child chaos DIR SLOT INCARNATION THREADS`.
pub fn child(args: &[String]) -> i32 {
    let dir = PathBuf::from(&args[0]);
    let slot: usize = args[1].parse().unwrap();
    let inc: u64 = args[2].parse().unwrap();
    let threads: usize = args[3].parse().unwrap();
    let ctx = Arc::new(Ctx {
        ctl: Shm::open(&dir.join("ctl")),
        mx: (0..NM)
            .map(|m| Shm::open(&dir.join(format!("mx{m}"))))
            .collect(),
        slot,
        inc,
    });
    let (tx, rx) = std::sync::mpsc::channel::<(usize, bool)>();
    let start = |t: usize| {
        let ctx = ctx.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let ended_owning = worker(&ctx, t);
            let _ = tx.send((t, ended_owning));
        })
    };
    let mut running: Vec<Option<std::thread::JoinHandle<()>>> =
        (0..threads).map(|t| Some(start(t))).collect();
    let mut live = threads;
    while live > 0 {
        let Ok((t, ended_owning)) = rx.recv() else {
            break;
        };
        if let Some(h) = running[t].take() {
            let _ = h.join();
        }
        if ended_owning && !ctx.stop() {
            running[t] = Some(start(t));
        } else {
            live -= 1;
        }
    }
    0
}

/// One worker thread; returns true when it ended while owning (to be replaced).
fn worker(ctx: &Ctx, t: usize) -> bool {
    let generation = ctx.ctl.u64(thread_at(ctx.slot, t) + T_GEN).load(SeqCst);
    let me = identity(ctx.slot, t, ctx.inc, generation);
    for m in 0..NM {
        ctx.state(t, m).store(NONE, SeqCst);
    }
    let mut rng = Rng::new(me ^ u64::from(std::process::id()));
    let open_all = || -> Vec<NamedMutex> {
        NAMES[..CHURN]
            .iter()
            .map(|n| {
                NamedMutex::create(n, false)
                    .expect("create a chaos mutex")
                    .0
            })
            .collect()
    };
    let mut handles = open_all();
    let progress = ctx.ctl.u64(thread_at(ctx.slot, t) + T_PROGRESS);
    while !ctx.stop() {
        progress.fetch_add(1, Relaxed);
        ctx.count(C_OPS);
        match rng.below(100) {
            0..=2 => {
                drop(std::mem::take(&mut handles));
                handles = open_all();
                ctx.count(C_REOPENS);
            }
            3..=5 => {
                let i = rng.below(CHURN as u64) as usize;
                handles[i] = handles[i].try_clone().expect("clone");
                ctx.count(C_CLONES);
            }
            6 => {
                // A sweep racing every create, open, close and death: it must never remove
                // an object in use (two objects of one name would show as two owners).
                let ns = if rng.one_in(2) {
                    namedmutex::Namespace::Local
                } else {
                    namedmutex::Namespace::Global
                };
                if let Err(e) = namedmutex::MutexOptions::new().prune(ns) {
                    ctx.violation(format!("prune failed: {e}"));
                }
                ctx.count(C_PRUNES);
            }
            _ => {
                if sequence(ctx, t, me, &handles, &mut rng) {
                    return true;
                }
            }
        }
        if rng.one_in(3) {
            std::thread::sleep(Duration::from_micros(rng.below(800)));
        }
    }
    false
}

/// Acquires a random ordered subset, checks, releases. Returns true when the thread is to
/// end now, owning what it holds.
fn sequence(ctx: &Ctx, t: usize, me: u64, handles: &[NamedMutex], rng: &mut Rng) -> bool {
    let mut chosen: Vec<usize> = (0..NM).filter(|_| rng.below(10) < 4).collect();
    if chosen.is_empty() {
        chosen.push(rng.below(NM as u64) as usize);
    }
    let mut churn: Option<NamedMutex> = None;
    let mut held: Vec<(usize, u32)> = Vec::new();
    for &m in &chosen {
        if m == CHURN {
            churn = Some(
                NamedMutex::create(NAMES[CHURN], false)
                    .expect("create churn")
                    .0,
            );
        }
        let h = if m == CHURN {
            churn.as_ref().unwrap()
        } else {
            &handles[m]
        };
        let timeout = match rng.below(10) {
            0..=2 => Some(Duration::ZERO),
            3..=6 => Some(Duration::from_millis(1 + rng.below(30))),
            _ => None,
        };
        ctx.state(t, m).store(WANT, SeqCst);
        let started = Instant::now();
        let result = h.wait(timeout);
        let took = started.elapsed();
        let status = match result {
            Ok(s) => s,
            Err(e) => {
                ctx.violation(format!("{}: wait failed: {e}", NAMES[m]));
                ctx.state(t, m).store(NONE, SeqCst);
                continue;
            }
        };
        if let Some(limit) = timeout {
            if took > limit + Duration::from_secs(5) {
                ctx.violation(format!(
                    "{}: a wait of {limit:?} returned after {took:?}",
                    NAMES[m]
                ));
            }
        } else {
            ctx.count(C_FOREVER);
            ctx.ctl
                .u64(C_MAX_WAIT_US)
                .fetch_max(took.as_micros() as u64, Relaxed);
        }
        if status == WaitStatus::TimedOut {
            ctx.state(t, m).store(NONE, SeqCst);
            ctx.count(if timeout == Some(Duration::ZERO) {
                C_TRY_BUSY
            } else {
                C_TIMEOUTS
            });
            continue;
        }
        entered(ctx, m, me, status);
        ctx.state(t, m).store(HOLD, SeqCst);
        let depth = 1 + rng.below(4) as u32;
        for _ in 1..depth {
            ctx.count(C_RECURSIONS);
            match h.wait(Some(Duration::ZERO)) {
                Ok(WaitStatus::Acquired) => {}
                other => ctx.violation(format!(
                    "{}: a recursive wait by the owner gave {other:?}",
                    NAMES[m]
                )),
            }
        }
        held.push((m, depth));
        for _ in 0..rng.below(4) {
            std::thread::yield_now();
            let owner = ctx.mx[m].u64(M_OWNER).load(SeqCst);
            if owner != me {
                ctx.violation(format!(
                    "{}: two owners inside: {} while {} holds it",
                    NAMES[m],
                    describe_id(owner),
                    describe_id(me)
                ));
            }
        }
        if rng.one_in(20) {
            std::thread::sleep(Duration::from_micros(rng.below(2000)));
        }
    }
    if !held.is_empty() && rng.one_in(250) && !ctx.stop() {
        // End while owning. The generation goes up first: dropping `churn` may destroy that
        // object (its last handle), and whoever creates it anew finds a dead owner record.
        ctx.ctl
            .u64(thread_at(ctx.slot, t) + T_GEN)
            .fetch_add(1, SeqCst);
        ctx.count(C_THREAD_ENDS);
        // Half the time, give everything up on purpose first (`abandon`): to the others it
        // is the same death, reported the same way.
        if rng.one_in(2) {
            for &(m, _) in held.iter().rev() {
                let h = if m == CHURN {
                    churn.as_ref().unwrap()
                } else {
                    &handles[m]
                };
                // The state stays HOLD and `owner` names this (now dead) identity, as for a
                // thread that ends owning.
                if let Err(e) = h.abandon("chaos") {
                    ctx.violation(format!("{}: abandon by the owner failed: {e}", NAMES[m]));
                }
                ctx.count(C_ABANDONED_ON_PURPOSE);
            }
        }
        return true;
    }
    for &(m, depth) in held.iter().rev() {
        let h = if m == CHURN {
            churn.as_ref().unwrap()
        } else {
            &handles[m]
        };
        for _ in 1..depth {
            if let Err(e) = h.release() {
                ctx.violation(format!("{}: recursive release failed: {e}", NAMES[m]));
            }
        }
        ctx.state(t, m).store(RELEASING, SeqCst);
        if let Err(other) = ctx.mx[m]
            .u64(M_OWNER)
            .compare_exchange(me, 0, SeqCst, SeqCst)
        {
            ctx.violation(format!(
                "{}: leaving, found {} recorded as owner instead of {}",
                NAMES[m],
                describe_id(other),
                describe_id(me)
            ));
        }
        // Sometimes through another handle: ownership belongs to the thread, not the handle.
        let released = if rng.one_in(4) {
            h.try_clone().and_then(|c| c.release())
        } else {
            h.release()
        };
        if let Err(e) = released {
            ctx.violation(format!("{}: release by the owner failed: {e}", NAMES[m]));
        }
        ctx.state(t, m).store(NONE, SeqCst);
        if rng.one_in(8) {
            match h.release() {
                Err(e) if e.kind() == ErrorKind::NotOwner => {}
                other => ctx.violation(format!(
                    "{}: a release after the last one gave {other:?}",
                    NAMES[m]
                )),
            }
        }
    }
    false
}

/// The checks at the entry of a critical section.
fn entered(ctx: &Ctx, m: usize, me: u64, status: WaitStatus) {
    let file = &ctx.mx[m];
    file.u64(M_ENTRIES).fetch_add(1, Relaxed);
    let prev = file.u64(M_OWNER).swap(me, SeqCst);
    match status {
        WaitStatus::Abandoned => {
            file.u64(M_ABANDONS).fetch_add(1, Relaxed);
            if prev == 0 {
                file.u64(M_UNEXPLAINED).fetch_add(1, SeqCst);
            } else if !is_dead(&ctx.ctl, prev) {
                ctx.violation(format!(
                    "{}: Abandoned, but the previous owner {} lives",
                    NAMES[m],
                    describe_id(prev)
                ));
            }
        }
        _ => {
            if prev != 0 {
                if !is_dead(&ctx.ctl, prev) {
                    ctx.violation(format!(
                        "{}: two owners: acquired while {} is inside",
                        NAMES[m],
                        describe_id(prev)
                    ));
                } else if m == CHURN {
                    // Its holder died with the last handle: the object was destroyed and
                    // created anew, free (as on Windows).
                    ctx.count(C_RECREATED);
                } else {
                    ctx.violation(format!(
                        "{}: Acquired, but the previous owner {} died holding it (missed abandonment)",
                        NAMES[m],
                        describe_id(prev)
                    ));
                }
            }
        }
    }
}
