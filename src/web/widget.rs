//! `<dynrefer-describer>`, DynRefer on any page. `widget.js` defines the custom element and, for
//! each instance, hands its shadow root to [`mount`] through the hook `start` registers. All
//! instances on a page share one compute device and one load per model URL. Attributes: `model`
//! (a bundle folder URL; the built-in model next to `widget.js` by default), `src` (the photo),
//! `boxes="x1,y1,x2,y2;…"` (or one `box`) and `num-views`. Events, bubbling out of the shadow
//! root: `dynrefer-result`, whose detail lists every region's description as `dynrefer describe`
//! prints it, and `dynrefer-error` (detail `{message}`).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use leptos::prelude::*;
use serde::Serialize;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::export::as_printed;
use super::load;
use super::model_slot::shared_model;
use super::regions::{Job, Photo, Regions, Runs, Status, start_run};
use super::results::Results;
use super::stage::{Stage, ViewStrip};
use crate::describe::DescribeOptions;
use crate::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use crate::views::RegionBox;

const STYLE: &str = include_str!("widget.css");

/// The element's attributes, read whenever one changes.
#[derive(Clone, Debug, PartialEq)]
struct Attrs {
    model: String,
    src: Option<String>,
    /// `boxes`, or else `box`.
    boxes: Option<String>,
    /// The number, or the text that is not one.
    num_views: Result<usize, String>,
}

impl Attrs {
    fn read(host: &web_sys::HtmlElement, base: &str) -> Attrs {
        let get = |name: &str| host.get_attribute(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Attrs {
            model: load::folder_url(&get("model").unwrap_or_else(|| format!("{base}model/"))),
            src: get("src"),
            boxes: get("boxes").or_else(|| get("box")),
            num_views: get("num-views").map_or(Ok(3), |n| n.parse().map_err(|_| n)),
        }
    }
}

/// Dispatches event `name` from the element; a detail that cannot be made into a JS value is
/// reported as a `dynrefer-error` instead, so that a listener never waits for nothing.
fn emit(host: &web_sys::HtmlElement, name: &str, detail: &impl Serialize) {
    match as_printed(detail).serialize(&serde_wasm_bindgen::Serializer::json_compatible()) {
        Ok(detail) => dispatch(host, name, &detail),
        Err(e) => {
            let detail = js_sys::Object::new();
            let message = format!("the {name} event's detail could not be made: {e}");
            let _ = js_sys::Reflect::set(&detail, &"message".into(), &message.into());
            dispatch(host, "dynrefer-error", &detail);
        }
    }
}

fn dispatch(host: &web_sys::HtmlElement, name: &str, detail: &JsValue) {
    let init = web_sys::CustomEventInit::new();
    init.set_detail(detail);
    init.set_bubbles(true);
    init.set_composed(true);
    if let Ok(event) = web_sys::CustomEvent::new_with_event_init_dict(name, &init) {
        let _ = host.dispatch_event(&event);
    }
}

/// Registers `mount` on the hook object `widget.js` made (`globalThis.__dynreferWidget`), and
/// `panicForTest`, with which the tests stop the runtime as a bug would.
pub fn register(hook: &JsValue) {
    let mount = Closure::<dyn Fn(web_sys::HtmlElement, web_sys::ShadowRoot, String) -> JsValue>::new(mount);
    let _ = js_sys::Reflect::set(hook, &"mount".into(), mount.as_ref());
    mount.forget();
    let panic = Closure::<dyn Fn()>::new(|| panic!("stopped by a test"));
    let _ = js_sys::Reflect::set(hook, &"panicForTest".into(), panic.as_ref());
    panic.forget();
}

/// The runtime panicked: `widget.js`'s `stopped(message)` tells every widget on the page, which
/// report it as `dynrefer-error` (after this call returns, since nothing may run in the wasm now).
pub fn stopped(hook: &JsValue, message: &str) {
    if let Ok(stopped) = js_sys::Reflect::get(hook, &"stopped".into()).and_then(|f| f.dyn_into::<js_sys::Function>()) {
        let _ = stopped.call1(hook, &message.into());
    }
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
    let status = RwSignal::new(Status::Loading);
    let regions = Regions::new();
    let runs = Runs::new();
    let details = RwSignal::new(false);
    let host = StoredValue::new_local(host);
    // each attribute is followed on its own: a new box does not fetch the photo again
    let model_url = Memo::new(move |_| attrs.with(|a| a.model.clone()));
    let src = Memo::new(move |_| attrs.with(|a| a.src.clone()));
    let boxes = Memo::new(move |_| attrs.with(|a| a.boxes.clone()));
    let num_views = Memo::new(move |_| attrs.with(|a| a.num_views.clone()));
    let model = LocalResource::new(move || shared_model(model_url.get()));
    let photo = LocalResource::new(move || {
        let src = src.get();
        async move {
            let src = src?;
            let loaded = load::fetch(&src)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| decode_photo(&b, DEFAULT_MAX_PIXELS).map_err(|e| format!("{src}: {e}")));
            Some(loaded.map(|image| Photo { image: Arc::new(image), url: src.clone(), name: src }))
        }
    });
    let shown = Signal::derive(move || photo.get().flatten().and_then(Result::ok));

    let fail = move |message: String| {
        status.set(Status::Error(message.clone()));
        emit(&host.get_value(), "dynrefer-error", &serde_json::json!({ "message": message }));
    };

    // Describes the pending regions in one run; its result lists every region.
    let describe = move || {
        let (Some(Ok(model)), Some(p), Ok(num_views)) =
            (model.get_untracked(), shown.get_untracked(), num_views.get_untracked())
        else {
            return;
        };
        status.set(Status::Running);
        let job = Job {
            model: Some(model),
            options: DescribeOptions { num_views: Some(num_views), ..DescribeOptions::default() },
            num_views,
        };
        start_run(
            regions,
            runs,
            p.image,
            job,
            |_| {},
            move |run| {
                if let Some(why) = run.failed {
                    return fail(why);
                }
                status.set(Status::Done { ms: Some(run.ms) });
                let list: Vec<_> =
                    regions.list.with_untracked(|l| l.iter().filter_map(|r| r.description().cloned()).collect());
                emit(&host.get_value(), "dynrefer-result", &list);
            },
        );
    };

    // The model, the photo and the boxes: once all are there, the boxes are described.
    Effect::new(move |_| {
        let boxes = boxes.get();
        if let Err(n) = num_views.get() {
            return fail(format!("num-views: {n:?} is not a number"));
        }
        match model.get() {
            None => return status.set(Status::Loading),
            Some(Err(e)) => return fail(format!("the model did not load: {e}")),
            Some(Ok(_)) => {}
        }
        let (w, h) = match photo.get() {
            None => return status.set(Status::Loading),
            Some(None) => return status.set(Status::Ready { hint: Some("set the src attribute to a photo") }),
            Some(Some(Err(e))) => return fail(e),
            Some(Some(Ok(p))) => (p.image.width(), p.image.height()),
        };
        // a box the photo does not hold is refused here: the stage's keys expect boxes inside it
        let inside = |list: Vec<RegionBox>| -> Result<Vec<RegionBox>, String> {
            list.into_iter().map(|b| b.validate(w, h).map_err(|e| e.to_string())).collect()
        };
        match boxes.as_deref().map(|text| RegionBox::parse_list(text).and_then(inside)) {
            Some(Ok(list)) if !list.is_empty() => {
                regions.replace(&list);
                describe();
            }
            Some(Err(e)) => fail(e),
            _ => {
                regions.clear();
                status.set(Status::Ready { hint: Some("drag a box on the photo") });
            }
        }
    });

    view! {
        <Stage photo=shown regions on_edit=Callback::new(move |_| describe()) />
        <p class="status" part="status" role="status" aria-live="polite">{move || status.get().to_string()}</p>
        <ViewStrip regions />
        <div aria-live="polite">
            {move || {
                regions.current().and_then(|r| r.description().cloned()).map(|d| view! { <Results description=d details /> })
            }}
        </div>
    }
}
