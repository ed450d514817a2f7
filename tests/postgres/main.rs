//! Tests of the PostgreSQL backend that the behavioural suite cannot express: real client
//! processes SIGKILLed while holding, waiting and releasing; a backend terminated; a server
//! restarted; a client's network cut; fencing tokens; bad input (a wrong URL, a server that
//! is down, a role without grants, a schema of a future version, a transaction pooler); and
//! TLS (`tls.rs`).
//!
//! Needs a server: `NAMEDMUTEX_TEST_PG_URL` (a superuser's URL) and, for the restart test,
//! `NAMEDMUTEX_TEST_PG_DIR` (the directory `tools/pg-server.sh start` made). tools/test-all.sh
//! starts one. The binary re-executes itself with `--child COMMAND URL NAME` for the client
//! processes; every wait is bounded by `NAMEDMUTEX_TEST_WATCHDOG_SECS` (default 20).

mod child;
mod scenarios;
mod support;
mod tls;

use libtest_mimic::{Arguments, Trial};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child::run(&args[2..]);
    }
    if std::env::var("NAMEDMUTEX_TEST_PG_URL").is_err() {
        // `cargo test --workspace` builds this target too (the CLI turns the feature on);
        // tools/test-all.sh runs it again with a server, and there a missing URL fails.
        eprintln!(
            "postgres tests: skipped, NAMEDMUTEX_TEST_PG_URL is not set (start a server with `tools/pg-server.sh start DIR` and set it to the URL printed; tools/test-all.sh does this)"
        );
        std::process::exit(if std::env::var_os("NAMEDMUTEX_REQUIRE_PG").is_some() {
            2
        } else {
            0
        });
    }
    let trials: Vec<Trial> = scenarios::all()
        .into_iter()
        .chain(tls::all())
        .map(|(name, f)| Trial::test(name, move || support::bounded(name, f).map_err(Into::into)))
        .collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
