//! The command on Windows (run under Wine from Linux, by .ci/windows.sh): `hold`, then
//! `list` and `info` read the kernel's objects (issue 17).

#![cfg(windows)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_namedmutex");
const WATCHDOG: Duration = Duration::from_secs(60);

fn run(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    support::wait_bounded(&mut child, WATCHDOG, &format!("namedmutex {args:?}"));
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn list_and_info_show_a_held_lock() {
    let name = format!("nmcli-win-{}", std::process::id());
    let mut holder = Command::new(BIN)
        .args(["hold", &name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("held {name}"));

    let (code, text) = run(&["info", "--json", &name]);
    assert_eq!(code, 1, "held: {text}");
    assert!(text.contains("\"state\": \"held\""), "{text}");
    let (code, text) = run(&["list"]);
    assert_eq!(code, 0);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&name) && l.contains("held")),
        "{text}"
    );

    drop(holder.stdin.take()); // releases and exits
    support::wait_bounded(&mut holder, WATCHDOG, "hold");
    let (code, text) = run(&["info", &name]);
    assert_eq!(code, 2, "gone with its last handle: {text}");
}
