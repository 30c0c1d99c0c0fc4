"""The script of a fixture extension for tests/test_a1111_names.py: it imports every A1111 name the app
provides for extensions, each way extensions import them, and uses them at import, in on_ui_settings, in
a Script's hooks and in image-saving callbacks. What it sees is kept in SEEN for the test to read."""

import gradio as gr
import modules.devices
import modules.generation_parameters_copypaste as copypaste_by_old_name
from modules.devices import (  # noqa: F401  # noqa: F401
    NansException,
    autocast,
    cpu,
    device,
    dtype,
    dtype_unet,
    dtype_vae,
    get_optimal_device,
    torch_gc,
    without_autocast,
)
from modules.generation_parameters_copypaste import parse_generation_parameters as parse_by_old_name
from modules.hashes import addnet_hash_safetensors, calculate_sha256, sha256, sha256_from_cache  # noqa: F401
from modules.infotext_utils import ParamBinding, parse_generation_parameters, paste_fields, register_paste_params_button  # noqa: F401
from modules.safe import load, unsafe_torch_load  # noqa: F401
from modules.sd_hijack import model_hijack
from modules.sd_samplers import all_samplers, samplers, samplers_for_img2img
from modules.sd_schedulers import schedulers, schedulers_map

from modules import (
    devices,
    hashes,
    infotext_utils,
    safe,
    script_callbacks,
    scripts,
    sd_hijack,
    sd_samplers,
    sd_schedulers,
    shared,
)
from modules.img2img import process_batch  # noqa: F401
from modules.paths import data_path, extensions_builtin_dir, extensions_dir, models_path, script_path
from modules.processing import create_binary_mask  # noqa: F401

SECTION = ("compat", "Compat test")
SEEN = {
    "same devices module": modules.devices is devices,
    "same copypaste module": copypaste_by_old_name is infotext_utils,
    "same parser": parse_by_old_name is parse_generation_parameters,
    "device": device,
    "dtype": dtype,
    "paths": {
        "data_path": data_path,
        "extensions_dir": extensions_dir,
        "models_path": models_path,
        "script_path": script_path,
        "extensions_builtin_dir": extensions_builtin_dir,
    },
    "folders": {
        name: getattr(shared.cmd_opts, name)
        for name in ("embeddings_dir", "hypernetwork_dir", "lora_dir", "ckpt_dir", "vae_dir")
    },
    "samplers": [s.name for s in all_samplers],
    "img2img samplers": [s.name for s in samplers_for_img2img],
    "visible samplers": len(samplers),
    "schedules": {s.name: schedulers_map[s.label].name for s in schedulers},
    "styles": shared.prompt_styles,
    "state": shared.state,
    "before saved": [],
    "after saved": [],
}


PICKS = ["x", "y"]


def refresh_picks():
    """A refresh function that finds a new choice, as Tag Autocomplete's rescans its tag files."""
    if "z" not in PICKS:
        PICKS.append("z")


def on_ui_settings():
    shared.opts.add_option("compat_flag", shared.OptionInfo(True, "Compat flag").info("an explanation").needs_restart())
    options = {
        "compat_mode": shared.OptionInfo("b", "Compat mode", gr.Radio, {"choices": ["a", "b"]}),
        "compat_pick": shared.OptionInfo(
            "x", "Compat pick", gr.Dropdown, lambda: {"choices": PICKS}, refresh=refresh_picks
        ),
        "compat_level": shared.OptionInfo(3, "Compat level", gr.Slider, {"minimum": 1, "maximum": 5, "step": 1}),
        "compat_text": shared.OptionInfo("", "Compat text", gr.Textbox, {"lines": 3}).link("docs", "https://x.test"),
    }
    for key, info in shared.options_section(SECTION, options).items():
        shared.opts.add_option(key, info)
    late = shared.OptionInfo("z", "Compat late")
    late.section = SECTION  # as Tag Autocomplete does: the section set after the option is made
    shared.opts.add_option(key="compat_late", info=late)


script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_before_image_saved(lambda params: SEEN["before saved"].append(params.filename))
script_callbacks.on_image_saved(lambda params: SEEN["after saved"].append(params.filename))


def call_hijack():
    """An LDM-model hijack, which the app can't honour."""
    model_hijack.hijack(shared.sd_model)


def construct_sampler():
    return sd_samplers.all_samplers[0].constructor(shared.sd_model)


class CompatScript(scripts.Script):
    """Always on: puts a key in model_hijack.extra_generation_params, as extensions did in A1111."""

    def title(self):
        return "Compat names"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p, *args):
        model_hijack.extra_generation_params["Compat hijack"] = "on"
        SEEN["hashes module"] = hashes
        SEEN["safe module"] = safe
        SEEN["sd_hijack module"] = sd_hijack
        SEEN["sd_schedulers module"] = sd_schedulers
        SEEN["sd_model"] = shared.sd_model
