// The page's offline copy. On install it caches the app shell (the page, its wasm and glue, its
// styles, the widget) as one version, named by a hash of the built files that the build writes
// below; the page is then served from that version only, so a wasm file and its glue always come
// from the same build. A new build changes this file, so the browser installs the new version
// beside the old one; it takes over once no page of the old one is open, and the old one is
// deleted then. The model's manifest and the example photos are served from the network when
// there is one and from their last copy when there is not; the model's weights are kept by the
// page itself (Cache Storage, by their SHA-256) and pass through here untouched.
const VERSION = "__DYNREFER_BUILD__";
const SHELL = `dynrefer-shell-${VERSION}`;
const RECENT = "dynrefer-recent";
const SHELL_FILES = [
  "./",
  "index.html",
  "dynrefer-web.js",
  "dynrefer-web_bg.wasm",
  "style.css",
  "widget.js",
  "gpu-watch.js",
];
const RECENT_FILES = ["model/manifest.json", "examples/scene-1.jpg", "examples/scene-2.jpg", "examples/scene-3.jpg"];

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const shell = await caches.open(SHELL);
      // past the HTTP cache, which may still hold files of an older build
      await shell.addAll(SHELL_FILES.map((f) => new Request(f, { cache: "reload" })));
      const recent = await caches.open(RECENT);
      await Promise.all(RECENT_FILES.map((f) => recent.add(new Request(f, { cache: "reload" })).catch(() => {})));
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("dynrefer-shell-") && name !== SHELL) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

const scope = new URL(self.registration.scope);

/// The path of a request inside the app's folder, or null for another origin or folder.
function appPath(url) {
  if (url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return null;
  return url.pathname.slice(scope.pathname.length);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const path = appPath(new URL(request.url));
  if (path === null) return;
  const page = request.mode === "navigate" && (path === "" || path === "index.html");
  if (page || SHELL_FILES.includes(path)) {
    event.respondWith(fromShell(page ? "index.html" : path, request));
  } else if (path.endsWith("manifest.json") || path.startsWith("examples/")) {
    event.respondWith(networkThenRecent(request));
  }
});

async function fromShell(path, request) {
  const hit = await (await caches.open(SHELL)).match(path);
  return hit || fetch(request);
}

/// The network's answer (kept for later), or the last one kept when the network fails.
async function networkThenRecent(request) {
  const recent = await caches.open(RECENT);
  try {
    const response = await fetch(request);
    // kept on the side: a body cut short fails only the copy, and the page hears of it itself
    if (response.ok) recent.put(request.url.split("?")[0], response.clone()).catch(() => {});
    return response;
  } catch (error) {
    const kept = await recent.match(request.url.split("?")[0]);
    if (kept) return kept;
    throw error;
  }
}
