//! The DynRefer model, one file per component (see DESIGN.md §1).

pub mod align;
pub mod roi_align;
pub mod vit;
