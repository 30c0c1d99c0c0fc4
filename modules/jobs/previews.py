"""Live previews of the latents while a job samples.

"Approx cheap" maps the four latent channels to RGB with the fixed linear map of the model's latent format;
"Approx NN" runs A1111's tiny convolutional VAE approximation when its weights are in models/VAE-approx;
"TAESD" decodes with diffusers' AutoencoderTiny when its weights are in models/VAE-taesd (never
downloaded); "Full" decodes with the model's own VAE. All but Full are made on demand
by whoever asks for them (the page or /progress), so sampling does not wait for them. Approx NN and
TAESD fall back to Approx cheap when their weights are missing. Every method reads what it needs from the
model family's `LatentFormat`."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules.models import model_families
from modules.models.model_families.base import LatentFormat
from modules.models.model_families.sd1 import SD_LATENTS
from modules.models.safe_weights import check_pickled_files, read_weights

log = logging.getLogger(__name__)


def to_image(pixels: torch.Tensor) -> Image.Image:
    """A (3, h, w) tensor in -1..1 as an RGB image."""
    array = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def approx_cheap(latents: torch.Tensor, latent_format: LatentFormat = SD_LATENTS) -> Image.Image:
    """The first image of a latent batch through its format's linear map (latent channel → RGB weights, fitted
    to the family's VAE, plus an offset; values in -1..1), at the VAE's size."""
    first = latents[0, : latent_format.channels].float().cpu()
    bias = torch.tensor(latent_format.preview_bias)[:, None, None]
    rgb = torch.einsum("chw,cr->rhw", first, torch.tensor(latent_format.preview_rgb)) + bias
    return enlarged(to_image(rgb), latent_format.vae_scale_factor)


def enlarged(image: Image.Image, factor: int) -> Image.Image:
    """The image scaled up `factor` times, bilinearly."""
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.BILINEAR)


class FamilyDecoders:
    """One preview decoder per latent format (SD, SDXL, …), loaded from `folder` on first use and kept.
    Subclasses say how to load one (`load`, None when it can't be) and how to run it (`run`)."""

    scale = 1  # how many times larger than `run`'s output the preview is shown

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._loaded: dict[LatentFormat, torch.nn.Module] = {}
        self._lock = threading.Lock()

    def load(self, latent_format: LatentFormat) -> torch.nn.Module | None:
        raise NotImplementedError

    def run(self, model: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor, latent_format: LatentFormat = SD_LATENTS) -> Image.Image | None:
        """The first image of the batch decoded; None when no usable weights are installed."""
        with self._lock:
            if latent_format not in self._loaded:
                model = self.load(latent_format)
                if model is None:
                    return None
                self._loaded[latent_format] = model.eval()
            model = self._loaded[latent_format]
            with torch.inference_mode():
                pixels = self.run(model, latents[:1].float().cpu())[0]
        image = to_image(pixels)
        return enlarged(image, self.scale) if self.scale > 1 else image


class TaesdDecoders(FamilyDecoders):
    """AutoencoderTiny models from models/VAE-taesd/<name>/ (diffusers folders). A format with a TAESD marker
    takes the first folder whose name contains it (SDXL: "xl"); SD's takes the first with no format's marker."""

    def path(self, latent_format: LatentFormat) -> Path | None:
        markers = [fmt.taesd_marker for fmt in model_families.latent_formats() if fmt.taesd_marker]

        def fits(name: str) -> bool:
            if latent_format.taesd_marker:
                return latent_format.taesd_marker in name
            return not any(marker in name for marker in markers)

        candidates = sorted(p for p in self.folder.glob("*") if (p / "config.json").is_file())
        return next((p for p in candidates if fits(p.name.lower())), None)

    def load(self, latent_format: LatentFormat) -> torch.nn.Module | None:
        path = self.path(latent_format)
        if path is None:
            return None
        from diffusers import AutoencoderTiny

        check_pickled_files(path.glob("*"))
        return AutoencoderTiny.from_pretrained(path, local_files_only=True)

    def run(self, model: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
        return model.decode(latents).sample


# Approx NN, A1111's "VAEApprox": the latents are doubled in size (nearest neighbour) and padded with 11
# zeros on every side, then go through eight unpadded convolutions (in, out, kernel), each followed by a
# leaky ReLU of slope 0.1. The kernels eat the padding, so the RGB output is twice the latent size. The
# layers are named conv1 … conv8, the keys of A1111's weight files.
APPROX_NN_LAYERS = ((4, 8, 7), (8, 16, 5), (16, 32, 3), (32, 64, 3), (64, 32, 3), (32, 16, 3), (16, 8, 3), (8, 3, 3))


class ApproxNN(torch.nn.Module):
    """A1111's tiny convolutional approximation of the VAE decoder: (n, 4, h, w) -> (n, 3, 2h, 2w)."""

    def __init__(self) -> None:
        super().__init__()
        for number, (channels_in, channels_out, kernel) in enumerate(APPROX_NN_LAYERS, start=1):
            self.add_module(f"conv{number}", torch.nn.Conv2d(channels_in, channels_out, kernel))
        self.margin = sum(kernel - 1 for *_, kernel in APPROX_NN_LAYERS) // 2

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(latents, scale_factor=2, mode="nearest")
        x = torch.nn.functional.pad(x, (self.margin,) * 4)
        for conv in self.children():
            x = torch.nn.functional.leaky_relu(conv(x), 0.1)
        return x


class ApproxNNDecoders(FamilyDecoders):
    """ApproxNN weights from models/VAE-approx, the file each latent format names (A1111's model.pt for
    SD1/SD2, vaeapprox-sdxl.pt for SDXL), read weights-only and never downloaded. A missing or broken file is
    logged once per problem and gives no model, so the caller shows Approx cheap; a file put there later is
    picked up."""

    scale = 4  # 2x from the network, 4x more to match the image size

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self._warned: set[str] = set()

    def load(self, latent_format: LatentFormat) -> torch.nn.Module | None:
        if latent_format.approx_nn_file is None:
            return None
        path = self.folder / latent_format.approx_nn_file
        if not path.is_file():
            return self._warn(
                f"Approx NN preview: no {path.name} in {self.folder}; put A1111's {path.name} "
                f"({latent_format.label}) there to use it. Showing Approx cheap instead."
            )
        try:
            model = ApproxNN()
            model.load_state_dict(read_weights(path))
            return model
        except Exception as exc:  # any defect of the file: unsafe pickle, truncated, wrong keys or shapes
            return self._warn(
                f"Approx NN preview: could not load {path} ({' '.join(str(exc).split())[:300]}); "
                f"put a working A1111 {path.name} in {self.folder}. Showing Approx cheap instead."
            )

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning(message)

    def run(self, model: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
        return model(latents[:, :4])
