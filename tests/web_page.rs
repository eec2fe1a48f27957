//! The built page (`dist/`, made by `trunk build --release`) in real headless Chromium: it loads
//! its built-in model, picks a backend, takes a photo, and describes a typed box with the same
//! views, tags, scores and caption ids as the native CLI on the same bundle, then a mouse-dragged
//! box. Run by `tools/test.sh` after the trunk build:
//! `cargo test --release --test web_page page_works -- --ignored`.

mod browser;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use browser::{
    Browser, StaticServer, assert_close_description, assert_same_description, same_numbers, wait_event, widget_events,
};

fn dist() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist");
    assert!(d.join("index.html").exists(), "no dist/index.html: build the page first (tools/test.sh does)");
    d
}

fn page_flow(webgpu: bool) {
    let server = StaticServer::start(&dist());
    let browser = Browser::start(webgpu);
    let t0 = std::time::Instant::now();
    browser.goto(&server.url("/"));
    browser.wait_status("the page and its model", Duration::from_secs(120), |s| s == "ready" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("ready"));
    let text =
        |css: &str| browser.js(&format!("return document.querySelector('{css}').textContent"), serde_json::json!([]));
    eprintln!(
        "[{}] interactive with the model after {} ms: {}",
        if webgpu { "webgpu" } else { "cpu" },
        t0.elapsed().as_millis(),
        text(".loading")
    );
    let backend = browser.role_text("backend").unwrap();
    assert_eq!(backend, if webgpu { "webgpu" } else { "cpu" });
    let model = browser.role_text("model").unwrap();
    assert!(model.contains("trained on generated scenes"), "the built-in model is named honestly: {model}");

    // A photo of the parity set, through the file input.
    let photo = common::photos().into_iter().find(|p| p.name == "field").unwrap();
    let path = std::env::temp_dir().join(format!("dynrefer-e2e-{}.png", server.port));
    std::fs::write(&path, &photo.png).unwrap();
    browser.upload("[data-role=image-input]", &path);
    browser.wait_status("the photo", Duration::from_secs(30), |s| s == "ready" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("ready"));

    // A typed box: the page's description equals the native CLI's on the same bundle.
    browser.type_into(".box-text", "160,120.5,400,300.25\n");
    browser.wait_status("the typed box described", Duration::from_secs(180), |s| s == "done" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("done"));
    let page: serde_json::Value = serde_json::from_str(&browser.role_text("result").unwrap()).unwrap();
    let native = native_describe(&path, "160,120.5,400,300.25");
    assert_same_description(&page, &native);
    eprintln!("[{}] {}", if webgpu { "webgpu" } else { "cpu" }, text(".timing"));
    let shown = browser.js("return document.querySelectorAll('[data-role=view]').length", serde_json::json!([]));
    assert_eq!(shown, 3);
    assert_eq!(browser.role_text("caption").unwrap(), native["caption"].as_str().unwrap());
    // The summary names the best class; the details list every class, best first.
    let classes = || {
        browser.js(
            "return [...document.querySelectorAll('[data-role=class] li')].map(l => l.textContent)",
            serde_json::json!([]),
        )
    };
    let best = native["classes"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| a["score"].as_f64().unwrap().total_cmp(&b["score"].as_f64().unwrap()))
        .unwrap();
    let shown = classes();
    assert_eq!(shown.as_array().unwrap().len(), 1, "{shown}");
    assert!(shown[0].as_str().unwrap().starts_with(best["name"].as_str().unwrap()), "{shown} best {best}");
    browser.js("document.querySelector('[data-role=details]').click()", serde_json::json!([]));
    assert_eq!(classes().as_array().unwrap().len(), native["classes"].as_array().unwrap().len());
    browser.js("document.querySelector('[data-role=details]').click()", serde_json::json!([]));

    // A mouse drag over the stage, mapped from screen to image pixels.
    let rect = browser.js(
        "const r = document.querySelector('[data-role=stage]').getBoundingClientRect(); return [r.left, r.top, r.width, r.height];",
        serde_json::json!([]),
    );
    let r: Vec<f64> = rect.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let at = |x: f64, y: f64| [r[0] + x / 640.0 * r[2], r[1] + y / 480.0 * r[3]];
    browser.drag(at(320.0, 60.0), at(520.0, 260.0));
    browser
        .wait_status("the dragged box described", Duration::from_secs(180), |s| s == "done" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("done"));
    let page: serde_json::Value = serde_json::from_str(&browser.role_text("result").unwrap()).unwrap();
    let view0 = &page["views"][0]["box"];
    let tol = 640.0 / r[2] + 1.0; // one screen pixel, plus truncation
    for (got, want) in view0.as_array().unwrap().iter().zip([320.0, 60.0, 520.0, 260.0]) {
        assert!((got.as_f64().unwrap() - want).abs() <= tol, "dragged box {view0}, wanted about [320, 60, 520, 260]");
    }
    // Shift + arrow right moves the box by ten image pixels and describes it again.
    let before: Vec<f64> = view0.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    browser.send_keys("[data-role=stage]", "\u{E008}\u{E014}\u{E000}");
    browser
        .wait_status("the nudged box described", Duration::from_secs(180), |s| s == "done" || s.starts_with("error"));
    eprintln!("[{}] again: {}", if webgpu { "webgpu" } else { "cpu" }, text(".timing"));
    let page: serde_json::Value = serde_json::from_str(&browser.role_text("result").unwrap()).unwrap();
    let after: Vec<f64> = page["views"][0]["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(
        (after[0] - before[0] - 10.0).abs() <= 1.0 && (after[1] - before[1]).abs() <= 1.0,
        "{before:?} -> {after:?}"
    );
    // Dragging the bottom-right handle moves that corner and keeps the top-left one.
    let rect = browser.js(
        "const s = document.querySelector('[data-role=stage]'); s.scrollIntoView({block: 'center'}); \
         const r = s.getBoundingClientRect(); return [r.left, r.top, r.width, r.height];",
        serde_json::json!([]),
    );
    let r: Vec<f64> = rect.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let at = |x: f64, y: f64| [r[0] + x / 640.0 * r[2], r[1] + y / 480.0 * r[3]];
    browser.drag(at(after[2], after[3]), at(600.0, 400.0));
    browser
        .wait_status("the resized box described", Duration::from_secs(180), |s| s == "done" || s.starts_with("error"));
    let page: serde_json::Value = serde_json::from_str(&browser.role_text("result").unwrap()).unwrap();
    let resized: Vec<f64> = page["views"][0]["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (got, want) in resized.iter().zip([after[0], after[1], 600.0, 400.0]) {
        assert!((got - want).abs() <= tol, "resized {resized:?}, wanted about [{}, {}, 600, 400]", after[0], after[1]);
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
    let fetched = |name: &str| loaded.as_array().unwrap().iter().any(|v| v.as_str().unwrap_or_default().contains(name));
    assert!(fetched("weights-00000."), "the first visit downloads the shards");

    // A reload takes the model from the browser's cache: only the manifest comes from the server.
    browser.goto(&server.url("/"));
    browser.wait_status("the page to reload", Duration::from_secs(120), |s| s == "ready" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("ready"));
    let loaded = browser.js("return performance.getEntriesByType('resource').map(e => e.name)", serde_json::json!([]));
    let again: Vec<&str> = loaded
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|u| u.contains("weights-") || u.contains("tokenizer.json"))
        .collect();
    assert!(again.is_empty(), "the reload downloaded {again:?} again");

    // A bad model URL gives a clear error and keeps the model in use; an example photo describes.
    browser.type_into(".model-url", "missing-model/\n");
    browser.wait_status("the bad model URL", Duration::from_secs(60), |s| s.starts_with("error"));
    let error = browser.role_text("status").unwrap();
    assert!(error.contains("missing-model/manifest.json") && error.contains("404"), "{error}");
    assert!(browser.role_text("model").unwrap().contains("trained on generated scenes"));
    browser.js("document.querySelector('button.example').click()", serde_json::json!([]));
    browser.wait_status("the example photo", Duration::from_secs(30), |s| s == "ready" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("ready"));
    browser.type_into(".box-text", "310,380,532.2,571.4\n");
    browser.wait_status("a box on the example", Duration::from_secs(180), |s| s == "done" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("done"));
    // The first example is a held-out scene of the built-in model's world: the box is its black
    // square (`dynrefer scenes --count 1 --seed 2026`), which the page must name as the CLI does.
    let page: serde_json::Value = serde_json::from_str(&browser.role_text("result").unwrap()).unwrap();
    assert_same_description(&page, &native_describe(&dist().join("examples/scene-1.jpg"), "310,380,532.2,571.4"));
    assert_eq!(page["caption"], "a black square");
    let best = page["classes"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| a["score"].as_f64().unwrap().total_cmp(&b["score"].as_f64().unwrap()))
        .unwrap();
    assert_eq!(best["name"], "square", "classes {}", page["classes"]);
    if let Ok(shot) = std::env::var("DYNREFER_SCREENSHOT") {
        browser.screenshot(std::path::Path::new(&shot));
    }

    // A q4 bundle (burnpack shards, 4-bit block-quantized matmuls) answers as the CLI does on it.
    let q4 = q4_bundle();
    browser.type_into(".model-url", "model-q4/\n");
    browser.wait_status("the q4 model", Duration::from_secs(120), |s| s == "ready" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("ready"));
    browser.type_into(".box-text", "310,380,532.2,571.4\n");
    browser.wait_status("a box with the q4 model", Duration::from_secs(180), |s| s == "done" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("done"));
    let page: serde_json::Value = serde_json::from_str(&browser.role_text("result").unwrap()).unwrap();
    assert_same_description(
        &page,
        &native_describe_with(q4, &dist().join("examples/scene-1.jpg"), "310,380,532.2,571.4", 3),
    );

    // The same bundle from a folder on this computer.
    browser.upload(".model-files", q4);
    browser.wait_status("the local bundle", Duration::from_secs(120), |s| s == "ready" || s.starts_with("error"));
    assert_eq!(browser.role_text("status").as_deref(), Some("ready"));
    browser.type_into(".box-text", "310,380,532.2,571.4\n");
    browser
        .wait_status("a box with the local model", Duration::from_secs(180), |s| s == "done" || s.starts_with("error"));
    let local: serde_json::Value = serde_json::from_str(&browser.role_text("result").unwrap()).unwrap();
    assert_eq!(local["caption_ids"], page["caption_ids"]);
    let _ = std::fs::remove_file(path);
}

/// The built-in model's files converted to a q4 bundle in `dist/model-q4`, once per run.
fn q4_bundle() -> &'static std::path::Path {
    static Q4: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    Q4.get_or_init(|| {
        let out = dist().join("model-q4");
        let _ = std::fs::remove_dir_all(&out);
        let args = common::convert_args(&common::e2e_file(""), "q4", &out);
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_dynrefer")).args(&args).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        out
    })
}

/// The native CLI's description with the page's defaults, on the bundle the page loaded.
fn native_describe(image: &std::path::Path, region: &str) -> serde_json::Value {
    native_describe_views(image, region, 3)
}

fn native_describe_views(image: &std::path::Path, region: &str, views: usize) -> serde_json::Value {
    native_describe_with(&dist().join("model"), image, region, views)
}

fn native_describe_with(
    model: &std::path::Path,
    image: &std::path::Path,
    region: &str,
    views: usize,
) -> serde_json::Value {
    native_describe_args(model, image, region, &["--num-views", &views.to_string()])
}

/// The CLI's description of `region` with `args` besides the model, the photo and the box.
fn native_describe_args(
    model: &std::path::Path,
    image: &std::path::Path,
    region: &str,
    args: &[&str],
) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dynrefer"))
        .args(["describe", "--model", model.to_str().unwrap(), "--image", image.to_str().unwrap(), "--box", region])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
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

/// Models that cannot run are refused before their download, each with a message that says why:
/// the real model at q8 on the CPU fallback (5.0 GB for its weights), an f16 bundle of it on WebGPU
/// (widened to f32 on the GPU), and a tensor larger than the adapter's storage-binding limit
/// (lowered through the page's test hook `?gpu-max-binding=`). The manifests are the real model's
/// as converting it would write them; no shard exists, and none is asked for.
#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn models_that_cannot_run_are_refused_before_download() {
    use dynrefer::bundle::Quant;
    use dynrefer::convert::write::projected_manifest;
    for (quant, folder) in [(Quant::Q8, "full-q8"), (Quant::F16, "full-f16")] {
        let dir = dist().join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = projected_manifest(&common::real_config(), quant, "DynRefer-FlanT5-XL");
        std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    }
    let server = StaticServer::start(&dist());
    let shards_fetched = |browser: &Browser| {
        browser.js(
            "return performance.getEntriesByType('resource').filter(e => e.name.includes('/full-')).map(e => e.name)",
            serde_json::json!([]),
        )
    };
    let refused = |browser: &Browser, url: &str, needles: &[&str]| {
        browser.goto(&server.url(url));
        browser.wait_status(url, Duration::from_secs(120), |s| s.starts_with("error") || s == "ready");
        let status = browser.role_text("status").unwrap();
        for n in needles {
            assert!(status.contains(n), "{url}: {status:?} should say {n:?}");
        }
        eprintln!("{url}: {status}");
    };

    let cpu = Browser::start(false);
    refused(&cpu, "/?model=full-q8/", &["q8 model needs 5.0 GB for its weights on the CPU", "WebGPU", "q4 bundle"]);
    assert_eq!(shards_fetched(&cpu), serde_json::json!([format!("{}full-q8/manifest.json", server.url("/"))]));

    let gpu = Browser::start(true);
    refused(&gpu, "/?model=full-f16/", &["f16 bundle", "16.4 GB of GPU memory", "q4", "q8"]);
    assert_eq!(shards_fetched(&gpu), serde_json::json!([format!("{}full-f16/manifest.json", server.url("/"))]));
    let adapter = gpu.role_text("adapter").unwrap();
    assert!(adapter.contains("software"), "SwiftShader is named as a software GPU: {adapter:?}");
    refused(&gpu, "/?gpu-max-binding=4096", &["takes", "largest buffer binding", "cannot run this model"]);
}

/// The page at `site` with the bundle at `models` (`?model=`): ready, the first example photo,
/// one beam, `tokens` new tokens, `region` typed and described. Returns the page's description;
/// prints the load time, each stage's time and the wasm memory's size at the end.
fn describe_in_the_page(
    browser: &Browser,
    site: &StaticServer,
    models: &StaticServer,
    tokens: usize,
    region: &str,
) -> serde_json::Value {
    let t0 = std::time::Instant::now();
    browser.goto(&site.url(&format!("/?model={}&tokens={tokens}", models.url("/"))));
    let hour = Duration::from_secs(3600);
    browser.wait_status("the model", hour, |s| s == "ready" || s.starts_with("error"));
    let loading = browser.js("return document.querySelector('.loading').textContent", serde_json::json!([]));
    println!("loaded in {:.0} s: {loading}", t0.elapsed().as_secs_f64());
    assert_eq!(browser.role_text("status").as_deref(), Some("ready"));
    browser.js("document.querySelector('button.example').click()", serde_json::json!([]));
    browser.wait_status("the example photo", Duration::from_secs(60), |s| s == "ready" || s.starts_with("error"));
    browser.js(
        "const b = document.querySelector('select.beams'); b.value = '1'; b.dispatchEvent(new Event('change'));",
        serde_json::json!([]),
    );
    let t1 = std::time::Instant::now();
    browser.type_into(".box-text", &format!("{region}\n"));
    let mut last = String::new();
    browser.wait_status("the description", hour, |s| {
        let stage = browser.role_text("progress").unwrap_or_default();
        if stage != last {
            println!("[{:>6.0} s] {stage}", t1.elapsed().as_secs_f64());
            last = stage;
        }
        s == "done" || s.starts_with("error")
    });
    println!(
        "described on {} in {:.0} s; stages (ms): {}; wasm memory {} bytes",
        browser.role_text("backend").unwrap_or_default(),
        t1.elapsed().as_secs_f64(),
        browser.role_text("timings").unwrap_or_default(),
        browser.role_text("memory").unwrap_or_default()
    );
    assert_eq!(browser.role_text("status").as_deref(), Some("done"), "{:?}", browser.role_text("progress"));
    serde_json::from_str(&browser.role_text("result").unwrap()).unwrap()
}

/// The CLI's description of `region` in the first example photo, one beam, `tokens` new tokens.
fn native_describe_example(bundle: &std::path::Path, region: &str, tokens: usize) -> serde_json::Value {
    let photo = dist().join("examples/scene-1.jpg");
    native_describe_args(bundle, &photo, region, &["--beams", "1", "--max-new-tokens", &tokens.to_string()])
}

/// The real model's widths and vocabulary sizes with one layer each (`common::real_widths`:
/// EVA ViT-g 1408 wide with an MLP of 6144, the 768-wide Q-Former, FlanT5-XL 2048 wide with 32
/// heads, a feed-forward of 5120 and 32128 vocabulary rows, 4585 tags, 2000 attributes),
/// converted to q4 and described in the page on the CPU backend and on WebGPU (SwiftShader): the
/// binding limits and kernels at the real shapes. Caption ids equal the CLI's, scores within 1e-3.
#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn real_widths_describe_in_the_page_on_both_backends() {
    let dir = common::scratch_dir("web_page", "real-widths");
    let src = dir.join("official");
    common::real_widths::write(&src);
    let bundle = dir.join("q4");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dynrefer"))
        .args(common::convert_args(&src, "q4", &bundle))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    let vocabularies = &manifest["vocabularies"];
    assert_eq!(vocabularies["tags"].as_array().unwrap().len(), common::real_widths::TAGS);
    assert_eq!(vocabularies["attributes"].as_array().unwrap().len(), common::real_widths::ATTRIBUTES);
    assert_eq!(manifest["config"]["visual"]["vit"]["width"], common::real_widths::VIT);
    let (region, tokens) = ("310,380,532.2,571.4", 4);
    let native = native_describe_example(&bundle, region, tokens);
    let site = StaticServer::start(&dist());
    let models = StaticServer::with_headers(&bundle, &["Access-Control-Allow-Origin: *"]);
    for webgpu in [false, true] {
        let browser = Browser::start(webgpu);
        let page = describe_in_the_page(&browser, &site, &models, tokens, region);
        assert_eq!(browser.role_text("backend").unwrap(), if webgpu { "webgpu" } else { "cpu" });
        assert_close_description(&page, &native, 1e-3);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Not a test: the real model, converted to q4 (`DYNREFER_FULL_BUNDLE`, e.g. by
/// `tools/rehearse-full.sh`), in the page on the CPU backend (or, with
/// `DYNREFER_FULL_BACKEND=webgpu`, on SwiftShader's WebGPU): a box described with one beam and
/// `DYNREFER_FULL_TOKENS` new tokens (default 3), the caption ids compared with the CLI's on the
/// same bundle; prints the load time, each stage's time and the wasm memory's size at the end,
/// which is its peak (a wasm memory never shrinks).
#[test]
#[ignore = "benchmark"]
fn bench_full_size_model_in_the_page() {
    let bundle = PathBuf::from(std::env::var("DYNREFER_FULL_BUNDLE").expect("set DYNREFER_FULL_BUNDLE"));
    let tokens: usize = std::env::var("DYNREFER_FULL_TOKENS").ok().and_then(|t| t.parse().ok()).unwrap_or(3);
    let site = StaticServer::start(&dist());
    let models = StaticServer::with_headers(&bundle, &["Access-Control-Allow-Origin: *"]);
    let webgpu = std::env::var("DYNREFER_FULL_BACKEND").is_ok_and(|b| b == "webgpu");
    let region = "310,380,532.2,571.4";
    let page = describe_in_the_page(&Browser::start(webgpu), &site, &models, tokens, region);
    let native = native_describe_example(&bundle, region, tokens);
    println!("page caption ids {} / CLI {}", page["caption_ids"], native["caption_ids"]);
    assert_eq!(page["caption_ids"], native["caption_ids"]);
}

/// `www/embed.html` under a strict CSP: two widgets share one model load and answer like the CLI;
/// a widget whose model is on another origin (CORS) answers too; a bad model URL gives
/// `dynrefer-error` and the page keeps working; the host's CSS stays out of the widgets.
#[test]
#[ignore = "needs dist/ (trunk build) and chromedriver: run by tools/test.sh"]
fn widget_works_on_a_strict_host_page() {
    let site = StaticServer::with_headers(&dist(), &["Content-Security-Policy: script-src 'self' 'wasm-unsafe-eval'"]);
    let models = StaticServer::with_headers(&dist(), &["Access-Control-Allow-Origin: *"]);
    let browser = Browser::start(false);
    browser.goto(&site.url("/embed.html"));
    // a result's detail lists every region of the widget: the last one drawn is last
    let results = |events: &[(String, String, serde_json::Value)], id: &str| {
        events.iter().rev().find(|(e, i, _)| e == "dynrefer-result" && i == id).map(|(_, _, d)| d.clone())
    };
    let result = |events: &[(String, String, serde_json::Value)], id: &str| {
        results(events, id).and_then(|d| d.as_array().and_then(|l| l.last().cloned()))
    };
    wait_event(&browser, "both widgets' results", |e| result(e, "left").is_some() && result(e, "right").is_some());
    let events = widget_events(&browser);
    assert!(events.iter().all(|(e, ..)| e == "dynrefer-result"), "{events:?}");
    let photo = dist().join("examples/scene-2.jpg"); // 552 × 1007
    assert_same_description(
        &result(&events, "left").unwrap(),
        &native_describe_views(&photo, "143.9,223.7,413.4,477.4", 3),
    );
    assert_same_description(
        &result(&events, "right").unwrap(),
        &native_describe_views(&photo, "271.5,475.1,463.6,653.1", 3),
    );
    let manifests = browser.js(
        "return performance.getEntriesByType('resource').filter(e => e.name.endsWith('/model/manifest.json')).length",
        serde_json::json!([]),
    );
    assert_eq!(manifests, 1, "the two widgets share one model load");
    let views = browser.js(
        "return document.getElementById('right').shadowRoot.querySelectorAll('figure').length",
        serde_json::json!([]),
    );
    assert_eq!(views, 3);
    let border = browser.js(
        "return getComputedStyle(document.getElementById('left').shadowRoot.querySelector('.status')).borderTopStyle",
        serde_json::json!([]),
    );
    assert_eq!(border, "none", "the host's `p {{ border: dashed }}` must not reach inside the widget");

    // A model on another origin, and a new box: the widget follows its attributes.
    let cross = models.url("/model/");
    browser.js(
        "const w = document.getElementById('right'); w.setAttribute('model', arguments[0]); w.setAttribute('box', '58,616,372,962');",
        serde_json::json!([cross]),
    );
    wait_event(&browser, "the cross-origin model's result", |e| {
        result(e, "right").is_some_and(|d| same_numbers(&d["views"][0]["box"], &serde_json::json!([58, 616, 372, 962])))
    });
    let right = result(&widget_events(&browser), "right").unwrap();
    assert_same_description(&right, &native_describe_views(&photo, "58,616,372,962", 3));

    // A bad model URL: a clear error event; the other widgets keep working.
    browser.js(
        "const w = document.createElement('dynrefer-describer'); w.id = 'bad'; w.setAttribute('model', 'missing-model/'); \
         w.setAttribute('src', 'examples/scene-2.jpg'); w.setAttribute('box', '10,10,100,100'); document.body.append(w);",
        serde_json::json!([]),
    );
    wait_event(&browser, "the bad model's error", |e| e.iter().any(|(e, i, _)| e == "dynrefer-error" && i == "bad"));
    let events = widget_events(&browser);
    let (_, _, error) = events.iter().find(|(e, i, _)| e == "dynrefer-error" && i == "bad").unwrap();
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("missing-model/manifest.json") && message.contains("404"), "{message}");
    browser.js("document.getElementById('left').setAttribute('box', '200,200,400,400')", serde_json::json!([]));
    wait_event(&browser, "the left widget after the error", |e| {
        result(e, "left").is_some_and(|d| same_numbers(&d["views"][0]["box"], &serde_json::json!([200, 200, 400, 400])))
    });

    // Inside a widget: Shift + arrow moves the box ten pixels; a mouse drag draws a new one.
    browser.js(
        "const s = document.getElementById('left').shadowRoot.querySelector('.stage'); s.focus(); \
         s.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', shiftKey: true, bubbles: true, composed: true}));",
        serde_json::json!([]),
    );
    wait_event(&browser, "the nudged widget box", |e| {
        result(e, "left").is_some_and(|d| same_numbers(&d["views"][0]["box"], &serde_json::json!([210, 200, 410, 400])))
    });
    let rect = browser.js(
        // the top of the photo, where the drag goes: scene-2 is taller than the window
        "const s = document.getElementById('left').shadowRoot.querySelector('.stage'); s.scrollIntoView({block: 'start'}); \
         const r = s.getBoundingClientRect(); return [r.left, r.top, r.width, r.height];",
        serde_json::json!([]),
    );
    let r: Vec<f64> = rect.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let at = |x: f64, y: f64| [r[0] + x / 552.0 * r[2], r[1] + y / 1007.0 * r[3]];
    browser.drag(at(60.0, 40.0), at(260.0, 200.0));
    let tol = 552.0 / r[2] + 1.0;
    wait_event(&browser, "the dragged widget box", |e| {
        result(e, "left").is_some_and(|d| {
            let got: Vec<f64> = d["views"][0]["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            got.iter().zip([60.0, 40.0, 260.0, 200.0]).all(|(g, w)| (g - w).abs() <= tol)
        })
    });
    let listed = results(&widget_events(&browser), "left").unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "the drag added a region to the nudged one");
    assert!(same_numbers(&listed[0]["views"][0]["box"], &serde_json::json!([210, 200, 410, 400])));

    // `boxes`: several regions, described in one run and listed in their order.
    browser.js("document.getElementById('log').textContent = ''", serde_json::json!([]));
    let boxes = ["143.9,223.7,413.4,477.4", "58,616,372,962", "271.5,475.1,463.6,653.1"];
    browser.js(
        "document.getElementById('right').setAttribute('boxes', arguments[0])",
        serde_json::json!([boxes.join(";")]),
    );
    wait_event(&browser, "the three regions", |e| {
        results(e, "right").is_some_and(|d| d.as_array().is_some_and(|l| l.len() == 3))
    });
    let listed = results(&widget_events(&browser), "right").unwrap();
    for (got, b) in listed.as_array().unwrap().iter().zip(boxes) {
        assert_same_description(got, &native_describe_with(&dist().join("model"), &photo, b, 3));
    }
    let numbers = browser.js(
        "return [...document.getElementById('right').shadowRoot.querySelectorAll('.stage .region .number')].map(n => n.textContent)",
        serde_json::json!([]),
    );
    assert_eq!(numbers, serde_json::json!(["1", "2", "3"]), "the regions are numbered on the photo");
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

/// Not a test: the built-in model's stages in the page (`DYNREFER_BENCH_BACKEND=webgpu` for
/// SwiftShader's WebGPU, the CPU backend otherwise), `DYNREFER_BENCH_RUNS` descriptions (10) of
/// the first example's two shapes in turn, 5 beams; prints the median milliseconds per stage as
/// JSON, the wall time of the page's first paint and of its readiness, and the wasm's size.
#[test]
#[ignore = "benchmark"]
fn bench_model_in_the_page() {
    let webgpu = std::env::var("DYNREFER_BENCH_BACKEND").is_ok_and(|b| b == "webgpu");
    let runs: usize = std::env::var("DYNREFER_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(10);
    let server = StaticServer::start(&dist());
    let browser = Browser::start(webgpu);
    let t0 = std::time::Instant::now();
    browser.goto(&server.url("/"));
    browser.wait_status("the page to start", Duration::from_secs(300), |s| s == "ready");
    let ready_s = t0.elapsed().as_secs_f64();
    let paint = browser
        .js("return performance.getEntriesByType('paint').map(e => [e.name, e.startTime])", serde_json::json!([]));
    browser.js("document.querySelector('button.example').click()", serde_json::json!([]));
    browser.wait_status("the example photo", Duration::from_secs(60), |s| s == "ready" || s.starts_with("error"));
    let mut stages: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for run in 0..runs + 1 {
        let region = if run % 2 == 0 { "310,380,532.2,571.4" } else { "100,100,300,250" };
        browser.type_into(".box-text", &format!("{region}\n"));
        browser.wait_status("the description", Duration::from_secs(600), |s| s == "done" || s.starts_with("error"));
        assert_eq!(browser.role_text("status").as_deref(), Some("done"));
        let timings: serde_json::Value = serde_json::from_str(&browser.role_text("timings").unwrap()).unwrap();
        if run == 0 {
            continue; // the first description warms up
        }
        for (stage, ms) in timings.as_object().unwrap() {
            stages.entry(stage.clone()).or_default().push(ms.as_f64().unwrap());
        }
    }
    let median: serde_json::Map<String, serde_json::Value> = stages
        .into_iter()
        .map(|(stage, mut ms)| {
            ms.sort_by(f64::total_cmp);
            (stage, ms[ms.len() / 2].into())
        })
        .collect();
    let wasm = std::fs::metadata(dist().join("dynrefer-web_bg.wasm")).unwrap().len();
    println!(
        "{}",
        serde_json::json!({
            "backend": browser.role_text("backend"),
            "runs": runs,
            "median_ms": median,
            "first_paint_ms": paint,
            "ready_s": ready_s,
            "wasm_bytes": wasm,
        })
    );
}
