//! The error that ends a command on a run is written to the run's `log.txt` as well as to
//! stderr, so that a run directory says why it stopped.

mod common;

use common::{DNC, config, dnc};
use std::process::Command;

#[test]
fn the_error_that_stops_a_run_is_in_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let run = dir.path().join("run");
    let run_s = run.display().to_string();
    dnc(&["init", "--config", &cfg, "--out", &run_s]);
    let out = Command::new(DNC)
        .args(["stage", "distill", "--run", &run_s])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: "), "{stderr}");
    let log = std::fs::read_to_string(run.join("log.txt")).unwrap();
    let logged = log.lines().last().unwrap_or_default();
    assert_eq!(
        logged.strip_prefix("ERROR "),
        last.strip_prefix("error: "),
        "{log}"
    );
}
