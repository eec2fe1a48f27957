//! Loading a bundle from wherever its files are: a folder on disk, a URL, the files a person
//! picked in a browser. A [`ByteSource`] hands over bytes, each file verified against the
//! manifest; [`load`] does the rest the same way for all of them: parse and check the manifest,
//! refuse a model that cannot run on its target, then the tokenizer and the shards, a few on their
//! way while the one before them is moved to the device.

use std::cell::{Cell, RefCell};

use burn::tensor::Device;
use futures::StreamExt;

use super::{BundleError, FileEntry, FitError, Loader, Manifest, Progress, Target, Verified};
use crate::model::dynrefer::DynRefer;
use crate::text::caption::TokenizerError;
use crate::text::clip_bpe::BpeError;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("{0}: cannot read: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: {1}")]
    Tokenizer(String, TokenizerError),
    #[error("{0}: {1}")]
    Bpe(String, BpeError),
    /// The model cannot run where it is to run (checked before any weight is read).
    #[error("{bundle}: {error}")]
    Fit { bundle: String, error: FitError },
    /// A byte source's own failure (a download that failed, a file the person did not pick), in
    /// the source's words.
    #[error("{0}")]
    Source(String),
}

/// Where a bundle's files come from: a folder, a URL, files a person picked.
#[allow(async_fn_in_trait)]
pub trait ByteSource {
    /// Names the bundle in errors (a path, a URL, "the chosen folder").
    fn name(&self) -> &str;

    /// The manifest's bytes (a source refuses more than [`super::MAX_MANIFEST_BYTES`]).
    async fn manifest(&self) -> Result<Vec<u8>, OpenError>;

    /// Called once the manifest is parsed and its model fits, before any file is asked for (the
    /// page asks the browser for room to keep the files here).
    async fn prepare(&self, _manifest: &Manifest) {}

    /// One file of the manifest, checked against its entry ([`Manifest::verify`]); `received`
    /// hears how many bytes have arrived so far.
    async fn file(&self, entry: &FileEntry, received: &dyn Fn(u64)) -> Result<Verified, OpenError>;

    /// How many shards may be on their way at once. A download gains from having the next ones
    /// arrive while one is applied; a source that reads at once gains nothing, and each shard
    /// read ahead is held in memory.
    fn shards_at_once(&self) -> usize {
        SHARDS_AT_ONCE
    }
}

/// How many shards a download has on its way at once: while one is moved to the device, the
/// next ones arrive, and at most this many are held besides the one being applied.
pub const SHARDS_AT_ONCE: usize = 3;

/// A bundle with every file verified and its weights on the device.
pub struct LoadedBundle {
    /// The source's name for it, for errors.
    pub name: String,
    pub device: Device,
    pub manifest: Manifest,
    pub model: DynRefer,
    pub tokenizer_json: Verified,
    pub clip_bpe: Verified,
}

/// Parses and checks the manifest (and that its model fits `target`, when given), then loads the
/// tokenizer and the shards. `progress` hears the bytes verified or arriving, of all the files.
/// A file that fails stops the load: the shards already on their way are dropped, none after
/// them is asked for.
pub async fn load(
    source: &impl ByteSource,
    device: &Device,
    target: Option<&Target>,
    progress: impl Fn(Progress),
) -> Result<LoadedBundle, OpenError> {
    let manifest = Manifest::parse(source.name(), &source.manifest().await?)?;
    if let Some(target) = target {
        manifest.check_fit(target).map_err(|error| OpenError::Fit { bundle: source.name().to_string(), error })?;
    }
    source.prepare(&manifest).await;
    let total = manifest.total_bytes();
    let tokenizer_json = source.file(&manifest.t5_tokenizer, &|_| {}).await?;
    let clip_bpe = source.file(&manifest.clip_bpe, &|_| {}).await?;
    let shards = manifest.shards.clone();
    let mut loader = Loader::new(source.name(), manifest, device)?;
    // bytes of the files done, and of each shard on its way
    let done = Cell::new((tokenizer_json.bytes().len() + clip_bpe.bytes().len()) as u64);
    let arriving = RefCell::new(vec![0u64; shards.len()]);
    let report = |file: &str| {
        let done = done.get() + arriving.borrow().iter().sum::<u64>();
        progress(Progress { done, total, file: file.to_string() });
    };
    let (report, arriving) = (&report, &arriving);
    let mut fetches = futures::stream::iter(shards.iter().enumerate())
        .map(|(i, entry)| async move {
            let received = |bytes: u64| {
                arriving.borrow_mut()[i] = bytes;
                report(&entry.file);
            };
            (i, source.file(entry, &received).await)
        })
        .buffered(source.shards_at_once().max(1));
    while let Some((i, bytes)) = fetches.next().await {
        let bytes = bytes?;
        arriving.borrow_mut()[i] = 0;
        done.set(done.get() + bytes.bytes().len() as u64);
        loader.add_shard(i, bytes)?;
        report(&shards[i].file);
    }
    let (model, manifest) = loader.finish()?;
    let (name, device) = (source.name().to_string(), device.clone());
    Ok(LoadedBundle { name, device, manifest, model, tokenizer_json, clip_bpe })
}

/// A bundle folder on disk.
#[cfg(not(target_arch = "wasm32"))]
pub struct DirSource {
    dir: std::path::PathBuf,
    name: String,
}

#[cfg(not(target_arch = "wasm32"))]
impl DirSource {
    pub fn new(dir: impl Into<std::path::PathBuf>) -> DirSource {
        let dir = dir.into();
        let name = dir.display().to_string();
        DirSource { dir, name }
    }

    fn read(&self, file: &str) -> Result<Vec<u8>, OpenError> {
        std::fs::read(self.dir.join(file)).map_err(|e| OpenError::Io(format!("{}: {file}", self.name), e))
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for DirSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// The manifest's size is checked before it is read: a huge file is not a bundle's manifest.
    async fn manifest(&self) -> Result<Vec<u8>, OpenError> {
        use super::{MANIFEST, MAX_MANIFEST_BYTES};
        let path = self.dir.join(MANIFEST);
        let size = std::fs::metadata(path).map_err(|e| OpenError::Io(format!("{}: {MANIFEST}", self.name), e))?.len();
        if size > MAX_MANIFEST_BYTES {
            return Err(BundleError::ManifestSize { bundle: self.name.clone(), size }.into());
        }
        self.read(MANIFEST)
    }

    async fn file(&self, entry: &FileEntry, _received: &dyn Fn(u64)) -> Result<Verified, OpenError> {
        Ok(Manifest::verify(&self.name, entry, self.read(&entry.file)?)?)
    }

    /// A file is read whole at once: reading the next shards ahead would only hold them in memory.
    fn shards_at_once(&self) -> usize {
        1
    }
}
