//! What the page keeps of a session so that it can start again where it was: after a lost GPU
//! (`www/gpu-watch.js` reloads the page), the model, the photo, the boxes and the options come
//! back. The options and boxes are in sessionStorage (this tab's). The photo is kept only across
//! that reload: `gpu-watch.js` puts its bytes in Cache Storage under a key it names in
//! sessionStorage, and the reloaded page takes them out again; a copy that a closed tab left
//! behind is deleted by the next page that starts.

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::views::RegionBox;

/// The page's state worth restoring.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    pub model_url: String,
    pub photo_name: String,
    /// The regions' boxes, in their order.
    #[serde(default)]
    pub regions: Vec<RegionBox>,
    #[serde(default)]
    pub classes: String,
    pub beams: usize,
    pub threshold: String,
    pub controls: String,
}

const STATE: &str = "dynrefer-state";
/// Set by `gpu-watch.js` before it reloads the page: the photo's key in [`PHOTO_CACHE`].
const RESTORE: &str = "dynrefer-restore";
/// Counted by `gpu-watch.js`.
const LOSSES: &str = "dynrefer-gpu-losses";
/// `gpu-watch.js` writes the photo here, under `/__dynrefer-session/photo-<Date.now()>`.
const PHOTO_CACHE: &str = "dynrefer-session";
/// A kept photo older than this was left by a tab that closed while it reloaded.
const STALE_PHOTO_MS: f64 = 10.0 * 60_000.0;

/// After this many lost GPUs in a tab the page computes on the CPU.
pub const MAX_GPU_LOSSES: u32 = 3;

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

pub fn save(state: &Saved) {
    if let (Some(s), Ok(json)) = (storage(), serde_json::to_string(state)) {
        let _ = s.set_item(STATE, &json);
    }
}

/// What a reload to recover brings back.
pub struct Restore {
    pub saved: Saved,
    /// Where `gpu-watch.js` kept the photo ("" when it could not).
    pub photo_key: String,
}

/// The saved state, when the page was reloaded to recover (given once).
pub fn take_restore() -> Option<Restore> {
    let s = storage()?;
    let photo_key = s.get_item(RESTORE).ok()??;
    let _ = s.remove_item(RESTORE);
    let saved = serde_json::from_str(&s.get_item(STATE).ok()??).ok()?;
    Some(Restore { saved, photo_key })
}

/// How many times a GPU was lost in this tab.
pub fn gpu_losses() -> u32 {
    storage().and_then(|s| s.get_item(LOSSES).ok().flatten()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Tells `gpu-watch.js` that this page recovers from a lost GPU by reloading itself.
pub fn arm_recovery() {
    let _ = js_sys::Reflect::set(&js_sys::global(), &"__dynreferRecover".into(), &true.into());
}

async fn cache() -> Option<web_sys::Cache> {
    let caches = super::browser::caches()?;
    JsFuture::from(caches.open(PHOTO_CACHE)).await.ok().map(|c| c.unchecked_into())
}

/// The photo kept across the reload, which leaves the cache with it.
pub async fn take_photo(key: &str) -> Option<Vec<u8>> {
    let cache = cache().await?;
    let hit = JsFuture::from(cache.match_with_str(key)).await.ok()?;
    let _ = JsFuture::from(cache.delete_with_str(key)).await;
    let response: web_sys::Response = hit.dyn_into().ok()?;
    let buffer = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
    Some(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Deletes kept photos that no reload took (their tab closed first).
pub async fn forget_stale_photos() {
    let Some(cache) = cache().await else { return };
    let Ok(requests) = JsFuture::from(cache.keys()).await else { return };
    let now = js_sys::Date::now();
    for request in js_sys::Array::from(&requests).iter() {
        let url = js_sys::Reflect::get(&request, &"url".into()).ok().and_then(|u| u.as_string()).unwrap_or_default();
        let kept_at = url.rsplit_once("photo-").and_then(|(_, ms)| ms.parse::<f64>().ok());
        if kept_at.is_none_or(|t| now - t > STALE_PHOTO_MS) {
            let _ = JsFuture::from(cache.delete_with_str(&url)).await;
        }
    }
}
