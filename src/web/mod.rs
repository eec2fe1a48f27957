//! The browser app (wasm only): a person opens a photo and draws boxes; the page shows DynRefer's
//! nested views of each region and describes the regions with the model bundle it loaded, all in
//! the page. The same stage, described the same way, runs in the `<dynrefer-describer>` widget.

mod backend;
mod browser;
mod export;
mod load;
mod page;
mod regions;
mod results;
mod session;
mod stage;
mod widget;

use wasm_bindgen::JsValue;

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
        None => {
            keep_offline();
            leptos::mount::mount_to_body(page::App)
        }
    }
}

/// Registers `sw.js`, which keeps the app for visits without a network (the model is kept by
/// the page itself); a browser without service workers just goes without.
fn keep_offline() {
    if let Some(window) = web_sys::window() {
        let container = window.navigator().service_worker();
        let registered = wasm_bindgen_futures::JsFuture::from(container.register("sw.js"));
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = registered.await {
                web_sys::console::warn_1(&format!("the page will not work offline: {e:?}").into());
            }
        });
    }
}
