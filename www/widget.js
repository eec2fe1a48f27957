// <dynrefer-describer model="…" src="…" boxes="x1,y1,x2,y2;x1,y1,x2,y2" num-views="3">: DynRefer on
// any page (`box` takes one box).
// One <script type="module" src="…/widget.js"> loads the app's wasm once; every widget on the page
// shares it, its compute device and each model it loads. Events (bubbling, composed):
// `dynrefer-result` (detail: a list with each region's `dynrefer describe` JSON, in the order of
// `boxes`, then the regions drawn on the photo) and `dynrefer-error` (detail: {message}).
const base = new URL(".", import.meta.url);
let runtime = null;

function load() {
  if (!runtime) {
    runtime = (async () => {
      const hook = {};
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
    if (this.widget) return;
    try {
      const hook = await load();
      if (!this.widget && this.isConnected) this.widget = hook.mount(this, this.shadowRoot, base.href);
    } catch (e) {
      const message = `the DynRefer runtime did not load from ${base.href}: ${e}`;
      this.dispatchEvent(new CustomEvent("dynrefer-error", { detail: { message }, bubbles: true, composed: true }));
    }
  }

  attributeChangedCallback() {
    this.widget?.update();
  }

  disconnectedCallback() {
    this.widget?.unmount();
    this.widget = null;
  }
}

if (!customElements.get("dynrefer-describer")) customElements.define("dynrefer-describer", DynreferDescriber);
