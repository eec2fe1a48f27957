//! Kernels of this crate's own, where burn's CPU backend (flex) leaves speed or memory on the table.
//!
//! They are a burn backend extension: the model calls the functions below on device-agnostic
//! tensors, flex runs the vectorised, multi-threaded code of this module, and every other backend
//! (WebGPU and the other cubecl runtimes, autodiff in training) runs burn's own operations, so the
//! model code stays the same everywhere.

mod gelu;
mod matmul;

use burn::backend::flex::{FlexQTensor, FlexTensor};
use burn::backend::ops::{ActivationOps, FloatTensorOps, QTensorOps};
use burn::backend::tensor::{FloatTensor, QuantizedTensor};
use burn::backend::{Backend, DType, Dispatch, Flex, FloatDType, TensorData, TensorMetadata, backend_extension};
use burn::tensor::{Device, Tensor};

use burn::tensor::quantization::{QuantStore, QuantValue, global_scale_dtype};
use matmul::{QWeight, Values};

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

    /// A block-quantized tensor in f32.
    fn dequantize_f32(tensor: QuantizedTensor<Self>) -> FloatTensor<Self> {
        Self::dequantize(tensor, FloatDType::F32)
    }

    /// A quantized weight [k, n] in its most compact form for `quantized_weight_matmul`.
    fn compact_weight(weight: QuantizedTensor<Self>) -> QuantizedTensor<Self> {
        weight
    }

    /// `x` [m, k] times a block-quantized weight [k, n].
    fn quantized_weight_matmul(x: FloatTensor<Self>, weight: QuantizedTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(x, Self::dequantize(weight, FloatDType::F32))
    }
}

/// `tensor`'s values as one contiguous f32 slice, copying only when they are not already.
fn f32_values(tensor: &FlexTensor) -> Option<std::borrow::Cow<'_, [f32]>> {
    if tensor.dtype() != DType::F32 {
        return None;
    }
    Some(match tensor.as_slice::<f32>() {
        Some(values) => values.into(),
        None => tensor.to_contiguous().as_slice::<f32>()?.to_vec().into(),
    })
}

fn flex_tensor(values: Vec<f32>, shape: [usize; 2]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A quantized weight's values and per-block scales, when its blocks are runs of columns this
/// module's kernels take (as every bundle's are: blocks of 32 along the output dimension).
fn q_weight(weight: &FlexQTensor) -> Option<QWeight<'_>> {
    let DType::QFloat(scheme) = weight.dtype() else { return None };
    let block = scheme.block_size()?;
    let shape = weight.shape();
    let (&n, scales) = (shape.as_slice().last()?, weight.scales());
    let block_cols = match block.as_slice() {
        [cols] | [1, cols] if *cols > 0 && 64 % (*cols as usize) == 0 => *cols as usize,
        _ => return None,
    };
    let numel = shape.num_elements();
    let values = match scheme.store {
        QuantStore::PackedNative(0) if block_cols == matmul::PACKED_BLOCK => {
            let bytes = weight.tensor().bytes();
            (2 * bytes.len() == numel).then_some(Values::Packed4(bytes))?
        }
        QuantStore::Native => Values::I8(weight.tensor().as_slice::<i8>().filter(|v| v.len() == numel)?),
        _ => return None,
    };
    let fits = n > 0 && global_scale_dtype(&scheme).is_none() && scales.len() == numel / n * n.div_ceil(block_cols);
    fits.then_some(QWeight { values, scales, block_cols })
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

    fn dequantize_f32(tensor: QuantizedTensor<Self>) -> FloatTensor<Self> {
        let shape = tensor.shape();
        match (q_weight(&tensor), shape.as_slice()) {
            (Some(w), &[k, n]) => flex_tensor(matmul::dequantize(w, n), [k, n]),
            _ => Self::dequantize(tensor, FloatDType::F32),
        }
    }

    /// 4-bit values are unpacked to one per byte by burn's CPU backend; they are packed two to a
    /// byte again (see [`matmul::Values::Packed4`]), which halves the memory of a q4 model.
    fn compact_weight(weight: QuantizedTensor<Self>) -> QuantizedTensor<Self> {
        let (DType::QFloat(scheme), [_, n]) = (weight.dtype(), weight.shape().dims()) else { return weight };
        let packable = scheme.value == QuantValue::Q4S && n % matmul::PACKED_BLOCK == 0;
        let Some(QWeight { values: Values::I8(values), scales, block_cols }) = q_weight(&weight) else { return weight };
        if !packable || block_cols != matmul::PACKED_BLOCK {
            return weight;
        }
        let packed = burn::tensor::Bytes::from_elems(matmul::pack4(values, n));
        let layout = weight.tensor().layout().clone();
        let tensor = FlexTensor::new(packed, layout, DType::I8);
        FlexQTensor::new(tensor, scheme.with_store(QuantStore::PackedNative(0)), scales.to_vec(), None)
    }

    fn quantized_weight_matmul(x: FloatTensor<Self>, weight: QuantizedTensor<Self>) -> FloatTensor<Self> {
        let ([m, k], [_, n]) = (x.shape().dims(), weight.shape().dims());
        let (Some(xs), Some(w)) = (f32_values(&x), q_weight(&weight)) else {
            return Self::float_matmul(x, Self::dequantize(weight, FloatDType::F32));
        };
        if m <= matmul::MAX_ROWS {
            return flex_tensor(matmul::matmul(&xs, m, k, w, n), [m, n]);
        }
        #[cfg(not(target_arch = "wasm32"))]
        return flex_tensor(matmul::matmul_many_rows(&xs, m, k, w, n), [m, n]);
        #[cfg(target_arch = "wasm32")]
        Self::float_matmul(x, flex_tensor(matmul::dequantize(w, n), [k, n]))
    }
}

#[cfg(any(feature = "web", feature = "wgpu"))]
impl Kernels for burn::backend::Cube {}

#[cfg(feature = "train")]
impl<B: Backend, C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> Kernels
    for burn::backend::Autodiff<B, C>
{
}

/// Whether `device` is burn's CPU backend, where this module's kernels run (and quantized
/// linear weights stay quantized).
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex()
}

/// Exact GELU of every value.
pub fn gelu<const N: usize>(x: Tensor<N>) -> Tensor<N> {
    Tensor::from_dispatch(<Dispatch as Kernels>::gelu(x.into_dispatch()))
}

/// A quantized linear weight as the backend keeps it most compactly (unchanged elsewhere).
pub fn compact_weight<const N: usize>(tensor: Tensor<N>) -> Tensor<N> {
    match tensor.dtype() {
        DType::QFloat(_) => Tensor::from_dispatch(<Dispatch as Kernels>::compact_weight(tensor.into_dispatch())),
        _ => tensor,
    }
}

/// `tensor` in f32 (unchanged when it is not quantized).
pub fn dequantize<const N: usize>(tensor: Tensor<N>) -> Tensor<N> {
    match tensor.dtype() {
        DType::QFloat(_) => Tensor::from_dispatch(<Dispatch as Kernels>::dequantize_f32(tensor.into_dispatch())),
        _ => tensor,
    }
}

/// `x · weight + bias` over the last dimension of `x`, with `weight` [in, out] (burn's Linear).
///
/// On the CPU backend a quantized weight stays quantized: it is dequantized strip by strip inside
/// this module's matmul (burn's CPU backend would widen the whole weight on every use). Everywhere
/// else, and for f32 weights, this is burn's `linear`.
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    let quantized = matches!(weight.dtype(), DType::QFloat(_));
    let mut dims = x.dims();
    let [k, n] = weight.dims();
    let m = dims[..D - 1].iter().product::<usize>();
    if !quantized || !is_cpu(&x.device()) {
        return burn::tensor::module::linear(x, weight, bias);
    }
    let y = <Dispatch as Kernels>::quantized_weight_matmul(x.reshape([m, k]).into_dispatch(), weight.into_dispatch());
    let mut y = Tensor::<2>::from_dispatch(y);
    if let Some(bias) = bias {
        y = y + bias.unsqueeze();
    }
    dims[D - 1] = n;
    y.reshape(dims)
}
