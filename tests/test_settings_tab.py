"""The Settings tab's apply function and its controls, on a real config.json."""
from __future__ import annotations

import json

import gradio as gr

from modules.options import OPTIONS, OptionInfo, Options
from modules.ui.settings import apply_settings, build_tab, setting_control


def test_apply_saves_changed_values_and_names_bad_ones(tmp_path):
    path = tmp_path / "config.json"
    opts = Options(path)
    keys = ["samples_filename_prompt_words", "emphasis", "outdir_txt2img_samples", "ESRGAN_tile"]
    message = apply_settings(opts, keys, [4.0, "Loud", "elsewhere", 192])
    assert "2 settings changed" in message and "Emphasis mode must be one of" in message
    stored = json.loads(path.read_text())
    assert stored["samples_filename_prompt_words"] == 4 and stored["outdir_txt2img_samples"] == "elsewhere"
    assert stored["emphasis"] == "Original"
    assert "0 settings changed." in apply_settings(opts, keys[:1], [4])


def test_each_setting_gets_a_fitting_control():
    assert isinstance(setting_control("grid_save", OPTIONS["grid_save"], True), gr.Checkbox)
    assert isinstance(setting_control("emphasis", OPTIONS["emphasis"], "Original"), gr.Dropdown)
    assert isinstance(setting_control("ESRGAN_tile", OPTIONS["ESRGAN_tile"], 192), gr.Slider)
    assert isinstance(setting_control("eta_noise_seed_delta", OPTIONS["eta_noise_seed_delta"], 0), gr.Number)
    assert isinstance(setting_control("outdir_txt2img_samples", OPTIONS["outdir_txt2img_samples"], "x"), gr.Textbox)


def test_sections_include_settings_extensions_declare(tmp_path):
    opts = Options(tmp_path / "config.json")
    opts.add_option("my_extension_flag", OptionInfo(False, "My extension's flag", section="My extension"))
    with gr.Blocks() as page:
        build_tab(opts)
    props = [c.get("props", {}) for c in page.get_config_file()["components"]]
    labels = {p.get("label") for p in props}
    assert {"My extension", "My extension's flag", "Saving images", "Face restoration"} <= labels
    assert "Stable Diffusion checkpoint" not in labels  # it lives in the quicksettings row
