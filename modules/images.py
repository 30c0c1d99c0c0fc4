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

_NON_WORD = re.compile(r"[\s" + re.escape(string.punctuation) + r"\x00-\x1f]+")
_COUNTER = re.compile(r"^(\d{5})-")
_save_lock = threading.Lock()


def prompt_words(prompt: str, count: int) -> str:
    """The first `count` words of a prompt, split on spaces and punctuation, as A1111 names files."""
    words = [word for word in _NON_WORD.split(prompt) if word][:count]
    return " ".join(words)[:128].strip()


def dated_folder(base: Path, day: date | None = None) -> Path:
    """`base/<YYYY-MM-DD>`."""
    return base / (day or date.today()).isoformat()


def _next_counter(folder: Path) -> int:
    numbers = [int(m.group(1)) for name in os.listdir(folder) if (m := _COUNTER.match(name))]
    return max(numbers, default=-1) + 1


def encode_png(image: Image.Image, infotext: str | None) -> bytes:
    """PNG bytes with the infotext in a `parameters` text chunk."""
    meta = PngImagePlugin.PngInfo()
    if infotext:
        meta.add_text("parameters", infotext)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=meta)
    return buffer.getvalue()


def save_image(image: Image.Image, folder: Path, seed: int, prompt: str, infotext: str | None,
               words: int = 8) -> Path:
    """Save as `<5-digit counter>-<seed>[-<prompt words>].png` in `folder`.

    The PNG is written to a temporary file and then linked under its final name, which fails
    rather than overwrites if the name was taken meanwhile, so two jobs never clash.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data = encode_png(image, infotext)
    suffix = prompt_words(prompt, words)
    stem_tail = f"-{seed}" + (f"-{suffix}" if suffix else "")
    tmp = folder / f".saving-{os.getpid()}-{threading.get_ident()}.png"
    write_atomic(tmp, lambda handle: handle.write(data))
    try:
        with _save_lock:
            counter = _next_counter(folder)
            while True:
                target = folder / f"{counter:05d}{stem_tail}.png"
                try:
                    os.link(tmp, target)
                    return target
                except FileExistsError:
                    counter += 1
    finally:
        tmp.unlink(missing_ok=True)


def read_infotext(image: Image.Image) -> str | None:
    """The generation parameters stored in an image, if any."""
    return image.info.get("parameters") if hasattr(image, "info") else None


def open_image(source: str | Path | IO[bytes], name: str | None = None) -> Image.Image:
    """Open and fully decode an image, or raise UserError naming what is wrong with it."""
    label = name or (Path(source).name if isinstance(source, (str, Path)) else "the image")
    try:
        image = Image.open(source)
        image.load()
    except Image.DecompressionBombError as exc:
        raise UserError(f"{label} is too large to open safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{label} is not an image this app can read, or it is damaged ({exc})") from exc
    return image
