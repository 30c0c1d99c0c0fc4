"""An A1111-style extension that probes the page from its javascript (written as extensions for A1111 are) and
adds an on_app_started route: what test_browser_extensions puts into its app's extensions folder before the
app starts."""

from pathlib import Path

EXT = "probe-ext"
ROUTES = """from modules import script_callbacks


def routes(_demo, app):
    @app.get("/tacapi/v1/tag-list")
    def tag_list():
        return ["1girl", "scenery"]


script_callbacks.on_app_started(routes)
"""
# Written as extensions for A1111 are: globals, DOMContentLoaded, the folder from document.currentScript.
PROBE = """
var probe = {beforeDomContentLoaded: document.readyState === "loading", updates: 0, tabs: [], optionChanges: 0};
var probeFolder = decodeURIComponent(new URL(document.currentScript.src).pathname).replace(/^\\/file=/, "")
  .replace(/\\/javascript\\/[^/]*$/, "");
titles["Generate"] = "Probe: make the images";
document.addEventListener("DOMContentLoaded", () => { probe.domContentLoaded = true; });
onUiUpdate(() => { probe.updates += 1; });
onUiTabChange(() => { probe.tabs.push(get_uiCurrentTabContent().id); });
onOptionsChanged(() => { probe.optionChanges += 1; probe.clipSkip = opts.CLIP_stop_at_last_layers; });
onUiLoaded(async () => {
  probe.generate = gradioApp().getElementById("txt2img_generate")?.tagName;
  probe.buttonTexts = [...gradioApp().querySelectorAll("#txt2img_generate, #img2img_generate, #settings_submit")]
    .map((button) => button.textContent);
  probe.ids = ["txt2img_prompt", "txt2img_neg_prompt", "txt2img_gallery", "txt2img_settings", "txt2img_width",
               "txt2img_height", "txt2img_res_switch_btn", "txt2img_styles", "txt2img_steps", "txt2img_cfg_scale",
               "txt2img_seed", "img2img_prompt", "img2img_neg_prompt", "img2img_generate", "img2img_gallery",
               "img2img_settings", "img2img_res_switch_btn", "img2img_seed", "tab_txt2img", "tab_img2img",
               "tab_settings", "quicksettings", "settings"].filter((id) => !gradioApp().getElementById(id));
  probe.areas = ["#txt2img_prompt", "#txt2img_neg_prompt", "#img2img_prompt", "#img2img_neg_prompt"]
    .map((id) => gradioApp().querySelector(`${id} > label > textarea`)?.tagName);
  probe.samplesFormat = opts.samples_format;
  probe.currentTab = get_uiCurrentTab()?.textContent.trim();
  probe.tags = await (await fetch("tacapi/v1/tag-list")).json();
  probe.csv = await (await fetch(`file=${probeFolder}/tags/tags.csv?${Date.now()}`)).text();
  probe.done = true;
});
"""


def write_probe_extension(extensions: Path) -> None:
    """The probe extension (its route, its javascript, a data file) as extensions/probe-ext."""
    ext = extensions / EXT
    for name, text in (("scripts/routes.py", ROUTES), ("javascript/probe.js", PROBE), ("tags/tags.csv", "1girl,0\n")):
        (ext / name).parent.mkdir(parents=True, exist_ok=True)
        (ext / name).write_text(text)


def probe(page, key: str):
    """What the probe's javascript found for `key`."""
    return page.evaluate(f"window.probe[{key!r}]")
