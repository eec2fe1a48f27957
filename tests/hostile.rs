//! Hostile bundles are refused by the command line with one clear line each, before any file
//! outside the bundle is read and without a panic.

mod common;

use std::process::Command;

use common::hostile;

#[test]
fn hostile_bundles_are_refused_with_one_line_each() {
    let root = common::scratch_dir("hostile", "bundles");
    let scene = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/examples/scene-1.jpg");
    for case in hostile::bundles(&root) {
        let out = Command::new(env!("CARGO_BIN_EXE_dynrefer"))
            .args(["describe", "--image", scene.to_str().unwrap(), "--box", "310,380,532.2,571.4", "--model"])
            .arg(&case.dir)
            .output()
            .unwrap();
        common::assert_fails(&out, case.name, case.needles);
    }
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn model_output_that_looks_like_html_stays_text_in_json() {
    let root = common::scratch_dir("hostile", "html");
    let dir = hostile::html_bundle(&root);
    let scene = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/examples/scene-1.jpg");
    let out = Command::new(env!("CARGO_BIN_EXE_dynrefer"))
        .args(["describe", "--image", scene.to_str().unwrap(), "--box", "310,380,532.2,571.4", "--model"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let class = json["classes"][0]["name"].as_str().unwrap();
    assert!(class.starts_with(hostile::INJECTION), "{class}");
    let _ = std::fs::remove_dir_all(root);
}

/// Shards the fuzzer found (`fuzz/fuzz_targets/shard.rs`; the first byte picks the format), under
/// the built-in manifest with their size and hash: refused with an error, never a panic.
#[test]
fn shards_the_fuzzer_found_are_refused() {
    use dynrefer::bundle::{Loader, Manifest, sha256_hex};
    let manifest = std::fs::read(hostile::builtin().join("manifest.json")).unwrap();
    let found = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/shard");
    for file in std::fs::read_dir(found).unwrap().flatten() {
        let data = std::fs::read(file.path()).unwrap();
        let (format, shard) = data.split_first().unwrap();
        let mut manifest = Manifest::parse("built-in", &manifest).unwrap();
        let entry = &mut manifest.shards[0];
        entry.file = if format & 1 == 0 { "weights-00000.bpk" } else { "weights-00000.safetensors" }.into();
        entry.bytes = shard.len() as u64;
        entry.sha256 = sha256_hex(shard);
        let mut loader = Loader::new("fuzzed", manifest, &burn::tensor::Device::flex()).unwrap();
        let refused = loader.add_shard(0, shard.to_vec());
        assert!(refused.is_err(), "{}", file.path().display());
        eprintln!("{}: {}", file.file_name().display(), refused.err().unwrap());
    }
}

/// `tokenizer.json` files the fuzzer found (`fuzz/fuzz_targets/tokenizer.rs`): refused with an
/// error, never a panic.
#[test]
fn tokenizers_the_fuzzer_found_are_refused() {
    use dynrefer::text::caption::T5Tokenizer;
    let found = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/tokenizer");
    for file in std::fs::read_dir(found).unwrap().flatten() {
        let refused = T5Tokenizer::from_json(&std::fs::read(file.path()).unwrap(), 32);
        assert!(refused.is_err(), "{}", file.path().display());
    }
}
