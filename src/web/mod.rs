//! The browser app (wasm only): a person opens a photo and draws boxes; the page shows DynRefer's
//! nested views of each region and describes the regions with the model bundle it loaded, all in
//! the page. The same stage, described the same way, runs in the `<dynrefer-describer>` widget.

mod backend;
mod bars;
mod browser;
mod export;
mod hooks;
mod load;
mod model_slot;
mod page;
mod region_list;
mod regions;
mod results;
mod session;
mod state;
mod stage;
mod widget;

use wasm_bindgen::JsValue;

/// Mounts the app on the page's body; or, loaded by `widget.js` (which leaves its hook object in
/// `globalThis.__dynreferWidget`), lets it mount widgets instead.
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        // nothing runs after a panic (a lost GPU device ends that way too): say so where people,
        // and the pages that embed widgets, look
        let why = info.payload_as_str().unwrap_or("internal error");
        let message = format!("the app stopped ({why}); reload the page");
        match widget_hook() {
            Some(hook) => widget::stopped(&hook, &message),
            None => page::stopped(&message),
        }
    }));
    match widget_hook() {
        Some(hook) => widget::register(&hook),
        None => {
            keep_offline();
            leptos::mount::mount_to_body(page::App)
        }
    }
}

/// The hook object `widget.js` leaves in `globalThis.__dynreferWidget` when it loads the app.
fn widget_hook() -> Option<JsValue> {
    js_sys::Reflect::get(&js_sys::global(), &"__dynreferWidget".into()).ok().filter(JsValue::is_object)
}

/// Registers `sw.js`, which keeps the app for visits without a network (the model is kept by
/// the page itself); a browser without service workers, or a page that is not a secure context
/// (plain http from another machine), just goes without.
fn keep_offline() {
    if let Some(container) = browser::service_worker() {
        let registered = wasm_bindgen_futures::JsFuture::from(container.register("sw.js"));
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = registered.await {
                web_sys::console::warn_1(&format!("the page will not work offline: {e:?}").into());
            }
        });
    }
}
