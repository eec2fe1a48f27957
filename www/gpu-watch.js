// Watches the WebGPU devices the page asks for. When one is lost (a driver reset, a laptop that
// slept, a crashed GPU process), a page app that recovers (it sets `__dynreferRecover`) is
// reloaded: it comes back with its photo, box and options on a new device, and on the CPU after
// the third loss in the tab. The devices are kept in `__dynreferGpuDevices`, where tests destroy
// them to simulate a loss.
(() => {
  if (!self.GPUAdapter) return;
  const request = GPUAdapter.prototype.requestDevice;
  self.__dynreferGpuDevices = [];
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await request.apply(this, args);
    self.__dynreferGpuDevices.push(device);
    device.lost.then((info) => {
      console.warn(`WebGPU device lost (${info.reason}): ${info.message}`);
      if (!self.__dynreferRecover) return;
      const losses = Number(sessionStorage.getItem('dynrefer-gpu-losses') || 0) + 1;
      sessionStorage.setItem('dynrefer-gpu-losses', String(losses));
      sessionStorage.setItem('dynrefer-restore', '1');
      location.reload();
    });
    return device;
  };
})();
