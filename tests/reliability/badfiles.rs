//! Damaged object files: the `Global\` variants of the cases of `damaged_pages` in
//! `tests/support/linux.rs` (truncated, oversized, wrong version, wrong kind, garbage), plus
//! a wrong namespace, and 200 random mutations of a valid page, half of them
//! written as a stale file and half written in place under a live object that another
//! process holds open. Every case must either work or be refused with
//! `Incompatible`/`Corrupt`/`TypeMismatch` (a stale file that passes the checks is removed
//! like any stale object: `NotFound` for open). Never a crash, never a hang: the cases run
//! in a child, each answer bounded by the watchdog. `NAMEDMUTEX_MUTATION_SEED` replays a run.

use crate::support::*;
use libtest_mimic::Trial;
use namedmutex::{ErrorKind, MutexOptions, NamedMutex, WaitStatus};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("badfiles::global_namespace_variants", global_variants),
        Trial::test("badfiles::random_mutations", random_mutations),
    ]
}

fn global_path(root: &Path, object: &str) -> PathBuf {
    root.join(format!("namedmutex-global.{object}"))
}

fn valid_page(opts: &MutexOptions, name: &str, path: &Path) -> Vec<u8> {
    let (m, _) = opts.create(name).unwrap();
    let bytes = std::fs::read(path).unwrap();
    drop(m);
    bytes
}

fn global_variants() -> TestResult {
    let root = fresh_root("bad-global");
    let opts = MutexOptions::new().root(&root);
    let good = valid_page(&opts, "Global\\victim", &global_path(&root, "victim"));
    let local_good = valid_page(&opts, "victim", &local_dir(&root).join("victim"));
    // A valid Local page renamed into the Global namespace: the name matches, the flag not.
    let mut wrong_ns = local_good.clone();
    wrong_ns[at("NAME")..at("NAME") + 9].copy_from_slice(b"wrong-ns\0");
    wrong_ns[20..24].copy_from_slice(&8u32.to_le_bytes());
    let mut cases = damaged_pages(&good);
    cases.push(("wrong-ns", wrong_ns, ErrorKind::Corrupt));
    for (object, bytes, want) in cases {
        let name = format!("Global\\{object}");
        check_refused(&opts, &name, &global_path(&root, object), &bytes, want)?;
        // Nothing else disturbed: the Local object of the same name is independent.
        let (m, existed) = opts.create(object)?;
        check(!existed, || format!("Local {object} existed"))?;
        check(
            m.wait(Some(Duration::ZERO))? == WaitStatus::Acquired,
            || "local twin not free".into(),
        )?;
        m.release()?;
    }
    Ok(())
}

// ----- random mutations ------------------------------------------------------------------

const CASES: u64 = 200;

fn random_mutations() -> TestResult {
    let seed: u64 = std::env::var("NAMEDMUTEX_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Rng::from_time().next() % 1_000_000);
    let root = fresh_root("mutate");
    let root_s = root.to_str().unwrap();
    let env = [("NAMEDMUTEX_ROOT", root_s)];
    let mut holder = Peer::spawn("hostile", &["hold-many"], &env);
    let mut mutator = Peer::spawn("mutate", &[root_s], &env);
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    for k in 0..CASES {
        let case_seed = seed.wrapping_mul(1000).wrapping_add(k);
        let global = k % 4 >= 2;
        let name = if global {
            format!("Global\\mut-{k}")
        } else {
            format!("mut-{k}")
        };
        let live = k % 2 == 1;
        if live {
            holder.send(&format!("hold {name}"));
            let line = holder.expect("held")?;
            check(line == format!("held {name}"), || line.clone())?;
        }
        mutator.send(&format!(
            "{} {name} {case_seed}",
            if live { "live" } else { "stale" }
        ));
        let line = mutator.expect_line().map_err(|e| {
            format!("case {k} (seed {case_seed}, replay with NAMEDMUTEX_MUTATION_SEED={seed}): {e}")
        })?;
        let Some(rest) = line.strip_prefix("result ") else {
            return Err(format!(
                "case {k}: the mutator said {line:?} (replay with NAMEDMUTEX_MUTATION_SEED={seed})"
            )
            .into());
        };
        let (outcome, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        if outcome.starts_with("BAD") {
            return Err(format!(
                "case {k} ({}): {detail} (replay with NAMEDMUTEX_MUTATION_SEED={seed})",
                if live { "live" } else { "stale" }
            )
            .into());
        }
        *tally
            .entry(format!("{} {outcome}", if live { "live" } else { "stale" }))
            .or_default() += 1;
    }
    let code = mutator.finish()?;
    check(code == 0, || format!("the mutator exited with {code}"))?;
    let code = holder.finish()?;
    check(code == 0, || {
        format!("the process holding the damaged objects failed at close ({code})")
    })?;
    println!("  seed {seed}, {CASES} mutations: {tally:?}");
    Ok(())
}

fn object_path(root: &Path, name: &str) -> PathBuf {
    match name.strip_prefix("Global\\") {
        Some(object) => global_path(root, object),
        None => local_dir(root).join(name),
    }
}

/// Mutates `page` in place; `resize` allows changing its length. Returns a description.
fn mutate_page(page: &mut Vec<u8>, rng: &mut Rng, resize: bool) -> String {
    const INTERESTING: [u32; 10] = [
        0,
        1,
        2,
        3,
        0x7FFF_FFFF,
        0x8000_0000,
        u32::MAX,
        1024,
        1025,
        4096,
    ];
    let kinds = if resize { 6 } else { 5 };
    match rng.below(kinds) {
        0 => {
            let n = 1 + rng.below(8);
            for _ in 0..n {
                let at = if rng.one_in(4) {
                    rng.below(4096)
                } else {
                    rng.below(640)
                } as usize;
                page[at] ^= 1 << rng.below(8);
            }
            format!("{n} bit flips")
        }
        1 => {
            let at = 4 * rng.below(32) as usize;
            let v = if rng.one_in(3) {
                rng.next() as u32
            } else {
                INTERESTING[rng.below(10) as usize]
            };
            page[at..at + 4].copy_from_slice(&v.to_le_bytes());
            format!("u32 at {at} = {v:#x}")
        }
        2 => {
            let start = rng.below(4096) as usize;
            let len = (1 + rng.below(256) as usize).min(4096 - start);
            for b in &mut page[start..start + len] {
                *b = rng.next() as u8;
            }
            format!("{len} random bytes at {start}")
        }
        3 => {
            let v = rng.next();
            let (lock, count) = (at("LOCK"), at("COUNT"));
            page[lock..lock + 8].copy_from_slice(&v.to_le_bytes());
            let c = INTERESTING[rng.below(10) as usize];
            page[count..count + 4].copy_from_slice(&c.to_le_bytes());
            format!("lock word {v:#x}, count {c:#x}")
        }
        4 => {
            // The user table: full of strangers, or pointing the lock word at a stranger.
            for i in 0..64 {
                let uid_plus_one = 1 + rng.below(1 << 20) as u32;
                let entry = at("USERS") + 4 * i;
                page[entry..entry + 4].copy_from_slice(&uid_plus_one.to_le_bytes());
            }
            "user table full of other uids".into()
        }
        _ => {
            let len = if rng.one_in(2) {
                rng.below(4096) as usize
            } else {
                4096 + 1 + rng.below(8192) as usize
            };
            page.resize(len, 0);
            format!("length {len}")
        }
    }
}

fn is_refusal(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Incompatible | ErrorKind::Corrupt | ErrorKind::TypeMismatch
    )
}

/// Runs one case; returns `outcome detail`, with outcome `BAD...` when not allowed.
fn one_case(root: &Path, live: bool, name: &str, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let path = object_path(root, name);
    let opts = MutexOptions::new();
    let original = if live {
        std::fs::read(&path).unwrap()
    } else {
        let (m, _) = opts.create(name).unwrap();
        let b = std::fs::read(&path).unwrap();
        drop(m);
        b
    };
    let mut page = original.clone();
    let what = mutate_page(&mut page, &mut rng, !live);
    if live {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&page, 0).unwrap();
    } else {
        std::fs::write(&path, &page).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let result = if live || rng.one_in(2) {
        opts.open(name)
    } else {
        opts.create(name).map(|(m, _)| m)
    };
    match result {
        Ok(m) => {
            // Use it: every wait is bounded, and must not crash whatever the page says.
            let status = m.wait(Some(Duration::from_millis(10)));
            if let Ok(s) = &status {
                if s.is_acquired() {
                    let _ = m.release();
                }
            }
            let info = namedmutex::info(name);
            drop(m);
            match status {
                Ok(_) | Err(_) if info.is_ok() => format!("opened ({what})"),
                _ => format!("BAD info failed after open: {info:?} ({what})"),
            }
        }
        Err(e) if is_refusal(e.kind()) => {
            if !live && std::fs::read(&path).ok().as_deref() != Some(&page[..]) {
                return format!("BAD a refused file was changed ({what})");
            }
            format!("{:?} ({what})", e.kind())
        }
        Err(e) if e.kind() == ErrorKind::NotFound && !live => format!("stale-removed ({what})"),
        Err(e) if e.kind() == ErrorKind::ResourceExhausted && what.contains("user table") => {
            format!("table-full ({what})")
        }
        Err(e) => format!("BAD {:?}: {e} ({what})", e.kind()),
    }
}

/// `--child mutate ROOT`: runs the cases the parent sends (`stale|live NAME SEED`).
pub fn mutate(args: &[String]) -> i32 {
    use std::io::Write;
    let root = PathBuf::from(&args[0]);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut parts = line.split(' ');
        let (Some(mode), Some(name), Some(seed)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let seed: u64 = seed.parse().unwrap();
        let answer = one_case(&root, mode == "live", name, seed);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "result {answer}");
        let _ = out.flush();
    }
    let _ = NamedMutex::create_unnamed(false); // still alive and working
    0
}

/// The offset of an object page's field, from the crate's typed format.
fn at(field: &str) -> usize {
    namedmutex::__format::offset(namedmutex::__format::OBJECT_FIELDS, field)
}
