"""Which checkpoints exist, which one is loaded, and switching between them; the checkpoints kept loaded
besides it (A1111's sd_checkpoints_limit, within a memory budget), least recently used dropped first."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from modules import sd_models
from modules.errors import ModelLoadError
from modules.models import model_optimizations
from modules.models.checkpoints import CHECKPOINT_SUFFIXES, CheckpointInfo, HashCache, list_checkpoints
from modules.models.model_optimizations import Optimizations
from modules.paths import DataPaths
from modules.sd_vae import is_vae_sidecar

log = logging.getLogger(__name__)


class ModelManager:
    """Owns the loaded model. Call `load` only from the engine's worker thread."""

    def __init__(
        self, paths: DataPaths, device: torch.device, dtype: torch.dtype, optimizations: Optimizations = Optimizations()
    ) -> None:
        self.paths = paths
        self.device = device
        self.dtype = dtype
        self.optimizations = optimizations
        self.hashes = HashCache(paths.hash_cache_file)
        self.current: sd_models.StableDiffusionModel | None = None
        self.loads = 0  # models built so far (switches, borrowed ones)
        # (checkpoints loaded at once, the current one included; GiB they may take together, 0 for no budget)
        self.cache_limits: Callable[[], tuple[int, float]] = lambda: (1, 0.0)
        self._kept: OrderedDict[Path, sd_models.StableDiffusionModel] = OrderedDict()  # least recently used first
        self._checkpoints: list[CheckpointInfo] = []
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> list[CheckpointInfo]:
        """Re-scan the checkpoint folders (a `*.vae.*` file there is a VAE, not a checkpoint)."""
        found = [info for info in list_checkpoints(self.paths.checkpoint_dirs()) if not is_vae_sidecar(info.path)]
        with self._lock:
            self._checkpoints = found
        return found

    @property
    def checkpoints(self) -> list[CheckpointInfo]:
        with self._lock:
            return list(self._checkpoints)

    def title(self, info: CheckpointInfo) -> str:
        """`name [hash]` when the hash is known (it is computed when a checkpoint is loaded)."""
        sha = self.hashes.cached(info.path) if info.path.is_file() else None
        return info.title(HashCache.short(sha))

    def titles(self) -> list[str]:
        return [self.title(info) for info in self.checkpoints]

    def find(self, name: str) -> CheckpointInfo:
        """Match a dropdown title, a relative name, a file name, a stem or a short hash."""
        wanted = name.strip()
        direct = Path(wanted).expanduser()
        if direct.suffix.lower() in CHECKPOINT_SUFFIXES and direct.is_file():
            return CheckpointInfo(direct.resolve(), direct.name)
        bare = wanted.rsplit(" [", 1)[0] if wanted.endswith("]") else wanted
        for info in self.checkpoints:
            sha = self.hashes.cached(info.path) if info.path.is_file() else None
            if bare in (info.name, info.path.name, info.model_name, str(info.path)) or (
                sha and wanted.lower() in (sha[:10], sha[:8], sha)
            ):
                return info
        raise ModelLoadError(f"No checkpoint named {name!r} in {', '.join(map(str, self.paths.checkpoint_dirs()))}")

    def find_listed(self, name: str) -> CheckpointInfo:
        """Like `find`, but only one of the listed checkpoints (never any other path on the server)."""
        info = self.find(name)
        if info.path not in {listed.path for listed in self.checkpoints}:
            raise ModelLoadError(f"{name} is not one of the checkpoints in {self.paths.sd_models}")
        return info

    @property
    def current_title(self) -> str | None:
        return self.title(self.current.checkpoint) if self.current else None

    def load(self, name: str) -> sd_models.StableDiffusionModel:
        """Switch to checkpoint `name`; the old one is kept loaded as the cache limits allow, else freed.

        A kept checkpoint comes back without reading its file. Otherwise the new file is read and recognised
        first; if that fails, the old model stays loaded. If building the new model fails after the old one was
        freed, the old one is loaded again.
        """
        info = self.find(name)
        if self.current is not None and self.current.checkpoint.path == info.path:
            return self.current
        previous, self.current = self.current, self._kept.pop(info.path, None)
        if self.current is not None:
            self._keep(previous)
            return self.current
        try:
            prepared = sd_models.prepare_checkpoint(info)
        except ModelLoadError:
            self.current = previous
            raise
        self._keep(previous)
        try:
            self.current = self._build(prepared)
            self._trim()  # the new model counts against the budget too
        except ModelLoadError:
            if previous is not None:
                self.current = self._kept.pop(previous.checkpoint.path, None)
                if self.current is None:
                    log.warning("Reloading %s after the failed switch", previous.checkpoint.name)
                    self.current = self._build(sd_models.prepare_checkpoint(previous.checkpoint))
            raise
        return self.current

    @contextmanager
    def borrowed(self, name: str) -> Iterator[sd_models.StableDiffusionModel]:
        """Listed checkpoint `name` for one job beside the loaded model: the loaded model itself when it is
        that file, else a kept one or a second model built now; after the block it is kept as the cache limits
        allow, else freed (the loaded one stays)."""
        info = self.find_listed(name)
        if self.current is not None and self.current.checkpoint.path == info.path:
            yield self.current
            return
        model = self._kept.pop(info.path, None) or self._build(sd_models.prepare_checkpoint(info))
        try:
            yield model
        finally:
            self._keep(model)

    @property
    def kept(self) -> list[CheckpointInfo]:
        """The checkpoints loaded besides the current one, least recently used first."""
        return [model.checkpoint for model in self._kept.values()]

    def _keep(self, model: sd_models.StableDiffusionModel | None) -> None:
        """Keep `model` loaded, as the most recently used one (see `_trim`)."""
        if model is None:
            return
        self._kept[model.checkpoint.path] = model
        self._kept.move_to_end(model.checkpoint.path)
        self._trim()

    def _trim(self) -> None:
        """Free the least recently used kept models beyond the checkpoint limit or the memory budget."""
        limit, budget_gib = self.cache_limits()
        budget = budget_gib * 2**30 if budget_gib > 0 else float("inf")

        def used() -> int:
            return sum(map(sd_models.model_bytes, [self.current, *self._kept.values()]))

        while self._kept and (len(self._kept) > max(0, limit - 1) or used() > budget):
            _, dropped = self._kept.popitem(last=False)
            sd_models.free_model(dropped)

    def build(self, info: CheckpointInfo) -> sd_models.StableDiffusionModel:
        """A model of checkpoint `info`, built beside the loaded one (the caller frees it)."""
        return self._build(sd_models.prepare_checkpoint(info))

    def _build(self, prepared: sd_models.PreparedCheckpoint) -> sd_models.StableDiffusionModel:
        dtype = sd_models.dtype_for(prepared, self.device, self.dtype)
        place = torch.device("cpu") if self.optimizations.offloads else self.device
        model = sd_models.build_model(prepared, place, dtype, self.paths.cache, self.hashes)
        model_optimizations.apply(model, self.optimizations, self.device)
        self.loads += 1
        return model

    def unload(self) -> None:
        """Free the loaded model and every kept one."""
        for model in [self.current, *self._kept.values()]:
            sd_models.free_model(model)
        self.current = None
        self._kept.clear()

    def require(self) -> sd_models.StableDiffusionModel:
        """The loaded model, or a clear error."""
        if self.current is None:
            raise ModelLoadError("No model is loaded. Pick a checkpoint at the top of the page.")
        return self.current
