"""Services built as app.py builds them (demo checkpoint, scripts loaded, script controls made),
for tests of the Script API and the built-in scripts."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import gradio as gr

from modules.jobs.generation_params import GenerationParams
from modules.paths import REPO_ROOT

SMALL = {"prompt": "a red house", "steps": 3, "width": 64, "height": 64, "seed": 11, "sampler_name": "Euler"}


def services_with_scripts(data: Path, checkpoint: Path, folders: list[Path]):
    """create_services on `data` with `checkpoint`, the scripts of `folders` and the built-in ones,
    each tab's script controls created as the page creates them (kept in `services.ui_inputs`)."""
    from app import create_services
    from modules.cmd_args import parse_args

    (data / "models" / "Stable-diffusion").mkdir(parents=True, exist_ok=True)
    shutil.copy(checkpoint, data / "models" / "Stable-diffusion" / "demo.safetensors")
    made = create_services(parse_args(["--data-dir", str(data)]))
    deadline = time.monotonic() + 120
    while made.models.current is None and time.monotonic() < deadline:
        time.sleep(0.2)
    made.scripts.load([*folders, REPO_ROOT / "scripts"])
    with gr.Blocks():
        made.ui_inputs = {tab: runner.setup_ui() for tab, runner in made.scripts.runners.items()}
    return made


def _as_sent(control, value):
    """What the page sends for a value: an index-typed control sends its choice's index."""
    if getattr(control, "type", None) == "index" and isinstance(value, str):
        return [choice[0] for choice in control.choices].index(value)
    return value


def script_args(services, title: str | None, values: dict[str, object], tab: str = "txt2img") -> list:
    """The page's script inputs: the dropdown index, then every control's value (by label)."""
    runner = services.scripts.runners[tab]
    chosen = runner.script_by_title(title) if title else 0
    return [chosen] + [
        _as_sent(control, values.get(control.label, control.value)) for control in services.ui_inputs[tab][1:]
    ]


def generate(services, title: str | None = None, values: dict | None = None, **kw):
    """A small txt2img job through Services, with a script picked by title and its controls' values."""
    params = GenerationParams(**{**SMALL, **kw})
    return services.jobs.txt2img(params, script_args(services, title, values or {})).result(timeout=300)


def generate_img2img(services, image, title: str | None = None, values: dict | None = None, **kw):
    """The same for img2img with one init image."""
    from modules.img2img import Img2ImgInputs

    params = GenerationParams(**{**SMALL, **kw})
    args = script_args(services, title, values or {}, "img2img")
    return services.jobs.img2img(params, Img2ImgInputs([image]), args).result(timeout=300)
