"""A1111's `modules.hashes`: file sha256s through the app's own hash cache (cache.json in the data dir).

A1111 keys its cache by a title ("lora/name"); this app keys it by the file's path, size and mtime, so
`title` is accepted and not needed."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from modules import paths, shared
from modules.core.file_hashes import addnet_sha256, sha256_of_file
from modules.models.checkpoints import ADDNET_HASHES, HASHES, HashCache


def _cache() -> HashCache:
    services = shared.running()
    if services is not None:
        return services.models.hashes
    return HashCache(Path(paths.data_path) / "cache.json")


def _section(use_addnet_hash: bool) -> str:
    return ADDNET_HASHES if use_addnet_hash else HASHES


def calculate_sha256(filename: str | Path) -> str:
    """The sha256 of a whole file, computed now."""
    return sha256_of_file(filename)


def addnet_hash_safetensors(b: BinaryIO) -> str:
    """The addnet hash of an open safetensors file: the sha256 of what follows its header."""
    return addnet_sha256(b)


def sha256_from_cache(filename: str | Path, title: str = "", use_addnet_hash: bool = False) -> str | None:
    """The cached hash of this version of the file, or None when it was never computed."""
    return _cache().cached(Path(filename), _section(use_addnet_hash))


def sha256(filename: str | Path, title: str = "", use_addnet_hash: bool = False) -> str:
    """The file's hash, computed once and cached."""
    return _cache().sha256(Path(filename), _section(use_addnet_hash))
