//! Small browser chores the page and the widget share: the clock, timers, object URLs, reading a
//! picked file, saving a file, the clipboard.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Milliseconds since the page opened.
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

pub async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// The bytes of this wasm instance's memory (it grows, and never shrinks).
pub fn wasm_memory_bytes() -> u64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    js_sys::ArrayBuffer::from(memory.buffer()).byte_length() as u64
}

pub fn revoke(url: &str) {
    let _ = web_sys::Url::revoke_object_url(url);
}

pub async fn read_file(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let blob = gloo_file::Blob::from(file.clone());
    gloo_file::futures::read_as_bytes(&blob).await.map_err(|_| "the browser could not read the file".to_string())
}

/// An object URL for `bytes` of type `mime`.
pub fn blob_url(bytes: &[u8], mime: &str) -> Result<String, String> {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &opts).map_err(|e| format!("{e:?}"))?;
    web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))
}

/// A square RGB image as a PNG object URL.
pub fn png_url(rgb: &[u8], size: u32) -> Result<String, String> {
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        rgb,
        size,
        size,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| e.to_string())?;
    blob_url(&png, "image/png")
}

/// How long a saved file's object URL lives: the browser reads it when the download starts.
const SAVE_URL_MS: u32 = 60_000;

/// Offers the object URL `url` to the person as a file named `name`.
pub fn save_url(url: String, name: &str) -> Result<(), String> {
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let link: web_sys::HtmlAnchorElement =
        document.create_element("a").map_err(|e| format!("{e:?}"))?.unchecked_into();
    link.set_href(&url);
    link.set_download(name);
    link.click();
    wasm_bindgen_futures::spawn_local(async move {
        sleep(SAVE_URL_MS).await;
        revoke(&url);
    });
    Ok(())
}

/// `object.name` where it is an object. Browsers leave out what needs a secure context (service
/// workers, Cache Storage, the clipboard) on a page served over plain http from another machine;
/// web-sys's getters would hand back `undefined` typed as the object, whose first method call throws.
fn secure_only(object: &wasm_bindgen::JsValue, name: &str) -> Option<wasm_bindgen::JsValue> {
    js_sys::Reflect::get(object, &name.into()).ok().filter(wasm_bindgen::JsValue::is_object)
}

/// The browser's Cache Storage, where the page may use it.
pub fn caches() -> Option<web_sys::CacheStorage> {
    secure_only(&web_sys::window()?.into(), "caches").map(JsCast::unchecked_into)
}

/// The service worker container, where the page may register one.
pub fn service_worker() -> Option<web_sys::ServiceWorkerContainer> {
    secure_only(&web_sys::window()?.navigator().into(), "serviceWorker").map(JsCast::unchecked_into)
}

fn clipboard() -> Option<web_sys::Clipboard> {
    secure_only(&web_sys::window()?.navigator().into(), "clipboard").map(JsCast::unchecked_into)
}

pub fn has_clipboard() -> bool {
    clipboard().is_some()
}

/// Puts `text` on the clipboard.
pub async fn copy_text(text: &str) -> Result<(), String> {
    let clipboard = clipboard().ok_or("this browser gives no clipboard to this page")?;
    JsFuture::from(clipboard.write_text(text)).await.map(drop).map_err(|_| "the browser refused the clipboard".into())
}
