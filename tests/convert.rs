//! `dynrefer convert` on the official layouts that the tiny fixture does not have (LAVIS' own
//! `eva_vit_g.pth` with its 40th block, a sharded HF T5 folder in bfloat16, one ViT-g block and
//! one FlanT5-XL block at their real shapes), and its errors on broken inputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::pth::{Data, PthTensor, f32_tensor, read_pth, write_pth};
use safetensors::SafeTensors;

fn scratch(name: &str) -> PathBuf {
    common::scratch_dir("convert", name)
}

fn dynrefer(args: &[String]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dynrefer")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The official files of the tiny fixture, each replaceable.
struct Files {
    blip2: PathBuf,
    dynrefer: PathBuf,
    vit: Option<PathBuf>,
    t5: PathBuf,
    clip_text: PathBuf,
    arch: PathBuf,
    strict: bool,
}

impl Files {
    fn fixture() -> Files {
        Files {
            blip2: common::e2e_file("blip2.pth"),
            dynrefer: common::e2e_file("dynrefer.pth"),
            vit: None,
            t5: common::e2e_file("t5"),
            clip_text: common::e2e_file("clip_text.pt"),
            arch: common::e2e_file("arch.json"),
            strict: false,
        }
    }

    fn convert(&self, out: &Path) -> (bool, String, String) {
        let p = |p: &Path| p.display().to_string();
        let mut args: Vec<String> = vec![
            "convert".into(),
            "--blip2".into(),
            p(&self.blip2),
            "--dynrefer".into(),
            p(&self.dynrefer),
            "--t5".into(),
            p(&self.t5),
            "--clip-text".into(),
            p(&self.clip_text),
            "--bpe".into(),
            p(&common::e2e_file("bpe_simple_vocab_16e6.txt.gz")),
            "--tags".into(),
            p(&common::e2e_file("ram_tag_list.txt")),
            "--attributes".into(),
            p(&common::e2e_file("ovad2000.json")),
            "--classes".into(),
            p(&common::e2e_file("coco.json")),
            "--arch".into(),
            p(&self.arch),
            "--out".into(),
            p(out),
        ];
        if let Some(vit) = &self.vit {
            args.extend(["--vit".into(), p(vit)]);
        }
        if self.strict {
            args.push("--strict".into());
        }
        dynrefer(&args)
    }
}

/// The real widths with one layer each (`common::real_widths`), in the official layouts:
/// `eva_vit_g.pth` (2 blocks: LAVIS drops the last), a BLIP-2 file without `visual_encoder`, and
/// a sharded bf16 HF T5 folder. The converter must take them and the page's describe must run.
#[test]
fn real_layouts_and_shapes_convert_and_describe() {
    let dir = scratch("real");
    let src = dir.join("official");
    common::real_widths::write(&src);
    let out = dir.join("bundle");
    let (ok, stdout, stderr) = dynrefer(&common::convert_args(&src, "f32", &out));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"shards\""), "{stdout}");

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let c = &manifest["config"];
    assert_eq!(c["visual"]["vit"]["width"], 1408);
    assert_eq!(c["visual"]["vit"]["depth"], 1, "the last of eva_vit_g's blocks is dropped");
    assert_eq!(c["visual"]["vit"]["mlp"], 6144);
    assert_eq!(c["t5"]["d_model"], 2048);
    assert_eq!(c["t5"]["d_ff"], 5120);
    assert_eq!(c["t5"]["tie_word_embeddings"], false);
    assert_eq!(c["t5"]["scale_decoder_outputs"], false);
    let tensors = manifest["tensors"].as_object().unwrap();
    assert!(!tensors.keys().any(|k| k.contains("visual_encoder.blocks.1.")));
    for (i, shard) in manifest["shards"].as_array().unwrap().iter().enumerate() {
        let held = tensors.values().filter(|t| t["shard"] == i).count();
        assert!(shard["bytes"].as_u64().unwrap() <= 64 << 20 || held == 1, "shard {i}: {shard}");
    }

    // the stored values are the sources', in their official layout, as f32
    let stored = |name: &str| -> Vec<f32> {
        let entry = &tensors[name];
        let file = &manifest["shards"][entry["shard"].as_u64().unwrap() as usize]["file"];
        let bytes = std::fs::read(out.join(file.as_str().unwrap())).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        st.tensor(name).unwrap().data()[..32]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let vit = read_pth(&src.join("eva_vit_g.pth"));
    let Data::F32(qkv) = &vit.iter().find(|t| t.name == "blocks.0.attn.qkv.weight").unwrap().data else { panic!() };
    assert_eq!(stored("visual.visual_encoder.blocks.0.attn.qkv.weight"), qkv[..8]);
    let wi0 = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight";
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("t5/model.safetensors.index.json")).unwrap()).unwrap();
    let shard = std::fs::read(src.join("t5").join(index["weight_map"][wi0].as_str().unwrap())).unwrap();
    let source: Vec<f32> = SafeTensors::deserialize(&shard).unwrap().tensor(wi0).unwrap().data()[..16]
        .chunks_exact(2)
        .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
        .collect();
    assert_eq!(stored("t5.encoder.block.0.ff.wi_0.weight"), source);

    // and the whole pipeline runs on it
    let image = dir.join("photo.png");
    std::fs::write(&image, &common::photos()[0].png).unwrap();
    let args: Vec<String> = [
        "describe",
        "--model",
        out.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--box",
        "100,80,300,260",
        "--beams",
        "2",
        "--max-new-tokens",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, stdout, stderr) = dynrefer(&args);
    assert!(ok, "{stderr}");
    let got: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(got["views"].as_array().unwrap().len(), 3);
    assert_eq!(got["attributes"].as_array().unwrap().len(), common::real_widths::ATTRIBUTES);
    assert!(!got["caption_ids"].as_array().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

fn assert_one_line_error(result: (bool, String, String), needles: &[&str]) {
    let (ok, stdout, stderr) = result;
    assert!(!ok, "should fail");
    assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{stderr:?} should name {n:?}");
    }
}

#[test]
fn broken_inputs_give_one_clear_line() {
    let dir = scratch("broken");
    let out = dir.join("bundle");

    // a text file where a checkpoint should be
    let text = dir.join("notes.pth");
    std::fs::write(&text, "not a checkpoint").unwrap();
    let files = Files { blip2: text.clone(), ..Files::fixture() };
    assert_one_line_error(files.convert(&out), &["notes.pth", "not a PyTorch checkpoint"]);

    // a truncated checkpoint
    let cut = dir.join("cut.pth");
    let bytes = std::fs::read(common::e2e_file("dynrefer.pth")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_one_line_error(Files { dynrefer: cut, ..Files::fixture() }.convert(&out), &["cut.pth"]);

    // a misshapen tensor, an unexpected one
    let mut tensors = read_pth(&common::e2e_file("dynrefer.pth"));
    let i = tensors.iter().position(|t| t.name == "cem_memory").unwrap();
    tensors[i] = f32_tensor("cem_memory", &[63], 1, 0.1);
    let bad = dir.join("misshapen.pth");
    write_pth(&bad, &tensors, true);
    assert_one_line_error(
        Files { dynrefer: bad, ..Files::fixture() }.convert(&out),
        &["misshapen.pth", "cem_memory", "[63]", "[64]"],
    );
    let mut tensors = read_pth(&common::e2e_file("dynrefer.pth"));
    tensors.push(f32_tensor("decoder.head.weight", &[4, 4], 1, 0.1));
    let extra = dir.join("extra.pth");
    write_pth(&extra, &tensors, true);
    let files = Files { dynrefer: extra, strict: true, ..Files::fixture() };
    assert_one_line_error(files.convert(&out), &["extra.pth", "decoder.head.weight", "unexpected", "--strict"]);

    // a T5 folder without one tensor
    let t5 = dir.join("t5");
    std::fs::create_dir_all(&t5).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(common::e2e_file("t5").join(f), t5.join(f)).unwrap();
    }
    let bytes = std::fs::read(common::e2e_file("t5/model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().filter(|(n, _)| n != "decoder.final_layer_norm.weight").collect();
    safetensors::serialize_to_file(kept, None, &t5.join("model.safetensors")).unwrap();
    assert_one_line_error(
        Files { t5: t5.clone(), ..Files::fixture() }.convert(&out),
        &["t5.decoder.final_layer_norm.weight", "[64]", "--t5"],
    );

    // a BLIP-2 file without the ViT and no --vit
    let tensors: Vec<PthTensor> = read_pth(&common::e2e_file("blip2.pth"))
        .into_iter()
        .filter(|t| !t.name.starts_with("visual_encoder."))
        .collect();
    let no_vit = dir.join("no_vit.pth");
    write_pth(&no_vit, &tensors, true);
    assert_one_line_error(Files { blip2: no_vit, ..Files::fixture() }.convert(&out), &["no_vit.pth", "--vit"]);

    // an architecture file that does not fit the weights
    let arch = dir.join("arch.json");
    let fixture_arch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::e2e_file("arch.json")).unwrap()).unwrap();
    let with = |key: &str, value: usize| {
        let mut a = fixture_arch.clone();
        a[key] = value.into();
        a.to_string()
    };
    std::fs::write(&arch, with("vision_heads", 5)).unwrap();
    assert_one_line_error(
        Files { arch: arch.clone(), ..Files::fixture() }.convert(&out),
        &["arch.json", "vision_heads"],
    );
    std::fs::write(&arch, with("image_size", 224)).unwrap();
    assert_one_line_error(Files { arch, ..Files::fixture() }.convert(&out), &["image_size", "pos_embed"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The manifest's shard hashes: equal lists mean the same bundle.
fn shard_hashes(bundle: &Path) -> Vec<String> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    manifest["shards"].as_array().unwrap().iter().map(|s| s["sha256"].as_str().unwrap().to_string()).collect()
}

#[test]
fn released_layouts_convert_with_nothing_but_the_paths() {
    let dir = scratch("released");
    let reference = dir.join("reference");
    let (ok, _, stderr) = Files::fixture().convert(&reference);
    assert!(ok, "{stderr}");

    // DynRefer's checkpoint as LAVIS' runner saves it: weights under `model`, the optimizer's
    // moments, config, scaler and epoch beside them
    let model = read_pth(&common::e2e_file("dynrefer.pth"));
    let moments: Vec<PthTensor> =
        model.iter().take(3).flat_map(|t| [0, 1].map(|k| f32_tensor(&t.name, &t.shape, 7 + k, 0.01))).collect();
    let saved = dir.join("refcocog_ft.pth");
    common::pth::write_training_save(&saved, &model, &moments);

    // FlanT5 as PyTorch .bin shards with their index
    let t5 = dir.join("flan-t5");
    std::fs::create_dir_all(&t5).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(common::e2e_file("t5").join(f), t5.join(f)).unwrap();
    }
    let t5_tensors = read_safetensors_f32(&common::e2e_file("t5/model.safetensors"));
    let (first, second) = t5_tensors.split_at(t5_tensors.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (i, part) in [first, second].iter().enumerate() {
        let file = format!("pytorch_model-0000{}-of-00002.bin", i + 1);
        write_pth(&t5.join(&file), part, false);
        weight_map.extend(part.iter().map(|t| (t.name.clone(), file.clone().into())));
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(t5.join("pytorch_model.bin.index.json"), index.to_string()).unwrap();

    let out = dir.join("bundle");
    let (ok, _, stderr) = Files { dynrefer: saved, t5: t5.clone(), ..Files::fixture() }.convert(&out);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("warning"), "the training state is not weights: {stderr}");
    assert_eq!(shard_hashes(&out), shard_hashes(&reference), "the same weights make the same bundle");

    // a tensor no part of the model reads is skipped with one warning, as the official loader does
    let mut tensors = model;
    tensors.push(f32_tensor("decoder.head.weight", &[4, 4], 1, 0.1));
    let extra = dir.join("extra.pth");
    write_pth(&extra, &tensors, true);
    let (ok, _, stderr) = Files { dynrefer: extra, ..Files::fixture() }.convert(&dir.join("lenient"));
    assert!(ok, "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("warning") && stderr.contains("extra.pth") && stderr.contains("decoder.head.weight"));
    assert_eq!(shard_hashes(&dir.join("lenient")), shard_hashes(&reference));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_inputs_are_found_before_anything_is_written() {
    let dir = scratch("missing");
    let t5 = dir.join("t5");
    std::fs::create_dir_all(&t5).unwrap();
    std::fs::copy(common::e2e_file("t5/config.json"), t5.join("config.json")).unwrap();
    std::fs::copy(common::e2e_file("t5/model.safetensors"), t5.join("model.safetensors")).unwrap();
    let out = dir.join("bundle");
    assert_one_line_error(Files { t5: t5.clone(), ..Files::fixture() }.convert(&out), &["tokenizer.json", "missing"]);
    assert!(!out.exists(), "nothing written");

    // a T5 folder without weights says what to download
    std::fs::copy(common::e2e_file("t5/tokenizer.json"), t5.join("tokenizer.json")).unwrap();
    std::fs::remove_file(t5.join("model.safetensors")).unwrap();
    assert_one_line_error(
        Files { t5: t5.clone(), ..Files::fixture() }.convert(&out),
        &["no T5 weights", "model.safetensors"],
    );
    // a shard the index lists but that is not there
    std::fs::write(
        t5.join("model.safetensors.index.json"),
        r#"{"weight_map": {"shared.weight": "model-00001-of-00002.safetensors"}}"#,
    )
    .unwrap();
    assert_one_line_error(
        Files { t5: t5.clone(), ..Files::fixture() }.convert(&out),
        &["model-00001-of-00002.safetensors", "missing"],
    );
    // a tokenizer that is not one
    std::fs::copy(common::e2e_file("t5/model.safetensors"), t5.join("model.safetensors")).unwrap();
    std::fs::write(t5.join("tokenizer.json"), "{}").unwrap();
    assert_one_line_error(Files { t5, ..Files::fixture() }.convert(&out), &["tokenizer.json"]);
    // a file flag pointing at a folder
    assert_one_line_error(
        Files { clip_text: dir.clone(), ..Files::fixture() }.convert(&out),
        &["--clip-text", "folder"],
    );
    assert!(!out.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A safetensors file's tensors as f32.
fn read_safetensors_f32(path: &Path) -> Vec<PthTensor> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<PthTensor> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => {
                    view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
                }
                other => panic!("{name}: {other:?}"),
            };
            PthTensor { name, shape: view.shape().to_vec(), data: Data::F32(data) }
        })
        .collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    tensors
}
