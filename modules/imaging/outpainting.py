"""Outpainting: extend the canvas in chosen directions and mask the new area for inpainting."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt

from modules import masking

DIRECTIONS = ("left", "right", "up", "down")


def expand_canvas(
    image: Image.Image, pixels: int, directions: list[str], multiple: int = 8
) -> tuple[Image.Image, Image.Image]:
    """The image on a larger canvas and the mask of the new area (white).

    Each chosen side grows by `pixels` (plus what rounds the size up to `multiple`); the new area
    starts as colours spread in from the image's edges, so inpainting has a sensible start.
    """
    unknown = set(directions) - set(DIRECTIONS)
    if unknown:
        raise ValueError(f"Outpainting directions must be among {', '.join(DIRECTIONS)}; got {sorted(unknown)}")
    grow = {side: pixels if side in directions else 0 for side in DIRECTIONS}
    for first, second, size in (("left", "right", image.width), ("up", "down", image.height)):
        total = size + grow[first] + grow[second]
        extra = -total % multiple
        if extra:
            side = second if grow[second] or not grow[first] else first
            grow[side] += extra
    width = image.width + grow["left"] + grow["right"]
    height = image.height + grow["up"] + grow["down"]
    canvas = Image.new("RGB", (width, height))
    canvas.paste(image.convert("RGB"), (grow["left"], grow["up"]))
    mask = Image.new("L", (width, height), 255)
    mask.paste(0, (grow["left"], grow["up"], grow["left"] + image.width, grow["up"] + image.height))
    return masking.fill(canvas, mask), mask


def add_falloff_noise(
    canvas: Image.Image, mask: Image.Image, reach: int, exponent: float, variation: float, seed: int
) -> Image.Image:
    """Gaussian colour noise over the new area (white in `mask`), `variation` × 255 strong at `reach` pixels
    from the image and beyond, fading towards the image as (distance / reach) ** `exponent`: a lower exponent
    gives more variation, so more new detail, close to the seam. The same seed gives the same noise."""
    new = np.asarray(mask.convert("L")) > 127
    if variation <= 0 or not new.any():
        return canvas
    strength = np.clip(distance_transform_edt(new) / max(reach, 1), 0, 1) ** max(exponent, 0.0) * new
    noise = np.random.default_rng(seed).normal(0.0, variation * 255.0, (*new.shape, 3))
    pixels = np.asarray(canvas.convert("RGB"), dtype=np.float64) + noise * strength[..., None]
    return Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8))
