//! The page: a person opens a photo, draws boxes and reads what DynRefer says of each region,
//! with the model bundle it loaded, all in the page. [`App`] holds the state ([`Page`], shared by
//! context) and lays out small components: the photo and model bars, the status line, the stage,
//! the region list with its exports, the views and the results.

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use super::backend::{self, Compute};
use super::browser::{now_ms, read_file, revoke, wasm_memory_bytes};
use super::regions::{Finished, Job, Photo, Region, RegionState, Regions, Runs, Status, start_run};
use super::results::Results;
use super::stage::{Stage, ViewStrip};
use super::{export, load, session};
use crate::describe::{ClassSet, DescribeOptions, Describer};
use crate::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use crate::views::RegionBox;

/// Which model the page uses, as `data-role="model"` names it.
#[derive(Clone, Debug, PartialEq)]
enum ModelName {
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

/// What the person chose for the descriptions.
#[derive(Clone, Copy)]
struct Choices {
    num_views: RwSignal<usize>,
    /// A model fixes the number of views it fuses; without one the views can still be previewed.
    model_views: RwSignal<Option<usize>>,
    beams: RwSignal<usize>,
    threshold: RwSignal<String>,
    controls: RwSignal<String>,
    /// The person's own class names, comma-separated ("" for the model's classes).
    classes: RwSignal<String>,
}

/// The page's state, shared by context with its components.
#[derive(Clone, Copy)]
struct Page {
    status: RwSignal<Status>,
    photo: RwSignal<Option<Photo>>,
    regions: Regions,
    runs: Runs,
    choices: Choices,
    describer: StoredValue<Option<Rc<Describer>>, LocalStorage>,
    /// The person's classes embedded by the model in use.
    class_set: StoredValue<Option<ClassSet>, LocalStorage>,
    compute: StoredValue<Option<Rc<Compute>>, LocalStorage>,
    model_name: RwSignal<ModelName>,
    /// The model in use came from this URL ("" when from files on this computer).
    model_in_use: StoredValue<String>,
    model_url: RwSignal<String>,
    /// The load in progress, which a newer one cancels.
    current_load: StoredValue<Option<load::Cancel>, LocalStorage>,
    /// Progress of a load, or how long the last one took.
    loading: RwSignal<String>,
    /// The stage of the description in progress.
    stage_text: RwSignal<String>,
    timing: RwSignal<String>,
    /// For tests: the selected region's stages in milliseconds, and the wasm memory's size after
    /// the last run, photo or saved picture.
    timings: RwSignal<String>,
    memory: RwSignal<String>,
    details: RwSignal<bool>,
    /// `?tokens=N` caps the caption's length (30 by default, as the official demo), e.g. to time a
    /// large model on a slow device.
    max_new_tokens: usize,
    gpu_losses: u32,
}

impl Page {
    fn new() -> Page {
        let gpu_losses = session::gpu_losses();
        Page {
            status: RwSignal::new(Status::Loading),
            photo: RwSignal::new(None),
            regions: Regions::new(),
            runs: Runs::new(),
            choices: Choices {
                num_views: RwSignal::new(3),
                model_views: RwSignal::new(None),
                beams: RwSignal::new(5),
                threshold: RwSignal::new(String::new()),
                controls: RwSignal::new(String::new()),
                classes: RwSignal::new(String::new()),
            },
            describer: StoredValue::new_local(None),
            class_set: StoredValue::new_local(None),
            compute: StoredValue::new_local(None),
            model_name: RwSignal::new(ModelName::Loading),
            model_in_use: StoredValue::new(String::new()),
            model_url: RwSignal::new(load::bundle_url()),
            current_load: StoredValue::new_local(None),
            loading: RwSignal::new(String::new()),
            stage_text: RwSignal::new(String::new()),
            timing: RwSignal::new(String::new()),
            timings: RwSignal::new(String::new()),
            memory: RwSignal::new(String::new()),
            details: RwSignal::new(false),
            max_new_tokens: load::query_param("tokens").and_then(|t| t.parse().ok()).unwrap_or(30),
            gpu_losses,
        }
    }

    /// The person's choices as options, or why one of them cannot be used.
    fn options(&self) -> Result<DescribeOptions, String> {
        let c = self.choices;
        let controls = c.controls.get_untracked();
        Ok(DescribeOptions {
            num_views: Some(c.num_views.get_untracked()),
            beams: c.beams.get_untracked(),
            max_new_tokens: self.max_new_tokens,
            controls: (!controls.trim().is_empty()).then_some(controls),
            tag_threshold: tag_threshold(&c.threshold.get_untracked())?,
            classes: self.class_set.get_value(),
            ..DescribeOptions::default()
        })
    }

    fn save_session(&self) {
        let c = self.choices;
        session::save(&session::Saved {
            model_url: self.model_in_use.get_value(),
            photo_name: self.photo.with_untracked(|p| p.as_ref().map(|p| p.name.clone())).unwrap_or_default(),
            regions: self.regions.list.with_untracked(|l| l.iter().map(|r| r.bbox).collect()),
            beams: c.beams.get_untracked(),
            threshold: c.threshold.get_untracked(),
            controls: c.controls.get_untracked(),
            classes: c.classes.get_untracked(),
        });
    }

    /// Describes every pending region in one run, after a moment in which a newer change may
    /// replace this run; an older run stops at its next stage.
    fn describe(self) {
        let Some(photo) = self.photo.get_untracked() else {
            return self.status.set(Status::error("open a photo first"));
        };
        let options = match self.options() {
            Ok(options) => options,
            Err(e) => return self.status.set(Status::Error(e)),
        };
        self.status.set(Status::Running);
        self.save_session();
        let job = Job { model: self.describer.get_value(), options, num_views: self.choices.num_views.get_untracked() };
        let on_stage = move |stage: crate::describe::Stage| self.stage_text.set(stage.to_string());
        start_run(self.regions, self.runs, photo.image, job, on_stage, move |run: Finished| {
            self.stage_text.set(String::new());
            let mut times: serde_json::Map<String, serde_json::Value> =
                run.timings.into_iter().map(|(stage, ms)| (stage.to_string(), ms.into())).collect();
            times.insert("regions".into(), run.described.into());
            self.timings.set(serde_json::Value::Object(times).to_string());
            self.timing.set(format!("{} region(s) described in {:.0} ms", run.described, run.ms));
            self.memory.set(wasm_memory_bytes().to_string());
            self.status.set(run.failed.map_or(Status::DONE, Status::Error));
        });
    }

    /// A photo's bytes from a file, a drop, a paste or an example; its regions start afresh.
    fn open_photo(self, name: String, bytes: Result<Vec<u8>, String>) {
        let t0 = now_ms();
        let decoded = bytes.and_then(|b| {
            let image = decode_photo(&b, DEFAULT_MAX_PIXELS).map_err(|e| e.to_string())?;
            let url = super::browser::blob_url(&b, "application/octet-stream")
                .map_err(|_| "the browser cannot show this file".to_string())?;
            Ok((image, url))
        });
        match decoded {
            Ok((image, url)) => {
                if let Some(old) = self.photo.get_untracked() {
                    revoke(&old.url);
                }
                self.runs.next();
                self.regions.clear();
                self.photo.set(Some(Photo { image: std::sync::Arc::new(image), url, name }));
                self.timing.set(format!("photo decoded in {:.0} ms", now_ms() - t0));
                self.memory.set(wasm_memory_bytes().to_string());
                self.status.set(Status::READY);
            }
            Err(e) => self.status.set(Status::error(format!("{name}: {e}"))),
        }
    }

    fn open_file(self, file: web_sys::File) {
        self.status.set(Status::Running);
        spawn_local(async move { self.open_photo(file.name(), read_file(&file).await) });
    }

    /// Embeds the person's classes with the model in use ("" goes back to the model's own).
    fn apply_classes(self) -> Result<(), String> {
        let text = self.choices.classes.get_untracked();
        let names: Vec<String> = text.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
        let set = match (names.is_empty(), self.describer.get_value()) {
            (true, _) => None,
            (false, Some(d)) => Some(d.class_set(&names).map_err(|e| format!("classes: {e}"))?),
            (false, None) => return Err("classes: no model is loaded".into()),
        };
        self.class_set.set_value(set);
        Ok(())
    }

    fn start_load(self) -> load::Cancel {
        if let Some(old) = self.current_load.get_value() {
            old.cancel();
        }
        let cancel = load::Cancel::default();
        self.current_load.set_value(Some(cancel.clone()));
        cancel
    }

    fn show_progress(self, p: crate::bundle::Progress, since: StoredValue<Option<(f64, u64)>>) {
        let (done, total) = (p.done as f64 / 1e6, p.total as f64 / 1e6);
        let now = now_ms();
        let (t0, done0) = match since.get_value() {
            Some((t0, done0)) if p.done >= done0 => (t0, done0),
            _ => {
                since.set_value(Some((now, p.done)));
                (now, p.done)
            }
        };
        let seconds = (now - t0) / 1e3;
        let speed = if seconds >= 0.5 {
            format!(", {:.1} MB/s", (p.done - done0) as f64 / 1e6 / seconds)
        } else {
            String::new()
        };
        let slow =
            self.compute.get_value().and_then(|c| c.adapter.clone()).filter(|a| a.software && p.total > 1_000_000_000);
        let warning = slow.map_or(String::new(), |a| {
            format!(" — a large model on a software GPU ({}): each description will take many minutes", a.name)
        });
        self.loading.set(format!("model {done:.1} / {total:.1} MB ({}{speed}){warning}", p.file));
    }

    /// Puts a loaded model in use once its first run has compiled the GPU's shaders, or reports
    /// why it did not load (the model in use stays).
    async fn use_model(self, loaded: Result<Describer, String>, t0: f64, note: String) {
        match loaded {
            Ok(d) => {
                if !crate::kernels::is_cpu(d.device()) {
                    self.loading.set("warming up (compiling the GPU's shaders)…".into());
                    d.warm_up().await;
                }
                self.model_name.set(ModelName::Named(d.manifest.name.clone()));
                self.choices.model_views.set(Some(d.manifest.config.num_views));
                self.choices.num_views.set(d.manifest.config.num_views);
                // the first model's readiness is the page's: time to interactive, from the navigation
                let interactive = if self.describer.get_value().is_none() {
                    format!("; the page was interactive {:.1} s after it opened", now_ms() / 1e3)
                } else {
                    String::new()
                };
                self.loading.set(format!("model ready in {:.0} ms{note}{interactive}", now_ms() - t0));
                self.describer.set_value(Some(Rc::new(d)));
                match self.apply_classes() {
                    Ok(()) => self.status.set(Status::READY),
                    Err(e) => self.status.set(Status::Error(e)),
                }
            }
            Err(e) => {
                if self.describer.get_value().is_none() {
                    self.model_name.set(ModelName::None);
                }
                self.loading.set(String::new());
                let why = if self.gpu_losses >= session::MAX_GPU_LOSSES {
                    format!(
                        "the GPU was lost {} times in this tab, and on the CPU the model did not load: {e}",
                        self.gpu_losses
                    )
                } else {
                    format!("the model did not load: {e}")
                };
                self.status.set(Status::Error(why));
            }
        }
    }

    /// Loads the bundle at `model_url`; the model in use stays until the new one is ready.
    fn load_model(self) {
        let Some(c) = self.compute.get_value() else {
            // the effect that waits for the device loads the URL in the field once it is known
            return self.loading.set(WAITING_FOR_DEVICE.into());
        };
        let url = load::folder_url(&self.model_url.get_untracked());
        self.status.set(Status::Loading);
        let cancel = self.start_load();
        let since = StoredValue::new(None);
        spawn_local(async move {
            let t0 = now_ms();
            let watch = move |event: load::Loading| match event {
                load::Loading::Progress(p) => self.show_progress(p, since),
                load::Loading::Stalled { file, seconds } => self.loading.set(format!(
                    "the download of {file} has stalled: nothing received for {seconds:.0} s; still waiting (load \
                     another model to give up)"
                )),
            };
            let loaded = load::load(&url, &c.device, &c.target(), &cancel, watch).await;
            if cancel.is_cancelled() {
                return;
            }
            if loaded.is_ok() {
                self.model_in_use.set_value(url.clone());
            }
            let note = loaded.as_ref().map_or(String::new(), load::Loaded::storage_note);
            self.use_model(loaded.map(|l| l.describer), t0, note).await;
        });
    }

    /// A bundle from the person's disk: its folder, or all its files.
    fn load_files(self, files: web_sys::FileList) {
        let Some(c) = self.compute.get_value() else {
            return self
                .status
                .set(Status::error("the compute device is still being detected: pick the folder again in a moment"));
        };
        self.status.set(Status::Loading);
        let cancel = self.start_load();
        let since = StoredValue::new(None);
        spawn_local(async move {
            let t0 = now_ms();
            let loaded = load::load_files(&files, &c.device, &c.target(), move |p| self.show_progress(p, since)).await;
            if loaded.is_ok() {
                self.model_in_use.set_value(String::new());
            }
            if !cancel.is_cancelled() {
                self.use_model(loaded, t0, String::new()).await;
            }
        });
    }

    /// After a lost GPU the page was reloaded: once a model is in use, the saved photo, options
    /// and boxes come back.
    fn restore(self, restore: session::Restore) {
        let session::Restore { saved, photo_key } = restore;
        spawn_local(async move {
            let Some(bytes) = session::take_photo(&photo_key).await else {
                return self.status.set(Status::error("the photo could not be kept across the reload: open it again"));
            };
            let c = self.choices;
            c.beams.set(saved.beams);
            c.threshold.set(saved.threshold);
            c.controls.set(saved.controls);
            c.classes.set(saved.classes);
            if let Err(e) = self.apply_classes() {
                return self.status.set(Status::Error(e));
            }
            self.open_photo(saved.photo_name, Ok(bytes));
            let Some(photo) = self.photo.get_untracked() else { return };
            let (w, h) = (photo.image.width(), photo.image.height());
            let boxes: Vec<_> = saved.regions.into_iter().filter(|b| b.validate(w, h).is_ok()).collect();
            if !boxes.is_empty() {
                self.regions.replace(&boxes);
                self.describe();
            }
        });
    }
}

/// Tells the person that the app stopped (it panicked): the status line is all that still works.
pub fn stopped(message: &str) {
    let status = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("[data-role=status]").ok().flatten());
    if let Some(status) = status {
        status.set_text_content(Some(&format!("error: {message}")));
    }
}

fn page() -> Page {
    expect_context::<Page>()
}

const WAITING_FOR_DEVICE: &str = "the compute device is still being detected; the model loads once it is known";
const NOTHING_TO_SAVE: &str = "open a photo first: there is nothing to save";
/// Where the browser withholds the clipboard (a page served over plain http from another
/// machine is not a secure context).
const NO_CLIPBOARD: &str = "this browser gives no clipboard to this page (it needs https or localhost)";

/// The tag threshold field: empty for the model's own, else a number from 0 to 1.
fn tag_threshold(text: &str) -> Result<Option<f32>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f32>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(Some(t)),
        _ => Err(format!("tag threshold: {text:?} is not a number from 0 to 1 (leave it empty for the model's own)")),
    }
}

#[component]
pub fn App() -> impl IntoView {
    let page = Page::new();
    provide_context(page);
    // After a lost GPU `gpu-watch.js` reloads the page, which then restores what it saved.
    session::arm_recovery();
    let restore = StoredValue::new_local(session::take_restore());
    spawn_local(session::forget_stale_photos());
    if let Some(url) = restore.with_value(|r| r.as_ref().map(|r| r.saved.model_url.clone())).filter(|u| !u.is_empty()) {
        page.model_url.set(url);
    }
    let allow_gpu = page.gpu_losses < session::MAX_GPU_LOSSES;
    let compute = LocalResource::new(move || async move { Rc::new(backend::detect(allow_gpu).await) });
    Effect::new(move |_| {
        if let Some(c) = compute.get() {
            page.compute.set_value(Some(c));
            page.load_model();
        }
    });
    Effect::new(move |_| {
        if page.status.get() != Status::READY || page.describer.get_value().is_none() {
            return;
        }
        if let Some(saved) = restore.try_update_value(Option::take).flatten() {
            page.restore(saved);
        }
    });
    let paste = window_event_listener(leptos::ev::paste, move |ev| {
        if let Some(file) = ev.clipboard_data().and_then(|d| d.files()).and_then(|f| f.get(0)) {
            ev.prevent_default();
            page.open_file(file);
        }
    });
    on_cleanup(move || paste.remove());

    view! {
        <header>
            <h1>"DynRefer"</h1>
            <p class="tagline">"Describe any region of a photo, entirely in your browser. Nothing is uploaded."</p>
            <p class="notice" data-role="notice">
                "The built-in model, DynRefer-shapes, was trained here on generated scenes of flat shapes and describes \
                 those; real photos need the official model, converted: see "
                <a href="README.md#running-the-real-model">"Running the real model"</a>
                "."
            </p>
        </header>
        <PhotoBar />
        <ModelBar />
        <StatusLine compute />
        <main>
            <div
                class="photo"
                on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default()
                on:drop=move |ev: leptos::ev::DragEvent| {
                    ev.prevent_default();
                    if let Some(file) = ev.data_transfer().and_then(|d| d.files()).and_then(|f| f.get(0)) {
                        page.open_file(file);
                    }
                }
            >
                <Stage
                    photo=page.photo.into()
                    regions=page.regions
                    on_edit=Callback::new(move |_| page.describe())
                    empty="Open, drop or paste a photo, then drag boxes around regions (or focus the photo and press Enter)."
                />
            </div>
            <section class="side">
                <RegionList />
                <section class="views">
                    <h2>"Views the model sees"</h2>
                    <ViewStrip regions=page.regions detailed=true />
                </section>
                <div aria-live="polite">
                    {move || {
                        page.regions.current().and_then(|r| r.description().cloned()).map(|d| {
                            view! { <Results description=d details=page.details /> }
                        })
                    }}
                </div>
            </section>
        </main>
        <pre data-role="result" hidden>{move || result_json(page.regions.current())}</pre>
        <pre data-role="timings" hidden>{move || page.timings.get()}</pre>
        <pre data-role="memory" hidden>{move || page.memory.get()}</pre>
    }
}

/// The selected region's description as the CLI prints it, or its views without a model.
fn result_json(region: Option<Region>) -> String {
    let Some(region) = region else { return String::new() };
    match (&region.state, &region.views) {
        (RegionState::Described(d), _) => serde_json::to_string(&**d).unwrap_or_default(),
        (RegionState::Pending, Some(v)) => serde_json::to_string(&**v).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The photo, the box typed by hand and the description's options.
#[component]
fn PhotoBar() -> impl IntoView {
    let page = page();
    let c = page.choices;
    let box_text = RwSignal::new(String::new());
    // the box in the field follows the selected one and the one being dragged
    let shown_box =
        Memo::new(move |_| page.regions.draft.get().map(|d| d.bbox).or_else(|| page.regions.current().map(|r| r.bbox)));
    Effect::new(move |_| box_text.set(shown_box.get().map(RegionBox::to_text).unwrap_or_default()));
    let on_file = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = ev.target().unwrap().unchecked_into();
        if let Some(file) = input.files().and_then(|f| f.get(0)) {
            page.open_file(file);
        }
    };
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(photo) = page.photo.get_untracked() else {
            return page.status.set(Status::error("open a photo first"));
        };
        let (w, h) = (photo.image.width(), photo.image.height());
        match box_text.get_untracked().parse::<RegionBox>().and_then(|b| b.validate(w, h)) {
            Ok(b) => {
                page.regions.set_selected_or_add(b);
                page.describe();
            }
            Err(e) => page.status.set(Status::error(format!("box: {e}"))),
        }
    };
    let on_classes = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match page.apply_classes() {
            Ok(()) => {
                page.regions.redo_all();
                if page.regions.any_pending() {
                    page.describe();
                } else {
                    page.status.set(Status::READY);
                }
            }
            Err(e) => page.status.set(Status::Error(e)),
        }
    };
    let select = |value: RwSignal<usize>,
                  class: &'static str,
                  disabled: Signal<bool>,
                  title: Signal<Option<String>>| {
        view! {
            <select
                class=class
                on:change=move |ev| value.set(event_target_value(&ev).parse().unwrap_or(3))
                prop:disabled=move || disabled.get()
                title=move || title.get()
            >
                {(1..=5).map(|n| view! { <option value=n selected=move || value.get() == n>{n}</option> }).collect_view()}
            </select>
        }
    };
    view! {
        <section class="bar">
            <label class="file">
                "Open a photo "
                <input data-role="image-input" type="file" accept="image/*" on:change=on_file />
            </label>
            <form on:submit=on_submit>
                <label>
                    "Box (x1,y1,x2,y2) "
                    <input
                        class="box-text"
                        type="text"
                        placeholder="drag on the photo"
                        prop:value=move || box_text.get()
                        on:input=move |ev| box_text.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    " Views "
                    {select(
                        c.num_views,
                        "views",
                        Signal::derive(move || c.model_views.get().is_some()),
                        Signal::derive(move || c.model_views.get().map(|n| format!("this model fuses {n} views per region"))),
                    )}
                </label>
                <label>" Beams " {select(c.beams, "beams", Signal::from(false), Signal::from(None))}</label>
                <label>
                    " Tag threshold "
                    <input
                        class="threshold"
                        type="number"
                        min="0"
                        max="1"
                        step="0.01"
                        placeholder="model's"
                        prop:value=move || c.threshold.get()
                        on:input=move |ev| c.threshold.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    " Steer with "
                    <input
                        class="controls"
                        type="text"
                        placeholder="words, e.g. red hat,|dog"
                        prop:value=move || c.controls.get()
                        on:input=move |ev| c.controls.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit">"Describe"</button>
            </form>
            <form on:submit=on_classes>
                <label>
                    "Your classes "
                    <input
                        data-role="custom-classes"
                        type="text"
                        placeholder="e.g. circle, square, star"
                        prop:value=move || c.classes.get()
                        on:input=move |ev| c.classes.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit">"Use classes"</button>
            </form>
        </section>
    }
}

/// Example photos and the model to use: by URL or from a folder on this computer.
#[component]
fn ModelBar() -> impl IntoView {
    let page = page();
    let open_example = move |name: &'static str| {
        page.status.set(Status::Running);
        spawn_local(async move { page.open_photo(name.to_string(), load::fetch(&format!("examples/{name}")).await) });
    };
    let on_folder = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = ev.target().unwrap().unchecked_into();
        if let Some(files) = input.files() {
            page.load_files(files);
        }
    };
    // a folder picker where the browser has one (the attribute is not in leptos' vocabulary)
    let folder_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(input) = folder_input.get() {
            let _ = input.set_attribute("webkitdirectory", "");
        }
    });
    view! {
        <section class="bar second">
            <span>
                "Try an example: "
                {["scene-1.jpg", "scene-2.jpg", "scene-3.jpg"]
                    .map(|n| view! { <button type="button" class="example" on:click=move |_| open_example(n)>{n}</button> })
                    .collect_view()}
            </span>
            <form on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                page.load_model();
            }>
                <label>
                    " Model "
                    <input
                        class="model-url"
                        type="text"
                        placeholder="URL of a converted bundle folder"
                        prop:value=move || page.model_url.get()
                        on:input=move |ev| page.model_url.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit">"Load model"</button>
                <label class="file">
                    " or a converted bundle folder on this computer "
                    <input class="model-files" type="file" multiple node_ref=folder_input on:change=on_folder />
                </label>
            </form>
        </section>
    }
}

/// What the page is doing, the compute device and the model; read out as it changes.
#[component]
fn StatusLine(compute: LocalResource<Rc<Compute>>) -> impl IntoView {
    let page = page();
    let adapter = move || {
        compute.get().map(|c| match &c.adapter {
            Some(a) => format!(" ({}, {})", a.name, if a.software { "a software GPU: slow" } else { "GPU" }),
            None if page.gpu_losses >= session::MAX_GPU_LOSSES => {
                format!(" (the GPU was lost {} times in this tab: computing on the CPU)", page.gpu_losses)
            }
            None => String::new(),
        })
    };
    view! {
        <p class="meta">
            "Status: " <span data-role="status" role="status" aria-live="polite">{move || page.status.get().to_string()}</span>
            " " <span data-role="progress">{move || page.stage_text.get()}</span>
            " · Compute: "
            <Suspense fallback=|| "detecting…">
                <span data-role="backend">{move || compute.get().map(|c| c.backend.to_string())}</span>
                <span data-role="adapter">{adapter}</span>
            </Suspense>
            " · Model: " <span data-role="model">{move || page.model_name.get().to_string()}</span>
            " · " <span class="loading">{move || page.loading.get()}</span>
            " · " <span class="timing">{move || page.timing.get()}</span>
        </p>
    }
}

/// The regions, numbered as on the photo: select one, delete one, clear all; take the results away.
#[component]
fn RegionList() -> impl IntoView {
    let page = page();
    let regions = page.regions;
    let notice = RwSignal::new(String::new());
    let export_json = move |_| {
        let (Some(photo), list) = (page.photo.get_untracked(), regions.list.get_untracked()) else {
            return notice.set(NOTHING_TO_SAVE.into());
        };
        notice.set(export::save_json(&photo, &list).map_or_else(|e| e, |()| "saved the regions as JSON".into()));
    };
    let export_png = move |_| {
        let (Some(photo), list) = (page.photo.get_untracked(), regions.list.get_untracked()) else {
            return notice.set(NOTHING_TO_SAVE.into());
        };
        notice.set(export::save_png(&photo, &list).unwrap_or_else(|e| e));
        page.memory.set(wasm_memory_bytes().to_string());
    };
    let copy_off = !super::browser::has_clipboard();
    let copy = move |_| {
        let Some((n, d)) = regions.current().and_then(|r| r.description().map(|d| (r.number, d.clone()))) else {
            return notice.set("select a described region to copy".into());
        };
        spawn_local(async move {
            let text = super::results::as_text(n, &d);
            notice.set(super::browser::copy_text(&text).await.map_or_else(|e| e, |()| format!("copied region {n}")));
        });
    };
    // the run in progress is for regions that are gone
    let clear = move |_| {
        page.runs.next();
        regions.clear();
        page.stage_text.set(String::new());
        page.status.set(if page.photo.with_untracked(Option::is_some) {
            Status::READY
        } else {
            page.status.get_untracked()
        });
    };
    let entry = move |r: Region| {
        let n = r.number;
        let text = match &r.state {
            RegionState::Pending => "describing…".to_string(),
            RegionState::Described(d) => d.caption.clone(),
            RegionState::Failed(e) => format!("error: {e}"),
        };
        let selected = move || regions.selected.get() == Some(n);
        view! {
            <li data-role="region" class:selected=selected data-box=r.bbox.0.map(|v| v.to_string()).join(",")>
                <button
                    type="button"
                    class="pick"
                    aria-pressed=move || selected().to_string()
                    on:click=move |_| regions.selected.set(Some(n))
                >
                    <span class="number">{n}</span>
                    " "
                    {text}
                </button>
                <button
                    type="button"
                    class="delete secondary"
                    aria-label=format!("delete region {n}")
                    on:click=move |_| regions.remove(n)
                >
                    "×"
                </button>
            </li>
        }
    };
    view! {
        <section class="regions">
            <h2>"Regions"</h2>
            <ol data-role="regions" aria-live="polite">
                <For each=move || regions.list.get() key=|r| (r.number, r.bbox.0.map(f64::to_bits), state_key(&r.state)) children=entry />
            </ol>
            <p class="actions">
                <button type="button" class="secondary" data-role="clear" on:click=clear>
                    "Clear all"
                </button>
                <button type="button" class="secondary" data-role="export-json" on:click=export_json>
                    "Save JSON"
                </button>
                <button type="button" class="secondary" data-role="export-png" on:click=export_png>
                    "Save picture"
                </button>
                <button
                    type="button"
                    class="secondary"
                    data-role="copy"
                    on:click=copy
                    disabled=copy_off
                    title=copy_off.then_some(NO_CLIPBOARD)
                >
                    "Copy result"
                </button>
                <span class="notice" role="status">{move || notice.get()}</span>
            </p>
        </section>
    }
}

/// Tells a region's states apart, so that the list redraws an entry when its state changes.
fn state_key(state: &RegionState) -> u8 {
    match state {
        RegionState::Pending => 0,
        RegionState::Described(_) => 1,
        RegionState::Failed(_) => 2,
    }
}
