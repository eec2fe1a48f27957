//! The built page and widget (`dist/`, in headless Chromium) against what a person types and
//! where they are hosted: boxes past the photo and arrow keys at its edges, odd option values,
//! buttons pressed too early, a host that compresses its files, a plain-http host on the network
//! (not a secure context), a 100-megapixel photo saved as a picture, and a runtime that stops.
//! None of it may stop the page, and each says what went wrong. Run by `tools/test.sh` after the
//! trunk build: `cargo test --release --test web_robustness -- --ignored`.

mod browser;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use browser::{Browser, StaticServer, wait_event, widget_events};
use serde_json::{Value, json};

fn dist() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist");
    assert!(d.join("index.html").exists(), "no dist/index.html: build the page first (tools/test.sh does)");
    d
}

fn settled(s: &str) -> bool {
    s == "ready" || s == "done" || s.starts_with("error")
}

/// The first example photo is 672 × 868; its black square.
const SQUARE_BOX: &str = "310,380,532.2,571.4";

/// Where the app says it stopped (its panic hook).
const STOPPED: &str = "the app stopped";

fn open_page(browser: &Browser, url: &str) {
    browser.goto(url);
    let status = browser.wait_status("the page and its model", Duration::from_secs(120), settled);
    assert_eq!(status, "ready", "{url}");
}

fn open_example(browser: &Browser) {
    browser.js("document.querySelector('button.example').click()", json!([]));
    assert_eq!(browser.wait_status("the example photo", Duration::from_secs(30), settled), "ready");
}

/// Types a box into the box field and submits it; returns the status it ends in.
fn type_box(browser: &Browser, text: &str) -> String {
    browser.type_into(".box-text", &format!("{text}\n"));
    std::thread::sleep(Duration::from_millis(100));
    browser.wait_status(text, Duration::from_secs(120), settled)
}

fn text_of(browser: &Browser, css: &str) -> String {
    browser.js("return document.querySelector(arguments[0])?.textContent ?? ''", json!([css])).as_str().unwrap().into()
}

fn region_boxes(browser: &Browser) -> Vec<String> {
    let v =
        browser.js("return [...document.querySelectorAll('[data-role=region]')].map(r => r.dataset.box)", json!([]));
    v.as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_string()).collect()
}

/// Presses keys on the focused stage (WebDriver codes: Alt E00A, ← E012, → E014, NULL E000
/// releases the modifiers), then waits for the page to settle.
fn keys_on_stage(browser: &Browser, keys: &str) -> String {
    browser.js("document.querySelector('[data-role=stage]').focus()", json!([]));
    browser.send_keys("[data-role=stage]", keys);
    std::thread::sleep(Duration::from_millis(300));
    browser.wait_status(keys, Duration::from_secs(120), settled)
}

/// Boxes the photo does not hold are refused as they are typed; the arrow keys at the photo's
/// edges keep a box inside it (they once clamped with min > max, and the page stopped); an
/// invalid tag threshold, "Save" without a photo and "Load model" before the compute device is
/// known each say why; a view that cannot be shown says so.
#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn what_a_person_types_never_stops_the_page() {
    let server = StaticServer::start(&dist());
    let browser = Browser::start(false);
    // the compute device takes four seconds to be known, and thumbnails can be made to fail
    browser.before_each_page(
        "if (navigator.gpu) { const ask = navigator.gpu.requestAdapter.bind(navigator.gpu); \
           navigator.gpu.requestAdapter = (...a) => new Promise(r => setTimeout(() => r(ask(...a)), 4000)); } \
         const make = URL.createObjectURL; \
         URL.createObjectURL = (b) => { if (window.__failThumbs && b.type === 'image/png') throw new Error('no room for it'); return make(b); };",
    );
    browser.goto(&server.url("/"));
    browser.js_async(
        "for (let i = 0; i < 100 && !document.querySelector('.model-url'); i++) await new Promise(r => setTimeout(r, 50));",
        json!([]),
    );
    browser.type_into(".model-url", "model/\n");
    let loading = text_of(&browser, ".loading");
    assert!(loading.contains("the compute device is still being detected"), "{loading:?}");
    assert_eq!(browser.wait_status("the page and its model", Duration::from_secs(120), settled), "ready");

    browser.js("document.querySelector('[data-role=export-json]').click()", json!([]));
    assert_eq!(text_of(&browser, ".regions .notice"), "open a photo first: there is nothing to save");
    browser.js("document.querySelector('[data-role=export-png]').click()", json!([]));
    assert_eq!(text_of(&browser, ".regions .notice"), "open a photo first: there is nothing to save");
    assert_eq!(type_box(&browser, SQUARE_BOX), "error: open a photo first");

    open_example(&browser);
    let wide = type_box(&browser, "0,0,700,100");
    assert_eq!(
        wide,
        "error: box: box 0,0,700,100 is outside the 672x868 image: it needs 0 <= x1 < x2 <= 672 and 0 <= y1 < y2 <= 868"
    );
    assert!(region_boxes(&browser).is_empty(), "a refused box adds no region");
    assert!(type_box(&browser, "5,5,5,9").starts_with("error: box: box 5,5,5,9 has zero or negative area"));

    // A sliver half a pixel wide at the right edge: Alt+← and → leave it where it is.
    assert_eq!(type_box(&browser, "671.5,10,672,50"), "done");
    for keys in ["\u{E00A}\u{E012}\u{E000}", "\u{E014}", "\u{E00A}\u{E014}\u{E000}"] {
        let status = keys_on_stage(&browser, keys);
        assert!(!status.contains(STOPPED) && settled(&status), "{keys:?}: {status}");
        assert_eq!(region_boxes(&browser), ["671.5,10,672,50"], "{keys:?}");
    }
    // The whole photo's height, then a step down: it stays.
    assert_eq!(type_box(&browser, "0,0,672,868"), "done");
    let status = keys_on_stage(&browser, "\u{E015}");
    assert!(!status.contains(STOPPED), "{status}");
    assert_eq!(region_boxes(&browser), ["0,0,672,868"]);

    // The tag threshold must be a number from 0 to 1. The form will not submit with one out of
    // the field's range (the browser says so); a box made on the photo still asks for it.
    let threshold = |value: &str| {
        browser.js(
            "const t = document.querySelector('.threshold'); t.value = arguments[0]; \
             t.dispatchEvent(new Event('input', {bubbles: true})); return t.value;",
            json!([value]),
        )
    };
    for bad in ["2", "-1"] {
        assert_eq!(threshold(bad), bad);
        let status = keys_on_stage(&browser, "\u{E007}");
        assert!(status.starts_with("error: tag threshold: ") && status.contains("from 0 to 1"), "{bad}: {status}");
    }
    threshold("0.5");
    assert_eq!(type_box(&browser, SQUARE_BOX), "done");
    threshold("");

    // A view that cannot be made into an image says so where the views would be.
    browser.js("window.__failThumbs = true", json!([]));
    assert_eq!(type_box(&browser, "300,370,540,580"), "done");
    let views = text_of(&browser, "section.views");
    assert!(views.contains("the views could not be shown") && views.contains("no room for it"), "{views:?}");
    browser.js("window.__failThumbs = false", json!([]));
    assert_eq!(type_box(&browser, SQUARE_BOX), "done");
    assert_eq!(browser.role_text("caption").as_deref(), Some("a black square"));
}

/// A host that gzips its files (`Content-Encoding: gzip`, whose `Content-Length` counts the
/// compressed bytes): the page, its model and the widget load and describe.
#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn a_compressed_host_serves_the_page_and_the_model() {
    let server = StaticServer::start(&dist());
    for suffix in [".html", ".js", ".wasm", ".json", ".bpk", ".gz"] {
        server.gzip(suffix);
    }
    let browser = Browser::start(false);
    open_page(&browser, &server.url("/"));
    open_example(&browser);
    assert_eq!(type_box(&browser, SQUARE_BOX), "done");
    assert_eq!(browser.role_text("caption").as_deref(), Some("a black square"));
    let sent = server.sent_gzipped();
    for path in ["/model/manifest.json", "/model/tokenizer.json", "/model/weights-00000.bpk", "/dynrefer-web_bg.wasm"] {
        assert!(sent.iter().any(|p| p == path), "{path} went out compressed: {sent:?}");
    }

    browser.goto(&server.url("/embed.html"));
    wait_event(&browser, "both widgets' results", |e| {
        ["left", "right"].iter().all(|id| e.iter().any(|(ev, i, _)| ev == "dynrefer-result" && i == id))
    });
}

/// The site on a plain-http address of the network (`lan.test`, not a secure context): no
/// service worker, no Cache Storage, no clipboard, no WebGPU. The page opens, describes on the
/// CPU and says why "Copy result" is off; the widget describes too.
#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn a_plain_http_host_on_the_network_works_without_secure_features() {
    let server = StaticServer::start(&dist());
    let browser = Browser::start(true);
    open_page(&browser, &server.lan_url("/"));
    let withheld = browser.js(
        "return [isSecureContext, 'serviceWorker' in navigator, 'caches' in window, 'clipboard' in navigator, 'gpu' in navigator]",
        json!([]),
    );
    assert_eq!(withheld, json!([false, false, false, false, false]), "lan.test is not a secure context");
    assert_eq!(browser.role_text("backend").as_deref(), Some("cpu"));
    open_example(&browser);
    assert_eq!(type_box(&browser, SQUARE_BOX), "done");
    assert_eq!(browser.role_text("caption").as_deref(), Some("a black square"));
    let copy =
        browser.js("const b = document.querySelector('[data-role=copy]'); return [b.disabled, b.title]", json!([]));
    assert_eq!(copy, json!([true, "this browser gives no clipboard to this page (it needs https or localhost)"]));

    browser.goto(&server.lan_url("/embed.html"));
    wait_event(&browser, "both widgets' results", |e| {
        ["left", "right"].iter().all(|id| e.iter().any(|(ev, i, _)| ev == "dynrefer-result" && i == id))
    });
    assert!(widget_events(&browser).iter().all(|(e, ..)| e == "dynrefer-result"), "{:?}", widget_events(&browser));
}

/// A 10000 × 10000 photo (100 megapixels, the most the page opens) saved as a picture: drawn
/// scaled to 4096 × 4096, and the page's memory grows by far less than the photo's 400 MB of RGBA.
#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn a_hundred_megapixel_photo_is_saved_scaled() {
    let side = 10_000u32;
    let photo = image::RgbImage::from_fn(side, side, |x, y| {
        let inside = (4000..6000).contains(&x) && (4000..6000).contains(&y);
        if inside { image::Rgb([0, 0, 0]) } else { image::Rgb([240, 240, 240]) }
    });
    let dir = common::scratch_dir("web-robustness", "hundred-mp");
    let file = dir.join("huge.png");
    photo.save(&file).unwrap();
    drop(photo);

    let server = StaticServer::start(&dist());
    let browser = Browser::start(false);
    browser.before_each_page(
        "window.__saved = []; HTMLAnchorElement.prototype.click = function () { window.__saved.push([this.download, this.href]); };",
    );
    open_page(&browser, &server.url("/"));
    browser.upload("[data-role=image-input]", &file);
    assert_eq!(browser.wait_status("the photo", Duration::from_secs(120), settled), "ready");
    let before: u64 = browser.role_text("memory").unwrap().parse().unwrap();
    browser.js("document.querySelector('[data-role=export-png]').click()", json!([]));
    let picture = browser.js_async(
        "for (let i = 0; i < 600 && !window.__saved.length; i++) await new Promise(r => setTimeout(r, 100)); \
         const [n, h] = window.__saved.at(-1); const bitmap = await createImageBitmap(await (await fetch(h)).blob()); \
         return [n, bitmap.width, bitmap.height];",
        json!([]),
    );
    assert_eq!(picture, json!(["huge-regions.png", 4096, 4096]));
    assert_eq!(
        text_of(&browser, ".regions .notice"),
        "saved the photo with its boxes, scaled to 4096×4096 from 10000×10000"
    );
    let after: u64 = browser.role_text("memory").unwrap().parse().unwrap();
    eprintln!("wasm memory: {} MB after opening, {} MB after saving", before >> 20, after >> 20);
    assert!(after - before < 100 << 20, "saving grew the wasm memory by {} MB", (after - before) >> 20);
    let _ = std::fs::remove_dir_all(dir);
}

/// Widgets: a box past the photo, a `num-views` that is not a number, and a sliver at the edge
/// moved with the keys; and when the runtime stops all the same, every widget on the page says
/// so with `dynrefer-error`.
#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn widgets_report_bad_attributes_and_a_stopped_runtime() {
    let server =
        StaticServer::with_headers(&dist(), &["Content-Security-Policy: script-src 'self' 'wasm-unsafe-eval'"]);
    let browser = Browser::start(false);
    browser.goto(&server.url("/embed.html"));
    wait_event(&browser, "both widgets' results", |e| {
        ["left", "right"].iter().all(|id| e.iter().any(|(ev, i, _)| ev == "dynrefer-result" && i == id))
    });
    let error_of = |id: &str| {
        widget_events(&browser)
            .iter()
            .rev()
            .find(|(e, i, _)| e == "dynrefer-error" && i == id)
            .map(|(_, _, d)| d["message"].as_str().unwrap_or_default().to_string())
    };
    let clear_log = || browser.js("document.getElementById('log').textContent = ''", json!([]));

    // scene-2 is 552 × 1007
    clear_log();
    browser.js("document.getElementById('left').setAttribute('box', '0,0,700,100')", json!([]));
    wait_event(&browser, "the wide box's error", |e| e.iter().any(|(ev, i, _)| ev == "dynrefer-error" && i == "left"));
    let message = error_of("left").unwrap();
    assert!(message.contains("box 0,0,700,100 is outside the 552x1007 image"), "{message}");

    clear_log();
    browser.js("document.getElementById('right').setAttribute('num-views', 'three')", json!([]));
    wait_event(&browser, "num-views' error", |e| e.iter().any(|(ev, i, _)| ev == "dynrefer-error" && i == "right"));
    assert_eq!(error_of("right").unwrap(), "num-views: \"three\" is not a number");

    // A sliver at the right edge, then Alt+← on the widget's stage: no panic, no error.
    clear_log();
    browser.js("const w = document.getElementById('left'); w.setAttribute('box', '551.5,10,552,50');", json!([]));
    wait_event(&browser, "the sliver's result", |e| e.iter().any(|(ev, i, _)| ev == "dynrefer-result" && i == "left"));
    clear_log();
    browser.js(
        "const s = document.getElementById('left').shadowRoot.querySelector('.stage'); s.focus(); \
         for (const [key, altKey] of [['ArrowLeft', true], ['ArrowRight', false], ['ArrowRight', true]]) \
           s.dispatchEvent(new KeyboardEvent('keydown', {key, altKey, bubbles: true, composed: true}));",
        json!([]),
    );
    std::thread::sleep(Duration::from_secs(2));
    let status =
        browser.js("return document.getElementById('left').shadowRoot.querySelector('.status').textContent", json!([]));
    assert!(!status.as_str().unwrap().contains(STOPPED), "{status}");
    assert!(error_of("left").is_none(), "{:?}", widget_events(&browser));

    // The runtime stops (a test hook panics inside it): both widgets report it.
    clear_log();
    browser.js("try { window.__dynreferWidget.panicForTest(); } catch (e) { window.__trap = String(e); }", json!([]));
    wait_event(&browser, "both widgets' errors", |e| {
        ["left", "right"].iter().all(|id| e.iter().any(|(ev, i, _)| ev == "dynrefer-error" && i == id))
    });
    for id in ["left", "right"] {
        let message = error_of(id).unwrap();
        assert_eq!(message, "the app stopped (stopped by a test); reload the page", "{id}");
    }
    let status: Value = browser
        .js("return document.getElementById('right').shadowRoot.querySelector('.status').textContent", json!([]));
    assert_eq!(status, "error: the app stopped (stopped by a test); reload the page");
    // a widget added afterwards is told at once
    clear_log();
    browser.js(
        "const w = document.createElement('dynrefer-describer'); w.id = 'late'; w.setAttribute('src', 'examples/scene-2.jpg'); document.body.append(w);",
        json!([]),
    );
    wait_event(&browser, "the late widget's error", |e| {
        e.iter().any(|(ev, i, _)| ev == "dynrefer-error" && i == "late")
    });
}
