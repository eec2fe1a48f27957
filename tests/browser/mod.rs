//! What the browser tests need, without a web framework: a static file server for the built site,
//! a W3C WebDriver client over plain HTTP, and Debian's chromedriver + headless Chromium.
//! Shared by several test binaries, each of which uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Serves a folder on 127.0.0.1, with more folders mounted under URL prefixes, and misbehaves on
/// request (see [`Fault`]).
pub struct StaticServer {
    pub port: u16,
    state: Arc<ServerState>,
}

/// Response headers beyond the content type (e.g. a CSP, or CORS for a model host).
pub type Headers = &'static [&'static str];

/// How the server misbehaves for a path.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Promises the whole file, sends half, and closes the connection.
    Cut,
    /// Sends a quarter of the file, then nothing, holding the connection open.
    Stall,
    /// Answers with this HTTP status instead of the file.
    Status(u16),
}

#[derive(Default)]
struct ServerState {
    mounts: Mutex<Vec<(String, PathBuf)>>,
    /// Path suffix, fault, how many more requests it hits.
    faults: Mutex<Vec<(String, Fault, usize)>>,
    /// Requests per path.
    hits: Mutex<HashMap<String, usize>>,
    /// Drops every connection unanswered, as a machine without a network would fail them.
    offline: std::sync::atomic::AtomicBool,
    /// Paths served with these bytes instead of their file.
    replaced: Mutex<HashMap<String, Vec<u8>>>,
    /// Path suffixes served gzip-compressed to a browser that accepts it, as many hosts do.
    gzipped: Mutex<Vec<String>>,
    /// Paths that went out compressed.
    sent_gzipped: Mutex<Vec<String>>,
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn serve_one(mut stream: TcpStream, root: &Path, headers: Headers, state: &ServerState) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut accepts_gzip = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        let header = header.to_ascii_lowercase();
        accepts_gzip |= header.starts_with("accept-encoding:") && header.contains("gzip");
    }
    if state.offline.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    *state.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let fault = state.faults.lock().unwrap().iter_mut().find(|f| path.ends_with(&f.0) && f.2 > 0).map(|f| {
        f.2 -= 1;
        f.1
    });
    let mounts = state.mounts.lock().unwrap().clone();
    let (folder, rest) = mounts
        .iter()
        .find_map(|(prefix, dir)| path.strip_prefix(prefix.as_str()).map(|rest| (dir.clone(), rest.to_string())))
        .unwrap_or_else(|| (root.to_path_buf(), path.trim_start_matches('/').to_string()));
    let file = folder.join(if rest.is_empty() { "index.html" } else { &rest });
    let (mut status, mut body, mut kind) = match file.canonicalize() {
        Ok(f) if f.starts_with(&folder) && f.is_file() => ("200 OK".to_string(), std::fs::read(&f)?, content_type(&f)),
        _ => ("404 Not Found".to_string(), b"not found".to_vec(), "text/plain"),
    };
    if let Some(bytes) = state.replaced.lock().unwrap().get(&path) {
        (status, body, kind) = ("200 OK".to_string(), bytes.clone(), content_type(&file));
    }
    if let Some(Fault::Status(code)) = fault {
        (status, body, kind) = (format!("{code} Injected"), b"injected failure".to_vec(), "text/plain");
    }
    let mut extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let gzip = status.starts_with("200")
        && accepts_gzip
        && state.gzipped.lock().unwrap().iter().any(|suffix| path.ends_with(suffix.as_str()));
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&body)?;
        body = encoder.finish()?;
        extra.push_str("Content-Encoding: gzip\r\n");
        state.sent_gzipped.lock().unwrap().push(path.clone());
    }
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    match fault {
        Some(Fault::Cut) => stream.write_all(&body[..body.len() / 2]),
        Some(Fault::Stall) => {
            stream.write_all(&body[..body.len() / 4])?;
            stream.flush()?;
            std::thread::sleep(Duration::from_secs(600));
            Ok(())
        }
        _ => stream.write_all(&body),
    }
}

impl StaticServer {
    pub fn start(root: &Path) -> StaticServer {
        StaticServer::with_headers(root, &[])
    }

    pub fn with_headers(root: &Path, headers: Headers) -> StaticServer {
        let root = root.canonicalize().expect("the site folder exists");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ServerState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, state) = (root.clone(), shared.clone());
                std::thread::spawn(move || serve_one(stream, &root, headers, &state));
            }
        });
        StaticServer { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Serves `dir` under the URL path `prefix` (which starts and ends with a slash).
    pub fn mount(&self, prefix: &str, dir: &Path) {
        self.state.mounts.lock().unwrap().push((prefix.to_string(), dir.canonicalize().unwrap()));
    }

    /// The next `times` requests for a path ending in `suffix` get `fault`.
    pub fn fault(&self, suffix: &str, fault: Fault, times: usize) {
        self.state.faults.lock().unwrap().push((suffix.to_string(), fault, times));
    }

    /// Serves `bytes` for the URL path `path` from now on, as a new deployment would.
    pub fn replace(&self, path: &str, bytes: Vec<u8>) {
        self.state.replaced.lock().unwrap().insert(path.to_string(), bytes);
    }

    /// Fails every request from now on (or serves again), as if the network were off.
    pub fn set_offline(&self, offline: bool) {
        self.state.offline.store(offline, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sends files whose path ends in `suffix` gzip-compressed (with `Content-Encoding: gzip` and
    /// the compressed length), to browsers that accept it.
    pub fn gzip(&self, suffix: &str) {
        self.state.gzipped.lock().unwrap().push(suffix.to_string());
    }

    /// The paths that went out compressed, in order.
    pub fn sent_gzipped(&self) -> Vec<String> {
        self.state.sent_gzipped.lock().unwrap().clone()
    }

    /// The server's URL for `path` under another name for this machine, `lan.test`, which the
    /// browser resolves here: to the browser it is a plain-http site on the network, not a
    /// secure context as 127.0.0.1 is, so it withholds service workers, Cache Storage, the
    /// clipboard and WebGPU, as on a LAN host.
    pub fn lan_url(&self, path: &str) -> String {
        format!("http://lan.test:{}{path}", self.port)
    }

    /// How many requests `path` has had.
    pub fn hits(&self, path: &str) -> usize {
        self.state.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("chromedriver answers");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open: read exactly Content-Length bytes.
    let mut reader = BufReader::new(s);
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// A headless Chromium driven through chromedriver.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn chromedriver_path() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()));
    p.exists().then_some(p)
}

impl Browser {
    /// Starts Chromium headless; `webgpu` exposes its software WebGPU adapter (SwiftShader).
    pub fn start(webgpu: bool) -> Browser {
        Browser::start_with(webgpu, false)
    }

    /// Like [`Browser::start`], as a phone: a 375 × 812 CSS-pixel screen at twice the density,
    /// with touch.
    pub fn start_phone(webgpu: bool) -> Browser {
        Browser::start_with(webgpu, true)
    }

    fn start_with(webgpu: bool, phone: bool) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver_path().expect("chromedriver is installed (tools/ensure-tools.sh)"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = TempDir(std::env::temp_dir().join(format!("dynrefer-chromium-{port}")));
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-quic".into(),
            "--window-size=1280,900".into(),
            // `lan.test` is this machine under a name that is not a secure context (see `lan_url`)
            "--host-resolver-rules=MAP lan.test 127.0.0.1".into(),
            // `gc()` and exact heap sizes, for the long-session tests
            "--js-flags=--expose-gc".into(),
            "--enable-precise-memory-info".into(),
            format!("--user-data-dir={}", profile.0.display()),
        ];
        if webgpu {
            args.push("--enable-unsafe-webgpu".into());
        }
        let mut options =
            json!({"binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()), "args": args});
        if phone {
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": 375, "height": 812, "pixelRatio": 2.0, "touch": true}});
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}});
        let r = http(port, "POST", "/session", Some(&caps));
        let session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {r}")).to_string();
        http(port, "POST", &format!("/session/{session}/timeouts"), Some(&json!({"script": 300_000})));
        Browser { driver, port, session, _profile: profile }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = http(self.port, method, &format!("/session/{}{path}", self.session), body.as_ref());
        if let Some(err) = r["value"]["error"].as_str() {
            panic!("webdriver {path}: {err}: {}", r["value"]["message"]);
        }
        r["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// Like [`Browser::js`], but None where the script failed (e.g. while the page reloads).
    pub fn try_js(&self, script: &str, args: Value) -> Option<Value> {
        let body = json!({"script": script, "args": args});
        let r = http(self.port, "POST", &format!("/session/{}/execute/sync", self.session), Some(&body));
        r["value"]["error"].is_null().then(|| r["value"].clone())
    }

    /// Runs `script` (a function body that may `await`) and returns the value it returns.
    pub fn js_async(&self, script: &str, args: Value) -> Value {
        let wrapped = format!(
            "const done = arguments[arguments.length - 1]; (async (...arguments) => {{ {script} }})(...Array.from(arguments).slice(0, -1)).then(done, e => done('error: ' + e));"
        );
        self.cmd("POST", "/execute/async", Some(json!({"script": wrapped, "args": args})))
    }

    /// Runs `source` in every new document of this browser before the page's own scripts.
    pub fn before_each_page(&self, source: &str) {
        let body = json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": source}});
        self.cmd("POST", "/goog/cdp/execute", Some(body));
    }

    /// The text of the first element with `data-role=role`, or None.
    pub fn role_text(&self, role: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(`[data-role=\"${arguments[0]}\"]`); return e ? e.textContent : null;",
            json!([role]),
        )
        .as_str()
        .map(str::to_owned)
    }

    /// Waits until `[data-role=status]` satisfies `done`; returns its text.
    pub fn wait_status(&self, what: &str, timeout: Duration, mut done: impl FnMut(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.role_text("status").unwrap_or_default();
            if done(&s) {
                return s;
            }
            assert!(t0.elapsed() < timeout, "waited {timeout:?} for {what}; status is {s:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Puts a local file into the `<input type=file>` matched by `css`.
    pub fn upload(&self, css: &str, file: &Path) {
        let el = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        let id =
            el.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("element found").to_string();
        self.cmd("POST", &format!("/element/{id}/value"), Some(json!({"text": file.display().to_string()})));
    }

    /// Drags the mouse from one viewport point to another.
    pub fn drag(&self, from: [f64; 2], to: [f64; 2]) {
        self.pointer_drag("mouse", from, to);
    }

    /// Drags a finger from one viewport point to another.
    pub fn touch_drag(&self, from: [f64; 2], to: [f64; 2]) {
        self.pointer_drag("touch", from, to);
    }

    fn pointer_drag(&self, pointer: &str, from: [f64; 2], to: [f64; 2]) {
        let mv = |p: [f64; 2], ms: u64| json!({"type": "pointerMove", "duration": ms, "x": p[0].round() as i64, "y": p[1].round() as i64});
        let actions = json!({"actions": [{"type": "pointer", "id": pointer, "parameters": {"pointerType": pointer}, "actions": [
            mv(from, 0), {"type": "pointerDown", "button": 0}, mv([(from[0] + to[0]) / 2.0, (from[1] + to[1]) / 2.0], 100),
            mv(to, 100), {"type": "pointerUp", "button": 0}
        ]}]});
        self.cmd("POST", "/actions", Some(actions));
    }

    fn element(&self, css: &str) -> String {
        let el = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        el.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("element found").to_string()
    }

    /// Types text into the input matched by `css`, after clearing it.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.cmd("POST", &format!("/element/{id}/value"), Some(json!({"text": text})));
    }

    /// Sends keys (WebDriver key codes allowed) to the element matched by `css`.
    pub fn send_keys(&self, css: &str, keys: &str) {
        let id = self.element(css);
        self.cmd("POST", &format!("/element/{id}/value"), Some(json!({"text": keys})));
    }

    pub fn screenshot(&self, path: &Path) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap_or_default());
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        http(self.port, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 with padding (a subresource-integrity hash is written so).
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' };
            out.push(c);
        }
    }
    out
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()).map(val).collect();
    bytes
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().enumerate().fold(0u32, |n, (i, v)| n | u32::from(*v) << (18 - 6 * i));
            let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.into_iter().take(c.len() - 1)
        })
        .collect()
}

/// The events `www/embed.js` logged so far, as (event, element id, detail).
pub fn widget_events(browser: &Browser) -> Vec<(String, String, Value)> {
    let log = browser.js("return document.getElementById('log').textContent", json!([]));
    log.as_str()
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["event"].as_str().unwrap().to_string(),
                v["id"].as_str().unwrap_or_default().to_string(),
                v["detail"].clone(),
            )
        })
        .collect()
}

/// Waits until the logged widget events satisfy `found`.
pub fn wait_event(browser: &Browser, what: &str, found: impl Fn(&[(String, String, Value)]) -> bool) {
    let t0 = Instant::now();
    while !found(&widget_events(browser)) {
        assert!(t0.elapsed() < Duration::from_secs(240), "timed out waiting for {what}: {:?}", widget_events(browser));
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A description from the page equals the CLI's: views, tag set, scores within 1e-4, caption ids.
pub fn assert_same_description(page: &serde_json::Value, native: &serde_json::Value) {
    assert_close_description(page, native, 1e-4);
}

/// [`assert_same_description`] with scores within `tolerance`.
pub fn assert_close_description(page: &serde_json::Value, native: &serde_json::Value, tolerance: f64) {
    assert!(same_numbers(&page["views"], &native["views"]), "views: page {} CLI {}", page["views"], native["views"]);
    for field in ["tags", "attributes", "classes"] {
        let (p, n) = (page[field].as_array().unwrap(), native[field].as_array().unwrap());
        assert_eq!(p.len(), n.len(), "{field}");
        for (a, b) in p.iter().zip(n) {
            assert_eq!(a["name"], b["name"], "{field}");
            let d = (a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs();
            assert!(d < tolerance, "{field} {}: page {} CLI {}", a["name"], a["score"], b["score"]);
        }
    }
    assert_eq!(
        page["caption_ids"], native["caption_ids"],
        "caption: page {} CLI {}",
        page["caption"], native["caption"]
    );
    assert_eq!(page["caption"], native["caption"]);
}

/// JSON equality where `100` (as JavaScript writes it) equals `100.0` (as Rust does).
pub fn same_numbers(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::{Array, Number, Object};
    match (a, b) {
        (Number(x), Number(y)) => x.as_f64() == y.as_f64(),
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_numbers(x, y)),
        (Object(x), Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_numbers(v, w)))
        }
        _ => a == b,
    }
}
