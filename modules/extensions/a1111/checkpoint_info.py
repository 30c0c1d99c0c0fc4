"""A1111's CheckpointInfo, as extensions read it from `shared.sd_model.sd_checkpoint_info`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modules.models import checkpoints


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint as A1111 describes it: `title` is "name [shorthash]", `hash` the old 8-digit short hash."""

    filename: str
    name: str
    name_for_extra: str
    model_name: str
    title: str
    hash: str | None
    sha256: str | None
    shorthash: str | None

    @classmethod
    def of(cls, info: checkpoints.CheckpointInfo, sha256: str | None) -> CheckpointInfo:
        short = checkpoints.HashCache.short(sha256)
        return cls(
            filename=str(info.path),
            name=info.name,
            name_for_extra=Path(info.name).stem,
            model_name=info.model_name,
            title=info.title(short),
            hash=sha256[:8] if sha256 else None,
            sha256=sha256,
            shorthash=short,
        )
