//! Stages taken from another run: the results are those the run would have trained itself, a
//! stage trained with other settings is refused by name, and a MoCLR run's base serves a DnC run.

mod common;

use common::tiny;

use dnc_pipeline::{Run, Stage};

#[test]
fn adopted_stages_give_the_results_of_training_them() {
    let dir = tempfile::tempdir().unwrap();
    let whole = Run::create(tiny(|_| {}), &dir.path().join("whole")).unwrap();
    whole.run_all(false).unwrap();

    // A MoCLR run with the same base settings serves as the donor of the base.
    let moclr = Run::create(
        tiny(|c| c.method = dnc_pipeline::config::Method::Moclr),
        &dir.path().join("moclr"),
    )
    .unwrap();
    moclr.run_all(false).unwrap();
    let taker = Run::create(tiny(|_| {}), &dir.path().join("taker")).unwrap();
    taker
        .adopt_stages(&dir.path().join("moclr"), &[Stage::Base])
        .unwrap();
    let summary = taker.dir.read_summary().unwrap();
    assert!(summary.is_done("base") && !summary.is_done("embed"));
    assert!(summary.info.contains_key("base_training"));
    taker.run_all(false).unwrap();
    let (a, b) = (
        whole.dir.read_summary().unwrap(),
        taker.dir.read_summary().unwrap(),
    );
    assert_eq!(a.eval, b.eval);
    assert_eq!(a.info["cluster"], b.info["cluster"]);

    // An arm that changes only the student takes everything up to the experts; taking again is
    // a no-op.
    let arm = Run::create(
        tiny(|c| c.distill.teachers = dnc_pipeline::Teachers::Base),
        &dir.path().join("arm"),
    )
    .unwrap();
    let upto_experts = [Stage::Base, Stage::Embed, Stage::Cluster, Stage::Experts];
    arm.adopt_stages(&dir.path().join("whole"), &upto_experts)
        .unwrap();
    arm.adopt_stages(&dir.path().join("whole"), &upto_experts)
        .unwrap();
    let summary = arm.dir.read_summary().unwrap();
    assert!(upto_experts.iter().all(|s| summary.is_done(s.name())));
    assert!(!summary.is_done("distill"));
    assert!(dir.path().join("arm/experts").is_dir());
    arm.run_all(false).unwrap();
    assert!(arm.dir.read_summary().unwrap().eval.contains_key("dnc"));
}

#[test]
fn a_stage_trained_otherwise_or_out_of_order_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let donor = Run::create(tiny(|_| {}), &dir.path().join("donor")).unwrap();
    donor.run_stage(Stage::Base, false).unwrap();

    let longer = Run::create(tiny(|c| c.base.epochs += 1), &dir.path().join("longer")).unwrap();
    let err = longer
        .adopt_stages(&dir.path().join("donor"), &[Stage::Base])
        .unwrap_err()
        .to_string();
    assert!(err.contains("base.epochs"), "{err}");
    assert!(!longer.dir.read_summary().unwrap().is_done("base"));

    // A base trained here cannot stand under embeddings computed from the donor's base.
    donor.run_stage(Stage::Embed, false).unwrap();
    let own = Run::create(tiny(|_| {}), &dir.path().join("own")).unwrap();
    own.run_stage(Stage::Base, false).unwrap();
    let err = own
        .adopt_stages(&dir.path().join("donor"), &[Stage::Base, Stage::Embed])
        .unwrap_err()
        .to_string();
    assert!(err.contains("results of its own"), "{err}");
    // A base taken from the donor can.
    let taken = Run::create(tiny(|_| {}), &dir.path().join("taken")).unwrap();
    taken
        .adopt_stages(&dir.path().join("donor"), &[Stage::Base])
        .unwrap();
    taken
        .adopt_stages(&dir.path().join("donor"), &[Stage::Base, Stage::Embed])
        .unwrap();

    let same = Run::create(tiny(|_| {}), &dir.path().join("same")).unwrap();
    let err = same
        .adopt_stages(&dir.path().join("donor"), &[Stage::Embed])
        .unwrap_err()
        .to_string();
    assert!(err.contains("leading run"), "{err}");
    let err = same
        .adopt_stages(
            &dir.path().join("donor"),
            &[Stage::Base, Stage::Embed, Stage::Cluster],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("cluster is not done"), "{err}");
    assert!(!same.dir.read_summary().unwrap().is_done("base"));
}

#[test]
fn the_matched_moclr_baseline_is_taken_from_a_moclr_run_and_scored_by_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let dnc = Run::create(tiny(|_| {}), &dir.path().join("dnc")).unwrap();
    dnc.run_all(false).unwrap();
    let total = dnc.cfg.baseline_epochs();
    let moclr_at = |epochs: usize, name: &str| {
        let run = Run::create(
            tiny(|c| {
                c.method = dnc_pipeline::config::Method::Moclr;
                c.base.epochs = epochs;
            }),
            &dir.path().join(name),
        )
        .unwrap();
        run.run_all(false).unwrap();
        run
    };

    // A MoCLR run of another length is not this run's baseline.
    moclr_at(total - 1, "short");
    let mut taker = Run::open(&dir.path().join("dnc"), None).unwrap();
    let err = taker
        .adopt_baseline(&dir.path().join("short"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("base.epochs"), "{err}");
    assert!(!taker.cfg.baseline);

    let moclr = moclr_at(total, "moclr");
    assert!(taker.adopt_baseline(&dir.path().join("moclr")).unwrap());
    assert!(taker.cfg.baseline, "taking the baseline turns it on");
    let summary = taker.dir.read_summary().unwrap();
    assert!(summary.is_done("baseline") && !summary.is_done("eval"));
    assert!(!summary.info.contains_key("diagnostics"));
    assert!(summary.info.contains_key("baseline_training"));
    assert!(summary.info.contains_key("baseline"));
    assert_eq!(
        summary.info.get("baseline"),
        moclr.dir.read_summary().unwrap().info.get("base"),
        "the skipped-image record comes along"
    );
    // The MoCLR run evaluated as this run does: its row stands for the baseline's.
    let moclr_eval = moclr.dir.read_summary().unwrap().eval["base"].clone();
    assert_eq!(summary.eval["baseline"], moclr_eval);
    let before = summary.eval["dnc"].clone();
    assert!(!taker.adopt_baseline(&dir.path().join("moclr")).unwrap());

    // Resuming scores the baseline within every cluster.
    let taker = Run::open(&dir.path().join("dnc"), None).unwrap();
    taker.run_all(true).unwrap();
    let summary = taker.dir.read_summary().unwrap();
    assert_eq!(summary.eval["dnc"], before, "the rows written stand");
    assert_eq!(summary.eval["baseline"], moclr_eval);
    let diagnostics = &summary.info["diagnostics"];
    let ahead = diagnostics["experts_ahead_of_baseline"].as_u64().unwrap();
    assert!(ahead <= diagnostics["scored"].as_u64().unwrap());
    for cluster in diagnostics["clusters"].as_array().unwrap() {
        assert_eq!(
            cluster["baseline"].is_number(),
            cluster["expert"].is_number(),
            "{cluster}"
        );
    }
    assert_eq!(
        diagnostics["ceiling"]["baseline"].as_f64(),
        Some(moclr_eval.knn_top1)
    );
    let report = std::fs::read_to_string(dir.path().join("dnc/report.md")).unwrap();
    assert!(report.contains("matched MoCLR |"), "{report}");

    // A DnC run whose baseline is done serves as a donor too (an evaluation run of a study
    // takes everything from its trained run). This one evaluates otherwise (k-NN with k = 10),
    // so it evaluates the baseline itself.
    let mut copy = Run::create(tiny(|c| c.eval.knn.k = 10), &dir.path().join("copy")).unwrap();
    let trained = [
        Stage::Base,
        Stage::Embed,
        Stage::Cluster,
        Stage::Experts,
        Stage::Distill,
    ];
    copy.adopt_stages(&dir.path().join("dnc"), &trained)
        .unwrap();
    assert!(copy.adopt_baseline(&dir.path().join("dnc")).unwrap());
    assert!(
        !copy
            .dir
            .read_summary()
            .unwrap()
            .eval
            .contains_key("baseline")
    );
    let copy = Run::open(&dir.path().join("copy"), None).unwrap();
    copy.run_all(true).unwrap();
    let copied = copy.dir.read_summary().unwrap();
    // The same model: the linear probe, which k does not touch, scores it alike.
    assert_eq!(
        copied.eval["baseline"].linear_top1,
        summary.eval["baseline"].linear_top1
    );
    assert!(copied.info["diagnostics"]["experts_ahead_of_baseline"].is_u64());
}
