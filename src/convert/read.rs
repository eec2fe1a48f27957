//! Reading the official files as published: PyTorch checkpoints (`.pth`, LAVIS runner
//! checkpoints included), safetensors, and the HF T5 folder (one file or index-listed shards).
//! Tensors are listed by name and shape first; their values are read one at a time when written.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ModuleStore, PytorchStore, SafetensorsStore, bridge};

use super::{ConvertError, Inputs, file_err};

/// A source tensor, read when written.
pub(super) struct Entry {
    pub file: PathBuf,
    pub key: String,
    pub tensor: PackTensor,
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

pub(super) fn read_t5_weights(files: &[PathBuf]) -> Result<Vec<(PathBuf, String, PackTensor)>, ConvertError> {
    let mut out = Vec::new();
    for f in files {
        let tensors = if f.extension().is_some_and(|e| e == "bin") { read_pth(f)? } else { read_safetensors(f)? };
        out.extend(tensors.into_iter().map(|(k, t)| (f.clone(), k, t)));
    }
    Ok(out)
}

/// Every input is there and of the right kind, before anything is read at length or written.
pub(super) fn check_inputs(inputs: &Inputs) -> Result<Vec<PathBuf>, ConvertError> {
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

pub(super) fn read_text(path: &Path) -> Result<String, ConvertError> {
    std::fs::read_to_string(path).map_err(|e| file_err(path, e))
}

/// Any float tensor as f32.
pub(super) fn f32_data(entry: &Entry) -> Result<TensorData, ConvertError> {
    let err =
        |m: String| ConvertError::Key { file: entry.file.display().to_string(), key: entry.key.clone(), message: m };
    let data = bridge::to_data(&entry.tensor).map_err(|e| err(format!("unreadable: {e}")))?;
    if !data.dtype().is_float() {
        return Err(err(format!("{:?} where a float tensor was expected", data.dtype())));
    }
    Ok(if data.dtype() == burn::tensor::DType::F32 { data } else { data.convert_dtype(burn::tensor::DType::F32) })
}
