//! Resolving an `hf://` URI to local files through the `hf-hub` client and its cache.
//!
//! The cache has the layout of Python's `huggingface_hub`, so both share one cache:
//! `models--ORG--NAME/refs/<branch>` holds a commit hash and
//! `models--ORG--NAME/snapshots/<commit>/<file>` the file (a link into `blobs/`). Online, a
//! file is downloaded into the cache when missing or stale (and the cached copy is used when
//! the hub cannot be reached); offline (`HF_HUB_OFFLINE=1`), only the cache is read and no
//! request is made.

use crate::error::{HubError, Result};
use crate::options::HubOptions;
use crate::uri::HubUri;
use hf_hub::{HFClientBuilder, HFError, HFRepositorySync, RepoTypeModel};
use std::path::PathBuf;

/// Name of the model configuration fetched beside the weights when the repo has one.
pub const CONFIG_FILE: &str = "config.json";

/// Local paths of a resolved checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFiles {
    /// The weights file named by the URI.
    pub weights: PathBuf,
    /// `config.json` from the same folder of the repo, when it has one.
    pub config: Option<PathBuf>,
}

/// Resolves `uri` to local files: its weights file and, when present, the `config.json`
/// beside it (in the same folder of the repo).
///
/// Fails with [`HubError::NotFound`] naming the repo, revision and file when the weights are
/// neither in the cache nor (online) on the hub, and with [`HubError::Download`] when the hub
/// could not be asked and nothing is cached.
pub fn resolve(uri: &HubUri, options: &HubOptions) -> Result<ResolvedFiles> {
    let repo = repository(uri, options)?;
    let weights = fetch(&repo, uri, options)?.ok_or_else(|| not_found(uri, options, None))?;
    let config_uri = uri.with_file(&sibling(uri.file(), CONFIG_FILE))?;
    let config = if config_uri.file() == uri.file() {
        None
    } else {
        // The configuration is informative: failing to fetch it never blocks the weights.
        fetch(&repo, &config_uri, options).unwrap_or_else(|e| {
            tracing::warn!(uri = %config_uri, error = %e, "cannot fetch the model configuration");
            None
        })
    };
    tracing::info!(
        uri = %uri,
        weights = %weights.display(),
        config = ?config,
        offline = options.offline,
        "resolved hub checkpoint"
    );
    Ok(ResolvedFiles { weights, config })
}

/// Resolves an `--init-from` value: an `hf://` URI through [`resolve`], anything else as a
/// local safetensors file (with the `config.json` beside it, when there is one).
pub fn resolve_checkpoint(spec: &str, options: &HubOptions) -> Result<ResolvedFiles> {
    if HubUri::is_hub_uri(spec) {
        return resolve(&HubUri::parse(spec)?, options);
    }
    let weights = PathBuf::from(spec);
    if !weights.is_file() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        return Err(HubError::io("cannot find the checkpoint", weights, source));
    }
    let config = weights
        .parent()
        .map(|dir| dir.join(CONFIG_FILE))
        .filter(|c| c.is_file());
    Ok(ResolvedFiles { weights, config })
}

fn repository(uri: &HubUri, options: &HubOptions) -> Result<HFRepositorySync<RepoTypeModel>> {
    let mut builder = HFClientBuilder::new().cache_dir(&options.cache_dir);
    if let Some(token) = &options.token {
        builder = builder.token(token);
    }
    if let Some(endpoint) = &options.endpoint {
        builder = builder.endpoint(endpoint);
    }
    if let Some(attempts) = options.max_attempts {
        builder = builder.retry_max_attempts(attempts.max(1));
    }
    let client = builder.build_sync().map_err(|e| HubError::Download {
        repo: uri.repo_id(),
        revision: uri.revision().to_string(),
        file: uri.file().to_string(),
        detail: format!("cannot create the hub client: {e}"),
    })?;
    Ok(client.model(uri.org(), uri.name()))
}

/// The local path of `uri`'s file, `Ok(None)` when it does not exist (or, offline, is not
/// cached), an error for anything else.
fn fetch(
    repo: &HFRepositorySync<RepoTypeModel>,
    uri: &HubUri,
    options: &HubOptions,
) -> Result<Option<PathBuf>> {
    let result = repo
        .download_file()
        .filename(uri.file())
        .revision(uri.revision())
        .local_files_only(options.offline)
        .send();
    match result {
        Ok(path) => Ok(Some(path)),
        Err(
            HFError::LocalEntryNotFound { .. }
            | HFError::EntryNotFound { .. }
            | HFError::RevisionNotFound { .. },
        ) => Ok(None),
        Err(e @ HFError::RepoNotFound { .. }) => Err(not_found(uri, options, Some(e.to_string()))),
        Err(e) => Err(HubError::Download {
            repo: uri.repo_id(),
            revision: uri.revision().to_string(),
            file: uri.file().to_string(),
            detail: format!(
                "{e} (and no cached copy in {})",
                options.cache_dir.display()
            ),
        }),
    }
}

fn not_found(uri: &HubUri, options: &HubOptions, detail: Option<String>) -> HubError {
    let cache = options.cache_dir.display();
    let (where_, hint) = if options.offline {
        (
            format!("in the local cache {cache} (offline: HF_HUB_OFFLINE is set)"),
            "download it once online, or unset HF_HUB_OFFLINE",
        )
    } else {
        (
            format!("on the hub or in the local cache {cache}"),
            "check the repo name, revision and file, and the token (HF_TOKEN) for private repos",
        )
    };
    HubError::NotFound {
        repo: uri.repo_id(),
        revision: uri.revision().to_string(),
        file: uri.file().to_string(),
        where_,
        detail: detail.map_or_else(|| hint.to_string(), |d| format!("{d}; {hint}")),
    }
}

/// `name` in the folder of `file` (`a/b.safetensors` → `a/config.json`).
fn sibling(file: &str, name: &str) -> String {
    match file.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
