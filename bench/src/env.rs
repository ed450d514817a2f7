//! Where benchmark objects live: a fresh directory under `/dev/shm` (mode 0755), used as
//! `NAMEDMUTEX_ROOT` and, in `peers/`, for the peers' files. Named semaphores cannot live
//! there (sem_open uses `/dev/shm/sem.*`), so their names carry the same unique prefix.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The variable that passes the directory to worker processes.
pub const DIR_ENV: &str = "NMBENCH_DIR";

/// The benchmark's directory and name prefix.
pub struct Env {
    /// The directory; also `NAMEDMUTEX_ROOT`.
    pub dir: PathBuf,
    /// Files of the pthread, flock and named-lock peers.
    pub peers: PathBuf,
    /// Prefix of POSIX shared-memory and semaphore names (`nmbench-<pid>`).
    pub prefix: String,
    /// Whether this process made the directory and removes it on drop.
    owner: bool,
}

impl Env {
    /// Makes a fresh directory `/dev/shm/nmbench-<pid>` (mode 0755).
    pub fn create() -> Env {
        let prefix = format!("nmbench-{}", std::process::id());
        let dir = PathBuf::from("/dev/shm").join(&prefix);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("remove a stale benchmark directory");
        }
        std::fs::create_dir(&dir).expect("create the benchmark directory under /dev/shm");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the benchmark directory");
        let peers = dir.join("peers");
        std::fs::create_dir(&peers).expect("create the peers directory");
        Env {
            dir,
            peers,
            prefix,
            owner: true,
        }
    }

    /// The directory made by the coordinating process (in a worker).
    pub fn from_env() -> Env {
        let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("NMBENCH_DIR is not set"));
        let prefix = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("benchmark directory name")
            .to_owned();
        Env {
            peers: dir.join("peers"),
            dir,
            prefix,
            owner: false,
        }
    }

    /// The namespace root for namedmutex.
    pub fn root(&self) -> &Path {
        &self.dir
    }

    /// A POSIX shared-memory or semaphore name (`/nmbench-<pid>-<name>`).
    pub fn posix_name(&self, name: &str) -> CString {
        CString::new(format!("/{}-{name}", self.prefix)).expect("no NUL in names")
    }

    /// Environment variables for a worker process.
    pub fn vars(&self) -> [(&'static str, &Path); 2] {
        [(DIR_ENV, &self.dir), ("NAMEDMUTEX_ROOT", &self.dir)]
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // Semaphores and raw shared-memory objects of this run.
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let ours = name.starts_with(&format!("{}-", self.prefix))
                    || name.starts_with(&format!("sem.{}-", self.prefix));
                if ours {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}
