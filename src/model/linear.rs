//! A linear layer: burn's, with its forward pass on this crate's kernels.
//!
//! It has burn's parameter names and type name, so checkpoints, bundles and burn's PyTorch
//! adapters (which transpose `Linear` weights) see no difference, and it is initialised by burn's
//! `LinearConfig` so that training starts where it always has.

use burn::module::Param;
use burn::prelude::*;

use crate::kernels;

#[derive(Config, Debug)]
pub struct LinearConfig {
    pub d_input: usize,
    pub d_output: usize,
    #[config(default = true)]
    pub bias: bool,
}

/// `y = x · weight + bias`, weight [d_input, d_output].
#[derive(Module, Debug)]
pub struct Linear {
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl LinearConfig {
    pub fn init(&self, device: &Device) -> Linear {
        let burn::nn::Linear { weight, bias } =
            burn::nn::LinearConfig::new(self.d_input, self.d_output).with_bias(self.bias).init(device);
        Linear { weight, bias }
    }
}

impl Linear {
    /// [.., d_input] → [.., d_output]
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        kernels::linear(x, self.weight.val(), self.bias.as_ref().map(Param::val))
    }
}
