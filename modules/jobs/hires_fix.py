"""Hires fix: the second pass's size, settings and starting point (upscaled latents or images)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from PIL import Image

from modules.errors import UserError
from modules.imaging.upscalers import UpscalerLibrary, is_latent_upscaler, upscale_latents
from modules.jobs.generation_params import USE_SAME_SAMPLER, USE_SAME_SCHEDULER, GenerationParams

MULTIPLE = 8  # sizes the VAE can encode and decode exactly


@dataclass(frozen=True)
class HiresSize:
    """Where the first pass is upscaled to, and the final size after a centred crop (they differ
    only when both "Resize width to" and "Resize height to" are set and the aspect ratio changes)."""

    upscale_width: int
    upscale_height: int
    width: int
    height: int


def _snap(value: float) -> int:
    return max(64, int(value) // MULTIPLE * MULTIPLE)


def hires_size(p: GenerationParams) -> HiresSize:
    """The second pass's size: "Upscale by", or the "Resize width/height to" values, where a 0
    side follows the first pass's aspect ratio and two non-zero sides crop to fit."""
    x, y = p.hr_resize_x, p.hr_resize_y
    if not x and not y:
        width, height = _snap(p.width * p.hr_scale), _snap(p.height * p.hr_scale)
        return HiresSize(width, height, width, height)
    if not y:
        y = x * p.height / p.width
    elif not x:
        x = y * p.width / p.height
    else:
        cover = max(x / p.width, y / p.height)
        return HiresSize(_snap(max(x, p.width * cover)), _snap(max(y, p.height * cover)), _snap(x), _snap(y))
    return HiresSize(_snap(x), _snap(y), _snap(x), _snap(y))


def summary(p: GenerationParams) -> str:
    """The accordion's one-line summary, e.g. "from 512x512 to 1024x1024"."""
    size = hires_size(p)
    return f"from {p.width}x{p.height} to {size.width}x{size.height}"


def second_pass_params(p: GenerationParams) -> GenerationParams:
    """The first pass's settings with the second pass's size, steps, sampler and prompts."""
    size = hires_size(p)
    return replace(
        p,
        width=size.width,
        height=size.height,
        steps=p.hr_second_pass_steps or p.steps,
        sampler_name=p.sampler_name if p.hr_sampler_name == USE_SAME_SAMPLER else p.hr_sampler_name,
        scheduler=p.scheduler if p.hr_scheduler == USE_SAME_SCHEDULER else p.hr_scheduler,
        prompt=p.hr_prompt or p.prompt,
        negative_prompt=p.hr_negative_prompt or p.negative_prompt,
        enable_hr=False,
    )


def check_upscaler(name: str, upscalers: UpscalerLibrary | None) -> None:
    """Refuse an upscaler that is neither a latent mode nor a known pixel upscaler."""
    if is_latent_upscaler(name):
        return
    known = upscalers.names() if upscalers is not None else []
    if name not in known:
        raise UserError(
            f"Hires fix: there is no upscaler called {name!r}. Put upscaler models in "
            "models/ESRGAN (or RealESRGAN, SwinIR, …) or pick a Latent mode."
        )


def _crop_box(size: HiresSize, factor: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred final area, in units of 1/`factor` pixel."""
    left = (size.upscale_width - size.width) // 2 // factor
    top = (size.upscale_height - size.height) // 2 // factor
    return left, top, left + size.width // factor, top + size.height // factor


def upscale_latent_batch(latents: torch.Tensor, mode: str, size: HiresSize, factor: int) -> torch.Tensor:
    """First-pass latents resized with a latent mode to the second pass's size."""
    scaled = upscale_latents(latents, mode, size.upscale_height // factor, size.upscale_width // factor)
    left, top, right, bottom = _crop_box(size, factor)
    return scaled[..., top:bottom, left:right]


def upscale_image(
    image: Image.Image, name: str, size: HiresSize, upscalers: UpscalerLibrary, tile: int, overlap: int
) -> Image.Image:
    """A first-pass image resized with a pixel upscaler to the second pass's size."""
    scaled = upscalers.upscale_to(image, size.upscale_width, size.upscale_height, name, tile, overlap)
    return scaled.crop(_crop_box(size, 1))
