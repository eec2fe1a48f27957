//! Checkpoints that a crash cannot leave half written.
//!
//! A checkpoints folder holds complete checkpoints in folders of their own and a pointer to the
//! current one:
//!
//! ```text
//! DIR/LATEST          "checkpoint-7": the current checkpoint's folder
//! DIR/checkpoint-7/   state.json, model.bpk, optimizer.bpk, tokenizer.json, clip_bpe.txt.gz
//! ```
//!
//! A save writes generation `g + 1` into a new folder (removing what an earlier crashed save may
//! have left under that name), flushes each file and the folder to disk, then writes the pointer
//! to `LATEST.tmp`, flushes it and renames it onto `LATEST`. That rename is the only step that
//! changes which checkpoint is current, and a rename replaces a file atomically: a crash before it
//! leaves `LATEST` naming the previous folder, which the save never touches; a crash after it
//! leaves `LATEST` naming the new folder, already whole on disk. Only then are the older folders
//! removed; a crash during that leaves folders the next save removes. Readers only ever open the
//! folder `LATEST` names.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::store::{BurnpackStore, ModuleSnapshot};

use super::{State, TrainError, file_err};
use crate::model::dynrefer::DynRefer;

pub(super) const STATE: &str = "state.json";
pub(super) const MODEL: &str = "model.bpk";
pub(super) const OPTIMIZER: &str = "optimizer.bpk";
pub(super) const TOKENIZER: &str = "tokenizer.json";
pub(super) const BPE: &str = "clip_bpe.txt.gz";

const LATEST: &str = "LATEST";
const LATEST_TMP: &str = "LATEST.tmp";
const PREFIX: &str = "checkpoint-";

/// For the tests: `DYNREFER_CHECKPOINT_CRASH=POINT@STEP` aborts the process at `POINT` (`files`,
/// `pointer` or `cleanup`) of the save at step `STEP`, leaving the files as a crash there would.
const CRASH_ENV: &str = "DYNREFER_CHECKPOINT_CRASH";

fn crash_point(point: &str, step: usize) {
    if std::env::var(CRASH_ENV).is_ok_and(|v| v == format!("{point}@{step}")) {
        std::process::abort();
    }
}

/// The generation of a checkpoint folder's name (`checkpoint-7` → 7).
fn generation(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.parse().ok()
}

/// The current checkpoint's folder in `dir`, if it has one.
pub(super) fn current(dir: &Path) -> Result<Option<PathBuf>, TrainError> {
    let latest = dir.join(LATEST);
    let name = match std::fs::read_to_string(&latest) {
        Ok(name) => name.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // the layout before this one kept the files in `dir` itself, without a pointer
            if dir.join(STATE).exists() {
                return Err(file_err(
                    dir,
                    "holds a checkpoint of an older dynrefer (files without a LATEST pointer): \
                     resume it with that version, or pick another --checkpoints folder",
                ));
            }
            return Ok(None);
        }
        Err(e) => return Err(file_err(&latest, e)),
    };
    if generation(&name).is_none() {
        return Err(file_err(&latest, format!("names {name:?}, not a checkpoint folder ({PREFIX}N)")));
    }
    Ok(Some(dir.join(name)))
}

/// Writes `bytes` to `path` and flushes them to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut file = File::create(path).map_err(|e| file_err(path, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| file_err(path, e))
}

/// Flushes a file or folder written by someone else to disk.
fn sync(path: &Path) -> Result<(), TrainError> {
    // a folder's entries are flushed through the folder; Windows cannot open one as a file
    if cfg!(not(unix)) && path.is_dir() {
        return Ok(());
    }
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| file_err(path, e))
}

/// Saves a checkpoint into `dir` and makes it the current one (see the module's documentation).
pub(super) fn save(
    dir: &Path,
    state: &State,
    model: &DynRefer,
    optimizer: &ModuleOptimizer,
    (tokenizer_json, bpe): (&[u8], &[u8]),
) -> Result<(), TrainError> {
    let previous = current(dir)?;
    let next = previous.as_deref().and_then(|p| generation(&p.file_name()?.to_string_lossy())).map_or(0, |g| g + 1);
    let name = format!("{PREFIX}{next}");
    let folder = dir.join(&name);
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(|e| file_err(&folder, e))?;
    }
    std::fs::create_dir_all(&folder).map_err(|e| file_err(&folder, e))?;

    let path = folder.join(MODEL);
    let mut store = BurnpackStore::from_file(&path).overwrite(true).auto_extension(false);
    model.save_into(&mut store).map_err(|e| file_err(&path, e))?;
    sync(&path)?;
    let path = folder.join(OPTIMIZER);
    optimizer.save(&path).map_err(|e| file_err(&path, e))?;
    sync(&path)?;
    write_synced(&folder.join(TOKENIZER), tokenizer_json)?;
    write_synced(&folder.join(BPE), bpe)?;
    write_synced(&folder.join(STATE), &serde_json::to_vec_pretty(state).expect("JSON"))?;
    sync(&folder)?;
    // the new folder's own entry in `dir` is on disk before anything points at it
    sync(dir)?;
    crash_point("files", state.step);

    let tmp = dir.join(LATEST_TMP);
    write_synced(&tmp, format!("{name}\n").as_bytes())?;
    crash_point("pointer", state.step);
    std::fs::rename(&tmp, dir.join(LATEST)).map_err(|e| file_err(&dir.join(LATEST), e))?;
    sync(dir)?;
    crash_point("cleanup", state.step);

    for entry in std::fs::read_dir(dir).map_err(|e| file_err(dir, e))? {
        let entry = entry.map_err(|e| file_err(dir, e))?;
        let old = entry.file_name().to_string_lossy().into_owned();
        if old != name && generation(&old).is_some() {
            std::fs::remove_dir_all(entry.path()).map_err(|e| file_err(&entry.path(), e))?;
        }
    }
    Ok(())
}
