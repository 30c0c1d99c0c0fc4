"""The hashes of files on disk: sha256 read in blocks (never the whole file in memory), kohya's "addnet" hash
of a safetensors file, and A1111's old 8-digit model hash. HashCache (modules/models/checkpoints.py) keeps them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

BLOCK_SIZE = 1 << 20


def sha256_of_stream(handle: BinaryIO) -> str:
    """The hex sha256 of an open file, from where it is read now to its end."""
    digest = hashlib.sha256()
    while block := handle.read(BLOCK_SIZE):
        digest.update(block)
    return digest.hexdigest()


def sha256_of_file(path: str | Path) -> str:
    """The hex sha256 of a whole file."""
    with open(path, "rb") as handle:
        return sha256_of_stream(handle)


def addnet_sha256(handle: BinaryIO) -> str:
    """The sha256 of a safetensors file from just past its header (kohya-ss's "addnet" LoRA hash)."""
    handle.seek(0)
    handle.seek(8 + int.from_bytes(handle.read(8), "little"))
    return sha256_of_stream(handle)


def legacy_model_hash(path: str | Path) -> str:
    """A1111's old 8-digit model hash: the sha256 of 64 KiB read from 1 MiB into the file."""
    with open(path, "rb") as handle:
        handle.seek(0x100000)
        return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]
