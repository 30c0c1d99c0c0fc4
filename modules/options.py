"""User settings: declared once with defaults, stored in config.json, written atomically."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modules.core.a1111_options import NO_EFFECT
from modules.core.atomic_files import move_aside, read_json_object, write_json_atomic
from modules.core.setting_values import (
    FACE_RESTORERS,
    HIRES_REFINER_PASSES,
    INTERROGATE_CATEGORIES,
    PREVIEW_METHODS,
    SAVE_FORMATS,
    SECOND_PASS,
    check_index_url,
)
from modules.jobs.file_names import check_pattern

log = logging.getLogger(__name__)
RELOAD_UI = "Reload UI"
RESTART = "restart"
SAMPLER_PARAMETERS = "Sampler parameters"
COMPATIBILITY = "Compatibility"
MAX_PROMPT_CHUNKS = 100
MAX_INPUT_IMAGES = 16
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class OptionInfo:
    """One setting: its default, the label the Settings page shows, and its section (None: kept in
    config.json but not shown on the Settings page, as A1111's hidden options). `choices` may be a
    function for a list that changes (VAE files); `refresh` then scans again (the 🔄 beside the control).
    `check` may refuse a value with a ValueError; `applies` says when a change takes effect: None (at once),
    RELOAD_UI (when the page is built again) or RESTART (when the program starts again)."""

    default: Any
    label: str
    section: str | None = "Stable Diffusion"
    choices: tuple | Callable[[], Sequence] | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    refresh: Callable[[], Any] | None = None
    check: Callable[[Any], Any] | None = None
    applies: str | None = None
    limit: bool = False  # bounds what one request may ask for: a job's override_settings may lower it, not raise it
    server_folder: bool = False  # names a folder on the server (see modules/core/server_paths.py)
    infotext: str | None = None  # the infotext key A1111 writes it under; pasted infotext sets it for the job
    extension_state: bool = False  # changes which extensions run (see modules/extensions/__init__.py access_refusal)
    no_effect: bool = False  # an A1111 setting kept that changes nothing here (modules/core/a1111_options.py)
    # What an extension's A1111 declaration adds (modules/extensions/a1111/options.py): its Gradio component class for
    # the Settings tab and the keyword arguments (a dict, or a function returning one), HTML shown with the
    # label, and a function called after the value changed.
    component: Any = None
    component_args: dict | Callable[[], dict] | None = None
    comment: str = ""
    onchange: Callable[[], Any] | None = None

    def needs_reload_ui(self) -> OptionInfo:
        """This setting with RELOAD_UI (A1111's name, which extensions call)."""
        return replace(self, applies=RELOAD_UI)

    def needs_restart(self) -> OptionInfo:
        """This setting with RESTART (A1111's name)."""
        return replace(self, applies=RESTART)

    @property
    def shown_label(self) -> str:
        """The label with "(requires Reload UI)" or "(requires restart)" when a change waits for that."""
        return f"{self.label} (requires {self.applies})" if self.applies else self.label

    def choice_list(self) -> list | None:
        """The allowed values now, or None when any value of the default's type goes."""
        if self.choices is None:
            return None
        return list(self.choices() if callable(self.choices) else self.choices)


# Keys use A1111's names, since scripts and API clients read them.
OPTIONS: dict[str, OptionInfo] = {
    "sd_model_checkpoint": OptionInfo(None, "Stable Diffusion checkpoint"),
    "CLIP_stop_at_last_layers": OptionInfo(1, "Clip skip", minimum=1, maximum=12, step=1),
    "sd_checkpoints_limit": OptionInfo(
        1,
        "Maximum number of checkpoints loaded at the same time (the hires fix's and "
        "the refiner's included; 1: only the selected one)",
        minimum=1,
        maximum=10,
        step=1,
    ),
    "sd_checkpoints_memory_gb": OptionInfo(
        0.0,
        "Memory the loaded checkpoints may take together, GB (0: no limit "
        "besides their number; the least recently used go first)",
        minimum=0.0,
        maximum=512.0,
        step=0.5,
    ),
    "comma_padding_backtrack": OptionInfo(
        20, "Prompt word wrap length limit (comma backtrack, tokens)", minimum=0, maximum=74, step=1
    ),
    "emphasis": OptionInfo(
        "Original", "Emphasis mode", choices=("Original", "No norm", "Ignore", "None"), infotext="Emphasis"
    ),
    "randn_source": OptionInfo(
        "GPU",
        "Random number generator source (GPU: the model's device; NV: NVIDIA's numbers on any device)",
        choices=("GPU", "CPU", "NV"),
        infotext="RNG",
    ),
    "eta_noise_seed_delta": OptionInfo(0, "Eta noise seed delta (ENSD)", minimum=0, step=1, infotext="ENSD"),
    "hires_fix_refiner_pass": OptionInfo(
        SECOND_PASS,
        "Hires fix: which pass the refiner takes part in",
        choices=HIRES_REFINER_PASSES,
        infotext="Hires refiner",
    ),
    "eta_ddim": OptionInfo(
        0.0,
        "Eta for DDIM: how much fresh noise each DDIM step adds (0: none, 1: as DDPM)",
        section=SAMPLER_PARAMETERS,
        minimum=0.0,
        maximum=1.0,
        step=0.01,
        infotext="Eta DDIM",
    ),
    "eta_ancestral": OptionInfo(
        1.0,
        "Eta for k-diffusion samplers: noise multiplier of the ancestral and SDE samplers",
        section=SAMPLER_PARAMETERS,
        minimum=0.0,
        maximum=1.0,
        step=0.01,
        infotext="Eta",
    ),
    "s_churn": OptionInfo(
        0.0,
        "sigma churn: noise added before each step in the tmin–tmax range (Euler, Heun, DPM2)",
        section=SAMPLER_PARAMETERS,
        minimum=0.0,
        maximum=100.0,
        step=0.01,
        infotext="Sigma churn",
    ),
    "s_tmin": OptionInfo(
        0.0, "sigma tmin", section=SAMPLER_PARAMETERS, minimum=0.0, maximum=10.0, step=0.01, infotext="Sigma tmin"
    ),
    "s_tmax": OptionInfo(
        0.0,
        "sigma tmax (0 = no limit)",
        section=SAMPLER_PARAMETERS,
        minimum=0.0,
        maximum=999.0,
        step=0.01,
        infotext="Sigma tmax",
    ),
    "s_noise": OptionInfo(
        1.0,
        "sigma noise: scale of that noise",
        section=SAMPLER_PARAMETERS,
        minimum=0.0,
        maximum=1.1,
        step=0.001,
        infotext="Sigma noise",
    ),
    "sigma_min": OptionInfo(
        0.0,
        "sigma min of the noise schedule (0 = the model's, about 0.03)",
        section=SAMPLER_PARAMETERS,
        minimum=0.0,
        maximum=2.0,
        step=0.001,
        infotext="Schedule min sigma",
    ),
    "sigma_max": OptionInfo(
        0.0,
        "sigma max of the noise schedule (0 = the model's, about 14.6)",
        section=SAMPLER_PARAMETERS,
        minimum=0.0,
        maximum=60.0,
        step=0.001,
        infotext="Schedule max sigma",
    ),
    "rho": OptionInfo(
        0.0,
        "rho of the noise schedule (0 = default: 7 for Karras, 1 for Polyexponential)",
        section=SAMPLER_PARAMETERS,
        minimum=0.0,
        step=0.01,
        infotext="Schedule rho",
    ),
    "k_sched_type": OptionInfo(
        "Automatic",
        "Noise schedule for k-diffusion samplers when a job's Schedule type is Automatic (an older A1111 setting)",
        section=SAMPLER_PARAMETERS,
        choices=("Automatic", "karras", "exponential", "polyexponential"),
    ),
    "always_discard_next_to_last_sigma": OptionInfo(
        False, "Always discard next-to-last sigma", section=SAMPLER_PARAMETERS, infotext="Discard penultimate sigma"
    ),
    "sgm_noise_multiplier": OptionInfo(
        False,
        "SGM noise multiplier: scale the initial noise as the official SDXL code does",
        section=SAMPLER_PARAMETERS,
        infotext="SGM noise multiplier",
    ),
    "uni_pc_variant": OptionInfo(
        "bh1",
        "UniPC variant",
        section=SAMPLER_PARAMETERS,
        choices=("bh1", "bh2", "vary_coeff"),
        infotext="UniPC variant",
    ),
    "uni_pc_skip_type": OptionInfo(
        "time_uniform",
        "UniPC skip type",
        section=SAMPLER_PARAMETERS,
        choices=("time_uniform", "time_quadratic", "logSNR"),
        infotext="UniPC skip type",
    ),
    "uni_pc_order": OptionInfo(
        3,
        "UniPC order (must be below the sampling steps)",
        section=SAMPLER_PARAMETERS,
        minimum=1,
        maximum=50,
        step=1,
        infotext="UniPC order",
    ),
    "uni_pc_lower_order_final": OptionInfo(
        True, "UniPC lower order final", section=SAMPLER_PARAMETERS, infotext="UniPC lower order final"
    ),
    "sd_noise_schedule": OptionInfo(
        "Default",
        "Noise schedule for sampling (Zero Terminal SNR for models trained with it)",
        section=SAMPLER_PARAMETERS,
        choices=("Default", "Zero Terminal SNR"),
        infotext="Noise Schedule",
    ),
    "beta_dist_alpha": OptionInfo(
        0.6,
        "Beta scheduler - alpha",
        section=SAMPLER_PARAMETERS,
        minimum=0.01,
        maximum=1.0,
        step=0.01,
        infotext="Beta scheduler alpha",
    ),
    "beta_dist_beta": OptionInfo(
        0.6,
        "Beta scheduler - beta",
        section=SAMPLER_PARAMETERS,
        minimum=0.01,
        maximum=1.0,
        step=0.01,
        infotext="Beta scheduler beta",
    ),
    "enable_quantization": OptionInfo(
        False,
        "Enable quantization in K samplers for sharper and cleaner results (changes existing seeds)",
        section=SAMPLER_PARAMETERS,
    ),
    "use_old_karras_scheduler_sigmas": OptionInfo(
        False, "Use old karras scheduler sigmas (0.1 to 10)", section=COMPATIBILITY
    ),
    "no_dpmpp_sde_batch_determinism": OptionInfo(
        False, "Do not make DPM++ SDE deterministic across different batch sizes", section=COMPATIBILITY
    ),
    "use_old_scheduling": OptionInfo(
        False, "Use old prompt editing timelines", section=COMPATIBILITY, infotext="Old prompt editing timelines"
    ),
    "s_min_uncond": OptionInfo(
        0.0,
        "Negative Guidance minimum sigma: below this noise level, skip the negative "
        "prompt's UNet pass (faster, changes the image; 0 = off)",
        section="Optimizations",
        minimum=0.0,
        maximum=15.0,
        step=0.01,
        infotext="NGMS",
    ),
    "s_min_uncond_all": OptionInfo(
        False,
        "Negative Guidance minimum sigma all steps: skip the negative on every step below it, not every second one",
        section="Optimizations",
        infotext="NGMS all steps",
    ),
    "skip_early_cond": OptionInfo(
        0.0,
        "Ignore negative prompt during early sampling: the share of the first steps "
        "that run without CFG (0 = none; changes the image)",
        section="Optimizations",
        minimum=0.0,
        maximum=1.0,
        step=0.01,
        infotext="Skip Early CFG",
    ),
    "pad_cond_uncond": OptionInfo(
        False,
        "Pad prompt/negative prompt: when they differ in length, pad the shorter "
        "with empty chunks so both go through the UNet in one batch (faster; "
        "changes the image)",
        section="Optimizations",
        infotext="Pad conds",
    ),
    "pad_cond_uncond_v0": OptionInfo(
        False,
        "Pad prompt/negative prompt (v0): the negative repeats its last vector "
        "or is cut to the prompt's length, as DDIM did before A1111 1.6; "
        "overrides the above",
        section="Optimizations",
        infotext="Pad conds v0",
    ),
    "img2img_fix_steps": OptionInfo(
        False, "With img2img, do exactly the amount of steps the slider specifies", section="img2img"
    ),
    "initial_noise_multiplier": OptionInfo(
        1.0,
        "Noise multiplier for img2img: scales the noise img2img starts from (below 1 keeps more of the image)",
        section="img2img",
        minimum=0.0,
        maximum=1.5,
        step=0.001,
        infotext="Noise multiplier",
    ),
    "vae_tiling_min_pixels": OptionInfo(
        1536 * 1536,
        "Decode with a tiled VAE from this many pixels (width × height; 0 = never), so large images fit in memory",
        section="Optimizations",
        minimum=0,
        step=1,
    ),
    "max_pixels": OptionInfo(
        2048 * 2048,
        "Largest image size allowed, in pixels (width × height), for every image made, Extras included",
        section="System",
        minimum=64 * 64,
        step=1,
        limit=True,
    ),
    "max_batch_images": OptionInfo(
        100, "Most images one job may make (batch size × batch count)", section="System", minimum=1, step=1, limit=True
    ),
    "max_steps": OptionInfo(
        150, "Most sampling steps allowed", section="System", minimum=1, maximum=1000, step=1, limit=True
    ),
    "max_prompt_length": OptionInfo(
        20_000, "Longest prompt allowed, in characters", section="System", minimum=100, step=1, limit=True
    ),
    "max_prompt_chunks": OptionInfo(
        MAX_PROMPT_CHUNKS,
        "Most 75-token prompt chunks a job's prompts may cost (AND "
        "parts × the longest text's chunks, or all texts' chunks at "
        "every step, whichever is more)",
        section="System",
        minimum=1,
        step=1,
        limit=True,
    ),
    "max_grid_cells": OptionInfo(
        1000,
        "Most images a script may plan for one job (X/Y/Z cells, prompt matrix "
        "combinations, Loopback loops, prompt lines)",
        section="System",
        minimum=1,
        step=1,
        limit=True,
    ),
    "img_max_size_mp": OptionInfo(
        200, "Largest grid allowed, in megapixels", section="System", minimum=1, step=1, limit=True
    ),
    "max_input_images": OptionInfo(
        MAX_INPUT_IMAGES, "Most input images one request may send", section="System", minimum=1, step=1, limit=True
    ),
    "max_upload_bytes": OptionInfo(
        MAX_UPLOAD_BYTES, "Largest image upload allowed, in bytes", section="System", minimum=1024, step=1, limit=True
    ),
    "max_request_bytes": OptionInfo(
        MAX_INPUT_IMAGES * MAX_UPLOAD_BYTES * 4 // 3 + 1024 * 1024,
        "Largest request body allowed, in bytes (answered with 413 beyond; requires restart)",
        section="System",
        minimum=64 * 1024,
        step=1,
        limit=True,
    ).needs_restart(),
    "ray_replica_num_cpus": OptionInfo(
        1,
        "CPU cores each Ray Serve replica reserves on a cluster without GPUs (Ray also caps its torch threads at this)",
        section="System",
        minimum=1,
        step=1,
    ).needs_restart(),
    "samples_save": OptionInfo(True, "Always save all generated images", section="Saving images"),
    "outdir_txt2img_samples": OptionInfo(
        "outputs/txt2img-images", "Output folder for txt2img images", section="Saving images", server_folder=True
    ),
    "outdir_img2img_samples": OptionInfo(
        "outputs/img2img-images", "Output folder for img2img images", section="Saving images", server_folder=True
    ),
    "outdir_extras_samples": OptionInfo(
        "outputs/extras-images",
        "Output folder for images from the extras tab",
        section="Saving images",
        server_folder=True,
    ),
    "outdir_txt2img_grids": OptionInfo(
        "outputs/txt2img-grids", "Output folder for txt2img grids", section="Saving images", server_folder=True
    ),
    "outdir_img2img_grids": OptionInfo(
        "outputs/img2img-grids", "Output folder for img2img grids", section="Saving images", server_folder=True
    ),
    "grid_save": OptionInfo(True, "Always save all generated image grids", section="Saving images"),
    "sd_vae": OptionInfo("Automatic", "SD VAE"),  # Services binds the choices: Automatic, None and the files
    "quicksettings_list": OptionInfo(
        ["sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers"],
        "Quicksettings list (settings shown at the top of the page)",
        section="User interface",
    ).needs_reload_ui(),
    "samples_format": OptionInfo("png", "File format for images", section="Saving images", choices=SAVE_FORMATS),
    "grid_format": OptionInfo("png", "File format for grids", section="Saving images", choices=SAVE_FORMATS),
    "grid_extended_filename": OptionInfo(
        False, "Add extended info (seed, prompt) to filename when saving grid", section="Saving images"
    ),
    "grid_only_if_multiple": OptionInfo(True, "Do not save grids consisting of one picture", section="Saving images"),
    "grid_prevent_empty_spots": OptionInfo(
        False, "Prevent empty spots in grid (when set to autodetect)", section="Saving images"
    ),
    "n_rows": OptionInfo(
        -1,
        "Grid row count; use -1 for autodetect and 0 for it to be same as batch size",
        section="Saving images",
        minimum=-1,
        maximum=16,
        step=1,
    ),
    "return_grid": OptionInfo(True, "Show grid in gallery", section="User interface"),
    "outdir_save": OptionInfo(
        "log/images", "Directory for saving images using the Save button", section="Saving images", server_folder=True
    ),
    "save_selected_only": OptionInfo(
        True, "When using 'Save' button, only save a single selected image", section="Saving images"
    ),
    "save_write_log_csv": OptionInfo(
        True, "Write log.csv when saving images using 'Save' button", section="Saving images"
    ),
    "use_save_to_dirs_for_ui": OptionInfo(
        False, 'When using "Save" button, save images to a subdirectory', section="Saving images"
    ),
    "samples_filename_pattern": OptionInfo(
        "",
        "Images filename pattern (tags such as [seed], [prompt_spaces], "
        "[datetime<%Y%m%d>]; empty: [seed]-[prompt_words])",
        section="Saving images",
        check=check_pattern,
    ),
    "save_images_add_number": OptionInfo(True, "Add number to filename when saving", section="Saving images"),
    "jpeg_quality": OptionInfo(
        80, "Quality for saved jpeg and webp images", section="Saving images", minimum=1, maximum=100, step=1
    ),
    "webp_lossless": OptionInfo(False, "Use lossless compression for webp images", section="Saving images"),
    "save_to_dirs": OptionInfo(True, "Save images to a subdirectory per date", section="Saving images"),
    "samples_filename_prompt_words": OptionInfo(
        8, "Prompt words in file names", section="Saving images", minimum=0, maximum=32, step=1
    ),
    "live_previews_enable": OptionInfo(True, "Show live previews of the created image", section="Live previews"),
    "show_progress_every_n_steps": OptionInfo(
        10, "Live preview display period, in sampling steps", minimum=1, maximum=32, step=1, section="Live previews"
    ),
    "show_progress_type": OptionInfo(
        "Approx cheap", "Live preview method", section="Live previews", choices=PREVIEW_METHODS
    ),
    "face_restoration_model": OptionInfo(
        "GFPGAN", "Face restoration model", section="Face restoration", choices=FACE_RESTORERS
    ),
    "code_former_weight": OptionInfo(
        0.5,
        "CodeFormer weight (0 = maximum effect, 1 = minimum effect)",
        section="Face restoration",
        minimum=0.0,
        maximum=1.0,
        step=0.01,
    ),
    "interrogate_keep_models_in_memory": OptionInfo(False, "Keep models in VRAM", section="Interrogate"),
    "interrogate_return_ranks": OptionInfo(
        False, "Include ranks of model tags matches in results", section="Interrogate"
    ),
    "interrogate_clip_num_beams": OptionInfo(
        1, "BLIP: num_beams", section="Interrogate", minimum=1, maximum=16, step=1
    ),
    "interrogate_clip_min_length": OptionInfo(
        24, "BLIP: minimum description length", section="Interrogate", minimum=1, maximum=128, step=1
    ),
    "interrogate_clip_max_length": OptionInfo(
        48, "BLIP: maximum description length", section="Interrogate", minimum=1, maximum=256, step=1
    ),
    "interrogate_clip_dict_limit": OptionInfo(
        1500, "CLIP: maximum number of lines in text file (0 = No limit)", section="Interrogate", minimum=0, step=1
    ),
    "interrogate_clip_skip_categories": OptionInfo(
        [], "CLIP: skip inquire categories", section="Interrogate", choices=INTERROGATE_CATEGORIES
    ),
    "ESRGAN_tile": OptionInfo(
        192, "Tile size for upscaler models (0 = no tiling)", section="Upscaling", minimum=0, maximum=512, step=16
    ),
    "ESRGAN_tile_overlap": OptionInfo(
        8, "Tile overlap for upscaler models, in pixels", section="Upscaling", minimum=0, maximum=48, step=1
    ),
    "disabled_extensions": OptionInfo([], "Disable these extensions", section=None, extension_state=True),
    "extensions_index_url": OptionInfo(
        "https://raw.githubusercontent.com/AUTOMATIC1111/stable-diffusion-webui-extensions/master/index.json",
        "Extension index URL (Extensions → Available; http or https)",
        section="Extensions",
        extension_state=True,
        check=check_index_url,
    ),
}
# A1111's settings that change nothing here: accepted, kept in config.json and returned, not on the Settings page.
OPTIONS.update(
    {
        key: OptionInfo(default, key, section=None, no_effect=True)
        for key, default in NO_EFFECT.items()
        if key not in OPTIONS
    }
)  # tests/test_api_a1111_matrix.py checks that none is declared above


class Options:
    """Attribute access to settings (`opts.CLIP_stop_at_last_layers`), persisted in config.json."""

    def __init__(self, path: Path, declared: dict[str, OptionInfo] = OPTIONS) -> None:
        self._path = path
        self._declared = dict(declared)
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._local = threading.local()  # per-thread overrides, see overridden()
        self.load_notice: str | None = None

    def load(self) -> None:
        """Read config.json. A file that can't be read, or that holds a value its setting can't take, is moved
        aside (`config.json.bad-<time>`, said in `load_notice`): unreadable, the defaults are used; with bad
        values, those settings are back at their defaults and the others are kept and saved."""
        data, self.load_notice = read_json_object(self._path)
        bad = {}
        for key, value in data.items():
            if key in self._declared:  # others are kept as they are: an extension may declare them later
                try:
                    data[key] = self.validated(key, value)
                except ValueError as exc:
                    bad[key] = str(exc)
        if bad:
            aside = move_aside(self._path)
            for key in bad:
                del data[key]
            problems = "; ".join(f"{key}: {why}" for key, why in bad.items())
            self.load_notice = (
                f"{self._path.name} held values that can't be used ({problems}); "
                f"it was moved to {aside.name}, and those settings are back at their defaults."
            )
        if self.load_notice:
            log.error(self.load_notice)
        self._values.update(data)
        if bad:
            self.save()

    def save(self, filename: str | None = None) -> None:
        """Write all settings to config.json (A1111's `filename` argument, which extensions pass as
        shared.config_filename, names that same file)."""
        with self._lock:
            write_json_atomic(self._path, self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        """Current value of every declared setting, plus unknown keys kept from the file."""
        merged = {key: info.default for key, info in self._declared.items()}
        merged.update(self._values)
        return merged

    def declare(self, key: str, info: OptionInfo | Any) -> None:
        """Add a setting (used by extensions through on_ui_settings; an A1111 OptionInfo is turned into this
        app's through its as_setting()). A setting already declared stays, unless it is one of A1111's no-effect
        ones. A value config.json holds for it that it can't take is dropped with a warning, and the default is used."""
        if not isinstance(info, OptionInfo):
            info = info.as_setting()
        if key not in self._declared or self._declared[key].no_effect:  # an extension's own takes an A1111 key over
            self._declared[key] = info
        if key in self._values:
            try:
                self._values[key] = self.validated(key, self._values[key])
            except ValueError as exc:
                log.warning("Setting %s from %s is not used: %s", key, self._path.name, exc)
                del self._values[key]

    def add_option(self, key: str, info: OptionInfo | Any) -> None:
        """A1111's name for declare(), used by extensions' on_ui_settings callbacks."""
        self.declare(key, info)

    def onchange(self, key: str, func: Callable[[], Any], call: bool = True) -> None:
        """A1111's: call `func` after setting `key` changes (and now, with `call`)."""
        self.bind(key, onchange=func)
        if call:
            func()

    def get_default(self, key: str) -> Any:
        """A1111's: the declared default of `key`, None for an unknown key."""
        info = self._declared.get(key)
        return info.default if info else None

    @property
    def data(self) -> dict[str, Any]:
        """A1111's name: every setting's value now (a copy; change settings through set())."""
        return self.as_dict()

    @property
    def data_labels(self) -> dict[str, OptionInfo]:
        """A1111's name for declared()."""
        return self.declared()

    def bind(self, key: str, **changes: Any) -> None:
        """Give a declared setting what only the running app knows, such as `choices` and `refresh`."""
        self._declared[key] = replace(self._declared[key], **changes)

    def declared(self) -> dict[str, OptionInfo]:
        """Every declared setting (built-in ones first, then those extensions added)."""
        return dict(self._declared)

    def info(self, key: str) -> OptionInfo:
        return self._declared[key]

    def set(self, key: str, value: Any) -> None:
        """Validate one setting and save it; it is in force only once saved."""
        self.set_many({key: value})

    def set_many(self, values: dict[str, Any]) -> None:
        """Validate every value (KeyError or ValueError: nothing changes), write config.json with them, then put
        them in force. When writing fails (OSError, such as a full disk), nothing changes: the running app and
        config.json always agree."""
        checked = {key: self.validated(key, value) for key, value in values.items()}
        with self._lock:
            changed = [key for key, value in checked.items() if value != getattr(self, key)]
            write_json_atomic(self._path, {**self.as_dict(), **checked})
            self._values.update(checked)
        self._run_onchange(changed)

    def _run_onchange(self, keys: list[str]) -> None:
        """Call the onchange functions extensions gave for these settings; one that fails is logged."""
        for key in keys:
            callback = self._declared[key].onchange
            if callback is None:
                continue
            try:
                callback()
            except Exception:
                log.exception("The onchange function of setting %s failed", key)

    def validated(self, key: str, value: Any) -> Any:
        """`value` checked and converted for setting `key`; KeyError for an unknown key, ValueError for a bad value."""
        info = self._declared.get(key)
        if info is None:
            raise KeyError(f"Unknown setting {key!r}")
        return _validated(key, info, value)

    def validated_override(self, key: str, value: Any) -> Any:
        """`value` checked as for validated(), and refused (ValueError) when it would raise a limit above the
        value in force: one job's settings may tighten a limit, never loosen it."""
        checked = self.validated(key, value)
        info = self._declared[key]
        if info.limit and checked > getattr(self, key):
            raise ValueError(
                f"{info.label} ({key}) can't be raised for one job: the server allows at most "
                f"{getattr(self, key)}, asked for {checked}"
            )
        return checked

    @contextmanager
    def overridden(self, values: dict[str, Any]) -> Iterator[None]:
        """Inside the block, and on this thread only, read `values` instead of the stored settings
        (one job's override_settings; a limit may only be lowered). Nothing is stored or saved."""
        checked = {key: self.validated_override(key, value) for key, value in values.items()}
        previous = getattr(self._local, "values", {})
        self._local.values = {**previous, **checked}
        try:
            yield
        finally:
            self._local.values = previous

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        overrides = getattr(self._local, "values", {})
        if key in overrides:
            return overrides[key]
        if key in self._values:
            return self._values[key]
        info = self._declared.get(key)
        if info is None:
            raise AttributeError(f"No setting named {key!r}")
        return info.default


def _validated(key: str, info: OptionInfo, value: Any) -> Any:
    value = _typed(info, value)
    choices = info.choice_list()
    if isinstance(info.default, list):
        wrong = [item for item in value if choices is not None and item not in choices]
        if wrong:
            raise ValueError(f"{info.label} can't hold {', '.join(map(repr, wrong))}")
    elif choices is not None and value not in choices:
        raise ValueError(f"{info.label} must be one of {', '.join(map(str, choices))}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if info.minimum is not None and value < info.minimum:
            raise ValueError(f"{info.label} must be at least {info.minimum}, got {value}")
        if info.maximum is not None and value > info.maximum:
            raise ValueError(f"{info.label} must be at most {info.maximum}, got {value}")
    if info.check is not None:
        info.check(value)
    return value


def _typed(info: OptionInfo, value: Any) -> Any:
    """`value` as the type of the setting's default (a whole float may stand for an int), or ValueError: no
    null for a folder, no "nan" for a number, no 5 for a list."""
    default = info.default
    if default is None:  # a name that may be unset (the checkpoint)
        if value is None or isinstance(value, str):
            return value
        raise ValueError(f"{info.label} must be text or null, got {value!r}")
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ValueError(f"{info.label} must be true or false, got {value!r}")
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{info.label} must be a finite number, got {value!r}")
        if isinstance(default, int):
            if value != int(value):
                raise ValueError(f"{info.label} must be a whole number, got {value!r}")
            return int(value)
        return float(value)
    if isinstance(default, list):
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            return list(value)
        raise ValueError(f"{info.label} must be a list of text, got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):
        raise ValueError(f"{info.label} must be text, got {value!r}")
    return value


# Infotext ↔ settings (A1111's get_override_settings and create_override_settings_dict): a setting with an
# `infotext` key is read back from pasted text and from the API's `infotext`, and carried on the page as
# "Key: value" entries of the "Override settings" dropdown.


def infotext_setting_keys(opts: Options) -> dict[str, str]:
    """Infotext key → setting key, for every declared setting that has an infotext key."""
    return {info.infotext: key for key, info in opts.declared().items() if info.infotext}


def setting_from_text(opts: Options, key: str, text: str) -> Any:
    """Infotext's text for setting `key` as a value of that setting ("True"/"False" for a switch, a number for
    a number, else the text), checked as any value of it is (range, choices); ValueError when it doesn't fit."""
    info = opts.info(key)
    text = text.strip()
    if isinstance(info.default, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{info.label} must be True or False, got {text!r}")
        value: Any = text.lower() == "true"
    elif isinstance(info.default, (int, float)):
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{info.label} must be a number, got {text!r}") from None
    elif isinstance(info.default, list):
        raise ValueError(f"{info.label} can't be read from infotext")
    else:
        value = text
    return opts.validated(key, value)


def settings_from_infotext(
    opts: Options, parsed: dict[str, str], skip: Sequence[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """({setting key: value}, warnings) for the settings parsed infotext names (keys in `skip` aside: those
    the page's fields take), leaving out values equal to the settings in force. A value that doesn't fit its
    setting is left out and described in the warnings, which are logged too."""
    skipped = set(skip)
    settings: dict[str, Any] = {}
    warnings = []
    for name, key in infotext_setting_keys(opts).items():
        if name in skipped or parsed.get(name) is None:
            continue
        try:
            value = setting_from_text(opts, key, str(parsed[name]))
        except ValueError as exc:
            warnings.append(f"{name}: {exc}")
            log.warning("Infotext value not used: %s: %s", name, exc)
            continue
        if value != getattr(opts, key):
            settings[key] = value
    return settings, warnings


def override_entries(opts: Options, settings: dict[str, Any]) -> list[str]:
    """The "Override settings" dropdown's entries for `settings`: {"randn_source": "CPU"} → ["RNG: CPU"]."""
    return [f"{opts.info(key).infotext}: {value}" for key, value in settings.items()]


def settings_from_entries(opts: Options, entries: Sequence[str]) -> dict[str, Any]:
    """The "Override settings" entries back into {setting key: value} for one job, each checked as a job's
    override (a limit may be lowered, never raised); ValueError naming the first entry that can't be used."""
    by_name = infotext_setting_keys(opts)
    settings: dict[str, Any] = {}
    for entry in entries:
        name, colon, text = entry.partition(":")
        key = by_name.get(name.strip())
        if not colon or key is None:
            raise ValueError(
                f'Override settings: {entry!r} names no setting; entries are "<infotext key>: '
                '<value>", such as "RNG: CPU"'
            )
        try:
            settings[key] = opts.validated_override(key, setting_from_text(opts, key, text))
        except ValueError as exc:
            raise ValueError(f"Override settings: {entry!r} can't be used: {exc}") from None
    return settings
