"""Inpainting masks: blur, invert, the "Only masked" crop region, "fill", and compositing back."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter

from modules.imaging.image_inputs import normalize_input

MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")
FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING = range(4)
MASK_MODES = ("Inpaint masked", "Inpaint not masked")
INPAINT_AREAS = ("Whole picture", "Only masked")
Box = tuple[int, int, int, int]


def to_mask(image: Image.Image, size: tuple[int, int], rounded: bool = True) -> Image.Image:
    """An "L" mask (255 = repaint) of `size` from any image: alpha if it has some (with `rounded`, as A1111's
    mask_round, made hard: 255 above 128, else 0), else luminance."""
    image = normalize_input(image, "The mask")
    if image.mode in ("RGBA", "LA") and image.getextrema()[-1][0] < 255:
        mask = image.getchannel("A")
        if rounded:
            mask = mask.point(lambda v: 255 if v > 128 else 0)
    else:
        mask = image.convert("L")
    return mask if mask.size == size else mask.resize(size, Image.LANCZOS)


def prepare_mask(mask: Image.Image, invert: bool, blur: int, blur_y: int | None = None) -> Image.Image:
    """Invert ("Inpaint not masked") and blur the mask as A1111 does: OpenCV's Gaussian blur across by `blur`,
    then down by `blur_y` (default: the same), each σ over 2·⌊2.5·σ + 0.5⌋ + 1 pixels, rounded to 8 bits after
    each (OpenCV comes with gfpgan; its fixed-point rounding is A1111's)."""
    if invert:
        mask = Image.eval(mask, lambda v: 255 - v)
    blur_y = blur if blur_y is None else blur_y
    if max(blur, blur_y) <= 0:
        return mask
    import cv2

    values = np.asarray(mask.convert("L"))
    if blur > 0:
        values = cv2.GaussianBlur(values, (2 * int(2.5 * blur + 0.5) + 1, 1), blur)
    if blur_y > 0:
        values = cv2.GaussianBlur(values, (1, 2 * int(2.5 * blur_y + 0.5) + 1), blur_y)
    return Image.fromarray(values)


def crop_region(mask: Image.Image, padding: int, width: int, height: int) -> Box | None:
    """The box "Only masked" works on: the mask's bounding box plus `padding`, grown to the
    width:height aspect ratio and kept inside the image. None for an empty mask."""
    box = mask.getbbox()
    if box is None:
        return None
    x0, y0, x1, y1 = box[0] - padding, box[1] - padding, box[2] + padding, box[3] + padding
    w, h = x1 - x0, y1 - y0
    target = width / height
    if w / h < target:
        grow = round(h * target) - w
        x0, x1 = x0 - grow // 2, x1 + grow - grow // 2
    else:
        grow = round(w / target) - h
        y0, y1 = y0 - grow // 2, y1 + grow - grow // 2
    return _inside((x0, y0, x1, y1), mask.size)


def _inside(box: Box, size: tuple[int, int]) -> Box:
    """Shift a box into the image, shrinking it only where it is bigger than the image."""
    x0, y0, x1, y1 = box
    w, h = min(x1 - x0, size[0]), min(y1 - y0, size[1])
    x0 = min(max(x0, 0), size[0] - w)
    y0 = min(max(y0, 0), size[1] - h)
    return x0, y0, x0 + w, y0 + h


# A1111's fill: (blur radius, times its layer is laid on), from the widest spread to the sharpest
_FILL_LAYERS = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Replace the masked area with colours spread in from around it ("Masked content: fill"), as A1111 does.

    The unmasked pixels, with the inverted mask as alpha (premultiplied, so blurring spreads colour and coverage
    together), are blurred at decreasing radii; each blurred layer is laid over the result with alpha
    compositing, the sharper ones last. Unmasked pixels end up exactly as they were."""
    kept = _outside(image, mask.convert("L"))
    result = Image.new("RGBA", image.size)
    for radius, times in _FILL_LAYERS:
        layer = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(times):
            result.alpha_composite(layer)
    return result.convert("RGB")


def latent_mask(
    mask: Image.Image, height: int, width: int, device: torch.device, dtype: torch.dtype, rounded: bool = True
) -> torch.Tensor:
    """The mask at latent size, (1, 1, height, width), 1 = repaint: resized with Pillow's bicubic filter (A1111's,
    by default) and rounded to 0/1 as A1111 does by default."""
    small = np.asarray(mask.convert("L").resize((width, height), Image.BICUBIC), dtype=np.float32) / 255.0
    return torch.from_numpy(np.around(small) if rounded else small)[None, None].to(device=device, dtype=dtype)


def composite(original: Image.Image, generated: Image.Image, mask: Image.Image, box: Box | None) -> Image.Image:
    """Put `generated` back into `original` as A1111 overlays it: the original's pixels, with the inverted mask as
    their alpha, alpha-composited over `generated` (resized into `box` on a transparent canvas, for "Only
    masked"). For "Whole picture" (no box) A1111 doubles the mask first, so a blurred edge leans to the result.
    Outside the mask the result is the original's pixels exactly."""
    if box is None:
        cover = Image.eval(mask.convert("L"), lambda v: min(255, 2 * v))
        result = generated.convert("RGBA")
    else:
        cover = mask.convert("L")
        result = Image.new("RGBA", original.size)
        result.paste(generated.convert("RGB").resize((box[2] - box[0], box[3] - box[1]), Image.LANCZOS), box[:2])
    result.alpha_composite(_outside(original, cover).convert("RGBA"))
    return result.convert("RGB")


def _outside(image: Image.Image, mask: Image.Image) -> Image.Image:
    """`image` with the inverted "L" `mask` as its alpha, premultiplied ("RGBa"): what lies outside the mask."""
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=Image.eval(mask, lambda v: 255 - v))
    return kept
