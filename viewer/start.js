// Loads the viewer's wasm relative to this page, so the site works under any sub-path.
import init from './pkg/viewer.js';
init().catch((e) => {
  const p = document.createElement('p');
  p.className = 'error';
  p.textContent = 'The viewer could not start: ' + (e && e.message ? e.message : String(e));
  document.body.appendChild(p);
});
