"""Image grids with text labels along the top and left, as A1111's scripts make them.

Labels use the font Pillow itself embeds, so nothing has to be installed or downloaded."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

INACTIVE_COLOUR = (153, 153, 153)
ACTIVE_COLOUR = (0, 0, 0)


@dataclass
class GridAnnotation:
    """One label line; an inactive one is drawn grey and struck through (prompt matrix's "off" parts)."""

    text: str = ""
    is_active: bool = True


def grid_rows(count: int, batch_size: int = 1, n_rows: int = -1, prevent_empty_spots: bool = False) -> int:
    """A1111's row count (its n_rows setting): n_rows when above 0, the batch size when 0, else about the square
    root of `count`; with prevent_empty_spots, the largest divisor of `count` not above the square root."""
    if n_rows > 0:
        rows = n_rows
    elif n_rows == 0:
        rows = batch_size
    elif prevent_empty_spots:
        rows = math.floor(math.sqrt(count))
        while rows > 1 and count % rows:
            rows -= 1
    else:
        rows = round(math.sqrt(count))
    return max(1, min(rows, count))


def image_grid(imgs: list[Image.Image], batch_size: int = 1, rows: int | None = None) -> Image.Image:
    """Paste images left to right, top to bottom, each centred in a cell of the largest image's size. Without
    `rows`: grid_rows with A1111's default settings."""
    rows = grid_rows(len(imgs), batch_size) if rows is None else max(1, min(rows, len(imgs)))
    cols = math.ceil(len(imgs) / rows)
    width, height = max(image.width for image in imgs), max(image.height for image in imgs)
    grid = Image.new("RGB", (cols * width, rows * height), "white")
    for index, image in enumerate(imgs):
        grid.paste(
            image,
            (index % cols * width + (width - image.width) // 2, index // cols * height + (height - image.height) // 2),
        )
    return grid


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _draw_labels(
    draw: ImageDraw.ImageDraw, x: int, y: int, width: int, labels: list[GridAnnotation], font, line_height: int
) -> None:
    """Centred label lines in a column `width` wide whose middle row is at y."""
    lines = [(line, label.is_active) for label in labels for line in _wrap(draw, label.text, font, width)]
    top = y - len(lines) * line_height // 2
    for number, (line, active) in enumerate(lines):
        cx, cy = x + width // 2, top + number * line_height + line_height // 2
        draw.text((cx, cy), line, font=font, fill=ACTIVE_COLOUR if active else INACTIVE_COLOUR, anchor="mm")
        if not active:
            half = draw.textlength(line, font=font) / 2
            draw.line((cx - half, cy, cx + half, cy), fill=INACTIVE_COLOUR, width=max(1, line_height // 12))


def draw_grid_annotations(
    im: Image.Image,
    width: int,
    height: int,
    hor_texts: list[list[GridAnnotation]],
    ver_texts: list[list[GridAnnotation]],
    margin: int = 0,
) -> Image.Image:
    """Add a band of column labels above the grid and row labels to its left. `width`/`height` are
    one cell's size; `margin` is extra space between cells."""
    cols, rows = len(hor_texts), len(ver_texts)
    size = max(12, (width + height) // 28)
    font, line_height = _font(size), int(size * 1.3)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 0 if all(not t.text for texts in ver_texts for t in texts) else int(width * 0.75)
    max_lines = max((sum(len(_wrap(probe, t.text, font, width)) for t in texts) for texts in hor_texts), default=0)
    has_top = max_lines and any(t.text for texts in hor_texts for t in texts)
    top = max_lines * line_height + line_height // 2 if has_top else 0
    result = Image.new("RGB", (im.width + left + margin * (cols - 1), im.height + top + margin * (rows - 1)), "white")
    for row in range(rows):
        for col in range(cols):
            cell = im.crop((col * width, row * height, (col + 1) * width, (row + 1) * height))
            result.paste(cell, (left + col * (width + margin), top + row * (height + margin)))
    draw = ImageDraw.Draw(result)
    if top:
        for col, texts in enumerate(hor_texts):
            _draw_labels(draw, left + col * (width + margin), top // 2, width, texts, font, line_height)
    if left:
        for row, texts in enumerate(ver_texts):
            _draw_labels(draw, 0, top + row * (height + margin) + height // 2, left, texts, font, line_height)
    return result


def draw_prompt_matrix(
    im: Image.Image, width: int, height: int, all_prompts: list[str], margin: int = 0
) -> Image.Image:
    """Label a prompt matrix grid: the first half of the optional parts across, the rest down; each
    cell's parts are on (black) or off (grey, struck through) by the bits of its index."""
    parts = all_prompts[1:]
    boundary = math.ceil(len(parts) / 2)
    across, down = parts[:boundary], parts[boundary:]
    hor = [
        [GridAnnotation(text, bool(pos & (1 << i))) for i, text in enumerate(across)] for pos in range(1 << len(across))
    ]
    ver = [[GridAnnotation(text, bool(pos & (1 << i))) for i, text in enumerate(down)] for pos in range(1 << len(down))]
    return draw_grid_annotations(im, width, height, hor, ver, margin)


@dataclass
class Tiles:
    """An image cut into overlapping tiles: rows of (x, tile) with each row's y and height."""

    tile_w: int
    tile_h: int
    image_w: int
    image_h: int
    overlap: int
    rows: list[tuple[int, int, list[tuple[int, Image.Image]]]]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def split_grid(image: Image.Image, tile_w: int = 512, tile_h: int = 512, overlap: int = 64) -> Tiles:
    """Cut `image` into tiles of at most tile_w x tile_h that overlap by at least `overlap` pixels."""
    overlap = max(0, min(overlap, tile_w - 1, tile_h - 1))
    rows = []
    for y in _starts(image.height, tile_h, overlap):
        h = min(tile_h, image.height - y)
        row = [
            (x, image.crop((x, y, x + min(tile_w, image.width - x), y + h)))
            for x in _starts(image.width, tile_w, overlap)
        ]
        rows.append((y, h, row))
    return Tiles(tile_w, tile_h, image.width, image.height, overlap, rows)


def _ramp_mask(size: tuple[int, int], fade: int, horizontal: bool) -> Image.Image:
    """Opaque, fading in over the first `fade` pixels along one axis."""
    w, h = size
    mask = Image.new("L", size, 255)
    steps = max(1, fade)
    for i in range(min(fade, w if horizontal else h)):
        value = round(255 * (i + 1) / (steps + 1))
        box = (i, 0, i + 1, h) if horizontal else (0, i, w, i + 1)
        mask.paste(value, box)
    return mask


def combine_grid(tiles: Tiles) -> Image.Image:
    """Put tiles back together, blending each overlap linearly so no seam shows."""
    result = Image.new("RGB", (tiles.image_w, tiles.image_h))
    previous_bottom = 0
    for y, h, row in tiles.rows:
        strip = Image.new("RGB", (tiles.image_w, h))
        previous_right = 0
        for x, tile in row:
            fade = max(0, previous_right - x)
            strip.paste(tile, (x, 0), _ramp_mask(tile.size, fade, True) if x else None)
            previous_right = x + tile.width
        fade = max(0, previous_bottom - y)
        result.paste(strip, (0, y), _ramp_mask(strip.size, fade, False) if y else None)
        previous_bottom = y + h
    return result
