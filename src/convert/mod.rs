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

use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    FloatCastAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
    bridge,
};
use serde::Deserialize;

pub mod write;

use crate::bundle::{MAX_SHARD_BYTES, Manifest, Quant, VocabularyNames};
use crate::model::clip_text::ClipTextConfig;
use crate::model::dynrefer::{DynReferConfig, EVA_OUTPUT_LAYERS, Source, official_path};
use crate::model::heads::HeadsConfig;
use crate::model::qformer::QformerConfig;
use crate::model::t5::T5Config;
use crate::model::visual::VisualConfig;
use crate::model::vit::VitConfig;
use crate::text::caption::T5Tokenizer;
use crate::text::clip_bpe::ClipBpe;
use write::{BundleInfo, ParamInfo, ParamShapes, ShardWriter, stored};

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
    /// Refuse tensors the model does not use, instead of skipping them as the official loader does.
    pub strict: bool,
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

/// A `.pth` / `.pt` state dict, keys as stored. A checkpoint saved by LAVIS' runner holds the
/// training state beside the weights (`model`, `optimizer`, `config`, `scaler`, `epoch`): then
/// only `model` is read, as the official loader does.
pub fn read_pth(path: &Path) -> Result<Vec<(String, PackTensor)>, ConvertError> {
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
    let tensors = store.get_all_tensors().map_err(|e| file_err(path, format!("not a PyTorch checkpoint: {e}")))?;
    let wrapped = tensors.keys().any(|k| k.starts_with("model."));
    Ok(tensors
        .iter()
        .filter_map(|(k, t)| match k.strip_prefix("model.") {
            Some(key) => Some((key.to_string(), t.clone())),
            None => (!wrapped).then(|| (k.clone(), t.clone())),
        })
        .collect())
}

fn read_safetensors(path: &Path) -> Result<Vec<(String, PackTensor)>, ConvertError> {
    let mut store = SafetensorsStore::from_file(path);
    let tensors = store.get_all_tensors().map_err(|e| file_err(path, format!("not a safetensors file: {e}")))?;
    Ok(tensors.iter().map(|(k, t)| (k.clone(), t.clone())).collect())
}

/// The weight files of an HF T5 folder, as published: one file or the shards an index lists,
/// safetensors or PyTorch `.bin`.
fn t5_weight_files(dir: &Path) -> Result<Vec<PathBuf>, ConvertError> {
    for (single, index) in
        [("model.safetensors", "model.safetensors.index.json"), ("pytorch_model.bin", "pytorch_model.bin.index.json")]
    {
        if dir.join(single).is_file() {
            return Ok(vec![dir.join(single)]);
        }
        let index = dir.join(index);
        if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| file_err(&index, e))?;
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| file_err(&index, e))?;
            let map =
                json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| file_err(&index, "no weight_map"))?;
            let mut files: Vec<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
            files.sort();
            files.dedup();
            let files: Vec<PathBuf> = files.into_iter().map(|f| dir.join(f)).collect();
            if let Some(missing) = files.iter().find(|f| !f.is_file()) {
                return Err(file_err(missing, "listed by the index but missing: download every shard"));
            }
            return Ok(files);
        }
    }
    Err(file_err(
        dir,
        "no T5 weights: download model.safetensors (or the model-*.safetensors shards with \
         model.safetensors.index.json) from the flan-t5-xl repository into this folder",
    ))
}

fn read_t5_weights(files: &[PathBuf]) -> Result<Vec<(PathBuf, String, PackTensor)>, ConvertError> {
    let mut out = Vec::new();
    for f in files {
        let tensors = if f.extension().is_some_and(|e| e == "bin") { read_pth(f)? } else { read_safetensors(f)? };
        out.extend(tensors.into_iter().map(|(k, t)| (f.clone(), k, t)));
    }
    Ok(out)
}

/// Every input is there and of the right kind, before anything is read at length or written.
fn check_inputs(inputs: &Inputs) -> Result<Vec<PathBuf>, ConvertError> {
    let files = [
        ("--blip2", Some(&inputs.blip2)),
        ("--dynrefer", Some(&inputs.dynrefer)),
        ("--vit", inputs.vit.as_ref()),
        ("--clip-text", Some(&inputs.clip_text)),
        ("--bpe", Some(&inputs.bpe)),
        ("--tags", Some(&inputs.tags)),
        ("--attributes", Some(&inputs.attributes)),
        ("--classes", Some(&inputs.classes)),
        ("--arch", inputs.arch.as_ref()),
    ];
    for (flag, path) in files {
        if let Some(path) = path
            && !path.is_file()
        {
            let why = if path.is_dir() { "a folder, not a file" } else { "no such file" };
            return Err(file_err(path, format!("{why} ({flag})")));
        }
    }
    if !inputs.t5.is_dir() {
        return Err(file_err(&inputs.t5, "not a folder (--t5 takes the HF flan-t5-xl folder)"));
    }
    for file in ["config.json", "tokenizer.json"] {
        if !inputs.t5.join(file).is_file() {
            return Err(file_err(&inputs.t5.join(file), "missing: download it from the flan-t5-xl repository"));
        }
    }
    t5_weight_files(&inputs.t5)
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

/// The official files, read and checked against each other and against the model they make;
/// nothing has been written yet.
pub struct Plan {
    entries: BTreeMap<String, Entry>,
    config: DynReferConfig,
    tag_threshold: f32,
    vocabularies: VocabularyNames,
    templates: Vec<String>,
    bpe: ClipBpe,
    bpe_bytes: Vec<u8>,
    tokenizer_json: Vec<u8>,
    clip_text: PathBuf,
    quant: Quant,
    /// Tensors no part of the model reads, `(file, key)`; the official loader skips them too.
    pub ignored: Vec<(String, String)>,
}

/// Reads and checks the official files: every input up front (so that a missing
/// `tokenizer.json` is found before gigabytes are written), then every tensor's name and shape
/// (the tensors' values are read later, one at a time, by [`Plan::write`]).
pub fn plan(inputs: &Inputs) -> Result<Plan, ConvertError> {
    let t5_files = check_inputs(inputs)?;
    let arch: Arch = match &inputs.arch {
        Some(p) => serde_json::from_str(&read_text(p)?)
            .map_err(|e| ConvertError::Arch { file: p.display().to_string(), message: e.to_string() })?,
        None => Arch::default(),
    };
    let tokenizer_path = inputs.t5.join("tokenizer.json");
    let tokenizer_json = std::fs::read(&tokenizer_path).map_err(|e| file_err(&tokenizer_path, e))?;
    T5Tokenizer::from_json(&tokenizer_json, arch.max_txt_len).map_err(|e| file_err(&tokenizer_path, e))?;
    let t5_config_path = inputs.t5.join("config.json");
    let t5 = T5Config::from_hf_json(&read_text(&t5_config_path)?).map_err(|e| file_err(&t5_config_path, e))?;
    let tags: Vec<String> = read_text(&inputs.tags)?.lines().map(|l| l.trim().to_string()).collect();
    let ovad: serde_json::Value =
        serde_json::from_str(&read_text(&inputs.attributes)?).map_err(|e| file_err(&inputs.attributes, e))?;
    let AttributePrompts { templates, templates_per_attribute, names: attributes } =
        attribute_prompts(&ovad).map_err(|e| file_err(&inputs.attributes, e))?;
    let classes: Vec<String> =
        serde_json::from_str(&read_text(&inputs.classes)?).map_err(|e| file_err(&inputs.classes, e))?;
    let bpe_bytes = std::fs::read(&inputs.bpe).map_err(|e| file_err(&inputs.bpe, e))?;
    let bpe = ClipBpe::from_gzip(&bpe_bytes).map_err(|e| file_err(&inputs.bpe, e))?;

    // every official tensor, keyed by module path; DynRefer's checkpoint overrides BLIP-2's
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut ignored: Vec<(String, String)> = Vec::new();
    let mut add = |source: Source, file: &Path, key: String, tensor: PackTensor| match official_path(source, &key) {
        Some(path) => {
            entries.insert(path, Entry { file: file.to_path_buf(), key, tensor });
        }
        None if known_unused(source, &key) => {}
        None => ignored.push((file.display().to_string(), key)),
    };
    let blip2 = read_pth(&inputs.blip2)?;
    let has_vit = blip2.iter().any(|(k, _)| k.starts_with("visual_encoder."));
    for (k, t) in blip2 {
        add(Source::Lavis, &inputs.blip2, k, t);
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
            add(Source::Lavis, vit, format!("visual_encoder.{k}"), t);
        }
    }
    for (k, t) in read_pth(&inputs.dynrefer)? {
        add(Source::Lavis, &inputs.dynrefer, k, t);
    }
    for (file, k, t) in read_t5_weights(&t5_files)? {
        add(Source::T5, &file, k, t);
    }
    for (k, t) in read_pth(&inputs.clip_text)? {
        if k.contains("text") {
            let short = k.get(5..).unwrap_or_default().to_string();
            add(Source::ClipText, &inputs.clip_text, short, t);
        }
    }

    // the model's own parameter list decides what must be there, at which shape
    let t5 = t5.with_tie_word_embeddings(!entries.contains_key("t5.lm_head.weight"));
    let shapes: HashMap<String, Vec<usize>> =
        entries.iter().map(|(k, e)| (k.clone(), e.tensor.shape.to_vec())).collect();
    let arch_file = inputs.arch.as_ref().map_or("(defaults)".to_string(), |p| p.display().to_string());
    let config = infer_config(&shapes, &arch, &arch_file, t5, [tags.len(), templates.len(), classes.len()])?;
    let expected = ParamShapes::of(&config.init(&Device::flex()));
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
    let params: std::collections::HashSet<&str> = expected.params.iter().map(|p| p.official.as_str()).collect();
    let extra: Vec<String> = entries.keys().filter(|k| !params.contains(k.as_str())).cloned().collect();
    for path in extra {
        let e = entries.remove(&path).expect("a listed entry");
        ignored.push((e.file.display().to_string(), e.key));
    }
    if inputs.strict
        && let Some((file, key)) = ignored.first()
    {
        let more = ignored.len() - 1;
        return Err(ConvertError::Key {
            file: file.clone(),
            key: key.clone(),
            message: format!("unexpected: no part of DynRefer has this tensor (and {more} more; --strict)"),
        });
    }
    Ok(Plan {
        entries,
        config,
        tag_threshold: arch.tag_threshold,
        vocabularies: VocabularyNames { tags, attributes, templates_per_attribute, classes },
        templates,
        bpe,
        bpe_bytes,
        tokenizer_json,
        clip_text: inputs.clip_text.clone(),
        quant: inputs.quant,
        ignored,
    })
}

impl Plan {
    /// Writes the bundle into `out`, one tensor at a time, then the vocabularies' text embeddings
    /// computed by the EVA-CLIP text tower.
    pub fn write(self, out: &Path, name: &str) -> Result<Manifest, ConvertError> {
        let Plan { entries, config, quant, .. } = &self;
        let device = Device::flex();
        let expected = ParamShapes::of(&config.init(&device));
        let params: HashMap<&str, &ParamInfo> = expected.params.iter().map(|p| (p.official.as_str(), p)).collect();
        let mut writer = ShardWriter::new(out, *quant, MAX_SHARD_BYTES)?;
        let mut bar = ProgressBar { total: entries.len() + 3, done: 0, tty: std::io::stderr().is_terminal() };
        let mut clip_tensors = Vec::new();
        for (path, entry) in entries {
            let data = f32_data(entry)?;
            if let Some(rest) = path.strip_prefix("clip_text.") {
                clip_tensors.push(bridge::from_data(data.clone(), rest.to_string(), None));
            }
            let (name, data) = stored(params[path.as_str()], data, *quant, &device);
            writer.add(name, data)?;
            bar.step(path);
        }

        // the vocabularies' text embeddings
        let mut clip = config.clip_text.init(&device);
        let adapter: Box<dyn ModuleAdapter> =
            Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(burn::tensor::DType::F32)));
        let applied = clip.apply(clip_tensors, None, Some(adapter), false);
        if !applied.missing.is_empty() || !applied.errors.is_empty() {
            return Err(file_err(&self.clip_text, format!("does not fit the text tower: {applied}")));
        }
        let context = config.clip_text.context;
        let names = &self.vocabularies;
        let classes = names.classes.iter().map(|c| format!("the {}", c.to_lowercase())).collect();
        for (vocab, texts) in [
            ("vocab.tags", names.tags.clone()),
            ("vocab.attribute_templates", self.templates.clone()),
            ("vocab.classes", classes),
        ] {
            let mut rows = Vec::new();
            for batch in texts.chunks(64) {
                let (ids, length) = self.bpe.rows(batch, context);
                let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch.len(), length]), &device);
                rows.extend(clip.forward(tokens).into_data().convert::<f32>().try_into_vec::<f32>().expect("f32"));
            }
            let data = TensorData::new(rows, [texts.len(), config.clip_text.embed_dim]);
            let (name, data) = stored(params[vocab], data, *quant, &device);
            writer.add(name, data)?;
            bar.step(vocab);
        }
        let info = BundleInfo {
            name: name.to_string(),
            config: self.config.clone(),
            tag_threshold: self.tag_threshold,
            vocabularies: self.vocabularies.clone(),
            tokenizer_json: self.tokenizer_json.clone(),
            clip_bpe: self.bpe_bytes.clone(),
        };
        let manifest = writer.finish(info)?;
        bar.step("manifest");
        Ok(manifest)
    }
}

/// Converts the official files into a bundle in `out` ([`plan`], then [`Plan::write`]).
pub fn convert(inputs: &Inputs, out: &Path, name: &str) -> Result<Manifest, ConvertError> {
    plan(inputs)?.write(out, name)
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
