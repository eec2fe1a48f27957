// The host page's side: listen for the widgets' events (they bubble out of the shadow roots).
const log = document.getElementById("log");
for (const name of ["dynrefer-result", "dynrefer-error"]) {
  document.addEventListener(name, (event) => {
    log.textContent += JSON.stringify({ event: name, id: event.target.id, detail: event.detail }) + "\n";
  });
}
