//! What a person does with the built page (`dist/`, in headless Chromium), on both backends:
//! several regions drawn with the mouse, a finger and the keyboard, each described as the CLI
//! describes it; their own classes; the summary and the details; the exports; the page offline;
//! labels, announcements and contrast; a phone's screen. Run by `tools/test.sh` after the trunk
//! build: `cargo test --release --test web_features -- --ignored`.

mod browser;

use std::path::{Path, PathBuf};
use std::time::Duration;

use browser::{Browser, StaticServer, assert_same_description};
use serde_json::{Value, json};

fn dist() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist");
    assert!(d.join("index.html").exists(), "no dist/index.html: build the page first (tools/test.sh does)");
    d
}

fn settled(s: &str) -> bool {
    s == "ready" || s == "done" || s.starts_with("error")
}

fn wait_done(browser: &Browser, what: &str) {
    let status = browser.wait_status(what, Duration::from_secs(240), settled);
    assert_eq!(status, "done", "{what}");
}

/// The first example photo (672 × 868): a held-out scene of the built-in model's world.
const SCENE: &str = "scene-1.jpg";
const SCENE_SIZE: [f64; 2] = [672.0, 868.0];
/// Its black square.
const SQUARE: [f64; 4] = [310.0, 380.0, 532.2, 571.4];

fn open_scene(browser: &Browser, server: &StaticServer) {
    browser.goto(&server.url("/"));
    let status = browser.wait_status("the page and its model", Duration::from_secs(120), settled);
    assert_eq!(status, "ready");
    browser.js("document.querySelector('button.example').click()", json!([]));
    let status = browser.wait_status("the example photo", Duration::from_secs(30), settled);
    assert_eq!(status, "ready");
}

/// The stage's place on the screen, and a function from photo pixels to screen points.
fn stage_at(browser: &Browser) -> impl Fn(f64, f64) -> [f64; 2] {
    let r = browser.js(
        "const s = document.querySelector('[data-role=stage]'); s.scrollIntoView({block: 'start'}); \
         const r = s.getBoundingClientRect(); return [r.left, r.top, r.width, r.height];",
        json!([]),
    );
    let r: Vec<f64> = r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    move |x, y| [r[0] + x / SCENE_SIZE[0] * r[2], r[1] + y / SCENE_SIZE[1] * r[3]]
}

/// One screen pixel in photo pixels, plus the views' truncation to whole pixels: how close a
/// pointer's box can come.
fn one_screen_pixel(at: &impl Fn(f64, f64) -> [f64; 2]) -> f64 {
    SCENE_SIZE[0] / (at(SCENE_SIZE[0], 0.0)[0] - at(0.0, 0.0)[0]) + 1.0
}

fn result(browser: &Browser) -> Value {
    serde_json::from_str(&browser.role_text("result").unwrap()).unwrap()
}

fn view_box(d: &Value) -> Vec<f64> {
    d["views"][0]["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

fn near(got: &[f64], want: &[f64], tol: f64) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() <= tol)
}

fn native_describe(region: &[f64], extra: &[&str]) -> Value {
    let region = region.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dynrefer"))
        .args(["describe", "--model", dist().join("model").to_str().unwrap()])
        .args(["--image", dist().join("examples").join(SCENE).to_str().unwrap(), "--box", &region])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The exact box of the `i`-th region in the list, in photo pixels.
fn region_box(browser: &Browser, i: usize) -> Vec<f64> {
    let b = browser.js("return document.querySelectorAll('[data-role=region]')[arguments[0]].dataset.box", json!([i]));
    b.as_str().unwrap().split(',').map(|v| v.parse().unwrap()).collect()
}

fn texts(browser: &Browser, css: &str) -> Vec<String> {
    let v = browser.js("return [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim())", json!([css]));
    v.as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

fn regions_flow(webgpu: bool) {
    let backend = if webgpu { "webgpu" } else { "cpu" };
    let server = StaticServer::start(&dist());
    let browser = Browser::start(webgpu);
    open_scene(&browser, &server);

    // The keyboard alone: Enter starts a box in the middle, Alt+Shift+→ widens it by ten
    // pixels, Shift+↓ moves it down by ten.
    browser.js("document.querySelector('[data-role=stage]').focus()", json!([]));
    browser.send_keys("[data-role=stage]", "\u{E007}");
    wait_done(&browser, "the box made with Enter");
    assert_eq!(view_box(&result(&browser)), vec![224.0, 289.0, 448.0, 579.0]);
    browser.send_keys("[data-role=stage]", "\u{E008}\u{E00A}\u{E014}\u{E000}");
    browser.send_keys("[data-role=stage]", "\u{E008}\u{E015}\u{E000}");
    wait_done(&browser, "the resized and moved box");
    let keyboard = result(&browser);
    assert_eq!(view_box(&keyboard), vec![224.0, 299.0, 458.0, 589.0]);
    assert_same_description(&keyboard, &native_describe(&[224.0, 299.0, 458.0, 589.0], &[]));

    // A mouse drag adds region 2 (the black square), a finger region 3.
    let at = stage_at(&browser);
    browser.drag(at(SQUARE[0], SQUARE[1]), at(SQUARE[2], SQUARE[3]));
    wait_done(&browser, "the dragged box");
    let square = result(&browser);
    let tol = one_screen_pixel(&at);
    assert!(near(&view_box(&square), &SQUARE, tol), "{:?}", view_box(&square));
    assert_same_description(&square, &native_describe(&region_box(&browser, 1), &[]));
    assert_eq!(square["caption"], "a black square");
    let at = stage_at(&browser);
    browser.touch_drag(at(290.0, 140.0), at(380.0, 232.0));
    wait_done(&browser, "the box drawn with a finger");
    assert!(near(&view_box(&result(&browser)), &[290.0, 140.0, 380.0, 232.0], tol));
    assert_eq!(texts(&browser, "[data-role=region] .number"), ["1", "2", "3"]);
    assert_eq!(texts(&browser, "[data-role=stage] .region .number"), ["1", "2", "3"]);

    // Selecting region 2 shows its views and its result again.
    browser.js("document.querySelectorAll('[data-role=region] .pick')[1].click()", json!([]));
    assert_eq!(result(&browser)["caption_ids"], square["caption_ids"]);
    assert_eq!(browser.role_text("caption").unwrap(), "a black square");

    // The summary: the caption, the attributes above 1.2 × their mean, the best class; the
    // details: every tag, attribute and class.
    let attributes = square["attributes"].as_array().unwrap();
    let mean = attributes.iter().map(|a| a["score"].as_f64().unwrap()).sum::<f64>() / attributes.len() as f64;
    let mut standout: Vec<(f64, String)> = attributes
        .iter()
        .filter(|a| a["score"].as_f64().unwrap() > 1.2 * mean)
        .map(|a| (a["score"].as_f64().unwrap(), a["name"].as_str().unwrap().to_string()))
        .collect();
    standout.sort_by(|a, b| b.0.total_cmp(&a.0));
    let standout: Vec<String> = standout.into_iter().map(|(_, n)| n).collect();
    assert_eq!(texts(&browser, "[data-role=attributes] li"), standout);
    assert_eq!(texts(&browser, "[data-role=class] li").len(), 1);
    assert!(texts(&browser, "[data-role=class] li")[0].starts_with("square "));
    browser.js("document.querySelector('[data-role=details]').click()", json!([]));
    assert_eq!(texts(&browser, "[data-role=attributes] li").len(), attributes.len());
    assert_eq!(texts(&browser, "[data-role=class] li").len(), square["classes"].as_array().unwrap().len());
    let tags: Vec<&str> = square["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(texts(&browser, "[data-role=tags] li"), tags);
    browser.js("document.querySelector('[data-role=details]').click()", json!([]));

    // Their own classes: every region is scored against them, in one run, as the CLI scores them.
    browser.type_into("[data-role=custom-classes]", "circle, square, star\n");
    wait_done(&browser, "the regions with custom classes");
    let timings: Value = serde_json::from_str(&browser.role_text("timings").unwrap()).unwrap();
    assert_eq!(timings["regions"], 3, "the three regions were described in one run: {timings}");
    let custom = result(&browser);
    let names: Vec<&str> = custom["classes"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["circle", "square", "star"]);
    assert_same_description(&custom, &native_describe(&region_box(&browser, 1), &["--classes", "circle,square,star"]));
    assert!(texts(&browser, "[data-role=class] li")[0].starts_with("square "));
    if let Ok(shot) = std::env::var("DYNREFER_SCREENSHOT") {
        browser.js("document.querySelector('.meta').scrollIntoView({block: 'start'})", json!([]));
        browser.screenshot(Path::new(&shot));
    }

    // Exports: the regions as JSON, the photo with its boxes, one result on the clipboard.
    browser.js(
        "window.__saved = []; HTMLAnchorElement.prototype.click = function () { window.__saved.push([this.download, this.href]); }; \
         Object.defineProperty(navigator.clipboard, 'writeText', {value: async t => { window.__copied = t; }});",
        json!([]),
    );
    browser.js("document.querySelector('[data-role=export-json]').click()", json!([]));
    let saved = browser.js_async("const [n, h] = window.__saved.at(-1); return [n, await (await fetch(h)).text()];", json!([]));
    assert_eq!(saved[0], "scene-1-regions.json");
    let exported: Value = serde_json::from_str(saved[1].as_str().unwrap()).unwrap();
    assert_eq!(exported["photo"], json!({"name": SCENE, "width": 672, "height": 868}));
    let regions = exported["regions"].as_array().unwrap();
    assert_eq!(regions.iter().map(|r| r["number"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(regions[1]["caption_ids"], custom["caption_ids"]);
    assert_eq!(regions[1]["classes"], custom["classes"]);
    browser.js("document.querySelector('[data-role=export-png]').click()", json!([]));
    let picture = browser.js_async(
        "const [n, h] = window.__saved.at(-1); const bitmap = await createImageBitmap(await (await fetch(h)).blob()); \
         const c = new OffscreenCanvas(bitmap.width, bitmap.height); const g = c.getContext('2d'); g.drawImage(bitmap, 0, 0); \
         return [n, bitmap.width, bitmap.height, [...g.getImageData(arguments[0], arguments[1], 1, 1).data]];",
        json!([SQUARE[0].round(), ((SQUARE[1] + SQUARE[3]) / 2.0).round()]),
    );
    assert_eq!(picture[0], "scene-1-regions.png");
    assert_eq!((picture[1].as_u64(), picture[2].as_u64()), (Some(672), Some(868)));
    let px: Vec<u64> = picture[3].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(px[0] > 200 && (80..140).contains(&px[1]) && px[2] < 90, "the square's left edge is drawn orange: {px:?}");
    browser.js("document.querySelector('[data-role=copy]').click()", json!([]));
    let copied = browser.js_async(
        "for (let i = 0; i < 50 && !window.__copied; i++) await new Promise(r => setTimeout(r, 100)); return window.__copied;",
        json!([]),
    );
    assert!(copied.as_str().unwrap().starts_with("region 2: a black square\nclass: square"), "{copied}");

    // Delete one, then clear all.
    browser.js("document.querySelectorAll('[data-role=region] .delete')[0].click()", json!([]));
    assert_eq!(texts(&browser, "[data-role=region] .number"), ["2", "3"]);
    browser.js("document.querySelector('[data-role=clear]').click()", json!([]));
    assert!(texts(&browser, "[data-role=region]").is_empty());
    assert!(texts(&browser, "[data-role=stage] .region").is_empty());

    // For everyone: announced status and results, labelled controls, WCAG AA contrast.
    let live = browser.js(
        "return [document.querySelector('[data-role=status]').getAttribute('aria-live'), \
                 document.querySelector('[data-role=regions]').getAttribute('aria-live')]",
        json!([]),
    );
    assert_eq!(live, json!(["polite", "polite"]));
    let unlabelled = browser.js(
        "return [...document.querySelectorAll('input, select, button, [tabindex]')].filter(e => \
           !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map(e => e.outerHTML)",
        json!([]),
    );
    assert_eq!(unlabelled, json!([]), "controls without a label");
    let low = browser.js(CONTRAST, json!([]));
    assert_eq!(low, json!([]), "text below WCAG AA contrast");
    eprintln!("[{backend}] regions, classes, summary, exports and accessibility checked");
}

/// Every visible text's contrast with what is behind it, where below WCAG AA (4.5:1, or 3:1 for
/// large text): `[text, ratio]`.
const CONTRAST: &str = "
const rgb = c => c.match(/[\\d.]+/g).map(Number);
const lum = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const behind = e => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length < 4 || c[3] > 0.5) return c.slice(0, 3); } return [255, 255, 255]; };
const low = [];
for (const e of document.querySelectorAll('body *')) {
  const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  const s = getComputedStyle(e);
  if (!own || !e.getClientRects().length || s.visibility === 'hidden' || e.closest('[hidden]')) continue;
  const [a, b] = [lum(rgb(s.color).slice(0, 3)), lum(behind(e))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
  const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
  if (ratio < need) low.push([e.textContent.trim().slice(0, 40), Math.round(ratio * 100) / 100]);
}
return low;";

#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn regions_classes_exports_and_access_on_the_cpu_backend() {
    regions_flow(false);
}

#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn regions_classes_exports_and_access_on_webgpu() {
    regions_flow(true);
}

/// After one visit the page opens and describes with the network off: the app from the service
/// worker's copy of this build, the model from Cache Storage. Then a new build is deployed.
fn offline(webgpu: bool) {
    let server = StaticServer::start(&dist());
    let browser = Browser::start(webgpu);
    open_scene(&browser, &server);
    let controlled = browser.js_async(
        "await navigator.serviceWorker.ready; for (let i = 0; i < 100 && !navigator.serviceWorker.controller; i++) \
           await new Promise(r => setTimeout(r, 100)); return !!navigator.serviceWorker.controller;",
        json!([]),
    );
    assert_eq!(controlled, true, "the service worker controls the page");
    let shells = browser.js_async("return (await caches.keys()).filter(k => k.startsWith('dynrefer-shell-'));", json!([]));
    let shells = shells.as_array().unwrap();
    assert_eq!(shells.len(), 1, "one version of the app is kept: {shells:?}");
    let version = shells[0].as_str().unwrap().trim_start_matches("dynrefer-shell-");
    assert!(version.len() == 16 && version.chars().all(|c| c.is_ascii_hexdigit()), "named after the build: {version}");

    server.set_offline(true);
    open_scene(&browser, &server);
    browser.type_into(".box-text", &format!("{}\n", SQUARE.map(|v| v.to_string()).join(",")));
    wait_done(&browser, "the square, offline");
    assert_eq!(result(&browser)["caption"], "a black square");
    // the app came from the copy of this very build
    let served = browser.js_async(
        "const c = await caches.open((await caches.keys()).find(k => k.startsWith('dynrefer-shell-'))); \
         return (await (await c.match('dynrefer-web_bg.wasm')).arrayBuffer()).byteLength;",
        json!([]),
    );
    assert_eq!(served.as_u64(), Some(std::fs::metadata(dist().join("dynrefer-web_bg.wasm")).unwrap().len()));

    // A new build is deployed while the page is open: it installs beside the old one, the open
    // page and its reloads keep the old glue with the old wasm, and once no page of the old
    // version is open the new one serves both, and the old copy is gone.
    server.set_offline(false);
    let sw = std::fs::read_to_string(dist().join("sw.js")).unwrap().replace(version, "feedfacefeedface");
    server.replace("/sw.js", sw.into_bytes());
    let old_glue = std::fs::read(dist().join("dynrefer-web.js")).unwrap();
    let glue = [old_glue.as_slice(), b"\n// the next build\n"].concat();
    // the page names its glue by hash (subresource integrity): the new page names the new glue
    let sri = |bytes: &[u8]| {
        use sha2::Digest;
        format!("sha384-{}", browser::base64_encode(&sha2::Sha384::digest(bytes)))
    };
    let html = std::fs::read_to_string(dist().join("index.html")).unwrap();
    assert!(html.contains(&sri(&old_glue)), "index.html names its glue by its SHA-384");
    let html = html.replace(&sri(&old_glue), &sri(&glue));
    server.replace("/", html.clone().into_bytes());
    server.replace("/index.html", html.into_bytes());
    server.replace("/dynrefer-web.js", glue);
    let waiting = browser.js_async(
        "const r = await navigator.serviceWorker.getRegistration(); await r.update(); \
         for (let i = 0; i < 100 && !r.waiting; i++) await new Promise(d => setTimeout(d, 100)); return !!r.waiting;",
        json!([]),
    );
    assert_eq!(waiting, true, "the new build installs and waits");
    let glue_in_use = "return (await (await fetch('dynrefer-web.js')).text()).includes('the next build');";
    open_scene(&browser, &server);
    assert_eq!(browser.js_async(glue_in_use, json!([])), false, "a reload keeps the old build whole");
    browser.goto("about:blank");
    let t0 = std::time::Instant::now();
    loop {
        open_scene(&browser, &server);
        let shells = browser.js_async("return (await caches.keys()).filter(k => k.startsWith('dynrefer-shell-'));", json!([]));
        if shells == json!(["dynrefer-shell-feedfacefeedface"]) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the new build did not take over: {shells}");
        browser.goto("about:blank");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(browser.js_async(glue_in_use, json!([])), true, "the new build serves its own glue");
    browser.type_into(".box-text", &format!("{}\n", SQUARE.map(|v| v.to_string()).join(",")));
    wait_done(&browser, "the square, after the update");
    assert_eq!(result(&browser)["caption"], "a black square");
}

#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn works_offline_after_one_visit_on_the_cpu_backend() {
    offline(false);
}

#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn works_offline_after_one_visit_on_webgpu() {
    offline(true);
}

/// On a phone (375 CSS pixels wide, touch): nothing is wider than the screen, and a finger draws
/// a box that is described. The screenshot is kept in cargo's `target/tmp/phone-{backend}.png`.
fn phone(webgpu: bool) {
    let backend = if webgpu { "webgpu" } else { "cpu" };
    let server = StaticServer::start(&dist());
    let browser = Browser::start_phone(webgpu);
    open_scene(&browser, &server);
    let at = stage_at(&browser);
    browser.touch_drag(at(SQUARE[0], SQUARE[1]), at(SQUARE[2], SQUARE[3]));
    wait_done(&browser, "the box drawn with a finger");
    let d = result(&browser);
    let tol = one_screen_pixel(&at);
    assert!(near(&view_box(&d), &SQUARE, tol), "{:?}", view_box(&d));
    assert_eq!(d["caption"], "a black square");
    let wide = browser.js(
        "return [document.documentElement.scrollWidth, innerWidth, \
                 [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1).map(e => e.outerHTML.slice(0, 80))]",
        json!([]),
    );
    assert_eq!(wide[1], 375);
    assert_eq!(wide[0], 375, "the page scrolls sideways: {}", wide[2]);
    assert_eq!(wide[2], json!([]));
    browser.js("document.querySelector('[data-role=stage]').scrollIntoView({block: 'start'})", json!([]));
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("phone-{backend}.png"));
    browser.screenshot(&shot);
    let png = image::open(&shot).unwrap();
    assert_eq!((png.width(), png.height()), (750, 1624), "a 375 × 812 screen at twice the density");
    // the box is drawn where the finger went: the square's top edge is orange on the screen
    let edge = browser.js(
        "const r = document.querySelector('[data-role=stage] .region').getBoundingClientRect(); return [r.left + r.width / 2, r.top + 1];",
        json!([]),
    );
    let (x, y) = (edge[0].as_f64().unwrap() * 2.0, edge[1].as_f64().unwrap() * 2.0);
    let px = png.to_rgb8().get_pixel(x as u32, y as u32).0;
    assert!(px[0] > 200 && (80..150).contains(&px[1]) && px[2] < 110, "box edge at ({x}, {y}) is {px:?}");
}

#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn a_phone_screen_and_a_finger_on_the_cpu_backend() {
    phone(false);
}

#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn a_phone_screen_and_a_finger_on_webgpu() {
    phone(true);
}
