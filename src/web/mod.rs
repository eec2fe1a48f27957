//! The browser app (wasm only): a person opens a photo and drags a box; the page shows DynRefer's
//! nested views of the region and describes it with the model bundle it loaded, all in the page.

mod backend;
mod model;
mod session;
mod widget;

use std::rc::Rc;
use std::sync::Arc;

use image::RgbImage;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::describe::{DescribeOptions, Describer, Description};
use crate::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use crate::views::{RegionBox, ViewOptions, Views, build_views};

/// Mounts the app on the page's body; or, loaded by `widget.js` (which leaves its hook object in
/// `globalThis.__dynreferWidget`), lets it mount widgets instead.
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        // nothing runs after a panic (a lost GPU device ends that way too): say so where people look
        let status = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.query_selector("[data-role=status]").ok().flatten());
        if let Some(status) = status {
            let why = info.payload_as_str().unwrap_or("internal error");
            status.set_text_content(Some(&format!("error: the app stopped ({why}); reload the page")));
        }
    }));
    let hook = js_sys::Reflect::get(&js_sys::global(), &"__dynreferWidget".into()).ok().filter(JsValue::is_object);
    match hook {
        Some(hook) => widget::register(&hook),
        None => leptos::mount::mount_to_body(App),
    }
}

/// A photo the person opened: its pixels (upright) and an object URL the page shows it from.
#[derive(Clone)]
struct Photo {
    image: Arc<RgbImage>,
    url: String,
}

/// One selected view, ready to show.
#[derive(Clone)]
struct Thumb {
    url: String,
    ratio: f64,
    /// Size of the crop in the photo, before it is resized for the model.
    crop_size: [i64; 2],
    /// The region inside the view, in percent of its side: left, top, width, height.
    region_pct: [f64; 4],
}

/// The bytes of this wasm instance's memory (it grows, and never shrinks).
fn wasm_memory_bytes() -> u64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    js_sys::ArrayBuffer::from(memory.buffer()).byte_length() as u64
}

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

fn revoke(url: &str) {
    let _ = web_sys::Url::revoke_object_url(url);
}

fn png_url(rgb: &[u8], size: u32) -> Result<String, String> {
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        rgb,
        size,
        size,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| e.to_string())?;
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(png.as_slice()));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("image/png");
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &opts).map_err(|e| format!("{e:?}"))?;
    web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))
}

fn thumbs(views: &Views) -> Result<Vec<Thumb>, String> {
    let s = f64::from(views.size);
    views
        .views
        .iter()
        .map(|v| {
            let [x1, y1, x2, y2] = v.region_box.map(f64::from);
            let region_pct = [x1 / s * 100.0, y1 / s * 100.0, (x2 - x1) / s * 100.0, (y2 - y1) / s * 100.0];
            let crop_size = [v.crop_box[2] - v.crop_box[0], v.crop_box[3] - v.crop_box[1]];
            Ok(Thumb { url: png_url(&v.rgb, views.size)?, ratio: v.ratio, crop_size, region_pct })
        })
        .collect()
}

async fn read_file(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buffer =
        JsFuture::from(file.array_buffer()).await.map_err(|_| "the browser could not read the file".to_string())?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// How long a new box waits before it is described, in case a newer one replaces it.
const SETTLE_MS: i32 = 50;

/// How close (screen pixels) a press must be to a corner of the box to grab it.
const HANDLE_REACH_PX: f64 = 12.0;

/// A pointer's position over `stage` in the pixels of the `image` it shows, clamped to the image.
fn pointer_in_image(stage: &web_sys::Element, image: &RgbImage, ev: &leptos::ev::PointerEvent) -> [f64; 2] {
    let r = stage.get_bounding_client_rect();
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    let x = ((f64::from(ev.client_x()) - r.left()) / r.width() * w).clamp(0.0, w);
    let y = ((f64::from(ev.client_y()) - r.top()) / r.height() * h).clamp(0.0, h);
    [x, y]
}

/// A press on the stage starts a drag: it captures the pointer and returns where the box spans from
/// (the opposite corner when a corner of `region` was grabbed, else the press) and the press, in
/// image pixels.
fn drag_start(
    ev: &leptos::ev::PointerEvent,
    stage: &web_sys::Element,
    image: &RgbImage,
    region: Option<[f64; 4]>,
) -> ([f64; 2], [f64; 2]) {
    ev.prevent_default();
    let _ = stage.set_pointer_capture(ev.pointer_id());
    let at = pointer_in_image(stage, image, ev);
    (region.and_then(|b| grab_corner(b, at, stage, image)).unwrap_or(at), at)
}

/// A press at `at` (image pixels) near a corner of box `b` grabs that corner: returns the opposite
/// corner, from which the drag then spans the box.
fn grab_corner(b: [f64; 4], at: [f64; 2], stage: &web_sys::Element, image: &RgbImage) -> Option<[f64; 2]> {
    let reach = HANDLE_REACH_PX * f64::from(image.width()) / stage.get_bounding_client_rect().width();
    let corners = [[b[0], b[1]], [b[2], b[1]], [b[0], b[3]], [b[2], b[3]]];
    let near = |c: &[f64; 2]| (c[0] - at[0]).abs() <= reach && (c[1] - at[1]).abs() <= reach;
    corners.iter().position(near).map(|i| corners[3 - i])
}

/// Box `b` moved by an arrow key: a pixel, ten with Shift, kept inside the image.
fn nudge(b: [f64; 4], ev: &leptos::ev::KeyboardEvent, image: &RgbImage) -> Option<[f64; 4]> {
    let step = if ev.shift_key() { 10.0 } else { 1.0 };
    let (dx, dy) = match ev.key().as_str() {
        "ArrowLeft" => (-step, 0.0),
        "ArrowRight" => (step, 0.0),
        "ArrowUp" => (0.0, -step),
        "ArrowDown" => (0.0, step),
        _ => return None,
    };
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    let dx = f64::clamp(dx, -b[0], w - b[2]);
    let dy = f64::clamp(dy, -b[1], h - b[3]);
    Some([b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy])
}

/// The box spanned by two corners.
fn span(a: [f64; 2], b: [f64; 2]) -> [f64; 4] {
    [a[0].min(b[0]), a[1].min(b[1]), a[0].max(b[0]), a[1].max(b[1])]
}

/// CSS placing a box over the photo, in percent of its sides.
fn overlay(b: [f64; 4], image: &RgbImage) -> String {
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    format!(
        "left:{}%;top:{}%;width:{}%;height:{}%",
        b[0] / w * 100.0,
        b[1] / h * 100.0,
        (b[2] - b[0]) / w * 100.0,
        (b[3] - b[1]) / h * 100.0
    )
}

fn format_box(b: [f64; 4]) -> String {
    b.map(|v| format!("{}", (v * 10.0).round() / 10.0)).join(",")
}

#[component]
fn App() -> impl IntoView {
    let status = RwSignal::new("loading".to_string());
    let backend = RwSignal::new(String::new());
    let photo = RwSignal::new(None::<Photo>);
    let region = RwSignal::new(None::<[f64; 4]>);
    let box_text = RwSignal::new(String::new());
    let num_views = RwSignal::new(3usize);
    // A model fixes the number of views it fuses; without one the views can still be previewed.
    let model_views = RwSignal::new(None::<usize>);
    let views = RwSignal::new(Vec::<Thumb>::new());
    let result = RwSignal::new(String::new());
    let timing = RwSignal::new(String::new());
    let drag_from = RwSignal::new(None::<[f64; 2]>);
    let stage = NodeRef::<leptos::html::Div>::new();
    let describer = StoredValue::new_local(None::<Rc<Describer>>);
    let model_name = RwSignal::new("loading…".to_string());
    let loading = RwSignal::new(String::new());
    let beams = RwSignal::new(5usize);
    // `?tokens=N` caps the caption's length (30 by default, as the official demo), e.g. to time a
    // large model on a slow device
    let max_new_tokens = model::query_param("tokens").and_then(|t| t.parse().ok()).unwrap_or(30usize);
    let controls = RwSignal::new(String::new());
    let threshold = RwSignal::new(String::new());
    let description = RwSignal::new(None::<Description>);
    // the wasm memory's size after the last description, for long-session tests
    let memory = RwSignal::new(String::new());
    // Each run has a number; a run that a newer one has replaced does not show its result.
    let run_id = StoredValue::new(0u64);

    let compute = StoredValue::new_local(None::<Rc<backend::Compute>>);
    let adapter = RwSignal::new(String::new());
    let stage_text = RwSignal::new(String::new());
    let timings = RwSignal::new(String::new());
    // After a lost GPU `gpu-watch.js` reloads the page, which then restores what it saved.
    session::arm_recovery();
    let restore = StoredValue::new_local(session::take_restore());
    let gpu_losses = session::gpu_losses();
    let saved_url = restore.with_value(|r| r.as_ref().map(|r| r.model_url.clone())).filter(|u| !u.is_empty());
    let model_url = RwSignal::new(saved_url.unwrap_or_else(model::bundle_url));
    // The model in use came from this URL ("" when from files on this computer).
    let model_in_use = StoredValue::new(String::new());
    let photo_name = StoredValue::new(String::new());
    // When and at how many bytes the load in progress began, for its speed (a new load starts lower).
    let progress_since = StoredValue::new(None::<(f64, u64)>);
    let show_progress = move |p: crate::bundle::Progress| {
        let (done, total) = (p.done as f64 / 1e6, p.total as f64 / 1e6);
        let now = now_ms();
        let (t0, done0) = match progress_since.get_value() {
            Some((t0, done0)) if p.done >= done0 => (t0, done0),
            _ => {
                progress_since.set_value(Some((now, p.done)));
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
            compute.get_value().and_then(|c| c.adapter.clone()).filter(|a| a.software && p.total > 1_000_000_000);
        let warning = slow.map_or(String::new(), |a| {
            format!(" — a large model on a software GPU ({}): each description will take many minutes", a.name)
        });
        loading.set(format!("model {done:.1} / {total:.1} MB ({}{speed}){warning}", p.file));
    };
    // Puts a loaded model in use once its first run has compiled the GPU's shaders, or reports
    // why it did not load (the model in use stays).
    let use_model = move |loaded: Result<Describer, String>, t0: f64, note: String| async move {
        match loaded {
            Ok(d) => {
                if *d.device() != burn::tensor::Device::flex() {
                    loading.set("warming up (compiling the GPU's shaders)…".into());
                    d.warm_up().await;
                }
                model_name.set(d.manifest.name.clone());
                model_views.set(Some(d.manifest.config.num_views));
                num_views.set(d.manifest.config.num_views);
                // the first model's readiness is the page's: time to interactive, from the navigation
                let interactive = if describer.get_value().is_none() {
                    format!("; the page was interactive {:.1} s after it opened", now_ms() / 1e3)
                } else {
                    String::new()
                };
                loading.set(format!("model ready in {:.0} ms{note}{interactive}", now_ms() - t0));
                describer.set_value(Some(Rc::new(d)));
                status.set("ready".into());
            }
            Err(e) => {
                if describer.get_value().is_none() {
                    model_name.set("none".into());
                }
                loading.set(String::new());
                let why = if gpu_losses >= session::MAX_GPU_LOSSES {
                    format!(
                        "the GPU was lost {gpu_losses} times in this tab, and on the CPU the model did not load: {e}"
                    )
                } else {
                    format!("the model did not load: {e}")
                };
                status.set(format!("error: {why}"));
            }
        }
    };
    let watch_load = move |event: model::Loading| match event {
        model::Loading::Progress(p) => show_progress(p),
        model::Loading::Stalled { file, seconds } => loading.set(format!(
            "the download of {file} has stalled: nothing received for {seconds:.0} s; still waiting (load another \
             model to give up)"
        )),
    };
    // The load in progress; a newer one cancels it.
    let current_load = StoredValue::new_local(None::<model::Cancel>);
    let start_load = move || {
        if let Some(old) = current_load.get_value() {
            old.cancel();
        }
        let cancel = model::Cancel::default();
        current_load.set_value(Some(cancel.clone()));
        cancel
    };
    // Loads the bundle at `model_url`; the model in use stays until the new one is ready.
    let load_model = move || {
        let Some(c) = compute.get_value() else { return };
        let url = model::folder_url(&model_url.get_untracked());
        status.set("loading".into());
        let cancel = start_load();
        spawn_local(async move {
            let t0 = now_ms();
            let loaded = model::load(&url, &c.device, &c.target(), &cancel, watch_load).await;
            if cancel.is_cancelled() {
                return;
            }
            if loaded.is_ok() {
                model_in_use.set_value(url.clone());
            }
            let not_cached = loaded.as_ref().map_or(0, |l| l.not_cached);
            let short = loaded.as_ref().ok().and_then(|l| l.short_of_room);
            let note = match short {
                Some((room, needed)) => format!(
                    "; the browser's storage has room for {:.1} of the model's {:.1} GB, so files will download again \
                     next visit",
                    room as f64 / 1e9,
                    needed as f64 / 1e9
                ),
                None if not_cached > 0 => {
                    format!("; the browser's storage is full, so {not_cached} file(s) will download again next visit")
                }
                None => String::new(),
            };
            use_model(loaded.map(|l| l.describer), t0, note).await;
        });
    };
    // A bundle from the person's disk: its folder, or all its files.
    let load_local = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = ev.target().unwrap().unchecked_into();
        let (Some(files), Some(c)) = (input.files(), compute.get_value()) else { return };
        status.set("loading".into());
        let cancel = start_load();
        spawn_local(async move {
            let t0 = now_ms();
            let loaded = model::load_files(&files, &c.device, &c.target(), show_progress).await;
            if loaded.is_ok() {
                model_in_use.set_value(String::new());
            }
            if !cancel.is_cancelled() {
                use_model(loaded, t0, String::new()).await;
            }
        });
    };
    // a folder picker where the browser has one (the attribute is not in leptos' vocabulary)
    let folder_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(input) = folder_input.get() {
            let _ = input.set_attribute("webkitdirectory", "");
        }
    });
    spawn_local(async move {
        let c = backend::detect(gpu_losses < session::MAX_GPU_LOSSES).await;
        backend.set(c.backend.to_string());
        adapter.set(match &c.adapter {
            Some(a) => format!(" ({}, {})", a.name, if a.software { "a software GPU: slow" } else { "GPU" }),
            None if gpu_losses >= session::MAX_GPU_LOSSES => {
                format!(" (the GPU was lost {gpu_losses} times in this tab: computing on the CPU)")
            }
            None => String::new(),
        });
        compute.set_value(Some(Rc::new(c)));
        load_model();
    });

    let clear_views = move || {
        views.update(|v| v.drain(..).for_each(|t| revoke(&t.url)));
    };

    let run_views = move |b: [f64; 4]| {
        let Some(p) = photo.get_untracked() else {
            status.set("error: open a photo first".into());
            return;
        };
        status.set("running".into());
        let id = run_id.get_value() + 1;
        run_id.set_value(id);
        let model = describer.get_value();
        let t0 = now_ms();
        let size = model.as_ref().map_or(ViewOptions::default().size, |d| d.manifest.config.image_size as u32);
        let opts = ViewOptions { num_views: num_views.get_untracked(), size };
        session::save(&session::Saved {
            model_url: model_in_use.get_value(),
            photo_name: photo_name.get_value(),
            region: Some(b),
            beams: beams.get_untracked(),
            threshold: threshold.get_untracked(),
            controls: controls.get_untracked(),
        });
        let built = build_views(&p.image, RegionBox(b), &opts);
        let t1 = now_ms();
        let shown = built.map_err(|e| e.to_string()).and_then(|v| {
            let json = serde_json::to_string(&v).map_err(|e| e.to_string())?;
            Ok((thumbs(&v)?, json, v))
        });
        let (t, json, built) = match shown {
            Ok(shown) => shown,
            Err(e) => return status.set(format!("error: {e}")),
        };
        clear_views();
        views.set(t);
        description.set(None);
        timing.set(format!("views in {:.0} ms", t1 - t0));
        let Some(model) = model else {
            result.set(json);
            status.set("done".into());
            return;
        };
        let controls = controls.get_untracked();
        let options = DescribeOptions {
            num_views: Some(opts.num_views),
            beams: beams.get_untracked(),
            max_new_tokens,
            controls: (!controls.trim().is_empty()).then_some(controls),
            tag_threshold: threshold.get_untracked().trim().parse().ok(),
            ..DescribeOptions::default()
        };
        spawn_local(async move {
            // A drag or a held arrow key makes boxes faster than they can be described: a box
            // waits a moment, and one replaced meanwhile is never started.
            model::sleep(SETTLE_MS).await;
            if run_id.get_value() != id {
                return;
            }
            // a newer box stops this description at its next stage
            let mut on_stage = |stage: crate::describe::Stage| {
                if run_id.get_value() != id {
                    return std::ops::ControlFlow::Break(());
                }
                stage_text.set(stage.to_string());
                std::ops::ControlFlow::Continue(())
            };
            let described = model.describe_views_watched(built, &options, &mut on_stage, &mut now_ms).await;
            if run_id.get_value() != id {
                return; // a newer box replaced this one
            }
            stage_text.set(String::new());
            match described {
                Ok((d, times)) => {
                    let times: serde_json::Map<String, serde_json::Value> =
                        times.into_iter().map(|(stage, ms)| (stage.to_string(), ms.into())).collect();
                    timings.set(serde_json::Value::Object(times).to_string());
                    result.set(serde_json::to_string(&d).unwrap_or_default());
                    timing.set(format!("views in {:.0} ms, described in {:.0} ms", t1 - t0, now_ms() - t1));
                    description.set(Some(d));
                    memory.set(wasm_memory_bytes().to_string());
                    status.set("done".into());
                }
                Err(e) => status.set(format!("error: {e}")),
            }
        });
    };

    let set_region = move |b: [f64; 4]| {
        region.set(Some(b));
        box_text.set(format_box(b));
    };

    // A photo's bytes from a file, a drop, a paste or an example.
    let open_photo = move |name: String, bytes: Result<Vec<u8>, String>| {
        let t0 = now_ms();
        let blob = bytes.as_ref().ok().and_then(|b| {
            let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(b.as_slice()));
            web_sys::Blob::new_with_u8_array_sequence(&parts).ok()
        });
        let decoded = bytes.and_then(|b| {
            let image = decode_photo(&b, DEFAULT_MAX_PIXELS).map_err(|e| e.to_string())?;
            spawn_local(session::save_photo(b));
            Ok(image)
        });
        timing.set(format!("photo decoded in {:.0} ms", now_ms() - t0));
        let url = blob.and_then(|b| web_sys::Url::create_object_url_with_blob(&b).ok()).ok_or(());
        {
            match (decoded, url) {
                (Ok(image), Ok(url)) => {
                    if let Some(old) = photo.get_untracked() {
                        revoke(&old.url);
                    }
                    clear_views();
                    region.set(None);
                    box_text.set(String::new());
                    result.set(String::new());
                    photo.set(Some(Photo { image: Arc::new(image), url }));
                    photo_name.set_value(name);
                    status.set("ready".into());
                }
                (Err(e), _) => status.set(format!("error: {name}: {e}")),
                (_, Err(_)) => status.set(format!("error: {name}: the browser cannot show this file")),
            }
        }
    };
    let open_file = move |file: web_sys::File| {
        status.set("running".into());
        spawn_local(async move { open_photo(file.name(), read_file(&file).await) });
    };
    let open_example = move |name: &'static str| {
        status.set("running".into());
        spawn_local(async move { open_photo(name.to_string(), model::fetch(&format!("examples/{name}")).await) });
    };
    let on_file = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = ev.target().unwrap().unchecked_into();
        if let Some(file) = input.files().and_then(|f| f.get(0)) {
            open_file(file);
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        if let Some(file) = ev.data_transfer().and_then(|d| d.files()).and_then(|f| f.get(0)) {
            open_file(file);
        }
    };
    let paste = window_event_listener(leptos::ev::paste, move |ev| {
        if let Some(file) = ev.clipboard_data().and_then(|d| d.files()).and_then(|f| f.get(0)) {
            ev.prevent_default();
            open_file(file);
        }
    });
    on_cleanup(move || paste.remove());

    let to_image = move |ev: &leptos::ev::PointerEvent| {
        let (el, p) = (stage.get_untracked()?, photo.get_untracked()?);
        Some(pointer_in_image(&el, &p.image, ev))
    };

    let on_down = move |ev: leptos::ev::PointerEvent| {
        let (Some(el), Some(p)) = (stage.get_untracked(), photo.get_untracked()) else { return };
        let (from, at) = drag_start(&ev, &el, &p.image, region.get_untracked());
        drag_from.set(Some(from));
        set_region(span(from, at));
    };
    let on_move = move |ev: leptos::ev::PointerEvent| {
        if let (Some(from), Some(at)) = (drag_from.get_untracked(), to_image(&ev)) {
            set_region(span(from, at));
        }
    };
    let on_up = move |ev: leptos::ev::PointerEvent| {
        let (Some(from), Some(at)) = (drag_from.get_untracked(), to_image(&ev)) else { return };
        drag_from.set(None);
        let b = span(from, at);
        set_region(b);
        if b[2] - b[0] > 0.0 && b[3] - b[1] > 0.0 {
            run_views(b);
        }
    };

    // Arrow keys move the box by a pixel (ten with Shift) and describe it again.
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let (Some(b), Some(p)) = (region.get_untracked(), photo.get_untracked()) else { return };
        let Some(moved) = nudge(b, &ev, &p.image) else { return };
        ev.prevent_default();
        set_region(moved);
        run_views(moved);
    };

    let on_box_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match box_text.get_untracked().parse::<RegionBox>() {
            Ok(b) => {
                region.set(Some(b.0));
                run_views(b.0);
            }
            Err(e) => status.set(format!("error: box: {e}")),
        }
    };

    // Once a model is in use after a recovery: the saved photo, options and box come back.
    Effect::new(move |_| {
        if status.get() != "ready" || describer.get_value().is_none() {
            return;
        }
        let Some(saved) = restore.try_update_value(Option::take).flatten() else { return };
        spawn_local(async move {
            let Some(bytes) = session::saved_photo().await else { return };
            beams.set(saved.beams);
            threshold.set(saved.threshold);
            controls.set(saved.controls);
            open_photo(saved.photo_name, Ok(bytes));
            if let Some(b) = saved.region {
                set_region(b);
                run_views(b);
            }
        });
    });

    let overlay_style = move || match (region.get(), photo.get()) {
        (Some(b), Some(p)) => overlay(b, &p.image),
        _ => "display:none".to_string(),
    };

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
        <section class="bar">
            <label class="file">
                "Open a photo "
                <input data-role="image-input" type="file" accept="image/*" on:change=on_file />
            </label>
            <form on:submit=on_box_submit>
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
                    <select
                        on:change=move |ev| num_views.set(event_target_value(&ev).parse().unwrap_or(3))
                        prop:disabled=move || model_views.get().is_some()
                        title=move || model_views.get().map(|n| format!("this model fuses {n} views per region"))
                    >
                        {(1..=5).map(|n| view! { <option value=n selected=move || num_views.get() == n>{n}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    " Beams "
                    <select class="beams" on:change=move |ev| beams.set(event_target_value(&ev).parse().unwrap_or(5))>
                        {(1..=5).map(|n| view! { <option value=n selected=move || beams.get() == n>{n}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    " Tag threshold "
                    <input
                        class="threshold"
                        type="number"
                        min="0"
                        max="1"
                        step="0.01"
                        placeholder="model's"
                        prop:value=move || threshold.get()
                        on:input=move |ev| threshold.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    " Steer with "
                    <input
                        class="controls"
                        type="text"
                        placeholder="words, e.g. red hat,|dog"
                        prop:value=move || controls.get()
                        on:input=move |ev| controls.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit">"Describe"</button>
            </form>
        </section>
        <section class="bar second">
            <span>
                "Try an example: "
                {["scene-1.jpg", "scene-2.jpg", "scene-3.jpg"]
                    .map(|n| view! { <button type="button" class="example" on:click=move |_| open_example(n)>{n}</button> })
                    .collect_view()}
            </span>
            <form on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                load_model();
            }>
                <label>
                    " Model "
                    <input
                        class="model-url"
                        type="text"
                        placeholder="URL of a converted bundle folder"
                        prop:value=move || model_url.get()
                        on:input=move |ev| model_url.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit">"Load model"</button>
                <label class="file">
                    " or a converted bundle folder on this computer "
                    <input class="model-files" type="file" multiple node_ref=folder_input on:change=load_local />
                </label>
            </form>
        </section>
        <p class="meta">
            "Status: " <span data-role="status">{move || status.get()}</span>
            " " <span data-role="progress">{move || stage_text.get()}</span>
            " · Compute: " <span data-role="backend">{move || backend.get()}</span>
            <span data-role="adapter">{move || adapter.get()}</span>
            " · Model: " <span data-role="model">{move || model_name.get()}</span>
            " · " <span class="loading">{move || loading.get()}</span>
            " · " <span class="timing">{move || timing.get()}</span>
        </p>
        <main>
            <div
                class="stage"
                data-role="stage"
                node_ref=stage
                on:pointerdown=on_down
                on:pointermove=on_move
                on:pointerup=on_up
                on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default()
                on:drop=on_drop
                on:keydown=on_key
                tabindex="0"
                aria-label="the photo: drag a box, or move it with the arrow keys"
            >
                {move || match photo.get() {
                    Some(p) => view! { <img src=p.url alt="your photo" draggable="false" /> }.into_any(),
                    None => view! { <p class="empty">"Open, drop or paste a photo, then drag a box around a region."</p> }.into_any(),
                }}
                <div class="region" style=overlay_style>
                    {["nw", "ne", "sw", "se"].map(|c| view! { <span class=format!("handle {c}")></span> })}
                </div>
            </div>
            <section class="views">
                <h2>"Views the model sees"</h2>
                <div class="thumbs">
                    {move || {
                        views
                            .get()
                            .into_iter()
                            .enumerate()
                            .map(|(i, t)| {
                                let [l, tp, w, h] = t.region_pct;
                                let label = if i == 0 { "region".to_string() } else { format!("context {:.0}%", t.ratio * 100.0) };
                                let size = format!("{}×{} px", t.crop_size[0], t.crop_size[1]);
                                view! {
                                    <figure data-role="view">
                                        <div class="thumb">
                                            <img src=t.url alt=label.clone() />
                                            <div class="region" style=format!("left:{l}%;top:{tp}%;width:{w}%;height:{h}%")></div>
                                        </div>
                                        <figcaption>{label} <span class="px">{size}</span></figcaption>
                                    </figure>
                                }
                            })
                            .collect_view()
                    }}
                </div>
                {move || description.get().map(results)}
            </section>
        </main>
        <pre data-role="result" hidden>{move || result.get()}</pre>
        <pre data-role="timings" hidden>{move || timings.get()}</pre>
        <pre data-role="memory" hidden>{move || memory.get()}</pre>
    }
}

/// The description: caption, tags, the strongest attributes as bars, the best classes.
fn results(d: Description) -> impl IntoView {
    let mut attributes = d.attributes.clone();
    attributes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut classes = d.classes.clone();
    classes.sort_by(|a, b| b.score.total_cmp(&a.score));
    view! {
        <section class="results">
            <p class="caption">
                <span data-role="caption">{d.caption.clone()}</span>
                <span class="score">{format!(" (score {:.2e})", d.caption_score)}</span>
            </p>
            <div class="columns">
                <div>
                    <h3>"Tags"</h3>
                    <ul data-role="tags">
                        {d.tags.iter().map(|t| view! { <li title=format!("{:.3}", t.score)>{t.name.clone()}</li> }).collect_view()}
                    </ul>
                    {d.tags.is_empty().then(|| view! { <p class="none">"none above the threshold"</p> })}
                </div>
                <div>
                    <h3>"Attributes"</h3>
                    <ol data-role="attributes">
                        {attributes
                            .into_iter()
                            .take(8)
                            .map(|a| {
                                let width = format!("width:{:.0}%", a.score.clamp(0.0, 1.0) * 100.0);
                                view! {
                                    <li>
                                        <span class="name">{a.name}</span>
                                        <span class="meter"><span style=width></span></span>
                                        <span class="value">{format!("{:.2}", a.score)}</span>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ol>
                </div>
                <div>
                    <h3>"Class"</h3>
                    <ol data-role="class">
                        {classes
                            .into_iter()
                            .take(5)
                            .map(|c| view! { <li>{format!("{} {:.2}", c.name, c.score)}</li> })
                            .collect_view()}
                    </ol>
                </div>
            </div>
        </section>
    }
}
