"""Saving images: A1111 file names, date folders, the `parameters` chunk, no overwrites."""
from __future__ import annotations

import io
import os
import re
import string
import threading
from datetime import date
from pathlib import Path
from typing import IO

from PIL import Image, PngImagePlugin

from modules.atomic_files import write_atomic
from modules.errors import UserError
from modules.grids import (  # noqa: F401 - A1111's names, which scripts import from here
    GridAnnotation,
    combine_grid,
    draw_grid_annotations,
    draw_prompt_matrix,
    image_grid,
    split_grid,
)

_NON_WORD = re.compile(r"[\s" + re.escape(string.punctuation) + r"\x00-\x1f]+")
_COUNTER = re.compile(r"^(\d{5})[-.]")
_save_lock = threading.Lock()


def prompt_words(prompt: str, count: int) -> str:
    """The first `count` words of a prompt, split on spaces and punctuation, as A1111 names files."""
    words = [word for word in _NON_WORD.split(prompt) if word][:count]
    return " ".join(words)[:128].strip()


def dated_folder(base: Path, day: date | None = None) -> Path:
    """`base/<YYYY-MM-DD>`."""
    return base / (day or date.today()).isoformat()


def _next_counter(folder: Path, basename: str = "") -> int:
    pattern = re.compile(rf"^{re.escape(basename)}-(\d{{4}})[-.]") if basename else _COUNTER
    numbers = [int(m.group(1)) for name in os.listdir(folder) if (m := pattern.match(name))]
    return max(numbers, default=-1) + 1


def encode_png(image: Image.Image, infotext: str | None, chunks: dict[str, str] | None = None) -> bytes:
    """PNG bytes with the infotext in a `parameters` text chunk, then any other text `chunks` (name -> text)."""
    meta = PngImagePlugin.PngInfo()
    if infotext:
        meta.add_text("parameters", infotext)
    for name, text in (chunks or {}).items():
        meta.add_text(name, text)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=meta)
    return buffer.getvalue()


def save_numbered(image: Image.Image, folder: Path, seed: int | None, prompt: str, infotext: str | None,
                  words: int = 8, chunks: dict[str, str] | None = None, basename: str = "") -> Path:
    """Save as `<5-digit counter>[-<seed>][-<prompt words>].png` in `folder` (with a basename:
    `<basename>-<4-digit counter>…`), with `chunks` as in encode_png.

    The PNG is written to a temporary file and then linked under its final name, which fails
    rather than overwrites if the name was taken meanwhile, so two jobs never clash.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data = encode_png(image, infotext, chunks)
    suffix = prompt_words(prompt, words)
    stem_tail = ("" if seed is None else f"-{seed}") + (f"-{suffix}" if suffix else "")
    tmp = folder / f".saving-{os.getpid()}-{threading.get_ident()}.png"
    write_atomic(tmp, lambda handle: handle.write(data))
    try:
        with _save_lock:
            counter = _next_counter(folder, basename)
            while True:
                stem = f"{basename}-{counter:04d}" if basename else f"{counter:05d}"
                target = folder / f"{stem}{stem_tail}.png"
                try:
                    os.link(tmp, target)
                    return target
                except FileExistsError:
                    counter += 1
    finally:
        tmp.unlink(missing_ok=True)


def save_image(image: Image.Image, path: str | Path, basename: str, seed: int | None = None, prompt: str | None = None,
               extension: str = "png", info: str | None = None, short_filename: bool = False,
               no_prompt: bool = False, grid: bool = False, pnginfo_section_name: str = "parameters", p=None,
               existing_info: dict | None = None, forced_filename: str | None = None, suffix: str = "",
               save_to_dirs: bool | None = None) -> tuple[str, None]:
    """A1111's save_image, for scripts: save a PNG under `path` (in a dated folder when the
    save_to_dirs setting says so) and return (file name, None)."""
    from modules import shared

    opts = shared.opts
    if extension.lower().lstrip(".") != "png":
        raise UserError(f"Saving as {extension!r} is not supported; images are saved as PNG")
    folder = Path(path)
    if save_to_dirs if save_to_dirs is not None else opts.save_to_dirs:
        folder = dated_folder(folder)
    chunks = {key: str(value) for key, value in (existing_info or {}).items() if key != pnginfo_section_name}
    if info:
        chunks = {pnginfo_section_name: info, **chunks}
    if forced_filename:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{forced_filename}.png"
        write_atomic(target, lambda handle: handle.write(encode_png(image, None, chunks)))
        return str(target), None
    words = 0 if short_filename or no_prompt else opts.samples_filename_prompt_words
    target = save_numbered(image, folder, seed, f"{prompt or ''} {suffix}".strip(), None, words, chunks, basename)
    return str(target), None


_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286


def _utf16_codec(body: bytes) -> str:
    """The UTF-16 byte order of `body`: its BOM, else the side where ASCII's zero bytes fall."""
    if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
        return "utf-16"
    return "utf-16-le" if body[1::2].count(0) > body[0::2].count(0) else "utf-16-be"


def decode_user_comment(raw: bytes | str) -> str:
    """The text of an EXIF UserComment: an 8-byte character code (UNICODE, ASCII, JIS or blank), then the
    text. A1111 writes UNICODE with big-endian UTF-16; little-endian and plain UTF-8 are read too."""
    if isinstance(raw, str):
        return raw.strip("\0")
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE") and 0 in body:
        text = body[:len(body) // 2 * 2].decode(_utf16_codec(body), errors="replace")
    elif code.startswith(b"JIS"):
        text = body.decode("shift_jis", errors="replace")
    elif code.startswith((b"UNICODE", b"ASCII")) or code == bytes(8):
        text = body.decode("utf-8", errors="replace")
    else:
        text = raw.decode("utf-8", errors="replace")
    return text.strip("\0")


def read_image_texts(image: Image.Image) -> dict[str, str]:
    """Every text an image carries: PNG tEXt/iTXt/zTXt chunks, a JPEG comment, and the EXIF UserComment,
    which (as A1111 writes JPEG and WebP) becomes `parameters` when no chunk has that name."""
    info = getattr(image, "info", {})
    texts = {key: str(value) for key, value in info.items() if isinstance(value, str)}
    texts.update(getattr(image, "text", {}))
    if isinstance(info.get("comment"), bytes):
        texts["comment"] = info["comment"].decode("utf-8", errors="replace")
    comment = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    if comment:
        texts.setdefault("parameters", decode_user_comment(comment))
    return texts


def read_infotext(image: Image.Image) -> str | None:
    """The generation parameters stored in an image, if any."""
    return read_image_texts(image).get("parameters")


def open_image(source: str | Path | IO[bytes], name: str | None = None) -> Image.Image:
    """Open and fully decode an image, or raise UserError naming what is wrong with it. An image over Pillow's
    MAX_IMAGE_PIXELS (where Pillow only warns of a possible decompression bomb) is refused before decoding."""
    label = name or (Path(source).name if isinstance(source, (str, Path)) else "the image")
    try:
        image = Image.open(source)
        pixels, limit = image.width * image.height, Image.MAX_IMAGE_PIXELS
        if limit and pixels > limit:
            raise UserError(f"{label} is {image.width}x{image.height} ({pixels:,} pixels), too large to open "
                            f"safely (more than {limit:,}); it may be a decompression bomb")
        image.load()
    except Image.DecompressionBombError as exc:
        raise UserError(f"{label} is too large to open safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{label} is not an image this app can read, or it is damaged ({exc})") from exc
    return image
