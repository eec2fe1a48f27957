//! The page: a person opens a photo, draws boxes and reads what DynRefer says of each region,
//! with the model bundle it loaded, all in the page. [`App`] provides the state ([`Page`], in
//! `state.rs`) by context and lays out small components: the photo and model bars and the status
//! line (`bars.rs`), the stage, the region list with its exports (`region_list.rs`), the views and
//! the results.

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::backend;
use super::bars::{ModelBar, PhotoBar, StatusLine};
use super::region_list::RegionList;
use super::regions::{Region, RegionState, Status};
use super::results::Results;
use super::session;
use super::stage::{Stage, ViewStrip};
use super::state::Page;

/// Tells the person that the app stopped (it panicked): the status line is all that still works.
pub fn stopped(message: &str) {
    let status = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("[data-role=status]").ok().flatten());
    if let Some(status) = status {
        status.set_text_content(Some(&format!("error: {message}")));
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
    let allow_gpu = page.model.gpu_losses < session::MAX_GPU_LOSSES;
    let compute = LocalResource::new(move || async move { Rc::new(backend::detect(allow_gpu).await) });
    Effect::new(move |_| {
        if let Some(c) = compute.get() {
            page.model.set_compute(c);
            page.load_model();
        }
    });
    Effect::new(move |_| {
        if page.status.get() != Status::READY || page.model.describer().is_none() {
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
