"""The process-wide services built once in app.py's main() and handed to the UI and API."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from modules import images, processing, prompt_parser, script_callbacks
from modules.core.backend import Backend, InProcessBackend
from modules.core.engine import Engine, JobContext
from modules.core.limits import Limits
from modules.core.server_paths import ServerPaths
from modules.errors import UnlistedJobCheckpoint, UserError
from modules.extensions import access_refusal
from modules.extras import ExtrasJob, ExtrasParams, ExtrasResult, ExtrasSettings
from modules.imaging.image_tools import ImageTools
from modules.img2img import Img2ImgInputs
from modules.interrogate import InterrogateSettings, Interrogator
from modules.jobs.generation import GenerationResult, RunSettings, validate
from modules.jobs.generation_params import GenerationParams
from modules.jobs.img2img_batch import run_batch
from modules.models.demo_model import DEMO_FILE_NAME, DEMO_NOTICE
from modules.models.interrogate_models import check_models
from modules.models.model_manager import ModelManager
from modules.options import Options
from modules.paths import DataPaths
from modules.prompting.conditioning import EncoderOptions
from modules.prompting.networks import Networks
from modules.sampling.passes import SamplingSettings
from modules.scripts import ScriptRunner, load_scripts
from modules.sd_models import StableDiffusionModel
from modules.sd_vae import VaeLibrary
from modules.styles import StyleDatabase

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a front end needs: settings, paths, the engine, the model manager, the VAE files,
    networks (LoRA, embeddings) and the pixel tools (upscalers, face restorers)."""

    args: argparse.Namespace
    paths: DataPaths
    opts: Options
    engine: Engine
    models: ModelManager
    networks: Networks
    tools: ImageTools
    styles: StyleDatabase
    load_error: str | None = None
    notices: list[str] = field(default_factory=list)
    script_runners: dict[str, ScriptRunner] = field(default_factory=dict)  # "txt2img"/"img2img"
    last_infotext: str | None = None  # the page's last generation, for the ↙️ button (A1111 keeps params.txt)
    backend: Backend | None = None  # where generation jobs run; None: in this process (InProcessBackend)
    checkpoints_listed: Future | None = None  # done once the checkpoint list is final (the demo model written)
    vaes: VaeLibrary = field(init=False)
    server_paths: ServerPaths = field(init=False)
    interrogator: Interrogator = field(init=False)

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
        self.opts.bind("sd_vae", choices=self.vaes.choices, refresh=self.vaes.refresh)
        self.opts.bind("quicksettings_list", choices=lambda: list(self.opts.declared()))
        if self.backend is None:
            self.backend = InProcessBackend(self)

    def output_dir(self, option: str) -> Path:
        """The folder an outdir_* setting names, relative to the data folder unless absolute."""
        folder = Path(getattr(self.opts, option))
        return folder if folder.is_absolute() else self.paths.root / folder

    def run_settings(self, outdir_option: str) -> RunSettings:
        """Settings for a job, read from the options now."""
        opts = self.opts
        save_dir = self.output_dir(outdir_option) if opts.samples_save else None
        return RunSettings(
            sampling=SamplingSettings.from_options(opts),
            hires_refiner_pass=opts.hires_fix_refiner_pass,
            limits=Limits.from_options(opts),
            save_dir=save_dir,
            naming=images.FileNaming.from_options(opts),
            encoder_options=self.encoder_options,
            face_restoration_model=opts.face_restoration_model,
            code_former_weight=opts.code_former_weight,
            upscale_tile=opts.ESRGAN_tile,
            upscale_overlap=opts.ESRGAN_tile_overlap,
            preview_every=opts.show_progress_every_n_steps if opts.live_previews_enable else 0,
            preview_method=opts.show_progress_type,
            vae_tiling_min_pixels=opts.vae_tiling_min_pixels,
        )

    @property
    def encoder_options(self) -> EncoderOptions:
        """The prompt-encoding settings in force now."""
        return EncoderOptions(self.opts.comma_padding_backtrack, self.opts.emphasis)

    def txt2img(self, params: GenerationParams, script_args: list | None = None) -> Future[GenerationResult]:
        """Queue a txt2img job on the engine; `script_args` are the Script controls' values (the
        dropdown's index first), as the page sends them."""
        p = processing.StableDiffusionProcessingTxt2Img.from_params(params)
        return self._submit(p, self.script_runners.get("txt2img"), script_args)

    def img2img(
        self, params: GenerationParams, inputs: Img2ImgInputs, script_args: list | None = None
    ) -> Future[GenerationResult]:
        """Queue an img2img or inpainting job."""
        p = processing.StableDiffusionProcessingImg2Img.from_params(params, init_images=inputs.images, mask=inputs.mask)
        return self._submit(p, self.script_runners.get("img2img"), script_args)

    def check_job(self, params: GenerationParams) -> None:
        """The one check of a job before it queues, so it is refused now, not after waiting in the queue: `params`
        against the limits in force (UserError), its hires fix and refiner checkpoints (UnlistedJobCheckpoint)
        and, with a model loaded, the length of its prompts (else the worker checks them once one is)."""
        limits = Limits.from_options(self.opts)
        validate(params, limits)
        self.check_job_checkpoints(params)
        model, options = self.models.current, self.encoder_options
        if model is not None:
            limits.check_job_prompts(params, lambda text: model.prompt_encoder.chunk_count(text, options))

    def _submit(
        self, p: processing.StableDiffusionProcessing, runner: ScriptRunner | None, script_args: list | None
    ) -> Future[GenerationResult]:
        self.check_job(p.params)
        return self._queue(p, runner, script_args)

    def _queue(
        self, p: processing.StableDiffusionProcessing, runner: ScriptRunner | None, script_args: list | None
    ) -> Future[GenerationResult]:
        p.scripts, p.script_args = runner, list(script_args or [0])
        if runner is not None:
            runner.check_plan(p)  # the chosen script's plan (grid cells, loops, lines) against the limits
        kind = "img2img" if p.is_img2img else "txt2img"
        p.outpath_samples = str(self.output_dir(f"outdir_{kind}_samples"))
        p.outpath_grids = str(self.output_dir(f"outdir_{kind}_grids"))

        def run(ctx: JobContext) -> GenerationResult:
            with self.job_settings(p.override_settings, getattr(p, "override_settings_restore_afterwards", True)):
                if runner is not None:
                    runner.setup(p)
                processed = runner.run(p, p.script_args) if runner is not None else None
                if processed is None:
                    processed = processing.run_processing(p, ctx, self)
                processed.interrupted = processed.interrupted or ctx.interrupted  # a script stopped early
                return processed.to_result(p.params, ctx.first_model)

        return self.engine.submit(kind, run)

    def img2img_batch(
        self,
        params: GenerationParams,
        input_dir: str,
        output_dir: str,
        mask_dir: str = "",
        append_interrogation: bool = False,
    ) -> Future[GenerationResult]:
        """Queue img2img over a folder of images (folders as the server paths policy allows); with
        `append_interrogation` each image's prompt ends with what Interrogate CLIP says of it."""
        settings = self.run_settings("outdir_img2img_samples")
        validate(params, settings.limits)
        self.check_job_checkpoints(params)
        describe = None
        if append_interrogation:
            check_models(self.paths.models)
            describe = partial(self.interrogator.interrogate, settings=InterrogateSettings.from_options(self.opts))
        input_dir, output_dir, mask_dir = (
            str(self.server_paths.folder(value, label)) if value and value.strip() else ""
            for value, label in (
                (input_dir, "Input directory"),
                (output_dir, "Output directory"),
                (mask_dir, "Inpaint batch mask directory"),
            )
        )

        def run(ctx: JobContext) -> GenerationResult:
            self.sync_vae()
            with self.job_models([params.refiner]) as models:
                return run_batch(
                    self.models.require(),
                    params,
                    ctx,
                    settings,
                    self.networks,
                    input_dir,
                    output_dir,
                    mask_dir,
                    self.tools,
                    models.get(params.refiner),
                    describe,
                )

        return self.engine.submit("img2img batch", run)

    def interrogate(self, image: Any) -> Future[str]:
        """Queue Interrogate CLIP of a PIL image with the interrogate_* settings in force now; a missing model is
        refused at once (MissingInterrogateModel names the folders and files)."""
        check_models(self.paths.models)
        settings = InterrogateSettings.from_options(self.opts)
        return self.engine.submit("interrogate", lambda ctx: self.interrogator.interrogate(image, settings))

    def load_scripts(self, folders: list[Path]) -> None:
        """(Re)load the script files of `folders`: callbacks, settings and each tab's runner."""
        script_callbacks.script_unloaded_callback()
        script_callbacks.clear()
        loaded = load_scripts(folders)
        self.notices.extend(error for error in loaded.errors if error not in self.notices)
        self.script_runners = {"txt2img": ScriptRunner(loaded, False), "img2img": ScriptRunner(loaded, True)}
        script_callbacks.ui_settings_callback()

    def token_count(self, text: str, steps: int) -> tuple[int, int] | None:
        """(tokens used, tokens available) for a prompt box's counter: the longest text the prompt
        has at any step, in the loaded model's tokenizer; None while no model is loaded or while the text is
        over the prompt length limit (Generate says so)."""
        model = self.models.current
        if model is None or len(text) > Limits.from_options(self.opts).max_prompt_length:
            return None
        options = self.encoder_options
        parsed = prompt_parser.parse_prompt(text, max(1, int(steps)))
        texts = [entry.text for sub in parsed.subprompts for entry in sub.schedule] or [""]
        return max(model.prompt_encoder.token_count(t, options) for t in dict.fromkeys(texts))

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

    def change_settings(self, values: dict[str, Any]) -> None:
        """Apply a page or API user's changes to the settings. All are checked first (KeyError, ValueError or
        UserError, and nothing changes). sd_vae then swaps the loaded model's VAE (a file that can't be used
        changes nothing more), the others are saved together and only then in force, and sd_model_checkpoint
        loads that model, which must be a listed one."""
        checked = {key: self.opts.validated(key, value) for key, value in values.items()}
        self.check_user_settings(checked)
        checkpoint = checked.pop("sd_model_checkpoint", None)
        if checkpoint:
            self.models.find_listed(checkpoint)
        if "sd_vae" in checked:
            self.set_vae(checked.pop("sd_vae")).result()
        if checked:
            self.opts.set_many(checked)
        if checkpoint:
            self.load_checkpoint(checkpoint).result()

    def check_user_settings(self, values: dict[str, Any]) -> None:
        """Refuse (UserError) settings a page or API user may not change on this server: extension state
        while extension access is off, and output folders the server paths policy refuses."""
        opts, declared = self.opts, self.opts.declared()
        for key, value in values.items():
            info = declared.get(key)
            if info is None:
                continue
            if info.extension_state:
                refusal = access_refusal(self.args)
                if refusal:
                    raise UserError(f"{info.label} can't be changed: {refusal}")
            if info.server_folder and isinstance(value, str) and value != getattr(opts, key):
                self.server_paths.folder(value, info.label)

    def check_job_checkpoints(self, params: GenerationParams) -> None:
        """Refuse a hires fix or refiner checkpoint that is not one of the listed ones (UnlistedJobCheckpoint)."""
        for param, name in params.job_checkpoints.items():
            try:
                self.models.find_listed(name)
            except UserError as exc:
                raise UnlistedJobCheckpoint(param, str(exc)) from None

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

    def extras(
        self, params: ExtrasParams, inputs: list, output_dir: Path | None = None, keep_images: bool = True
    ) -> Future[ExtrasResult]:
        """Queue an Extras job over `inputs` (PIL images or image files); see ExtrasJob.run."""
        opts = self.opts
        settings = ExtrasSettings(
            self.run_settings("outdir_extras_samples").save_dir,
            opts.max_pixels,
            opts.ESRGAN_tile,
            opts.ESRGAN_tile_overlap,
            images.SaveFormat.from_options(opts),
        )
        return self.engine.submit(
            "extras", lambda ctx: ExtrasJob(self.tools, params, settings, ctx).run(inputs, output_dir, keep_images)
        )

    def submit_processing(self, p: processing.StableDiffusionProcessing) -> Future[GenerationResult]:
        """Check and queue a processing object the caller built and keeps (the API reads all_prompts and all_seeds
        from it afterwards); `p.script_args` are laid out as the page sends them."""
        self.check_job(p.params)
        return self.queue_checked(p)

    def queue_checked(self, p: processing.StableDiffusionProcessing) -> Future[GenerationResult]:
        """submit_processing for a job whose params `check_job` has passed (the API checks before it reads
        the request's images and script arguments)."""
        return self._queue(p, self.script_runners.get("img2img" if p.is_img2img else "txt2img"), p.script_args)

    @contextmanager
    def job_settings(self, overrides: dict[str, Any], restore: bool = True) -> Iterator[None]:
        """Run on the engine's worker around one job: `overrides` (setting key → value, A1111's
        override_settings) are in force for this job only; sd_model_checkpoint switches the model and
        back afterwards. With `restore` False they are stored as the settings instead."""
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

    @property
    def status(self) -> str:
        """One line for the top of the page: what is loaded, or why nothing is."""
        current = self.models.current
        if current is None:
            return self.load_error or "Loading model…"
        if current.checkpoint.path.name == DEMO_FILE_NAME:
            return DEMO_NOTICE.format(folder=self.paths.sd_models)
        vae = f", VAE: {current.vae_name}" if current.vae_name else ""
        return f"Model: {self.models.current_title}{vae}"
