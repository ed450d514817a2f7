//! Scenario 7's C row through the shared library: `bench/c/capi_loop.c`, built with the
//! system's C compiler and linked with `-lnamedmutex_capi` as a C program links it (the
//! shared library, whose thread-locals cost a `__tls_get_addr` call each, where the
//! harness's own row is linked statically), runs the loop in a process of its own; the
//! harness times each count it sends.

use crate::variant_build;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The C program, running, with its pipes.
pub struct SharedLoop {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl SharedLoop {
    /// Builds the shared library and the program, and starts it on the mutex `name`.
    pub fn start(name: &str) -> Result<SharedLoop, String> {
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
        let mut child = Command::new(&program)
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        let input = child.stdin.take().ok_or("no stdin")?;
        let output = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(SharedLoop {
            child,
            input,
            output,
        })
    }

    /// Runs `n` acquire + release pairs in the program, and waits for them.
    pub fn run(&mut self, n: u64) {
        writeln!(self.input, "{n}")
            .and_then(|()| self.input.flush())
            .expect("write to capi_loop");
        let mut line = String::new();
        self.output
            .read_line(&mut line)
            .expect("read from capi_loop");
        assert_eq!(
            line.trim(),
            "done",
            "capi_loop failed (its stderr says why)"
        );
    }
}

impl Drop for SharedLoop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
