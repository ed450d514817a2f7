//! The client processes: `--child COMMAND URL NAME`.
//!
//! | command | does |
//! |---|---|
//! | `hold` | creates NAME, locks it, says `held TOKEN STATUS`, sleeps |
//! | `wait` | creates NAME, says `waiting`, locks it, says `got STATUS`, sleeps |
//! | `cycle` | creates NAME, says `cycling`, then locks and releases it forever |
//! | `once` | creates NAME, locks and releases it, says `done`, exits (its handle open) |
//! | `ahead` | creates NAME, says `opened`, reads a line: on `go` locks it, says `got STATUS`, reads a line and releases it; then exits |
//! | `netns-hold` | (in a new network namespace) waits for the interface `$NM_NETNS_IF`, gives it the address `$NM_NETNS_ADDR`, then as `hold` |

use namedmutex::{MutexOptions, WaitStatus};
use std::time::Duration;

fn say(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// The next line of standard input, trimmed (empty at its end).
fn read_line() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.trim().to_owned()
}

fn status(s: WaitStatus) -> &'static str {
    match s {
        WaitStatus::Abandoned => "abandoned",
        WaitStatus::Acquired => "acquired",
        WaitStatus::TimedOut => "timeout",
    }
}

pub fn run(args: &[String]) -> ! {
    // A client never outlives a stuck test for long.
    std::thread::spawn(|| {
        std::thread::sleep(crate::support::watchdog() * 6);
        std::process::exit(97);
    });
    let (command, url, name) = (args[0].as_str(), args[1].as_str(), args[2].as_str());
    if command == "netns-hold" {
        setup_netns();
    }
    let (m, _) = match MutexOptions::new().server(url).create(name) {
        Ok(m) => m,
        Err(e) => {
            say(&format!("error {e}"));
            std::process::exit(1);
        }
    };
    match command {
        "hold" | "netns-hold" => {
            let g = m.lock().expect("lock");
            say(&format!(
                "held {} {}",
                g.fencing_token().unwrap_or(0),
                if g.abandoned() {
                    "abandoned"
                } else {
                    "acquired"
                }
            ));
            std::mem::forget(g);
        }
        "wait" => {
            say("waiting");
            let s = m.wait(None).expect("wait");
            say(&format!("got {}", status(s)));
        }
        "once" => {
            // Takes and gives back, then exits as a program does (exit: its hooks run),
            // with its handle still open.
            m.wait(None).expect("wait");
            m.release().expect("release");
            say("done");
            std::process::exit(0);
        }
        "ahead" => {
            // The test looks at this process's sessions between the steps.
            say("opened");
            if read_line() == "go" {
                let s = m.wait(None).expect("wait");
                say(&format!("got {}", status(s)));
                read_line();
                m.release().expect("release");
            }
            std::process::exit(0);
        }
        "cycle" => {
            say("cycling");
            loop {
                m.wait(None).expect("wait");
                m.release().expect("release");
            }
        }
        other => panic!("unknown child command {other}"),
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Inside `unshare --net`: waits for the parent to move its interface in (named by
/// `NM_NETNS_IF`), and gives it its address (`NM_NETNS_ADDR`).
fn setup_netns() {
    let var = |v: &str| std::env::var(v).unwrap_or_else(|_| panic!("{v} is not set"));
    let (iface, addr) = (var("NM_NETNS_IF"), var("NM_NETNS_ADDR"));
    let started = std::time::Instant::now();
    // (Not /sys/class/net: /sys still shows the parent's namespace.)
    let arrived = || {
        std::process::Command::new("ip")
            .args(["link", "show", &iface])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    while !arrived() {
        assert!(
            started.elapsed() < crate::support::watchdog(),
            "{iface} never arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for args in [
        &["addr", "add", &addr, "dev", &iface][..],
        &["link", "set", &iface, "up"],
        &["link", "set", "lo", "up"],
    ] {
        let ok = std::process::Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip {args:?} failed");
    }
}
