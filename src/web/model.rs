//! Fetching a model bundle into the page: the manifest, the tokenizer, then the shards one by
//! one, each verified and moved to the device before the next is fetched. Shards and the
//! tokenizer are kept in the browser's Cache Storage under their SHA-256, so a reload fetches
//! only the manifest; a cached file that fails its hash check is dropped and fetched again.

use burn::tensor::Device;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::bundle::{FileEntry, Loader, MANIFEST, Manifest, Progress, Target};
use crate::describe::Describer;

/// A parameter of the page's URL (`?name=value`).
pub fn query_param(name: &str) -> Option<String> {
    let query = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&query).ok()?.get(name)
}

/// The bundle's folder URL: `?model=URL` or the built-in model next to the page.
pub fn bundle_url() -> String {
    folder_url(&query_param("model").filter(|u| !u.is_empty()).unwrap_or_else(|| "model/".to_string()))
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

/// A bundle file by its hash: from the cache when it is there and intact, else downloaded and
/// cached. Also says whether the file is in the cache now (a full quota: not, and the next visit
/// downloads it again).
async fn fetch_file(base: &str, entry: &FileEntry) -> Result<(Vec<u8>, bool), String> {
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
            return Ok((bytes, true));
        }
        let _ = JsFuture::from(cache.delete_with_str(&key)).await;
    }
    let bytes = fetch(&url).await?;
    let mut cached = false;
    if let Some(cache) = &cache
        && let Ok(response) = web_sys::Response::new_with_opt_u8_array(Some(&mut bytes.clone()))
    {
        cached = JsFuture::from(cache.put_with_str(&key, &response)).await.is_ok();
    }
    Ok((bytes, cached))
}

fn get(object: &wasm_bindgen::JsValue, key: &str) -> wasm_bindgen::JsValue {
    js_sys::Reflect::get(object, &key.into()).unwrap_or(wasm_bindgen::JsValue::UNDEFINED)
}

/// Asks the browser to keep the bundle's files (a large model is worth not having evicted) and
/// returns how many more bytes it may store, where it says.
async fn storage_room() -> Option<u64> {
    let storage = get(&web_sys::window()?.navigator().into(), "storage");
    let call = |name: &str| -> Option<js_sys::Promise> {
        let f: js_sys::Function = get(&storage, name).dyn_into().ok()?;
        f.call0(&storage).ok()?.dyn_into().ok()
    };
    if let Some(persist) = call("persist") {
        let _ = JsFuture::from(persist).await;
    }
    let estimate = JsFuture::from(call("estimate")?).await.ok()?;
    let (quota, usage) = (get(&estimate, "quota").as_f64()?, get(&estimate, "usage").as_f64().unwrap_or(0.0));
    Some((quota - usage).max(0.0) as u64)
}

/// What a load tells the page besides the model.
pub struct Loaded {
    pub describer: Describer,
    /// Files the browser's storage had no room for (they download again next time).
    pub not_cached: usize,
    /// The bundle's bytes, when the browser said beforehand that it has room for fewer.
    pub short_of_room: Option<(u64, u64)>,
}

/// Loads the bundle at `base` on `device`, after checking that it can run on `target`;
/// `progress` hears after each file.
pub async fn load(base: &str, device: &Device, target: &Target, progress: impl Fn(Progress)) -> Result<Loaded, String> {
    let manifest = Manifest::parse(base, &fetch(&format!("{base}{MANIFEST}")).await?).map_err(|e| e.to_string())?;
    manifest.check_fit(target).map_err(|e| format!("{base}: {e}"))?;
    let needed = manifest.total_bytes();
    let short_of_room = storage_room().await.filter(|&room| room < needed).map(|room| (room, needed));
    let not_cached = std::cell::Cell::new(0);
    let read = async |entry: &FileEntry| {
        let (bytes, cached) = fetch_file(base, entry).await?;
        not_cached.set(not_cached.get() + usize::from(!cached));
        Ok(bytes)
    };
    let describer = load_bundle(base, manifest, device, progress, read).await?;
    Ok(Loaded { describer, not_cached: not_cached.get(), short_of_room })
}

/// Loads a bundle from files the person picked (a converted bundle's folder, or all its files).
pub async fn load_files(
    files: &web_sys::FileList,
    device: &Device,
    target: &Target,
    progress: impl Fn(Progress),
) -> Result<Describer, String> {
    let by_name: std::collections::HashMap<String, web_sys::File> =
        (0..files.length()).filter_map(|i| files.get(i)).map(|f| (f.name(), f)).collect();
    let read = async |name: &str| -> Result<Vec<u8>, String> {
        let file =
            by_name.get(name).ok_or_else(|| format!("the chosen files have no {name}: pick a whole bundle folder"))?;
        super::read_file(file).await
    };
    let base = "the chosen folder";
    let manifest = Manifest::parse(base, &read(MANIFEST).await?).map_err(|e| e.to_string())?;
    manifest.check_fit(target).map_err(|e| format!("{base}: {e}"))?;
    load_bundle(base, manifest, device, progress, async |entry: &FileEntry| read(&entry.file).await).await
}

/// What every source shares: the tokenizer, then each shard verified and moved to the device
/// before the next is read, so that the page holds about one shard at a time.
async fn load_bundle(
    base: &str,
    manifest: Manifest,
    device: &Device,
    progress: impl Fn(Progress),
    read: impl AsyncFn(&FileEntry) -> Result<Vec<u8>, String>,
) -> Result<Describer, String> {
    let total = manifest.total_bytes();
    let tokenizer = read(&manifest.t5_tokenizer).await?;
    let mut done = tokenizer.len() as u64;
    let mut loader = Loader::new(base, manifest, device).map_err(|e| e.to_string())?;
    for i in 0..loader.manifest.shards.len() {
        let entry = loader.manifest.shards[i].clone();
        let bytes = read(&entry).await?;
        done += bytes.len() as u64;
        loader.add_shard(i, bytes).map_err(|e| e.to_string())?;
        progress(Progress { done, total, file: entry.file });
    }
    Describer::from_loader(loader, &tokenizer).map_err(|e| e.to_string())
}
