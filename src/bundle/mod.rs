//! Model bundles: `manifest.json` + shards of at most 64 MiB + the tokenizer files.
//! Every file carries its byte size and SHA-256, checked before it is used. Loading works from
//! bytes, one shard at a time, so the page can stream a bundle from the network.
//!
//! Float bundles (`f32`, `f16`) hold safetensors shards in the official (PyTorch) layout. Quantized
//! bundles (`q8`, `q4`) hold burnpack shards in burn's layout, since safetensors cannot store
//! burn's quantized tensors: linear and embedding weights block-quantized, the rest in f32.

pub mod load;

use std::collections::BTreeMap;

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::burn_pack::{Bytes, Reader, Tensor as PackTensor};
use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::quantization::{QuantScheme, QuantValue, ScaleDtype, quantized_data_len};
use burn::tensor::{DType, f16};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kernels;
use crate::model::dynrefer::{DynRefer, DynReferConfig};

pub const FORMAT: &str = "dynrefer-bundle";
pub const VERSION: u32 = 1;
pub const MAX_SHARD_BYTES: usize = 64 << 20;
pub const MANIFEST: &str = "manifest.json";
/// The largest manifest read: the real model's is about 0.5 MB (its vocabularies' names included).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// The largest bundle file: a tensor over [`MAX_SHARD_BYTES`] gets a shard of its own, and the real
/// model's largest (T5's embedding, 263 MB in f32) stays far below this.
pub const MAX_FILE_BYTES: u64 = 1 << 31;
/// The most elements of one tensor (the real model's largest has 66 M).
const MAX_TENSOR_ELEMENTS: u64 = 1 << 32;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{bundle}: manifest.json: {message}")]
    Manifest { bundle: String, message: String },
    #[error("{bundle}: {file}: {message}")]
    File { bundle: String, file: String, message: String },
    #[error("{bundle}: {file}: {size} bytes, the manifest says {expected} (truncated or replaced?)")]
    Size { bundle: String, file: String, size: u64, expected: u64 },
    #[error("{bundle}: {file}: SHA-256 {actual} does not match the manifest's {expected} (corrupt or tampered)")]
    Hash { bundle: String, file: String, actual: String, expected: String },
    #[error("{bundle}: the shards miss {count} tensor(s) of the model, e.g. {example}")]
    Missing { bundle: String, count: usize, example: String },
    #[error("{bundle}: manifest.json is {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES} (is this a bundle?)")]
    ManifestSize { bundle: String, size: u64 },
}

/// How a bundle stores its weights (`convert --quant`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Quant {
    #[default]
    F32,
    F16,
    Q8,
    Q4,
}

/// Values per quantization block, along a weight's last (contiguous) dimension in burn's layout.
pub const QUANT_BLOCK: usize = 32;

impl Quant {
    pub fn parse(text: &str) -> Option<Quant> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::F16 => "f16",
            Quant::Q8 => "q8",
            Quant::Q4 => "q4",
        }
    }

    /// The block-wise symmetric scheme of a quantized bundle; f16 scales keep q4 near half a byte
    /// per parameter.
    pub fn scheme(self) -> Option<QuantScheme> {
        let value = match self {
            Quant::F32 | Quant::F16 => return None,
            Quant::Q8 => QuantValue::Q8S,
            Quant::Q4 => QuantValue::Q4S,
        };
        Some(QuantScheme::default().with_value(value).per_block([QUANT_BLOCK as u8], ScaleDtype::F16))
    }

    pub fn shard_extension(self) -> &'static str {
        if self.scheme().is_some() { "bpk" } else { "safetensors" }
    }

    /// Whether this mode quantizes a linear or embedding weight of `shape` (burn's layout): its
    /// rows must tile into blocks, and small ones (T5's relative position buckets) stay exact.
    pub fn quantizes(self, shape: &[usize]) -> bool {
        self.scheme().is_some()
            && matches!(shape, [rows, cols] if cols % QUANT_BLOCK == 0 && rows * cols >= 64 * QUANT_BLOCK)
    }

    /// Bytes a tensor takes in a bundle of this mode (a whole model's can pass 4 GiB, so u64).
    pub fn stored_bytes(self, shape: &[usize], quantized: bool) -> u64 {
        let numel = shape.iter().map(|&d| d as u64).product::<u64>();
        match (self.scheme(), quantized) {
            (Some(scheme), true) => quantized_data_len(&scheme, &Shape::from(shape.to_vec())) as u64,
            _ if self == Quant::F16 => 2 * numel,
            _ => 4 * numel,
        }
    }
}

/// One file of the bundle.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TensorEntry {
    pub shard: usize,
    pub dtype: TensorDtype,
    pub shape: Vec<usize>,
}

/// How a tensor is stored: in floats, or in the bundle's quantization.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum TensorDtype {
    F32,
    F16,
    #[serde(rename = "q8")]
    Q8,
    #[serde(rename = "q4")]
    Q4,
}

impl TensorDtype {
    /// The dtype of a tensor stored in mode `quant`, quantized or not.
    pub fn of(quant: Quant, quantized: bool) -> TensorDtype {
        match quant {
            Quant::Q8 if quantized => TensorDtype::Q8,
            Quant::Q4 if quantized => TensorDtype::Q4,
            Quant::F16 => TensorDtype::F16,
            _ => TensorDtype::F32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TensorDtype::F32 => "F32",
            TensorDtype::F16 => "F16",
            TensorDtype::Q8 => "q8",
            TensorDtype::Q4 => "q4",
        }
    }
}

impl TensorEntry {
    pub fn is_quantized(&self) -> bool {
        matches!(self.dtype, TensorDtype::Q8 | TensorDtype::Q4)
    }
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
    #[serde(default)]
    pub quant: Quant,
    pub config: DynReferConfig,
    pub tag_threshold: f32,
    pub vocabularies: VocabularyNames,
    /// The T5 `tokenizer.json` and the CLIP BPE merges (for custom vocabularies).
    pub t5_tokenizer: FileEntry,
    pub clip_bpe: FileEntry,
    pub shards: Vec<FileEntry>,
    #[serde(deserialize_with = "unique_keys")]
    pub tensors: BTreeMap<String, TensorEntry>,
}

/// A JSON object whose keys are all different: JSON parsers keep the last of two equal keys, and a
/// tensor listed twice would hide which of its entries a loader believes.
fn unique_keys<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of tensors")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, V>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("tensor {key:?} is listed twice")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Unique(std::marker::PhantomData))
}

/// A file name a bundle may give: a plain name in the bundle's own folder, never a path, a parent,
/// a URL or another origin (`..`, `/`, `\`, `:`), so that a manifest reads nothing but its bundle.
fn plain_file_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    !name.is_empty() && name.len() <= 255 && !name.starts_with('.') && name.chars().all(allowed)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    pub fn parse(bundle: &str, bytes: &[u8]) -> Result<Manifest, BundleError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(BundleError::ManifestSize { bundle: bundle.to_string(), size: bytes.len() as u64 });
        }
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
        // from the bytes, not the value: a value has already kept only the last of two equal keys
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
        manifest.validate().map_err(err)?;
        Ok(manifest)
    }

    /// What must hold before any file of the bundle is read: plain file names, sizes and shapes
    /// that neither overflow nor exceed what a shard can hold, tensors in shards that exist, a
    /// configuration a model can be built from, and vocabularies the size of the heads.
    fn validate(&self) -> Result<(), String> {
        let files = [&self.t5_tokenizer, &self.clip_bpe].into_iter().chain(&self.shards);
        let mut names = std::collections::HashSet::new();
        for entry in files {
            let name = &entry.file;
            if !plain_file_name(name) || name == MANIFEST {
                return Err(format!(
                    "{name:?} is not a file name of the bundle's own folder (no paths, URLs or \"..\")"
                ));
            }
            if !names.insert(name) {
                return Err(format!("{name:?} is listed twice"));
            }
            if entry.bytes > MAX_FILE_BYTES {
                return Err(format!(
                    "{name}: {} bytes, more than a bundle file may have ({MAX_FILE_BYTES})",
                    entry.bytes
                ));
            }
            if entry.sha256.len() != 64 || !entry.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{name}: {:?} is not a SHA-256", entry.sha256));
            }
        }
        if self.shards.is_empty() {
            return Err("no shards".into());
        }
        let mut in_shard = vec![0u64; self.shards.len()];
        for (name, t) in &self.tensors {
            let Some(stored) = in_shard.get_mut(t.shard) else {
                return Err(format!("tensor {name} is in shard {}, of {}", t.shard, self.shards.len()));
            };
            let numel = t.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
            if numel.is_none_or(|n| n > MAX_TENSOR_ELEMENTS) || t.shape.len() > 8 {
                return Err(format!("tensor {name}: shape {:?} is too large", t.shape));
            }
            *stored += match t.dtype {
                TensorDtype::F32 => Quant::F32.stored_bytes(&t.shape, false),
                TensorDtype::F16 => Quant::F16.stored_bytes(&t.shape, false),
                quantized if quantized == TensorDtype::of(self.quant, true) => self.quant.stored_bytes(&t.shape, true),
                other => {
                    return Err(format!("tensor {name}: dtype {} in a {} bundle", other.name(), self.quant.name()));
                }
            };
        }
        if let Some(i) = (0..self.shards.len()).find(|&i| in_shard[i] > self.shards[i].bytes) {
            let (file, bytes) = (&self.shards[i].file, self.shards[i].bytes);
            return Err(format!("{file}: {bytes} bytes cannot hold the {} bytes of its tensors", in_shard[i]));
        }
        self.config.check().map_err(|e| format!("config: {e}"))?;
        let v = &self.vocabularies;
        let templates: usize = v.templates_per_attribute.iter().sum();
        let [tags, attribute_templates, classes] = self.config.vocab_sizes;
        if v.tags.len() != tags
            || v.classes.len() != classes
            || templates != attribute_templates
            || v.attributes.len() != v.templates_per_attribute.len()
        {
            return Err(format!(
                "vocabularies of {} tags, {} attributes ({templates} templates) and {} classes, but the heads score \
                 {tags}, {attribute_templates} and {classes}",
                v.tags.len(),
                v.attributes.len(),
                v.classes.len()
            ));
        }
        if !self.tag_threshold.is_finite() {
            return Err(format!("tag_threshold {} is not a number", self.tag_threshold));
        }
        Ok(())
    }

    /// Checks a file's size and hash against its entry.
    pub fn verify(bundle: &str, entry: &FileEntry, bytes: Vec<u8>) -> Result<Verified, BundleError> {
        if bytes.len() as u64 != entry.bytes {
            return Err(BundleError::Size {
                bundle: bundle.into(),
                file: entry.file.clone(),
                size: bytes.len() as u64,
                expected: entry.bytes,
            });
        }
        let actual = sha256_hex(&bytes);
        if actual != entry.sha256 {
            return Err(BundleError::Hash {
                bundle: bundle.into(),
                file: entry.file.clone(),
                actual,
                expected: entry.sha256.clone(),
            });
        }
        Ok(Verified(bytes))
    }

    /// Parameters of the model, from the tensor index. Counts and byte sizes of a real model
    /// pass 4 Gi, wasm32's `usize`: they are u64.
    pub fn parameters(&self) -> u64 {
        self.tensors.values().map(|t| t.shape.iter().map(|&d| d as u64).product::<u64>()).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum::<u64>() + self.t5_tokenizer.bytes + self.clip_bpe.bytes
    }
}

/// A file's bytes, checked against its manifest entry: only [`Manifest::verify`] makes one, so a
/// loader handed one knows it needs no second look.
#[derive(Debug)]
pub struct Verified(Vec<u8>);

impl Verified {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Loading progress: bytes verified so far, of all shards.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub file: String,
}

/// Builds the model of a manifest and fills it shard by shard.
pub struct Loader {
    pub bundle: String,
    pub manifest: Manifest,
    pub model: DynRefer,
    pub device: Device,
    applied: std::collections::HashSet<String>,
}

impl Loader {
    /// Builds the manifest's model (its weights are allocated as they arrive) after checking that
    /// the manifest lists as many tensors as that model has.
    pub fn new(bundle: &str, manifest: Manifest, device: &Device) -> Result<Loader, BundleError> {
        let mut model = manifest.config.init(device);
        if manifest.quant.scheme().is_some() && kernels::is_cpu(device) {
            model = model.map(&mut CpuQuantized::default());
        }
        let mut count = ParamCount::default();
        model.visit(&mut count);
        if count.0 != manifest.tensors.len() {
            let message = format!("lists {} tensors; the model of its config has {}", manifest.tensors.len(), count.0);
            return Err(BundleError::Manifest { bundle: bundle.to_string(), message });
        }
        let applied = Default::default();
        Ok(Loader { bundle: bundle.to_string(), manifest, model, device: device.clone(), applied })
    }

    /// Moves the tensors of shard `index` to the device; the bytes are dropped after.
    pub fn add_shard(&mut self, index: usize, bytes: Verified) -> Result<(), BundleError> {
        let entry = &self.manifest.shards[index];
        let bytes = bytes.into_bytes();
        let first_line = |e: String| e.lines().next().unwrap_or_default().to_string();
        let result = if entry.file.ends_with(".bpk") {
            let tensors = Reader::from_bytes(Bytes::from_bytes_vec(bytes))
                .and_then(Reader::into_tensors)
                .map_err(|e| first_line(e.to_string()));
            tensors.and_then(|t| {
                let scheme = self.manifest.quant.scheme();
                let widened = t.into_iter().map(|t| widen_scales(t, scheme)).collect::<Result<Vec<_>, _>>()?;
                Ok(self.model.apply(widened, None, None, false))
            })
        } else {
            // f16 shards widen to f32: the model computes in f32 everywhere
            let adapter = PyTorchToBurnAdapter.chain(FloatCastAdapter::to(burn::tensor::DType::F32));
            let mut store = SafetensorsStore::from_bytes(Some(bytes))
                .with_from_adapter(adapter)
                .allow_partial(true)
                .validate(false);
            self.model.load_from(&mut store).map_err(|e| first_line(e.to_string()))
        };
        let result = result.map_err(|message| BundleError::File {
            bundle: self.bundle.clone(),
            file: entry.file.clone(),
            message,
        })?;
        let file_err =
            |message: String| BundleError::File { bundle: self.bundle.clone(), file: entry.file.clone(), message };
        let first = result.errors.first().map(ToString::to_string).or_else(|| {
            result.unused.first().map(|name| format!("'{name}' is not a tensor of the manifest's architecture"))
        });
        if let Some(first) = first {
            let more = result.errors.len() + result.unused.len() - 1;
            return Err(file_err(format!("does not fit the model of the manifest: {first} (and {more} more)")));
        }
        let listed = self.manifest.tensors.values().filter(|t| t.shard == index).count();
        if result.applied.len() != listed {
            return Err(file_err(format!("holds {} tensors; the manifest lists {listed} in it", result.applied.len())));
        }
        if let Some(twice) = result.applied.into_iter().find(|name| !self.applied.insert(name.clone())) {
            return Err(file_err(format!("tensor {twice} was already in an earlier shard")));
        }
        Ok(())
    }

    /// The model, once every tensor has arrived.
    pub fn finish(self) -> Result<(DynRefer, Manifest), BundleError> {
        let mut count = ParamCount::default();
        self.model.visit(&mut count);
        let expected = count.0;
        if self.applied.len() < expected {
            let loaded: std::collections::HashSet<&String> = self.manifest.tensors.keys().collect();
            let example = self
                .model
                .collect(None, Some(Box::new(BurnToPyTorchAdapter)), false)
                .into_iter()
                .map(|t| t.name)
                .find(|n| !loaded.contains(n))
                .unwrap_or_default();
            return Err(BundleError::Missing { bundle: self.bundle, count: expected - self.applied.len(), example });
        }
        let model = self.model;
        Ok((model, self.manifest))
    }
}

/// A block-quantized tensor with its f16 scales widened to f32. Bundles store f16 scales (q4
/// then takes 0.56 rather than 0.62 bytes per parameter), but burn's WebGPU kernels read f16
/// scales as garbage on an adapter without `shader-f16` (measured: SwiftShader), so every device
/// gets f32 scales; the values stay packed.
/// A tensor's bytes must fit its shape and a quantized one must use the bundle's `scheme`: the
/// shard's header says all three, and burn asserts what it is given.
fn widen_scales(tensor: PackTensor, bundle_scheme: Option<QuantScheme>) -> Result<PackTensor, String> {
    let numel = tensor.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
    if numel.is_none_or(|n| n > MAX_TENSOR_ELEMENTS) {
        return Err(format!("{}: shape {:?} is too large", tensor.name, tensor.shape));
    }
    let DType::QFloat(scheme) = tensor.dtype else {
        let expected = numel.and_then(|n| n.checked_mul(tensor.dtype.size() as u64));
        if expected != Some(tensor.byte_len() as u64) {
            let (name, len, shape) = (&tensor.name, tensor.byte_len(), &tensor.shape);
            return Err(format!("{name}: {len} bytes do not fit its {:?} shape {shape:?}", tensor.dtype));
        }
        // A tensor read from a shard is a view of the shard's bytes: a copy of its own lets the
        // shard go (kept, the small f32 tensors held every shard's bytes: 2.4 GB at full size).
        let (name, dtype, shape, id, bytes) = tensor.into_parts().map_err(|e| e.to_string())?;
        return Ok(PackTensor::new(name, dtype, shape, id, Bytes::from_bytes_vec(bytes.to_vec())));
    };
    let (name, len, shape) = (&tensor.name, tensor.byte_len(), &tensor.shape);
    let block = match scheme.block_size() {
        Some(block) if bundle_scheme == Some(scheme) && len == quantized_data_len(&scheme, shape) => block,
        // (a hostile scheme is not printed: its Debug panics on an impossible block size)
        _ => {
            return Err(format!(
                "{name}: {len} bytes in a quantization that is not the bundle's, or not of shape {shape:?}"
            ));
        }
    };
    let (name, _, shape, id, bytes) = tensor.into_parts().map_err(|e| e.to_string())?;
    let blocks = shape.num_elements() / block.num_elements();
    let Some(values) = bytes.len().checked_sub(2 * blocks) else {
        return Err(format!("{name}: {} bytes cannot hold {blocks} block scales", bytes.len()));
    };
    let mut widened = bytes[..values].to_vec();
    for scale in bytes[values..].chunks_exact(2) {
        widened.extend_from_slice(&f16::from_le_bytes([scale[0], scale[1]]).to_f32().to_le_bytes());
    }
    let wide = scheme.per_block(block.as_slice(), ScaleDtype::F32);
    if widened.len() != quantized_data_len(&wide, &shape) {
        return Err(format!("{name}: {} bytes do not fit its {wide:?} shape {shape:?}", bytes.len()));
    }
    Ok(PackTensor::new(name, DType::QFloat(wide), shape, id, Bytes::from_bytes_vec(widened)))
}

/// Whether a quantized parameter stays quantized on the CPU backend, from the module that holds
/// it: a linear layer's weight does (the crate's kernels multiply by it directly, dequantizing
/// strip by strip); every other quantized tensor (embedding tables, packed attention projections)
/// would be dequantized whole on every use, so it is widened once at load. A parameter's module
/// is what `ModuleVisitor::enter_module` and `ModuleMapper::enter_module` name last before it.
fn stays_quantized_on_cpu(container_type: &str, field: &str) -> bool {
    container_type == "Struct:Linear" && field == "weight"
}

/// What the CPU backend keeps of a quantized parameter as it arrives ([`stays_quantized_on_cpu`]),
/// kept as compactly as the backend can (4-bit values two to a byte).
#[derive(Default)]
struct CpuQuantized {
    modules: Vec<(String, String)>,
}

impl ModuleMapper for CpuQuantized {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.modules.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.modules.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.modules.last().is_some_and(|(field, container)| stays_quantized_on_cpu(container, field)) {
            param.load_mapper(kernels::compact_weight)
        } else {
            param.load_mapper(kernels::dequantize)
        }
    }
}

/// The module paths of a model's parameters that stay quantized on the CPU backend (the names a
/// quantized bundle gives them); the parameters are not touched, so a lazily built model is enough.
#[derive(Default)]
struct CpuQuantizedPaths {
    modules: Vec<(String, String)>,
    paths: std::collections::HashSet<String>,
}

impl ModuleVisitor for CpuQuantizedPaths {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.modules.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.modules.pop();
    }

    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        if self.modules.last().is_some_and(|(field, container)| stays_quantized_on_cpu(container, field)) {
            self.paths.insert(self.modules.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join("."));
        }
    }
}

/// `model` with every parameter in f32 (to write it again, or to train from it).
pub fn dequantized(model: DynRefer) -> DynRefer {
    struct Dequantize;
    impl ModuleMapper for Dequantize {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(kernels::dequantize)
        }
    }
    model.map(&mut Dequantize)
}

/// Counts a module's float parameters without touching their values.
#[derive(Default)]
struct ParamCount(usize);

impl ModuleVisitor for ParamCount {
    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        self.0 += 1;
    }
}

/// Where a model is to run, as far as the checks made before its download need to know.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// burn's CPU backend, which holds the weights (see `Manifest::cpu_bytes`) in at most `max_bytes`.
    Cpu { max_bytes: u64 },
    /// A GPU (WebGPU) whose largest storage buffer binding is `max_binding` bytes, with about
    /// `max_bytes` for the weights.
    Gpu { max_binding: u64, max_bytes: u64 },
}

impl Target {
    /// The page's CPU backend: wasm32 addresses 4 GiB, and the photo, the activations and the
    /// shard being loaded need room beside the weights (measured: the real model's q4 weights,
    /// 3.0 GB on the CPU, describe within 3.5 GiB).
    pub const WASM_CPU: Target = Target::Cpu { max_bytes: 3_100_000_000 };
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FitError {
    #[error(
        "this {quant} model needs {} for its weights on the CPU, more than the {} the CPU fallback can hold; this \
         browser has no WebGPU: open the page in one that has (e.g. Chrome or Edge){}",
        gb(*needed),
        gb(*limit),
        if *quant == "q4" { "" } else { ", or load a q4 bundle (about 0.7 bytes per parameter on the CPU)" }
    )]
    CpuMemory { quant: &'static str, needed: u64, limit: u64 },
    #[error(
        "this {quant} bundle needs {} of GPU memory (its weights are widened to f32 on the GPU), more than the {} a \
         browser can count on; convert the model with --quant q4 (about 0.6 bytes per parameter) or q8 (about 1.1)",
        gb(*needed),
        gb(*limit)
    )]
    GpuMemory { quant: &'static str, needed: u64, limit: u64 },
    #[error(
        "tensor {tensor} takes {} on the GPU, more than this adapter's largest buffer binding ({}); {}",
        size(*bytes),
        size(*limit),
        if *smaller_quantized { "a q4 or q8 bundle stores it in fewer bytes" } else { "this GPU cannot run this model" }
    )]
    Binding { tensor: String, bytes: u64, limit: u64, smaller_quantized: bool },
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

fn size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.0} MB", bytes as f64 / 1e6),
        _ => gb(bytes),
    }
}

impl Manifest {
    /// Bytes a tensor takes on a GPU: quantized values stay packed with f32 block scales (see
    /// `widen_scales`); everything else is widened to f32.
    pub fn device_bytes(&self, tensor: &TensorEntry) -> u64 {
        let numel = tensor.shape.iter().map(|&d| d as u64).product::<u64>();
        match self.quant.scheme() {
            Some(scheme) if tensor.is_quantized() => {
                numel * scheme.value.size_bits() as u64 / 8 + numel / QUANT_BLOCK as u64 * 4
            }
            _ => 4 * numel,
        }
    }

    /// The bytes the weights take on the CPU backend: the quantized tensors that stay quantized
    /// there ([`stays_quantized_on_cpu`]) keep their values in 8 or 4 bits with an f32 scale per
    /// block; everything else is f32 (the model is built lazily to tell which is which).
    pub fn cpu_bytes(&self) -> u64 {
        let mut kept = CpuQuantizedPaths::default();
        if self.quant.scheme().is_some() {
            self.config.init(&Device::flex()).visit(&mut kept);
        }
        let bytes = |(name, tensor): (&String, &TensorEntry)| {
            let numel = tensor.shape.iter().map(|&d| d as u64).product::<u64>();
            match self.quant.scheme() {
                Some(scheme) if tensor.is_quantized() && kept.paths.contains(name) => {
                    numel * scheme.value.size_bits() as u64 / 8 + numel.div_ceil(QUANT_BLOCK as u64) * 4
                }
                _ => 4 * numel,
            }
        };
        self.tensors.iter().map(bytes).sum()
    }

    /// Refuses, before any download, a model that cannot run on `target`.
    pub fn check_fit(&self, target: &Target) -> Result<(), FitError> {
        match *target {
            Target::Cpu { max_bytes } => {
                let needed = self.cpu_bytes();
                if needed > max_bytes {
                    return Err(FitError::CpuMemory { quant: self.quant.name(), needed, limit: max_bytes });
                }
            }
            Target::Gpu { max_binding, max_bytes } => {
                let needed: u64 = self.tensors.values().map(|t| self.device_bytes(t)).sum();
                if needed > max_bytes {
                    return Err(FitError::GpuMemory { quant: self.quant.name(), needed, limit: max_bytes });
                }
                let largest = self.tensors.iter().map(|(name, t)| (name, t, self.device_bytes(t))).max_by_key(|l| l.2);
                if let Some((name, t, bytes)) = largest
                    && bytes > max_binding
                {
                    // a matrix a quantized bundle would store quantized (burn's layout reverses linear weights)
                    let mut burn_shape = t.shape.clone();
                    burn_shape.reverse();
                    let smaller_quantized =
                        !t.is_quantized() && (Quant::Q4.quantizes(&t.shape) || Quant::Q4.quantizes(&burn_shape));
                    return Err(FitError::Binding {
                        tensor: name.clone(),
                        bytes,
                        limit: max_binding,
                        smaller_quantized,
                    });
                }
            }
        }
        Ok(())
    }
}
