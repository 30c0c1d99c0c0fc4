// Settings → "Search...", as A1111's: while the box holds text, every section's settings show together (the
// section tabs hide) and only those whose label or comment holds the text stay; an empty box brings the tabs back.
// Gradio builds a tab's contents when it is first opened, so each section is opened once before the first search.
(() => {
  let opened = false;

  async function openEverySection() {
    const buttons = [...document.querySelectorAll("#settings > .tab-wrapper [role=tab]")];
    const selected = buttons.find((button) => button.getAttribute("aria-selected") === "true");
    for (const button of buttons) {
      button.click();
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    selected?.click();
    opened = true;
  }

  async function search(text) {
    const query = text.trim().toLowerCase();
    const tabs = document.getElementById("settings");
    if (!tabs) return;
    if (query && !opened) await openEverySection();
    tabs.classList.toggle("settings-searching", Boolean(query));
    for (const setting of tabs.querySelectorAll(".tabitem [id^=setting_]")) {
      const hidden = Boolean(query) && !setting.textContent.toLowerCase().includes(query);
      setting.classList.toggle("settings-search-hidden", hidden);
      document.getElementById(`refresh_${setting.id.slice("setting_".length)}`)
        ?.classList.toggle("settings-search-hidden", hidden);
    }
  }

  document.addEventListener("input", (event) => {
    if (event.target.closest?.("#settings_search")) search(event.target.value);
  });
  const style = document.createElement("style");
  style.textContent = `#settings.settings-searching > .tab-wrapper { display: none; }
    #settings.settings-searching > .tabitem { display: flex !important; }
    .settings-search-hidden { display: none !important; }`;
  document.head.appendChild(style);
})();
