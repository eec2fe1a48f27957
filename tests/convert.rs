//! `dynrefer convert` on the official layouts that the tiny fixture does not have (LAVIS' own
//! `eva_vit_g.pth` with its 40th block, a sharded HF T5 folder in bfloat16, one ViT-g block and
//! one FlanT5-XL block at their real shapes), and its errors on broken inputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::store::{ModuleStore, PytorchStore, bridge};
use common::pth::{Data, PthTensor, write_pth};
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

/// A checkpoint's tensors as f32, by name (nested `model` dicts flattened as the converter does).
fn read_pth(path: &Path) -> Vec<PthTensor> {
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
    store
        .get_all_tensors()
        .unwrap()
        .iter()
        .map(|(k, t)| {
            let data = bridge::to_data(t).unwrap().convert::<f32>();
            PthTensor {
                name: k.strip_prefix("model.").unwrap_or(k).to_string(),
                shape: t.shape.to_vec(),
                data: Data::F32(data.try_to_vec().unwrap()),
            }
        })
        .collect()
}

/// Deterministic small values.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

fn f32_tensor(name: &str, shape: &[usize], seed: u64, scale: f32) -> PthTensor {
    let n = shape.iter().product();
    PthTensor { name: name.into(), shape: shape.to_vec(), data: Data::F32(values(n, seed, scale)) }
}

fn to_bits(v: &[f32], bf16: bool) -> Vec<u16> {
    v.iter().map(|&x| if bf16 { (x.to_bits() >> 16) as u16 } else { half_bits(x) }).collect()
}

/// f32 → IEEE half (round toward zero; the test only needs exact round trips of the stored bits).
fn half_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    sign | ((exp.min(30) as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

fn half_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    if exp == 0 {
        return f32::from_bits(sign);
    }
    f32::from_bits(sign | ((exp + 127 - 15) << 23) | (u32::from(h & 0x3ff) << 13))
}

/// One EVA ViT-g block and one FlanT5-XL block at their real shapes, in the official layouts:
/// `eva_vit_g.pth` (2 blocks: LAVIS drops the last), a BLIP-2 file without `visual_encoder`, and
/// a sharded bf16 HF T5 folder. The converter must take them and the page's describe must run.
#[test]
fn real_layouts_and_shapes_convert_and_describe() {
    let dir = scratch("real");
    let (w, mlp, patch, grid) = (1408usize, 6144usize, 14usize, 16usize);

    // eva_vit_g.pth: fp16, keys without `visual_encoder.`, 2 blocks
    let mut vit = vec![];
    let mut add_half = |name: &str, shape: &[usize], seed: u64, scale: f32| {
        let v = values(shape.iter().product(), seed, scale);
        vit.push(PthTensor { name: name.into(), shape: shape.to_vec(), data: Data::F16(to_bits(&v, false)) });
    };
    add_half("cls_token", &[1, 1, w], 1, 0.02);
    add_half("pos_embed", &[1, grid * grid + 1, w], 2, 0.02);
    add_half("patch_embed.proj.weight", &[w, 3, patch, patch], 3, 0.02);
    add_half("patch_embed.proj.bias", &[w], 4, 0.02);
    for b in 0..2u64 {
        let p = format!("blocks.{b}");
        add_half(&format!("{p}.norm1.weight"), &[w], 10 + b, 1.0);
        add_half(&format!("{p}.norm1.bias"), &[w], 20 + b, 0.02);
        add_half(&format!("{p}.attn.qkv.weight"), &[3 * w, w], 30 + b, 0.02);
        add_half(&format!("{p}.attn.q_bias"), &[w], 40 + b, 0.02);
        add_half(&format!("{p}.attn.v_bias"), &[w], 50 + b, 0.02);
        add_half(&format!("{p}.attn.proj.weight"), &[w, w], 60 + b, 0.02);
        add_half(&format!("{p}.attn.proj.bias"), &[w], 70 + b, 0.02);
        add_half(&format!("{p}.norm2.weight"), &[w], 80 + b, 1.0);
        add_half(&format!("{p}.norm2.bias"), &[w], 90 + b, 0.02);
        add_half(&format!("{p}.mlp.fc1.weight"), &[mlp, w], 100 + b, 0.02);
        add_half(&format!("{p}.mlp.fc1.bias"), &[mlp], 110 + b, 0.02);
        add_half(&format!("{p}.mlp.fc2.weight"), &[w, mlp], 120 + b, 0.02);
        add_half(&format!("{p}.mlp.fc2.bias"), &[w], 130 + b, 0.02);
    }
    let qkv_source = match &vit.iter().find(|t| t.name == "blocks.0.attn.qkv.weight").unwrap().data {
        Data::F16(bits) => bits[..8].iter().map(|&h| half_to_f32(h)).collect::<Vec<f32>>(),
        _ => unreachable!(),
    };
    let vit_path = dir.join("eva_vit_g.pth");
    write_pth(&vit_path, &vit, false);
    drop(vit);

    // BLIP-2 without the ViT, Q-Former cross-attention reading 1408 wide tokens
    let mut blip2: Vec<PthTensor> = read_pth(&common::e2e_file("blip2.pth"))
        .into_iter()
        .filter(|t| {
            !t.name.starts_with("visual_encoder.") && !t.name.starts_with("ln_vision.") && t.name != "t5_proj.weight"
        })
        .map(|t| {
            let wide = t.name.contains("crossattention.self.key.weight")
                || t.name.contains("crossattention.self.value.weight");
            if wide { f32_tensor(&t.name, &[t.shape[0], w], 5, 0.02) } else { t }
        })
        .collect();
    blip2.push(f32_tensor("ln_vision.weight", &[w], 6, 1.0));
    blip2.push(f32_tensor("ln_vision.bias", &[w], 7, 0.02));
    blip2.push(f32_tensor("t5_proj.weight", &[2048, 64], 8, 0.02));
    blip2.push(f32_tensor("t5_proj.bias", &[2048], 9, 0.02));
    let blip2_path = dir.join("blip2.pth");
    write_pth(&blip2_path, &blip2, true);

    // DynRefer's checkpoint with the alignment and fusion at 1408, T5 inputs at 2048
    let dyn_tensors: Vec<PthTensor> = read_pth(&common::e2e_file("dynrefer.pth"))
        .into_iter()
        .map(|t| {
            let cross = t.name.starts_with("Qformer.")
                && (t.name.contains("crossattention.self.key.weight")
                    || t.name.contains("crossattention.self.value.weight"));
            let shape: Option<Vec<usize>> = match t.name.as_str() {
                _ if cross => Some(vec![t.shape[0], w]),
                "cvem_align.offset_mask_dw.weight" => Some(vec![w, 2, 3, 3]),
                "cvem_align.offset_mask_dw.bias" | "cvem_align.value_proj.bias" | "cvem_align.output_proj.bias" => {
                    Some(vec![w])
                }
                "cvem_align.offset_mask.weight" => Some(vec![112, w]),
                "cvem_align.value_proj.weight" | "cvem_align.output_proj.weight" | "cvem_mlp.2.weight" => {
                    Some(vec![w, w])
                }
                "cvem_mlp.0.weight" => Some(vec![w, 3 * w]),
                "cvem_mlp.0.bias" | "cvem_mlp.2.bias" => Some(vec![w]),
                "cem_memory" => Some(vec![2048]),
                "t5_proj.weight" => Some(vec![2048, 64]),
                "t5_proj.bias" => Some(vec![2048]),
                _ => None,
            };
            match shape {
                Some(s) => f32_tensor(&t.name, &s, 11, 0.02),
                None => t,
            }
        })
        .collect();
    let dyn_path = dir.join("dynrefer.pth");
    write_pth(&dyn_path, &dyn_tensors, true);

    // flan-t5-xl's block shapes, one block each side, bf16, in two shards with an index
    let t5_dir = dir.join("t5");
    std::fs::create_dir_all(&t5_dir).unwrap();
    let (d, kv, ff, heads, vocab) = (2048usize, 64usize, 5120usize, 32usize, 458usize);
    let mut t5: Vec<(String, Vec<usize>)> = vec![
        ("shared.weight".into(), vec![vocab, d]),
        ("lm_head.weight".into(), vec![vocab, d]),
        ("encoder.final_layer_norm.weight".into(), vec![d]),
        ("decoder.final_layer_norm.weight".into(), vec![d]),
    ];
    for side in ["encoder", "decoder"] {
        let p = format!("{side}.block.0.layer");
        for m in ["q", "k", "v"] {
            t5.push((format!("{p}.0.SelfAttention.{m}.weight"), vec![heads * kv, d]));
        }
        t5.push((format!("{p}.0.SelfAttention.o.weight"), vec![d, heads * kv]));
        t5.push((format!("{p}.0.SelfAttention.relative_attention_bias.weight"), vec![32, heads]));
        t5.push((format!("{p}.0.layer_norm.weight"), vec![d]));
        let ffl = if side == "encoder" { 1 } else { 2 };
        if side == "decoder" {
            for m in ["q", "k", "v"] {
                t5.push((format!("{p}.1.EncDecAttention.{m}.weight"), vec![heads * kv, d]));
            }
            t5.push((format!("{p}.1.EncDecAttention.o.weight"), vec![d, heads * kv]));
            t5.push((format!("{p}.1.layer_norm.weight"), vec![d]));
        }
        t5.push((format!("{p}.{ffl}.DenseReluDense.wi_0.weight"), vec![ff, d]));
        t5.push((format!("{p}.{ffl}.DenseReluDense.wi_1.weight"), vec![ff, d]));
        t5.push((format!("{p}.{ffl}.DenseReluDense.wo.weight"), vec![d, ff]));
        t5.push((format!("{p}.{ffl}.layer_norm.weight"), vec![d]));
    }
    let mut weight_map = serde_json::Map::new();
    let mut wi0_source = vec![];
    for (shard, part) in [t5[..20].to_vec(), t5[20..].to_vec()].into_iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", shard + 1);
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = part
            .iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let scale = if name.contains("layer_norm") { 1.0 } else { 0.05 };
                let v = values(shape.iter().product(), 1000 + (shard * 100 + i) as u64, scale);
                let bits = to_bits(&v, true);
                if name == "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" {
                    wi0_source = bits[..8].iter().map(|&b| f32::from_bits(u32::from(b) << 16)).collect();
                }
                (name.clone(), shape.clone(), bits.iter().flat_map(|b| b.to_le_bytes()).collect())
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = data
            .iter()
            .map(|(n, s, b)| {
                (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, s.clone(), b).unwrap())
            })
            .collect();
        safetensors::serialize_to_file(views, None, &t5_dir.join(&file)).unwrap();
        for (name, _) in &part {
            weight_map.insert(name.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(t5_dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let config = serde_json::json!({
        "d_ff": ff, "d_kv": kv, "d_model": d, "decoder_start_token_id": 0, "dense_act_fn": "gelu_new",
        "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "layer_norm_epsilon": 1e-6, "model_type": "t5",
        "num_decoder_layers": 1, "num_heads": heads, "num_layers": 1, "pad_token_id": 0,
        "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,
        "tie_word_embeddings": false, "vocab_size": vocab
    });
    std::fs::write(t5_dir.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(common::e2e_file("t5/tokenizer.json"), t5_dir.join("tokenizer.json")).unwrap();

    let arch = dir.join("arch.json");
    let arch_json = serde_json::json!({"vision_heads": 16, "qformer_heads": 4, "head_heads": 4, "clip_text_heads": 4,
        "cross_attention_freq": 2, "num_views": 3, "image_size": 224, "dcn_group": 4, "tag_threshold": 0.7, "max_txt_len": 32});
    std::fs::write(&arch, arch_json.to_string()).unwrap();

    let files = Files {
        blip2: blip2_path,
        dynrefer: dyn_path,
        vit: Some(vit_path),
        t5: t5_dir,
        clip_text: common::e2e_file("clip_text.pt"),
        arch,
        strict: false,
    };
    let out = dir.join("bundle");
    let (ok, stdout, stderr) = files.convert(&out);
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
    assert_eq!(stored("visual.visual_encoder.blocks.0.attn.qkv.weight"), qkv_source);
    assert_eq!(stored("t5.encoder.block.0.ff.wi_0.weight"), wi0_source);

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
    let ovad: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::e2e_file("ovad2000.json")).unwrap()).unwrap();
    assert_eq!(got["attributes"].as_array().unwrap().len(), ovad["attributes"].as_array().unwrap().len());
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
