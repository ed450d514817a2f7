//! Acquiring with a timeout, in slices: between slices the mutex is inspected, to draw the
//! status line on a terminal, to say who holds it on timeout, and to say who died holding
//! it when the wait returns `WAIT_ABANDONED`.
//!
//! Every wait happens on the calling thread, which then owns the mutex and must release it.

use crate::duration::human;
use crate::exit::Failure;
use crate::report::{Holder, rfc3339};
use crate::signals;
use namedmutex::{MutexOptions, NamedMutex, WaitStatus};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How long one wait lasts before the mutex is inspected again.
const SLICE: Duration = Duration::from_millis(200);
/// How long a wait goes on before the status line appears.
const STATUS_AFTER: Duration = Duration::from_millis(300);

/// How an acquisition ended.
pub enum Outcome {
    /// The calling thread owns the mutex. `Some` when the previous owner died holding it:
    /// what is known of that owner.
    Acquired(Option<Holder>),
    /// The timeout passed; the last holder seen, if any.
    TimedOut(Option<Holder>),
    /// A handled signal arrived while waiting (nothing is owned).
    Interrupted(i32),
}

/// One acquisition of `mutex` (named `name`, looked up through `opts`).
pub struct Acquire<'a> {
    /// The handle to wait on.
    pub mutex: &'a NamedMutex,
    /// Its full name (for inspection and messages).
    pub name: &'a str,
    /// Options carrying the root, for inspection.
    pub opts: &'a MutexOptions,
    /// `None` waits forever.
    pub timeout: Option<Duration>,
    /// Whether a status line may be drawn (it is only drawn when stderr is a terminal).
    pub status_line: bool,
}

impl Acquire<'_> {
    /// Waits, in slices, until the mutex is owned, the timeout passes, or a signal arrives.
    pub fn run(&self) -> Result<Outcome, Failure> {
        let start = Instant::now();
        let deadline = self.timeout.map(|t| start + t);
        let mut status = StatusLine::new(self.status_line && std::io::stderr().is_terminal());
        let mut holder: Option<Holder> = None;
        let mut slice = Duration::ZERO;
        loop {
            if let Some(sig) = signals::take_pending() {
                status.clear();
                return Ok(Outcome::Interrupted(sig));
            }
            let result = self.mutex.wait(Some(slice));
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    status.clear();
                    return Err(Failure::from_lib(self.name, &e));
                }
            };
            match result {
                WaitStatus::Acquired => {
                    status.clear();
                    return Ok(Outcome::Acquired(None));
                }
                WaitStatus::Abandoned => {
                    status.clear();
                    return Ok(Outcome::Acquired(Some(self.dead_owner(holder))));
                }
                WaitStatus::TimedOut => {}
            }
            let snapshot = self.opts.info(self.name).ok().flatten();
            let waiters = snapshot.as_ref().map_or(0, |i| i.waiters);
            holder = match snapshot.and_then(|i| i.owner) {
                Some(owner) => Some(Holder::update(holder, &owner)),
                None => holder, // released meanwhile: keep the last one seen
            };
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                status.clear();
                return Ok(Outcome::TimedOut(holder));
            }
            if now - start >= STATUS_AFTER {
                status.draw(&self.line(now - start, holder.as_ref(), waiters));
            }
            slice = deadline.map_or(SLICE, |d| SLICE.min(d - now));
        }
    }

    /// What is known of the owner that died: the last snapshot of it, corrected by the
    /// `last_abandoner` the object recorded when we took it over.
    fn dead_owner(&self, seen: Option<Holder>) -> Holder {
        let info = self.opts.info(self.name).ok().flatten();
        let note = info.as_ref().and_then(|i| i.abandon_note.clone());
        let recorded = info.and_then(|i| i.last_abandoner);
        let holder = match (seen, recorded) {
            (Some(seen), Some((pid, tid))) if seen.pid == Some(pid) || seen.pid.is_none() => {
                Holder {
                    pid: Some(pid),
                    tid: Some(tid),
                    ..seen
                }
            }
            (_, Some((pid, tid))) => Holder {
                pid: Some(pid),
                tid: Some(tid),
                ..Holder::default()
            },
            (Some(seen), None) => seen,
            (None, None) => Holder::default(),
        };
        Holder { note, ..holder }
    }

    fn line(&self, waited: Duration, holder: Option<&Holder>, waiters: u32) -> String {
        let mut s = format!("namedmutex: waiting for {} [{}", self.name, human(waited));
        if let Some(t) = self.timeout {
            s.push_str(&format!("/{}", human(t)));
        }
        s.push(']');
        if let Some(h) = holder {
            if h.alive {
                s.push_str(&format!(": held by {}{}", h.who(), h.held_for()));
            } else {
                s.push_str(&format!(": {} died holding it", h.who()));
            }
        }
        if waiters > 1 {
            s.push_str(&format!(", {} waiting", waiters));
        }
        if let Some(cmd) = holder.and_then(Holder::command) {
            s.push_str(&format!(": {cmd}"));
        }
        s
    }
}

/// Describes a dead owner for the abandonment report.
pub fn abandoned_message(holder: &Holder) -> String {
    let mut s = match &holder.note {
        Some(note) => format!(
            "the previous holder, {}, left the lock abandoned: {}",
            holder.describe(),
            crate::report::printable(note)
        ),
        None => format!(
            "the previous holder, {}, died without releasing the lock",
            holder.describe()
        ),
    };
    let mut extra = Vec::new();
    if let Some(since) = holder.since() {
        extra.push(since);
    }
    if let Some(t) = holder.first_seen.filter(|_| holder.acquired.is_none()) {
        extra.push(format!("seen holding it since {}", rfc3339(t)));
    }
    if !extra.is_empty() {
        s.push_str(&format!(" ({})", extra.join(", ")));
    }
    s
}

/// Describes the holder at a timeout.
pub fn timeout_message(timeout: Option<Duration>, holder: Option<&Holder>) -> String {
    let timeout = timeout.unwrap_or(Duration::ZERO);
    match holder {
        Some(h) if timeout.is_zero() => format!("held by {}{}", h.describe(), h.held_for()),
        Some(h) => format!(
            "timed out after {}; held by {}{}",
            human(timeout),
            h.describe(),
            h.held_for()
        ),
        None if timeout.is_zero() => "held by another thread".to_owned(),
        None => format!("timed out after {}", human(timeout)),
    }
}

/// A status line on stderr, redrawn in place; cleared when the wait ends.
struct StatusLine {
    enabled: bool,
    drawn: bool,
}

impl StatusLine {
    fn new(enabled: bool) -> StatusLine {
        StatusLine {
            enabled,
            drawn: false,
        }
    }

    fn draw(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        let width = terminal_width().saturating_sub(1).max(20);
        let text: String = text.chars().take(width).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{text}");
        let _ = err.flush();
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

#[cfg(target_os = "linux")]
fn terminal_width() -> usize {
    // SAFETY: a zeroed winsize is valid, and TIOCGWINSZ writes one into it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: fd 2 and a valid pointer to winsize, as TIOCGWINSZ expects.
    let ok = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}

#[cfg(not(target_os = "linux"))]
fn terminal_width() -> usize {
    80
}
