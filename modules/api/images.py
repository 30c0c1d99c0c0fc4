"""Images in API requests and responses: base64 or a data: URI in, base64 PNG (with its text chunks) out."""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable, Sequence

from PIL import Image, UnidentifiedImageError

from modules.api.errors import RequestError
from modules.core.limits import Limits
from modules.errors import UserError
from modules.images import encode_png, open_image
from modules.imaging.image_inputs import header_size


def decode_base64(text: str) -> bytes:
    """The bytes of a base64 string or a `data:<type>;base64,<data>` URI; ValueError saying what is wrong."""
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise ValueError("a data: URI must be base64-encoded, like data:image/png;base64,<data>")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not valid base64 ({exc})") from None
    if not data:
        raise ValueError("the image is empty")
    return data


def check_image(text: str) -> str:
    """Validator: `text` must decode to an image Pillow can identify (only its header is read here)."""
    try:
        Image.open(io.BytesIO(decode_base64(text)))
    except UnidentifiedImageError:
        raise ValueError("not an image this server can read (PNG, JPEG, WebP…)") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not an image this server can read ({exc})") from None
    return text


def decode_image(text: str, name: str, limits: Limits) -> Image.Image:
    """The fully decoded image of a base64 string or data: URI; UserError naming `name` when it is over the
    upload limit, over the input pixel limit (read from its header first) or can't be read."""
    return decode_images([(name, text)], limits, name)[0]


def decode_images(
    items: Sequence[tuple[str, str]],
    limits: Limits,
    field: str,
    extra: Sequence[tuple[str, str]] = (),
    check_sizes: Callable[[list[tuple[str, int, int]]], None] | None = None,
) -> list[Image.Image]:
    """The images (name, base64 text) of request field `field`, then the `extra` ones (a mask), fully decoded.
    Before any is decoded: `items` no more than max_input_images (a RequestError naming `field`), each image
    within the upload limit, and all their sizes, read from the headers, within check_input_pixels and
    `check_sizes` (a list of (name, width, height)), else a UserError."""
    try:
        limits.check_input_count(len(items), field)
    except UserError as exc:
        raise RequestError(field, str(exc)) from None
    named = [*items, *extra]
    data = []
    for name, text in named:
        data.append(decode_base64(text))
        limits.check_upload(len(data[-1]), name)
    sizes = [(name, *header_size(io.BytesIO(raw), name)) for (name, _), raw in zip(named, data)]
    limits.check_input_pixels(sizes)
    if check_sizes is not None:
        check_sizes(sizes)
    return [open_image(io.BytesIO(raw), name) for (name, _), raw in zip(named, data)]


def encode_image(image: Image.Image, infotext: str | None = None, chunks: dict[str, str] | None = None) -> str:
    """Base64 PNG with the infotext in its `parameters` chunk, as A1111's API sends images."""
    return base64.b64encode(encode_png(image, infotext, chunks)).decode("ascii")
