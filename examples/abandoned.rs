//! Two processes share a named mutex; one dies while holding it, and the other is told.
//!
//! ```text
//! cargo run --example abandoned
//! ```
//!
//! The parent creates the mutex and starts a child (this same program). The child takes the
//! mutex three times (recursively) and says so; the parent starts waiting, then kills the
//! child with SIGKILL (TerminateProcess on Windows). The parent's wait returns
//! `WAIT_ABANDONED` at once: it owns the mutex now, with a count of 1, and knows that
//! whatever the mutex protected may be half-updated.

use namedmutex::{NamedMutex, WaitStatus};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, name] = args.as_slice() {
        if role == "child" {
            return child(name);
        }
    }
    let name = format!("Local\\namedmutex-demo-{}", std::process::id());
    let (mutex, existed) = NamedMutex::create(&name, false)?;
    println!("parent: created {name:?} (existed before: {existed})");

    let mut child = Command::new(std::env::current_exe()?)
        .args(["child", &name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let said = lines.next().transpose()?.unwrap_or_default();
    println!("child:  {said}");

    println!("parent: waiting for the mutex (up to 10 s), then killing the child");
    // The waiting thread becomes the owner, so the main thread waits and a helper kills.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100)); // let the wait block: only for the show
        let at = Instant::now();
        child.kill().expect("kill the child");
        let _ = child.wait();
        at
    });
    let status = mutex.wait(Some(Duration::from_secs(10)));
    let woke = Instant::now();
    let killed_at = (status, woke.duration_since(killer.join().expect("killer")));
    match killed_at {
        (Ok(WaitStatus::Abandoned), latency) => {
            println!(
                "parent: WAIT_ABANDONED ({:#x}) {latency:?} after the kill: the mutex is mine, count 1",
                WaitStatus::Abandoned.code()
            );
            mutex.release()?;
            assert!(mutex.release().is_err(), "one release was enough");
            println!("parent: released it once; the next owner will get WAIT_OBJECT_0");
            Ok(())
        }
        (other, _) => Err(format!("expected WAIT_ABANDONED, got {other:?}").into()),
    }
}

fn child(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mutex = NamedMutex::open(name)?;
    for _ in 0..3 {
        mutex.wait(None)?;
    }
    println!("holding {name:?} three times (pid {})", std::process::id());
    std::io::stdout().flush()?;
    // Hold it until killed (or until the parent goes away and stdin closes).
    for _ in std::io::stdin().lock().lines() {}
    Ok(())
}
