//! `hf://ORG/NAME[@REVISION][/FILE]`: where a checkpoint lives on the Hugging Face hub.
//!
//! The revision defaults to `main` and the file to `model.safetensors`. Organisation and repo
//! names follow the hub's rules (letters, digits, `-`, `_`, `.`; no `--` or `..`; at most 96
//! characters); a revision is a branch, a tag or a commit hash without `/`; the file is a path
//! inside the repo (`weights/model.safetensors`).

use crate::error::{HubError, Result};
use std::fmt;
use std::str::FromStr;

/// The URI scheme of hub references.
pub const SCHEME: &str = "hf://";
/// Revision used when the URI names none.
pub const DEFAULT_REVISION: &str = "main";
/// File used when the URI names none.
pub const DEFAULT_FILE: &str = "model.safetensors";

/// A parsed `hf://ORG/NAME[@REVISION][/FILE]` reference to a model repo file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HubUri {
    org: String,
    name: String,
    revision: String,
    file: String,
}

impl HubUri {
    /// Parses `hf://ORG/NAME[@REVISION][/FILE]`; the error names the bad part.
    pub fn parse(uri: &str) -> Result<Self> {
        let bad = |part: &'static str, reason: String| HubError::InvalidUri {
            uri: uri.to_string(),
            part,
            reason,
        };
        let rest = uri
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("scheme", format!("expected it to start with {SCHEME:?}")))?;
        let (org, rest) = rest
            .split_once('/')
            .ok_or_else(|| bad("name", "expected ORG/NAME after hf://".to_string()))?;
        check_repo_part(org).map_err(|r| bad("organisation", r))?;
        let (repo, file) = match rest.split_once('/') {
            Some((repo, file)) => (repo, Some(file)),
            None => (rest, None),
        };
        let (name, revision) = match repo.split_once('@') {
            Some((name, revision)) => (name, Some(revision)),
            None => (repo, None),
        };
        check_repo_part(name).map_err(|r| bad("name", r))?;
        let revision = revision.unwrap_or(DEFAULT_REVISION);
        check_revision(revision).map_err(|r| bad("revision", r))?;
        let file = file.unwrap_or(DEFAULT_FILE);
        check_file(file).map_err(|r| bad("file", r))?;
        Ok(Self {
            org: org.to_string(),
            name: name.to_string(),
            revision: revision.to_string(),
            file: file.to_string(),
        })
    }

    /// `true` for strings that should be parsed as hub URIs rather than local paths.
    pub fn is_hub_uri(s: &str) -> bool {
        s.starts_with(SCHEME)
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ORG/NAME`, as the hub names the repo.
    pub fn repo_id(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }

    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Path of the file inside the repo.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The same repo and revision, another file.
    pub fn with_file(&self, file: &str) -> Result<Self> {
        check_file(file).map_err(|reason| HubError::InvalidUri {
            uri: format!("{SCHEME}{}@{}/{file}", self.repo_id(), self.revision),
            part: "file",
            reason,
        })?;
        Ok(Self {
            file: file.to_string(),
            ..self.clone()
        })
    }
}

impl FromStr for HubUri {
    type Err = HubError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for HubUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (org, name, rev, file) = (&self.org, &self.name, &self.revision, &self.file);
        write!(f, "{SCHEME}{org}/{name}@{rev}/{file}")
    }
}

fn check_repo_part(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".to_string());
    }
    if s.len() > 96 {
        return Err(format!("{s:?} is longer than 96 characters"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{s:?} contains {c:?} (allowed: letters, digits, '-', '_', '.')"
        ));
    }
    if s.contains("--") || s.contains("..") {
        return Err(format!("{s:?} contains '--' or '..'"));
    }
    if s.starts_with(['-', '.']) || s.ends_with(['-', '.']) {
        return Err(format!("{s:?} starts or ends with '-' or '.'"));
    }
    Ok(())
}

fn check_revision(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("it is empty after '@'".to_string());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{s:?} contains {c:?} (allowed: letters, digits, '-', '_', '.')"
        ));
    }
    if s.contains("..") {
        return Err(format!("{s:?} contains '..'"));
    }
    Ok(())
}

fn check_file(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("it is empty after '/'".to_string());
    }
    if s.contains('\\') || s.chars().any(char::is_control) {
        return Err(format!("{s:?} contains a backslash or a control character"));
    }
    if s.split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!("{s:?} has an empty, '.' or '..' path segment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(u: &HubUri) -> (&str, &str, &str, &str) {
        (u.org(), u.name(), u.revision(), u.file())
    }

    #[test]
    fn defaults_and_explicit_parts() {
        let u = HubUri::parse("hf://timm/resnet50.a1_in1k").unwrap();
        assert_eq!(
            parts(&u),
            ("timm", "resnet50.a1_in1k", "main", "model.safetensors")
        );
        assert_eq!(u.repo_id(), "timm/resnet50.a1_in1k");
        let u: HubUri = "hf://org/name@v1.0/weights/backbone.safetensors"
            .parse()
            .unwrap();
        assert_eq!(
            parts(&u),
            ("org", "name", "v1.0", "weights/backbone.safetensors")
        );
        let u = HubUri::parse("hf://org/name/pytorch_model.safetensors").unwrap();
        assert_eq!(
            parts(&u),
            ("org", "name", "main", "pytorch_model.safetensors")
        );
        let hash = "0123456789abcdef0123456789abcdef01234567";
        let u = HubUri::parse(&format!("hf://o/n@{hash}")).unwrap();
        assert_eq!(u.revision(), hash);
    }

    #[test]
    fn display_round_trips() {
        for s in ["hf://a/b", "hf://a-b/c_d.e@dev/x/y.safetensors"] {
            let u = HubUri::parse(s).unwrap();
            assert_eq!(HubUri::parse(&u.to_string()).unwrap(), u);
        }
        assert_eq!(
            HubUri::parse("hf://a/b").unwrap().to_string(),
            "hf://a/b@main/model.safetensors"
        );
        let cfg = HubUri::parse("hf://a/b@r")
            .unwrap()
            .with_file("config.json")
            .unwrap();
        assert_eq!(cfg.to_string(), "hf://a/b@r/config.json");
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            ("https://org/name", "scheme"),
            ("hf://org", "name"),
            ("hf:///name", "organisation"),
            ("hf://or g/name", "organisation"),
            ("hf://org/", "name"),
            ("hf://org/na--me", "name"),
            ("hf://org/.name", "name"),
            ("hf://org/name@", "revision"),
            ("hf://org/name@a b", "revision"),
            ("hf://org/name/", "file"),
            ("hf://org/name@main/../secret", "file"),
            ("hf://org/name/a//b", "file"),
        ];
        for (uri, part) in cases {
            match HubUri::parse(uri) {
                Err(HubError::InvalidUri { part: p, .. }) => assert_eq!(p, part, "{uri}"),
                other => panic!("{uri}: expected an invalid-URI error, got {other:?}"),
            }
            let msg = HubUri::parse(uri).unwrap_err().to_string();
            assert!(
                msg.contains(&format!("bad {part}")) && msg.contains(uri),
                "{msg}"
            );
        }
        assert!(HubUri::is_hub_uri("hf://a/b") && !HubUri::is_hub_uri("runs/a/model.safetensors"));
    }
}
