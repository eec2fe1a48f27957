//! Kernels of this crate's own, where burn's CPU backend (flex) leaves speed on the table.
//!
//! They are a burn backend extension: the model calls the functions below on device-agnostic
//! tensors, flex runs the vectorised, multi-threaded code of this module, and every other backend
//! (WebGPU and the other cubecl runtimes, autodiff in training) runs burn's own operation, so the
//! model code stays the same everywhere.

mod gelu;

use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DType, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

#[backend_extension(
    Flex: cfg(feature = "model"),
    Cube: cfg(any(feature = "web", feature = "wgpu")),
    Autodiff: cfg(feature = "train")
)]
pub trait Kernels: Backend {
    /// Exact GELU, `0.5 x (1 + erf(x / √2))`.
    fn gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu(x)
    }
}

impl Kernels for Flex {
    fn gelu(mut x: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 {
            return <Self as ActivationOps<Self>>::gelu(x);
        }
        if x.layout().contiguous_offsets().is_none() {
            x = x.to_contiguous();
        }
        let (start, end) = x.layout().contiguous_offsets().expect("a contiguous copy");
        gelu::gelu_in_place(&mut x.storage_mut::<f32>()[start..end]);
        x
    }
}

#[cfg(any(feature = "web", feature = "wgpu"))]
impl Kernels for burn::backend::Cube {}

#[cfg(feature = "train")]
impl<B: Backend, C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> Kernels
    for burn::backend::Autodiff<B, C>
{
}

/// Exact GELU of every value.
pub fn gelu<const N: usize>(x: Tensor<N>) -> Tensor<N> {
    Tensor::from_dispatch(<Dispatch as Kernels>::gelu(x.into_dispatch()))
}
