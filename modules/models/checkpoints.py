"""Finding checkpoints, their A1111 short hashes, and reading their weights safely."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from modules.core.atomic_files import read_json_object, write_json_atomic
from modules.core.file_hashes import addnet_sha256, sha256_of_stream
from modules.errors import ModelLoadError
from modules.models.safe_weights import UnreadableWeightsError, UnsafeWeightsError, read_weights

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint file, or a diffusers-format folder, that the user can pick."""

    path: Path
    name: str  # path relative to its checkpoint folder, as A1111 shows it

    @property
    def is_diffusers_folder(self) -> bool:
        return self.path.is_dir()

    @property
    def model_name(self) -> str:
        """The `Model:` infotext value: the file name without extension."""
        return Path(self.name).stem if not self.is_diffusers_folder else Path(self.name).name

    def title(self, short_hash: str | None) -> str:
        """`name [hash]`, the dropdown label A1111 uses."""
        return f"{self.name} [{short_hash}]" if short_hash else self.name


def list_checkpoints(folders: list[Path]) -> list[CheckpointInfo]:
    """Every *.safetensors / *.ckpt (recursively) and diffusers folder, sorted by name."""
    found: dict[str, CheckpointInfo] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            is_file = path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES
            is_pipeline = path.is_dir() and (path / "model_index.json").is_file()
            if not (is_file or is_pipeline) or _inside_pipeline(path, folder):
                continue
            name = path.relative_to(folder).as_posix()
            found.setdefault(name, CheckpointInfo(path, name))
    return sorted(found.values(), key=lambda info: info.name.lower())


def _inside_pipeline(path: Path, root: Path) -> bool:
    return any(
        (parent / "model_index.json").is_file() for parent in path.parents if parent != root and root in parent.parents
    )


HASHES = "hashes"  # cache.json's section for whole-file sha256s (A1111's name)
ADDNET_HASHES = "hashes-addnet"  # sha256s of a safetensors file's tensors, without its header (kohya's)


class HashCache:
    """sha256 of files, cached in the data dir by (size, mtime), written atomically. `section` is HASHES for
    the whole file's hash, ADDNET_HASHES for the addnet hash of a safetensors file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        stored, notice = read_json_object(path)
        if notice:
            log.warning(notice)
        self._data = {
            section: stored[section] if isinstance(stored.get(section), dict) else {}
            for section in (HASHES, ADDNET_HASHES)
        }

    def cached(self, file: Path, section: str = HASHES) -> str | None:
        """The sha256 if it was computed for this exact file version before."""
        entry = self._data[section].get(str(file))
        stat = file.stat()
        if entry and entry.get("mtime") == stat.st_mtime and entry.get("size") == stat.st_size:
            return entry["sha256"]
        return None

    def sha256(self, file: Path, section: str = HASHES) -> str:
        """Compute (once) and cache the file's sha256."""
        known = self.cached(file, section)
        if known:
            return known
        with open(file, "rb") as handle:
            value = (addnet_sha256 if section == ADDNET_HASHES else sha256_of_stream)(handle)
        stat = file.stat()
        with self._lock:
            self._data[section][str(file)] = {"mtime": stat.st_mtime, "size": stat.st_size, "sha256": value}
            write_json_atomic(self._path, self._data)
        return value

    @staticmethod
    def short(sha256: str | None) -> str | None:
        """A1111's short hash: the first 10 hex digits."""
        return sha256[:10] if sha256 else None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint's tensors. .ckpt files go through torch's weights-only unpickler."""
    if not path.is_file():
        raise ModelLoadError(f"No checkpoint at {path}")
    try:
        state = read_weights(path)
    except UnsafeWeightsError as exc:
        raise ModelLoadError(str(exc)) from None
    except UnreadableWeightsError as exc:
        raise ModelLoadError(f"{path.name} is not a checkpoint (unreadable): {str(exc).split(': ', 1)[-1]}") from None
    except Exception as exc:
        raise ModelLoadError(f"Could not read {path.name}: the file is damaged or not a checkpoint ({exc})") from exc
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path.name} holds no model weights")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
