//! The page's state, shared by context with its components: the photo, the regions and their
//! runs, the person's choices, the model in use (a [`ModelSlot`]) and what the status line shows;
//! with what the components ask of it (open a photo, describe, load a model, restore a session).

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::browser::{now_ms, read_file, revoke, wasm_memory_bytes};
use super::hooks::hooks;
use super::model_slot::{LoadNote, ModelSlot};
use super::regions::{Finished, Job, Photo, Regions, Runs, Status, start_run};
use super::{load, session};
use crate::describe::{DescribeOptions, Describer};
use crate::photo::{DEFAULT_MAX_PIXELS, decode_photo};

/// What the person chose for the descriptions.
#[derive(Clone, Copy)]
pub struct Choices {
    pub num_views: RwSignal<usize>,
    /// A model fixes the number of views it fuses; without one the views can still be previewed.
    pub model_views: RwSignal<Option<usize>>,
    pub beams: RwSignal<usize>,
    pub threshold: RwSignal<String>,
    pub controls: RwSignal<String>,
    /// The person's own class names, comma-separated ("" for the model's classes).
    pub classes: RwSignal<String>,
}

/// The page's state, shared by context with its components.
#[derive(Clone, Copy)]
pub struct Page {
    pub status: RwSignal<Status>,
    pub photo: RwSignal<Option<Photo>>,
    pub regions: Regions,
    pub runs: Runs,
    pub choices: Choices,
    pub model: ModelSlot,
    /// The bundle URL in the "Model" field.
    pub model_url: RwSignal<String>,
    /// The stage of the description in progress.
    pub stage_text: RwSignal<String>,
    pub timing: RwSignal<String>,
    /// For tests: the selected region's stages in milliseconds, and the wasm memory's size after
    /// the last run, photo or saved picture.
    pub timings: RwSignal<String>,
    pub memory: RwSignal<String>,
    pub details: RwSignal<bool>,
}

impl Page {
    pub fn new() -> Page {
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
            model: ModelSlot::new(),
            model_url: RwSignal::new(load::bundle_url()),
            stage_text: RwSignal::new(String::new()),
            timing: RwSignal::new(String::new()),
            timings: RwSignal::new(String::new()),
            memory: RwSignal::new(String::new()),
            details: RwSignal::new(false),
        }
    }

    /// The person's choices as options, or why one of them cannot be used.
    fn options(&self) -> Result<DescribeOptions, String> {
        let c = self.choices;
        let controls = c.controls.get_untracked();
        Ok(DescribeOptions {
            num_views: Some(c.num_views.get_untracked()),
            beams: c.beams.get_untracked(),
            max_new_tokens: hooks().max_new_tokens,
            controls: (!controls.trim().is_empty()).then_some(controls),
            tag_threshold: tag_threshold(&c.threshold.get_untracked())?,
            classes: self.model.class_set(),
            ..DescribeOptions::default()
        })
    }

    fn save_session(&self) {
        let c = self.choices;
        session::save(&session::Saved {
            model_url: self.model.url_in_use(),
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
    pub fn describe(self) {
        let Some(photo) = self.photo.get_untracked() else {
            return self.status.set(Status::error("open a photo first"));
        };
        let options = match self.options() {
            Ok(options) => options,
            Err(e) => return self.status.set(Status::Error(e)),
        };
        self.status.set(Status::Running);
        self.save_session();
        let job = Job { model: self.model.describer(), options, num_views: self.choices.num_views.get_untracked() };
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
    pub fn open_photo(self, name: String, bytes: Result<Vec<u8>, String>) {
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

    pub fn open_file(self, file: web_sys::File) {
        self.status.set(Status::Running);
        spawn_local(async move { self.open_photo(file.name(), read_file(&file).await) });
    }

    /// Embeds the person's classes with the model in use ("" goes back to the model's own).
    pub fn apply_classes(self) -> Result<(), String> {
        self.model.apply_classes(&self.choices.classes.get_untracked())
    }

    /// A model is in use now (its number of views becomes the page's), or one did not load.
    fn model_ready(self, ready: Result<Rc<Describer>, String>) {
        let status = ready.and_then(|d| {
            let num_views = d.manifest.config.num_views;
            self.choices.model_views.set(Some(num_views));
            self.choices.num_views.set(num_views);
            self.apply_classes()
        });
        self.status.set(status.map_or_else(Status::Error, |()| Status::READY));
    }

    /// Loads the bundle at `model_url`; the model in use stays until the new one is ready.
    pub fn load_model(self) {
        let url = load::folder_url(&self.model_url.get_untracked());
        if self.model.load_url(url, move |ready| self.model_ready(ready)) {
            self.status.set(Status::Loading);
        } else {
            // the effect that waits for the device loads the URL in the field once it is known
            self.model.loading.set(LoadNote::WaitingForDevice);
        }
    }

    /// A bundle from the person's disk: its folder, or all its files.
    pub fn load_files(self, files: web_sys::FileList) {
        if self.model.load_files(files, move |ready| self.model_ready(ready)) {
            self.status.set(Status::Loading);
        } else {
            self.status
                .set(Status::error("the compute device is still being detected: pick the folder again in a moment"));
        }
    }

    /// After a lost GPU the page was reloaded: once a model is in use, the saved photo, options
    /// and boxes come back.
    pub fn restore(self, restore: session::Restore) {
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

pub fn page() -> Page {
    expect_context::<Page>()
}

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
