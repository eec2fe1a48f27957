//! What the page keeps of a session so that it can start again where it was: after a lost GPU
//! (`www/gpu-watch.js` reloads the page), the model, the photo, the boxes and the options come
//! back. The photo's bytes go to Cache Storage, the rest to sessionStorage (both for this tab).

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// The page's state worth restoring.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    pub model_url: String,
    pub photo_name: String,
    /// The regions' boxes, in their order.
    #[serde(default)]
    pub regions: Vec<[f64; 4]>,
    #[serde(default)]
    pub classes: String,
    pub beams: usize,
    pub threshold: String,
    pub controls: String,
}

const STATE: &str = "dynrefer-state";
/// Set by `gpu-watch.js` before it reloads the page.
const RESTORE: &str = "dynrefer-restore";
/// Counted by `gpu-watch.js`.
const LOSSES: &str = "dynrefer-gpu-losses";
const PHOTO_CACHE: &str = "dynrefer-session";
const PHOTO_KEY: &str = "/__dynrefer-session/photo";

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

/// The saved state, when the page was reloaded to recover (given once).
pub fn take_restore() -> Option<Saved> {
    let s = storage()?;
    s.get_item(RESTORE).ok()??;
    let _ = s.remove_item(RESTORE);
    serde_json::from_str(&s.get_item(STATE).ok()??).ok()
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
    let caches = web_sys::window()?.caches().ok()?;
    JsFuture::from(caches.open(PHOTO_CACHE)).await.ok().map(|c| c.unchecked_into())
}

pub async fn save_photo(mut bytes: Vec<u8>) {
    if let Some(cache) = cache().await
        && let Ok(response) = web_sys::Response::new_with_opt_u8_array(Some(&mut bytes))
    {
        let _ = JsFuture::from(cache.put_with_str(PHOTO_KEY, &response)).await;
    }
}

pub async fn saved_photo() -> Option<Vec<u8>> {
    let hit = JsFuture::from(cache().await?.match_with_str(PHOTO_KEY)).await.ok()?;
    let response: web_sys::Response = hit.dyn_into().ok()?;
    let buffer = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
    Some(js_sys::Uint8Array::new(&buffer).to_vec())
}
