"""The A1111 Script API on the demo model: an unchanged wiki-style script, AlwaysVisible hooks,
callbacks, load errors, and the processing objects' behaviour."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from script_services import generate, services_with_scripts

from modules import script_callbacks
from modules.sampling.registry import SAMPLER_NAMES

# A script as A1111's wiki shows it: it imports modules.scripts, modules.processing, modules.shared
# and gradio, calls process_images, and saves with images.save_image.
WIKI_SCRIPT = """
import modules.scripts as scripts
import gradio as gr
import os

from modules import images
from modules.processing import process_images, Processed
from modules.shared import opts, cmd_opts, state


class Script(scripts.Script):
    def title(self):
        return "Flip"

    def show(self, is_img2img):
        return True

    def ui(self, is_img2img):
        hflip = gr.Checkbox(False, label="Horizontal flip")
        overwrite = gr.Checkbox(False, label="Overwrite existing files")
        return [hflip, overwrite]

    def run(self, p, hflip, overwrite):
        from PIL import ImageOps
        proc = process_images(p)
        for i in range(len(proc.images)):
            if hflip:
                proc.images[i] = ImageOps.mirror(proc.images[i])
            images.save_image(proc.images[i], p.outpath_samples, "flipped", proc.seed + i, proc.prompt,
                              opts.samples_format, info=proc.info, p=p)
        return proc
"""

HOOKS_SCRIPT = """
import modules.scripts as scripts
import gradio as gr
from PIL import ImageOps

calls = []


class Invert(scripts.Script):
    def title(self):
        return "Invert"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Checkbox(False, label="Invert colours")]

    def process(self, p, enabled):
        calls.append(("process", enabled, list(p.all_seeds)))
        if enabled:
            p.extra_generation_params["Inverted"] = True

    def process_batch(self, p, enabled, **kwargs):
        calls.append(("process_batch", kwargs["batch_number"], list(kwargs["seeds"])))

    def postprocess_image(self, p, pp, enabled):
        if enabled:
            pp.image = ImageOps.invert(pp.image)

    def postprocess(self, p, processed, enabled):
        calls.append(("postprocess", len(processed.images)))
"""


@pytest.fixture(scope="module")
def services(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("data")
    folder = data / "my-scripts"
    folder.mkdir()
    (folder / "flip.py").write_text(WIKI_SCRIPT)
    (folder / "hooks.py").write_text(HOOKS_SCRIPT)
    (folder / "broken.py").write_text("import modules.scripts\nraise RuntimeError('this script is broken')\n")
    made = services_with_scripts(data, demo_checkpoint, [folder])
    yield made
    made.engine.shutdown()


def test_a_failing_script_is_reported_and_the_rest_load(services):
    assert any("broken.py" in notice for notice in services.page.notices)
    titles = services.scripts.runners["txt2img"].titles
    assert "Flip" in titles and "Prompt matrix" in titles
    assert [s.title() for s in services.scripts.runners["txt2img"].alwayson] == ["Invert"]


def test_wiki_script_runs_unchanged(services):
    plain = generate(services)
    flipped = generate(services, "Flip", {"Horizontal flip": True})
    assert np.array_equal(np.asarray(flipped.images[0]), np.asarray(plain.images[0])[:, ::-1])
    saved = sorted(Path(services.jobs.output_dir("outdir_txt2img_samples")).rglob("flipped-*.png"))
    assert saved and "Seed: 11" in saved[-1].read_bytes().decode("latin-1")


def test_alwayson_hooks_change_the_job(services):
    module = next(s for s in services.scripts.runners["txt2img"].alwayson if s.title() == "Invert")
    calls = __import__(type(module).__module__).calls
    calls.clear()
    plain = generate(services, batch_size=2)
    inverted = generate(services, values={"Invert colours": True}, batch_size=2)
    assert np.array_equal(np.asarray(inverted.images[1]), 255 - np.asarray(plain.images[1]))
    assert "Inverted: True" in inverted.infotexts[0] and "Inverted" not in plain.infotexts[0]
    assert ("process", True, [11, 12]) in calls and ("process_batch", 0, [11, 12]) in calls
    assert ("postprocess", 3) in calls  # the grid and the two images, as A1111 hands them over


def test_callbacks_see_steps_and_saved_files(services):
    seen = {"steps": 0, "saved": []}
    script_callbacks.on_cfg_denoiser(lambda params: seen.__setitem__("steps", seen["steps"] + 1))
    script_callbacks.on_image_saved(lambda params: seen["saved"].append(params.filename))
    try:
        result = generate(services)
    finally:
        script_callbacks.clear()
    assert seen["steps"] == 3
    assert seen["saved"] == [str(result.paths[0])]


def test_a_raising_callback_is_logged_and_the_job_goes_on(services, caplog):
    script_callbacks.on_cfg_denoised(lambda params: 1 / 0)
    try:
        result = generate(services)
    finally:
        script_callbacks.clear()
    assert result.images and "ZeroDivisionError" in caplog.text


def test_prompt_matrix_grid_and_prompts(services):
    result = generate(services, "Prompt matrix", {}, prompt="a house|red|big", batch_size=1)
    grid, *cells = result.images
    assert len(cells) == 4
    assert [text.split("\n")[0] for text in result.infotexts[1:]] == [
        "a house",
        "a house, red",
        "a house, big",
        "a house, red, big",
    ]
    assert grid.width > 2 * 64 and grid.height > 2 * 64  # two columns, two rows, plus the label bands
    top_left = grid.crop((grid.width - 128, grid.height - 128, grid.width - 64, grid.height - 64))
    assert np.array_equal(np.asarray(top_left), np.asarray(cells[0]))
    grids = list(Path(services.jobs.output_dir("outdir_txt2img_grids")).rglob("prompt_matrix-*.png"))
    assert len(grids) == 1


def test_processing_copies_are_independent():
    from modules.processing import StableDiffusionProcessingTxt2Img

    p = StableDiffusionProcessingTxt2Img(prompt="a", steps=12, sampler_name="Euler", styles=["x"])
    q = copy.copy(p)
    q.prompt, q.steps = "b", 5
    assert (p.prompt, p.steps, q.prompt, q.steps) == ("a", 12, "b", 5)
    q.seed = [1, 2]
    assert p.seed == -1 and q.seed == [1, 2]
    with pytest.raises(ValueError, match="steps must be a int"):
        p.steps = "many"
    assert p.sampler_index == SAMPLER_NAMES.index("Euler")


def test_on_ui_tabs_adds_a_top_level_tab(services, tmp_path):
    import gradio as gr

    from modules.ui.page import build_page
    from modules.ui.ui_config import UiConfig

    def extension_tabs():
        with gr.Blocks() as ui:
            gr.Textbox(label="Extension box", elem_id="my_extension_box")
        return [(ui, "My Extension", "my_extension")]

    script_callbacks.on_ui_tabs(extension_tabs)
    try:
        page = build_page(services, UiConfig(tmp_path / "ui-config.json"))
    finally:
        script_callbacks.clear()
    props = [c.get("props", {}) for c in page.get_config_file()["components"]]
    assert any(p.get("label") == "My Extension" for p in props)
    assert any(p.get("elem_id") == "my_extension_box" for p in props)


def test_on_infotext_pasted_can_change_the_parsed_keys():
    from modules.ui.infotext_paste import read_fields

    def louder(text, params):
        params["Steps"] = str(int(params["Steps"]) * 2)

    script_callbacks.on_infotext_pasted(louder)
    try:
        pasted = read_fields("a cat\nSteps: 10, Sampler: Euler, Seed: 3")
    finally:
        script_callbacks.clear()
    assert pasted.values["steps"] == 20 and pasted.values["seed"] == 3
