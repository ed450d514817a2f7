//! `namedmutex`: named mutexes for shells, scripts, cron and CI.
//!
//! A thin client of the `namedmutex` library: `run` a command under a lock (a better
//! `flock(1)`: names instead of paths, timeouts, honest reports when a holder died), `hold`
//! and `wait` for scripts, and `list` and `info` to see who holds what. See cli/README.md.

/// The examples at the end of `namedmutex --help`.
macro_rules! main_examples {
    () => {
        "Examples:
  namedmutex run nightly -- ./backup.sh              one backup at a time
  namedmutex run -t 0 deploy -- ./deploy.sh          give up at once if one is running
  namedmutex run -t 10m -E 0 cron-job -- ./job.sh    wait up to 10 min, then skip quietly
  namedmutex list                                    who holds what
  namedmutex info -q deploy; echo $?                 0 free, 1 held, 2 absent, 3 abandoned
  namedmutex completions bash > ~/.local/share/bash-completion/completions/namedmutex
"
    };
}

/// The exit-status table (kept in step with the constants in `exit` and cli/README.md).
macro_rules! exit_table {
    () => {
        "Exit status:
  0        success (run: the command's own status passes through)
  1        info: held by a live owner          2  info: no such mutex
  3        info: abandoned (owner died; the next acquirer is told)
  64       usage error: bad option, argument or duration
  65       bad mutex name (Local\\, Global\\a\\b, too long, empty)
  69       not supported on this platform, or a root on NFS, CIFS or FUSE
  70       other error (I/O, corrupt or incompatible object, ...)
  75       timed out waiting for the lock (change with --conflict-exit-code)
  77       permission denied
  79       the previous holder died holding the lock (run/hold --on-abandoned fail; wait)
  126/127  run: the command cannot be executed / was not found
  128+N    run: the command was killed by signal N; run/hold/wait: ended by signal N"
    };
}

mod acquire;
mod command;
mod duration;
mod exit;
mod report;
mod signals;

use acquire::{Acquire, Outcome, abandoned_message, timeout_message};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use exit::Failure;
use namedmutex::{MutexOptions, NamedMutex, Namespace, Security};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const ABOUT: &str = "Named mutexes for shells, scripts, cron and CI: a better flock(1)";

const LONG_ABOUT: &str = "\
Named mutexes for shells, scripts, cron and CI: a better flock(1).

A mutex is known by its name, not by a file: `build` (or `Local\\build`) is private to your
user, `Global\\build` is shared by every user of the machine. A mutex exists while some
process has it open and disappears with the last one. It has one holder at a time;
when the owner dies without releasing it (even by SIGKILL), the next process to take it is
told: the lock is \"abandoned\" and whatever it protects may be half-done. run, hold and
wait keep an abandoned mutex until that report has been given, even if nobody else had it
open.

Objects live under $NAMEDMUTEX_ROOT (default /dev/shm); processes share mutexes only when
they use the same root. With --server URL (or $NAMEDMUTEX_SERVER) they live on a PostgreSQL
server instead, shared by every host that reaches it: the same commands, the same reports.";

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "namedmutex",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = concat!(main_examples!(), "\n", exit_table!()),
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    /// The directory that holds the mutexes (default: $NAMEDMUTEX_ROOT, else /dev/shm).
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "server")]
    root: Option<PathBuf>,
    /// Keep the mutexes on this PostgreSQL server (postgresql://user@host:port/db), shared
    /// by every host that reaches it, instead of on this machine. What it leaves out comes
    /// from libpq's environment ($PGHOST, $PGUSER, $PGSSLMODE, ...); the password from
    /// $PGPASSWORD, else ~/.pgpass or $PGPASSFILE (mode 600). TLS as libpq reads it:
    /// ?sslmode=verify-full&sslrootcert=CA.pem (and sslcert, sslkey).
    #[arg(long, global = true, value_name = "URL", env = "NAMEDMUTEX_SERVER")]
    server: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a command while holding the lock; its exit status passes through.
    #[command(after_help = RUN_AFTER)]
    Run(RunArgs),
    /// Take the lock and keep it until stdin closes or a signal arrives.
    #[command(after_help = HOLD_AFTER)]
    Hold(HoldArgs),
    /// Wait until the lock can be taken, then release it at once.
    #[command(after_help = WAIT_AFTER)]
    Wait(WaitArgs),
    /// List the mutexes of a namespace: state, owner, count, waiters, handles.
    #[command(visible_alias = "ls", after_help = LIST_AFTER)]
    List(ListArgs),
    /// Show one mutex; the exit status says free (0), held (1), absent (2), abandoned (3).
    #[command(after_help = INFO_AFTER)]
    Info(InfoArgs),
    /// Remove the files of mutexes that no process has open any more (for cron).
    #[command(after_help = PRUNE_AFTER)]
    Prune(PruneArgs),
    /// Install namedmutex's schema on the --server database (first use does it by itself,
    /// when the role may create schemas).
    #[command(name = "server-setup", after_help = SERVER_SETUP_AFTER)]
    ServerSetup {
        /// Also revoke PostgreSQL's own advisory lock functions from PUBLIC, so that no role
        /// can take a namedmutex lock key directly (superuser; a database of its own).
        #[arg(long)]
        lock_down: bool,
    },
    /// Print a shell completion script.
    #[command(after_help = COMPLETIONS_AFTER)]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff), made from this command's own help.
    #[command(after_help = MANPAGE_AFTER)]
    Manpage {
        /// The subcommand's page (namedmutex-run(1), ...) instead of namedmutex(1).
        #[arg(value_name = "SUBCOMMAND")]
        subcommand: Option<String>,
    },
}

const SERVER_SETUP_AFTER: &str = "\
Examples:
  namedmutex --server postgresql://admin@db/locks server-setup
      Install the schema once, as a role that may; then, in psql:
      GRANT namedmutex_user TO app;

Exit status: 0 installed (or already there), 64 without --server, 69 server unreachable,
77 not allowed, 70 a schema of another version.";

const MANPAGE_AFTER: &str = "\
Examples:
  namedmutex manpage | man -l -
  mkdir -p ~/.local/share/man/man1
  namedmutex manpage > ~/.local/share/man/man1/namedmutex.1
  for s in run hold wait list info; do
    namedmutex manpage $s > ~/.local/share/man/man1/namedmutex-$s.1
  done";

const RUN_AFTER: &str = "\
Examples:
  namedmutex run backup -- rsync -a /src /dst
      Runs rsync under the lock `backup`, waiting as long as it takes.
  namedmutex run --timeout 30s 'Global\\apt' -- apt-get update
      A lock shared by all users; exit 75 if it is still held after 30 s.
  namedmutex run -t 0 -E 0 -q cron-sync -- ./sync.sh
      From cron: if the previous run is still going, skip silently (status 0).
  namedmutex run --on-abandoned fail db-migrate -- ./migrate.sh
      If a previous migration died holding the lock, report it and exit 79.

The command's exit status passes through (128+N if signal N killed it). The command is
the holder: if it is killed by a signal (SIGKILL, SIGSEGV, the OOM killer, ...), the lock
is left abandoned and the next holder is told which command died and how (--on-killed
release releases it instead); if namedmutex itself is killed, the kernel kills the command
too. The report survives even when no other process had the lock open (--no-keep-abandoned
forgets it, as Windows would). Signals sent to namedmutex that would end it are forwarded
to the command. Waiting on a terminal shows who holds the lock and for how long.
Exit status when nothing ran: 75 timeout (see -E), 79 abandoned with --on-abandoned fail,
126/127 command not executable/not found, 64/65/70/77 errors (see namedmutex --help).";

const HOLD_AFTER: &str = "\
Examples:
  namedmutex hold --while-pid $$ deploy > held.txt &
  until grep -q '^held' held.txt; do sleep 0.1; done
  ./step1 && ./step2           # the lock goes when this script ends, however it ends

  coproc LOCK { namedmutex hold deploy; }
  read -r _ <&\"${LOCK[0]}\"            # waits for the line \"held deploy\"
  ./step1 && ./step2
  exec {LOCK[1]}>&-; wait \"$LOCK_PID\"  # closing its stdin releases (kill works too)

Prints `held NAME` on stdout once the lock is taken. Releases and exits 0 when stdin reaches
end of file (or, with --while-pid, when that process ends), or 128+N when a signal N that
would end a process arrives (INT, TERM, HUP, QUIT, USR1, ALRM, ...). Background jobs of
non-interactive shells get stdin from /dev/null and would release at once: use --while-pid
there (--ignore-stdin holds until a signal, and leaks the lock if the script dies first).
Exit 75 on timeout (see -E), 79 if the previous holder died and --on-abandoned fail was
given, 64 if --while-pid names no process (the lock is not taken).";

const WAIT_AFTER: &str = "\
Examples:
  namedmutex wait --timeout 5m nightly && echo \"the nightly run is over\"
  namedmutex wait -t 0 deploy || echo \"a deploy is running\"

Exit status: 0 the lock was free (or became free), 75 timeout (see -E), 79 the holder died
holding it (the lock is then taken over, reported once, and released: the next acquirer
sees an ordinary lock).";

const LIST_AFTER: &str = "\
Examples:
  namedmutex list
  namedmutex list --global --json | jq '.[] | select(.state == \"held\") | .owner.pid'

STATE is free, held or abandoned (the owner died; the next acquirer is told), plus `stopped`
when the holder's process is stopped (it keeps the lock until continued), and `kept` when
no process has it open but it stays until its next holder is told of its abandonment.
Listing removes mutexes that no process has open any more (see `prune`). HELD is how long the
owner has held it: always known for locks taken by namedmutex; a program's lock taken
without waiting is timed only if it asked for it (MutexOptions::time_acquisitions). COMMAND is
the owner's command line when it runs in this PID namespace and is readable.";

const INFO_AFTER: &str = "\
Examples:
  namedmutex info deploy
  namedmutex info --json 'Global\\apt' | jq .owner.pid
  namedmutex info -q deploy; case $? in 0|2) echo free ;; esac   (absent is free too)

Exit status: 0 free, 1 held, 2 no such mutex, 3 abandoned (the owner died holding it),
64/65/70/77 errors (see namedmutex --help). With --json an absent mutex prints `null`.";

const PRUNE_AFTER: &str = "\
Examples:
  namedmutex prune                  # your mutexes
  namedmutex prune --all            # yours and the Global\\ ones you created
  17 * * * * namedmutex prune -q    # from cron

A mutex whose processes were all killed (SIGKILL, the OOM killer) leaves its file until
its name is opened again; programs that use per-job names never open it again. prune
removes such files. It never removes a mutex that a process has open, nor one kept until
its next holder is told that its owner died (see run --no-keep-abandoned). `list` prunes
too, and so does a process's first creation of a new mutex, a few files at a time.";

const COMPLETIONS_AFTER: &str = "\
Examples:
  namedmutex completions bash > ~/.local/share/bash-completion/completions/namedmutex
  namedmutex completions zsh > \"${fpath[1]}/_namedmutex\"
  namedmutex completions fish > ~/.config/fish/completions/namedmutex.fish";

/// What `run` leaves when its command is killed by a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnKilled {
    /// Leave the lock abandoned: the next holder is told which command died and how.
    Abandon,
    /// Release it as if the command had exited.
    Release,
}

/// What to do when the previous holder died holding the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnAbandoned {
    /// Report it on stderr and go on (the default).
    Proceed,
    /// Report it, release the lock and exit 79.
    Fail,
}

/// The options every acquiring command shares.
#[derive(Args, Debug)]
struct LockArgs {
    /// The mutex: `NAME` or `Local\NAME` (yours), `Global\NAME` (every user's).
    #[arg(value_name = "NAME")]
    name: String,
    /// Give up after DUR: 500ms, 10s, 2m, 1h, 1m30s, plain seconds; 0 tries once.
    /// Default: wait as long as it takes.
    #[arg(
        short = 't',
        long,
        visible_short_alias = 'w',
        visible_alias = "wait",
        value_name = "DUR",
        value_parser = duration::parse,
        allow_negative_numbers = true
    )]
    timeout: Option<Duration>,
    /// Give up at once if the lock is held (flock's -n; the same as -t 0).
    #[arg(short = 'n', long, visible_alias = "nb", conflicts_with = "timeout")]
    nonblock: bool,
    /// Say on stderr how long getting the lock took, or why it failed (flock's --verbose).
    #[arg(long)]
    verbose: bool,
    /// flock(1) options that a named mutex has no use for: accepted (-x, -o) or refused
    /// with the reason (-s, -u, -F). See cli/README.md, "Coming from flock(1)".
    #[command(flatten)]
    flock: FlockCompat,
    /// Use the machine-wide namespace: NAME means Global\NAME.
    #[arg(short = 'g', long)]
    global: bool,
    /// Let every user open a Global\ mutex this command creates (default: only you).
    #[arg(long, conflicts_with = "group")]
    everyone: bool,
    /// Let the members of GROUP (a name or a number) open a Global\ mutex this command
    /// creates; you must belong to it. Not on Windows.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// The exit status on timeout (default 75).
    #[arg(short = 'E', long, value_name = "N", default_value_t = exit::TIMEOUT)]
    conflict_exit_code: u8,
    /// No status line while waiting and no message on timeout (errors and abandonment
    /// reports are still printed).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Forget an abandonment nobody else saw: if this holder dies and no other process has
    /// the mutex open, the mutex goes with it and the next run is not told (Win32's rule).
    /// By default the mutex is kept until its next holder has been told.
    #[arg(long)]
    no_keep_abandoned: bool,
}

/// flock(1)'s options that do not carry over, so that a script moved from flock gets a
/// reason instead of "unexpected argument".
#[derive(Args, Debug)]
struct FlockCompat {
    /// Accepted: every namedmutex lock is exclusive.
    #[arg(short = 'x', short_alias = 'e', long = "exclusive", hide = true)]
    exclusive: bool,
    /// Accepted: the command never holds the lock itself (this process does).
    #[arg(short = 'o', long = "close", hide = true)]
    close: bool,
    /// Refused: a named mutex has one holder at a time.
    #[arg(short = 's', long = "shared", hide = true)]
    shared: bool,
    /// Refused: there is no descriptor to unlock.
    #[arg(short = 'u', long = "unlock", hide = true)]
    unlock: bool,
    /// Refused: the lock is held by this process, which must outlive the command.
    #[arg(short = 'F', long = "no-fork", hide = true)]
    no_fork: bool,
}

impl FlockCompat {
    /// A usage error for the flock options that cannot mean anything here.
    fn check(&self) -> Result<(), Failure> {
        let refuse = |option: &str, why: &str| {
            Err(Failure::new(
                option,
                format!("{why} (see cli/README.md, \"Coming from flock(1)\")"),
                exit::USAGE,
            ))
        };
        if self.shared {
            return refuse(
                "--shared",
                "a named mutex has one holder at a time (Win32 semantics), so there are no \
                 shared locks; use flock(1) for readers and writers",
            );
        }
        if self.unlock {
            return refuse(
                "--unlock",
                "there is no file descriptor to unlock: the lock is released when `run` ends, \
                 or when `hold` is stopped (close its stdin or send it SIGTERM)",
            );
        }
        if self.no_fork {
            return refuse(
                "--no-fork",
                "the lock belongs to this process, which must stay alive while the command \
                 runs, so the command cannot replace it",
            );
        }
        Ok(())
    }
}

impl LockArgs {
    /// The timeout, with -n as a zero timeout.
    fn timeout(&self) -> Option<Duration> {
        if self.nonblock {
            Some(Duration::ZERO)
        } else {
            self.timeout
        }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    lock: LockArgs,
    /// What to do if the previous holder died holding the lock.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = OnAbandoned::Proceed)]
    on_abandoned: OnAbandoned,
    /// What to leave when the command is killed by a signal (SIGKILL, SIGSEGV, SIGABRT,
    /// the OOM killer, or a signal forwarded to it): `abandon` the lock, so that the next
    /// holder is told which command died and how (the default), or `release` it.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = OnKilled::Abandon)]
    on_killed: OnKilled,
    /// Run this command line through `sh -c` (flock's -c), instead of COMMAND.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SHELL_COMMAND",
        conflicts_with = "command"
    )]
    shell_command: Option<OsString>,
    /// The command and its arguments (after `--` when they start with `-`).
    #[arg(
        required_unless_present = "shell_command",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<OsString>,
}

#[derive(Args, Debug)]
struct HoldArgs {
    #[command(flatten)]
    lock: LockArgs,
    /// What to do if the previous holder died holding the lock.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = OnAbandoned::Proceed)]
    on_abandoned: OnAbandoned,
    /// Do not watch stdin: hold until a signal arrives (or PID ends, with --while-pid).
    #[arg(long)]
    ignore_stdin: bool,
    /// Hold while process PID lives, and release when it ends: `--while-pid $$` from a
    /// script holds the lock for the rest of the script, however the script ends.
    #[arg(long, value_name = "PID")]
    while_pid: Option<u32>,
}

#[derive(Args, Debug)]
struct WaitArgs {
    #[command(flatten)]
    lock: LockArgs,
}

#[derive(Args, Debug)]
struct ListArgs {
    /// List the machine-wide namespace (Global\) instead of yours.
    #[arg(short = 'g', long, conflicts_with = "all")]
    global: bool,
    /// List both namespaces.
    #[arg(short = 'a', long)]
    all: bool,
    /// List every user's Local\ namespace that you may read (as root: all of them), with
    /// a USER column; with --all, Global\ too.
    #[arg(short = 'u', long, conflicts_with = "global")]
    all_users: bool,
    /// Print a JSON array (fields in cli/README.md).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// Prune the machine-wide namespace (Global\) instead of yours.
    #[arg(short = 'g', long, conflicts_with = "all")]
    global: bool,
    /// Prune both namespaces.
    #[arg(short = 'a', long)]
    all: bool,
    /// Print nothing (errors still go to stderr).
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// The mutex: `NAME` or `Local\NAME` (yours), `Global\NAME` (every user's).
    #[arg(value_name = "NAME")]
    name: String,
    /// Use the machine-wide namespace: NAME means Global\NAME.
    #[arg(short = 'g', long)]
    global: bool,
    /// Print a JSON object (`null` when absent).
    #[arg(long)]
    json: bool,
    /// Print nothing; only the exit status tells.
    #[arg(short = 'q', long, conflicts_with = "json")]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(usage_error(e)),
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("{failure}");
            failure.code
        }
    };
    ExitCode::from(code)
}

/// Prints a clap error (help and version are not errors) and gives the exit status. The
/// whole message, with clap's hints ("a similar argument exists", the possible values),
/// under our prefix instead of clap's `error: `.
fn usage_error(e: clap::Error) -> u8 {
    use clap::error::ErrorKind as K;
    match e.kind() {
        K::DisplayHelp | K::DisplayVersion => {
            let _ = e.print();
            exit::OK
        }
        _ => {
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprint!("namedmutex: {text}");
            exit::USAGE
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8, Failure> {
    let opts = options(cli.root.as_deref(), cli.server.as_deref())?;
    match cli.command {
        Command::Run(args) => run(&opts, args),
        Command::Hold(args) => hold(&opts, args),
        Command::Wait(args) => wait(&opts, args),
        Command::List(args) => list(&opts, args),
        Command::Info(args) => info(&opts, args),
        Command::Prune(args) => prune(&opts, args),
        Command::Manpage { subcommand } => manpage(subcommand.as_deref()),
        Command::ServerSetup { lock_down } => {
            let url = cli.server.as_deref().ok_or_else(|| {
                Failure::new(
                    "server-setup",
                    "needs --server URL (or NAMEDMUTEX_SERVER)",
                    exit::USAGE,
                )
            })?;
            namedmutex::setup_server(url, lock_down)
                .map_err(|e| Failure::from_lib_other("server-setup", &e))?;
            print_out(&format!(
                "namedmutex: the schema is installed on {}\n",
                redact(url)
            ));
            Ok(exit::OK)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "namedmutex", &mut script);
            print_out(&String::from_utf8_lossy(&script));
            Ok(exit::OK)
        }
    }
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `namedmutex manpage [SUBCOMMAND]`: the page, rendered by clap_mangen from the same
/// definitions as `--help`.
fn manpage(subcommand: Option<&str>) -> Result<u8, Failure> {
    let top = Cli::command();
    let command = match subcommand {
        None => top,
        Some(name) => {
            let found = top.find_subcommand(name).cloned().ok_or_else(|| {
                let known: Vec<_> = top.get_subcommands().map(|c| c.get_name()).collect();
                Failure::new(
                    name,
                    format!("no such subcommand; one of: {}", known.join(", ")),
                    exit::USAGE,
                )
            })?;
            found.name(format!("namedmutex-{name}"))
        }
    };
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| Failure::new("manpage", e.to_string(), exit::SOFTWARE))?;
    print_out(&String::from_utf8_lossy(&page));
    Ok(exit::OK)
}

fn options(root: Option<&std::path::Path>, server: Option<&str>) -> Result<MutexOptions, Failure> {
    let opts = match server.map(str::trim).filter(|s| !s.is_empty()) {
        Some(url) => MutexOptions::new().server(url),
        // An empty NAMEDMUTEX_SERVER means this machine, as the library reads it.
        None => MutexOptions::new().local(),
    };
    match root {
        None => Ok(opts),
        #[cfg(unix)]
        Some(dir) => Ok(opts.root(dir)),
        #[cfg(not(unix))]
        Some(_) => Err(Failure::new(
            "--root",
            "not available on this platform",
            exit::USAGE,
        )),
    }
}

/// The full name for `name` and `--global`, checked against the name grammar.
fn full_name(name: &str, global: bool) -> Result<String, Failure> {
    if name.is_empty() {
        return Err(Failure::new(
            "\"\"",
            "invalid name: a name is required",
            exit::BAD_NAME,
        ));
    }
    let full = if !global || name.starts_with("Global\\") {
        name.to_owned()
    } else if name.starts_with("Local\\") {
        return Err(Failure::new(
            name,
            "--global contradicts the Local\\ prefix",
            exit::USAGE,
        ));
    } else {
        format!("Global\\{name}")
    };
    namedmutex::Name::parse(&full).map_err(|e| Failure::from_lib(&full, &e))?;
    Ok(full)
}

/// The group id of `group`: a number, or a name looked up in the group database.
#[cfg(unix)]
fn group_id(group: &str) -> Result<u32, Failure> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let unknown = || Failure::new(group, "no such group (see getent group)", exit::USAGE);
    let cname = std::ffi::CString::new(group).map_err(|_| unknown())?;
    let mut grp: libc::group = unsafe_zeroed_group();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: the NUL-terminated name, our `group`
    // struct, a buffer of the length we pass, and the out-pointer.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return Err(unknown());
    }
    Ok(grp.gr_gid)
}

#[cfg(unix)]
fn unsafe_zeroed_group() -> libc::group {
    // SAFETY: `libc::group` is a plain C struct of integers and pointers, for which all
    // zeroes is a valid (empty) value; getgrnam_r fills it.
    unsafe { std::mem::zeroed() }
}

#[cfg(not(unix))]
fn group_id(group: &str) -> Result<u32, Failure> {
    Err(Failure::new(
        group,
        "--group: there are no Unix groups on this platform",
        exit::USAGE,
    ))
}

/// How often an open that found the mutex busy tries again.
const BUSY_RETRY: Duration = Duration::from_millis(100);

/// The least time an open waits for a process that holds the object's file lock.
const BUSY_AT_LEAST: Duration = Duration::from_millis(100);

/// Opens (creating if needed) the mutex for an acquiring command.
fn open(opts: &MutexOptions, lock: &LockArgs) -> Result<(String, NamedMutex), Failure> {
    lock.flock.check()?;
    let name = full_name(&lock.name, lock.global)?;
    let opts = match (&lock.group, lock.everyone) {
        (Some(group), _) => opts.clone().security(Security::UnixGroup(group_id(group)?)),
        (None, true) => opts.clone().security(Security::Everyone),
        (None, false) => opts.clone(),
    };
    // A process stopped while it holds the object's file lock (creating or removing it)
    // makes the open wait: as long as the wait for the mutex itself would (a transient
    // lock lasts microseconds, so even -t 0 allows a moment).
    let busy = lock.timeout().map(|t| t.max(BUSY_AT_LEAST));
    let opts = opts
        .keep_abandoned(!lock.no_keep_abandoned)
        .busy_timeout(busy)
        .time_acquisitions(true);
    // `Busy` means other processes keep the mutex from being opened now (one stopped while
    // it holds the object's file lock; holders of a directory a cleaner removed): wait for
    // them as for the lock itself, within the timeout.
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        match opts.create(&name) {
            Ok((mutex, _existed)) => return Ok((name, mutex)),
            Err(e) if e.kind() == namedmutex::ErrorKind::Busy => {
                if lock.timeout().is_some_and(|t| started.elapsed() >= t) {
                    let waited = duration::human(lock.timeout().unwrap_or_default());
                    return Err(Failure::new(
                        &name,
                        format!("timed out after {waited}: {e}"),
                        lock.conflict_exit_code,
                    ));
                }
                if let Some(sig) = signals::take_pending() {
                    return Err(Failure::new(
                        &name,
                        format!("interrupted by signal {sig} while waiting: {e}"),
                        signal_status(sig),
                    ));
                }
                if !said && !lock.quiet {
                    eprintln!("namedmutex: {name}: waiting: {e}");
                    said = true;
                }
                std::thread::sleep(BUSY_RETRY);
            }
            Err(e) => return Err(Failure::from_lib(&name, &e)),
        }
    }
}

/// The result of the acquisition phase shared by `run`, `hold` and `wait`.
enum Taken {
    /// Owned; `Some` if the previous owner died holding it.
    Yes(Option<report::Holder>),
    /// Not owned: exit with this status.
    No(u8),
}

fn take(
    opts: &MutexOptions,
    lock: &LockArgs,
    name: &str,
    mutex: &NamedMutex,
) -> Result<Taken, Failure> {
    let started = std::time::Instant::now();
    let outcome = Acquire {
        mutex,
        name,
        opts,
        timeout: lock.timeout(),
        status_line: !lock.quiet,
    }
    .run()?;
    if lock.verbose {
        match &outcome {
            Outcome::Acquired(_) => eprintln!(
                "namedmutex: {name}: got the lock after {}",
                duration::human(started.elapsed())
            ),
            Outcome::TimedOut(_) if lock.quiet => eprintln!(
                "namedmutex: {name}: timed out after {}",
                duration::human(started.elapsed())
            ),
            _ => {}
        }
    }
    Ok(match outcome {
        Outcome::Acquired(dead) => Taken::Yes(dead),
        Outcome::Interrupted(sig) => Taken::No(signal_status(sig)),
        Outcome::TimedOut(holder) => {
            if !lock.quiet {
                eprintln!(
                    "{}",
                    Failure::new(
                        name,
                        timeout_message(lock.timeout(), holder.as_ref()),
                        lock.conflict_exit_code
                    )
                );
            }
            Taken::No(lock.conflict_exit_code)
        }
    })
}

fn signal_status(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

fn release(name: &str, mutex: &NamedMutex) -> Result<(), Failure> {
    mutex.release().map_err(|e| Failure::from_lib(name, &e))
}

/// Reports an abandoned lock; `Err` with status 79 (after releasing) if asked to fail.
fn on_abandoned(
    name: &str,
    mutex: &NamedMutex,
    dead: Option<report::Holder>,
    policy: OnAbandoned,
    what: &str,
) -> Result<(), Failure> {
    let Some(dead) = dead else { return Ok(()) };
    let message = abandoned_message(&dead);
    match policy {
        OnAbandoned::Proceed => {
            eprintln!("namedmutex: {name}: warning: {message}; {what} anyway");
            Ok(())
        }
        OnAbandoned::Fail => {
            release(name, mutex)?;
            Err(Failure::new(
                name,
                format!("{message}; giving up (--on-abandoned fail)"),
                exit::ABANDONED,
            ))
        }
    }
}

fn run(opts: &MutexOptions, args: RunArgs) -> Result<u8, Failure> {
    signals::install();
    let (name, mutex) = open(opts, &args.lock)?;
    let dead = match take(opts, &args.lock, &name, &mutex)? {
        Taken::Yes(dead) => dead,
        Taken::No(code) => return Ok(code),
    };
    on_abandoned(
        &name,
        &mutex,
        dead,
        args.on_abandoned,
        "running the command",
    )?;
    if let Some(sig) = signals::take_pending() {
        release(&name, &mutex)?;
        return Ok(signal_status(sig));
    }
    let (program, rest): (OsString, &[OsString]) = match &args.shell_command {
        Some(line) => ("sh".into(), std::slice::from_ref(line)),
        None => (args.command[0].clone(), &args.command[1..]),
    };
    let program = &program;
    let mut command = std::process::Command::new(program);
    if args.shell_command.is_some() {
        command.arg("-c");
    }
    command.args(rest);
    let spawned = command::spawn_bound(&mut command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            release(&name, &mutex)?;
            let shown = program.to_string_lossy();
            return Err(if e.kind() == std::io::ErrorKind::NotFound {
                // flock users write `flock x 'a && b'`, which needs -c here (and there).
                let hint = if args.command.len() == 1 && shown.contains(char::is_whitespace) {
                    format!(
                        "command not found (to run a shell command line, use -c: \
                         namedmutex run {} -c {:?})",
                        args.lock.name, shown
                    )
                } else {
                    "command not found".to_owned()
                };
                Failure::new(shown, hint, exit::COMMAND_NOT_FOUND)
            } else {
                Failure::new(shown, format!("cannot execute: {e}"), exit::CANNOT_EXECUTE)
            });
        }
    };
    signals::forward_to(child.id());
    let status =
        command::wait_ticking(&mut child, NAME_CHECK_EVERY, &mut name_check(&name, &mutex));
    signals::stop_forwarding();
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            release(&name, &mutex)?;
            return Err(Failure::new(
                program.to_string_lossy(),
                format!("cannot wait for the command: {e}"),
                exit::SOFTWARE,
            ));
        }
    };
    match killed_by(status) {
        Some(how) if args.on_killed == OnKilled::Abandon => {
            let shown = match &args.shell_command {
                Some(line) => format!(
                    "sh -c {}",
                    report::join_args(&[line.to_string_lossy().into_owned()])
                ),
                None => report::join_args(
                    &args
                        .command
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect::<Vec<_>>(),
                ),
            };
            let note = format!("the command `{shown}` (pid {}) {how}", child.id());
            match mutex.abandon(&note) {
                Ok(()) => eprintln!(
                    "namedmutex: {name}: {note}; the lock is left abandoned, so that its next holder is told (--on-killed release to release it instead)"
                ),
                Err(e) if e.kind() == namedmutex::ErrorKind::Unsupported => release(&name, &mutex)?,
                Err(e) => return Err(Failure::from_lib(&name, &e)),
            }
        }
        _ => release(&name, &mutex)?,
    }
    Ok(exit_status_code(status))
}

/// How the command died, when a signal killed it: `was killed by SIGKILL`, with `(core
/// dumped)` when it did.
#[cfg(unix)]
fn killed_by(status: std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    let sig = status.signal()?;
    let core = if status.core_dumped() {
        " (core dumped)"
    } else {
        ""
    };
    Some(format!("was killed by {}{core}", signal_name(sig)))
}

#[cfg(not(unix))]
fn killed_by(_: std::process::ExitStatus) -> Option<String> {
    None
}

/// `SIGKILL` for 9, `SIGRTMIN+3` for a real-time signal, `signal N` for what has no name
/// here.
#[cfg(unix)]
fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        #[cfg(target_os = "linux")] // the BSDs and macOS have no real-time signals
        _ if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig) => {
            return format!("SIGRTMIN+{}", sig - libc::SIGRTMIN());
        }
        _ => return format!("signal {sig}"),
    };
    name.to_owned()
}

/// A check for [`command::wait_ticking`] and `hold`'s wait, run every [`NAME_CHECK_EVERY`]:
/// warns once, loudly, if a cleaner removed the mutex's file (see RELIABILITY.md,
/// "Cleaners").
fn name_check<'a>(name: &'a str, mutex: &'a NamedMutex) -> impl FnMut() + 'a {
    let mut warned = false;
    move || {
        if !warned && !mutex.still_named() {
            warned = true;
            eprintln!(
                "namedmutex: {name}: WARNING: the mutex's file was removed while this process holds it \
                 (a cleaner such as systemd-logind's RemoveIPC=yes, a tmp cleaner, or rm): another \
                 process can now create a new mutex of the same name and run beside this one; \
                 see RELIABILITY.md, \"Cleaners\""
            );
        }
    }
}

/// How often a holder checks that its mutex's file is still there.
const NAME_CHECK_EVERY: Duration = Duration::from_secs(1);

#[cfg(unix)]
fn exit_status_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => signal_status(sig),
        (None, None) => exit::SOFTWARE,
    }
}

#[cfg(not(unix))]
fn exit_status_code(status: std::process::ExitStatus) -> u8 {
    status.code().map_or(exit::SOFTWARE, |c| c as u8)
}

fn hold(opts: &MutexOptions, args: HoldArgs) -> Result<u8, Failure> {
    signals::install();
    // The process to hold for is looked at first: a mistyped pid must not take the lock.
    let watched = match args.while_pid {
        Some(pid) => Some(signals::Watched::new(pid).map_err(|e| {
            let why = if e.raw_os_error() == Some(libc::ESRCH) {
                "no such process".to_owned()
            } else {
                e.to_string()
            };
            Failure::new(format!("--while-pid {pid}"), why, exit::USAGE)
        })?),
        None => None,
    };
    let (name, mutex) = open(opts, &args.lock)?;
    let dead = match take(opts, &args.lock, &name, &mutex)? {
        Taken::Yes(dead) => dead,
        Taken::No(code) => return Ok(code),
    };
    on_abandoned(&name, &mutex, dead, args.on_abandoned, "holding it")?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "held {name}");
        let _ = out.flush();
    }
    let watch_stdin = !args.ignore_stdin && args.while_pid.is_none();
    let end = signals::wait_for_stdin_or_signal(
        watch_stdin,
        watched.as_ref(),
        NAME_CHECK_EVERY,
        &mut name_check(&name, &mutex),
    );
    release(&name, &mutex)?;
    Ok(match end {
        signals::HoldEnd::StdinClosed | signals::HoldEnd::PidEnded => exit::OK,
        signals::HoldEnd::Signal(sig) => signal_status(sig),
    })
}

fn wait(opts: &MutexOptions, args: WaitArgs) -> Result<u8, Failure> {
    signals::install();
    let (name, mutex) = open(opts, &args.lock)?;
    let dead = match take(opts, &args.lock, &name, &mutex)? {
        Taken::Yes(dead) => dead,
        Taken::No(code) => return Ok(code),
    };
    release(&name, &mutex)?;
    match dead {
        None => Ok(exit::OK),
        Some(dead) => Err(Failure::new(
            name,
            abandoned_message(&dead),
            exit::ABANDONED,
        )),
    }
}

/// The namespaces `--global` and `--all` choose (neither: the caller's own).
fn chosen_namespaces(global: bool, all: bool) -> &'static [Namespace] {
    if all {
        &[Namespace::Local, Namespace::Global]
    } else if global {
        &[Namespace::Global]
    } else {
        &[Namespace::Local]
    }
}

/// `Local\` or `Global\`, for messages about a whole namespace.
fn prefix(ns: Namespace) -> &'static str {
    match ns {
        Namespace::Global => "Global\\",
        Namespace::Local => "Local\\",
    }
}

fn list(opts: &MutexOptions, args: ListArgs) -> Result<u8, Failure> {
    let mut all = Vec::new();
    let mut unreadable = Vec::new();
    if args.all_users {
        let users = opts
            .list_all_users()
            .map_err(|e| Failure::from_lib_other(prefix(Namespace::Local), &e))?;
        all.extend(users.mutexes);
        unreadable = users.unreadable;
    }
    let namespaces = match (args.all_users, args.all) {
        (true, true) => &[Namespace::Global][..],
        (true, false) => &[][..],
        (false, _) => chosen_namespaces(args.global, args.all),
    };
    for ns in namespaces {
        let found = opts
            .list(*ns)
            .map_err(|e| Failure::from_lib_other(prefix(*ns), &e))?;
        all.extend(found);
    }
    let text = if args.json {
        let json: Vec<_> = all.iter().map(report::json).collect();
        serde_json::to_string_pretty(&json).expect("serializable") + "\n"
    } else {
        // Whose it is matters for other users' namespaces, and for objects we may not open.
        let with_user = args.all_users || all.iter().any(|i| !i.accessible);
        report::table(&all, with_user)
    };
    print_out(&text);
    if !unreadable.is_empty() {
        let uids: Vec<String> = unreadable.iter().map(u32::to_string).collect();
        eprintln!(
            "namedmutex: the Local\\ namespaces of uid {} are not readable by you (root may list them)",
            uids.join(", ")
        );
    }
    Ok(exit::OK)
}

fn prune(opts: &MutexOptions, args: PruneArgs) -> Result<u8, Failure> {
    let namespaces = chosen_namespaces(args.global, args.all);
    for ns in namespaces {
        let subject = prefix(*ns);
        let pruned = opts
            .prune(*ns)
            .map_err(|e| Failure::from_lib_other(subject, &e))?;
        if !args.quiet {
            print_out(&format!(
                "{subject}: removed {}, in use {}, kept for an abandonment report {}, left alone {}\n",
                pruned.removed, pruned.in_use, pruned.kept_for_report, pruned.skipped
            ));
        }
    }
    Ok(exit::OK)
}

fn info(opts: &MutexOptions, args: InfoArgs) -> Result<u8, Failure> {
    let name = full_name(&args.name, args.global)?;
    let found = opts.info(&name).map_err(|e| Failure::from_lib(&name, &e))?;
    let code = match &found {
        None => exit::INFO_ABSENT,
        Some(i) => match report::State::of(i) {
            report::State::Free => exit::OK,
            report::State::Held => exit::INFO_HELD,
            report::State::Abandoned => exit::INFO_ABANDONED,
            // (`info` opens the file: one it may not open is an error before this.)
            report::State::Unknown => exit::NO_PERMISSION,
        },
    };
    if args.quiet {
        return Ok(code);
    }
    let text = match (&found, args.json) {
        (Some(i), true) => {
            serde_json::to_string_pretty(&report::json(i)).expect("serializable") + "\n"
        }
        (None, true) => "null\n".to_owned(),
        (Some(i), false) => report::block(i),
        (None, false) => format!("{:<15}{name}\n{:<15}absent\n", "name:", "state:"),
    };
    print_out(&text);
    Ok(code)
}

/// Writes to stdout, ignoring a closed pipe (`namedmutex list | head -1`).
fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
