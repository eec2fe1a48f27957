//! The DynRefer model, one file per component (see DESIGN.md §1).

pub mod align;
pub mod attention;
pub mod bert;
pub mod clip_text;
pub mod dynrefer;
pub mod fuse;
pub mod heads;
pub mod linear;
pub mod qformer;
pub mod roi_align;
pub mod t5;
pub mod visual;
pub mod vit;

/// How official checkpoint keys become module paths, after the component's prefix is removed:
/// regex and replacement, applied in order. Everything else keeps its official name.
pub const KEY_REMAP: &[(&str, &str)] = &[
    // Rust modules cannot have a field named `self`; BERT's attention is flattened one level.
    (r"\.self\.", "."),
    (r"^self\.", ""),
    (r"\.LayerNorm\.", ".layer_norm."),
    (r"^LayerNorm\.", "layer_norm."),
];
