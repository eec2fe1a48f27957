//! The built page (`dist/`, made by `trunk build --release`) in real headless Chromium: it loads,
//! picks a backend, takes a photo, and computes in wasm the same views as the native library,
//! both from a typed box and from a mouse drag. Run by `tools/test.sh` after the trunk build:
//! `cargo test --release --test web_page page_works -- --ignored`.

mod browser;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use browser::{Browser, StaticServer};
use dynrefer::photo::{DEFAULT_MAX_PIXELS, decode_photo};
use dynrefer::views::{RegionBox, ViewOptions, build_views};

fn dist() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist");
    assert!(d.join("index.html").exists(), "no dist/index.html: build the page first (tools/test.sh does)");
    d
}

fn page_flow(webgpu: bool) {
    let server = StaticServer::start(&dist());
    let browser = Browser::start(webgpu);
    browser.goto(&server.url("/"));
    browser.wait_status("the page to start", Duration::from_secs(60), |s| s == "ready" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("ready"));
    let backend = browser.role_text("backend").unwrap();
    assert_eq!(backend, if webgpu { "webgpu" } else { "cpu" });

    // A photo of the parity set, through the file input.
    let photo = common::photos().into_iter().find(|p| p.name == "field").unwrap();
    let path = std::env::temp_dir().join(format!("dynrefer-e2e-{}.png", server.port));
    std::fs::write(&path, &photo.png).unwrap();
    browser.upload("[data-role=image-input]", &path);
    browser.wait_status("the photo", Duration::from_secs(30), |s| s == "ready" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("ready"));

    // A typed box: the page's views equal the native library's, field for field.
    let image = decode_photo(&photo.png, DEFAULT_MAX_PIXELS).unwrap();
    let region = RegionBox([160.0, 120.5, 400.0, 300.25]);
    browser.type_into(".box-text", "160,120.5,400,300.25\n");
    browser.wait_status("views of the typed box", Duration::from_secs(30), |s| s == "done" || s.starts_with("error"));
    let native = build_views(&image, region, &ViewOptions::default()).unwrap();
    let page: serde_json::Value = serde_json::from_str(&browser.role_text("result").unwrap()).unwrap();
    assert_eq!(page, serde_json::to_value(&native).unwrap());
    let shown = browser.js("return document.querySelectorAll('[data-role=view]').length", serde_json::json!([]));
    assert_eq!(shown, 3);

    // A mouse drag over the stage, mapped from screen to image pixels.
    let rect = browser.js(
        "const r = document.querySelector('[data-role=stage]').getBoundingClientRect(); return [r.left, r.top, r.width, r.height];",
        serde_json::json!([]),
    );
    let r: Vec<f64> = rect.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let at = |x: f64, y: f64| [r[0] + x / 640.0 * r[2], r[1] + y / 480.0 * r[3]];
    browser.drag(at(320.0, 60.0), at(520.0, 260.0));
    browser.wait_status("views of the dragged box", Duration::from_secs(30), |s| s == "done" || s.starts_with("error"));
    let page: serde_json::Value = serde_json::from_str(&browser.role_text("result").unwrap()).unwrap();
    let view0 = &page["views"][0]["box"];
    let tol = 640.0 / r[2] + 1.0; // one screen pixel, plus truncation
    for (got, want) in view0.as_array().unwrap().iter().zip([320.0, 60.0, 520.0, 260.0]) {
        assert!((got.as_f64().unwrap() - want).abs() <= tol, "dragged box {view0}, wanted about [320, 60, 520, 260]");
    }
    if let Ok(shot) = std::env::var("DYNREFER_SCREENSHOT") {
        browser.screenshot(std::path::Path::new(&shot));
    }

    // Nothing but the page's own files was fetched: every resource the page loaded is ours.
    let loaded = browser.js("return performance.getEntriesByType('resource').map(e => e.name)", serde_json::json!([]));
    let origin = server.url("/");
    let foreign: Vec<&str> = loaded
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|u| !u.starts_with(&origin) && !u.starts_with("blob:"))
        .collect();
    assert!(foreign.is_empty(), "the page fetched {foreign:?}");
    let _ = std::fs::remove_file(path);
}

#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn page_works_on_the_cpu_backend() {
    page_flow(false);
}

#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn page_works_on_webgpu() {
    page_flow(true);
}

/// Not a test: times the views stage in the page on a large photo (`DYNREFER_BENCH_PHOTO`, box
/// `DYNREFER_BENCH_BOX`), on the CPU backend's page, and prints the page's timings.
#[test]
#[ignore = "benchmark"]
fn bench_views_in_the_page() {
    let (Ok(photo), Ok(region)) = (std::env::var("DYNREFER_BENCH_PHOTO"), std::env::var("DYNREFER_BENCH_BOX")) else {
        panic!("set DYNREFER_BENCH_PHOTO and DYNREFER_BENCH_BOX");
    };
    let server = StaticServer::start(&dist());
    let browser = Browser::start(false);
    browser.goto(&server.url("/"));
    browser.wait_status("the page to start", Duration::from_secs(60), |s| s == "ready");
    browser.upload("[data-role=image-input]", std::path::Path::new(&photo));
    browser.wait_status("the photo", Duration::from_secs(120), |s| s == "ready" || s.starts_with("error"));
    let timing = || browser.js("return document.querySelector('.timing').textContent", serde_json::json!([]));
    println!("{}", timing());
    for _ in 0..5 {
        browser.type_into(".box-text", &format!("{region}\n"));
        browser.wait_status("views", Duration::from_secs(120), |s| s == "done" || s.starts_with("error"));
        println!("{}", timing());
    }
}
