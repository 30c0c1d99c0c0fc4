"""Live previews of the latents while a job samples.

"Approx cheap" maps the four latent channels to RGB with a fixed linear map per model family;
"TAESD" decodes with diffusers' AutoencoderTiny when its weights are in models/VAE-taesd (never
downloaded); "Full" decodes with the model's own VAE. Cheap and TAESD previews are made on demand
by whoever asks for them (the page or /progress), so sampling does not wait for them."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules.safe_weights import check_pickled_files

log = logging.getLogger(__name__)

PREVIEW_METHODS = ("Approx cheap", "TAESD", "Full")

# Latent channel -> (R, G, B) weights fitted to each family's VAE, plus an RGB offset. Values in -1..1.
_LINEAR = {
    "sd": (((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721),
            (-0.2120, -0.2616, -0.7177)), (0.0, 0.0, 0.0)),
    "sdxl": (((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
              (-0.3165, -0.2492, -0.2188)), (0.1084, -0.0175, -0.0011)),
}


def to_image(pixels: torch.Tensor) -> Image.Image:
    """A (3, h, w) tensor in -1..1 as an RGB image."""
    array = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def approx_cheap(latents: torch.Tensor, sdxl: bool = False) -> Image.Image:
    """The first image of a (batch, 4, h, w) latent batch through the family's linear map, at 8x size."""
    weights, bias = _LINEAR["sdxl" if sdxl else "sd"]
    first = latents[0, :4].float().cpu()
    rgb = torch.einsum("chw,cr->rhw", first, torch.tensor(weights)) + torch.tensor(bias)[:, None, None]
    image = to_image(rgb)
    return image.resize((image.width * 8, image.height * 8), Image.Resampling.BILINEAR)


class TaesdDecoders:
    """AutoencoderTiny models from models/VAE-taesd/<name>/ (diffusers folders), loaded on first use.
    The folder for SDXL is the one whose name contains "xl"."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._loaded: dict[bool, torch.nn.Module] = {}
        self._lock = threading.Lock()

    def path(self, sdxl: bool) -> Path | None:
        candidates = sorted(p for p in self.folder.glob("*") if (p / "config.json").is_file())
        matching = [p for p in candidates if ("xl" in p.name.lower()) == sdxl]
        return matching[0] if matching else None

    def available(self, sdxl: bool) -> bool:
        return self.path(sdxl) is not None

    def decode(self, latents: torch.Tensor, sdxl: bool = False) -> Image.Image | None:
        """The first image of the batch decoded by TAESD; None when no weights are installed."""
        with self._lock:
            if sdxl not in self._loaded:
                path = self.path(sdxl)
                if path is None:
                    return None
                from diffusers import AutoencoderTiny

                check_pickled_files(path.glob("*"))
                self._loaded[sdxl] = AutoencoderTiny.from_pretrained(path, local_files_only=True).eval()
            model = self._loaded[sdxl]
            with torch.inference_mode():
                pixels = model.decode(latents[:1].float().cpu()).sample[0]
        return to_image(pixels)
