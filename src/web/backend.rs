//! The compute device: WebGPU through burn's wgpu backend when the browser gives an adapter that
//! works, else burn's CPU backend (flex). A short computation proves the device before it is used.

use burn::tensor::{Device, Tensor};

/// Which backend the page computes on, as shown in `data-role="backend"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    WebGpu,
    Cpu,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::WebGpu => "webgpu",
            Backend::Cpu => "cpu",
        })
    }
}

async fn works(device: &Device) -> bool {
    let sum = Tensor::<1>::from_floats([1.0, 2.0, 3.0], device).sum().into_data_async().await;
    sum.ok().and_then(|d| d.try_to_vec::<f32>().ok()).is_some_and(|v| v == [6.0])
}

/// Picks the backend: WebGPU if an adapter exists and computes correctly, else the CPU.
pub async fn detect() -> (Backend, Device) {
    if let Ok(device) = Device::wgpu_options().init_async().await
        && works(&device).await
    {
        return (Backend::WebGpu, device);
    }
    (Backend::Cpu, Device::flex())
}
