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

/// The reason a finding is refused for, by file name: a finding added without one fails the test.
fn reason<'a>(reasons: &[(&str, &'a str)], file: &std::fs::DirEntry) -> &'a str {
    let name = file.file_name().to_string_lossy().into_owned();
    reasons.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name}: no reason listed for it")).1
}

/// Shards the fuzzer found (`fuzz/fuzz_targets/shard.rs`; the first byte picks the format), under
/// the built-in manifest with their size and hash: refused with an error naming the shard and the
/// finding's fault, never a panic.
#[test]
fn shards_the_fuzzer_found_are_refused() {
    use dynrefer::bundle::{BundleError, Loader, Manifest, sha256_hex};
    // both quantization schemes are refused whole: the impossible one is not even printed, since
    // printing it panicked
    let reasons = [
        ("impossible-block-size.bin", "in a quantization that is not the bundle's"),
        ("q8-scheme-without-blocks.bin", "in a quantization that is not the bundle's"),
    ];
    let manifest = std::fs::read(hostile::builtin().join("manifest.json")).unwrap();
    let found = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/shard");
    for finding in std::fs::read_dir(found).unwrap().flatten() {
        let data = std::fs::read(finding.path()).unwrap();
        let (format, shard) = data.split_first().unwrap();
        let mut manifest = Manifest::parse("built-in", &manifest).unwrap();
        let entry = &mut manifest.shards[0];
        entry.file = if format & 1 == 0 { "weights-00000.bpk" } else { "weights-00000.safetensors" }.into();
        entry.bytes = shard.len() as u64;
        entry.sha256 = sha256_hex(shard);
        let shard_file = entry.file.clone();
        let verified = Manifest::verify("fuzzed", entry, shard.to_vec()).unwrap();
        let mut loader = Loader::new("fuzzed", manifest, &burn::tensor::Device::flex()).unwrap();
        let refused = loader.add_shard(0, verified);
        let name = finding.file_name();
        eprintln!("{}: {refused:?}", name.display());
        let Err(BundleError::File { file, message, .. }) = &refused else {
            panic!("{}: refused as a shard's contents: {refused:?}", name.display())
        };
        assert_eq!(*file, shard_file);
        assert!(message.contains(reason(&reasons, &finding)), "{}: {message}", name.display());
    }
}

/// `tokenizer.json` files the fuzzer found (`fuzz/fuzz_targets/tokenizer.rs`): refused with an
/// error that says what is wrong, never a panic.
#[test]
fn tokenizers_the_fuzzer_found_are_refused() {
    use dynrefer::text::caption::T5Tokenizer;
    let reasons = [
        // invalid UTF-8 in the decoder's JSON, on which tokenizers panicked
        ("broken-decoder.json", "T5 tokenizer: tokenizer.json is not JSON: "),
        // the template's pieces name a special token its table lacks, under any `type`
        (
            "template-under-another-type.json",
            "T5 tokenizer: tokenizer.json: the template's special token \"</'>\" is not defined",
        ),
        (
            "undefined-special-token.json",
            "T5 tokenizer: tokenizer.json: the template's special token \"</s>\" is not defined",
        ),
    ];
    let found = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/tokenizer");
    for file in std::fs::read_dir(found).unwrap().flatten() {
        let refused = T5Tokenizer::from_json(&std::fs::read(file.path()).unwrap(), 32);
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.starts_with(reason(&reasons, &file)), "{}: {message:?}", file.path().display());
    }
}
