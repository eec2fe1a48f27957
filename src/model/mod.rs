//! The DynRefer model, one file per component.

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
