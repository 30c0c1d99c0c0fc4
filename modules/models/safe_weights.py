"""Reading weight files without running code: safetensors, or torch's weights-only unpickler for
pickle-based files (.ckpt, .pt, .pth, .bin). Every model loader goes through `read_weights`."""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from modules.errors import UserError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SAFETENSORS_MAX_HEADER = 100_000_000  # bytes; the safetensors format refuses longer headers


class UnsafeWeightsError(UserError):
    """A pickle-based weights file that holds code or objects other than tensors."""


class UnreadableWeightsError(UserError):
    """A file whose bytes are not a pickle, a zip (torch.save) or safetensors, or a damaged pickle."""


def file_format(path: Path) -> str | None:
    """'safetensors', 'zip' or 'pickle' from the file's first bytes; None when they are none of these."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= SAFETENSORS_MAX_HEADER:
        return "safetensors"  # perhaps truncated: then its reader says what is wrong
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    return None


def read_weights(path: str | Path) -> Any:
    """The file's contents (usually a dict of tensors), on the CPU. A pickle that would import or call
    anything besides tensors and plain containers raises UnsafeWeightsError before any of it runs; bytes
    that are no weights format, or a damaged pickle, raise UnreadableWeightsError; other read failures
    raise as the reader raised them."""
    path = Path(path)
    kind = file_format(path)
    if kind is None:
        raise UnreadableWeightsError(f"{path.name} is unreadable: its bytes are not a pickle, a zip or safetensors")
    if kind == "safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        named = re.search(r"GLOBAL (\S+)|global (\S+)|class (\S+)", str(exc))
        if named is None:
            raise UnreadableWeightsError(f"{path.name} is unreadable: a damaged pickle") from None
        raise UnsafeWeightsError(
            f"Refused to load {path.name}: it holds Python code or objects other than tensors, which could run "
            "code on this computer. Only plain tensor files are loaded; use a .safetensors version of it. "
            f"(It names {next(group for group in named.groups() if group)}.)"
        ) from None


def check_pickled_files(paths: Iterable[Path]) -> None:
    """Raise UnsafeWeightsError if any of these pickle-based weights files is unsafe, so a library that
    unpickles by itself (diffusers, facexlib) is never handed such a file."""
    for path in paths:
        if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
            read_weights(path)
