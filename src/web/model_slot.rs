//! The model a page or a widget describes with. The page holds one [`ModelSlot`]: the compute
//! device, the model in use and the classes it embedded, the load in progress (a newer one
//! cancels it) and its progress. Widgets share one device and one load per model URL
//! ([`shared_model`]), since a page may hold many of them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures::FutureExt;
use futures::future::{LocalBoxFuture, Shared};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::backend::{self, Compute};
use super::browser::now_ms;
use super::load::{self, Cancel, LoadError, Loading};
use super::session;
use crate::bundle::Progress;
use crate::describe::{ClassSet, Describer};

/// Which model is in use, as `data-role="model"` names it.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelName {
    Loading,
    Named(String),
    None,
}

impl std::fmt::Display for ModelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelName::Loading => f.write_str("loading…"),
            ModelName::Named(name) => f.write_str(name),
            ModelName::None => f.write_str("none"),
        }
    }
}

/// What the page says of its model's load, beside the model's name.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadNote {
    None,
    /// The device is not known yet; the load starts once it is.
    WaitingForDevice,
    /// Megabytes received (or verified from the cache) so far, in which file, how fast, and a
    /// warning for a large model on a software GPU.
    Progress {
        done_mb: f64,
        total_mb: f64,
        file: String,
        speed: Option<f64>,
        slow_gpu: Option<String>,
    },
    Stalled {
        file: String,
        seconds: f64,
    },
    WarmingUp,
    /// How long the load took, with what the browser's storage kept and, for the first model,
    /// when the page became interactive.
    Ready {
        ms: f64,
        storage: String,
        interactive_s: Option<f64>,
    },
}

impl std::fmt::Display for LoadNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadNote::None => Ok(()),
            LoadNote::WaitingForDevice => {
                f.write_str("the compute device is still being detected; the model loads once it is known")
            }
            LoadNote::Progress { done_mb, total_mb, file, speed, slow_gpu } => {
                write!(f, "model {done_mb:.1} / {total_mb:.1} MB ({file}")?;
                if let Some(speed) = speed {
                    write!(f, ", {speed:.1} MB/s")?;
                }
                f.write_str(")")?;
                match slow_gpu {
                    Some(gpu) => {
                        write!(f, " — a large model on a software GPU ({gpu}): each description will take many minutes")
                    }
                    None => Ok(()),
                }
            }
            LoadNote::Stalled { file, seconds } => write!(
                f,
                "the download of {file} has stalled: nothing received for {seconds:.0} s; still waiting (load \
                 another model to give up)"
            ),
            LoadNote::WarmingUp => f.write_str("warming up (compiling the GPU's shaders)…"),
            LoadNote::Ready { ms, storage, interactive_s } => {
                write!(f, "model ready in {ms:.0} ms{storage}")?;
                match interactive_s {
                    Some(s) => write!(f, "; the page was interactive {s:.1} s after it opened"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The page's model: the one in use stays until a newer load has put its own in place.
#[derive(Clone, Copy)]
pub struct ModelSlot {
    compute: StoredValue<Option<Rc<Compute>>, LocalStorage>,
    describer: StoredValue<Option<Rc<Describer>>, LocalStorage>,
    /// The person's classes, embedded by the model in use.
    class_set: StoredValue<Option<ClassSet>, LocalStorage>,
    pub name: RwSignal<ModelName>,
    /// The URL the model in use came from ("" when from files on this computer).
    in_use: StoredValue<String>,
    /// The load in progress, which a newer one cancels.
    current_load: StoredValue<Option<Cancel>, LocalStorage>,
    /// Progress of a load, or how long the last one took.
    pub loading: RwSignal<LoadNote>,
    /// How often the GPU was lost in this tab (past a limit the page computes on the CPU).
    pub gpu_losses: u32,
}

impl ModelSlot {
    pub fn new() -> ModelSlot {
        ModelSlot {
            compute: StoredValue::new_local(None),
            describer: StoredValue::new_local(None),
            class_set: StoredValue::new_local(None),
            name: RwSignal::new(ModelName::Loading),
            in_use: StoredValue::new(String::new()),
            current_load: StoredValue::new_local(None),
            loading: RwSignal::new(LoadNote::None),
            gpu_losses: session::gpu_losses(),
        }
    }

    pub fn describer(&self) -> Option<Rc<Describer>> {
        self.describer.get_value()
    }

    pub fn class_set(&self) -> Option<ClassSet> {
        self.class_set.get_value()
    }

    pub fn url_in_use(&self) -> String {
        self.in_use.get_value()
    }

    pub fn set_compute(&self, compute: Rc<Compute>) {
        self.compute.set_value(Some(compute));
    }

    /// Embeds `text`'s comma-separated class names with the model in use ("" goes back to the
    /// model's own classes).
    pub fn apply_classes(&self, text: &str) -> Result<(), String> {
        let names: Vec<String> = text.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
        let set = match (names.is_empty(), self.describer()) {
            (true, _) => None,
            (false, Some(d)) => Some(d.class_set(&names).map_err(|e| format!("classes: {e}"))?),
            (false, None) => return Err("classes: no model is loaded".into()),
        };
        self.class_set.set_value(set);
        Ok(())
    }

    /// Loads the bundle folder at `url`; `done` hears the model once it is in use, or why it
    /// did not load. A newer load cancels this one, and then `done` hears nothing.
    pub fn load_url(self, url: String, done: impl FnOnce(Result<Rc<Describer>, String>) + 'static) -> bool {
        let Some(c) = self.compute.get_value() else { return false };
        let cancel = self.start_load();
        let since = StoredValue::new(None);
        spawn_local(async move {
            let t0 = now_ms();
            let watch = move |event: Loading| match event {
                Loading::Progress(p) => self.show_progress(p, since),
                Loading::Stalled { file, seconds } => self.loading.set(LoadNote::Stalled { file, seconds }),
            };
            let loaded = load::load(&url, &c.device, &c.target(), &cancel, watch).await;
            if cancel.is_cancelled() {
                return;
            }
            let note = loaded.as_ref().map_or(String::new(), load::Loaded::storage_note);
            done(self.put(loaded.map(|l| l.describer), url, t0, note).await);
        });
        true
    }

    /// Loads a bundle from the files a person picked (its folder, or all its files), as `load_url`.
    pub fn load_files(
        self,
        files: web_sys::FileList,
        done: impl FnOnce(Result<Rc<Describer>, String>) + 'static,
    ) -> bool {
        let Some(c) = self.compute.get_value() else { return false };
        let cancel = self.start_load();
        let since = StoredValue::new(None);
        spawn_local(async move {
            let t0 = now_ms();
            let loaded = load::load_files(&files, &c.device, &c.target(), move |p| self.show_progress(p, since)).await;
            if !cancel.is_cancelled() {
                done(self.put(loaded, String::new(), t0, String::new()).await);
            }
        });
        true
    }

    fn start_load(self) -> Cancel {
        if let Some(old) = self.current_load.get_value() {
            old.cancel();
        }
        let cancel = Cancel::default();
        self.current_load.set_value(Some(cancel.clone()));
        cancel
    }

    fn show_progress(self, p: Progress, since: StoredValue<Option<(f64, u64)>>) {
        let now = now_ms();
        let (t0, done0) = match since.get_value() {
            Some((t0, done0)) if p.done >= done0 => (t0, done0),
            _ => {
                since.set_value(Some((now, p.done)));
                (now, p.done)
            }
        };
        let seconds = (now - t0) / 1e3;
        let speed = (seconds >= 0.5).then(|| (p.done - done0) as f64 / 1e6 / seconds);
        let slow_gpu =
            self.compute.get_value().and_then(|c| c.adapter.clone()).filter(|a| a.software && p.total > 1_000_000_000);
        self.loading.set(LoadNote::Progress {
            done_mb: p.done as f64 / 1e6,
            total_mb: p.total as f64 / 1e6,
            file: p.file,
            speed,
            slow_gpu: slow_gpu.map(|a| a.name),
        });
    }

    /// Puts a loaded model in use once its first run has compiled the GPU's shaders, or says why
    /// it did not load (the model in use stays).
    async fn put(
        self,
        loaded: Result<Describer, LoadError>,
        url: String,
        t0: f64,
        note: String,
    ) -> Result<Rc<Describer>, String> {
        let d = match loaded {
            Ok(d) => d,
            Err(e) => {
                if self.describer().is_none() {
                    self.name.set(ModelName::None);
                }
                self.loading.set(LoadNote::None);
                return Err(if self.gpu_losses >= session::MAX_GPU_LOSSES {
                    format!(
                        "the GPU was lost {} times in this tab, and on the CPU the model did not load: {e}",
                        self.gpu_losses
                    )
                } else {
                    format!("the model did not load: {e}")
                });
            }
        };
        if !crate::kernels::is_cpu(d.device()) {
            self.loading.set(LoadNote::WarmingUp);
            d.warm_up().await;
        }
        self.name.set(ModelName::Named(d.manifest.name.clone()));
        // the first model's readiness is the page's: time to interactive, from the navigation
        let interactive_s = self.describer().is_none().then(|| now_ms() / 1e3);
        self.loading.set(LoadNote::Ready { ms: now_ms() - t0, storage: note, interactive_s });
        let d = Rc::new(d);
        self.describer.set_value(Some(d.clone()));
        self.in_use.set_value(url);
        Ok(d)
    }
}

type SharedModel = Shared<LocalBoxFuture<'static, Result<Rc<Describer>, String>>>;

thread_local! {
    static DEVICE: Shared<LocalBoxFuture<'static, Rc<Compute>>> =
        async { Rc::new(backend::detect(true).await) }.boxed_local().shared();
    static MODELS: RefCell<HashMap<String, SharedModel>> = RefCell::new(HashMap::new());
}

/// The model at `url` for the page's widgets, loaded once for all of them; a failed load is
/// tried again next time.
pub async fn shared_model(url: String) -> Result<Rc<Describer>, String> {
    let load = MODELS.with(|m| {
        let mut models = m.borrow_mut();
        let entry = models.entry(url.clone()).or_insert_with(|| {
            let url = url.clone();
            async move {
                let compute = DEVICE.with(Clone::clone).await;
                let loaded = load::load(&url, &compute.device, &compute.target(), &Cancel::default(), |_| {}).await;
                loaded.map(|l| Rc::new(l.describer)).map_err(|e| e.to_string())
            }
            .boxed_local()
            .shared()
        });
        entry.clone()
    });
    let loaded = load.await;
    if loaded.is_err() {
        MODELS.with(|m| m.borrow_mut().remove(&url));
    }
    loaded
}
