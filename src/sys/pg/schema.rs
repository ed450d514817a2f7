//! The schema `namedmutex` on the server: checked once per process and server, installed on
//! first use (schema.sql, then functions.sql, in one transaction, serialized between
//! installers), refused when its version (the data's layout) is not this library's, and its
//! functions brought up to this library's revision in place when they are older.

use super::sql_error::sql_error;
use crate::sys::contract::{Error, ErrorKind, Result};
use postgres::GenericClient;
use postgres::error::SqlState;
use std::collections::HashMap;
use std::sync::Mutex;

/// The version of schema.sql (the table's layout); a server with another refuses with
/// `Incompatible`.
pub(crate) const VERSION: i32 = 1;

/// The revision of functions.sql. Functions of an older revision are replaced (see
/// [`upgrade`]); newer ones are kept, since entry points keep their signatures.
pub(crate) const REVISION: i32 = 11;

/// The first revision whose `open_handle` can finish a create itself (`p_finish`).
pub(crate) const OPEN_FINISHES: i32 = 6;

/// The advisory lock (class, id) that serializes installers.
const INSTALL_LOCK: (i32, i32) = (1_852_665_600, 0);

/// The data: schema, table, sequence.
const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The functions, every one `CREATE OR REPLACE`.
const FUNCTIONS_SQL: &str = include_str!("functions.sql");

/// Run after functions.sql: every entry point runs as the installer, with a search path
/// nobody can plant objects in, and is granted to namedmutex_user (created when the
/// installer may); the helpers (`_name`) are granted to nobody.
const SECURE_SQL: &str = r#"
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'namedmutex'::regnamespace AND p.proname NOT LIKE '\_%' LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'namedmutex_user') THEN
        BEGIN
            CREATE ROLE namedmutex_user NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'namedmutex: cannot create role namedmutex_user; only the installer may use namedmutex';
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'namedmutex_user') THEN
        GRANT USAGE ON SCHEMA namedmutex TO namedmutex_user;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA namedmutex TO namedmutex_user;
        FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                 WHERE p.pronamespace = 'namedmutex'::regnamespace AND p.proname LIKE '\_%' LOOP
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM namedmutex_user', f);
        END LOOP;
    END IF;
END $$;
"#;

/// Servers this process has checked (by key), with the revision of their functions.
static CHECKED: Mutex<Option<HashMap<String, i32>>> = Mutex::new(None);

/// Makes sure `client`'s database has this library's schema, installing it when it has none
/// and upgrading its functions when they are older: the revision of its functions now
/// (older than [`REVISION`] where this role may not replace them).
pub(crate) fn ensure(server: &str, client: &mut postgres::Client) -> Result<i32> {
    match checked(server) {
        Some(revision) => Ok(revision),
        None => {
            let found = client.simple_query(PROBE);
            ensure_found(server, client, found)
        }
    }
}

/// The revision of `server`'s functions if this process has checked its schema already.
pub(crate) fn checked(server: &str) -> Option<i32> {
    CHECKED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|c| c.get(server).copied())
}

/// Looks at the schema in one round trip (run alone, or after a connection's check:
/// `Server::connect_and`): whether it is there, looked up rather than called (a call to a
/// function that does not exist yet would leave an ERROR in the server's log for every new
/// database), and if it is, its version and its functions' revision (revision 1 had no
/// revision()). The DO block hands them to the SELECT in a setting local to the one
/// transaction all statements of a simple query run in. Read-only: it runs on a standby
/// too, before the check passes it over.
const PROBE: &str = "DO $$ BEGIN \
         IF to_regprocedure('namedmutex.version()') IS NOT NULL THEN \
             IF to_regprocedure('namedmutex.revision()') IS NOT NULL THEN \
                 PERFORM set_config('namedmutex.found', \
                     namedmutex.version() || ' ' || namedmutex.revision(), true); \
             ELSE \
                 PERFORM set_config('namedmutex.found', namedmutex.version() || ' 1', true); \
             END IF; \
         END IF; \
     END $$; \
     SELECT current_setting('namedmutex.found', true)";

/// Whether [`PROBE`] found this library's schema as it is: the version and the revision of
/// this library (nothing to install or upgrade).
fn probe_found_current(found: &super::server::Answer) -> bool {
    let current = format!("{VERSION} {REVISION}");
    found.as_ref().is_ok_and(|messages| {
        messages.iter().any(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => row.get(0) == Some(current.as_str()),
            _ => false,
        })
    })
}

/// How many statements [`PROBE`] is (a DO block, then a SELECT).
const PROBE_STATEMENTS: usize = 2;

/// A connection to `server` with its schema checked (installed or upgraded where needed,
/// once per process), `then` (SQL, or "") run in the round trip of the connection's check,
/// after the schema's look where this process has not looked yet: the revision of the
/// server's functions, and `then`'s answer if it stands. It does not where the look found
/// the schema other than this library's (`None`): what `then` answered came before the
/// install or the upgrade, and the caller runs it again.
pub(crate) fn connect_checked(
    server: &super::server::Server,
    then: &str,
) -> Result<(postgres::Client, i32, Option<super::server::Answer>)> {
    if let Some(revision) = checked(&server.key) {
        let (client, answer) = server.connect_and(then)?;
        return Ok((client, revision, Some(answer)));
    }
    let both = if then.is_empty() {
        PROBE.to_owned()
    } else {
        format!("{PROBE}; {then}")
    };
    let (mut client, answer) = server.connect_and(&both)?;
    let (found, answer) = super::server::split_answer(answer, PROBE_STATEMENTS);
    let current = probe_found_current(&found);
    let revision = ensure_found(&server.key, &mut client, found)?;
    Ok((client, revision, current.then_some(answer)))
}

/// [`ensure`], given what [`PROBE`] answered on `client`.
fn ensure_found(
    server: &str,
    client: &mut postgres::Client,
    found: super::server::Answer,
) -> Result<i32> {
    if let Some(revision) = checked(server) {
        return Ok(revision);
    }
    let found = found.map_err(|e| {
        if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
            not_granted(server, client)
        } else {
            sql_error(server, "checking the namedmutex schema", e)
        }
    })?;
    let found = found.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or_default().to_owned()),
        _ => None,
    });
    // Unset (NULL), or empty where an earlier transaction of this session set it.
    let in_place = match found.as_deref().filter(|f| !f.is_empty()) {
        None => {
            install(server, client)?;
            revision(server, client)?
        }
        Some(found) => {
            let mut numbers = found.split(' ').map(str::parse::<i32>);
            let (Some(Ok(version)), Some(Ok(revision))) = (numbers.next(), numbers.next()) else {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "the namedmutex schema on PostgreSQL at {server} answered {found:?} for its version and revision"
                    ),
                ));
            };
            check_version(server, version)?;
            if revision < REVISION {
                upgrade(server, client)?;
                self::revision(server, client)?
            } else {
                revision
            }
        }
    };
    CHECKED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(server.to_owned(), in_place);
    Ok(in_place)
}

fn check_version(server: &str, version: i32) -> Result<()> {
    if version == VERSION {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Incompatible,
        format!(
            "the namedmutex schema on PostgreSQL at {server} is version {version}; this library knows version {VERSION} ({})",
            if version > VERSION {
                "upgrade the library"
            } else {
                "an older namedmutex installed it, and there is no upgrade path yet: with no mutex in use, `DROP SCHEMA namedmutex CASCADE` and let this version install its own"
            }
        ),
    ))
}

/// The revision of the installed functions (1: before functions had one).
fn revision(server: &str, client: &mut impl GenericClient) -> Result<i32> {
    let what = "checking the namedmutex functions";
    let present: bool = client
        .query_one(
            "SELECT to_regprocedure('namedmutex.revision()') IS NOT NULL",
            &[],
        )
        .map_err(|e| sql_error(server, what, e))?
        .get(0);
    if !present {
        return Ok(1);
    }
    Ok(client
        .query_one("SELECT namedmutex.revision()", &[])
        .map_err(|e| sql_error(server, what, e))?
        .get(0))
}

/// Replaces functions of an older revision with this library's, in one transaction (the
/// entry points keep their signatures and their grants, so sessions of older libraries go on
/// working). Only the functions' owner may: for any other role this leaves them as they are
/// (they do the same, more slowly) until their owner runs `namedmutex server-setup`.
fn upgrade(server: &str, client: &mut postgres::Client) -> Result<()> {
    let what = "upgrading the namedmutex functions";
    let mut tx = client
        .transaction()
        .map_err(|e| sql_error(server, what, e))?;
    match tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&INSTALL_LOCK.0, &INSTALL_LOCK.1],
    ) {
        Ok(_) => {}
        // After `server-setup --lock-down` only the installer may take the install lock.
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => return Ok(()),
        Err(e) => return Err(sql_error(server, what, e)),
    }
    // Looked at again under the lock: another process may have upgraded them meanwhile,
    // perhaps to a newer revision than this library's, which must stay.
    if revision(server, &mut tx)? >= REVISION {
        return Ok(());
    }
    let done = tx
        .batch_execute(FUNCTIONS_SQL)
        .and_then(|_| tx.batch_execute(SECURE_SQL));
    match done {
        Ok(()) => {}
        // Not the owner: the transaction rolls back when dropped.
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => return Ok(()),
        Err(e) => return Err(sql_error(server, what, e)),
    }
    tx.commit().map_err(|e| sql_error(server, what, e))
}

fn not_granted(server: &str, client: &mut postgres::Client) -> Error {
    let role = client
        .query_one("SELECT session_user::text", &[])
        .map(|r| r.get::<_, String>(0))
        .unwrap_or_else(|_| "this role".into());
    Error::new(
        ErrorKind::AccessDenied,
        format!(
            "role {role} may not use namedmutex on PostgreSQL at {server}: an administrator grants it with `GRANT namedmutex_user TO {role}`"
        ),
    )
}

/// Installs schema.sql and functions.sql, unless a concurrent installer did first.
fn install(server: &str, client: &mut postgres::Client) -> Result<()> {
    let what = "installing the namedmutex schema";
    let mut tx = client
        .transaction()
        .map_err(|e| sql_error(server, what, e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&INSTALL_LOCK.0, &INSTALL_LOCK.1],
    )
    .map_err(|e| sql_error(server, what, e))?;
    let present: bool = tx
        .query_one("SELECT to_regnamespace('namedmutex') IS NOT NULL", &[])
        .map_err(|e| sql_error(server, what, e))?
        .get(0);
    if !present {
        tx.batch_execute(SCHEMA_SQL).map_err(|e| {
            if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                Error::new(
                    ErrorKind::AccessDenied,
                    format!(
                        "the namedmutex schema is not installed on PostgreSQL at {server}, and this role may not create it: run `namedmutex server-setup --server URL` once as a role that may (the database's owner)"
                    ),
                )
            } else {
                sql_error(server, what, e)
            }
        })?;
        tx.batch_execute(FUNCTIONS_SQL)
            .and_then(|_| tx.batch_execute(SECURE_SQL))
            .map_err(|e| sql_error(server, what, e))?;
    }
    let version: i32 = tx
        .query_one("SELECT namedmutex.version()", &[])
        .map_err(|e| sql_error(server, what, e))?
        .get(0);
    let revision = revision(server, &mut tx)?;
    tx.commit().map_err(|e| sql_error(server, what, e))?;
    check_version(server, version)?;
    if revision < REVISION {
        // A concurrent installer of an older library was first.
        upgrade(server, client)?;
    }
    Ok(())
}

/// Installs the schema if needed, then (with `lock_down`) revokes PostgreSQL's own advisory
/// lock functions from PUBLIC, so that only roles granted namedmutex_user (through the
/// schema's functions) can take a lock key at all (`namedmutex server-setup`). Needs a
/// superuser for `lock_down`; meant for a database dedicated to namedmutex.
pub(crate) fn setup(server: &str, client: &mut postgres::Client, lock_down: bool) -> Result<()> {
    ensure(server, client)?;
    if lock_down {
        client
            .batch_execute(
                r#"
                DO $$
                DECLARE f regprocedure;
                BEGIN
                    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                             WHERE p.pronamespace = 'pg_catalog'::regnamespace
                               AND p.proname ~ '^pg_(try_)?advisory_(xact_)?lock' LOOP
                        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
                    END LOOP;
                END $$;
                "#,
            )
            .map_err(|e| {
                sql_error(
                    server,
                    "revoking the advisory lock functions from PUBLIC",
                    e,
                )
            })?;
    }
    Ok(())
}
