"""The job submitter: checks a page or API job once (its params against the limits, its other checkpoints
against the listed ones, its prompts' length) and queues it on the engine with the settings in force now."""

from __future__ import annotations

from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modules import images, processing
from modules.core.engine import JobContext
from modules.core.limits import Limits
from modules.errors import UnlistedJobCheckpoint, UserError
from modules.extras import ExtrasJob, ExtrasParams, ExtrasResult, ExtrasSettings
from modules.img2img import Img2ImgInputs
from modules.interrogate import InterrogateSettings
from modules.jobs.generation import GenerationResult, RunSettings, validate
from modules.jobs.generation_params import GenerationParams
from modules.jobs.img2img_batch import run_batch
from modules.jobs.job_builder import record_submit_check
from modules.models.interrogate_models import check_models
from modules.prompting.conditioning import EncoderOptions
from modules.sampling.passes import SamplingSettings

if TYPE_CHECKING:
    from modules.core.services import Services


class JobSubmitter:
    """Queues generation, img2img batch, Extras and Interrogate jobs over the services' parts."""

    def __init__(self, services: Services) -> None:
        self.services = services  # processing.run_processing reads the parts it needs from them

    def output_dir(self, option: str) -> Path:
        """The folder an outdir_* setting names, relative to the data folder unless absolute."""
        folder = Path(getattr(self.services.opts, option))
        return folder if folder.is_absolute() else self.services.paths.root / folder

    def run_settings(self, outdir_option: str) -> RunSettings:
        """Settings for a job, read from the options now."""
        opts = self.services.opts
        save_dir = self.output_dir(outdir_option) if opts.samples_save else None
        return RunSettings(
            sampling=SamplingSettings.from_options(opts),
            hires_refiner_pass=opts.hires_fix_refiner_pass,
            limits=Limits.from_options(opts),
            save_dir=save_dir,
            naming=images.FileNaming.from_options(opts),
            encoder_options=EncoderOptions.from_options(opts),
            face_restoration_model=opts.face_restoration_model,
            code_former_weight=opts.code_former_weight,
            upscale_tile=opts.ESRGAN_tile,
            upscale_overlap=opts.ESRGAN_tile_overlap,
            preview_every=opts.show_progress_every_n_steps if opts.live_previews_enable else 0,
            preview_method=opts.show_progress_type,
            vae_tiling_min_pixels=opts.vae_tiling_min_pixels,
        )

    def txt2img(self, params: GenerationParams, script_args: list | None = None) -> Future[GenerationResult]:
        """Queue a txt2img job on the engine; `script_args` are the Script controls' values (the
        dropdown's index first), as the page sends them."""
        p = processing.StableDiffusionProcessingTxt2Img.from_params(params)
        p.script_args = script_args or []
        return self.submit_processing(p)

    def img2img(
        self, params: GenerationParams, inputs: Img2ImgInputs, script_args: list | None = None
    ) -> Future[GenerationResult]:
        """Queue an img2img or inpainting job."""
        p = processing.StableDiffusionProcessingImg2Img.from_params(params, init_images=inputs.images, mask=inputs.mask)
        p.script_args = script_args or []
        return self.submit_processing(p)

    def check_job(self, params: GenerationParams) -> GenerationParams:
        """The one check of a job before it queues, so it is refused now, not after waiting in the queue: `params`
        against the limits in force (UserError), its hires fix and refiner checkpoints (UnlistedJobCheckpoint)
        and, with a model loaded, the length of its prompts (else the worker checks them once one is). Returns
        them validated (sampler resolved), for job_builder.record_submit_check."""
        opts = self.services.opts
        limits = Limits.from_options(opts)
        valid = validate(params, limits)
        self._check_checkpoints(params)
        model, options = self.services.models.current, EncoderOptions.from_options(opts)
        if model is not None:
            limits.check_job_prompts(params, lambda text: model.prompt_encoder.chunk_count(text, options))
        return valid

    def _check_checkpoints(self, params: GenerationParams) -> None:
        """Refuse a hires fix or refiner checkpoint that is not one of the listed ones (UnlistedJobCheckpoint)."""
        for param, name in params.job_checkpoints.items():
            try:
                self.services.models.find_listed(name)
            except UserError as exc:
                raise UnlistedJobCheckpoint(param, str(exc)) from None

    def submit_processing(self, p: processing.StableDiffusionProcessing) -> Future[GenerationResult]:
        """Check and queue a processing object the caller built and keeps (the API reads all_prompts and all_seeds
        from it afterwards); `p.script_args` are laid out as the page sends them."""
        record_submit_check(p, self.check_job(p.params))
        return self.queue_checked(p)

    def queue_checked(self, p: processing.StableDiffusionProcessing) -> Future[GenerationResult]:
        """submit_processing for a job whose params `check_job` has passed, as record_submit_check keeps on `p`
        (the API checks before it reads the request's images and script arguments)."""
        services = self.services
        kind = "img2img" if p.is_img2img else "txt2img"
        runner = services.scripts.runners.get(kind)
        p.scripts, p.script_args = runner, list(p.script_args or [0])
        if runner is not None:
            runner.check_plan(p)  # the chosen script's plan (grid cells, loops, lines) against the limits
        p.outpath_samples = str(self.output_dir(f"outdir_{kind}_samples"))
        p.outpath_grids = str(self.output_dir(f"outdir_{kind}_grids"))

        def run(ctx: JobContext) -> GenerationResult:
            restore = getattr(p, "override_settings_restore_afterwards", True)
            with services.switching.job_settings(p.override_settings, restore):
                if runner is not None:
                    runner.setup(p)
                processed = runner.run(p, p.script_args) if runner is not None else None
                if processed is None:
                    result = processing.run_processing(p, ctx, services)
                else:  # a selected script's own result
                    result = processed.to_result(p.params, ctx.first_model)
                result.interrupted = result.interrupted or ctx.interrupted  # a script stopped early
                return result

        return services.engine.submit(kind, run)

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
        services = self.services
        settings = self.run_settings("outdir_img2img_samples")
        params = validate(params, settings.limits)
        self._check_checkpoints(params)
        describe = None
        if append_interrogation:
            check_models(services.paths.models)
            describe = partial(
                services.interrogator.interrogate, settings=InterrogateSettings.from_options(services.opts)
            )
        input_dir, output_dir, mask_dir = (
            str(services.server_paths.folder(value, label)) if value and value.strip() else ""
            for value, label in (
                (input_dir, "Input directory"),
                (output_dir, "Output directory"),
                (mask_dir, "Inpaint batch mask directory"),
            )
        )

        def run(ctx: JobContext) -> GenerationResult:
            services.switching.sync_vae()
            with services.switching.job_models([params.refiner]) as models:
                return run_batch(
                    services.models.require(),
                    params,
                    ctx,
                    settings,
                    services.networks,
                    input_dir,
                    output_dir,
                    mask_dir,
                    services.tools,
                    models.get(params.refiner) if params.refiner else None,
                    describe,
                    validated=True,
                )

        return services.engine.submit("img2img batch", run)

    def extras(
        self, params: ExtrasParams, inputs: list, output_dir: Path | None = None, keep_images: bool = True
    ) -> Future[ExtrasResult]:
        """Queue an Extras job over `inputs` (PIL images or image files); see ExtrasJob.run."""
        services, opts = self.services, self.services.opts
        settings = ExtrasSettings(
            self.run_settings("outdir_extras_samples").save_dir,
            opts.max_pixels,
            opts.ESRGAN_tile,
            opts.ESRGAN_tile_overlap,
            images.SaveFormat.from_options(opts),
        )
        return services.engine.submit(
            "extras", lambda ctx: ExtrasJob(services.tools, params, settings, ctx).run(inputs, output_dir, keep_images)
        )

    def interrogate(self, image: Any) -> Future[str]:
        """Queue Interrogate CLIP of a PIL image with the interrogate_* settings in force now; a missing model is
        refused at once (MissingInterrogateModel names the folders and files)."""
        services = self.services
        check_models(services.paths.models)
        settings = InterrogateSettings.from_options(services.opts)
        return services.engine.submit("interrogate", lambda ctx: services.interrogator.interrogate(image, settings))
