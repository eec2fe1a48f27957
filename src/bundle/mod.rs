//! Model bundles (DESIGN §4): `manifest.json` + safetensors shards of at most 64 MiB + the
//! tokenizer files. Tensors are stored under their module paths in the official (PyTorch) layout;
//! every file carries its byte size and SHA-256, checked before it is used. Loading works from
//! bytes, one shard at a time, so the page can stream a bundle from the network.

use std::collections::BTreeMap;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::dynrefer::{DynRefer, DynReferConfig};

pub const FORMAT: &str = "dynrefer-bundle";
pub const VERSION: u32 = 1;
pub const MAX_SHARD_BYTES: usize = 64 << 20;
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{bundle}: manifest.json: {message}")]
    Manifest { bundle: String, message: String },
    #[error("{bundle}: {file}: {message}")]
    File { bundle: String, file: String, message: String },
    #[error("{bundle}: {file}: {size} bytes, the manifest says {expected} (truncated or replaced?)")]
    Size { bundle: String, file: String, size: usize, expected: usize },
    #[error("{bundle}: {file}: SHA-256 {actual} does not match the manifest's {expected} (corrupt or tampered)")]
    Hash { bundle: String, file: String, actual: String, expected: String },
    #[error("{bundle}: the shards miss {count} tensor(s) of the model, e.g. {example}")]
    Missing { bundle: String, count: usize, example: String },
}

/// One file of the bundle.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub file: String,
    pub bytes: usize,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TensorEntry {
    pub shard: usize,
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// The names behind the heads' outputs, in file order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VocabularyNames {
    pub tags: Vec<String>,
    pub attributes: Vec<String>,
    /// Prompt templates per attribute (their embeddings are consecutive).
    pub templates_per_attribute: Vec<usize>,
    pub classes: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub name: String,
    pub config: DynReferConfig,
    pub tag_threshold: f32,
    pub vocabularies: VocabularyNames,
    /// The T5 `tokenizer.json` and the CLIP BPE merges (for custom vocabularies).
    pub t5_tokenizer: FileEntry,
    pub clip_bpe: FileEntry,
    pub shards: Vec<FileEntry>,
    pub tensors: BTreeMap<String, TensorEntry>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    pub fn parse(bundle: &str, bytes: &[u8]) -> Result<Manifest, BundleError> {
        let err = |message: String| BundleError::Manifest { bundle: bundle.to_string(), message };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| err(format!("not JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(err(format!("not a {FORMAT} manifest")));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(VERSION) => {}
            other => {
                return Err(err(format!("format version {other:?}; this build reads version {VERSION}")));
            }
        }
        serde_json::from_value(value).map_err(|e| err(e.to_string()))
    }

    /// Checks a file's size and hash against its entry.
    pub fn verify(bundle: &str, entry: &FileEntry, bytes: &[u8]) -> Result<(), BundleError> {
        if bytes.len() != entry.bytes {
            return Err(BundleError::Size {
                bundle: bundle.into(),
                file: entry.file.clone(),
                size: bytes.len(),
                expected: entry.bytes,
            });
        }
        let actual = sha256_hex(bytes);
        if actual != entry.sha256 {
            return Err(BundleError::Hash {
                bundle: bundle.into(),
                file: entry.file.clone(),
                actual,
                expected: entry.sha256.clone(),
            });
        }
        Ok(())
    }

    pub fn total_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.bytes).sum::<usize>() + self.t5_tokenizer.bytes + self.clip_bpe.bytes
    }
}

/// Loading progress: bytes verified so far, of all shards.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub file: String,
}

/// Builds the model of a manifest and fills it shard by shard.
pub struct Loader {
    pub bundle: String,
    pub manifest: Manifest,
    pub model: DynRefer,
    pub device: Device,
    applied: usize,
}

impl Loader {
    pub fn new(bundle: &str, manifest: Manifest, device: &Device) -> Loader {
        let model = manifest.config.init(device);
        Loader { bundle: bundle.to_string(), manifest, model, device: device.clone(), applied: 0 }
    }

    /// Verifies shard `index` and moves its tensors to the device; the bytes are dropped after.
    pub fn add_shard(&mut self, index: usize, bytes: Vec<u8>) -> Result<(), BundleError> {
        let entry = &self.manifest.shards[index];
        Manifest::verify(&self.bundle, entry, &bytes)?;
        let mut store =
            SafetensorsStore::from_bytes(Some(bytes)).with_from_adapter(PyTorchToBurnAdapter).allow_partial(true);
        let result = self.model.load_from(&mut store).map_err(|e| BundleError::File {
            bundle: self.bundle.clone(),
            file: entry.file.clone(),
            message: e.to_string().lines().next().unwrap_or_default().to_string(),
        })?;
        if !result.errors.is_empty() || !result.unused.is_empty() {
            let message = format!("does not fit the model: {:?} {:?}", result.errors, result.unused);
            return Err(BundleError::File { bundle: self.bundle.clone(), file: entry.file.clone(), message });
        }
        self.applied += result.applied.len();
        Ok(())
    }

    /// The model, once every tensor has arrived.
    pub fn finish(self) -> Result<(DynRefer, Manifest), BundleError> {
        let mut count = ParamCount::default();
        self.model.visit(&mut count);
        let expected = count.0;
        if self.applied < expected {
            let loaded: std::collections::HashSet<&String> = self.manifest.tensors.keys().collect();
            let example = self
                .model
                .collect(None, Some(Box::new(BurnToPyTorchAdapter)), false)
                .into_iter()
                .map(|t| t.name)
                .find(|n| !loaded.contains(n))
                .unwrap_or_default();
            return Err(BundleError::Missing { bundle: self.bundle, count: expected - self.applied, example });
        }
        Ok((self.model, self.manifest))
    }
}

/// Counts a module's float parameters without touching their values.
#[derive(Default)]
struct ParamCount(usize);

impl ModuleVisitor for ParamCount {
    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        self.0 += 1;
    }
}
