"""Reading weight files without running code: safetensors, or torch's weights-only unpickler for
pickle-based files (.ckpt, .pt, .pth, .bin). Every model loader goes through `read_weights`."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Iterable

import torch

from modules.errors import UserError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


class UnsafeWeightsError(UserError):
    """A pickle-based weights file that holds code or objects other than tensors."""


def read_weights(path: str | Path) -> Any:
    """The file's contents (usually a dict of tensors), on the CPU. A pickle that would import or call
    anything besides tensors and plain containers raises UnsafeWeightsError before any of it runs;
    other read failures raise as the reader raised them."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeWeightsError(
            f"Refused to load {path.name}: it holds Python code or objects other than tensors, which could run "
            "code on this computer. Only plain tensor files are loaded; use a .safetensors version of it. "
            f"({str(exc).splitlines()[0][:200]})") from None


def check_pickled_files(paths: Iterable[Path]) -> None:
    """Raise UnsafeWeightsError if any of these pickle-based weights files is unsafe, so a library that
    unpickles by itself (diffusers, facexlib) is never handed such a file."""
    for path in paths:
        if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
            read_weights(path)
