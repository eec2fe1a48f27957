//! `<dynrefer-describer>` (DESIGN §4 "Widget"). `widget.js` defines the custom element and, for
//! each instance, hands its shadow root to [`mount`] through the hook `start` registers. All
//! instances on a page share one compute device and one load per model URL.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{LocalBoxFuture, Shared};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::{
    Photo, Thumb, backend, drag_start, model, now_ms, nudge, overlay, pointer_in_image, results, revoke, span, thumbs,
};
use crate::describe::{DescribeOptions, Describer};
use crate::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use crate::views::{RegionBox, ViewOptions, build_views};

const STYLE: &str = include_str!("widget.css");

type SharedModel = Shared<LocalBoxFuture<'static, Result<Rc<Describer>, String>>>;

thread_local! {
    static DEVICE: Shared<LocalBoxFuture<'static, Rc<backend::Compute>>> =
        async { Rc::new(backend::detect(true).await) }.boxed_local().shared();
    static MODELS: RefCell<HashMap<String, SharedModel>> = RefCell::new(HashMap::new());
}

/// The model at `url`, loaded once for the whole page; a failed load is tried again next time.
async fn shared_model(url: String) -> Result<Rc<Describer>, String> {
    let load = MODELS.with(|m| {
        let mut models = m.borrow_mut();
        let entry = models.entry(url.clone()).or_insert_with(|| {
            let url = url.clone();
            async move {
                let compute = DEVICE.with(Clone::clone).await;
                let never = model::Cancel::default();
                model::load(&url, &compute.device, &compute.target(), &never, |_| {})
                    .await
                    .map(|l| Rc::new(l.describer))
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

/// The element's attributes, read whenever one changes.
#[derive(Clone, Debug, PartialEq)]
struct Attrs {
    model: String,
    src: Option<String>,
    region: Option<String>,
    num_views: usize,
}

impl Attrs {
    fn read(host: &web_sys::HtmlElement, base: &str) -> Attrs {
        let get = |name: &str| host.get_attribute(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Attrs {
            model: model::folder_url(&get("model").unwrap_or_else(|| format!("{base}model/"))),
            src: get("src"),
            region: get("box"),
            num_views: get("num-views").and_then(|n| n.parse().ok()).unwrap_or(3),
        }
    }
}

fn emit(host: &web_sys::HtmlElement, name: &str, detail: &JsValue) {
    let init = web_sys::CustomEventInit::new();
    init.set_detail(detail);
    init.set_bubbles(true);
    init.set_composed(true);
    if let Ok(event) = web_sys::CustomEvent::new_with_event_init_dict(name, &init) {
        let _ = host.dispatch_event(&event);
    }
}

/// Registers `mount` on the hook object `widget.js` made (`globalThis.__dynreferWidget`).
pub fn register(hook: &JsValue) {
    let mount = Closure::<dyn Fn(web_sys::HtmlElement, web_sys::ShadowRoot, String) -> JsValue>::new(mount);
    let _ = js_sys::Reflect::set(hook, &"mount".into(), mount.as_ref());
    mount.forget();
}

/// Renders one widget into `root`; returns `{update, unmount}` for the element's callbacks.
fn mount(host: web_sys::HtmlElement, root: web_sys::ShadowRoot, base: String) -> JsValue {
    let document = web_sys::window().and_then(|w| w.document()).expect("a document");
    let style = document.create_element("style").expect("a style element");
    style.set_text_content(Some(STYLE));
    let container: web_sys::HtmlElement = document.create_element("div").expect("a div").unchecked_into();
    let _ = root.append_child(&style);
    let _ = root.append_child(&container);

    let attrs = RwSignal::new(Attrs::read(&host, &base));
    let widget_host = host.clone();
    let handle = leptos::mount::mount_to(container, move || view! { <Widget host=widget_host attrs=attrs /> });
    let handle = Rc::new(RefCell::new(Some(handle)));

    let update = Closure::<dyn Fn()>::new(move || attrs.set(Attrs::read(&host, &base)));
    let unmount = Closure::<dyn Fn()>::new(move || drop(handle.borrow_mut().take()));
    let callbacks = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&callbacks, &"update".into(), update.as_ref());
    let _ = js_sys::Reflect::set(&callbacks, &"unmount".into(), unmount.as_ref());
    update.forget();
    unmount.forget();
    callbacks.into()
}

#[component]
fn Widget(host: web_sys::HtmlElement, attrs: RwSignal<Attrs>) -> impl IntoView {
    let status = RwSignal::new("loading".to_string());
    let photo = RwSignal::new(None::<Photo>);
    let photo_src = StoredValue::new(None::<String>);
    let region = RwSignal::new(None::<[f64; 4]>);
    let views = RwSignal::new(Vec::<Thumb>::new());
    let description = RwSignal::new(None::<crate::describe::Description>);
    let describer = StoredValue::new_local(None::<Rc<Describer>>);
    let drag_from = RwSignal::new(None::<[f64; 2]>);
    let stage = NodeRef::<leptos::html::Div>::new();
    // Each run has a number; a run that a newer one has replaced neither shows nor emits.
    let run_id = StoredValue::new(0u64);
    let host = StoredValue::new_local(host);

    let fail = move |id: u64, message: String| {
        if run_id.get_value() != id {
            return;
        }
        status.set(format!("error: {message}"));
        let detail = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&detail, &"message".into(), &message.into());
        emit(&host.get_value(), "dynrefer-error", &detail);
    };

    let describe = move |id: u64, b: [f64; 4]| {
        let (Some(model), Some(p)) = (describer.get_value(), photo.get_untracked()) else { return };
        let num_views = attrs.get_untracked().num_views;
        let opts = ViewOptions { num_views, size: model.manifest().config.image_size as u32 };
        let built = match build_views(&p.image, RegionBox(b), &opts) {
            Ok(built) => built,
            Err(e) => return fail(id, format!("box: {e}")),
        };
        views.update(|v| v.drain(..).for_each(|t| revoke(&t.url)));
        views.set(thumbs(&built).unwrap_or_default());
        description.set(None);
        status.set("running".into());
        let options = DescribeOptions { num_views: Some(num_views), ..DescribeOptions::default() };
        spawn_local(async move {
            let t0 = now_ms();
            let described = model.describe_views_async(built, &options).await;
            if run_id.get_value() != id {
                return;
            }
            match described {
                Ok(d) => {
                    let json = serde_json::to_string(&d).unwrap_or_default();
                    status.set(format!("done in {:.0} ms", now_ms() - t0));
                    description.set(Some(d));
                    emit(&host.get_value(), "dynrefer-result", &js_sys::JSON::parse(&json).unwrap_or_default());
                }
                Err(e) => fail(id, e.to_string()),
            }
        });
    };

    // Any attribute change: the model (shared), the photo when `src` changed, then the box.
    Effect::new(move |_| {
        let a = attrs.get();
        let id = run_id.get_value() + 1;
        run_id.set_value(id);
        status.set("loading".into());
        spawn_local(async move {
            match shared_model(a.model.clone()).await {
                Ok(d) => describer.set_value(Some(d)),
                Err(e) => return fail(id, format!("the model did not load: {e}")),
            }
            if photo_src.get_value() != a.src {
                let Some(src) = a.src.clone() else {
                    return status.set("ready: set the src attribute to a photo".into());
                };
                let loaded = model::fetch(&src)
                    .await
                    .and_then(|b| decode_photo(&b, DEFAULT_MAX_PIXELS).map_err(|e| format!("{src}: {e}")));
                if run_id.get_value() != id {
                    return;
                }
                match loaded {
                    Ok(image) => {
                        photo.set(Some(Photo { image: Arc::new(image), url: src.clone() }));
                        photo_src.set_value(Some(src));
                    }
                    Err(e) => return fail(id, e),
                }
            }
            match a.region.as_deref().map(str::parse::<RegionBox>) {
                Some(Ok(b)) => {
                    region.set(Some(b.0));
                    describe(id, b.0);
                }
                Some(Err(e)) => fail(id, format!("box {:?}: {e}", a.region.unwrap_or_default())),
                None => status.set("ready: drag a box on the photo".into()),
            }
        });
    });

    let to_image = move |ev: &leptos::ev::PointerEvent| {
        let (el, p) = (stage.get_untracked()?, photo.get_untracked()?);
        Some(pointer_in_image(&el, &p.image, ev))
    };
    let on_down = move |ev: leptos::ev::PointerEvent| {
        let (Some(el), Some(p)) = (stage.get_untracked(), photo.get_untracked()) else { return };
        let (from, at) = drag_start(&ev, &el, &p.image, region.get_untracked());
        drag_from.set(Some(from));
        region.set(Some(span(from, at)));
    };
    let on_move = move |ev: leptos::ev::PointerEvent| {
        if let (Some(from), Some(at)) = (drag_from.get_untracked(), to_image(&ev)) {
            region.set(Some(span(from, at)));
        }
    };
    let on_up = move |ev: leptos::ev::PointerEvent| {
        let (Some(from), Some(at)) = (drag_from.get_untracked(), to_image(&ev)) else { return };
        drag_from.set(None);
        let b = span(from, at);
        region.set(Some(b));
        if b[2] > b[0] && b[3] > b[1] {
            let id = run_id.get_value() + 1;
            run_id.set_value(id);
            describe(id, b);
        }
    };
    // Arrow keys move the box by a pixel (ten with Shift) and describe it again.
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let (Some(b), Some(p)) = (region.get_untracked(), photo.get_untracked()) else { return };
        let Some(moved) = nudge(b, &ev, &p.image) else { return };
        ev.prevent_default();
        region.set(Some(moved));
        let id = run_id.get_value() + 1;
        run_id.set_value(id);
        describe(id, moved);
    };

    let overlay_style = move || match (region.get(), photo.get()) {
        (Some(b), Some(p)) => overlay(b, &p.image),
        _ => "display:none".to_string(),
    };

    view! {
        <div
            class="stage"
            node_ref=stage
            on:pointerdown=on_down
            on:pointermove=on_move
            on:pointerup=on_up
            on:keydown=on_key
            tabindex="0"
            aria-label="the photo: drag a box or a corner of it, or move it with the arrow keys"
        >
            {move || photo.get().map(|p| view! { <img src=p.url alt="the photo: drag a box" draggable="false" /> })}
            <div class="region" style=overlay_style>
                {["nw", "ne", "sw", "se"].map(|c| view! { <span class=format!("handle {c}")></span> })}
            </div>
        </div>
        <p class="status" part="status">{move || status.get()}</p>
        <div class="thumbs">
            {move || {
                views
                    .get()
                    .into_iter()
                    .map(|t| {
                        let [l, tp, w, h] = t.region_pct;
                        view! {
                            <figure>
                                <div class="thumb">
                                    <img src=t.url alt="a view of the region" />
                                    <div class="region" style=format!("left:{l}%;top:{tp}%;width:{w}%;height:{h}%")></div>
                                </div>
                                <figcaption>{format!("{:.0}%", t.ratio * 100.0)}</figcaption>
                            </figure>
                        }
                    })
                    .collect_view()
            }}
        </div>
        {move || description.get().map(results)}
    }
}
