"""Model switching: which checkpoint and VAE are loaded, as the page, the API and a job's override_settings ask,
and the other checkpoints a job borrows (its hires fix's and its refiner's). Every switch runs on the engine's
worker."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from typing import Any

from modules import script_callbacks
from modules.core.engine import Engine, JobContext
from modules.errors import UserError
from modules.models.model_manager import ModelManager
from modules.options import Options
from modules.sd_models import StableDiffusionModel
from modules.sd_vae import VaeLibrary

log = logging.getLogger(__name__)


class ModelSwitching:
    """Loads checkpoints and VAEs through the engine; `load_error` says why no model is loaded, when one failed."""

    def __init__(self, opts: Options, models: ModelManager, vaes: VaeLibrary, engine: Engine) -> None:
        self.opts, self.models, self.vaes, self.engine = opts, models, vaes, engine
        self.load_error: str | None = None

    def load_checkpoint(self, name: str, listed_only: bool = True) -> Future[StableDiffusionModel]:
        """Queue a checkpoint switch; on success it becomes the sd_model_checkpoint setting. Unless
        `listed_only` is False (the operator's --ckpt), `name` must be one of the listed checkpoints, never any
        other file on the server (ModelLoadError at once)."""
        if listed_only:
            self.models.find_listed(name)

        def run(ctx: JobContext) -> StableDiffusionModel:
            try:
                model = self.models.load(name)
            except UserError as exc:
                log.error("Could not load checkpoint %s: %s", name, exc)
                raise
            self.opts.set("sd_model_checkpoint", self.models.current_title)
            self.load_error = None
            self.sync_vae()
            script_callbacks.model_loaded_callback(model)
            return model

        return self.engine.submit("load checkpoint", run)

    def set_vae(self, choice: str) -> Future[None]:
        """Queue a switch of the loaded model's VAE to `choice` (Automatic, None or a file name); once it
        worked, it becomes the sd_vae setting. A file that can't be used raises and changes nothing."""

        def run(ctx: JobContext) -> None:
            checked = self.opts.validated("sd_vae", choice)
            if self.models.current is not None:
                try:
                    self.vaes.apply(self.models.current, checked)
                except UserError as exc:
                    log.error("%s", exc)
                    raise
            self.opts.set("sd_vae", checked)

        return self.engine.submit("load VAE", run)

    def sync_vae(self, choice: str | None = None, model: StableDiffusionModel | None = None) -> str | None:
        """On the worker: make the VAE of `model` (default: the loaded one) the one `choice` (default: the
        sd_vae setting in force) names. Returns why that could not be done (logged; the VAE in use stays),
        else None."""
        model = model or self.models.current
        if model is None:
            return None
        try:
            self.vaes.apply(model, choice or self.opts.sd_vae)
        except UserError as exc:
            log.error("%s", exc)
            kept = model.vae_name or "the checkpoint's own VAE"
            return f"{exc} Using {kept} instead."
        return None

    @contextmanager
    def job_models(
        self, names: Iterable[str | None], vae: str | None = None
    ) -> Iterator[dict[str, StableDiffusionModel]]:
        """On the worker, around a job: the models of the checkpoints a job names besides its own (its hires
        fix's and its refiner's; None for none), by name. Each gets the VAE `vae` names (default: the sd_vae
        setting), as the job's own model does, and lives only for the job; the loaded model stays."""
        with ExitStack() as stack:
            models = {}
            for name in dict.fromkeys(name for name in names if name):
                model = models[name] = stack.enter_context(self.models.borrowed(name))
                if model is not self.models.current:
                    self.sync_vae(vae, model=model)
            yield models

    @contextmanager
    def job_settings(self, overrides: dict[str, Any], restore: bool = True) -> Iterator[None]:
        """On the worker around one job: `overrides` (setting key → value, A1111's override_settings) are in
        force for this job only; sd_model_checkpoint switches the model and back afterwards. With `restore`
        False they are stored as the settings instead."""
        overrides = dict(overrides or {})
        if not overrides:
            yield
            return
        previous = self.models.current_title
        if overrides.get("sd_model_checkpoint"):
            self._switch_model(overrides["sd_model_checkpoint"])
            overrides["sd_model_checkpoint"] = self.models.current_title
        if not restore:
            self.opts.set_many(overrides)
            yield
            return
        try:
            with self.opts.overridden(overrides):
                yield
        finally:
            if previous and self.models.current_title != previous:
                try:
                    self._switch_model(previous)
                except UserError as exc:
                    self.load_error = f"Could not load {previous} again after a job: {exc}"
                    log.error(self.load_error)
            if "sd_vae" in overrides:
                self.sync_vae()

    def _switch_model(self, name: str) -> None:
        """Load checkpoint `name` now (on the worker), telling scripts when the model changed."""
        before = self.models.current
        model = self.models.load(name)
        if model is not before:
            self.sync_vae()
            script_callbacks.model_loaded_callback(model)
