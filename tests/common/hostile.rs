//! Hostile bundles, made from the built-in model: each breaks one rule a loader must enforce, with
//! the manifest's sizes and hashes made to agree wherever an attacker could make them agree.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::sha256_hex;

/// The built-in model's bundle folder.
pub fn builtin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("www/model")
}

fn copy_bundle(to: &Path) -> Value {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(builtin()).unwrap().flatten() {
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
    serde_json::from_slice(&std::fs::read(to.join("manifest.json")).unwrap()).unwrap()
}

fn write_manifest(dir: &Path, manifest: &Value) {
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
}

/// Replaces a bundle file and makes the manifest's entry for it agree.
fn replace_file(dir: &Path, manifest: &mut Value, entry: &str, bytes: &[u8]) {
    let entry = manifest.pointer_mut(entry).unwrap();
    std::fs::write(dir.join(entry["file"].as_str().unwrap()), bytes).unwrap();
    entry["bytes"] = json!(bytes.len());
    entry["sha256"] = json!(sha256_hex(bytes));
}

/// One hostile bundle: its folder and words its refusal must contain.
pub struct Hostile {
    pub name: &'static str,
    pub dir: PathBuf,
    pub needles: &'static [&'static str],
}

/// Writes every hostile bundle under `root`.
pub fn bundles(root: &Path) -> Vec<Hostile> {
    type Edit = fn(&Path, &mut Value);
    let cases: [(&str, &[&str], Edit); 14] = [
        ("parent", &["not a file name"], |_, m| m["shards"][0]["file"] = json!("../model/weights-00000.bpk")),
        ("slash", &["not a file name"], |_, m| m["t5_tokenizer"]["file"] = json!("sub/tokenizer.json")),
        ("absolute", &["not a file name"], |_, m| m["shards"][0]["file"] = json!("/etc/passwd")),
        ("backslash", &["not a file name"], |_, m| m["clip_bpe"]["file"] = json!("..\\clip_bpe.txt.gz")),
        ("url", &["not a file name"], |_, m| m["shards"][0]["file"] = json!("https://example.com/w.bpk")),
        ("shape-overflow", &["too large"], |_, m| {
            let first = m["tensors"].as_object_mut().unwrap().values_mut().next().unwrap();
            // each side fits a 32-bit size (wasm32's), their product no 64-bit one
            first["shape"] = json!([1u64 << 31, 1u64 << 31, 1u64 << 31]);
        }),
        ("size-overflow", &["more than a bundle file may have"], |_, m| m["shards"][0]["bytes"] = json!(u64::MAX)),
        ("shard-out-of-range", &["in shard 7"], |_, m| {
            let first = m["tensors"].as_object_mut().unwrap().values_mut().next().unwrap();
            first["shard"] = json!(7);
        }),
        ("count", &["lists 319 tensors", "has 320"], |_, m| {
            let tensors = m["tensors"].as_object_mut().unwrap();
            let first = tensors.keys().next().unwrap().clone();
            tensors.remove(&first);
        }),
        ("zero-heads", &["config", "qformer.heads is 0"], |_, m| m["config"]["qformer"]["heads"] = json!(0)),
        ("vocabulary", &["vocabularies of 17 tags"], |_, m| {
            m["vocabularies"]["tags"].as_array_mut().unwrap().pop();
        }),
        ("lying-offsets", &["weights-00000.bpk", "offset"], |dir, m| {
            // the last tensor's end offset (a CBOR u32) is moved a megabyte past the end of the file
            let mut bytes = std::fs::read(dir.join("weights-00000.bpk")).unwrap();
            let metadata = u32::from_le_bytes(bytes[6..10].try_into().unwrap()) as usize;
            let data_len = bytes.len() - (10 + metadata).div_ceil(256) * 256;
            let end = [&[0x1a][..], &(data_len as u32).to_be_bytes()].concat();
            let at = bytes[10..10 + metadata].windows(5).position(|w| w == end).unwrap() + 10;
            bytes[at + 1..at + 5].copy_from_slice(&(data_len as u32 + (1 << 20)).to_be_bytes());
            replace_file(dir, m, "/shards/0", &bytes);
        }),
        ("metadata-size", &["weights-00000.bpk"], |dir, m| {
            let mut bytes = std::fs::read(dir.join("weights-00000.bpk")).unwrap();
            bytes[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
            replace_file(dir, m, "/shards/0", &bytes);
        }),
        ("tokenizer", &["tokenizer"], |dir, m| replace_file(dir, m, "/t5_tokenizer", b"{\"model\": 1")),
    ];
    let mut out: Vec<Hostile> = cases
        .into_iter()
        .map(|(name, needles, edit)| {
            let dir = root.join(name);
            let mut manifest = copy_bundle(&dir);
            edit(&dir, &mut manifest);
            write_manifest(&dir, &manifest);
            Hostile { name, dir, needles }
        })
        .collect();

    // Text edits that a JSON value cannot hold: a tensor listed twice, a 100 MB manifest.
    let dir = root.join("duplicate");
    copy_bundle(&dir);
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let at = text.find("\"tensors\": {").unwrap() + "\"tensors\": {".len();
    let first_end = text[at..].find('}').unwrap() + at + 1;
    let doubled = format!("{}{},{}", &text[..at], &text[at..first_end], &text[at..]);
    std::fs::write(dir.join("manifest.json"), doubled).unwrap();
    out.push(Hostile { name: "duplicate", dir, needles: &["listed twice"] });

    let dir = root.join("huge-manifest");
    copy_bundle(&dir);
    let mut text = std::fs::read(dir.join("manifest.json")).unwrap();
    text.resize(100 << 20, b' ');
    std::fs::write(dir.join("manifest.json"), text).unwrap();
    out.push(Hostile { name: "huge-manifest", dir, needles: &["104857600 bytes"] });
    out
}

/// The HTML a hostile bundle's names and caption carry; run, it would set `window.__xss`.
pub const INJECTION: &str = "<img src=x onerror=\"window.__xss=1\">";

/// The built-in model whose tag, attribute and class names are [`INJECTION`] and whose tokenizer
/// decodes the caption's last word ("square" on the example scene) to it.
pub fn html_bundle(dir: &Path) -> PathBuf {
    let mut manifest = copy_bundle(dir);
    let vocab = &mut manifest["vocabularies"];
    for list in ["tags", "attributes", "classes"] {
        for name in vocab[list].as_array_mut().unwrap() {
            *name = json!(format!("{INJECTION}{}", name.as_str().unwrap()));
        }
    }
    let mut tokenizer: Value = serde_json::from_slice(&std::fs::read(dir.join("tokenizer.json")).unwrap()).unwrap();
    for piece in tokenizer["model"]["vocab"].as_array_mut().unwrap() {
        if piece[0] == "▁square" {
            piece[0] = json!(format!("▁{INJECTION}"));
        }
    }
    replace_file(dir, &mut manifest, "/t5_tokenizer", &serde_json::to_vec(&tokenizer).unwrap());
    write_manifest(dir, &manifest);
    dir.to_path_buf()
}
