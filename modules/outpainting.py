"""Outpainting: extend the canvas in chosen directions and mask the new area for inpainting."""
from __future__ import annotations

from PIL import Image

from modules import masking

DIRECTIONS = ("left", "right", "up", "down")


def expand_canvas(image: Image.Image, pixels: int, directions: list[str], multiple: int = 8
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
