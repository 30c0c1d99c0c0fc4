"""The Settings tab's apply function and its controls, on a real config.json."""

from __future__ import annotations

import gradio as gr

from modules import restart
from modules.options import OPTIONS, OptionInfo, Options
from modules.ui.extensions import RESTARTING
from modules.ui.settings import apply_settings, build_tab, reload_ui, setting_control


def test_apply_saves_changed_values_atomically_and_they_survive_a_new_load(tmp_path):
    path = tmp_path / "config.json"
    opts = Options(path)
    opts.save()
    before = path.stat().st_ino
    keys = ["samples_filename_prompt_words", "outdir_txt2img_samples", "ESRGAN_tile", "samples_format"]
    message = apply_settings(opts, keys, [4.0, "elsewhere", 192, "webp"])
    assert "3 settings changed: Prompt words in file names, Output folder for txt2img images, File format" in message
    assert path.stat().st_ino != before  # a new file renamed over the old one, not rewritten in place
    assert [f.name for f in tmp_path.iterdir()] == ["config.json"]  # no temporary file left
    again = Options(path)
    again.load()
    assert (again.samples_filename_prompt_words, again.outdir_txt2img_samples, again.samples_format) == (
        4,
        "elsewhere",
        "webp",
    )
    assert "0 settings changed." in apply_settings(again, keys[:1], [4])


def test_invalid_values_are_named_and_nothing_is_saved(tmp_path):
    path = tmp_path / "config.json"
    opts = Options(path)
    opts.save()
    saved = path.read_text()
    keys = ["samples_filename_prompt_words", "emphasis", "samples_filename_pattern", "jpeg_quality"]
    message = apply_settings(opts, keys, [4, "Loud", "[seed]-[sed]", 101])
    assert message.startswith("Nothing was saved")
    for problem in ("Emphasis mode must be one of", "Unknown file name tag [sed]", "must be at most 100"):
        assert problem in message
    assert path.read_text() == saved and opts.samples_filename_prompt_words == 8


def test_changes_that_wait_for_a_reload_or_a_restart_are_named(tmp_path):
    opts = Options(tmp_path / "config.json")
    opts.add_option("ext_model", OptionInfo("a", "Extension model", section="Ext").needs_restart())
    message = apply_settings(
        opts, ["quicksettings_list", "ext_model", "grid_save"], [["sd_model_checkpoint"], "b", False]
    )
    assert "3 settings changed" in message
    assert "To use Quicksettings list" in message and "press Reload UI." in message
    assert "To use Extension model, restart the program." in message
    waiting = [line for line in message.split("<br>") if line.startswith("To use")]
    assert len(waiting) == 2 and not any("image grids" in line for line in waiting)
    assert "requires Reload UI" in setting_control("quicksettings_list", OPTIONS["quicksettings_list"], []).label
    assert setting_control("grid_save", OPTIONS["grid_save"], True).label == OPTIONS["grid_save"].label


def test_reload_ui_asks_the_serving_loop_only_when_there_is_one():
    assert "can&#x27;t reload the UI in place" in reload_ui()
    with restart.accepting_restarts():
        assert RESTARTING in reload_ui()
        restart.wait_for_restart(poll=0.01)  # the request reached the loop


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
