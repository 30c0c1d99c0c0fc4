"""A tiny SD-architecture checkpoint with deterministic random weights, for when no model exists.

It makes abstract images only, but exercises every part of the app: it is written in the original
single-file key layout and loaded through the same path as a user's checkpoint.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from modules.core.atomic_files import write_atomic
from modules.models.ldm_convert import to_ldm_state_dict
from modules.models.model_families import sd1
from modules.paths import MODEL_CONFIGS_DIR

log = logging.getLogger(__name__)

DEMO_FILE_NAME = "demo-tiny-sd.safetensors"
DEMO_NOTICE = (
    "No checkpoint was found, so a built-in DEMO model is loaded: it has random weights and "
    "makes abstract images. Put real checkpoints (.safetensors or .ckpt) in {folder} "
    "and pick one at the top of the page."
)


def build_demo_state_dict(seed: int = 0, blueprint: str = "demo") -> dict[str, torch.Tensor]:
    """The demo model's weights in the original (LDM) layout, identical for a given seed.

    `blueprint` names the shipped SD1-family config folder to build: "demo", or "sd1" for a
    full-size SD1.5 architecture with random weights (used by the benchmarks)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = MODEL_CONFIGS_DIR / blueprint
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(json.loads((folder / "unet" / "config.json").read_text()))
    vae = AutoencoderKL.from_config(json.loads((folder / "vae" / "config.json").read_text()))
    text = CLIPTextModel(CLIPTextConfig(**json.loads((folder / "text_encoder" / "config.json").read_text())))
    return to_ldm_state_dict(sd1.FAMILY, unet, vae, [text])


def write_demo_checkpoint(
    target: Path, seed: int = 0, blueprint: str = "demo", dtype: torch.dtype = torch.float32
) -> Path:
    """Write the demo checkpoint (or another blueprint's) as a single .safetensors file, atomically."""
    from safetensors.torch import save

    state = {key: value.to(dtype) for key, value in build_demo_state_dict(seed, blueprint).items()}
    data = save(state, metadata={"format": "pt"})  # one key: safetensors orders several at random, and the
    # same weights should give the same file (and so the same short hash) every time
    write_atomic(target, lambda handle: handle.write(data))
    return target


def add_demo_checkpoint(checkpoint_folder: Path) -> Path:
    """Write the demo checkpoint into `checkpoint_folder` (for a user who has none) and say so in the log."""
    log.warning(DEMO_NOTICE.format(folder=checkpoint_folder))
    return write_demo_checkpoint(checkpoint_folder / DEMO_FILE_NAME)
