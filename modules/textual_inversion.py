"""Textual inversion embeddings from embeddings/: A1111 (.pt, .safetensors) and diffusers (.bin) files."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from modules.core.file_hashes import sha256_of_file
from modules.models import model_families
from modules.models.safe_weights import UnreadableWeightsError, UnsafeWeightsError, read_weights

log = logging.getLogger(__name__)

SUFFIXES = (".pt", ".bin", ".safetensors")


@dataclass(frozen=True)
class Embedding:
    """One embedding: its vectors for each text-encoder width it supports."""

    name: str
    path: Path
    vectors: dict[int, torch.Tensor]  # hidden width → (count, width)
    sha256: str

    @property
    def short_hash(self) -> str:
        """The hash A1111 writes into "TI hashes": the first 12 hex digits of the file's sha256."""
        return self.sha256[:12]

    def vectors_for(self, widths: list[int]) -> list[torch.Tensor] | None:
        """One tensor per text encoder of these widths, or None if the embedding doesn't fit."""
        found = [self.vectors.get(width) for width in widths]
        if any(v is None for v in found) or len({v.shape[0] for v in found}) != 1:
            return None
        return found


def read_embedding(path: Path) -> Embedding:
    """Load an embedding file; raises ValueError with the reason if it is not one."""
    try:
        data = read_weights(path)
    except (UnsafeWeightsError, UnreadableWeightsError) as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:
        raise ValueError(f"cannot read it ({type(exc).__name__}: {exc})") from exc
    tensors = _tensors(data)
    if not tensors:
        raise ValueError("it holds no embedding vectors")
    vectors = {}
    for tensor in tensors:
        tensor = tensor.detach().float()
        tensor = tensor.unsqueeze(0) if tensor.ndim == 1 else tensor.reshape(-1, tensor.shape[-1])
        vectors[tensor.shape[-1]] = tensor
    digest = sha256_of_file(path)
    return Embedding(path.stem, path, vectors, digest)


def _tensors(data: object) -> list[torch.Tensor]:
    """The vectors in the formats in use: string_to_param (A1111 .pt), emb_params, one tensor per text
    encoder by the keys a family names (SDXL: clip_l, clip_g), or a single {token: tensor} entry (diffusers .bin)."""
    if not isinstance(data, dict):
        return []
    if isinstance(data.get("string_to_param"), dict):
        return [v for v in data["string_to_param"].values() if isinstance(v, torch.Tensor)][:1]
    for keys in model_families.embedding_key_sets():
        if all(isinstance(data.get(key), torch.Tensor) for key in keys):
            return [data[key] for key in keys]
    if isinstance(data.get("emb_params"), torch.Tensor):
        return [data["emb_params"]]
    tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
    return tensors if len(tensors) == 1 else []


@dataclass
class EmbeddingDatabase:
    """Embeddings found in a folder, reloaded when files change."""

    folder: Path
    embeddings: dict[str, Embedding] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    _stamp: tuple = ()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def refresh(self) -> bool:
        """Re-read the folder if any file was added, removed or changed; True if it changed."""
        files = (
            sorted(p for p in self.folder.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if self.folder.is_dir()
            else []
        )
        stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        with self._lock:
            if stamp == self._stamp:
                return False
            loaded, errors = {}, {}
            for path in files:
                try:
                    embedding = read_embedding(path)
                except ValueError as exc:
                    errors[path.name] = f"Embedding {path.name} was skipped: {exc}"
                    log.warning(errors[path.name])
                    continue
                loaded.setdefault(embedding.name, embedding)
            self.embeddings, self.errors, self._stamp = loaded, errors, stamp
        return True

    @property
    def version(self) -> tuple:
        """Changes whenever the set of embeddings (or any of their files) changes."""
        return self._stamp

    def compatible(self, widths: list[int]) -> dict[str, list[torch.Tensor]]:
        """Name → per-encoder vectors, for the embeddings that fit text encoders of these widths."""
        with self._lock:
            return {
                name: vectors for name, e in self.embeddings.items() if (vectors := e.vectors_for(widths)) is not None
            }
