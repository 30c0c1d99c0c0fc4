// The page helpers A1111's extension scripts call: gradioApp(), onUiLoaded(cb), onUiUpdate(cb) and
// onAfterUiUpdate(cb). onUiLoaded callbacks run once the page's controls exist (at once if they
// already do); the update callbacks run after each change to the page.
(() => {
  window.gradioApp = () => {
    const app = document.querySelector("gradio-app");
    return (app && app.shadowRoot) || app || document;
  };
  const loaded = [];
  const updated = [];
  let ready = false;
  const run = (callback) => {
    try { callback(); } catch (error) { console.error("extension callback failed", error); }
  };
  window.onUiLoaded = (callback) => (ready ? run(callback) : loaded.push(callback));
  window.onUiUpdate = (callback) => updated.push(callback);
  window.onAfterUiUpdate = window.onUiUpdate;
  new MutationObserver(() => {
    if (!ready && gradioApp().querySelector("#txt2img_prompt")) {
      ready = true;
      loaded.splice(0).forEach(run);
    }
    updated.forEach(run);
  }).observe(document, { childList: true, subtree: true });
})();
