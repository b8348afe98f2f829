//! The run directory's lock: one process runs stages in a run directory at a time. Expert jobs
//! (`dnc stage experts --expert K`) take one lock per expert instead, so several can share a run.
//!
//! `<run>/lock` holds `pid host` of its holder and is created with `create_new`, so two processes
//! starting together cannot both take it. A lock left by a killed process on this host (its pid
//! no longer runs) is stale and taken over; a lock from another host is never guessed stale and
//! names the host, so the user can remove it once that process is known to be gone.

use crate::error::PipelineError;
use crate::run_dir::RunDir;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The holder written in a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    pub(crate) host: String,
}

impl Holder {
    /// This process.
    pub(crate) fn current() -> Self {
        Self {
            pid: std::process::id(),
            host: host_name(),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split_whitespace();
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_string();
        Some(Self { pid, host })
    }

    /// Whether this holder is certainly gone: on this host, with no running process `pid`.
    /// Only Linux's `/proc` can tell; elsewhere a holder is assumed alive.
    fn is_gone(&self) -> bool {
        let proc = Path::new("/proc");
        self.host == host_name()
            && proc.join("self").exists()
            && !proc.join(self.pid.to_string()).exists()
    }
}

/// The machine's name, as the lock records it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
        .unwrap_or_else(|| "unknown-host".into())
}

/// A held lock; released (the file removed) when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Takes the run's lock ([`RunDir::lock_path`]), taking over a stale one. Fails with the
    /// holder when another live process holds it.
    pub fn acquire(run: &RunDir) -> Result<Self, PipelineError> {
        Self::acquire_file(run.lock_path())
    }

    /// Takes the lock file `path` (e.g. one expert's `experts/expert-3.lock`), as
    /// [`acquire`](Self::acquire) does.
    pub fn acquire_file(path: PathBuf) -> Result<Self, PipelineError> {
        let me = Holder::current();
        // Two rounds: the second after removing a stale lock.
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    writeln!(file, "{} {}", me.pid, me.host)
                        .map_err(|e| PipelineError::io(&path, e))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match Holder::parse(&text) {
                        Some(holder) if holder.is_gone() => {
                            tracing::warn!(
                                "{}: taking over the lock of process {} on {}, which is gone",
                                path.display(),
                                holder.pid,
                                holder.host
                            );
                            remove_if_same(&path, &text)?;
                        }
                        Some(holder) => {
                            return Err(PipelineError::Locked {
                                path,
                                pid: holder.pid,
                                host: holder.host,
                            });
                        }
                        // A lock being written right now, or an unreadable one.
                        None => {
                            return Err(PipelineError::Locked {
                                path,
                                pid: 0,
                                host: "an unknown holder".into(),
                            });
                        }
                    }
                }
                Err(e) => return Err(PipelineError::io(&path, e)),
            }
        }
        Err(PipelineError::Other(format!(
            "{}: another process took the lock as this one took over a stale one",
            path.display()
        )))
    }
}

/// Who holds the lock file `path`, and whether that holder is certainly gone (a stale lock);
/// `None` when the file is absent or unreadable.
pub(crate) fn lock_holder(path: &Path) -> Option<(Holder, bool)> {
    let text = std::fs::read_to_string(path).ok()?;
    let holder = Holder::parse(&text)?;
    let gone = holder.is_gone();
    Some((holder, gone))
}

/// Removes the lock at `path` when it still holds `text` (no one took it over meanwhile).
fn remove_if_same(path: &Path, text: &str) -> Result<(), PipelineError> {
    match std::fs::read_to_string(path) {
        Ok(now) if now == text => {
            std::fs::remove_file(path).map_err(|e| PipelineError::io(path, e))
        }
        _ => Ok(()),
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let mine = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| Holder::parse(&t))
            .is_some_and(|h| h == Holder::current());
        if mine {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_a_dead_ones_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let lock = RunLock::acquire(&run).unwrap();
        let err = RunLock::acquire(&run).unwrap_err().to_string();
        let me = Holder::current();
        assert!(
            err.contains(&format!("process {} on {}", me.pid, me.host)),
            "{err}"
        );
        drop(lock);
        assert!(!run.lock_path().exists(), "released on drop");

        // A process on another host: never guessed stale.
        std::fs::write(run.lock_path(), "4242 elsewhere\n").unwrap();
        let err = RunLock::acquire(&run).unwrap_err().to_string();
        assert!(err.contains("process 4242 on elsewhere"), "{err}");

        if Path::new("/proc/self").exists() {
            // A pid that cannot run (above Linux's pid_max) on this host: stale.
            let dead = format!("{} {}\n", u32::MAX - 1, me.host);
            std::fs::write(run.lock_path(), dead).unwrap();
            let lock = RunLock::acquire(&run).unwrap();
            let text = std::fs::read_to_string(run.lock_path()).unwrap();
            assert_eq!(Holder::parse(&text), Some(me));
            drop(lock);
        }
    }
}
