//! Scenario 7's C row through the shared library: `bench/c/capi_loop.c`, built with the
//! system's C compiler and linked with `-lnamedmutex_capi` as a C program links it (the
//! shared library, whose thread-locals cost a `__tls_get_addr` call each, where the
//! harness's own row is linked statically), runs the loop in a process of its own; the
//! harness times each count it sends.

use crate::variant_build;
use namedmutex_bench::env::Env;
use namedmutex_bench::proc::Worker;
use std::process::Command;
use std::time::Duration;

/// How long one count may take: a batch is calibrated to tens of milliseconds, so only a
/// program that hangs (in the C ABI, say) reaches this.
const BATCH_LIMIT: Duration = Duration::from_secs(60);

/// The C program, running, as a worker of the harness (its answers read with a deadline,
/// killed on drop).
pub struct SharedLoop(Worker);

impl SharedLoop {
    /// Builds the shared library and the program, and starts it on the mutex `name`.
    pub fn start(env: &Env, name: &str) -> Result<SharedLoop, String> {
        variant_build::cargo_release(&["-p", "namedmutex-capi"], "the C library")?;
        let workspace = variant_build::workspace()?;
        let release = variant_build::target_dir()?.join("release");
        let program = release.join("capi_loop");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .arg("-O2")
            .arg("-I")
            .arg(workspace.join("capi/include"))
            .arg(workspace.join("bench/c/capi_loop.c"))
            .arg("-L")
            .arg(&release)
            .arg("-lnamedmutex_capi")
            .arg(format!("-Wl,-rpath,{}", release.display()))
            .arg("-o")
            .arg(&program)
            .status()
            .map_err(|e| format!("{cc}: {e}"))?;
        if !status.success() {
            return Err(format!("{cc} bench/c/capi_loop.c: {status}"));
        }
        Ok(SharedLoop(Worker::spawn_exe(
            &program,
            env,
            "capi_loop",
            &[name.to_owned()],
            BATCH_LIMIT,
        )))
    }

    /// Runs `n` acquire + release pairs in the program, and waits for them (a program
    /// that fails says why on stderr and exits, which fails the read).
    pub fn run(&mut self, n: u64) {
        self.0.send(&n.to_string());
        self.0.expect("done", BATCH_LIMIT);
    }
}
