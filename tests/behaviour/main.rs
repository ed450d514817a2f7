//! The behavioural test suite of namedmutex: semantics.md sections 1 to 8, row by row,
//! through the public API only, on every backend (Linux natively, Windows under Wine).
//!
//! Run with `cargo test --test behaviour` (filters and `--test-threads` work as usual).
//! The binary re-executes itself with `--child LABEL` for the multi-process tests; see
//! child.rs for the protocol. On Linux the whole run, children included, uses a fresh
//! `NAMEDMUTEX_ROOT` under the temporary directory, removed at the end after checking
//! that no object file was left behind.
//!
//! Environment: `NAMEDMUTEX_TEST_WATCHDOG_SECS` (default 20) bounds every wait for an
//! answer; `NAMEDMUTEX_UNDER_WINE=1` makes the Windows build expect Wine's answers where
//! semantics.md lists a known Wine difference (and print it).

mod util;

mod abandonment;
mod async_tasks;
mod child;
mod create_open;
mod inspect;
mod lifetime;
mod multi_wait;
mod names;
mod namespaces;
mod ownership;
mod sharing;
mod waiting;

use libtest_mimic::{Arguments, Trial};
use util::TestResult;

/// A trial running `f` bounded by the per-trial watchdog.
pub fn trial(name: &str, f: fn() -> TestResult) -> Trial {
    let owned = name.to_owned();
    Trial::test(name, move || {
        util::run_bounded(&owned, f).map_err(Into::into)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child::run(args.get(2).map_or("child", String::as_str));
    }

    #[cfg(unix)]
    let root = setup_root();

    let mut trials = Vec::new();
    trials.extend(names::trials());
    trials.extend(create_open::trials());
    trials.extend(ownership::trials());
    trials.extend(waiting::trials());
    trials.extend(abandonment::trials());
    trials.extend(lifetime::trials());
    trials.extend(sharing::trials());
    trials.extend(namespaces::trials());
    trials.extend(multi_wait::trials());
    trials.extend(async_tasks::trials());
    trials.extend(inspect::trials());

    if util::on_server() {
        trials = server_trials(trials);
    }

    let args = Arguments::from_args();
    let conclusion = libtest_mimic::run(&args, trials);

    #[cfg(unix)]
    let conclusion = {
        // After every trial (and every child) has ended: nothing may remain in the root.
        // This runs whatever the filter, unless only listing.
        let second = (!args.list).then(|| {
            let final_args = Arguments {
                test_threads: Some(1),
                filter: None,
                skip: Vec::new(),
                exact: false,
                ignored: false,
                include_ignored: false,
                ..args.clone()
            };
            let check = trial(
                "zz_final::no_object_files_remain",
                lifetime::no_object_files_remain_in_root,
            );
            libtest_mimic::run(&final_args, vec![check])
        });
        drop(root);
        match second {
            Some(c) if c.has_failed() => c,
            _ => conclusion,
        }
    };
    conclusion.exit();
}

/// The trials that do not apply to a mutex on a PostgreSQL server, and why (README,
/// "Across machines"). Each is marked ignored, so the run lists it.
const NOT_ON_A_SERVER: &[(&str, &str)] = &[
    (
        "names::other_object_kind_is_invalid_handle_6",
        "plants an object file",
    ),
    (
        "names::any_other_character_is_allowed_and_exact",
        "checks file names",
    ),
    (
        "create_open::synchapi_create_mutex_and_open_mutex",
        "inheritable handles",
    ),
    (
        "lifetime::no_files_remain_after_the_last_close",
        "counts object files",
    ),
    (
        "sharing::inheritable_unnamed_mutex_used_by_a_child",
        "inheritable handles",
    ),
    (
        "sharing::inheritable_named_handle_reaches_the_same_object",
        "inheritable handles",
    ),
    (
        "namespaces::security_choices_for_global_objects",
        "file modes",
    ),
    (
        "namespaces::symlinks_in_the_namespace_are_not_followed",
        "files",
    ),
    (
        "namespaces::other_users_cannot_reach_local_or_private_global",
        "Local\\ is per database role, and the other OS user connects as the same role (tests/postgres covers a second role)",
    ),
];

/// `trials`, with those of [`NOT_ON_A_SERVER`] marked ignored.
fn server_trials(trials: Vec<Trial>) -> Vec<Trial> {
    trials
        .into_iter()
        .map(
            |t| match NOT_ON_A_SERVER.iter().find(|(n, _)| *n == t.name()) {
                Some((_, why)) => t
                    .with_ignored_flag(true)
                    .with_kind(format!("not on a server: {why}")),
                None => t,
            },
        )
        .collect()
}

/// The run's namespace root, checked at the end.
#[cfg(unix)]
static FINAL_ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// The run's namespace root (`NAMEDMUTEX_ROOT` of this process and its children).
#[cfg(unix)]
pub fn final_root() -> Option<&'static std::path::Path> {
    FINAL_ROOT.get().map(|p| p.as_path())
}

/// Creates the run's private namespace root and points `NAMEDMUTEX_ROOT` at it, before
/// any thread or child exists.
#[cfg(unix)]
fn setup_root() -> util::TempRoot {
    let root = util::TempRoot::new("root").expect("create the test namespace root");
    // SAFETY: called first thing in main, before this process starts any thread, so no
    // other thread can read the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("NAMEDMUTEX_ROOT", &root.path);
    }
    let _ = FINAL_ROOT.set(root.path.clone());
    root
}
