//! Fetching a model bundle into the page: the manifest, the tokenizer, then the shards one by
//! one, each verified and moved to the device before the next is fetched. Shards and the
//! tokenizer are kept in the browser's Cache Storage under their SHA-256, so a reload fetches
//! only the manifest; a cached file that fails its hash check is dropped and fetched again.

use burn::tensor::Device;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::bundle::{FileEntry, Loader, MANIFEST, Manifest, Progress};
use crate::describe::Describer;

/// The bundle's folder URL: `?model=URL` or the built-in model next to the page.
pub fn bundle_url() -> String {
    let query = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
    let from_query = web_sys::UrlSearchParams::new_with_str(&query).ok().and_then(|p| p.get("model"));
    folder_url(&from_query.filter(|u| !u.is_empty()).unwrap_or_else(|| "model/".to_string()))
}

/// A folder URL ends with a slash (a trailing `manifest.json` is taken off).
pub fn folder_url(url: &str) -> String {
    let url = url.trim().trim_end_matches(MANIFEST);
    if url.ends_with('/') { url.to_string() } else { format!("{url}/") }
}

pub async fn fetch(url: &str) -> Result<Vec<u8>, String> {
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

const CACHE: &str = "dynrefer-models";

async fn cache() -> Option<web_sys::Cache> {
    let caches = web_sys::window()?.caches().ok()?;
    JsFuture::from(caches.open(CACHE)).await.ok().map(|c| c.unchecked_into())
}

/// A bundle file by its hash: from the cache when it is there and intact, else downloaded (and
/// cached when the browser has room; a full quota only costs the next reload a download).
async fn fetch_file(base: &str, entry: &FileEntry) -> Result<Vec<u8>, String> {
    let url = format!("{base}{}", entry.file);
    let key = format!("{url}?sha256={}", entry.sha256);
    let cache = cache().await;
    if let Some(cache) = &cache
        && let Ok(hit) = JsFuture::from(cache.match_with_str(&key)).await
        && let Ok(response) = hit.dyn_into::<web_sys::Response>()
        && let Ok(buffer) = response.array_buffer()
        && let Ok(buffer) = JsFuture::from(buffer).await
    {
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        if Manifest::verify(base, entry, &bytes).is_ok() {
            return Ok(bytes);
        }
        let _ = JsFuture::from(cache.delete_with_str(&key)).await;
    }
    let bytes = fetch(&url).await?;
    if let Some(cache) = &cache
        && let Ok(response) = web_sys::Response::new_with_opt_u8_array(Some(&mut bytes.clone()))
    {
        let _ = JsFuture::from(cache.put_with_str(&key, &response)).await;
    }
    Ok(bytes)
}

/// Loads the bundle at `base` on `device`; `progress` hears after each file.
pub async fn load(base: &str, device: &Device, progress: impl Fn(Progress)) -> Result<Describer, String> {
    let manifest = Manifest::parse(base, &fetch(&format!("{base}{MANIFEST}")).await?).map_err(|e| e.to_string())?;
    let total = manifest.total_bytes();
    let tokenizer = fetch_file(base, &manifest.t5_tokenizer).await?;
    let mut done = tokenizer.len();
    let mut loader = Loader::new(base, manifest, device);
    for i in 0..loader.manifest.shards.len() {
        let entry = loader.manifest.shards[i].clone();
        let file = entry.file.clone();
        let bytes = fetch_file(base, &entry).await?;
        done += bytes.len();
        loader.add_shard(i, bytes).map_err(|e| e.to_string())?;
        progress(Progress { done, total, file });
    }
    Describer::from_loader(loader, &tokenizer).map_err(|e| e.to_string())
}
