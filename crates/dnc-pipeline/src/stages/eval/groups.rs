//! The clusters scored against groups of classes (`eval.class_groups`): on a fine-grained set,
//! whether k-means found the coarse kinds (GTSRB's prohibitory, danger, mandatory, ... signs)
//! even where it does not find the classes.

use crate::assignments::ClusterInfo;
use crate::error::PipelineError;
use crate::run::Run;
use dnc_cluster::{ari, majority_vote_accuracy, nmi};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How the clusters agree with the class groups, as stored in `summary.json`
/// (`info.cluster_groups`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupScores {
    /// The file the groups were read from.
    pub file: PathBuf,
    /// The groups, in the order their first class appears among the classes.
    pub groups: Vec<String>,
    pub nmi: f64,
    pub ari: f64,
    /// Majority-vote accuracy of the clusters against the groups.
    pub purity: f64,
    /// `composition[c][g]`: training images of group `g` in cluster `c`.
    pub composition: Vec<Vec<usize>>,
}

/// Scores the run's clusters against `eval.class_groups` into `info.cluster_groups`, when both
/// exist (a MoCLR run, or data without labels, has no clusters to score); a file that cannot be
/// read or names no group for a class is a warning that says why.
pub(super) fn run(run: &Run) -> Result<(), PipelineError> {
    let Some(file) = &run.cfg.eval.class_groups else {
        return Ok(());
    };
    let summary = run.dir.read_summary()?;
    let Some(info) = summary.info.get("cluster") else {
        return Ok(());
    };
    let info: ClusterInfo = serde_json::from_value(info.clone()).map_err(|e| {
        PipelineError::Other(format!(
            "{}: info.cluster: {e}",
            run.dir.summary_path().display()
        ))
    })?;
    if info.class_names.is_empty() {
        return Ok(());
    }
    let file = run.cfg.data.root.join(file);
    // A diagnostic: when the groups cannot be read or do not fit the classes (the preset run on
    // other data), the evaluation goes on without them.
    let scores = match read_class_groups(&file).and_then(|g| score_groups(&info, &g, &file)) {
        Ok(scores) => scores,
        Err(e) => {
            tracing::warn!("the clusters are not scored against class groups: {e}");
            return Ok(());
        }
    };
    tracing::info!(
        "clusters against the {} class groups of {}: NMI {:.3}, purity {:.3}",
        scores.groups.len(),
        file.display(),
        scores.nmi,
        scores.purity
    );
    run.dir.update_summary(|s| {
        s.info.insert(
            "cluster_groups".into(),
            serde_json::to_value(&scores).expect("serialises"),
        );
    })?;
    Ok(())
}

/// Each class's group from `path`: a list of `{"folder": CLASS, "group": GROUP}` objects, or an
/// object `{CLASS: GROUP}`.
fn read_class_groups(path: &Path) -> Result<HashMap<String, String>, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
    let bad = |what: String| {
        PipelineError::Other(format!(
            "{} (eval.class_groups): {what}; expected a list of {{\"folder\": CLASS, \"group\": \
             GROUP}} objects or one {{CLASS: GROUP}} object",
            path.display()
        ))
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let string = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(format!("{what} is {v}, not a string")))
    };
    match &value {
        Value::Array(items) => {
            let mut groups = HashMap::new();
            for (i, item) in items.iter().enumerate() {
                let field = |key: &str| {
                    item.get(key)
                        .ok_or_else(|| bad(format!("entry {i} has no `{key}`")))
                        .and_then(|v| string(v, &format!("entry {i}'s `{key}`")))
                };
                let (class, group) = (field("folder")?, field("group")?);
                if let Some(other) = groups.insert(class.clone(), group.clone())
                    && other != group
                {
                    return Err(bad(format!(
                        "the class `{class}` is in two groups, `{other}` and `{group}`"
                    )));
                }
            }
            Ok(groups)
        }
        Value::Object(map) => map
            .iter()
            .map(|(class, group)| Ok((class.clone(), string(group, &format!("`{class}`"))?)))
            .collect(),
        other => Err(bad(format!("the file holds {other}"))),
    }
}

/// The clusters of `info` scored against the groups of its classes.
fn score_groups(
    info: &ClusterInfo,
    group_of: &HashMap<String, String>,
    file: &Path,
) -> Result<GroupScores, PipelineError> {
    let mut groups: Vec<String> = Vec::new();
    let mut class_group = Vec::with_capacity(info.class_names.len());
    for class in &info.class_names {
        let group = group_of.get(class).ok_or_else(|| {
            PipelineError::Other(format!(
                "{} (eval.class_groups) names no group for the class `{class}`",
                file.display()
            ))
        })?;
        let g = match groups.iter().position(|x| x == group) {
            Some(g) => g,
            None => {
                groups.push(group.clone());
                groups.len() - 1
            }
        };
        class_group.push(g);
    }
    let mut composition = vec![vec![0usize; groups.len()]; info.composition.len()];
    let (mut truth, mut pred) = (Vec::new(), Vec::new());
    for (c, row) in info.composition.iter().enumerate() {
        for (class, &n) in row.iter().enumerate() {
            let g = class_group[class];
            composition[c][g] += n;
            truth.extend(std::iter::repeat_n(g as u32, n));
            pred.extend(std::iter::repeat_n(c as u32, n));
        }
    }
    if truth.is_empty() {
        return Err(PipelineError::Other(
            "the cluster stage recorded no labelled image to score against the class groups".into(),
        ));
    }
    Ok(GroupScores {
        file: file.to_path_buf(),
        groups,
        nmi: nmi(&truth, &pred)?,
        ari: ari(&truth, &pred)?,
        purity: majority_vote_accuracy(&truth, &pred)?,
        composition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ClusterInfo {
        ClusterInfo {
            k: 2,
            sizes: vec![6, 4],
            merged: Vec::new(),
            nmi: Some(0.0),
            ari: Some(0.0),
            purity: Some(0.0),
            // Classes a, b (group x) and c (group y); cluster 0 holds the x classes, cluster 1
            // mostly c.
            composition: vec![vec![3, 3, 0], vec![0, 1, 3]],
            class_names: vec!["a".into(), "b".into(), "c".into()],
            inertia: 0.0,
            examples: Vec::new(),
        }
    }

    fn groups(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(c, g)| (c.to_string(), g.to_string()))
            .collect()
    }

    #[test]
    fn classes_are_merged_into_their_groups_before_scoring() {
        let g = groups(&[("a", "x"), ("b", "x"), ("c", "y")]);
        let s = score_groups(&info(), &g, Path::new("g.json")).unwrap();
        assert_eq!(s.groups, ["x", "y"]);
        assert_eq!(s.composition, [vec![6, 0], vec![1, 3]]);
        // 9 of 10 images are in a cluster whose majority is their group.
        assert!((s.purity - 0.9).abs() < 1e-12);
        // Against the classes the same clusters have purity 0.6 (3 + 3 of 10).
        let per_class = groups(&[("a", "a"), ("b", "b"), ("c", "c")]);
        let s = score_groups(&info(), &per_class, Path::new("g.json")).unwrap();
        assert!((s.purity - 0.6).abs() < 1e-12);
        // One group for everything: every image agrees, and there is no information.
        let one = groups(&[("a", "x"), ("b", "x"), ("c", "x")]);
        let s = score_groups(&info(), &one, Path::new("g.json")).unwrap();
        assert_eq!((s.purity, s.nmi), (1.0, 0.0));
    }

    #[test]
    fn a_class_without_a_group_is_named() {
        let g = groups(&[("a", "x"), ("c", "y")]);
        let err = score_groups(&info(), &g, Path::new("g.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("g.json") && err.contains("`b`"), "{err}");
    }

    #[test]
    fn both_file_shapes_are_read_and_a_bad_one_is_explained() {
        let dir = std::env::temp_dir().join(format!("dnc-groups-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("list.json");
        std::fs::write(
            &list,
            r#"[{"id": 0, "folder": "a", "group": "x"}, {"folder": "c", "group": "y"}]"#,
        )
        .unwrap();
        assert_eq!(
            read_class_groups(&list).unwrap(),
            groups(&[("a", "x"), ("c", "y")])
        );
        let map = dir.join("map.json");
        std::fs::write(&map, r#"{"a": "x", "c": "y"}"#).unwrap();
        assert_eq!(
            read_class_groups(&map).unwrap(),
            groups(&[("a", "x"), ("c", "y")])
        );
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"[{"folder": "a"}]"#).unwrap();
        let err = read_class_groups(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.json") && err.contains("`group`"), "{err}");
        std::fs::write(
            &bad,
            r#"[{"folder": "a", "group": "x"}, {"folder": "a", "group": "y"}]"#,
        )
        .unwrap();
        let err = read_class_groups(&bad).unwrap_err().to_string();
        assert!(err.contains("`a` is in two groups"), "{err}");
        std::fs::write(&bad, r#"{"a": 3}"#).unwrap();
        let err = read_class_groups(&bad).unwrap_err().to_string();
        assert!(err.contains("`a`") && err.contains("not a string"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
