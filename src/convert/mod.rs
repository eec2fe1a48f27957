//! Official checkpoints → a bundle (`dynrefer convert`), tensor by tensor.
//!
//! Every official key goes through one table ([`keys::official_path`]); the model's own parameter list
//! (from its lazily built modules, no weights allocated) says which paths and shapes must come
//! out. Tensors are read one at a time and written to shards of at most 64 MiB, so converting
//! the real model holds about one shard and one tensor in memory. The vocabulary embeddings are
//! computed by the EVA-CLIP text tower at the end and stored in the last shard.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, bridge};

pub mod config;
pub mod keys;
pub mod read;
pub mod vocab;
pub mod write;

use crate::bundle::{MAX_SHARD_BYTES, Manifest, Quant};
use crate::model::dynrefer::DynReferConfig;
use crate::model::t5::T5Config;
use crate::text::caption::T5Tokenizer;
use crate::text::clip_bpe::class_prompt;
use config::{Arch, infer_config};
use keys::{Source, belongs, block_index, known_unused, official_path};
use read::{Entry, check_inputs, f32_data, read_pth, read_t5_weights, read_text};
use vocab::Vocabularies;
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
    /// Put the EVA-CLIP text tower in the bundle, so that it can embed a person's own class names
    /// (the vocabularies' embeddings are computed at conversion either way).
    pub with_text_tower: bool,
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
    vocab: Vocabularies,
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
    let arch = Arch::read(inputs.arch.as_deref())?;
    let tokenizer_path = inputs.t5.join("tokenizer.json");
    let tokenizer_json = std::fs::read(&tokenizer_path).map_err(|e| file_err(&tokenizer_path, e))?;
    T5Tokenizer::from_json(&tokenizer_json, arch.max_txt_len).map_err(|e| file_err(&tokenizer_path, e))?;
    let t5_config_path = inputs.t5.join("config.json");
    let t5 = T5Config::from_hf_json(&read_text(&t5_config_path)?).map_err(|e| file_err(&t5_config_path, e))?;
    let vocab = Vocabularies::read(inputs)?;

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
    let names = &vocab.names;
    let sizes = [names.tags.len(), vocab.templates.len(), names.classes.len()];
    // the text tower's tensors are checked (and read) either way: they embed the vocabularies
    let config = infer_config(&shapes, &arch, &arch_file, t5, sizes)?.with_text_tower(Some(true));
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
        config: config.with_text_tower(Some(inputs.with_text_tower)),
        tag_threshold: arch.tag_threshold,
        vocab,
        tokenizer_json,
        clip_text: inputs.clip_text.clone(),
        quant: inputs.quant,
        ignored,
    })
}

impl Plan {
    /// Writes the bundle into `out`, one tensor at a time, then the vocabularies' text embeddings
    /// computed by the EVA-CLIP text tower. The tower itself goes in only with
    /// `--with-text-tower`.
    pub fn write(self, out: &Path, name: &str) -> Result<Manifest, ConvertError> {
        let Plan { entries, config, quant, .. } = &self;
        let device = Device::flex();
        let expected = ParamShapes::of(&config.clone().with_text_tower(Some(true)).init(&device));
        let params: HashMap<&str, &ParamInfo> = expected.params.iter().map(|p| (p.official.as_str(), p)).collect();
        let mut writer = ShardWriter::new(out, *quant, MAX_SHARD_BYTES)?;
        let mut bar = ProgressBar { total: entries.len() + 3, done: 0, tty: std::io::stderr().is_terminal() };
        let mut clip_tensors = Vec::new();
        for (path, entry) in entries {
            let data = f32_data(entry)?;
            if let Some(rest) = path.strip_prefix("clip_text.") {
                clip_tensors.push(bridge::from_data(data.clone(), rest.to_string(), None));
                if !config.has_text_tower() {
                    bar.step(path);
                    continue;
                }
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
        let names = &self.vocab.names;
        let classes = names.classes.iter().map(|c| class_prompt(c)).collect();
        for (vocab, texts) in [
            ("vocab.tags", names.tags.clone()),
            ("vocab.attribute_templates", self.vocab.templates.clone()),
            ("vocab.classes", classes),
        ] {
            let embeddings = clip.embed(&self.vocab.bpe, &texts).map_err(|e| file_err(&self.vocab.bpe_path, e))?;
            let (name, data) = stored(params[vocab], embeddings.into_data(), *quant, &device);
            writer.add(name, data)?;
            bar.step(vocab);
        }
        let info = BundleInfo {
            name: name.to_string(),
            config: self.config.clone(),
            tag_threshold: self.tag_threshold,
            vocabularies: self.vocab.names.clone(),
            tokenizer_json: self.tokenizer_json.clone(),
            clip_bpe: self.vocab.bpe_bytes.clone(),
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
