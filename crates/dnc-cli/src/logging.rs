//! Logging: `tracing` to stderr, and to the run's `log.txt` when a run is open.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// The run's `log.txt` once [`init`] opened it.
static LOG_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Appends the error that ends the command to the run's `log.txt` (when one is open), so that
/// the run directory says why it stopped; the caller prints it to stderr.
pub(crate) fn record_exit_error(message: &str) {
    let Some(path) = LOG_FILE.get() else { return };
    if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = writeln!(file, "ERROR {message}");
    }
}

/// Installs the subscriber: `RUST_LOG` (default `info`) to stderr, and everything at the same
/// level appended to `log_file` when given.
pub(crate) fn init(log_file: Option<&Path>) {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false);
    let file = log_file.and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    match file {
        Some(file) => {
            if let Some(p) = log_file {
                let _ = LOG_FILE.set(p.to_path_buf());
            }
            let writer = std::io::stderr.and(Mutex::new(file));
            let _ = builder.with_ansi(false).with_writer(writer).try_init();
        }
        None => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
    }
}
