//! dynrefer: DynRefer (CVPR 2025) region description, natively and in the browser.
//!
//! The pipeline starts with [`photo::decode_photo`] (bytes → upright RGB) and
//! [`views::build_views`] (region → the nested views the model sees); a converted bundle
//! ([`describe::Describer`]) turns a photo and a box into a caption, tags, attributes and a class.

#[cfg(feature = "model")]
pub mod bundle;
#[cfg(feature = "convert")]
pub mod convert;
#[cfg(feature = "model")]
pub mod describe;
#[cfg(feature = "cli")]
pub mod eval;
#[cfg(feature = "model")]
pub mod kernels;
#[cfg(feature = "model")]
pub mod model;
pub mod photo;
pub mod scenes;
pub mod text;
#[cfg(feature = "train")]
pub mod train;
pub mod views;

#[cfg(feature = "web")]
pub mod web;
