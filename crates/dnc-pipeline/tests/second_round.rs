//! A second round of Divide and Contrast: a run whose base is the student of a first run
//! (`init_from` the student's file, `base.epochs = 0`) divides, trains experts and distils
//! again from that student, untouched; the settings that cannot hold for it are refused by name.

mod common;

use common::tiny;

use dnc_pipeline::{Run, RunConfig, Stage};
use std::collections::HashMap;
use std::path::Path;

fn second_round(student: &Path) -> impl Fn(&mut RunConfig) {
    let student = student.display().to_string();
    move |c: &mut RunConfig| {
        c.init_from = Some(student.clone());
        c.base.epochs = 0;
    }
}

fn tensors(path: &Path) -> HashMap<String, Vec<f32>> {
    candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(name, t)| (name, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

#[test]
fn a_second_round_starts_from_the_first_rounds_student_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let first = Run::create(tiny(|_| {}), &dir.path().join("first")).unwrap();
    first.run_all(false).unwrap();
    let student = dir.path().join("first/distill/model.safetensors");

    let second = Run::create(tiny(second_round(&student)), &dir.path().join("second")).unwrap();
    second.run_all(false).unwrap();
    // The whole encoder (backbone and projector) is the student's, bit for bit.
    let (want, got) = (
        tensors(&student),
        tensors(&dir.path().join("second/base/model.safetensors")),
    );
    assert!(want.keys().any(|k| k.starts_with("projector.")));
    assert_eq!(want, got);
    let summary = second.dir.read_summary().unwrap();
    assert_eq!(
        summary.info["init_from"]["tensors"],
        want.len(),
        "{:?}",
        summary.info
    );
    assert_eq!(summary.info["base_training"]["epochs"], 0);
    // Evaluated with the same settings, the second round's base is the first round's student.
    let first_student = &first.dir.read_summary().unwrap().eval["dnc"];
    let second_base = &summary.eval["base"];
    assert_eq!(first_student.knn_top1, second_base.knn_top1);
    assert_eq!(first_student.linear_top1, second_base.linear_top1);
    assert!(summary.is_done("distill") && summary.eval.contains_key("dnc"));
    assert!(dir.path().join("second/experts").is_dir());
    let report = std::fs::read_to_string(dir.path().join("second/report.md")).unwrap();
    assert!(
        report.contains(&student.display().to_string()) && report.contains("as it is"),
        "{report}"
    );

    // The student's file with its regression heads is not an encoder's: refused, naming the key
    // and a head, and pointing to the encoder's file.
    let with_heads = dir.path().join("first/distill/student.safetensors");
    let third = Run::create(tiny(second_round(&with_heads)), &dir.path().join("third")).unwrap();
    let err = third.run_stage(Stage::Base, false).unwrap_err().to_string();
    assert!(
        err.contains("init_from") && err.contains("heads.") && err.contains("distill/model"),
        "{err}"
    );
}

#[test]
fn a_base_of_no_epochs_needs_a_model_to_start_from_and_has_no_matched_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let err = Run::create(tiny(|c| c.base.epochs = 0), &dir.path().join("bare"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("base.epochs"), "{err}");

    // A first round, trained as far as its student.
    let first = Run::create(tiny(|_| {}), &dir.path().join("first")).unwrap();
    first.run_all(false).unwrap();
    let student = dir.path().join("first/distill/model.safetensors");
    let with_baseline = |c: &mut RunConfig| {
        second_round(&student)(c);
        c.baseline = true;
    };
    let err = Run::create(tiny(with_baseline), &dir.path().join("baseline"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("baseline") && err.contains("base.epochs = 0"),
        "{err}"
    );

    // Taking a baseline is refused before anything is linked, even from a MoCLR run whose
    // epochs equal this run's own (0 + 2 + 1).
    let moclr = Run::create(
        tiny(|c| {
            c.method = dnc_pipeline::config::Method::Moclr;
            c.base.epochs = 3;
        }),
        &dir.path().join("moclr"),
    )
    .unwrap();
    moclr.run_stage(Stage::Base, false).unwrap();
    let mut second = Run::create(tiny(second_round(&student)), &dir.path().join("second")).unwrap();
    let err = second
        .adopt_baseline(&dir.path().join("moclr"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("base.epochs = 0"), "{err}");
    assert!(!dir.path().join("second/baseline").exists());
    assert!(!second.cfg.baseline);
}

#[test]
fn a_model_file_of_another_shape_is_refused_by_tensor_name() {
    let dir = tempfile::tempdir().unwrap();
    let first = Run::create(tiny(|_| {}), &dir.path().join("first")).unwrap();
    first.run_stage(Stage::Base, false).unwrap();
    let base = dir.path().join("first/base/model.safetensors");
    let wider = |c: &mut RunConfig| {
        second_round(&base)(c);
        c.model.projector.out = 24;
    };
    let second = Run::create(tiny(wider), &dir.path().join("second")).unwrap();
    let err = second
        .run_stage(Stage::Base, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("projector.") && err.contains("first/base/model.safetensors"),
        "{err}"
    );
    assert!(!second.dir.read_summary().unwrap().is_done("base"));
}
