"""Images coming in (img2img inputs and masks, Extras sources; from the page, the API or files) made
uniform in one place: fully read, upright, 8 bits per channel, RGB or RGBA."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps

from modules.errors import UserError

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I" holds 16-bit PNGs on some Pillow versions


def check_pixel_count(image: Image.Image, name: str) -> None:
    """Refuse an image over Pillow's MAX_IMAGE_PIXELS, where Pillow itself only warns of a possible
    decompression bomb (it refuses at twice that); only the header needs to have been read."""
    pixels, limit = image.width * image.height, Image.MAX_IMAGE_PIXELS
    if limit and pixels > limit:
        raise UserError(
            f"{name} is {image.width}x{image.height} ({pixels:,} pixels), too large to open safely "
            f"(more than {limit:,}); it may be a decompression bomb"
        )


def header_size(source: str | Path | IO[bytes], name: str) -> tuple[int, int]:
    """(width, height) read from an image's header, without decoding its pixels; a UserError naming `name`
    for a file that is no image, or one over MAX_IMAGE_PIXELS (see check_pixel_count)."""
    try:
        with Image.open(source) as image:
            check_pixel_count(image, name)
            return image.size
    except Image.DecompressionBombError as exc:
        raise UserError(f"{name} is too large to open safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{name} is not an image this app can read, or it is damaged ({exc})") from exc


def _to_8bit(image: Image.Image) -> Image.Image:
    """A single-channel image with wide values as "L": 16-bit ranges scaled down, floats in 0..1 scaled up
    (0..255 otherwise). Pillow's own conversion clips instead, so most 16-bit images would turn white."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode in _SIXTEEN_BIT and values.max(initial=0) > 255:
        values = values / 257
    elif image.mode == "F" and values.max(initial=0) <= 1.0:
        values = values * 255
    return Image.fromarray(np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8), "L")


def normalize_input(image: Image.Image, name: str = "The image") -> Image.Image:
    """`image` ready for processing: fully decoded (a damaged one gives a UserError naming `name`), EXIF
    orientation applied, 16-bit and float images scaled to 8 bits, and RGB, or RGBA where it has
    transparency (an alpha band, or a palette or grey image with a transparent colour)."""
    check_pixel_count(image, name)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{name} could not be read; it may be damaged ({exc})") from exc
    if image.mode in (*_SIXTEEN_BIT, "F"):
        image = _to_8bit(image)
    if image.mode in ("RGB", "RGBA"):
        return image
    transparent = "A" in image.getbands() or "transparency" in image.info
    try:
        return image.convert("RGBA" if transparent else "RGB")
    except ValueError as exc:
        raise UserError(f"{name} is in a colour mode this app can't use ({image.mode}): {exc}") from exc


def flatten_input(image: Image.Image, name: str = "The image") -> Image.Image:
    """`normalize_input`, then transparency flattened onto white: RGB."""
    image = normalize_input(image, name)
    if image.mode == "RGBA":
        canvas = Image.new("RGBA", image.size, "white")
        canvas.alpha_composite(image)
        image = canvas.convert("RGB")
    return image
