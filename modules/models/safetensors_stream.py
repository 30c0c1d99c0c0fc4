"""Reading and writing .safetensors files one tensor at a time, so no whole state dict is ever in memory.

Reading uses plain file reads rather than safetensors' memory map: the pages of a mapped file count in the
process's resident memory for as long as the map is open, so reading three mapped checkpoints through holds
up to all three. Writing makes the header from the tensors' names, shapes and dtypes alone, then appends each
tensor's bytes in header order."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch

from modules.models.safe_weights import SAFETENSORS_MAX_HEADER

# The format's dtype names (https://github.com/huggingface/safetensors, "Format").
DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}
DTYPES = {name: dtype for dtype, name in DTYPE_NAMES.items()}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the file to be: its name, shape and dtype."""

    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class SafetensorsReader:
    """A .safetensors file's tensors by name, each read from disk when asked for. A header that doesn't fit
    the file raises ValueError."""

    def __init__(self, path: Path) -> None:
        self._path = path
        size = path.stat().st_size
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 2 <= length <= min(SAFETENSORS_MAX_HEADER, size - 8):
                raise ValueError(f"a header of {length} bytes in a file of {size}")
            entries = json.loads(handle.read(length))
        self._start = 8 + length
        self.metadata: dict[str, str] = entries.pop("__metadata__", None) or {}
        self.specs: dict[str, TensorSpec] = {}
        self._offsets: dict[str, int] = {}
        for key, entry in entries.items():
            if entry.get("dtype") not in DTYPES:
                raise ValueError(f"{key} is of dtype {entry.get('dtype')}, which isn't read here")
            spec = TensorSpec(key, tuple(int(n) for n in entry["shape"]), DTYPES[entry["dtype"]])
            begin, end = (int(n) for n in entry["data_offsets"])
            if end - begin != spec.nbytes or begin < 0 or self._start + end > size:
                raise ValueError(f"{key}'s data ({begin}..{end}) doesn't fit its shape or the file")
            self.specs[key], self._offsets[key] = spec, begin

    def tensor(self, key: str) -> torch.Tensor:
        spec = self.specs[key]
        if spec.nbytes == 0:
            return torch.empty(spec.shape, dtype=spec.dtype)
        data = bytearray(spec.nbytes)
        with open(self._path, "rb") as handle:
            handle.seek(self._start + self._offsets[key])
            if handle.readinto(data) != spec.nbytes:
                raise ValueError(f"{self._path.name} ends inside {key}")
        return torch.frombuffer(data, dtype=spec.dtype).reshape(spec.shape)


def header(specs: Sequence[TensorSpec], metadata: dict[str, str] | None = None) -> bytes:
    """The file's first bytes: the header's length (8 bytes, little-endian), then the JSON header, padded
    with spaces to a multiple of 8 so the data that follows stays aligned."""
    entries: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for spec in specs:
        if spec.dtype not in DTYPE_NAMES:
            raise ValueError(f"{spec.key}: safetensors can't hold {spec.dtype}")
        entries[spec.key] = {
            "dtype": DTYPE_NAMES[spec.dtype],
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def write_tensor(handle: IO[bytes], spec: TensorSpec, tensor: torch.Tensor) -> None:
    """Append `tensor`'s bytes, which must be what `spec` promised in the header."""
    if tuple(tensor.shape) != spec.shape or tensor.dtype != spec.dtype:
        raise ValueError(
            f"{spec.key} is {tuple(tensor.shape)} {tensor.dtype}, the header says {spec.shape} {spec.dtype}"
        )
    handle.write(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
