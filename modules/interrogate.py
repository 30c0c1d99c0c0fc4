"""Interrogate CLIP, as A1111 1.10 does it: a BLIP caption, then for each term list (mediums, artists, movements,
flavors) the term CLIP finds closest to the image, appended as ", term" (or ", (term:0.123)" with
interrogate_return_ranks). The lists are clip-interrogator's; their text embeddings are computed once per CLIP
model and list and kept in the data dir's cache folder, keyed by the sha256 of the model's weights."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from modules.core.atomic_files import write_atomic
from modules.core.setting_values import INTERROGATE_CATEGORIES as CATEGORIES
from modules.models.checkpoints import HashCache
from modules.models.interrogate_models import (
    BlipCaptioner,
    InterrogateModelError,
    Ranker,
    check_models,
    load_clip,
    model_folders,
)

log = logging.getLogger(__name__)
TEXT_BATCH = 256  # terms encoded at once


@dataclass(frozen=True)
class InterrogateSettings:
    """A1111's interrogate_* settings."""

    keep_models_in_memory: bool = False
    return_ranks: bool = False
    num_beams: int = 1
    min_length: int = 24
    max_length: int = 48
    dict_limit: int = 1500  # lines read from each list; 0: all
    skip_categories: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, opts: Any) -> InterrogateSettings:
        return cls(
            bool(opts.interrogate_keep_models_in_memory),
            bool(opts.interrogate_return_ranks),
            int(opts.interrogate_clip_num_beams),
            int(opts.interrogate_clip_min_length),
            int(opts.interrogate_clip_max_length),
            int(opts.interrogate_clip_dict_limit),
            tuple(opts.interrogate_clip_skip_categories or ()),
        )


def packaged_lists() -> Path:
    """The folder of term lists the clip-interrogator package ships, found without importing it (its import
    pulls in open_clip and transformers' BLIP-2)."""
    return Path(importlib.metadata.distribution("clip-interrogator").locate_file("clip_interrogator/data"))


def read_terms(lists_dir: Path, category: str, limit: int) -> list[str]:
    """The non-empty lines of `<category>.txt`, the first `limit` of them (0: all)."""
    lines = (lists_dir / f"{category}.txt").read_text(encoding="utf-8").splitlines()
    terms = [line.strip() for line in lines if line.strip()]
    return terms[:limit] if limit > 0 else terms


def format_matches(caption: str, matches: list[tuple[str, float]], ranks: bool) -> str:
    """A1111's interrogation text: the caption, then ", term" or ", (term:0.123)" per match."""
    return caption + "".join(f", ({term}:{score:.3f})" if ranks else f", {term}" for term, score in matches)


class Interrogator:
    """Loads BLIP and CLIP on first use (on the engine's worker) and describes images."""

    def __init__(
        self,
        models_dir: Path,
        cache_dir: Path,
        hashes: HashCache,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        lists_dir: Path | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.cache_dir = Path(cache_dir) / "interrogate"
        self.hashes = hashes
        self.device = torch.device(device)
        self.dtype = dtype if self.device.type != "cpu" else torch.float32
        self.lists_dir = lists_dir
        self._blip: BlipCaptioner | None = None
        self._clip: Ranker | None = None
        self._embeddings: dict[tuple[str, str], torch.Tensor] = {}

    def interrogate(self, image: Image.Image, settings: InterrogateSettings) -> str:
        """The caption and the best term of each list not skipped. Raises MissingInterrogateModel when a model
        folder lacks files."""
        check_models(self.models_dir)
        blip, clip = self._load()
        try:
            caption = blip.caption(image, settings.num_beams, settings.min_length, settings.max_length)
            features = clip.image_features(image)
            matches = [
                self._best(clip, features, category, settings.dict_limit)
                for category in CATEGORIES
                if category not in settings.skip_categories
            ]
        finally:
            if not settings.keep_models_in_memory and self.device.type != "cpu":
                blip.to(torch.device("cpu"))  # A1111's "Keep models in VRAM" off: parked in RAM
                clip.to(torch.device("cpu"))
        return format_matches(caption, [m for m in matches if m is not None], settings.return_ranks)

    def _load(self) -> tuple[BlipCaptioner, Ranker]:
        """The models, loaded once (again when their folder changed); a file that can't be read is an
        InterrogateModelError naming the folder."""
        blip, clip = model_folders(self.models_dir)
        try:
            if self._blip is None or self._blip.folder != blip.folder():
                self._blip = None
                self._blip = BlipCaptioner(blip.folder(), self.device, self.dtype)
            if self._clip is None or self._clip.weights.parent != clip.folder():
                self._clip = None
                self._clip = load_clip(clip, self.device, self.dtype)
                self._embeddings.clear()
        except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
            folder = (blip if self._blip is None else clip).folder()
            raise InterrogateModelError(f"Could not load the interrogate model in {folder}/: {exc}") from exc
        self._blip.to(self.device)
        self._clip.to(self.device)
        return self._blip, self._clip

    def _best(self, clip: Ranker, image_features: torch.Tensor, category: str, limit: int) -> tuple[str, float] | None:
        terms = read_terms(self.lists_dir or packaged_lists(), category, limit)
        if not terms:
            return None
        text = self.text_embeddings(clip, category, terms).to(image_features.device)
        # A1111's rank: softmax over 100 × cosine similarity, the most likely term with its probability
        probabilities = (100.0 * image_features @ text.T).softmax(dim=-1).mean(dim=0)
        best = int(probabilities.argmax())
        return terms[best], float(probabilities[best])

    def text_embeddings(self, clip: Ranker, category: str, terms: list[str]) -> torch.Tensor:
        """The normalised text features of `terms`: from memory, from the cache file for this model and list, or
        computed (in batches) and written there."""
        model_hash = self.hashes.sha256(clip.weights)
        terms_hash = hashlib.sha256("\n".join(terms).encode("utf-8")).hexdigest()
        key = (model_hash, terms_hash)
        if key in self._embeddings:
            return self._embeddings[key]
        path = self.cache_file(model_hash, category, terms_hash)
        embeddings = _read_cache(path, len(terms))
        if embeddings is None:
            embeddings = torch.cat(
                [
                    clip.text_features(terms[start : start + TEXT_BATCH]).cpu()
                    for start in range(0, len(terms), TEXT_BATCH)
                ]
            )
            data = save({"embeddings": embeddings.contiguous()})
            write_atomic(path, lambda handle: handle.write(data))
            log.info("Cached the CLIP text embeddings of %d %s in %s", len(terms), category, path)
        self._embeddings[key] = embeddings
        return embeddings

    def cache_file(self, model_hash: str, category: str, terms_hash: str) -> Path:
        """Where the text embeddings of one list for one CLIP model are kept."""
        return self.cache_dir / model_hash[:16] / f"{category}-{terms_hash[:16]}.safetensors"


def _read_cache(path: Path, count: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        embeddings = load_file(path)["embeddings"]
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:  # damaged: computed again
        log.warning("Ignoring the unreadable embedding cache %s: %s", path, exc)
        return None
    return embeddings if embeddings.shape[0] == count else None
