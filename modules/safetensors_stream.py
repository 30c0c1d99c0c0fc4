"""Writing a .safetensors file one tensor at a time: the header is made from the tensors' names, shapes and
dtypes alone, then each tensor's bytes follow in header order, so no whole state dict is ever in memory."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import IO, Sequence

import torch

# The format's dtype names (https://github.com/huggingface/safetensors, "Format").
DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
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


def header(specs: Sequence[TensorSpec], metadata: dict[str, str] | None = None) -> bytes:
    """The file's first bytes: the header's length (8 bytes, little-endian), then the JSON header, padded
    with spaces to a multiple of 8 so the data that follows stays aligned."""
    entries: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for spec in specs:
        if spec.dtype not in DTYPE_NAMES:
            raise ValueError(f"{spec.key}: safetensors can't hold {spec.dtype}")
        entries[spec.key] = {"dtype": DTYPE_NAMES[spec.dtype], "shape": list(spec.shape),
                             "data_offsets": [offset, offset + spec.nbytes]}
        offset += spec.nbytes
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def write_tensor(handle: IO[bytes], spec: TensorSpec, tensor: torch.Tensor) -> None:
    """Append `tensor`'s bytes, which must be what `spec` promised in the header."""
    if tuple(tensor.shape) != spec.shape or tensor.dtype != spec.dtype:
        raise ValueError(f"{spec.key} is {tuple(tensor.shape)} {tensor.dtype}, the header says {spec.shape} "
                         f"{spec.dtype}")
    handle.write(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
