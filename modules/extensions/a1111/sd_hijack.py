"""A1111's `modules.sd_hijack`: `model_hijack` with the parts that don't patch a model (the embedding
database, the comments and extra generation parameters a job collects). A1111 rewrites its LDM model's
layers here; this app doesn't, so hijack(), undo_hijack() and apply_optimizations() raise NotImplementedError
naming the extension that called them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modules import shared
from modules.extensions.a1111.unsupported import unsupported
from modules.textual_inversion import Embedding


@dataclass(frozen=True)
class EmbeddingInfo:
    """One embedding as A1111's Embedding shows it: `shape` is its vector width (SDXL: both encoders' summed)."""

    name: str
    filename: str
    shape: int
    vectors: int
    sha256: str
    shorthash: str

    @classmethod
    def of(cls, embedding: Embedding) -> EmbeddingInfo:
        count = next(iter(embedding.vectors.values())).shape[0]
        return cls(
            embedding.name, str(embedding.path), sum(embedding.vectors), count, embedding.sha256, embedding.short_hash
        )


class EmbeddingDatabaseView:
    """A1111's EmbeddingDatabase over the app's: `word_embeddings` fit the loaded model's text encoders,
    `skipped_embeddings` don't (all are in word_embeddings while no model is loaded)."""

    def load_textual_inversion_embeddings(self, force_reload: bool = False) -> None:
        """Read the embeddings folder again where files changed."""
        services = shared.running()
        if services is not None:
            services.networks.embeddings.refresh()

    def _split(self) -> tuple[dict[str, EmbeddingInfo], dict[str, EmbeddingInfo]]:
        services = shared.running()
        if services is None:
            return {}, {}
        database = services.networks.embeddings
        model = services.models.current
        fitting = set(database.compatible(model.prompt_encoder.widths)) if model else set(database.embeddings)
        infos = {name: EmbeddingInfo.of(e) for name, e in database.embeddings.items()}
        return ({n: i for n, i in infos.items() if n in fitting}, {n: i for n, i in infos.items() if n not in fitting})

    @property
    def word_embeddings(self) -> dict[str, EmbeddingInfo]:
        return self._split()[0]

    @property
    def skipped_embeddings(self) -> dict[str, EmbeddingInfo]:
        return self._split()[1]


class StableDiffusionModelHijack:
    """A1111's model_hijack. `comments` and `extra_generation_params` are cleared when a job starts; what an
    extension puts in extra_generation_params during the job is written into its infotext."""

    def __init__(self) -> None:
        self.comments: list[str] = []
        self.extra_generation_params: dict[str, Any] = {}
        self.embedding_db = EmbeddingDatabaseView()

    def clear_comments(self) -> None:
        self.comments = []
        self.extra_generation_params = {}

    def hijack(self, m: Any) -> None:
        unsupported("modules.sd_hijack.model_hijack.hijack")

    def undo_hijack(self, m: Any) -> None:
        unsupported("modules.sd_hijack.model_hijack.undo_hijack")

    def apply_optimizations(self, option: str | None = None) -> None:
        unsupported("modules.sd_hijack.model_hijack.apply_optimizations")


def apply_optimizations(option: str | None = None) -> None:
    unsupported("modules.sd_hijack.apply_optimizations")


def undo_optimizations() -> None:
    unsupported("modules.sd_hijack.undo_optimizations")


model_hijack = StableDiffusionModelHijack()
