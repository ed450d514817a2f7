//! Every transition of the lock word against a reference model of Win32's rules (proptest):
//! random sequences of polls, releases, give-ups and deaths by up to four owners, each
//! result compared with what `WaitForSingleObject(h, 0)` / `ReleaseMutex` would answer. The
//! owners are tokens used from one thread, so no step waits; with biasing allowed, the first
//! poll takes the bias and the others revoke it (in-thread, a full fence on both sides).

use super::{HeapMutex, World, allow_bias, token};
use crate::protocol::acquire::lock;
use crate::protocol::release::{abandon, release};
use crate::sys::contract::ErrorKind;
use crate::sys::contract::WaitStatus;
use proptest::prelude::*;
use std::time::Duration;

const OWNERS: usize = 4;

#[derive(Clone, Copy, Debug)]
enum Op {
    Poll(usize),
    Release(usize),
    GiveUp(usize),
    Die(usize),
}

fn op() -> impl Strategy<Value = Op> {
    (0..4u8, 0..OWNERS).prop_map(|(kind, who)| match kind {
        0 => Op::Poll(who),
        1 => Op::Release(who),
        2 => Op::GiveUp(who),
        _ => Op::Die(who),
    })
}

/// Win32's mutex as a reference: the owner and its count, whether the next acquirer is to
/// be told of an abandonment, and which owners are dead.
#[derive(Default, Debug)]
struct Reference {
    owner: Option<(usize, u32)>,
    abandoned: bool,
    dead: [bool; OWNERS],
}

impl Reference {
    fn poll(&mut self, who: usize) -> WaitStatus {
        match self.owner {
            Some((o, c)) if o == who => {
                self.owner = Some((o, c + 1));
                WaitStatus::Acquired
            }
            Some((o, _)) if !self.dead[o] => WaitStatus::TimedOut,
            // Free, or its owner died holding it: ours, told if anyone abandoned it.
            held => {
                let told = self.abandoned || held.is_some();
                self.owner = Some((who, 1));
                self.abandoned = false;
                if told {
                    WaitStatus::Abandoned
                } else {
                    WaitStatus::Acquired
                }
            }
        }
    }

    fn release(&mut self, who: usize) -> Result<(), ErrorKind> {
        match self.owner {
            Some((o, c)) if o == who => {
                self.owner = (c > 1).then_some((o, c - 1));
                Ok(())
            }
            _ => Err(ErrorKind::NotOwner),
        }
    }

    fn give_up(&mut self, who: usize) -> Result<(), ErrorKind> {
        match self.owner {
            Some((o, _)) if o == who => {
                self.owner = None;
                self.abandoned = true;
                Ok(())
            }
            _ => Err(ErrorKind::NotOwner),
        }
    }
}

fn run(ops: &[Op], may_bias: bool) -> Result<(), TestCaseError> {
    if may_bias {
        allow_bias();
    }
    let world = World::new();
    let m = HeapMutex::new(&world, 0);
    let mut model = Reference::default();
    for (step, &op) in ops.iter().enumerate() {
        let who = match op {
            Op::Poll(w) | Op::Release(w) | Op::GiveUp(w) | Op::Die(w) => w,
        };
        if model.dead[who] {
            continue; // a dead owner does nothing more
        }
        match op {
            Op::Poll(w) => {
                let got = lock(&m, token(w), Some(Duration::ZERO))
                    .map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
                prop_assert_eq!(got, model.poll(w), "step {} {:?} in {:?}", step, op, model);
            }
            Op::Release(w) => {
                let got = release(&m, token(w)).map_err(|e| e.kind());
                prop_assert_eq!(
                    got,
                    model.release(w),
                    "step {} {:?} in {:?}",
                    step,
                    op,
                    model
                );
            }
            Op::GiveUp(w) => {
                let got = abandon(&m, token(w), || {}).map_err(|e| e.kind());
                prop_assert_eq!(
                    got,
                    model.give_up(w),
                    "step {} {:?} in {:?}",
                    step,
                    op,
                    model
                );
            }
            Op::Die(w) => {
                world.end(w);
                model.dead[w] = true;
            }
        }
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Miri interprets every step; natively 256 sequences take well under a second.
        cases: if cfg!(miri) { 2 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_transition_matches_win32(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops, false)?;
    }

    #[test]
    fn every_transition_matches_win32_with_a_bias(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops, true)?;
    }
}
