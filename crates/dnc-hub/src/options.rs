//! Where the hub cache lives and whether the network may be used, read from the environment
//! variables that Python's `huggingface_hub` reads.
//!
//! | variable | effect |
//! |---|---|
//! | `HF_HUB_CACHE` (or the older `HUGGINGFACE_HUB_CACHE`) | the cache folder |
//! | `HF_HOME` | the cache is `$HF_HOME/hub` (default `$XDG_CACHE_HOME/huggingface`, then `~/.cache/huggingface`) |
//! | `HF_HUB_OFFLINE` | `1`, `ON`, `YES` or `TRUE`: use the cache only, never the network |
//! | `HF_TOKEN` (or the older `HUGGING_FACE_HUB_TOKEN`) | the access token for private or gated repos |
//! | `HF_ENDPOINT` | another hub server (a mirror) |

use std::path::PathBuf;

/// How hub files are resolved: cache folder, offline switch, token and endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The hub cache (`models--ORG--NAME/{refs,snapshots,blobs}` inside).
    pub cache_dir: PathBuf,
    /// Resolve from the cache only, without any network request.
    pub offline: bool,
    /// Access token sent to the hub, if any.
    pub token: Option<String>,
    /// Hub server; `None` for the public hub (`https://huggingface.co`).
    pub endpoint: Option<String>,
    /// Attempts per request on transient failures; `None` for the client's default (retries
    /// with back-off for a few seconds before falling back to the cache).
    pub max_attempts: Option<usize>,
}

impl HubOptions {
    /// Reads the options from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the options through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let cache_dir = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home(&get).join("hub"));
        Self {
            cache_dir,
            offline: get("HF_HUB_OFFLINE").is_some_and(|v| is_true(&v)),
            token: get("HF_TOKEN").or_else(|| get("HUGGING_FACE_HUB_TOKEN")),
            endpoint: get("HF_ENDPOINT"),
            max_attempts: None,
        }
    }

    /// Options for a given cache folder, offline, without token: what tests and air-gapped
    /// machines use.
    pub fn offline_cache(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            offline: true,
            token: None,
            endpoint: None,
            max_attempts: None,
        }
    }
}

/// The token is never printed.
impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("endpoint", &self.endpoint)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

fn hf_home(get: &impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(home) = get("HF_HOME") {
        return PathBuf::from(home);
    }
    if let Some(xdg) = get("XDG_CACHE_HOME") {
        return PathBuf::from(xdg).join("huggingface");
    }
    let home = get("HOME").unwrap_or_else(|| "/tmp".to_string());
    PathBuf::from(home).join(".cache").join("huggingface")
}

/// `huggingface_hub`'s reading of boolean variables.
fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn opts(vars: &[(&str, &str)]) -> HubOptions {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubOptions::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn cache_dir_follows_huggingface_hub_precedence() {
        let o = opts(&[("HOME", "/home/u")]);
        assert_eq!(o.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        let o = opts(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(o.cache_dir, PathBuf::from("/x/huggingface/hub"));
        let o = opts(&[("XDG_CACHE_HOME", "/x"), ("HF_HOME", "/hf")]);
        assert_eq!(o.cache_dir, PathBuf::from("/hf/hub"));
        let o = opts(&[("HF_HOME", "/hf"), ("HUGGINGFACE_HUB_CACHE", "/old")]);
        assert_eq!(o.cache_dir, PathBuf::from("/old"));
        let o = opts(&[("HUGGINGFACE_HUB_CACHE", "/old"), ("HF_HUB_CACHE", "/new")]);
        assert_eq!(o.cache_dir, PathBuf::from("/new"));
    }

    #[test]
    fn offline_token_and_endpoint() {
        assert!(!opts(&[]).offline);
        for v in ["1", "true", "YES", "on"] {
            assert!(opts(&[("HF_HUB_OFFLINE", v)]).offline, "{v}");
        }
        for v in ["0", "false", "no", ""] {
            assert!(!opts(&[("HF_HUB_OFFLINE", v)]).offline, "{v}");
        }
        let o = opts(&[
            ("HUGGING_FACE_HUB_TOKEN", "old"),
            ("HF_ENDPOINT", "http://m"),
        ]);
        assert_eq!(o.token.as_deref(), Some("old"));
        assert_eq!(o.endpoint.as_deref(), Some("http://m"));
        let o = opts(&[("HUGGING_FACE_HUB_TOKEN", "old"), ("HF_TOKEN", "hf_secret")]);
        assert_eq!(o.token.as_deref(), Some("hf_secret"));
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("hf_secret") && shown.contains("<set>"),
            "{shown}"
        );
    }
}
