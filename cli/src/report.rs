//! Presenting `MutexInfo` snapshots: the table of `list`, the block of `info`, their JSON
//! form, and the description of a holder used in status lines and abandonment reports.

use crate::duration::human;
use namedmutex::{MutexInfo, OwnerInfo};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// The state of a mutex, as `info`'s exit status and the `state` field report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Nobody owns it.
    Free,
    /// A live thread owns it.
    Held,
    /// Its owner ended while owning it; the next acquirer gets `WAIT_ABANDONED`.
    Abandoned,
    /// The caller may not open it (another user's private object): nothing is known.
    Unknown,
}

impl State {
    /// The state of `info`.
    pub fn of(info: &MutexInfo) -> State {
        match &info.owner {
            None if !info.accessible => State::Unknown,
            None => State::Free,
            Some(o) if o.alive => State::Held,
            Some(_) => State::Abandoned,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            State::Free => "free",
            State::Held => "held",
            State::Abandoned => "abandoned",
            State::Unknown => "no-access",
        }
    }
}

/// The command line of process `pid` from `/proc/<pid>/cmdline`, joined with spaces;
/// `None` when unreadable or empty (kernel threads, zombies, other platforms).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

/// The command line of the owner, when it runs in our PID namespace and is alive.
pub fn owner_cmdline(owner: &OwnerInfo) -> Option<Vec<String>> {
    if owner.alive {
        owner.visible_pid.and_then(cmdline)
    } else {
        None
    }
}

/// `SystemTime` as RFC 3339 in UTC with milliseconds (the library's serde format).
pub use namedmutex::serde_time::to_rfc3339 as rfc3339;

fn age(t: SystemTime) -> Option<Duration> {
    SystemTime::now().duration_since(t).ok()
}

/// A shell-like rendering of an argument vector (arguments with spaces or quotes are quoted).
pub fn join_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Who holds (or held) a mutex, as remembered across snapshots while waiting.
#[derive(Clone, Debug, Default)]
pub struct Holder {
    /// Process id, if recorded.
    pub pid: Option<u32>,
    /// Thread id, if recorded.
    pub tid: Option<u32>,
    /// Its command line, read while it was alive.
    pub cmdline: Option<Vec<String>>,
    /// When it acquired, if recorded.
    pub acquired: Option<SystemTime>,
    /// When this process first saw it as the owner (a lower bound of how long it held).
    pub first_seen: Option<SystemTime>,
    /// Whether it was alive at the last look.
    pub alive: bool,
    /// Its process id in our PID namespace, when we can see it.
    pub visible_pid: Option<u32>,
    /// Whether its process was stopped at the last look.
    pub stopped: bool,
    /// Why it abandoned the lock, when it said so (`namedmutex run` says which command
    /// died and how).
    pub note: Option<String>,
}

impl Holder {
    /// The holder recorded in `owner`, keeping what `previous` knew of the same thread.
    pub fn update(previous: Option<Holder>, owner: &OwnerInfo) -> Holder {
        let same = previous
            .as_ref()
            .is_some_and(|p| p.pid == owner.pid && p.tid == owner.tid);
        let previous = previous.filter(|_| same).unwrap_or_default();
        Holder {
            pid: owner.pid,
            tid: owner.tid,
            cmdline: owner_cmdline(owner).or(previous.cmdline),
            acquired: owner.acquired.or(previous.acquired),
            first_seen: previous.first_seen.or_else(|| Some(SystemTime::now())),
            alive: owner.alive,
            // Kept from an earlier look: a dead holder is no longer visible, and the
            // abandonment report should still name it as we could see it.
            visible_pid: owner.visible_pid.or(previous.visible_pid),
            stopped: owner.stopped,
            note: None,
        }
    }

    /// `pid 1234, thread 1235 (make -j8)`, and `[stopped]` for a stopped holder.
    pub fn describe(&self) -> String {
        let mut s = self.who();
        if let Some(cmd) = self.command() {
            s.push_str(&format!(" ({cmd})"));
        }
        if self.stopped {
            s.push_str(" [stopped: it keeps the lock until continued]");
        }
        s
    }

    /// The command line, shell-quoted, if known.
    pub fn command(&self) -> Option<String> {
        self.cmdline.as_deref().map(join_args)
    }

    /// `pid 1234, thread 1235`; for a holder in a nested PID namespace, the id out here
    /// first: `pid 4321 (7 in its PID namespace)`.
    pub fn who(&self) -> String {
        if let (Some(seen), Some(own)) = (self.visible_pid, self.pid) {
            if seen != own {
                return format!("pid {seen} ({own} in its PID namespace)");
            }
        }
        match (self.pid, self.tid) {
            (Some(p), Some(t)) if p == t => format!("pid {p}"),
            (Some(p), Some(t)) => format!("pid {p}, thread {t}"),
            (Some(p), None) => format!("pid {p}"),
            (None, Some(t)) => format!("thread {t} of an unknown process"),
            (None, None) => "an unknown process".to_owned(),
        }
    }

    /// How long it has held: `for 12s` from the recorded time, or `for at least 3.1s`
    /// from when we first saw it; empty when unknown.
    pub fn held_for(&self) -> String {
        if let Some(d) = self.acquired.and_then(age) {
            format!(" for {}", human(d))
        } else if let Some(d) = self.first_seen.and_then(age).filter(|d| d.as_secs() >= 1) {
            format!(" for at least {}", human(d))
        } else {
            String::new()
        }
    }

    /// `acquired 2024-05-01T12:00:03.250Z` when known.
    pub fn since(&self) -> Option<String> {
        self.acquired.map(|t| format!("acquired {}", rfc3339(t)))
    }
}

/// The JSON form of a snapshot (documented in cli/README.md): the library's serde form of
/// `MutexInfo`, plus what the command works out: `state`, `abandoned`, and for the owner
/// `held_for_secs` and `cmdline`.
pub fn json(info: &MutexInfo) -> serde_json::Value {
    let state = State::of(info);
    let mut v = serde_json::to_value(info).expect("MutexInfo serializes");
    v["state"] = serde_json::json!(state);
    v["abandoned"] = serde_json::json!(state == State::Abandoned);
    if let (Some(owner), Some(o)) = (v.get_mut("owner").filter(|o| o.is_object()), &info.owner) {
        owner["held_for_secs"] =
            serde_json::json!(o.acquired.and_then(age).map(|d| d.as_secs_f64()));
        owner["cmdline"] = serde_json::json!(owner_cmdline(o));
    }
    v
}

/// A name as text a terminal shows on one line: control characters (a newline, an escape
/// sequence) are written as Rust escapes, `\n`, `\u{1b}`; everything else as it is.
pub fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn state_label(info: &MutexInfo) -> String {
    let mut s = State::of(info).as_str().to_owned();
    if info.owner.as_ref().is_some_and(|o| o.stopped) {
        s.push_str(",stopped");
    }
    if info.stale {
        s.push_str(",stale");
    }
    if info.kept_for_report {
        s.push_str(",kept");
    }
    s
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The table printed by `list` (nothing at all when there are no mutexes); `with_user`
/// adds a USER column (the uid whose namespace it is, for `list --all-users`).
pub fn table(infos: &[MutexInfo], with_user: bool) -> String {
    if infos.is_empty() {
        return String::new();
    }
    let header = [
        "USER", "NAME", "STATE", "PID", "TID", "COUNT", "WAITERS", "HANDLES", "HELD", "COMMAND",
    ];
    let rows: Vec<[String; 10]> = infos
        .iter()
        .map(|i| {
            let o = i.owner.as_ref();
            [
                i.creator_uid.to_string(),
                printable(&i.name),
                state_label(i),
                opt(o.and_then(|o| o.visible_pid.or(o.pid))),
                // A thread id is of the owner's namespace; its main thread's is the pid.
                opt(o.and_then(|o| match o.visible_pid {
                    Some(seen) if o.pid != Some(seen) => (o.tid == o.pid).then_some(seen),
                    _ => o.tid,
                })),
                i.count.to_string(),
                i.waiters.to_string(),
                i.handles.to_string(),
                opt(o.and_then(|o| o.acquired).and_then(age).map(human)),
                opt(o.and_then(owner_cmdline).map(|c| join_args(&c))),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let skip = usize::from(!with_user);
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (k, cell) in cells.iter().enumerate().skip(skip) {
            if k + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  ", w = widths[k]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// The block printed by `info NAME`.
pub fn block(info: &MutexInfo) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: String| out.push_str(&format!("{k:<15}{v}\n"));
    field("name:", printable(&info.name));
    field("state:", state_label(info));
    if let Some(o) = &info.owner {
        let holder = Holder::update(None, o);
        let mut who = holder.describe();
        if !o.same_pid_namespace && o.visible_pid.is_none() {
            who.push_str(" [another PID namespace, not visible from here]");
        }
        if !o.alive {
            who.push_str(" [dead]");
        }
        field("owner:", who);
        if let Some(uid) = o.uid {
            field("owner uid:", uid.to_string());
        }
        if let Some(t) = o.acquired {
            field(
                "acquired:",
                format!("{} ({} ago)", rfc3339(t), opt(age(t).map(human))),
            );
        }
    }
    field("count:", info.count.to_string());
    field("waiters:", info.waiters.to_string());
    field("handles:", info.handles.to_string());
    field(
        "created:",
        format!(
            "{} by uid {} pid {}",
            opt(info.created.map(rfc3339)),
            info.creator_uid,
            info.creator_pid
        ),
    );
    field("abandonments:", info.abandon_count.to_string());
    if let Some((pid, tid)) = info.last_abandoner {
        field("last abandoner:", format!("pid {pid}, thread {tid}"));
    }
    if let Some(note) = &info.abandon_note {
        field("abandon note:", printable(note));
    }
    if info.kept_for_report {
        field(
            "kept:",
            "until the next holder is told of the abandonment (no process has it open)".into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("Global\\a b"), "Global\\a b");
        assert_eq!(printable("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn args_are_quoted_when_needed() {
        let args = ["sh", "-c", "echo hi", "it's"].map(String::from);
        assert_eq!(join_args(&args), r"sh -c 'echo hi' 'it'\''s'");
    }
}
