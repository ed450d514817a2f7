//! Waiting on several mutexes at once (`WaitForMultipleObjects`).
//!
//! Both forms sleep on every busy mutex's lock word and on each busy owner's lifeline in one
//! sleep, so a release or an owner's death anywhere in the set wakes the waiter at once.
//!
//! - **any**: attempts each mutex in index order without blocking; the first it gets is the
//!   answer, so the lowest acquirable index wins.
//! - **all**: first looks without taking anything; only when no mutex has a live owner does it
//!   take them all, in a fixed order (by [`Host::order_key`]), without blocking. If one was
//!   taken meanwhile, it gives back what it took (an abandoned mutex goes back to its dead
//!   owner, so the abandonment is not lost) and looks again. A waiter therefore never holds
//!   part of the set while it sleeps, and two waiters with opposite orders cannot deadlock.
//!
//! A wake-up is a token meant for one sleeper: a multi-waiter that was woken through a mutex
//! it did not take passes the wake-up on, so single waiters sharing a mutex are never stranded.

use super::acquire::{self, Attempt, Reentry, Undo};
use super::atomic::Atomic32;
use super::bias::{self, Revoked};
use super::host::{Host, Owner, Wake, Watch};
use super::lock_word::Token;
use super::sleep::{announce_sleeper, give_up};
use crate::sys::contract::WaitAny;
use crate::sys::contract::WaitStatus;
use crate::sys::contract::{Error, ErrorKind, Result};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A mutex of the set that a live thread owns: its index, the word seen, the owner.
type Busy<L> = (usize, super::lock_word::LockWord, Owner<L>);

/// Waits for any one of `objs` (`tokens[i]`: the caller's token in `objs[i]`).
pub(crate) fn wait_any<H: Host>(
    objs: &[&H],
    tokens: &[Token],
    timeout: Option<Duration>,
) -> Result<WaitAny> {
    let deadline = H::deadline_after(timeout);
    let mut slept = false;
    loop {
        let mut busy = Vec::with_capacity(objs.len());
        for (i, obj) in objs.iter().enumerate() {
            match acquire::attempt(*obj, tokens[i], Reentry::Recursive, slept)? {
                Attempt::Got(status, _) => {
                    if slept {
                        pass_on(objs, |j| j != i);
                    }
                    return Ok(match status {
                        WaitStatus::Abandoned => WaitAny::Abandoned(i),
                        _ => WaitAny::Acquired(i),
                    });
                }
                Attempt::Busy { cur, owner } => busy.push((i, cur, owner)),
            }
        }
        if expired::<H>(deadline, timeout) {
            objs.iter().for_each(|o| give_up(*o));
            return Ok(WaitAny::TimedOut);
        }
        sleep(objs, &busy, deadline);
        slept = true;
    }
}

/// Waits until the caller owns every one of `objs` at once.
pub(crate) fn wait_all<H: Host>(
    objs: &[&H],
    tokens: &[Token],
    timeout: Option<Duration>,
) -> Result<WaitAny> {
    let mut order: Vec<usize> = (0..objs.len()).collect();
    order.sort_by_key(|&i| objs[i].order_key());
    if order
        .windows(2)
        .any(|w| objs[w[0]].order_key() == objs[w[1]].order_key())
    {
        return Err(Error::new(
            ErrorKind::InvalidParameter,
            "the same mutex appears twice in one wait-all (through two handles or one handle twice)",
        ));
    }
    let deadline = H::deadline_after(timeout);
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
        if expired::<H>(deadline, timeout) {
            objs.iter().for_each(|o| give_up(*o));
            return Ok(WaitAny::TimedOut);
        }
        if slept {
            pass_on(objs, |_| true);
        }
        sleep(objs, &busy, deadline);
        slept = true;
    }
}

/// The mutexes of the set that a live thread other than us owns.
fn live_owned<H: Host>(objs: &[&H], tokens: &[Token]) -> Vec<Busy<H::Lifeline>> {
    let mut busy = Vec::new();
    for (i, obj) in objs.iter().enumerate() {
        loop {
            let cur = obj.load_word(Ordering::Acquire);
            if cur.is_free()
                || cur.token() == tokens[i]
                || cur.is_biased() && cur.bias_holder() == tokens[i]
            {
                break;
            }
            let owner = obj.owner(cur);
            if matches!(owner, Owner::Dead) {
                break;
            }
            if cur.is_biased() {
                // Biased to a live thread: it owns the mutex only if it holds it now.
                match bias::revoke(*obj, cur) {
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

/// Takes every mutex or none. `None` when one was taken by somebody else meanwhile: what
/// was taken is given back, abandonment included.
fn take_all<H: Host>(
    objs: &[&H],
    tokens: &[Token],
    order: &[usize],
    slept: bool,
) -> Result<Option<WaitAny>> {
    let mut taken: Vec<(usize, Undo)> = Vec::with_capacity(order.len());
    let mut abandoned = false;
    for &i in order {
        let result = acquire::attempt(objs[i], tokens[i], Reentry::Recursive, slept);
        match result {
            Ok(Attempt::Got(status, undo)) => {
                abandoned |= status == WaitStatus::Abandoned;
                taken.push((i, undo));
            }
            Ok(Attempt::Busy { .. }) | Err(_) => {
                for &(j, undo) in taken.iter().rev() {
                    acquire::undo(objs[j], tokens[j], undo)?;
                }
                return result.map(|_| None);
            }
        }
    }
    Ok(Some(if abandoned {
        WaitAny::Abandoned(0)
    } else {
        WaitAny::Acquired(0)
    }))
}

fn expired<H: Host>(deadline: Option<H::Deadline>, timeout: Option<Duration>) -> bool {
    timeout == Some(Duration::ZERO) || deadline.is_some_and(H::passed)
}

/// Sleeps on the lock words of the `busy` mutexes and their owners' lifelines.
fn sleep<H: Host>(objs: &[&H], busy: &[Busy<H::Lifeline>], deadline: Option<H::Deadline>) {
    let mut watches: Vec<Watch<'_, H>> = Vec::with_capacity(busy.len() * 2);
    let mut sleeping_on: Vec<usize> = Vec::with_capacity(busy.len());
    for &(i, cur, owner) in busy {
        let Some(expected) = announce_sleeper(objs[i], cur) else {
            return; // it changed: look again at once
        };
        let key = objs[i].order_key();
        let watched = |w: &Watch<'_, H>| matches!(w, Watch::Mutex(o, _) if o.order_key() == key);
        if !watches.iter().any(watched) {
            watches.push(Watch::Mutex(objs[i], expected));
            sleeping_on.push(i);
        }
        if let Owner::Alive { lifeline, value } = owner {
            let same = |w: &Watch<'_, H>| matches!(w, Watch::Lifeline(l, _) if *l == lifeline);
            if !watches.iter().any(same) {
                watches.push(Watch::Lifeline(lifeline, value));
            }
        }
    }
    if watches.is_empty() {
        return;
    }
    for &i in &sleeping_on {
        objs[i].sleepers().fetch_add(1, Ordering::AcqRel);
    }
    let woke = H::sleep(&watches, H::sleep_until(deadline));
    for &i in &sleeping_on {
        objs[i].sleepers().fetch_sub(1, Ordering::AcqRel);
    }
    if let Wake::Word(k) = woke {
        if let Some(Watch::Lifeline(lifeline, _)) = watches.get(k) {
            objs[0].wake_watchers(*lifeline); // an owner died: tell all its watchers
        }
    }
}

/// Passes a wake-up on to the sleepers of every free mutex of the set we did not take.
fn pass_on<H: Host>(objs: &[&H], mut which: impl FnMut(usize) -> bool) {
    for (i, obj) in objs.iter().enumerate() {
        if which(i)
            && obj.load_word(Ordering::Acquire).is_free()
            && obj.sleepers().load(Ordering::Acquire) > 0
        {
            obj.wake(1);
        }
    }
}
