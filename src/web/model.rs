//! Fetching a model bundle into the page: the manifest, the tokenizer, then the shards one by
//! one, each verified and moved to the device before the next is fetched.

use burn::tensor::Device;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::bundle::{Loader, MANIFEST, Manifest, Progress};
use crate::describe::Describer;

/// The bundle's folder URL: `?model=URL` or the built-in model next to the page.
pub fn bundle_url() -> String {
    let query = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
    let from_query = web_sys::UrlSearchParams::new_with_str(&query).ok().and_then(|p| p.get("model"));
    let url = from_query.filter(|u| !u.is_empty()).unwrap_or_else(|| "model/".to_string());
    if url.ends_with('/') { url } else { format!("{url}/") }
}

async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|_| format!("{url}: the download failed (network error or blocked by CORS)"))?;
    let response: web_sys::Response = response.unchecked_into();
    if !response.ok() {
        let status = response.status();
        let why = if status == 404 { "not found (404)".to_string() } else { format!("HTTP {status}") };
        return Err(format!("{url}: {why}"));
    }
    let buffer = response.array_buffer().map_err(|_| format!("{url}: unreadable response"))?;
    let buffer = JsFuture::from(buffer).await.map_err(|_| format!("{url}: the download was interrupted"))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Loads the bundle at `base` on `device`; `progress` hears after each file.
pub async fn load(base: &str, device: &Device, progress: impl Fn(Progress)) -> Result<Describer, String> {
    let manifest = Manifest::parse(base, &fetch(&format!("{base}{MANIFEST}")).await?).map_err(|e| e.to_string())?;
    let total = manifest.total_bytes();
    let tokenizer = fetch(&format!("{base}{}", manifest.t5_tokenizer.file)).await?;
    let mut done = tokenizer.len();
    let mut loader = Loader::new(base, manifest, device);
    for i in 0..loader.manifest.shards.len() {
        let file = loader.manifest.shards[i].file.clone();
        let bytes = fetch(&format!("{base}{file}")).await?;
        done += bytes.len();
        loader.add_shard(i, bytes).map_err(|e| e.to_string())?;
        progress(Progress { done, total, file });
    }
    Describer::from_loader(loader, &tokenizer).map_err(|e| e.to_string())
}
