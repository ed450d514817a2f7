//! Biased locking across processes: the first acquirer of a fresh mutex takes the bias
//! (checked in the object file, as FORMAT.md describes it), and every way of taking it away
//! works: from an idle owner, from a holder that releases, from a holder that is killed (at
//! depth 3: abandoned; at depth 0: not abandoned), in multi-waits, and when two processes
//! race for many fresh mutexes at once. Children run with `NAMEDMUTEX_BIAS=1`, which makes
//! biasing deterministic.

use crate::support::*;
use libtest_mimic::Trial;
use namedmutex::{NamedMutex, WaitAny, WaitStatus};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

const BIAS: &[(&str, &str)] = &[("NAMEDMUTEX_BIAS", "1")];
const BIASED: u64 = 1 << 30;
const OWNER_BITS: u64 = 0x3FFF_FFFF;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("bias::an_idle_biased_owner_gives_the_mutex_up", idle_owner),
        Trial::test(
            "bias::a_biased_holder_excludes_others_until_it_releases",
            holder_releases,
        ),
        Trial::test("bias::a_killed_biased_holder_abandons_the_mutex", || {
            killed(3)
        }),
        Trial::test(
            "bias::a_killed_biased_thread_that_held_nothing_abandons_nothing",
            || killed(0),
        ),
        Trial::test("bias::multi_waits_revoke_biases", multi_waits),
        Trial::test(
            "bias::two_processes_racing_for_fresh_mutexes_never_both_own_one",
            || race(&[]),
        ),
        // With the `fault-injection` feature: the biased fast path sleeps between reading
        // the word and writing its depth, so revocations land in that window.
        Trial::test(
            "bias::revocations_inside_the_fast_path_never_make_two_owners",
            || race(&[("NAMEDMUTEX_STALL", "bias.before_depth")]),
        )
        .with_ignored_flag(!cfg!(feature = "fault-injection")),
    ]
}

/// The lock word and the bias depth of the local object `name`, read from its file.
fn word_and_depth(name: &str) -> Result<(u64, u32), String> {
    let file = std::fs::File::open(local_dir(&root()).join(name)).map_err(|e| e.to_string())?;
    let mut b = [0u8; 8];
    let at = |f| namedmutex::__format::offset(namedmutex::__format::OBJECT_FIELDS, f) as u64;
    file.read_exact_at(&mut b, at("LOCK"))
        .map_err(|e| e.to_string())?;
    let word = u64::from_le_bytes(b);
    let mut d = [0u8; 4];
    file.read_exact_at(&mut d, at("BIAS_DEPTH"))
        .map_err(|e| e.to_string())?;
    Ok((word, u32::from_le_bytes(d)))
}

fn is_biased(word: u64) -> bool {
    word & BIASED != 0 && word & OWNER_BITS != 0
}

/// Spawns a child that biases `name` to itself and holds it `depth` times.
fn biased_child(name: &str, depth: u32) -> Result<Peer, String> {
    let mut child = Peer::spawn("bias", &[name, &depth.to_string()], BIAS);
    child.expect("biased")?;
    let (word, d) = word_and_depth(name)?;
    check(is_biased(word) && d == depth, || {
        format!("expected a word biased to the child at depth {depth}, found {word:#x} depth {d}")
    })?;
    Ok(child)
}

fn idle_owner() -> Result<(), libtest_mimic::Failed> {
    let name = unique("bias-idle");
    let mut child = biased_child(&name, 0)?;
    let m = NamedMutex::open(&name)?;
    let started = Instant::now();
    let status = m.wait(Some(Duration::from_secs(5)))?;
    let took = started.elapsed();
    check(status == WaitStatus::Acquired, || {
        format!("the bias of an idle owner should give way, got {status:?}")
    })?;
    let (word, _) = word_and_depth(&name)?;
    check(!is_biased(word), || format!("still biased: {word:#x}"))?;
    // The child's fast path must now see that it lost the bias: it waits for us.
    child.send("lock");
    child
        .silent_for(Duration::from_millis(200))
        .map_err(|e| format!("the child should wait while we hold the mutex: {e}"))?;
    m.release()?;
    check(child.expect("status")? == "status 0", || {
        "child status".into()
    })?;
    child.send("unlock");
    check(child.expect_line()? == "ok", || "child unlock".into())?;
    println!("  revoked an idle bias in {took:?}");
    Ok(())
}

fn holder_releases() -> Result<(), libtest_mimic::Failed> {
    let name = unique("bias-hold");
    let mut child = biased_child(&name, 2)?;
    let m = NamedMutex::open(&name)?;
    let status = m.wait(Some(Duration::from_millis(200)))?;
    check(status == WaitStatus::TimedOut, || {
        format!("acquired a mutex the biased child holds: {status:?}")
    })?;
    check(m.release().is_err(), || {
        "released what we do not own".into()
    })?;
    let waiter = std::thread::scope(|s| {
        let w = s.spawn(|| m.wait(Some(Duration::from_secs(10))));
        child.send("release");
        let released = child.expect("released");
        (w.join().expect("waiter thread"), released)
    });
    waiter.1?;
    let status = waiter.0?;
    check(status == WaitStatus::Acquired, || {
        format!("after the biased holder released: {status:?}")
    })?;
    Ok(())
}

/// SIGKILL a thread a mutex is biased to, holding it `depth` times. At depth 3 a waiter
/// already blocked in another process gets Abandoned with count 1; at depth 0 (found only
/// after the death, through a handle kept open) the next acquirer gets a plain Acquired.
fn killed(depth: u32) -> Result<(), libtest_mimic::Failed> {
    let name = unique("bias-kill");
    let mut child = biased_child(&name, depth)?;
    if depth == 0 {
        let m = NamedMutex::open(&name)?;
        child.kill();
        let status = m.wait(Some(Duration::from_secs(5)))?;
        check(status == WaitStatus::Acquired, || {
            format!("a dead thread that held nothing abandoned it: {status:?}")
        })?;
        m.release()?;
        check(m.release().is_err(), || "owned twice".into())?;
        return Ok(());
    }
    let mut waiter = Peer::spawn("wait", &[&name, "15000"], BIAS);
    waiter.expect("waiting")?;
    child.kill();
    let status = waiter.expect("status")?;
    check(status.starts_with("status 128 "), || {
        format!("holder at depth {depth} killed: waiter got {status}")
    })?;
    check(waiter.expect("releases")? == "releases 1", || {
        "the waiter should own the mutex once".into()
    })?;
    check(waiter.finish()? == 0, || "waiter failed".into())?;
    Ok(())
}

fn multi_waits() -> Result<(), libtest_mimic::Failed> {
    let (a, b) = (unique("bias-any-a"), unique("bias-any-b"));
    let mut holder = biased_child(&a, 1)?;
    let _idle = biased_child(&b, 0)?;
    let (ma, mb) = (NamedMutex::open(&a)?, NamedMutex::open(&b)?);
    let got = namedmutex::wait_any(&[&ma, &mb], Some(Duration::from_secs(5)))?;
    check(got == WaitAny::Acquired(1), || format!("wait_any: {got:?}"))?;
    mb.release()?;
    let got = namedmutex::wait_all(&[&ma, &mb], Some(Duration::from_millis(200)))?;
    check(got == WaitStatus::TimedOut, || {
        format!("wait_all while the biased child holds one: {got:?}")
    })?;
    let got = std::thread::scope(|s| {
        let w = s.spawn(|| namedmutex::wait_all(&[&ma, &mb], Some(Duration::from_secs(10))));
        holder.send("release");
        let released = holder.expect("released");
        (w.join().expect("waiter thread"), released)
    });
    got.1?;
    let got = got.0?;
    check(got == WaitStatus::Acquired, || format!("wait_all: {got:?}"))?;
    Ok(())
}

fn race(env: &[(&str, &str)]) -> Result<(), libtest_mimic::Failed> {
    let base = unique("bias-race");
    let file = root().join(format!("{base}.count"));
    let file_s = file.to_str().unwrap();
    let rounds = 100;
    let r = rounds.to_string();
    let env: Vec<(&str, &str)> = BIAS.iter().chain(env).copied().collect();
    let mut a = Peer::spawn("bias-race", &[&base, file_s, &r], &env);
    let mut b = Peer::spawn("bias-race", &[&base, file_s, &r], &env);
    a.expect("go?")?;
    b.expect("go?")?;
    a.send("go");
    b.send("go");
    a.expect("done")?;
    b.expect("done")?;
    let mut lost = Vec::new();
    for i in 0..rounds {
        let path = format!("{file_s}-{i}");
        let n: u64 = std::fs::read_to_string(&path)?.trim().parse()?;
        let _ = std::fs::remove_file(&path);
        if n != 40 {
            lost.push(format!("round {i}: {n} of 40"));
        }
    }
    check(lost.is_empty(), || {
        format!("two owners at once: {}", lost.join(", "))
    })?;
    Ok(())
}
