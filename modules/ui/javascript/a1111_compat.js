// The page API that A1111's extension scripts use: gradioApp(), opts, titles, updateInput(el),
// get_uiCurrentTab(), get_uiCurrentTabContent(), selected_gallery_index() and the callbacks onUiLoaded,
// onUiUpdate, onAfterUiUpdate, onUiTabChange, onOptionsAvailable and onOptionsChanged.
//
// Gradio 6 differs from the Gradio 3 that A1111 ran on, and this script bridges three differences:
// - it builds a tab's contents only when the tab is first opened, where A1111's page had every tab in the
//   DOM at load. Once the page appears, each top-level tab is opened once (the page is hidden meanwhile),
//   so #img2img_prompt, #tab_settings… exist when onUiLoaded callbacks run; they also wait for the output
//   galleries, whose code Gradio may still be fetching then.
// - a textbox's textarea sits in `label > div`, not right under `label`. The prompt boxes' textareas are
//   moved up into their label, so `#txt2img_prompt > label > textarea` finds them. The element is the same,
//   so Gradio's own listeners keep working.
// - a button's textContent starts with a blank (" Generate"); the blank text node is emptied.
(() => {
  const callbacks = { loaded: [], update: [], afterUpdate: [], tabChange: [], optionsAvailable: [],
                      optionsChanged: [] };
  const state = { loaded: false, optsLoaded: false, optsAvailable: false, optsTag: "", warming: false, tab: null,
                  afterTimer: 0 };
  const run = (list, ...args) => list.forEach((callback) => {
    try { callback(...args); } catch (error) { console.error("extension callback failed", error); }
  });

  window.gradioApp = () => {
    const app = document.querySelector("gradio-app");
    if (!app) return document;
    if (!app.getElementById) app.getElementById = (id) => document.getElementById(id);
    return app.shadowRoot || app;
  };
  window.opts = {};
  window.titles = window.titles || {};
  window.localization = window.localization || {};
  window.updateInput = (target) => {
    const event = new Event("input", { bubbles: true });
    Object.defineProperty(event, "target", { value: target });
    target.dispatchEvent(event);
  };
  window.get_uiCurrentTab = () => gradioApp().querySelector("#tabs > .tab-wrapper > [role=tablist] > .selected");
  window.get_uiCurrentTabContent = () => gradioApp().querySelector(
    '#tabs > .tabitem[id^=tab_]:not([style*="display: none"])');
  // A1111's gallery helpers: the thumbnails of the output gallery in view, and the selected one (-1: none).
  window.all_gallery_buttons = () => [...gradioApp().querySelectorAll(
    "[id$=_gallery] .thumbnail-item.thumbnail-small")].filter((button) => button.offsetParent);
  window.selected_gallery_button = () => all_gallery_buttons().find((b) => b.classList.contains("selected")) ?? null;
  window.selected_gallery_index = () => all_gallery_buttons().findIndex((b) => b.classList.contains("selected"));
  window.onUiLoaded = (callback) => (state.loaded ? run([callback]) : callbacks.loaded.push(callback));
  window.onUiUpdate = (callback) => callbacks.update.push(callback);
  window.onAfterUiUpdate = (callback) => callbacks.afterUpdate.push(callback);
  window.onUiTabChange = (callback) => callbacks.tabChange.push(callback);
  window.onOptionsAvailable = (callback) => (state.optsAvailable ? run([callback])
    : callbacks.optionsAvailable.push(callback));
  window.onOptionsChanged = (callback) => callbacks.optionsChanged.push(callback);

  // opts: the settings' current values, read again after Settings or the quicksettings row change them.
  // wait > 0: the server answers once the settings differ from ours (or, unchanged, after `wait` seconds).
  async function loadOpts(wait = 0) {
    let changed = false;
    try {
      const response = await fetch(`internal/opts?wait=${wait}`,
        { cache: "no-store", headers: state.optsTag ? { "If-None-Match": state.optsTag } : {} });
      if (response.status === 200) {
        const values = await response.json();
        state.optsTag = response.headers.get("ETag");
        Object.keys(opts).forEach((key) => delete opts[key]);
        Object.assign(opts, values);
        changed = true;
      }
    } catch (error) {
      console.error("could not read the settings for opts", error);
    }
    if (changed && !state.optsAvailable) {
      state.optsAvailable = true;
      run(callbacks.optionsAvailable);
    }
    if (!state.optsLoaded) {  // the first try, whatever came of it: the page loads with or without opts
      state.optsLoaded = true;
      maybeLoaded();
    } else if (changed && state.loaded) {
      run(callbacks.optionsChanged);
    }
  }
  let optsTimer = 0;
  function reloadOptsSoon() {
    clearTimeout(optsTimer);
    optsTimer = setTimeout(() => loadOpts(10), 300);
  }
  document.addEventListener("click", (event) => {
    if (event.target.closest?.("#settings_submit")) reloadOptsSoon();
  }, true);
  ["change", "input"].forEach((type) => document.addEventListener(type, (event) => {
    if (event.target.closest?.("#quicksettings")) reloadOptsSoon();
  }, true));
  loadOpts();

  const TITLED = "button, span, label, p, option, h2";
  // titles: hover text for buttons and labels by their text, as A1111's hints do.
  function applyTitles(root) {
    if (!root.querySelectorAll) return;
    for (const element of [root, ...root.querySelectorAll(TITLED)]) {
      if (element.title || !element.matches(TITLED)) continue;
      const text = element.textContent.trim();
      const title = titles[text] || (element.value && titles[element.value]);
      if (title) element.title = localization[title] || title;
    }
  }

  // `#<id>_prompt > label > textarea`, as in Gradio 3.
  function compatTextareas() {
    const boxes = gradioApp().querySelectorAll(
      ':is([id$="prompt"], .prompt) > label > .input-container > textarea');
    boxes.forEach((box) => box.parentElement.parentElement.insertBefore(box, box.parentElement));
  }

  // A button's text, as in Gradio 3: Gradio 6 writes a blank text node before the label, so `textContent` was
  // " Generate". The blank node is emptied, not removed, so Gradio's own nodes stay where it left them.
  function trimButtons(root) {
    if (!root.querySelectorAll) return;
    for (const button of [root, ...root.querySelectorAll("button")]) {
      if (button.tagName !== "BUTTON") continue;
      button.childNodes.forEach((node) => {
        if (node.nodeType === Node.TEXT_NODE && node.data && !node.data.trim()) node.data = "";
      });
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  async function until(test, timeout) {
    for (const end = Date.now() + timeout; Date.now() < end; await sleep(20)) if (test()) return true;
    return false;
  }
  const MOUNTED_LATE = ["txt2img_gallery", "img2img_gallery"];  // A1111 ids that onUiLoaded callbacks look up
  const tabButtons = () => [...document.querySelectorAll("#tabs > .tab-wrapper > [role=tablist] > [role=tab]")];

  // Open every top-level tab once, then the one that was open, with the page hidden meanwhile.
  async function renderAllTabs() {
    try {
      const first = tabButtons().find((button) => button.classList.contains("selected"));
      for (const button of tabButtons()) {
        if (button === first) continue;
        button.click();
        await until(() => get_uiCurrentTabContent()?.id === button.id.replace(/-button$/, ""), 3000);
      }
      first?.click();
      await until(() => first?.classList.contains("selected"), 3000);
    } finally {
      document.documentElement.classList.remove("a1111-compat-warming");
    }
  }
  async function warmUp() {
    try {
      await renderAllTabs();  // at most 3 s a tab
      // Gradio fetches a component's code the first time it is shown: on a busy machine the galleries (the
      // largest) can mount after the tabs have opened.
      await until(() => MOUNTED_LATE.every((id) => document.getElementById(id)), 10000);
    } catch (error) {
      console.error("could not open the page's tabs", error);
    }
    state.warming = "done";
    maybeLoaded();
  }
  function maybeLoaded() {
    if (state.loaded || state.warming !== "done" || !state.optsLoaded) return;
    state.loaded = true;
    compatTextareas();
    trimButtons(gradioApp());
    applyTitles(gradioApp());
    state.tab = get_uiCurrentTab();
    run(callbacks.loaded);
    run(callbacks.optionsChanged);
    run(callbacks.update, []);
    run(callbacks.afterUpdate);
  }

  const style = document.createElement("style");
  style.textContent = ".a1111-compat-warming gradio-app { visibility: hidden !important; }";
  document.head.appendChild(style);
  new MutationObserver((mutations) => {
    if (!state.warming) {
      if (!document.querySelector("#tabs > .tab-wrapper") || !document.querySelector("#txt2img_prompt")) return;
      state.warming = true;
      document.documentElement.classList.add("a1111-compat-warming");  // before the page is painted
      warmUp();
      return;
    }
    compatTextareas();
    mutations.forEach((mutation) => mutation.addedNodes.forEach(trimButtons));
    if (!state.loaded) return;
    mutations.forEach((mutation) => mutation.addedNodes.forEach(applyTitles));
    run(callbacks.update, mutations);
    clearTimeout(state.afterTimer);
    state.afterTimer = setTimeout(() => run(callbacks.afterUpdate), 200);
    checkTab();
  }).observe(document, { childList: true, subtree: true });

  // A switch to a tab already built changes only the tab buttons' classes.
  function checkTab() {
    const tab = get_uiCurrentTab();
    if (!state.loaded || !tab || tab === state.tab) return;
    state.tab = tab;
    run(callbacks.tabChange);
  }
  const tabsObserver = new MutationObserver(checkTab);
  onUiLoaded(() => tabsObserver.observe(document.querySelector("#tabs > .tab-wrapper"),
                                        { attributes: true, attributeFilter: ["class"], subtree: true }));
})();
