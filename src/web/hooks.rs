//! The page's URL parameters, read once when the app starts: `?model=URL` picks the bundle, and
//! the rest are hooks with which the tests (and a person timing a large model) steer the page.

/// What the page's URL asks for.
#[derive(Clone, Debug)]
pub struct Hooks {
    /// `?model=URL`: the bundle folder to load instead of the built-in model.
    pub model: Option<String>,
    /// `?tokens=N`: the caption's length cap (30, as the official demo, by default).
    pub max_new_tokens: usize,
    /// `?gpu-max-binding=BYTES`: a lower buffer-binding limit than the adapter's, to exercise the
    /// refusal of a tensor that does not fit.
    pub gpu_max_binding: Option<u64>,
    /// `?stall-ms=N`: how long a download may receive nothing before the page says it stalled.
    pub stall_ms: f64,
    /// `?cache-quota=BYTES`: a storage quota that runs out, as a browser's may halfway through a
    /// bundle.
    pub cache_quota: Option<u64>,
}

impl Hooks {
    fn read() -> Hooks {
        let params = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .and_then(|query| web_sys::UrlSearchParams::new_with_str(&query).ok());
        let get = |name: &str| params.as_ref().and_then(|p| p.get(name)).filter(|v| !v.is_empty());
        Hooks {
            model: get("model"),
            max_new_tokens: get("tokens").and_then(|t| t.parse().ok()).unwrap_or(30),
            gpu_max_binding: get("gpu-max-binding").and_then(|b| b.parse().ok()),
            stall_ms: get("stall-ms").and_then(|v| v.parse().ok()).unwrap_or(10_000.0),
            cache_quota: get("cache-quota").and_then(|q| q.parse().ok()),
        }
    }
}

thread_local! {
    static HOOKS: Hooks = Hooks::read();
}

/// The URL's parameters, as they were when the app started.
pub fn hooks() -> Hooks {
    HOOKS.with(Clone::clone)
}
