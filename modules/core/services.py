"""The process-wide services built once in app.py's main() and handed to the UI and API: a container of the
settings, paths, engine and model parts, and of the parts that act on them (job submitter, model switching,
page state, scripts' runners, users' settings changes)."""

from __future__ import annotations

import argparse
from concurrent.futures import Future
from dataclasses import dataclass, field

from modules.core.backend import Backend, InProcessBackend
from modules.core.engine import Engine
from modules.core.job_submitter import JobSubmitter
from modules.core.model_switching import ModelSwitching
from modules.core.page_state import PageState
from modules.core.script_runners import ScriptRunners
from modules.core.server_paths import ServerPaths
from modules.core.user_settings import UserSettings
from modules.imaging.image_tools import ImageTools
from modules.interrogate import Interrogator
from modules.models.model_manager import ModelManager
from modules.options import Options
from modules.paths import DataPaths
from modules.prompting.networks import Networks
from modules.sd_vae import VaeLibrary
from modules.styles import StyleDatabase


@dataclass
class Services:
    """Everything a front end needs: settings, paths, the engine, the model manager, the VAE files,
    networks (LoRA, embeddings) and the pixel tools (upscalers, face restorers); `jobs` queues jobs,
    `switching` loads checkpoints and VAEs, `page` holds the page's state, `scripts` each tab's ScriptRunner
    and `user_settings` applies users' settings changes."""

    args: argparse.Namespace
    paths: DataPaths
    opts: Options
    engine: Engine
    models: ModelManager
    networks: Networks
    tools: ImageTools
    styles: StyleDatabase
    backend: Backend | None = None  # where generation jobs run; None: in this process (InProcessBackend)
    checkpoints_listed: Future | None = None  # done once the checkpoint list is final (the demo model written)
    vaes: VaeLibrary = field(init=False)
    server_paths: ServerPaths = field(init=False)
    interrogator: Interrogator = field(init=False)
    switching: ModelSwitching = field(init=False)
    page: PageState = field(init=False)
    scripts: ScriptRunners = field(init=False)
    user_settings: UserSettings = field(init=False)
    jobs: JobSubmitter = field(init=False)

    @classmethod
    def create(cls, args: argparse.Namespace, model_device: str | None = None) -> Services:
        """Settings, paths, an engine and a model manager (no model loaded yet) as the flags ask (its models on
        `model_device` where given); app.py's main() and every Ray replica build theirs here."""
        from modules.hypernetworks import HypernetworkLibrary
        from modules.models.model_optimizations import Optimizations
        from modules.prompting.lora import LoraLibrary
        from modules.sd_models import pick_device, pick_dtype
        from modules.textual_inversion import EmbeddingDatabase

        paths = DataPaths.create(args.data_dir, args.ckpt_dir)
        opts = Options(paths.config_file)
        opts.load()
        device = pick_device(args.device)
        models_on = pick_device(model_device) if model_device else device
        models = ModelManager(paths, models_on, pick_dtype(models_on, args.no_half), Optimizations.from_args(args))
        networks = Networks(
            EmbeddingDatabase(paths.embeddings),
            LoraLibrary(paths.models / "Lora"),
            HypernetworkLibrary(paths.models / "hypernetworks"),
        )
        return cls(
            args=args,
            paths=paths,
            opts=opts,
            engine=Engine(),
            models=models,
            networks=networks,
            tools=ImageTools.create(paths.models, device),
            styles=StyleDatabase(paths.styles_file),
        )

    def __post_init__(self) -> None:
        self.models.cache_limits = lambda: (self.opts.sd_checkpoints_limit, self.opts.sd_checkpoints_memory_gb)
        self.vaes = VaeLibrary(self.paths, self.models.hashes)
        self.server_paths = ServerPaths.from_args(self.args, self.paths)
        self.interrogator = Interrogator(
            self.paths.models, self.paths.cache, self.models.hashes, self.models.device, self.models.dtype
        )
        self.switching = ModelSwitching(self.opts, self.models, self.vaes, self.engine)
        self.page = PageState(self.opts, self.switching, self.paths.sd_models)
        self.scripts = ScriptRunners(self.page.notices)
        self.user_settings = UserSettings(self.args, self.opts, self.server_paths, self.switching)
        self.jobs = JobSubmitter(self)
        self.opts.bind("sd_vae", choices=self.vaes.choices, refresh=self.vaes.refresh)
        self.opts.bind("quicksettings_list", choices=lambda: list(self.opts.declared()))
        if self.backend is None:
            self.backend = InProcessBackend(self)
