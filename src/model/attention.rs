//! Multi-head scaled dot-product attention, shared by the ViT, the CLIP text tower and BERT:
//! `softmax(q kᵀ / sqrt(head_dim)) v` per head, on burn's fused kernel where the backend has one.

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

/// [batch, tokens, width] → [batch, heads, tokens, width / heads]
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, n, c] = x.dims();
    x.reshape([b, n, heads, c / heads]).swap_dims(1, 2)
}

/// [batch, heads, tokens, head_dim] → [batch, tokens, heads * head_dim]
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, n, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, n, h * d])
}

/// Attention of `q` over `k`, `v`, each [batch, tokens, width]; `causal` hides later tokens.
pub fn multi_head(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let options = AttentionModuleOptions { is_causal: causal, ..Default::default() };
    let out = attention(split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), None, None, options);
    merge_heads(out)
}

/// Self-attention from packed projections `qkv` [batch, tokens, 3 * width] (queries, keys and
/// values side by side, as `qkv` / `in_proj` layers produce them) → [batch, tokens, width].
pub fn packed(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let mut parts = qkv.chunk(3, 2).into_iter();
    let (q, k, v) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    multi_head(q, k, v, heads, causal)
}
