//! Official checkpoints → a bundle (DESIGN §4 `convert`), tensor by tensor.
//!
//! Every official key goes through one table ([`official_path`]); the model's own parameter list
//! (from its lazily built modules, no weights allocated) says which paths and shapes must come
//! out. Tensors are read one at a time and written to shards of at most 64 MiB, so converting
//! the real model holds about one shard and one tensor in memory. The vocabulary embeddings are
//! computed by the EVA-CLIP text tower at the end and stored in the last shard.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    FloatCastAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
    bridge,
};
use burn::tensor::DType;
use burn::tensor::quantization::QuantStore;
use serde::Deserialize;

use crate::bundle::sha256_hex;
use crate::bundle::{
    FORMAT, FileEntry, MANIFEST, MAX_SHARD_BYTES, Manifest, Quant, TensorEntry, VERSION, VocabularyNames,
};
use crate::decode::clip_bpe::ClipBpe;
use crate::model::clip_text::ClipTextConfig;
use crate::model::dynrefer::{DynReferConfig, EVA_OUTPUT_LAYERS, Source, official_path};
use crate::model::heads::HeadsConfig;
use crate::model::qformer::QformerConfig;
use crate::model::t5::T5Config;
use crate::model::visual::VisualConfig;
use crate::model::vit::VitConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}: key {key}: {message}")]
    Key { file: String, key: String, message: String },
    #[error("no file provides {key} (expected shape {shape:?}; it belongs in {belongs})")]
    Missing { key: String, shape: Vec<usize>, belongs: &'static str },
    #[error("the checkpoints do not fit together: {0}")]
    Mismatch(String),
    #[error("--arch {file}: {message}")]
    Arch { file: String, message: String },
}

fn file_err(file: &Path, message: impl ToString) -> ConvertError {
    ConvertError::File { file: file.display().to_string(), message: message.to_string() }
}

/// The official files, as `dynrefer convert` takes them.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub blip2: PathBuf,
    pub dynrefer: PathBuf,
    /// EVA ViT-g, when the BLIP-2 file has no `visual_encoder.*` (LAVIS' own `eva_vit_g.pth`).
    pub vit: Option<PathBuf>,
    pub t5: PathBuf,
    pub clip_text: PathBuf,
    pub bpe: PathBuf,
    pub tags: PathBuf,
    pub attributes: PathBuf,
    pub classes: PathBuf,
    pub arch: Option<PathBuf>,
    pub quant: Quant,
}

/// What tensor shapes cannot tell (`--arch`); defaults are the official model's.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Arch {
    pub vision_heads: usize,
    pub qformer_heads: usize,
    pub head_heads: usize,
    pub clip_text_heads: usize,
    pub cross_attention_freq: usize,
    pub num_views: usize,
    pub image_size: usize,
    pub dcn_group: usize,
    pub tag_threshold: f32,
    pub max_txt_len: usize,
}

impl Default for Arch {
    fn default() -> Self {
        Arch {
            vision_heads: 16,
            qformer_heads: 12,
            head_heads: 4,
            clip_text_heads: 12,
            cross_attention_freq: 2,
            num_views: 3,
            image_size: 224,
            dcn_group: 4,
            tag_threshold: 0.76,
            max_txt_len: 32,
        }
    }
}

/// A source tensor, read when written.
struct Entry {
    file: PathBuf,
    key: String,
    tensor: PackTensor,
}

/// `.pth` / `.pt` state dicts (optionally under `model`), keys as stored.
fn read_pth(path: &Path) -> Result<Vec<(String, PackTensor)>, ConvertError> {
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
    let tensors = store.get_all_tensors().map_err(|e| file_err(path, format!("not a PyTorch checkpoint: {e}")))?;
    Ok(tensors.iter().map(|(k, t)| (k.strip_prefix("model.").unwrap_or(k).to_string(), t.clone())).collect())
}

fn read_safetensors(path: &Path) -> Result<Vec<(String, PackTensor)>, ConvertError> {
    let mut store = SafetensorsStore::from_file(path);
    let tensors = store.get_all_tensors().map_err(|e| file_err(path, format!("not a safetensors file: {e}")))?;
    Ok(tensors.iter().map(|(k, t)| (k.clone(), t.clone())).collect())
}

/// The HF folder's weights: `model.safetensors`, or the shards listed by its index.
fn read_t5_weights(dir: &Path) -> Result<Vec<(PathBuf, String, PackTensor)>, ConvertError> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if single.exists() {
        vec![single]
    } else if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| file_err(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| file_err(&index, e))?;
        let map =
            json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| file_err(&index, "no weight_map"))?;
        let mut files: Vec<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
        files.sort();
        files.dedup();
        files.into_iter().map(|f| dir.join(f)).collect()
    } else {
        return Err(file_err(dir, "no model.safetensors or model.safetensors.index.json (an HF T5 folder?)"));
    };
    let mut out = Vec::new();
    for f in files {
        out.extend(read_safetensors(&f)?.into_iter().map(|(k, t)| (f.clone(), k, t)));
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String, ConvertError> {
    std::fs::read_to_string(path).map_err(|e| file_err(path, e))
}

/// The OVAD attributes as the official `build_att_embeds` prompts them (checklist item 19).
pub struct AttributePrompts {
    /// Every attribute's templates, attribute after attribute.
    pub templates: Vec<String>,
    pub templates_per_attribute: Vec<usize>,
    pub names: Vec<String>,
}

pub fn attribute_prompts(ovad: &serde_json::Value) -> Result<AttributePrompts, String> {
    let list = ovad.get("attributes").and_then(|a| a.as_array()).ok_or("no \"attributes\" list")?;
    let (mut templates, mut counts, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for att in list {
        let name = att.get("name").and_then(|n| n.as_str()).ok_or("an attribute without a name")?;
        let kind = att.get("is_has_att").and_then(|n| n.as_str()).ok_or("an attribute without is_has_att")?;
        let (att_type, syns) = name.split_once(':').ok_or_else(|| format!("attribute {name:?} is not type:list"))?;
        let dobj = att_type.replace(" tone", "");
        let syns = match syns {
            "young/baby" => format!("{syns}/kid/kids/child/toddler/boy/girl"),
            "adult/old/aged" => format!("{syns}/teen/elder"),
            _ => syns.to_string(),
        };
        let before = templates.len();
        for syn in syns.split('/') {
            let pair = if kind == "has" {
                [format!("the {syn} {dobj} "), format!("the  has {syn} {dobj}")]
            } else {
                [format!("the {syn} "), format!("the  is {syn}")]
            };
            templates.extend(pair.into_iter().map(|t| t.trim().to_string()));
        }
        counts.push(templates.len() - before);
        names.push(name.to_string());
    }
    Ok(AttributePrompts { templates, templates_per_attribute: counts, names })
}

/// The sizes of the model, from the tensors' shapes and `--arch`.
fn infer_config(
    shapes: &HashMap<String, Vec<usize>>,
    arch: &Arch,
    arch_file: &str,
    t5: T5Config,
    vocab_sizes: [usize; 3],
) -> Result<DynReferConfig, ConvertError> {
    let dim = |key: &str, axis: usize| -> Result<usize, ConvertError> {
        shapes.get(key).and_then(|s| s.get(axis).copied()).ok_or(ConvertError::Missing {
            key: key.to_string(),
            shape: vec![],
            belongs: "the checkpoints",
        })
    };
    let count = |prefix: &str| {
        let re = regex::Regex::new(&format!(r"^{}\.(\d+)\.", regex::escape(prefix))).unwrap();
        shapes.keys().filter_map(|k| re.captures(k).map(|c| c[1].parse::<usize>().unwrap() + 1)).max().unwrap_or(0)
    };
    let vit = VitConfig::new()
        .with_width(dim("visual.visual_encoder.cls_token", 2)?)
        .with_depth(count("visual.visual_encoder.blocks"))
        .with_heads(arch.vision_heads)
        .with_mlp(dim("visual.visual_encoder.blocks.0.mlp.fc1.weight", 0)?)
        .with_patch(dim("visual.visual_encoder.patch_embed.proj.weight", 2)?)
        .with_image_size(arch.image_size);
    let qformer = QformerConfig::new()
        .with_width(dim("qformer.query_tokens", 2)?)
        .with_queries(dim("qformer.query_tokens", 1)?)
        .with_layers(count("qformer.encoder.layer"))
        .with_heads(arch.qformer_heads)
        .with_intermediate(dim("qformer.encoder.layer.0.intermediate_query.dense.weight", 0)?)
        .with_vision_width(dim("qformer.encoder.layer.0.crossattention.key.weight", 1)?)
        .with_cross_attention_freq(arch.cross_attention_freq);
    let heads = HeadsConfig::new()
        .with_width(dim("heads.tag_text_proj.weight", 0)?)
        .with_layers(count("heads.tag_head.encoder.layer"))
        .with_heads(arch.head_heads)
        .with_intermediate(dim("heads.tag_head.encoder.layer.0.intermediate.dense.weight", 0)?)
        .with_query_width(dim("heads.tag_vision_proj.weight", 1)?)
        .with_text_width(dim("heads.tag_text_proj.weight", 1)?);
    let clip_text = ClipTextConfig::new()
        .with_width(dim("clip_text.positional_embedding", 1)?)
        .with_layers(count("clip_text.transformer.resblocks"))
        .with_heads(arch.clip_text_heads)
        .with_context(dim("clip_text.positional_embedding", 0)?)
        .with_vocab(dim("clip_text.token_embedding.weight", 0)?)
        .with_embed_dim(dim("clip_text.text_projection", 1)?);
    let checks = [
        ("vision_heads", vit.width, arch.vision_heads, "the ViT width"),
        ("qformer_heads", qformer.width, arch.qformer_heads, "the Q-Former width"),
        ("head_heads", heads.width, arch.head_heads, "the heads' width"),
        ("clip_text_heads", clip_text.width, arch.clip_text_heads, "the text tower's width"),
        ("image_size", arch.image_size, vit.patch, "a multiple of the patch size"),
        ("dcn_group", vit.width / 16, arch.dcn_group, "the ViT width / 16 (DCNv4 needs channels per group % 16 == 0)"),
    ];
    for (field, width, n, what) in checks {
        if n == 0 || !width.is_multiple_of(n) {
            let message = format!("{field} = {n} does not divide {what} ({width})");
            return Err(ConvertError::Arch { file: arch_file.to_string(), message });
        }
    }
    if arch.num_views == 0 || arch.cross_attention_freq == 0 || arch.max_txt_len == 0 {
        let message = "num_views, cross_attention_freq and max_txt_len must be at least 1".to_string();
        return Err(ConvertError::Arch { file: arch_file.to_string(), message });
    }
    let expected_tokens = (arch.image_size / vit.patch).pow(2) + 1;
    let pos = dim("visual.visual_encoder.pos_embed", 1)?;
    if pos != expected_tokens {
        let message =
            format!("image_size {} gives {expected_tokens} ViT tokens but pos_embed has {pos}", arch.image_size);
        return Err(ConvertError::Arch { file: arch_file.to_string(), message });
    }
    let widths = [
        ("the Q-Former's cross-attention reads", qformer.vision_width, "the ViT is", vit.width),
        ("the heads read", heads.query_width, "the Q-Former is", qformer.width),
        ("the heads' text projections read", heads.text_width, "the text tower's projection is", clip_text.embed_dim),
    ];
    for (reader, got, source, want) in widths {
        if got != want {
            return Err(ConvertError::Mismatch(format!("{reader} {got}-wide inputs but {source} {want} wide")));
        }
    }
    let visual = VisualConfig::new(vit).with_views(arch.num_views).with_dcn_group(arch.dcn_group);
    Ok(DynReferConfig::new(visual, qformer, heads, clip_text, t5, vocab_sizes)
        .with_num_views(arch.num_views)
        .with_image_size(arch.image_size)
        .with_max_txt_len(arch.max_txt_len))
}

/// Writes shards of at most [`MAX_SHARD_BYTES`] (a larger tensor gets its own): safetensors for
/// float bundles, burnpack for quantized ones.
struct ShardWriter {
    dir: PathBuf,
    quant: Quant,
    pending: Vec<(String, TensorData)>,
    pending_bytes: usize,
    shards: Vec<FileEntry>,
    tensors: BTreeMap<String, TensorEntry>,
}

impl ShardWriter {
    fn add(&mut self, name: String, data: TensorData) -> Result<(), ConvertError> {
        let bytes = data.as_bytes().len();
        if self.pending_bytes + bytes > MAX_SHARD_BYTES && !self.pending.is_empty() {
            self.flush()?;
        }
        self.pending_bytes += bytes;
        let dtype = match data.dtype() {
            burn::tensor::DType::QFloat(_) => self.quant.name().to_string(),
            dtype => format!("{dtype:?}"),
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
                        burn::tensor::DType::F16 => safetensors::Dtype::F16,
                        _ => safetensors::Dtype::F32,
                    };
                    let view = safetensors::tensor::TensorView::new(dtype, d.shape().to_vec(), d.as_bytes());
                    (n.clone(), view.expect("float data of its shape"))
                })
                .collect();
            safetensors::serialize(views, None).map_err(|e| file_err(&path, e))?
        };
        std::fs::write(&path, &bytes).map_err(|e| file_err(&path, e))?;
        self.shards.push(FileEntry { file, bytes: bytes.len(), sha256: sha256_hex(&bytes) });
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }
}

/// Any float tensor as f32.
fn f32_data(entry: &Entry) -> Result<TensorData, ConvertError> {
    let err =
        |m: String| ConvertError::Key { file: entry.file.display().to_string(), key: entry.key.clone(), message: m };
    let data = bridge::to_data(&entry.tensor).map_err(|e| err(format!("unreadable: {e}")))?;
    if !data.dtype().is_float() {
        return Err(err(format!("{:?} where a float tensor was expected", data.dtype())));
    }
    Ok(if data.dtype() == burn::tensor::DType::F32 { data } else { data.convert_dtype(burn::tensor::DType::F32) })
}

struct ProgressBar {
    total: usize,
    done: usize,
    tty: bool,
}

impl ProgressBar {
    fn step(&mut self, what: &str) {
        self.done += 1;
        if self.tty {
            let width = 30 * self.done / self.total.max(1);
            eprint!("\r[{}{}] {}/{} {what:<60.60}", "#".repeat(width), " ".repeat(30 - width), self.done, self.total);
            if self.done == self.total {
                eprintln!();
            }
        }
    }
}

/// Converts the official files into a bundle in `out`.
pub fn convert(inputs: &Inputs, out: &Path, name: &str) -> Result<Manifest, ConvertError> {
    let arch: Arch = match &inputs.arch {
        Some(p) => serde_json::from_str(&read_text(p)?)
            .map_err(|e| ConvertError::Arch { file: p.display().to_string(), message: e.to_string() })?,
        None => Arch::default(),
    };

    // every official tensor, keyed by module path; DynRefer's checkpoint overrides BLIP-2's
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut add = |source: Source, file: &Path, key: String, tensor: PackTensor| -> Result<(), ConvertError> {
        match official_path(source, &key) {
            Some(path) => {
                entries.insert(path, Entry { file: file.to_path_buf(), key, tensor });
                Ok(())
            }
            None if known_unused(source, &key) => Ok(()),
            None => Err(ConvertError::Key {
                file: file.display().to_string(),
                key,
                message: "unexpected: no part of DynRefer has this tensor (wrong file?)".into(),
            }),
        }
    };
    let blip2 = read_pth(&inputs.blip2)?;
    let has_vit = blip2.iter().any(|(k, _)| k.starts_with("visual_encoder."));
    for (k, t) in blip2 {
        add(Source::Lavis, &inputs.blip2, k, t)?;
    }
    if !has_vit {
        let Some(vit) = &inputs.vit else {
            return Err(file_err(&inputs.blip2, "has no visual_encoder.* tensors: pass LAVIS' eva_vit_g.pth as --vit"));
        };
        let tensors = read_pth(vit)?;
        // LAVIS builds 39 of EVA-CLIP-g's 40 blocks and drops the last
        let last = tensors.iter().filter_map(|(k, _)| block_index(k)).max();
        for (k, t) in tensors {
            if block_index(&k).is_some() && block_index(&k) == last {
                continue;
            }
            add(Source::Lavis, vit, format!("visual_encoder.{k}"), t)?;
        }
    }
    for (k, t) in read_pth(&inputs.dynrefer)? {
        add(Source::Lavis, &inputs.dynrefer, k, t)?;
    }
    for (file, k, t) in read_t5_weights(&inputs.t5)? {
        add(Source::T5, &file, k, t)?;
    }
    for (k, t) in read_pth(&inputs.clip_text)? {
        if k.contains("text") {
            let short = k.get(5..).unwrap_or_default().to_string();
            add(Source::ClipText, &inputs.clip_text, short, t)?;
        }
    }

    // vocabularies
    let tags: Vec<String> = read_text(&inputs.tags)?.lines().map(|l| l.trim().to_string()).collect();
    let ovad: serde_json::Value =
        serde_json::from_str(&read_text(&inputs.attributes)?).map_err(|e| file_err(&inputs.attributes, e))?;
    let AttributePrompts { templates, templates_per_attribute, names: attributes } =
        attribute_prompts(&ovad).map_err(|e| file_err(&inputs.attributes, e))?;
    let classes: Vec<String> =
        serde_json::from_str(&read_text(&inputs.classes)?).map_err(|e| file_err(&inputs.classes, e))?;
    let bpe_bytes = std::fs::read(&inputs.bpe).map_err(|e| file_err(&inputs.bpe, e))?;
    let bpe = ClipBpe::from_gzip(&bpe_bytes).map_err(|e| file_err(&inputs.bpe, e))?;

    // the model's own parameter list decides what must be there, at which shape
    let t5_config_path = inputs.t5.join("config.json");
    let t5 = T5Config::from_hf_json(&read_text(&t5_config_path)?)
        .map_err(|e| file_err(&t5_config_path, e))?
        .with_tie_word_embeddings(!entries.contains_key("t5.lm_head.weight"));
    let shapes: HashMap<String, Vec<usize>> =
        entries.iter().map(|(k, e)| (k.clone(), e.tensor.shape.to_vec())).collect();
    let arch_file = inputs.arch.as_ref().map_or("(defaults)".to_string(), |p| p.display().to_string());
    let config = infer_config(&shapes, &arch, &arch_file, t5, [tags.len(), templates.len(), classes.len()])?;
    let device = Device::flex();
    let model = config.init(&device);
    let mut expected = ParamShapes::default();
    model.visit(&mut expected);
    drop(model);
    for ParamInfo { official: name, shape: want, .. } in &expected.params {
        if name.starts_with("vocab.") {
            continue;
        }
        let want = want.clone();
        match entries.get(name) {
            None => return Err(ConvertError::Missing { key: name.clone(), shape: want, belongs: belongs(name) }),
            Some(e) if e.tensor.shape.to_vec() != want => {
                return Err(ConvertError::Key {
                    file: e.file.display().to_string(),
                    key: e.key.clone(),
                    message: format!("shape {:?}, expected {want:?}", e.tensor.shape.to_vec()),
                });
            }
            Some(_) => {}
        }
    }
    let params: HashMap<&str, &ParamInfo> = expected.params.iter().map(|p| (p.official.as_str(), p)).collect();
    if let Some((_, e)) = entries.iter().find(|(k, _)| !params.contains_key(k.as_str())) {
        return Err(ConvertError::Key {
            file: e.file.display().to_string(),
            key: e.key.clone(),
            message: "unexpected for this architecture (check --arch and the files)".into(),
        });
    }

    std::fs::create_dir_all(out).map_err(|e| file_err(out, e))?;
    let mut writer = ShardWriter {
        dir: out.to_path_buf(),
        quant: inputs.quant,
        pending: vec![],
        pending_bytes: 0,
        shards: vec![],
        tensors: BTreeMap::new(),
    };
    let mut bar = ProgressBar { total: entries.len() + 3, done: 0, tty: std::io::stderr().is_terminal() };
    let mut clip_tensors = Vec::new();
    for (path, entry) in &entries {
        let data = f32_data(entry)?;
        if let Some(rest) = path.strip_prefix("clip_text.") {
            clip_tensors.push(bridge::from_data(data.clone(), rest.to_string(), None));
        }
        let (name, data) = stored(params[path.as_str()], data, inputs.quant, &device);
        writer.add(name, data)?;
        bar.step(path);
    }
    drop(entries);

    // the vocabularies' text embeddings
    let mut clip = config.clip_text.init(&device);
    let adapter: Box<dyn ModuleAdapter> =
        Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(burn::tensor::DType::F32)));
    let applied = clip.apply(clip_tensors, None, Some(adapter), false);
    if !applied.missing.is_empty() || !applied.errors.is_empty() {
        return Err(file_err(&inputs.clip_text, format!("does not fit the text tower: {applied}")));
    }
    let context = config.clip_text.context;
    for (vocab, texts) in [
        ("vocab.tags", tags.clone()),
        ("vocab.attribute_templates", templates),
        ("vocab.classes", classes.iter().map(|c| format!("the {}", c.to_lowercase())).collect()),
    ] {
        let mut rows = Vec::new();
        for batch in texts.chunks(64) {
            let tokens: Vec<i64> = batch.iter().flat_map(|t| bpe.tokenize(t, context)).map(i64::from).collect();
            let tokens = Tensor::<2, Int>::from_data(TensorData::new(tokens, [batch.len(), context]), &device);
            rows.extend(clip.forward(tokens).into_data().convert::<f32>().try_into_vec::<f32>().expect("f32"));
        }
        let data = TensorData::new(rows, [texts.len(), config.clip_text.embed_dim]);
        let (name, data) = stored(params[vocab], data, inputs.quant, &device);
        writer.add(name, data)?;
        bar.step(vocab);
    }
    writer.flush()?;

    let copy = |src: &Path, file: &str| -> Result<FileEntry, ConvertError> {
        let bytes = std::fs::read(src).map_err(|e| file_err(src, e))?;
        std::fs::write(out.join(file), &bytes).map_err(|e| file_err(&out.join(file), e))?;
        Ok(FileEntry { file: file.to_string(), bytes: bytes.len(), sha256: sha256_hex(&bytes) })
    };
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        name: name.to_string(),
        quant: inputs.quant,
        config,
        tag_threshold: arch.tag_threshold,
        vocabularies: VocabularyNames { tags, attributes, templates_per_attribute, classes },
        t5_tokenizer: copy(&inputs.t5.join("tokenizer.json"), "tokenizer.json")?,
        clip_bpe: copy(&inputs.bpe, "clip_bpe.txt.gz")?,
        shards: writer.shards,
        tensors: writer.tensors,
    };
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    std::fs::write(out.join(MANIFEST), json).map_err(|e| file_err(&out.join(MANIFEST), e))?;
    bar.step("manifest");
    Ok(manifest)
}

/// One parameter of the model, as the official files hold it (names with norms' `gamma`/`beta` as
/// `weight`/`bias`, linear weights `[out, in]`) and as burn holds it.
struct ParamInfo {
    official: String,
    burn: String,
    shape: Vec<usize>,
    /// A linear weight: burn stores it transposed.
    linear: bool,
    /// A linear, embedding or packed attention weight: quantized in a q8/q4 bundle.
    matrix: bool,
}

/// The model's parameters, read from its lazily built modules without allocating any weight.
#[derive(Default)]
struct ParamShapes {
    path: Vec<String>,
    containers: Vec<String>,
    params: Vec<ParamInfo>,
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

/// Parameters and bundle bytes of a model of `config` in mode `quant`, from its lazily built
/// modules: what converting the real checkpoints would write, without them.
pub fn projected_size(config: &DynReferConfig, quant: Quant) -> (usize, usize) {
    let mut shapes = ParamShapes::default();
    config.init(&Device::flex()).visit(&mut shapes);
    shapes.params.iter().fold((0, 0), |(params, bytes), p| {
        let mut shape = p.shape.clone();
        if p.linear {
            shape.reverse();
        }
        let quantized = p.matrix && quant.quantizes(&shape);
        (params + shape.iter().product::<usize>(), bytes + quant.stored_bytes(&shape, quantized))
    })
}

/// A tensor in the form the bundle stores: official name and layout for float bundles; burn's
/// name and layout for quantized ones, with the large linear and embedding weights quantized.
fn stored(info: &ParamInfo, data: TensorData, quant: Quant, device: &Device) -> (String, TensorData) {
    let Some(scheme) = quant.scheme() else {
        let dtype = if quant == Quant::F16 { burn::tensor::DType::F16 } else { burn::tensor::DType::F32 };
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

/// `blocks.N.` in an EVA ViT key.
fn block_index(key: &str) -> Option<usize> {
    key.strip_prefix("blocks.")?.split('.').next()?.parse().ok()
}

/// Official tensors DynRefer's inference does not read.
fn known_unused(source: Source, key: &str) -> bool {
    match source {
        Source::Lavis => {
            key.starts_with("Qformer.")
                || key == "attr_t"
                || key == "attr_b"
                || EVA_OUTPUT_LAYERS.iter().any(|p| key.starts_with(p))
        }
        Source::T5 => true,
        Source::ClipText => key == "logit_scale",
    }
}

fn belongs(path: &str) -> &'static str {
    match path.split('.').next().unwrap_or_default() {
        "t5" => "the T5 folder (--t5)",
        "clip_text" => "the EVA-CLIP file (--clip-text)",
        "visual" if path.starts_with("visual.visual_encoder") || path.starts_with("visual.ln_vision") => {
            "the BLIP-2 file (--blip2) or --vit"
        }
        "qformer" | "t5_proj" => "the BLIP-2 file (--blip2) or DynRefer's (--dynrefer)",
        _ => "DynRefer's checkpoint (--dynrefer)",
    }
}
