// Hover hints for the emoji tool buttons, worded as A1111's, and the same text as their aria-label, so a screen
// reader names them. Most are found by their text (a1111_compat.js writes `titles` as title attributes); the
// buttons under the gallery, whose 💾 means something else than the style editor's, by their id.
(() => {
  Object.assign(window.titles, {
    "🎲": "Set seed to -1, which will cause a new random number to be used every time",
    "🎲️": "Set seed to -1, which will cause a new random number to be used every time",
    "♻️": "Reuse seed from last generation, mostly useful if it was randomized",
    "↙️": "Read generation parameters from prompt or last generation if prompt is empty into user interface.",
    "🗑️": "Clear prompt",
    "📋": "Apply selected styles to current prompt",
    "📒": "Paste available values into the field",
    "🔄": "Refresh",
    "✏️": "Edit styles",
    "🖌️": "Edit styles",
    "⇅": "Switch width/height",
    "📂": "Open images output directory",
  });
  const BY_ID = [
    [/^save_(txt2img|img2img|extras)$/, "Save the image to a dedicated directory (log/images)."],
    [/^save_zip_/, "Save zip archive with images to a dedicated directory (log/images)"],
  ];
  const SYMBOLS_ONLY = /^[^\p{L}\p{N}]+$/u;

  function label() {
    for (const button of gradioApp().querySelectorAll("button")) {
      const byId = BY_ID.find(([pattern]) => pattern.test(button.id));
      if (byId && !button.title) button.title = byId[1];
      const text = button.textContent.trim();
      if (button.title && text && SYMBOLS_ONLY.test(text) && !button.hasAttribute("aria-label")) {
        button.setAttribute("aria-label", button.title);
      }
    }
  }
  let pending = false;
  onUiLoaded(label);
  onUiUpdate(() => {  // at most once per 200 ms, however many changes the page makes
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; label(); }, 200);
  });
})();
