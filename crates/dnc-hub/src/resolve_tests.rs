//! Tests of hub resolution against a cache folder built in a temporary directory: no network.

use super::*;
use crate::cache::insert_cached_file;
use std::collections::HashMap;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn cache_with_model(dir: &std::path::Path) {
    insert_cached_file(
        dir,
        "org/name",
        "main",
        COMMIT,
        "model.safetensors",
        b"weights",
    )
    .unwrap();
    insert_cached_file(dir, "org/name", "main", COMMIT, "config.json", b"{}").unwrap();
    insert_cached_file(dir, "org/name", "v2", OTHER, "sub/model.safetensors", b"w2").unwrap();
}

fn uri(s: &str) -> HubUri {
    HubUri::parse(s).unwrap()
}

#[test]
fn offline_resolution_reads_the_cache_layout() {
    let dir = tempfile::tempdir().unwrap();
    cache_with_model(dir.path());
    let opts = HubOptions::offline_cache(dir.path());
    let files = resolve(&uri("hf://org/name"), &opts).unwrap();
    let snapshot = dir.path().join("models--org--name/snapshots").join(COMMIT);
    assert_eq!(files.weights, snapshot.join("model.safetensors"));
    assert_eq!(files.config, Some(snapshot.join("config.json")));
    assert_eq!(std::fs::read(&files.weights).unwrap(), b"weights");

    // A tag, a file in a folder, no config.json beside it.
    let files = resolve(&uri("hf://org/name@v2/sub/model.safetensors"), &opts).unwrap();
    assert_eq!(std::fs::read(&files.weights).unwrap(), b"w2");
    assert_eq!(files.config, None);
    // A commit hash needs no ref.
    let files = resolve(&uri(&format!("hf://org/name@{COMMIT}")), &opts).unwrap();
    assert_eq!(std::fs::read(&files.weights).unwrap(), b"weights");
}

#[test]
fn environment_variables_select_the_cache_and_offline_mode() {
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub");
    cache_with_model(&hub);
    let vars = HashMap::from([
        ("HF_HOME", dir.path().to_str().unwrap().to_string()),
        ("HF_HUB_OFFLINE", "1".to_string()),
    ]);
    let opts = HubOptions::from_lookup(|k| vars.get(k).cloned());
    assert!(opts.offline && opts.cache_dir == hub, "{opts:?}");
    let files = resolve(&uri("hf://org/name@main"), &opts).unwrap();
    assert!(files.weights.starts_with(&hub));
}

#[test]
fn missing_files_name_repo_revision_and_file() {
    let dir = tempfile::tempdir().unwrap();
    cache_with_model(dir.path());
    let opts = HubOptions::offline_cache(dir.path());
    for (u, repo, rev, file) in [
        (
            "hf://org/name/other.safetensors",
            "org/name",
            "main",
            "other.safetensors",
        ),
        ("hf://org/name@dev", "org/name", "dev", "model.safetensors"),
        (
            "hf://org/unknown@v1/w.safetensors",
            "org/unknown",
            "v1",
            "w.safetensors",
        ),
    ] {
        let err = resolve(&uri(u), &opts).unwrap_err();
        assert!(matches!(err, HubError::NotFound { .. }), "{err:?}");
        let msg = err.to_string();
        for needle in [
            repo,
            rev,
            file,
            "HF_HUB_OFFLINE",
            dir.path().to_str().unwrap(),
        ] {
            assert!(msg.contains(needle), "{needle:?} not in {msg}");
        }
    }
}

#[test]
fn online_mode_falls_back_to_the_cache_when_the_hub_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    cache_with_model(dir.path());
    let opts = HubOptions {
        offline: false,
        endpoint: Some("http://127.0.0.1:9".to_string()),
        max_attempts: Some(1),
        ..HubOptions::offline_cache(dir.path())
    };
    let files = resolve(&uri("hf://org/name"), &opts).unwrap();
    assert_eq!(std::fs::read(&files.weights).unwrap(), b"weights");
    let err = resolve(&uri("hf://org/name/absent.safetensors"), &opts).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("org/name") && msg.contains("absent.safetensors"),
        "{msg}"
    );
}

#[test]
fn cache_helper_rejects_bad_commits_and_names_folders_like_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let err = insert_cached_file(dir.path(), "o/n", "main", "abc", "f", b"").unwrap_err();
    assert!(err.to_string().contains("\"abc\""), "{err}");
    assert_eq!(
        crate::cache::repo_folder("timm/resnet50.a1_in1k"),
        "models--timm--resnet50.a1_in1k"
    );
}

#[test]
fn checkpoint_specs_are_hub_uris_or_local_files() {
    let dir = tempfile::tempdir().unwrap();
    cache_with_model(dir.path());
    let opts = HubOptions::offline_cache(dir.path());
    let hub = resolve_checkpoint("hf://org/name", &opts).unwrap();
    assert!(hub.weights.starts_with(dir.path()) && hub.config.is_some());
    let local = dir.path().join("export");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("model.safetensors"), b"w").unwrap();
    let spec = local.join("model.safetensors");
    let files = resolve_checkpoint(spec.to_str().unwrap(), &opts).unwrap();
    assert_eq!((files.weights, files.config), (spec.clone(), None));
    std::fs::write(local.join("config.json"), b"{}").unwrap();
    let files = resolve_checkpoint(spec.to_str().unwrap(), &opts).unwrap();
    assert_eq!(files.config, Some(local.join("config.json")));
    let err = resolve_checkpoint("runs/none/model.safetensors", &opts).unwrap_err();
    assert!(
        err.to_string().contains("runs/none/model.safetensors"),
        "{err}"
    );
    let err = resolve_checkpoint("hf://org", &opts).unwrap_err();
    assert!(
        matches!(err, HubError::InvalidUri { part: "name", .. }),
        "{err:?}"
    );
}
