//! DynRefer-FlanT5-XL at its real widths and vocabulary sizes with one layer where a model has
//! layers, in the official file layouts: EVA ViT-g (1408 wide, 16 heads, MLP 6144) as
//! `eva_vit_g.pth` in fp16 with two blocks (LAVIS drops the last), the BERT-base Q-Former (768
//! wide, 12 heads, 32 queries) in `blip2.pth` and `dynrefer.pth` beside the 1408-wide alignment and
//! fusion, FlanT5-XL (2048 wide, 32 heads, feed-forward 5120, 32128 vocabulary rows, a 32100-piece
//! tokenizer) as a sharded bf16 HF folder, 4585 tags and 2000 attributes. The tiny fixture's files
//! give every key; the shapes of those that carry a width are the real model's, with random values.
//! It exercises kernels, buffer bindings and quantized shapes at the sizes the real model has.

use std::path::Path;

use super::pth::{Data, PthTensor, f32_tensor, read_pth, to_bits, values, write_pth};

pub const VIT: usize = 1408;
const VIT_MLP: usize = 6144;
const QFORMER: usize = 768;
const QFORMER_FF: usize = 3072;
const QUERIES: usize = 32;
const T5: usize = 2048;
const T5_FF: usize = 5120;
const T5_HEADS: usize = 32;
const VOCAB_ROWS: usize = 32128;
const TOKENIZER_PIECES: usize = 32100;
pub const TAGS: usize = 4585;
pub const ATTRIBUTES: usize = 2000;

/// Writes the official files into `dir`, named as [`super::convert_args`] expects them.
pub fn write(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    write_vit(&dir.join("eva_vit_g.pth"));
    let blip2: Vec<PthTensor> = read_pth(&super::e2e_file("blip2.pth"))
        .into_iter()
        .filter(|t| !t.name.starts_with("visual_encoder."))
        .map(|t| real_width(t, 1))
        .collect();
    write_pth(&dir.join("blip2.pth"), &blip2, true);
    let dynrefer: Vec<PthTensor> =
        read_pth(&super::e2e_file("dynrefer.pth")).into_iter().map(|t| real_width(t, 2)).collect();
    write_pth(&dir.join("dynrefer.pth"), &dynrefer, true);
    write_t5(&dir.join("t5"));
    write_clip_text(&dir.join("clip_text.pt"));
    write_vocabularies(dir);
    for file in ["bpe_simple_vocab_16e6.txt.gz", "coco.json"] {
        std::fs::copy(super::e2e_file(file), dir.join(file)).unwrap();
    }
    let arch = serde_json::json!({"vision_heads": 16, "qformer_heads": 12, "head_heads": 4, "clip_text_heads": 4,
        "cross_attention_freq": 2, "num_views": 3, "image_size": 224, "dcn_group": 4, "tag_threshold": 0.7,
        "max_txt_len": 32});
    std::fs::write(dir.join("arch.json"), arch.to_string()).unwrap();
}

/// A tiny fixture tensor at the real shape: each dimension that is a width of the tiny model
/// becomes the real one, by what the tensor is.
fn real_width(t: PthTensor, seed: u64) -> PthTensor {
    let name = t.name.as_str();
    let cross_input =
        name.contains("crossattention.self.key.weight") || name.contains("crossattention.self.value.weight");
    let shape: Vec<usize> = if name.starts_with("Qformer.") {
        let mut shape: Vec<usize> = t
            .shape
            .iter()
            .map(|&d| match d {
                64 => QFORMER,
                256 => QFORMER_FF,
                d => d,
            })
            .collect();
        if cross_input {
            shape[1] = VIT;
        }
        shape
    } else {
        match name {
            "query_tokens" => vec![1, QUERIES, QFORMER],
            "ln_vision.weight" | "ln_vision.bias" => vec![VIT],
            "t5_proj.weight" => vec![T5, QFORMER],
            "t5_proj.bias" | "cem_memory" => vec![T5],
            "tag_vision_proj.weight" | "attr_vision_proj.weight" => vec![t.shape[0], QFORMER],
            _ if name.starts_with("cvem_") => t
                .shape
                .iter()
                .map(|&d| match d {
                    64 => VIT,
                    192 => 3 * VIT,
                    d => d,
                })
                .collect(),
            _ => return t,
        }
    };
    if shape == t.shape {
        return t;
    }
    let norm = name.contains("LayerNorm.weight") || name == "ln_vision.weight";
    let seed = seed * 1000 + name.len() as u64;
    if norm {
        let ones = values(shape.iter().product(), seed, 0.1).iter().map(|v| 1.0 + v).collect();
        return PthTensor { name: t.name, shape, data: Data::F32(ones) };
    }
    f32_tensor(name, &shape, seed, 0.02)
}

/// `eva_vit_g.pth`: fp16, keys without `visual_encoder.`, two blocks of which the converter keeps one.
fn write_vit(path: &Path) {
    let (patch, grid) = (14usize, 16usize);
    let mut vit = vec![];
    let mut add = |name: &str, shape: &[usize], scale: f32| {
        let v = values(shape.iter().product(), vit.len() as u64 + 1, scale);
        vit.push(PthTensor { name: name.into(), shape: shape.to_vec(), data: Data::F16(to_bits(&v, false)) });
    };
    add("cls_token", &[1, 1, VIT], 0.02);
    add("pos_embed", &[1, grid * grid + 1, VIT], 0.02);
    add("patch_embed.proj.weight", &[VIT, 3, patch, patch], 0.02);
    add("patch_embed.proj.bias", &[VIT], 0.02);
    for b in 0..2 {
        let p = format!("blocks.{b}");
        for (name, shape, scale) in [
            ("norm1.weight", vec![VIT], 1.0),
            ("norm1.bias", vec![VIT], 0.02),
            ("attn.qkv.weight", vec![3 * VIT, VIT], 0.02),
            ("attn.q_bias", vec![VIT], 0.02),
            ("attn.v_bias", vec![VIT], 0.02),
            ("attn.proj.weight", vec![VIT, VIT], 0.02),
            ("attn.proj.bias", vec![VIT], 0.02),
            ("norm2.weight", vec![VIT], 1.0),
            ("norm2.bias", vec![VIT], 0.02),
            ("mlp.fc1.weight", vec![VIT_MLP, VIT], 0.02),
            ("mlp.fc1.bias", vec![VIT_MLP], 0.02),
            ("mlp.fc2.weight", vec![VIT, VIT_MLP], 0.02),
            ("mlp.fc2.bias", vec![VIT], 0.02),
        ] {
            add(&format!("{p}.{name}"), &shape, scale);
        }
    }
    write_pth(path, &vit, false);
}

/// flan-t5-xl's shapes with one block each side: bf16, two shards and their index, the config,
/// and a tokenizer of 32100 pieces (the tiny one's, then made-up words).
fn write_t5(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let kv = 64;
    let mut t5: Vec<(String, Vec<usize>)> = vec![
        ("shared.weight".into(), vec![VOCAB_ROWS, T5]),
        ("lm_head.weight".into(), vec![VOCAB_ROWS, T5]),
        ("encoder.final_layer_norm.weight".into(), vec![T5]),
        ("decoder.final_layer_norm.weight".into(), vec![T5]),
    ];
    for side in ["encoder", "decoder"] {
        let p = format!("{side}.block.0.layer");
        let mut attention = |layer: usize, kind: &str| {
            for m in ["q", "k", "v"] {
                t5.push((format!("{p}.{layer}.{kind}.{m}.weight"), vec![T5_HEADS * kv, T5]));
            }
            t5.push((format!("{p}.{layer}.{kind}.o.weight"), vec![T5, T5_HEADS * kv]));
            t5.push((format!("{p}.{layer}.layer_norm.weight"), vec![T5]));
        };
        attention(0, "SelfAttention");
        if side == "decoder" {
            attention(1, "EncDecAttention");
        }
        t5.push((format!("{p}.0.SelfAttention.relative_attention_bias.weight"), vec![32, T5_HEADS]));
        let ff = if side == "encoder" { 1 } else { 2 };
        t5.push((format!("{p}.{ff}.DenseReluDense.wi_0.weight"), vec![T5_FF, T5]));
        t5.push((format!("{p}.{ff}.DenseReluDense.wi_1.weight"), vec![T5_FF, T5]));
        t5.push((format!("{p}.{ff}.DenseReluDense.wo.weight"), vec![T5, T5_FF]));
        t5.push((format!("{p}.{ff}.layer_norm.weight"), vec![T5]));
    }
    let mut weight_map = serde_json::Map::new();
    let half = t5.len() / 2;
    for (shard, part) in [&t5[..half], &t5[half..]].into_iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", shard + 1);
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = part
            .iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let scale = if name.contains("layer_norm") { 1.0 } else { 0.05 };
                let v = values(shape.iter().product(), 1000 + (shard * 100 + i) as u64, scale);
                (name.clone(), shape.clone(), to_bits(&v, true).iter().flat_map(|b| b.to_le_bytes()).collect())
            })
            .collect();
        let views = data.iter().map(|(n, s, b)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, s.clone(), b).unwrap())
        });
        safetensors::serialize_to_file(views, None, &dir.join(&file)).unwrap();
        for (name, _) in part {
            weight_map.insert(name.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let config = serde_json::json!({
        "d_ff": T5_FF, "d_kv": kv, "d_model": T5, "decoder_start_token_id": 0, "dense_act_fn": "gelu_new",
        "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "layer_norm_epsilon": 1e-6, "model_type": "t5",
        "num_decoder_layers": 1, "num_heads": T5_HEADS, "num_layers": 1, "pad_token_id": 0,
        "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,
        "tie_word_embeddings": false, "vocab_size": VOCAB_ROWS
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let tokenizer = std::fs::read(super::e2e_file("t5/tokenizer.json")).unwrap();
    let mut tokenizer: serde_json::Value = serde_json::from_slice(&tokenizer).unwrap();
    let pieces = tokenizer["model"]["vocab"].as_array_mut().unwrap();
    for i in pieces.len()..TOKENIZER_PIECES {
        pieces.push(serde_json::json!([format!("\u{2581}w{i}"), -12.0]));
    }
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
}

/// The tiny EVA-CLIP text tower with a token embedding for the whole BPE vocabulary (49408
/// rows), so that any tag or attribute name can be embedded.
fn write_clip_text(path: &Path) {
    let tensors: Vec<PthTensor> = read_pth(&super::e2e_file("clip_text.pt"))
        .into_iter()
        .map(|t| {
            if t.name == "text.token_embedding.weight" { f32_tensor(&t.name, &[49408, t.shape[1]], 7, 0.02) } else { t }
        })
        .collect();
    write_pth(path, &tensors, false);
}

/// 4585 tags and 2000 attributes, as RAM's and OVAD's files list them.
fn write_vocabularies(dir: &Path) {
    let words =
        ["red", "dog", "tall", "glass", "wooden", "street", "cloud", "green", "small", "river", "metal", "chair"];
    let name = |i: usize| format!("{} {} {}", words[i % 12], words[i / 12 % 12], words[i / 144 % 12]);
    let tags: Vec<String> = (0..TAGS).map(|i| format!("{} {i}", name(i))).collect();
    std::fs::write(dir.join("ram_tag_list.txt"), tags.join("\n") + "\n").unwrap();
    let attributes: Vec<serde_json::Value> = (0..ATTRIBUTES)
        .map(|i| {
            let kind = ["color", "material", "pattern", "size"][i % 4];
            let has = if i % 3 == 0 { "has" } else { "is" };
            let freq = ["head", "medium", "tail"][i % 3];
            let name = format!("{kind}:{}/{} {i}", words[i % 12], words[i / 12 % 12]);
            serde_json::json!({"id": i, "name": name, "type": kind, "parent_type": kind, "is_has_att": has,
                "freq_set": freq})
        })
        .collect();
    let ovad =
        serde_json::json!({"info": {"description": "made-up attributes at OVAD's size"}, "attributes": attributes});
    std::fs::write(dir.join("ovad2000.json"), ovad.to_string()).unwrap();
}
