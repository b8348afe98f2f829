//! Checkpoint store: atomic saves, pruning, latest/best, restore checks.

use candle_core::{DType, Device, Var};

use super::*;
use crate::report::RunningMeans;

fn state(step: usize) -> TrainingState {
    TrainingState {
        format_version: FORMAT_VERSION,
        stage: "base".into(),
        epoch: step / 4,
        batch_in_epoch: step % 4,
        global_step: step,
        steps_per_epoch: 4,
        total_steps: 12,
        optimizer: "sgd".into(),
        keys: vec!["online".into()],
        finished: false,
        history: Vec::new(),
        current: RunningMeans::default(),
        best: None,
        extra: serde_json::json!({"rng": [1, 2]}),
        time: 0.0,
    }
}

fn varmap(value: f32) -> VarMap {
    let map = VarMap::new();
    let var = Var::from_vec(vec![value; 6], (2, 3), &Device::Cpu).unwrap();
    map.data().lock().unwrap().insert("w".into(), var);
    map
}

fn value(map: &VarMap) -> f32 {
    map.data().lock().unwrap()["w"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0]
}

fn vars(v: f32) -> Vec<(String, VarMap)> {
    vec![("online".into(), varmap(v))]
}

#[test]
fn save_then_latest_round_trips_and_ignores_temp_folders() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path().join("base"), 3);
    assert_eq!(store.latest().unwrap(), None);
    store
        .save(&state(3), &vars(3.0), &MomentumBuffers::new())
        .unwrap();
    store
        .save(&state(6), &vars(6.0), &MomentumBuffers::new())
        .unwrap();
    // A crash during a later save leaves a temp folder, possibly with a state.json already,
    // and a step folder without state.json can only come from outside: both are ignored.
    let temp = store.dir().join(".tmp-step-000000009-1234");
    std::fs::create_dir_all(&temp).unwrap();
    std::fs::write(temp.join(STATE_FILE), "{}").unwrap();
    std::fs::create_dir_all(store.dir().join("step-000000010")).unwrap();

    let latest = store.latest().unwrap().unwrap();
    assert_eq!(latest.state, state(6));
    assert!(latest.path.ends_with("base/step-000000006"));
    let target = vars(0.0);
    latest.load_vars(&target).unwrap();
    assert_eq!(value(&target[0].1), 6.0);

    // The next save removes the leftover temp folder.
    store
        .save(&state(9), &vars(9.0), &MomentumBuffers::new())
        .unwrap();
    assert!(!temp.exists());
    assert_eq!(store.latest().unwrap().unwrap().state.global_step, 9);
}

#[test]
fn keeps_only_the_last_n_and_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path(), 2);
    for step in [3, 6, 9, 12] {
        store
            .save(&state(step), &vars(step as f32), &MomentumBuffers::new())
            .unwrap();
    }
    let steps: Vec<usize> = store.list().unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, [9, 12]);
    assert_eq!(store.best().unwrap(), None);
    store
        .save_best(&state(6), &vars(6.0), &MomentumBuffers::new())
        .unwrap();
    store
        .save_best(&state(9), &vars(9.0), &MomentumBuffers::new())
        .unwrap();
    let best = store.best().unwrap().unwrap();
    assert_eq!(best.state.global_step, 9);
    let target = vars(0.0);
    best.load_vars(&target).unwrap();
    assert_eq!(value(&target[0].1), 9.0);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "no temp folder is left: {names:?}");
}

#[test]
fn saving_the_same_step_twice_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path(), 2);
    store
        .save(&state(4), &vars(1.0), &MomentumBuffers::new())
        .unwrap();
    store
        .save(&state(4), &vars(2.0), &MomentumBuffers::new())
        .unwrap();
    let target = vars(0.0);
    store.latest().unwrap().unwrap().load_vars(&target).unwrap();
    assert_eq!(value(&target[0].1), 2.0);
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn mismatched_keys_versions_and_names_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path(), 2);
    let saved = store
        .save(&state(3), &vars(3.0), &MomentumBuffers::new())
        .unwrap();

    let two = vec![
        ("online".into(), varmap(0.0)),
        ("target".into(), varmap(0.0)),
    ];
    let msg = saved.load_vars(&two).unwrap_err().to_string();
    assert!(
        msg.contains(r#"holds the maps ["online"], the train step has ["online", "target"]"#),
        "{msg}"
    );

    let other = VarMap::new();
    let var = Var::zeros(3, DType::F32, &Device::Cpu).unwrap();
    other.data().lock().unwrap().insert("v".into(), var);
    let msg = saved
        .load_vars(&[("online".into(), other)])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("online.safetensors"), "{msg}");
    assert!(msg.ends_with("missing [v]; unexpected [w]"), "{msg}");

    let bad = store.save(
        &state(6),
        &[("a/b".into(), varmap(1.0))],
        &MomentumBuffers::new(),
    );
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("\"a/b\" must be a plain word")
    );

    let file = saved.path.join(STATE_FILE);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"format_version\": 1", "\"format_version\": 7");
    std::fs::write(&file, text).unwrap();
    let msg = Checkpoint::open(&saved.path).unwrap_err().to_string();
    assert!(
        msg.contains("format version Some(7), this build reads version 1"),
        "{msg}"
    );
}

#[test]
fn restore_changes_nothing_when_the_optimizer_file_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path(), 2);
    let map = varmap(3.0);
    let params: Vec<(String, Var)> = vec![("w".into(), map.data().lock().unwrap()["w"].clone())];
    let mut buffers = MomentumBuffers::new();
    let mut grads = candle_core::backprop::GradStore::default();
    grads.insert(&params[0].1, params[0].1.ones_like().unwrap());
    let mut opt = crate::optim::Sgd::new(crate::optim::SgdConfig::default()).unwrap();
    crate::optim::Optimizer::step(&mut opt, &params, &grads, 0.1).unwrap();
    buffers.clone_from(crate::optim::Optimizer::buffers(&opt));
    let saved = store
        .save(&state(3), &[("online".into(), map)], &buffers)
        .unwrap();

    let target = vars(0.0);
    let wrong: Vec<(String, Var)> =
        vec![("w".into(), Var::zeros(4, DType::F32, &Device::Cpu).unwrap())];
    let mut restored = MomentumBuffers::new();
    let msg = saved
        .restore(&target, &mut restored, &wrong)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("optimizer.safetensors") && msg.contains("mismatched [w: file [2, 3]"),
        "{msg}"
    );
    assert_eq!(value(&target[0].1), 0.0);
    assert!(restored.is_empty());

    let right: Vec<(String, Var)> =
        vec![("w".into(), target[0].1.data().lock().unwrap()["w"].clone())];
    saved.restore(&target, &mut restored, &right).unwrap();
    assert!((value(&target[0].1) - (3.0 - 0.1 * (1.0 + 5e-4 * 3.0))).abs() < 1e-6);
    assert_eq!(restored.len(), 1);
}

#[test]
fn a_failed_save_names_the_path_and_keeps_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path().join("base"), 3);
    store
        .save(&state(4), &vars(4.0), &MomentumBuffers::new())
        .unwrap();
    // Something in the way of the next save's temporary folder (as a full or failing disk
    // would stop it part-way): a file that is not a folder and cannot be removed as one.
    let temp = store
        .dir()
        .join(format!(".tmp-step-000000008-{}", std::process::id()));
    std::fs::write(&temp, b"in the way").unwrap();
    let err = store
        .save(&state(8), &vars(8.0), &MomentumBuffers::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&temp.display().to_string()), "{err}");
    let latest = store.latest().unwrap().unwrap();
    assert_eq!(latest.state.global_step, 4);
    let target = vars(0.0);
    latest.load_vars(&target).unwrap();
    assert_eq!(value(&target[0].1), 4.0);
}
