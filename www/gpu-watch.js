// Watches the WebGPU devices the page asks for. When one is lost (a driver reset, a laptop that
// slept, a crashed GPU process), a page app that recovers (it sets `__dynreferRecover`) is
// reloaded: it comes back with its photo, box and options on a new device, and on the CPU after
// the third loss in the tab. The photo (the stage's image) is kept in Cache Storage for the reload
// only: its key goes in sessionStorage, and the reloaded page takes it out. The devices are kept
// in `__dynreferGpuDevices`, where tests destroy them to simulate a loss.
(() => {
  if (!self.GPUAdapter) return;
  const request = GPUAdapter.prototype.requestDevice;
  self.__dynreferGpuDevices = [];

  // Resolves to the kept photo's key, or "" when there is none to keep or no room for it.
  async function keepPhoto() {
    const img = document.querySelector('[data-role=stage] img');
    if (!img || !self.caches) return '';
    try {
      const key = `/__dynrefer-session/photo-${Date.now()}`;
      const cache = await caches.open('dynrefer-session');
      await cache.put(key, await fetch(img.src));
      return key;
    } catch (e) {
      console.warn(`the photo could not be kept for the reload: ${e}`);
      return '';
    }
  }

  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await request.apply(this, args);
    self.__dynreferGpuDevices.push(device);
    device.lost.then(async (info) => {
      console.warn(`WebGPU device lost (${info.reason}): ${info.message}`);
      if (!self.__dynreferRecover) return;
      const losses = Number(sessionStorage.getItem('dynrefer-gpu-losses') || 0) + 1;
      sessionStorage.setItem('dynrefer-gpu-losses', String(losses));
      sessionStorage.setItem('dynrefer-restore', await keepPhoto());
      location.reload();
    });
    return device;
  };
})();
