//! Logging: `tracing` to stderr, and to the run's `log.txt` when a run is open.

use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

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
            let writer = std::io::stderr.and(Mutex::new(file));
            let _ = builder.with_ansi(false).with_writer(writer).try_init();
        }
        None => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
    }
}
