//! Writing bundles: tensors into shards of at most [`MAX_SHARD_BYTES`] (safetensors in the
//! official layout for float bundles, burnpack in burn's layout with block-quantized matrices for
//! q8 / q4), then the tokenizer files and the manifest. The converter streams official tensors
//! through it one at a time; [`write_bundle`] writes a model held in memory (a trained one).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, bridge};
use burn::tensor::DType;
use burn::tensor::quantization::QuantStore;

use super::{ConvertError, file_err};
use crate::bundle::{
    FORMAT, FileEntry, MANIFEST, MAX_SHARD_BYTES, Manifest, Quant, TensorDtype, TensorEntry, VERSION, VocabularyNames,
    sha256_hex,
};
use crate::model::dynrefer::{DynRefer, DynReferConfig};

/// Writes shards of at most `max_bytes` (a larger tensor gets its own).
pub(crate) struct ShardWriter {
    dir: PathBuf,
    quant: Quant,
    max_bytes: usize,
    pending: Vec<(String, TensorData)>,
    pending_bytes: usize,
    shards: Vec<FileEntry>,
    tensors: BTreeMap<String, TensorEntry>,
}

impl ShardWriter {
    pub(crate) fn new(dir: &Path, quant: Quant, max_bytes: usize) -> Result<ShardWriter, ConvertError> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            quant,
            max_bytes,
            pending: vec![],
            pending_bytes: 0,
            shards: vec![],
            tensors: BTreeMap::new(),
        })
    }

    pub(crate) fn add(&mut self, name: String, data: TensorData) -> Result<(), ConvertError> {
        let bytes = data.as_bytes().len();
        if self.pending_bytes + bytes > self.max_bytes && !self.pending.is_empty() {
            self.flush()?;
        }
        self.pending_bytes += bytes;
        let dtype = match data.dtype() {
            DType::QFloat(_) => TensorDtype::of(self.quant, true),
            DType::F16 => TensorDtype::F16,
            _ => TensorDtype::F32,
        };
        let entry = TensorEntry { shard: self.shards.len(), dtype, shape: data.shape().to_vec() };
        self.tensors.insert(name.clone(), entry);
        self.pending.push((name, data));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConvertError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let file = format!("weights-{:05}.{}", self.shards.len(), self.quant.shard_extension());
        let path = self.dir.join(&file);
        let bytes = if self.quant.scheme().is_some() {
            let tensors = self.pending.drain(..).map(|(n, d)| bridge::from_data(d, n, None)).collect();
            burn::store::burn_pack::Writer::new(tensors).into_bytes().map_err(|e| file_err(&path, e))?.to_vec()
        } else {
            let views: Vec<(String, safetensors::tensor::TensorView)> = self
                .pending
                .iter()
                .map(|(n, d)| {
                    let dtype = match d.dtype() {
                        DType::F16 => safetensors::Dtype::F16,
                        _ => safetensors::Dtype::F32,
                    };
                    let view = safetensors::tensor::TensorView::new(dtype, d.shape().to_vec(), d.as_bytes());
                    (n.clone(), view.expect("float data of its shape"))
                })
                .collect();
            safetensors::serialize(views, None).map_err(|e| file_err(&path, e))?
        };
        std::fs::write(&path, &bytes).map_err(|e| file_err(&path, e))?;
        self.shards.push(FileEntry { file, bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) });
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Flushes the last shard and writes the tokenizer files and the manifest.
    pub(crate) fn finish(mut self, info: BundleInfo) -> Result<Manifest, ConvertError> {
        self.flush()?;
        let write = |file: &str, bytes: &[u8]| -> Result<FileEntry, ConvertError> {
            let path = self.dir.join(file);
            std::fs::write(&path, bytes).map_err(|e| file_err(&path, e))?;
            Ok(FileEntry { file: file.to_string(), bytes: bytes.len() as u64, sha256: sha256_hex(bytes) })
        };
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            name: info.name,
            quant: self.quant,
            config: info.config,
            tag_threshold: info.tag_threshold,
            vocabularies: info.vocabularies,
            t5_tokenizer: write("tokenizer.json", &info.tokenizer_json)?,
            clip_bpe: write("clip_bpe.txt.gz", &info.clip_bpe)?,
            shards: self.shards,
            tensors: self.tensors,
        };
        let json = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
        write(MANIFEST, json.as_bytes())?;
        Ok(manifest)
    }
}

/// Everything of a bundle besides its tensors.
pub struct BundleInfo {
    pub name: String,
    pub config: DynReferConfig,
    pub tag_threshold: f32,
    pub vocabularies: VocabularyNames,
    /// The T5 `tokenizer.json` and the CLIP BPE merges (gzip).
    pub tokenizer_json: Vec<u8>,
    pub clip_bpe: Vec<u8>,
}

/// One parameter of the model, as the official files hold it (names with norms' `gamma`/`beta` as
/// `weight`/`bias`, linear weights `[out, in]`) and as burn holds it.
pub(crate) struct ParamInfo {
    pub official: String,
    pub burn: String,
    pub shape: Vec<usize>,
    /// A linear weight: burn stores it transposed.
    pub linear: bool,
    /// A linear, embedding or packed attention weight: quantized in a q8/q4 bundle.
    pub matrix: bool,
}

/// The model's parameters, read from its lazily built modules without allocating any weight.
#[derive(Default)]
pub(crate) struct ParamShapes {
    path: Vec<String>,
    containers: Vec<String>,
    pub params: Vec<ParamInfo>,
}

impl ParamShapes {
    pub(crate) fn of(model: &DynRefer) -> ParamShapes {
        let mut shapes = ParamShapes::default();
        model.visit(&mut shapes);
        shapes
    }
}

impl ModuleVisitor for ParamShapes {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.containers.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<burn::prelude::Tensor<D>>) {
        let mut shape = param.lazy_shape().to_vec();
        let burn = self.path.join(".");
        let mut path = self.path.clone();
        let module = self.containers.iter().rev().find(|c| c.starts_with("Struct:")).map(String::as_str);
        let last = path.last_mut().expect("a parameter has a name");
        let linear = module == Some("Struct:Linear") && last == "weight";
        // EVA-CLIP's attention keeps its packed projection as a bare parameter
        let matrix = linear || (module == Some("Struct:Embedding") && last == "weight") || last == "in_proj_weight";
        match (module, last.as_str()) {
            (Some("Struct:Linear"), "weight") => shape.reverse(),
            (Some("Struct:LayerNorm" | "Struct:RmsNorm"), "gamma") => *last = "weight".into(),
            (Some("Struct:LayerNorm" | "Struct:RmsNorm"), "beta") => *last = "bias".into(),
            _ => {}
        }
        self.params.push(ParamInfo { official: path.join("."), burn, shape, linear, matrix });
    }
}

/// The hash of a projected manifest's files, which do not exist: well-formed, matching nothing.
const NO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The manifest converting official checkpoints of `config` would write in mode `quant`: every
/// tensor's name, dtype and shape and every shard's size, from the model's lazily built modules,
/// without any weight (hashes are zeros, names of vocabulary entries are placeholders). For
/// sizes, and for checks made before a download, of models too large to convert here.
pub fn projected_manifest(config: &DynReferConfig, quant: Quant, name: &str) -> Manifest {
    let mut params = ParamShapes::of(&config.init(&Device::flex())).params;
    params.sort_by(|a, b| a.official.cmp(&b.official));
    let (mut shards, mut tensors, mut pending) = (Vec::new(), BTreeMap::new(), 0u64);
    let close = |shards: &mut Vec<FileEntry>, bytes: u64| {
        let file = format!("weights-{:05}.{}", shards.len(), quant.shard_extension());
        shards.push(FileEntry { file, bytes, sha256: NO_HASH.into() });
    };
    for p in &params {
        let mut shape = p.shape.clone();
        if p.linear {
            shape.reverse(); // burn's layout, which decides the quantization blocks
        }
        let quantized = p.matrix && quant.quantizes(&shape);
        let bytes = quant.stored_bytes(&shape, quantized);
        if pending + bytes > MAX_SHARD_BYTES as u64 && pending > 0 {
            close(&mut shards, pending);
            pending = 0;
        }
        pending += bytes;
        let dtype = TensorDtype::of(quant, quantized);
        let (name, shape) = match quant {
            Quant::F16 | Quant::F32 => (p.official.clone(), p.shape.clone()),
            _ => (p.burn.clone(), shape),
        };
        tensors.insert(name, TensorEntry { shard: shards.len(), dtype, shape });
    }
    close(&mut shards, pending);
    let [tags, templates, classes] = config.vocab_sizes;
    let names = |what: &str, n: usize| (0..n).map(|i| format!("{what} {i}")).collect::<Vec<_>>();
    let placeholder = |file: &str| FileEntry { file: file.into(), bytes: 0, sha256: NO_HASH.into() };
    Manifest {
        format: FORMAT.into(),
        version: VERSION,
        name: name.into(),
        quant,
        config: config.clone(),
        tag_threshold: 0.76,
        vocabularies: VocabularyNames {
            tags: names("tag", tags),
            attributes: names("attribute", templates / 2),
            templates_per_attribute: vec![2; templates / 2],
            classes: names("class", classes),
        },
        t5_tokenizer: placeholder("tokenizer.json"),
        clip_bpe: placeholder("clip_bpe.txt.gz"),
        shards,
        tensors,
    }
}

/// A tensor in the form the bundle stores: official name and layout for float bundles; burn's
/// name and layout for quantized ones, with the large linear and embedding weights quantized.
pub(crate) fn stored(info: &ParamInfo, data: TensorData, quant: Quant, device: &Device) -> (String, TensorData) {
    let Some(scheme) = quant.scheme() else {
        let dtype = if quant == Quant::F16 { DType::F16 } else { DType::F32 };
        return (info.official.clone(), data.convert_dtype(dtype));
    };
    if info.shape.len() != 2 {
        return (info.burn.clone(), data);
    }
    let mut tensor = Tensor::<2>::from_data(data, device);
    if info.linear {
        tensor = tensor.transpose();
    }
    if info.matrix && quant.quantizes(&tensor.dims()) {
        return (info.burn.clone(), packed(tensor.quantize_dynamic(&scheme).into_data()));
    }
    (info.burn.clone(), tensor.into_data())
}

/// Quantized data in burn's portable form (values packed into `u32` words, low bits first, then
/// the block scales), which every backend reads; the CPU backend hands out one `i8` per value.
fn packed(data: TensorData) -> TensorData {
    let DType::QFloat(scheme) = data.dtype() else { unreachable!("quantized data") };
    let shape = data.shape().clone();
    let numel = shape.num_elements();
    let bytes = data.into_bytes();
    // `numel` is a multiple of the block, so the scales follow the values without padding
    let (values, scales) = bytes.split_at(numel);
    let bits = scheme.value.size_bits();
    let mut out: Vec<u8> = Vec::with_capacity(numel * bits / 8 + scales.len());
    for word in values.chunks(32 / bits) {
        let word =
            word.iter().enumerate().fold(0u32, |acc, (i, &v)| acc | (u32::from(v) & ((1 << bits) - 1)) << (i * bits));
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(scales);
    TensorData::from_bytes_vec(out, shape, DType::QFloat(scheme.with_store(QuantStore::PackedU32(0))))
}

/// Writes a model held in memory as a bundle of mode `quant` in `out`, in shards of at most
/// `max_shard_bytes` ([`MAX_SHARD_BYTES`] by default; smaller for hosts that limit file sizes).
pub fn write_bundle(
    model: &DynRefer,
    quant: Quant,
    info: BundleInfo,
    out: &Path,
    max_shard_bytes: usize,
) -> Result<Manifest, ConvertError> {
    let shapes = ParamShapes::of(model);
    let params: HashMap<&str, &ParamInfo> = shapes.params.iter().map(|p| (p.official.as_str(), p)).collect();
    // a model loaded from a quantized bundle keeps its linear weights quantized on the CPU
    let model = crate::bundle::dequantized(model.clone());
    let mut tensors = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false);
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let device = Device::flex();
    let mut writer = ShardWriter::new(out, quant, max_shard_bytes)?;
    for tensor in tensors {
        let name = tensor.name.clone();
        let data = bridge::into_data(tensor).map_err(|e| file_err(out, format!("{name}: {e}")))?;
        let param =
            params.get(name.as_str()).ok_or_else(|| file_err(out, format!("{name}: not a parameter of the model")))?;
        let (name, data) = stored(param, data.convert_dtype(DType::F32), quant, &device);
        writer.add(name, data)?;
    }
    writer.finish(info)
}
