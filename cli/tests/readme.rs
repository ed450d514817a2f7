//! The shell examples of cli/README.md and README.md, run as they are written: each
//! ```sh or ```bash block in a bash of its own, with `namedmutex` on the PATH, a fresh
//! namespace root and home, and stand-ins for the programs the examples lock around
//! (`./deploy.sh`, `rsync`, `apt-get`, ...). A block must end with status 0 and print
//! nothing on stderr but what a user would expect of it. A block preceded by
//! `<!-- not run: why -->` is skipped, and the reason printed.

#![cfg(target_os = "linux")]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_namedmutex");
const WATCHDOG: Duration = Duration::from_secs(30);

/// A shell block of a Markdown file: where it starts, and its text.
struct Block {
    place: String,
    text: String,
}

/// The blocks of `file` to run; skipped ones are printed with their reason.
fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut found = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut previous = "";
    while let Some((n, line)) = lines.next() {
        if line == "```sh" || line == "```bash" {
            let body: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| !l.starts_with("```"))
                .collect();
            let place = format!("{}:{}", file.display(), n + 1);
            if let Some(why) = previous.strip_prefix("<!-- not run:") {
                println!("{place}: not run:{}", why.trim_end_matches("-->"));
            } else {
                found.push(Block {
                    place,
                    text: body.join("\n"),
                });
            }
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    found
}

/// A cron line (`*/5 * * * *  command`) as the command cron would run; an absolute path
/// to a script of the user's as the stand-in on the PATH.
fn as_shell(block: &str) -> String {
    block
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let schedule = fields.len() > 5
                && fields[..5]
                    .iter()
                    .all(|f| f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c)));
            let line = if schedule {
                fields[5..].join(" ")
            } else {
                line.to_owned()
            };
            line.replace("/usr/local/bin/", "")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn executable(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A scratch world for one block: root, home, a working directory with the user's
/// scripts, and a bin directory with `namedmutex` and the programs the examples call.
fn world(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("namedmutex-readme-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["root", "home", "work", "bin"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::set_permissions(dir.join("root"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(BIN, dir.join("bin/namedmutex")).unwrap();
    for program in ["rsync", "apt-get"] {
        executable(
            &dir.join("bin").join(program),
            "#!/bin/sh\necho \"$0 $*\" > /dev/null\n",
        );
    }
    for script in [
        "deploy.sh",
        "migrate.sh",
        "job.sh",
        "sync.sh",
        "step1",
        "step2",
    ] {
        executable(&dir.join("work").join(script), "#!/bin/sh\nexit 0\n");
    }
    std::fs::create_dir_all(dir.join("home/.local/share/bash-completion/completions")).unwrap();
    dir
}

fn run_block(block: &Block, n: usize) {
    let dir = world(&n.to_string());
    let path = format!(
        "{}:{}:{}",
        dir.join("bin").display(),
        dir.join("work").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(as_shell(&block.text))
        .current_dir(dir.join("work"))
        .env("PATH", path)
        .env("HOME", dir.join("home"))
        .env("NAMEDMUTEX_ROOT", dir.join("root"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    support::wait_bounded(&mut child, WATCHDOG, &block.place);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}: exit {:?}\nstdout:\n{}\nstderr:\n{stderr}",
        block.place,
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.trim().is_empty(),
        "{}: unexpected stderr:\n{stderr}",
        block.place
    );
}

#[test]
fn shell_examples_run() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut all = blocks(&top.join("cli/README.md"));
    all.extend(blocks(&top.join("README.md")));
    assert!(all.len() >= 4, "only {} shell blocks found", all.len());
    for (n, block) in all.iter().enumerate() {
        run_block(block, n);
    }
}
