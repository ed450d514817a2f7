//! `list`, `info` and `prune` on a server: what functions.sql's `list` reads from the rows and
//! from `pg_locks` (handles, waiters, whether the owner's session still holds the lock).

use super::handles;
use super::{PgMutex, server_of};
use crate::sys::contract::{Error, ErrorKind, Result};
use crate::sys::contract::{MutexInfo, OwnerInfo};
use crate::sys::contract::{Name, Namespace};
use crate::sys::{Inspect, Spec, Swept};
use postgres::types::Type;
use std::time::SystemTime;

const LIST: &str = "SELECT name, creator, everyone, accessible, created_at, handles, waiters, \
     owner_alive, held, holder_host, holder_pid, holder_tid, acquired_at, token, note, \
     abandon_count, last_abandoner_pid, last_abandoner_tid, last_abandon_note \
     FROM namedmutex.list($1, $2)";

fn info_of(row: &postgres::Row, namespace: Namespace) -> MutexInfo {
    let owner_alive: bool = row.get("owner_alive");
    let held: bool = row.get("held");
    let host: Option<String> = row.get("holder_host");
    let same_host = host.as_deref() == Some(super::host_name().as_str());
    let pid = row.get::<_, Option<i32>>("holder_pid").map(|p| p as u32);
    let owner = (held || owner_alive).then(|| OwnerInfo {
        pid,
        tid: row.get::<_, Option<i32>>("holder_tid").map(|t| t as u32),
        same_pid_namespace: same_host,
        uid: None,
        acquired: row.get::<_, Option<SystemTime>>("acquired_at"),
        alive: owner_alive,
        visible_pid: pid.filter(|_| same_host),
        stopped: false,
    });
    let mut info = MutexInfo::inaccessible(
        row.get("name"),
        namespace,
        0,
        row.get::<_, i32>("handles") as u32,
    );
    info.accessible = row.get("accessible");
    if !info.accessible {
        return info;
    }
    info.owner = owner;
    info.count = u32::from(owner_alive);
    info.waiters = row.get::<_, i32>("waiters") as u32;
    info.created = row.get("created_at");
    info.abandon_count = row.get::<_, i32>("abandon_count") as u32;
    // An owner that died and whose death nobody has been told of yet is the last
    // abandoner already; otherwise the row remembers the last one an acquirer was told of.
    if held && !owner_alive {
        info.last_abandoner = pid.zip(row.get::<_, Option<i32>>("holder_tid").map(|t| t as u32));
        info.abandon_note = row.get("note");
    } else {
        let pid = row
            .get::<_, Option<i32>>("last_abandoner_pid")
            .map(|p| p as u32);
        let tid = row
            .get::<_, Option<i32>>("last_abandoner_tid")
            .map(|t| t as u32);
        info.last_abandoner = pid.zip(tid);
        info.abandon_note = row.get("last_abandon_note");
    }
    info.kept_for_report = held && !owner_alive;
    info
}

impl Inspect for PgMutex {
    fn list(spec: &Spec, namespace: Namespace) -> Result<Vec<MutexInfo>> {
        let server = server_of(spec)?;
        let global = namespace == Namespace::Global;
        let rows = handles::query(
            &server,
            LIST,
            &[(&global, Type::BOOL), (&None::<String>, Type::TEXT)],
            "listing mutexes",
        )?;
        Ok(rows
            .iter()
            .filter(|r| !r.get::<_, String>("name").starts_with('\\'))
            .map(|r| info_of(r, namespace))
            .collect())
    }

    fn info(spec: &Spec, name: &Name<'_>) -> Result<Option<MutexInfo>> {
        let server = server_of(spec)?;
        let global = name.namespace == Namespace::Global;
        let rows = handles::query(
            &server,
            LIST,
            &[(&global, Type::BOOL), (&Some(name.object), Type::TEXT)],
            "looking at a mutex",
        )?;
        Ok(rows.first().map(|r| info_of(r, name.namespace)))
    }

    fn list_all_users(_spec: &Spec) -> Result<(Vec<MutexInfo>, Vec<u32>)> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "listing every role's Local\\ mutexes is not available on a PostgreSQL server",
        ))
    }

    fn prune(spec: &Spec, namespace: Namespace) -> Result<Swept> {
        let server = server_of(spec)?;
        let global = namespace == Namespace::Global;
        let rows = handles::query(
            &server,
            "SELECT removed, kept FROM namedmutex.prune($1, $2)",
            &[(&global, Type::BOOL), (&!spec.keep_abandoned, Type::BOOL)],
            "pruning",
        )?;
        let row = rows
            .first()
            .ok_or_else(|| Error::new(ErrorKind::Corrupt, "namedmutex.prune answered nothing"))?;
        Ok(Swept {
            removed: row.get::<_, i32>(0) as u32,
            kept_for_report: row.get::<_, i32>(1) as u32,
            ..Swept::default()
        })
    }
}
