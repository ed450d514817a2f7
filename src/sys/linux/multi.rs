//! Waiting on several mutexes at once (`WaitForMultipleObjects`).
//!
//! Both forms sleep on every busy mutex's futex word and on each busy owner's lifeline in
//! one `futex_waitv` call (up to 128 words: 64 mutexes × 2), so a release or an owner's
//! death anywhere in the set wakes the waiter at once.
//!
//! - **any**: attempts each mutex in index order without blocking; the first it gets is the
//!   answer, so the lowest acquirable index wins.
//! - **all**: first looks without taking anything; only when no mutex has a live owner does it
//!   take them all, in a fixed order (by object), without blocking. If one was taken meanwhile,
//!   it gives back what it took (an abandoned mutex goes back to its dead owner, so the
//!   abandonment is not lost) and looks again. A waiter therefore never holds part of the set
//!   while it sleeps, and two waiters with opposite orders cannot deadlock.
//!
//! A wake-up is a token meant for one sleeper: a multi-waiter that was woken through a mutex
//! it did not take passes the wake-up on, so single waiters sharing a mutex are never stranded.

use super::bias::{self, Revoked};
use super::futex::{self, Wake};
use super::lock::{self, Attempt, Owner, Undo};
use super::lock_word;
use super::object::Object;
use crate::error::{Error, ErrorKind, Result};
use crate::multi_wait::WaitAny as Multi;
use crate::wait_status::WaitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The most mutexes one wait takes (`MAXIMUM_WAIT_OBJECTS`).
pub(super) const MAX_OBJECTS: usize = 64;

pub(super) fn wait(objs: &[&Object], all: bool, timeout: Option<Duration>) -> Result<Multi> {
    if objs.is_empty() || objs.len() > MAX_OBJECTS {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            format!(
                "a wait takes 1 to {MAX_OBJECTS} mutexes, not {}",
                objs.len()
            ),
        ));
    }
    let mut tokens = Vec::with_capacity(objs.len());
    for obj in objs {
        tokens.push(obj.token()?);
    }
    if all {
        wait_all(objs, &tokens, timeout)
    } else {
        wait_any(objs, &tokens, timeout)
    }
}

fn wait_any(objs: &[&Object], tokens: &[u64], timeout: Option<Duration>) -> Result<Multi> {
    let deadline = futex::deadline_after(timeout);
    let mut slept = false;
    loop {
        let mut busy = Vec::with_capacity(objs.len());
        for (i, obj) in objs.iter().enumerate() {
            match lock::attempt(obj, tokens[i], slept)? {
                Attempt::Got(status, _) => {
                    if slept {
                        pass_on(objs, |j| j != i);
                    }
                    return Ok(match status {
                        WaitStatus::Abandoned => Multi::Abandoned(i),
                        _ => Multi::Acquired(i),
                    });
                }
                Attempt::Busy { cur, owner } => busy.push((i, cur, owner)),
            }
        }
        if expired(deadline, timeout) {
            objs.iter().for_each(|o| lock::give_up(o));
            return Ok(Multi::TimedOut);
        }
        sleep(objs, &busy, deadline);
        slept = true;
    }
}

fn wait_all(objs: &[&Object], tokens: &[u64], timeout: Option<Duration>) -> Result<Multi> {
    let mut order: Vec<usize> = (0..objs.len()).collect();
    order.sort_by_key(|&i| objs[i].key);
    if order.windows(2).any(|w| objs[w[0]].key == objs[w[1]].key) {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            "the same mutex appears twice in one wait-all (through two handles or one handle twice)",
        ));
    }
    let deadline = futex::deadline_after(timeout);
    let mut slept = false;
    loop {
        let busy = live_owned(objs, tokens);
        if busy.is_empty() {
            if let Some(status) = take_all(objs, tokens, &order, slept)? {
                return Ok(status);
            }
            // Somebody took one between our look and our grab: look again.
            std::thread::yield_now();
            continue;
        }
        if expired(deadline, timeout) {
            objs.iter().for_each(|o| lock::give_up(o));
            return Ok(Multi::TimedOut);
        }
        if slept {
            pass_on(objs, |_| true);
        }
        sleep(objs, &busy, deadline);
        slept = true;
    }
}

/// The mutexes of the set that a live thread other than us owns.
fn live_owned(objs: &[&Object], tokens: &[u64]) -> Vec<(usize, u64, Owner)> {
    let mut busy = Vec::new();
    for (i, obj) in objs.iter().enumerate() {
        loop {
            let cur = obj.page.lock_word().load(Ordering::Acquire);
            if lock_word::is_free(cur)
                || lock_word::token(cur) == tokens[i]
                || lock_word::is_biased(cur) && lock_word::bias_holder(cur) == tokens[i]
            {
                break;
            }
            let owner = lock::owner_of(obj, cur);
            if matches!(owner, Owner::Dead) {
                break;
            }
            if lock_word::is_biased(cur) {
                // Biased to a live thread: it owns the mutex only if it holds it now.
                match bias::revoke(obj, cur) {
                    Revoked::Changed => continue,
                    Revoked::Held(cur) => busy.push((i, cur, owner)),
                }
            } else {
                busy.push((i, cur, owner));
            }
            break;
        }
    }
    busy
}

/// Takes every mutex or none. `None` when one was taken by somebody else meanwhile.
fn take_all(
    objs: &[&Object],
    tokens: &[u64],
    order: &[usize],
    slept: bool,
) -> Result<Option<Multi>> {
    let mut taken: Vec<(usize, Undo)> = Vec::with_capacity(order.len());
    let mut abandoned = false;
    for &i in order {
        let result = lock::attempt(objs[i], tokens[i], slept);
        match result {
            Ok(Attempt::Got(status, undo)) => {
                abandoned |= status == WaitStatus::Abandoned;
                taken.push((i, undo));
            }
            Ok(Attempt::Busy { .. }) | Err(_) => {
                for &(j, undo) in taken.iter().rev() {
                    lock::undo(objs[j], undo)?;
                }
                return result.map(|_| None);
            }
        }
    }
    Ok(Some(if abandoned {
        Multi::Abandoned(0)
    } else {
        Multi::Acquired(0)
    }))
}

fn expired(deadline: Option<rustix::time::Timespec>, timeout: Option<Duration>) -> bool {
    timeout == Some(Duration::ZERO) || deadline.is_some_and(|d| !futex::is_before(futex::now(), d))
}

/// Sleeps on the futex words of the `busy` mutexes and their owners' lifelines.
fn sleep(objs: &[&Object], busy: &[(usize, u64, Owner)], deadline: Option<rustix::time::Timespec>) {
    let mut words: Vec<(&AtomicU32, u32)> = Vec::with_capacity(busy.len() * 2);
    let mut lifelines: Vec<bool> = Vec::with_capacity(busy.len() * 2);
    let mut sleeping_on: Vec<usize> = Vec::with_capacity(busy.len());
    for &(i, cur, owner) in busy {
        let Some(expected) = lock::announce_sleeper(objs[i], cur) else {
            return; // it changed: look again at once
        };
        let word = objs[i].page.futex_word();
        if !words.iter().any(|(w, _)| std::ptr::eq(*w, word)) {
            words.push((word, expected));
            lifelines.push(false);
            sleeping_on.push(i);
        }
        if let Owner::Alive { lifeline, value } = owner {
            if !words.iter().any(|(w, _)| std::ptr::eq(*w, lifeline)) {
                words.push((lifeline, value));
                lifelines.push(true);
            }
        }
    }
    if words.is_empty() {
        return;
    }
    for &i in &sleeping_on {
        objs[i].page.sleepers().fetch_add(1, Ordering::AcqRel);
    }
    let woke = futex::wait(&words, lock::sleep_until(deadline));
    for &i in &sleeping_on {
        objs[i].page.sleepers().fetch_sub(1, Ordering::AcqRel);
    }
    if let Wake::Word(k) = woke {
        if lifelines.get(k) == Some(&true) {
            futex::wake(words[k].0, u32::MAX >> 1); // an owner died: tell all its watchers
        }
    }
}

/// Passes a wake-up on to the sleepers of every free mutex of the set we did not take.
fn pass_on(objs: &[&Object], mut which: impl FnMut(usize) -> bool) {
    for (i, obj) in objs.iter().enumerate() {
        if which(i)
            && lock_word::is_free(obj.page.lock_word().load(Ordering::Acquire))
            && obj.page.sleepers().load(Ordering::Acquire) > 0
        {
            futex::wake(obj.page.futex_word(), 1);
        }
    }
}
