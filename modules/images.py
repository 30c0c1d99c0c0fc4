"""Saving images: A1111 file names, date folders, the `parameters` chunk, no overwrites."""

from __future__ import annotations

import io
import itertools
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from PIL import Image, PngImagePlugin

from modules.core.atomic_files import write_atomic, write_new
from modules.core.setting_values import IMAGE_FORMATS as _PIL_FORMATS
from modules.core.setting_values import SAVE_FORMATS
from modules.errors import UserError
from modules.imaging import grids
from modules.imaging.grids import (  # noqa: F401 - A1111's names, which scripts import from here
    GridAnnotation,
    combine_grid,
    draw_grid_annotations,
    draw_prompt_matrix,
    split_grid,
)
from modules.imaging.image_inputs import check_pixel_count
from modules.jobs.file_names import DEFAULT_PATTERN, NameFields, expand, prompt_words, safe_file_name  # noqa: F401 - prompt_words: scripts import it from here

log = logging.getLogger(__name__)

_COUNTER = re.compile(r"^(\d{5,})[-.]")
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
_JPEG_EXIF_LIMIT = 65000  # a JPEG APP1 segment holds at most 64 KiB
_MAX_TRIES = 100_000


def dated_folder(base: Path, day: date | None = None) -> Path:
    """`base/<YYYY-MM-DD>`."""
    return base / (day or date.today()).isoformat()


def _next_counter(folder: Path, basename: str = "") -> int:
    if not folder.is_dir():
        return 0
    pattern = re.compile(rf"^{re.escape(basename)}-(\d{{4,}})[-.]") if basename else _COUNTER
    numbers = [int(m.group(1)) for name in os.listdir(folder) if (m := pattern.match(name))]
    return max(numbers, default=-1) + 1


@dataclass(frozen=True)
class SaveFormat:
    """How images are encoded: `extension` is png, jpg (jpeg) or webp; quality applies to jpg and lossy webp."""

    extension: str = "png"
    jpeg_quality: int = 80
    webp_lossless: bool = False

    @classmethod
    def named(cls, extension: str, jpeg_quality: int = 80, webp_lossless: bool = False) -> SaveFormat:
        """The format for an extension written any way (".JPG"), or UserError for one that can't be saved."""
        name = str(extension).lower().lstrip(".")
        if name not in _PIL_FORMATS:
            raise UserError(f"Images can't be saved as {extension!r}; choose one of {', '.join(SAVE_FORMATS)}")
        return cls(name, int(jpeg_quality), bool(webp_lossless))

    @classmethod
    def from_options(cls, opts: Any) -> SaveFormat:
        """The format the samples_format, jpeg_quality and webp_lossless settings choose now."""
        return cls.named(opts.samples_format, opts.jpeg_quality, opts.webp_lossless)


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


def user_comment_exif(text: str) -> bytes:
    """EXIF holding `text` as its UserComment, as A1111 writes JPEG and WebP: UNICODE, big-endian UTF-16.
    A text too long for that in a JPEG is written as UTF-8, which read_image_texts reads too."""
    comment = b"UNICODE\0" + text.encode("utf-16-be")
    if len(comment) > _JPEG_EXIF_LIMIT:
        comment = b"UNICODE\0" + text.encode("utf-8")
    exif = Image.Exif()
    exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = comment
    return exif.tobytes()


def encode_image(
    image: Image.Image, infotext: str | None, chunks: dict[str, str] | None = None, fmt: SaveFormat = SaveFormat()
) -> bytes:
    """The image's bytes in `fmt`. PNG keeps the infotext and `chunks` as text chunks; JPEG and WebP keep
    the infotext in EXIF UserComment (a JPEG whose infotext is over 64 KiB even as UTF-8 is saved without it)."""
    kind = _PIL_FORMATS[fmt.extension]
    if kind == "PNG":
        return encode_png(image, infotext, chunks)
    exif = user_comment_exif(infotext) if infotext else b""
    if kind == "JPEG" and len(exif) > _JPEG_EXIF_LIMIT:
        log.warning("The generation parameters are too long for a JPEG's EXIF; the image is saved without them")
        exif = b""
    keep = ("RGB", "L") if kind == "JPEG" else ("RGB", "RGBA")
    if image.mode not in keep:
        image = image.convert("RGBA" if kind == "WEBP" and "A" in image.getbands() else "RGB")
    options = {"lossless": True} if kind == "WEBP" and fmt.webp_lossless else {"quality": fmt.jpeg_quality}
    buffer = io.BytesIO()
    image.save(buffer, format=kind, exif=exif, **options)
    return buffer.getvalue()


def _unique_names(folder: Path, decoration: str, basename: str, add_number: bool, ext: str) -> Iterator[str]:
    """The names save_unique offers, in order: see there."""
    decoration = safe_file_name(decoration.lstrip("-"))
    basename = safe_file_name(basename)
    if add_number or not decoration:
        tail = f"-{decoration}" if decoration else ""
        first = _next_counter(folder, basename)
        for n in range(first, first + _MAX_TRIES):
            yield f"{basename}-{n:04d}{tail}.{ext}" if basename else f"{n:05d}{tail}.{ext}"
    else:
        for n in range(_MAX_TRIES):
            yield f"{decoration}-{n}.{ext}" if n else f"{decoration}.{ext}"


def _first_free(folder: Path, names: Iterator[str]) -> Path:
    """The first of `names` (taken from the iterator) that no file in `folder` has yet."""
    return folder / next(name for name in names if not (folder / name).exists())


def _write_at(target: Path, data: bytes) -> Path:
    """Write `data` at `target`, or at `<stem>-1<suffix>`, `<stem>-2<suffix>`… when that is taken."""
    names = (f"{target.stem}-{n}{target.suffix}" if n else target.name for n in range(_MAX_TRIES))
    return write_new(target.parent, names, lambda handle: handle.write(data))


def save_unique(
    image: Image.Image,
    folder: Path,
    decoration: str,
    infotext: str | None = None,
    *,
    chunks: dict[str, str] | None = None,
    basename: str = "",
    add_number: bool = True,
    fmt: SaveFormat = SaveFormat(),
) -> Path:
    """Save under a name no other file has, even when other threads or processes save at the same moment:
    `<5-digit counter>-<decoration>.<ext>` (with a basename: `<basename>-<4-digit counter>…`), or with
    `add_number` off `<decoration>.<ext>`, then `<decoration>-1.<ext>`… when taken. The decoration is made
    safe (safe_file_name); an empty one always gets the counter."""
    data = encode_image(image, infotext, chunks, fmt)
    names = _unique_names(folder, decoration, basename, add_number, fmt.extension)
    return write_new(folder, names, lambda handle: handle.write(data))


@dataclass(frozen=True)
class FileNaming:
    """The saving settings a job captures when it is submitted: A1111's samples_filename_pattern (empty:
    `[seed]-[prompt_words]`), save_images_add_number, the prompt word count and the format."""

    pattern: str = ""
    add_number: bool = True
    prompt_words: int = 8
    format: SaveFormat = SaveFormat()
    job_timestamp: datetime = field(default_factory=datetime.now)

    @classmethod
    def from_options(cls, opts: Any) -> FileNaming:
        """The settings in force now."""
        return cls(
            opts.samples_filename_pattern,
            opts.save_images_add_number,
            opts.samples_filename_prompt_words,
            SaveFormat.from_options(opts),
        )

    def _decoration(self, fields: NameFields) -> str:
        return expand(
            self.pattern or DEFAULT_PATTERN, replace(fields, job_timestamp=self.job_timestamp), self.prompt_words
        )

    def planned_path(self, folder: Path, fields: NameFields) -> Path:
        """Where save() would put the image now: the first free name (a save elsewhere may take it first)."""
        return _first_free(
            folder, _unique_names(folder, self._decoration(fields), "", self.add_number, self.format.extension)
        )

    def save(
        self,
        image: Image.Image,
        folder: Path,
        fields: NameFields,
        infotext: str | None,
        filename: str | Path | None = None,
    ) -> Path:
        """Save one generated image in `folder`, named by the pattern; or, with `filename` (the path an
        on_before_image_saved callback chose instead), there, or at `<stem>-1…` when that is taken."""
        if filename is not None:
            return _write_at(Path(filename), encode_image(image, infotext, None, self.format))
        return save_unique(
            image, folder, self._decoration(fields), infotext, add_number=self.add_number, fmt=self.format
        )


def save_image(
    image: Image.Image,
    path: str | Path,
    basename: str,
    seed: int | None = None,
    prompt: str | None = None,
    extension: str = "png",
    info: str | None = None,
    short_filename: bool = False,
    no_prompt: bool = False,
    grid: bool = False,
    pnginfo_section_name: str = "parameters",
    p=None,
    existing_info: dict | None = None,
    forced_filename: str | None = None,
    suffix: str = "",
    save_to_dirs: bool | None = None,
) -> tuple[str, None]:
    """A1111's save_image, for scripts: save under `path` (in a dated folder when the save_to_dirs setting
    says so), named by the samples_filename_pattern setting, and return (file name, None). As in A1111, the
    on_before_image_saved callbacks see the path first (and may change it, the image or its texts), and the
    on_image_saved callbacks the path it got. `forced_filename` replaces a file of that name."""
    from modules import script_callbacks, shared

    opts = shared.opts
    fmt = SaveFormat.named(extension, opts.jpeg_quality, opts.webp_lossless)
    folder = Path(path)
    if save_to_dirs if save_to_dirs is not None else opts.save_to_dirs:
        folder = dated_folder(folder)
    texts = {key: str(value) for key, value in (existing_info or {}).items()}
    if info:
        texts[pnginfo_section_name] = info
    names: Iterator[str] = iter(())
    if forced_filename:
        planned = folder / f"{safe_file_name(forced_filename)}.{fmt.extension}"
    else:
        decoration = ""
        if not short_filename and seed is not None:
            params = getattr(p, "params", None)
            fields = NameFields.of_image(params, 0) if params is not None else NameFields()
            fields = replace(fields, seed=seed, prompt=prompt or "")
            words = 0 if no_prompt else opts.samples_filename_prompt_words
            decoration = expand(opts.samples_filename_pattern or DEFAULT_PATTERN, fields, words)
        names = _unique_names(folder, decoration + suffix, basename, opts.save_images_add_number, fmt.extension)
        planned = _first_free(folder, names)
    saving = script_callbacks.ImageSaveParams(image, p, str(planned), texts)
    script_callbacks.before_image_saved_callback(saving)
    chunks = {key: value for key, value in saving.pnginfo.items() if key != "parameters"}
    data = encode_image(saving.image, saving.pnginfo.get("parameters"), chunks, fmt)
    if saving.filename != str(planned):
        target = _write_at(Path(saving.filename), data)
    elif forced_filename:
        target = planned
        write_atomic(target, lambda handle: handle.write(data))
    else:
        target = write_new(folder, itertools.chain([planned.name], names), lambda handle: handle.write(data))
    saving.filename = str(target)
    script_callbacks.image_saved_callback(saving)
    return str(target), None


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
        text = body[: len(body) // 2 * 2].decode(_utf16_codec(body), errors="replace")
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
        check_pixel_count(image, label)
        image.load()
    except Image.DecompressionBombError as exc:
        raise UserError(f"{label} is too large to open safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{label} is not an image this app can read, or it is damaged ({exc})") from exc
    return image


def image_grid(imgs: list[Image.Image], batch_size: int = 1, rows: int | None = None) -> Image.Image:
    """A1111's image_grid: without `rows`, the n_rows and grid_prevent_empty_spots settings pick them."""
    from modules import shared

    if rows is None:
        rows = grids.grid_rows(len(imgs), batch_size, shared.opts.n_rows, shared.opts.grid_prevent_empty_spots)
    return grids.image_grid(imgs, batch_size, rows)
