// <dynrefer-describer model="…" src="…" boxes="x1,y1,x2,y2;x1,y1,x2,y2" num-views="3">: DynRefer on
// any page (`box` takes one box).
// One <script type="module" src="…/widget.js"> loads the app's wasm once; every widget on the page
// shares it, its compute device and each model it loads. Events (bubbling, composed):
// `dynrefer-result` (detail: a list with each region's `dynrefer describe` JSON, in the order of
// `boxes`, then the regions drawn on the photo) and `dynrefer-error` (detail: {message}).
const base = new URL(".", import.meta.url);
let runtime = null;
// Why the runtime stopped (it panicked), once it has: nothing more can run in its wasm.
let stoppedBecause = null;
const widgets = new Set();

function fail(element, message) {
  element.dispatchEvent(new CustomEvent("dynrefer-error", { detail: { message }, bubbles: true, composed: true }));
}

// Called by the runtime's panic hook: every widget says so, and fires `dynrefer-error` once the
// wasm has returned.
function stopped(message) {
  stoppedBecause = message;
  setTimeout(() => {
    for (const element of widgets) {
      const status = element.shadowRoot.querySelector(".status");
      if (status) status.textContent = `error: ${message}`;
      fail(element, message);
    }
  });
}

function load() {
  if (!runtime) {
    runtime = (async () => {
      const hook = { stopped };
      globalThis.__dynreferWidget = hook;
      const glue = await import(new URL("dynrefer-web.js", base).href);
      const wasm = await glue.default({ module_or_path: new URL("dynrefer-web_bg.wasm", base) });
      // for long-session tests: the shared wasm memory's size
      hook.memoryBytes = () => wasm.memory.buffer.byteLength;
      return hook;
    })();
  }
  return runtime;
}

class DynreferDescriber extends HTMLElement {
  static observedAttributes = ["model", "src", "box", "boxes", "num-views"];

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
  }

  async connectedCallback() {
    widgets.add(this);
    if (this.widget) return;
    try {
      const hook = await load();
      if (stoppedBecause) return fail(this, stoppedBecause);
      if (!this.widget && this.isConnected) this.widget = hook.mount(this, this.shadowRoot, base.href);
    } catch (e) {
      fail(this, stoppedBecause ?? `the DynRefer runtime did not load from ${base.href}: ${e}`);
    }
  }

  attributeChangedCallback() {
    if (stoppedBecause) return this.widget && fail(this, stoppedBecause);
    this.widget?.update();
  }

  disconnectedCallback() {
    widgets.delete(this);
    if (!stoppedBecause) this.widget?.unmount();
    this.widget = null;
  }
}

if (!customElements.get("dynrefer-describer")) customElements.define("dynrefer-describer", DynreferDescriber);
