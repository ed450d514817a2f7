//! The roles a child process can play (`--child ROLE args...`).

use std::io::BufRead;

pub fn run(args: &[String]) -> i32 {
    let rest = &args[1.min(args.len())..];
    match args.first().map(String::as_str).unwrap_or("") {
        "chaos" => crate::chaos::child(rest),
        "contend" => crate::fault::contend(rest),
        "victim" => crate::fault::victim(rest),
        "usable" => crate::fault::usable_child(rest),
        "capacity" => crate::fault::capacity_child(rest),
        "hold" => hold(rest),
        "hold-many" => crate::residue::hold_many(rest),
        "wait-once" => crate::residue::wait_once(rest),
        "lock-stop" => crate::residue::lock_stop(rest),
        "fill" => crate::exhaust::fill(rest),
        "register-once" => crate::exhaust::register_once(rest),
        "try-root" => crate::exhaust::try_root(rest),
        "fullfs" => crate::exhaust::fullfs(rest),
        "nofile" => crate::exhaust::nofile(rest),
        "mutate" => crate::badfiles::mutate(rest),
        "hostile" => crate::hostile::child(rest),
        other => {
            eprintln!("unknown child role {other:?}");
            2
        }
    }
}

/// `--child hold NAME DEPTH [keep]`: creates NAME (keeping it for an abandonment report
/// with `keep`), acquires it DEPTH times, says `holding`, and keeps it until stdin closes;
/// then releases and says `released`.
fn hold(args: &[String]) -> i32 {
    let depth: u32 = args[1].parse().unwrap_or(1);
    let keep = args.get(2).is_some_and(|a| a == "keep");
    let (m, _) = namedmutex::MutexOptions::new()
        .keep_abandoned(keep)
        .create(&args[0])
        .expect("create");
    for _ in 0..depth {
        assert!(m.wait(None).expect("wait").is_acquired());
    }
    println!("holding {}", std::process::id());
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    for _ in 0..depth {
        m.release().expect("release");
    }
    println!("released");
    0
}
