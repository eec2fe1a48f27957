//! The page's bars: the photo and the description's options, the example photos and the model,
//! and the status line.

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use super::backend::Compute;
use super::load;
use super::regions::Status;
use super::session;
use super::state::page;
use crate::views::RegionBox;

/// The photo, the box typed by hand and the description's options.
#[component]
pub fn PhotoBar() -> impl IntoView {
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
pub fn ModelBar() -> impl IntoView {
    let page = page();
    let open_example = move |name: &'static str| {
        page.status.set(Status::Running);
        spawn_local(async move {
            let bytes = load::fetch(&format!("examples/{name}")).await;
            page.open_photo(name.to_string(), bytes.map_err(|e| e.to_string()))
        });
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
pub fn StatusLine(compute: LocalResource<Rc<Compute>>) -> impl IntoView {
    let page = page();
    let adapter = move || {
        compute.get().map(|c| match &c.adapter {
            Some(a) => format!(" ({}, {})", a.name, if a.software { "a software GPU: slow" } else { "GPU" }),
            None if page.model.gpu_losses >= session::MAX_GPU_LOSSES => {
                format!(" (the GPU was lost {} times in this tab: computing on the CPU)", page.model.gpu_losses)
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
            " · Model: " <span data-role="model">{move || page.model.name.get().to_string()}</span>
            " · " <span class="loading">{move || page.model.loading.get().to_string()}</span>
            " · " <span class="timing">{move || page.timing.get()}</span>
        </p>
    }
}
