//! The compute device: WebGPU through burn's wgpu backend when the browser gives an adapter that
//! works, else burn's CPU backend (flex). A short computation proves the device before it is used.
//! What the adapter is (a real GPU or a software one) and its limits decide which models the
//! page accepts before downloading them.

use burn::tensor::{Device, Tensor};
use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::bundle::Target;

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

/// The GPU memory a page can count on for weights. WebGPU does not tell how much memory a GPU
/// has; the real model quantized to q8 (4.6 GB on the GPU) fits in this, widened to f32
/// (16.4 GB) it does not.
const GPU_MODEL_BYTES: u64 = 6_000_000_000;

/// What the page knows of a WebGPU adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct Adapter {
    /// Vendor and architecture or description, as the browser reports them.
    pub name: String,
    /// A software rasterizer on the CPU (SwiftShader, llvmpipe, WARP): right, but slow.
    pub software: bool,
    /// The largest storage buffer binding the device allows, in bytes.
    pub max_binding: u64,
}

/// The compute device and what the page checks models against.
pub struct Compute {
    pub backend: Backend,
    pub device: Device,
    pub adapter: Option<Adapter>,
}

impl Compute {
    pub fn target(&self) -> Target {
        match &self.adapter {
            Some(a) if self.backend == Backend::WebGpu => {
                Target::Gpu { max_binding: a.max_binding, max_bytes: GPU_MODEL_BYTES }
            }
            _ => Target::WASM_CPU,
        }
    }
}

async fn works(device: &Device) -> bool {
    let sum = Tensor::<1>::from_floats([1.0, 2.0, 3.0], device).sum().into_data_async().await;
    sum.ok().and_then(|d| d.try_to_vec::<f32>().ok()).is_some_and(|v| v == [6.0])
}

fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn text(object: &JsValue, key: &str) -> String {
    get(object, key).as_string().unwrap_or_default()
}

/// The adapter the browser offers, as burn will get it (the same default request).
async fn adapter() -> Option<Adapter> {
    let gpu = get(&web_sys::window()?.navigator().into(), "gpu");
    let request: js_sys::Function = get(&gpu, "requestAdapter").dyn_into().ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = JsFuture::from(promise).await.ok().filter(|a| !a.is_null() && !a.is_undefined())?;
    let info = get(&adapter, "info");
    let described = [text(&info, "vendor"), text(&info, "architecture"), text(&info, "description")];
    let name = described.iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>().join(" ");
    let fallback = get(&info, "isFallbackAdapter").as_bool().or_else(|| get(&adapter, "isFallbackAdapter").as_bool());
    let lower = name.to_lowercase();
    let software = fallback == Some(true)
        || ["swiftshader", "llvmpipe", "lavapipe", "warp", "software"].iter().any(|s| lower.contains(s));
    let limits = get(&adapter, "limits");
    let limit = |key: &str| get(&limits, key).as_f64().map_or(u64::MAX, |v| v as u64);
    let max_binding = limit("maxStorageBufferBindingSize").min(limit("maxBufferSize"));
    let max_binding = super::hooks::hooks().gpu_max_binding.map_or(max_binding, |o| o.min(max_binding));
    Some(Adapter { name: if name.is_empty() { "unnamed adapter".into() } else { name }, software, max_binding })
}

/// Picks the backend: WebGPU if allowed, an adapter exists and it computes correctly, else the CPU.
pub async fn detect(allow_gpu: bool) -> Compute {
    if allow_gpu
        && let Some(adapter) = adapter().await
        && let Ok(device) = Device::wgpu_options().init_async().await
        && works(&device).await
    {
        return Compute { backend: Backend::WebGpu, device, adapter: Some(adapter) };
    }
    Compute { backend: Backend::Cpu, device: Device::flex(), adapter: None }
}
