"""A1111's img2img resize modes, for fitting an input image to the requested size."""

from __future__ import annotations

from PIL import Image

RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")
JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL, LATENT_UPSCALE = range(4)


def resize_image(image: Image.Image, mode: int, width: int, height: int) -> Image.Image:
    """Fit `image` to width × height.

    Just resize stretches; Crop and resize scales to cover and crops the middle; Resize and fill
    scales to fit and fills the bars by stretching the image's edge rows or columns. The latent
    upscale mode is handled in latent space, so here it returns the image as it is.
    """
    if mode == LATENT_UPSCALE:
        return image
    if mode == JUST_RESIZE or image.size == (width, height):
        return image.resize((width, height), Image.LANCZOS)
    ratio = width / height
    source_ratio = image.width / image.height
    cover = (mode == CROP_AND_RESIZE) == (ratio > source_ratio)
    scaled_w = width if cover else max(1, round(height * source_ratio))
    scaled_h = max(1, round(width / source_ratio)) if cover else height
    scaled = image.resize((scaled_w, scaled_h), Image.LANCZOS)
    if mode == CROP_AND_RESIZE:
        left, top = (scaled_w - width) // 2, (scaled_h - height) // 2
        return scaled.crop((left, top, left + width, top + height))
    canvas = Image.new(image.mode, (width, height))
    left, top = (width - scaled_w) // 2, (height - scaled_h) // 2
    canvas.paste(scaled, (left, top))
    _stretch_edges(canvas, scaled, left, top)
    return canvas


def _stretch_edges(canvas: Image.Image, scaled: Image.Image, left: int, top: int) -> None:
    """Fill the bars around `scaled` (pasted at left, top) with its outermost rows or columns."""
    width, height = canvas.size
    sw, sh = scaled.size
    right, bottom = width - left - sw, height - top - sh
    bands = [
        ((0, 0, 1, sh), (0, top, left, top + sh)) if left else None,
        ((sw - 1, 0, sw, sh), (left + sw, top, width, top + sh)) if right else None,
        ((0, 0, sw, 1), (left, 0, left + sw, top)) if top else None,
        ((0, sh - 1, sw, sh), (left, top + sh, left + sw, height)) if bottom else None,
    ]
    for source, (x0, y0, x1, y1) in filter(None, bands):
        canvas.paste(scaled.crop(source).resize((x1 - x0, y1 - y0)), (x0, y0))
