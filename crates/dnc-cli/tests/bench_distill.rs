//! `dnc bench distill` runs MoCLR, live-teacher and cached-target distillation steps side by side
//! and reports their costs and what they make of Divide and Contrast's training against MoCLR's.

use std::process::Command;

const DNC: &str = env!("CARGO_BIN_EXE_dnc");

#[test]
fn the_distillation_benchmark_times_three_kinds_of_step_and_derives_the_ratio() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/cifar10-mini/train"
    );
    let out = Command::new(DNC)
        .env("RAYON_NUM_THREADS", "1")
        .args(["bench", "distill", "--data", data])
        .args([
            "--batch",
            "16",
            "--experts",
            "3",
            "--steps",
            "1",
            "--rounds",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap();
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(r["experts"], 3);
    assert_eq!(r["timed_steps_each"], 2);
    let step = |k: &str| r["s_per_step"][k].as_f64().unwrap();
    for kind in ["moclr", "distill_live", "distill_cached"] {
        assert!(step(kind) > 0.0, "{kind}: {r}");
    }
    // The DnC ratio is 3/4 MoCLR steps and 1/4 distillation steps, from the same medians (each
    // rounded to a thousandth).
    let over = r["over_moclr"]["distill_cached"].as_f64().unwrap();
    let dnc = r["dnc_training_over_moclr_at_equal_epochs"]["cached"]
        .as_f64()
        .unwrap();
    assert!((dnc - (0.75 + 0.25 * over)).abs() < 2e-3, "{r}");

    let bad = Command::new(DNC)
        .args(["bench", "distill", "--data", data, "--experts", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--experts"));
}
