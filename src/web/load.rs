//! Fetching a model bundle into the page: the manifest, the tokenizer, then the shards, a few
//! downloading while the one before them is verified and moved to the device. Shards and the
//! tokenizer are kept in the browser's Cache Storage under their SHA-256, so a reload fetches
//! only the manifest; a cached file that fails its hash check is dropped and fetched again.
//! Downloads are streamed (progress counts bytes), tried again after transient failures, reported
//! when they stall, and aborted when a newer load replaces theirs.

use std::cell::Cell;
use std::rc::Rc;

use burn::tensor::Device;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::browser::{now_ms, read_file, sleep};
use super::hooks::hooks;
use crate::bundle::load::ByteSource;
use crate::bundle::{FileEntry, MANIFEST, MAX_MANIFEST_BYTES, Manifest, Progress, Target, Verified};
use crate::describe::{Describer, OpenError};

/// The bundle's folder URL: `?model=URL` or the built-in model next to the page.
pub fn bundle_url() -> String {
    folder_url(&hooks().model.unwrap_or_else(|| "model/".to_string()))
}

/// A folder URL ends with a slash (a trailing `manifest.json` is taken off).
pub fn folder_url(url: &str) -> String {
    let url = url.trim().trim_end_matches(MANIFEST);
    if url.ends_with('/') { url.to_string() } else { format!("{url}/") }
}

/// How long a failed download waits before each new try: a server error (5xx, 408, 429) or a
/// dropped or cut connection is tried again three times; a 404 or a refusal is not.
const RETRY_DELAYS_MS: [u32; 3] = [500, 1000, 2000];

/// A load that a newer one replaces: the page cancels it, and its downloads are aborted.
#[derive(Clone, Default)]
pub struct Cancel(Rc<Cell<bool>>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.set(true);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.get()
    }
}

/// What a load tells the page while it runs.
pub enum Loading {
    /// Bytes verified or received so far, of all the bundle's files.
    Progress(Progress),
    /// A file has received nothing for a while; the download goes on waiting.
    Stalled { file: String, seconds: f64 },
}

/// Why a download ended without its file.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("the download failed (network error or blocked by CORS)")]
    Network,
    #[error("not found (404)")]
    NotFound,
    #[error("HTTP {0}")]
    Http(u16),
    #[error("{} than the {limit} bytes expected: refused", .length.map_or("more".into(), |l| format!("{l} bytes, more")))]
    TooLarge { length: Option<u64>, limit: u64 },
    #[error("the connection dropped after {0} bytes")]
    Dropped(usize),
    #[error("the download was cut off at {got} of {length} bytes")]
    CutOff { got: usize, length: u64 },
    #[error("cancelled")]
    Cancelled,
    #[error("this page has no {0}")]
    NoBrowser(&'static str),
}

impl Failure {
    /// Worth another try: a dropped or cut connection, a server error.
    fn is_transient(&self) -> bool {
        match self {
            Failure::Network | Failure::Dropped(_) | Failure::CutOff { .. } => true,
            Failure::Http(status) => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }
}

/// Why a load (or a photo's download) gave up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{url}: {why}{}", if why.is_transient() { format!(" (tried {tries} times)") } else { String::new() })]
    Download { url: String, why: Failure, tries: u32 },
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A newer load replaced this one.
    #[error("cancelled")]
    Cancelled,
}

/// Downloads `url`, tried again on transient failures; `received` hears the bytes of the try in
/// progress, `stalled` how long it has received nothing.
async fn download(
    url: &str,
    max_bytes: u64,
    cancel: &Cancel,
    received: &dyn Fn(u64),
    stalled: &dyn Fn(f64),
) -> Result<Vec<u8>, LoadError> {
    let mut retries = RETRY_DELAYS_MS.iter();
    let mut tries = 1;
    loop {
        match download_once(url, max_bytes, cancel, received, stalled).await {
            Ok(bytes) => return Ok(bytes),
            Err(why) => match retries.next() {
                Some(&ms) if why.is_transient() && !cancel.is_cancelled() => sleep(ms).await,
                _ => return Err(LoadError::Download { url: url.to_string(), why, tries }),
            },
        }
        tries += 1;
    }
}

/// One try: streams the body, so that progress counts bytes and a stall or a cancel is noticed
/// while the server sends nothing.
async fn download_once(
    url: &str,
    max_bytes: u64,
    cancel: &Cancel,
    received: &dyn Fn(u64),
    stalled: &dyn Fn(f64),
) -> Result<Vec<u8>, Failure> {
    let window = web_sys::window().ok_or(Failure::NoBrowser("window"))?;
    let abort = web_sys::AbortController::new().map_err(|_| Failure::NoBrowser("AbortController"))?;
    let init = web_sys::RequestInit::new();
    init.set_signal(Some(&abort.signal()));
    let response = JsFuture::from(window.fetch_with_str_and_init(url, &init)).await.map_err(|_| Failure::Network)?;
    let response: web_sys::Response = response.unchecked_into();
    let status = response.status();
    if !response.ok() {
        return Err(if status == 404 { Failure::NotFound } else { Failure::Http(status) });
    }
    let length = body_length(&response);
    if let Some(length) = length.filter(|&l| l > max_bytes) {
        abort.abort();
        return Err(Failure::TooLarge { length: Some(length), limit: max_bytes });
    }
    let Some(body) = response.body() else { return Ok(Vec::new()) };
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::with_capacity(length.unwrap_or(0).min(max_bytes) as usize);
    let (stall_ms, mut last) = (hooks().stall_ms, now_ms());
    let mut read = JsFuture::from(reader.read());
    loop {
        let tick = Box::pin(sleep(500));
        let chunk = match futures::future::select(read, tick).await {
            futures::future::Either::Left((chunk, _)) => chunk,
            futures::future::Either::Right((_, pending)) => {
                if cancel.is_cancelled() {
                    abort.abort();
                    return Err(Failure::Cancelled);
                }
                let quiet = now_ms() - last;
                if quiet >= stall_ms {
                    stalled(quiet / 1e3);
                }
                read = pending;
                continue;
            }
        };
        let cut = || Failure::Dropped(bytes.len());
        let chunk = chunk.map_err(|_| cut())?;
        if js_sys::Reflect::get(&chunk, &"done".into()).ok().and_then(|d| d.as_bool()) == Some(true) {
            break;
        }
        let value: js_sys::Uint8Array =
            js_sys::Reflect::get(&chunk, &"value".into()).map_err(|_| cut())?.unchecked_into();
        let start = bytes.len();
        if (start + value.length() as usize) as u64 > max_bytes {
            abort.abort();
            return Err(Failure::TooLarge { length: None, limit: max_bytes });
        }
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
        received(bytes.len() as u64);
        last = now_ms();
        read = JsFuture::from(reader.read());
    }
    match length {
        Some(length) if length != bytes.len() as u64 => Err(Failure::CutOff { got: bytes.len(), length }),
        _ => Ok(bytes),
    }
}

/// The length of the body the page will read, where `Content-Length` tells it: only for a
/// same-origin response that is not compressed. A host that compresses a file (`Content-Encoding:
/// gzip`, as many do for JSON) sends the compressed length while the browser hands the page the
/// decoded bytes; and a cross-origin response hides its `Content-Encoding` unless the host exposes
/// it, so there the length cannot be trusted either. A body cut short of its `Content-Length` is
/// still caught: the browser fails the read, and a bundle file must match its manifest's size and
/// SHA-256.
fn body_length(response: &web_sys::Response) -> Option<u64> {
    let same_origin = js_sys::Reflect::get(response, &"type".into()).ok().and_then(|t| t.as_string());
    let headers = response.headers();
    let encoding = headers.get("content-encoding").ok().flatten().unwrap_or_default();
    let plain = encoding.trim().is_empty() || encoding.trim().eq_ignore_ascii_case("identity");
    if same_origin.as_deref() != Some("basic") || !plain {
        return None;
    }
    headers.get("content-length").ok().flatten().and_then(|l| l.parse::<u64>().ok())
}

/// The largest photo file the page downloads (its pixels are bounded again when it is decoded).
const MAX_PHOTO_BYTES: u64 = 256 << 20;

/// A photo by URL: no progress, no cancel.
pub async fn fetch(url: &str) -> Result<Vec<u8>, LoadError> {
    download(url, MAX_PHOTO_BYTES, &Cancel::default(), &|_| {}, &|_| {}).await
}

const CACHE: &str = "dynrefer-models";

async fn cache() -> Option<web_sys::Cache> {
    let caches = super::browser::caches()?;
    JsFuture::from(caches.open(CACHE)).await.ok().map(|c| c.unchecked_into())
}

thread_local! {
    /// Bytes this page has put in Cache Storage, for the `?cache-quota=BYTES` test hook.
    static CACHED_BYTES: Cell<u64> = const { Cell::new(0) };
}

/// Whether the `?cache-quota=BYTES` test hook says the storage is full for `bytes` more: it
/// stands for a browser's quota that runs out halfway through a bundle.
fn over_test_quota(bytes: u64) -> bool {
    hooks().cache_quota.is_some_and(|quota| CACHED_BYTES.with(Cell::get) + bytes > quota)
}

/// A bundle file by its hash: from the cache when it is there and intact, else downloaded,
/// verified and cached. Nothing unverified enters the cache, so a cut or tampered download never
/// outlives its load. Also says whether the file is in the cache now (a full quota: not, and the
/// next visit downloads it again).
async fn fetch_file(
    base: &str,
    entry: &FileEntry,
    cancel: &Cancel,
    received: &dyn Fn(u64),
    stalled: &dyn Fn(f64),
) -> Result<(Verified, bool), LoadError> {
    let url = format!("{base}{}", entry.file);
    let key = format!("{url}?sha256={}", entry.sha256);
    let cache = cache().await;
    if let Some(cache) = &cache
        && let Ok(hit) = JsFuture::from(cache.match_with_str(&key)).await
        && let Ok(response) = hit.dyn_into::<web_sys::Response>()
        && let Ok(buffer) = response.array_buffer()
        && let Ok(buffer) = JsFuture::from(buffer).await
    {
        if let Ok(verified) = Manifest::verify(base, entry, js_sys::Uint8Array::new(&buffer).to_vec()) {
            return Ok((verified, true));
        }
        let _ = JsFuture::from(cache.delete_with_str(&key)).await;
    }
    let bytes = download(&url, entry.bytes, cancel, received, stalled).await?;
    let verified = Manifest::verify(base, entry, bytes).map_err(OpenError::from)?;
    let length = verified.bytes().len() as u64;
    let mut cached = false;
    if let Some(cache) = &cache
        && !over_test_quota(length)
        && let Ok(response) = web_sys::Response::new_with_opt_u8_array(Some(&mut verified.bytes().to_vec()))
    {
        cached = JsFuture::from(cache.put_with_str(&key, &response)).await.is_ok();
        if cached {
            CACHED_BYTES.with(|c| c.set(c.get() + length));
        }
    }
    Ok((verified, cached))
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

impl Loaded {
    /// What the page adds to "model ready" about the browser's storage.
    pub fn storage_note(&self) -> String {
        match self.short_of_room {
            Some((room, needed)) => format!(
                "; the browser's storage has room for {:.1} of the model's {:.1} GB, so files will download again \
                 next visit",
                room as f64 / 1e9,
                needed as f64 / 1e9
            ),
            None if self.not_cached > 0 => format!(
                "; the browser's storage is full, so {} file(s) will download again next visit",
                self.not_cached
            ),
            None => String::new(),
        }
    }
}

/// A bundle folder at a URL: its files from Cache Storage when they are there, else downloaded.
struct UrlSource<'a, W: Fn(Loading)> {
    base: &'a str,
    cancel: &'a Cancel,
    watch: &'a W,
    /// Files the browser's storage had no room for.
    not_cached: Cell<usize>,
    /// The room the browser said it has, and the bundle's bytes, when that is fewer.
    short_of_room: Cell<Option<(u64, u64)>>,
}

impl<W: Fn(Loading)> ByteSource for UrlSource<'_, W> {
    fn name(&self) -> &str {
        self.base
    }

    async fn manifest(&self) -> Result<Vec<u8>, OpenError> {
        let stalled = |seconds| (self.watch)(Loading::Stalled { file: MANIFEST.into(), seconds });
        let url = format!("{}{MANIFEST}", self.base);
        let bytes = download(&url, MAX_MANIFEST_BYTES, self.cancel, &|_| {}, &stalled).await;
        bytes.map_err(|e| OpenError::Source(e.to_string()))
    }

    /// The browser may say beforehand that it cannot keep the whole model.
    async fn prepare(&self, manifest: &Manifest) {
        let needed = manifest.total_bytes();
        self.short_of_room.set(storage_room().await.filter(|&room| room < needed).map(|room| (room, needed)));
    }

    async fn file(&self, entry: &FileEntry, received: &dyn Fn(u64)) -> Result<Verified, OpenError> {
        let stalled = |seconds| (self.watch)(Loading::Stalled { file: entry.file.clone(), seconds });
        let (bytes, cached) =
            fetch_file(self.base, entry, self.cancel, received, &stalled).await.map_err(|e| match e {
                LoadError::Open(e) => e,
                e => OpenError::Source(e.to_string()),
            })?;
        self.not_cached.set(self.not_cached.get() + usize::from(!cached));
        Ok(bytes)
    }
}

/// Loads the bundle at `base` on `device`, after checking that it can run on `target`;
/// `watch` hears progress within each file and stalls; `cancel` gives the load up.
pub async fn load(
    base: &str,
    device: &Device,
    target: &Target,
    cancel: &Cancel,
    watch: impl Fn(Loading),
) -> Result<Loaded, LoadError> {
    let source = UrlSource { base, cancel, watch: &watch, not_cached: Cell::new(0), short_of_room: Cell::new(None) };
    let describer = Describer::load(&source, device, Some(target), |p| watch(Loading::Progress(p))).await?;
    if cancel.is_cancelled() {
        return Err(LoadError::Cancelled);
    }
    Ok(Loaded { describer, not_cached: source.not_cached.get(), short_of_room: source.short_of_room.get() })
}

/// The files a person picked: a converted bundle's folder, or all its files.
struct PickedFiles(std::collections::HashMap<String, web_sys::File>);

impl PickedFiles {
    async fn read(&self, name: &str) -> Result<Vec<u8>, OpenError> {
        let file = self
            .0
            .get(name)
            .ok_or_else(|| OpenError::Source(format!("the chosen files have no {name}: pick a whole bundle folder")))?;
        read_file(file).await.map_err(OpenError::Source)
    }
}

impl ByteSource for PickedFiles {
    fn name(&self) -> &str {
        "the chosen folder"
    }

    async fn manifest(&self) -> Result<Vec<u8>, OpenError> {
        self.read(MANIFEST).await
    }

    async fn file(&self, entry: &FileEntry, _: &dyn Fn(u64)) -> Result<Verified, OpenError> {
        Ok(Manifest::verify(self.name(), entry, self.read(&entry.file).await?)?)
    }
}

/// Loads a bundle from files the person picked.
pub async fn load_files(
    files: &web_sys::FileList,
    device: &Device,
    target: &Target,
    progress: impl Fn(Progress),
) -> Result<Describer, LoadError> {
    let source = PickedFiles((0..files.length()).filter_map(|i| files.get(i)).map(|f| (f.name(), f)).collect());
    Ok(Describer::load(&source, device, Some(target), progress).await?)
}
