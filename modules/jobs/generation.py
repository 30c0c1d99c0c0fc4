"""One txt2img generation as a list of stages: validate → encode → noise → denoise → (hires fix) →
decode → (face restoration) → save."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from modules import images, rng, script_callbacks
from modules.core.engine import JobContext
from modules.core.limits import Limits
from modules.core.setting_values import FIRST_PASS, SECOND_PASS
from modules.errors import DiskFull, UserError
from modules.face_restoration import MissingWeightsError, missing_weights_message
from modules.imaging.image_tools import ImageTools
from modules.imaging.upscalers import is_latent_upscaler
from modules.jobs import hires_fix, previews
from modules.jobs.file_names import NameFields
from modules.jobs.generation_params import NO_REFINER, GenerationParams
from modules.jobs.infotext import create_infotext
from modules.models import model_optimizations, tiling
from modules.prompting.conditioning import EncoderOptions
from modules.prompting.conditioning_blend import BlendedConditioning, ConditioningBlend
from modules.prompting.networks import Networks
from modules.prompting.step_conditioning import StepConditioning, Timeline
from modules.sampling import noise as noise_sources
from modules.sampling import registry
from modules.sampling.guidance import CFGDenoiser, Keep, ModelPass, NegativeSkipping, RefinerSwitch
from modules.sampling.passes import TIMESTEPS, PassPlan, SamplingSettings, plan_pass, run_pass, start_latent, uses_ensd
from modules.sd_models import StableDiffusionModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    """Settings a job reads, captured when it is submitted."""

    sampling: SamplingSettings = SamplingSettings()  # A1111's sampling settings (RNG, ENSD, eta, sigmas…)
    hires_refiner_pass: str = SECOND_PASS  # with hires fix, the passes a refiner takes part in (A1111's default)
    limits: Limits = Limits()
    save_dir: Path | None = None  # None: don't save
    naming: images.FileNaming = field(default_factory=images.FileNaming)  # file names and format
    encoder_options: EncoderOptions = EncoderOptions()
    face_restoration_model: str = "GFPGAN"
    code_former_weight: float = 0.5
    upscale_tile: int = 192
    upscale_overlap: int = 8
    preview_every: int = 0  # offer a live preview every this many steps; 0: none
    preview_method: str = "Approx cheap"
    vae_tiling_min_pixels: int = 0  # decode tile by tile from this many pixels; 0 = never


@dataclass(frozen=True)
class ModelUsed:
    """The model a job ran on, as its result names it (the API's sd_model_* and sd_vae_* keys)."""

    title: str  # the checkpoint's title (sd_model_checkpoint's value)
    name: str  # the infotext's "Model"
    hash: str | None  # the infotext's "Model hash"
    vae_name: str | None  # a separate VAE's file name; None: the checkpoint's own
    vae_hash: str | None
    inpainting: bool

    @classmethod
    def of(cls, model: StableDiffusionModel) -> ModelUsed:
        return cls(
            model.checkpoint.title(model.short_hash),
            model.checkpoint.model_name,
            model.short_hash,
            model.vae_name,
            model.vae_short_hash,
            model.is_inpainting,
        )


@dataclass
class GenerationResult:
    """Images of a job with each one's infotext and seed, where they were saved, and the model that made them."""

    params: GenerationParams
    model: ModelUsed | None = None  # None: nothing ran
    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
    index_of_first_image: int = 0  # 1 when a grid of the images comes first


@dataclass
class ImagePlan:
    """Each image's prompt, negative prompt, seed and variation seed (scripts may give every image its own)."""

    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]
    subseeds: list[int] = field(default_factory=list)  # needed only with a variation strength

    @classmethod
    def repeated(cls, params: GenerationParams, count: int) -> ImagePlan:
        """The usual plan: the same prompts for every image, seeds (or, with a variation strength,
        variation seeds) counting up."""
        return cls(
            [params.prompt] * count,
            [params.negative_prompt] * count,
            rng.image_seeds(params.seed, count, params.subseed_strength),
            rng.image_seeds(params.subseed, count),
        )


class JobHooks:
    """Where scripts join a running job. This base class changes nothing."""

    p = None  # the A1111 processing object the job was started from, if any
    acts_on_batches = False  # whether before_batch, image or after_batch do anything
    replaces_noise = False  # whether start_noise does anything

    def enter_batch(self, batch_no: int, plan: ImagePlan, first: int, count: int) -> None:
        """Make batch `batch_no` (images first..first+count of `plan`) the one the next calls are about (batches
        of a job spread over workers call back in any order)."""

    def before_batch(self, batch_no: int, plan: ImagePlan, first: int, count: int) -> None:
        """Before a batch is encoded and sampled."""

    def image(self, image: Image.Image, index: int) -> Image.Image:
        """Each finished image before it is saved; may return a replacement."""
        return image

    def after_batch(self, batch_no: int, batch_images: list[Image.Image]) -> None:
        """After a batch's images are finished and saved."""

    def start_noise(self, job: Txt2Img, noise: torch.Tensor) -> torch.Tensor:
        """The noise a pass starts from; a script may put its own in (img2img alternative test does)."""
        return noise


def validate(params: GenerationParams, limits: Limits) -> GenerationParams:
    """Refuse impossible jobs and those over the limits with a clear message, before anything is allocated; with
    hires fix, its second pass too. Returns `params` with the sampler and schedule type resolved to the ones that
    run. A job is validated once: when it is submitted, or built again after scripts changed it (build_job)."""
    for name in ("width", "height"):
        value = getattr(params, name)
        if value < 64 or value % 8:
            raise UserError(f"{name.capitalize()} must be a multiple of 8 and at least 64, got {value}")
    if not 1 <= params.steps <= 1000:
        raise UserError(f"Sampling steps must be between 1 and 1000, got {params.steps}")
    if params.batch_size < 1 or params.n_iter < 1:
        raise UserError("Batch size and batch count must be at least 1")
    limits.check_generation(params)
    if not np.isfinite(params.cfg_scale):
        raise UserError(f"CFG Scale must be a finite number, got {params.cfg_scale}")
    if not 0.0 <= params.subseed_strength <= 1.0:
        raise UserError(f"Variation strength must be between 0 and 1, got {params.subseed_strength}")
    if seed_resize_from(params) and min(params.seed_resize_from_w, params.seed_resize_from_h) < 8:
        raise UserError(
            "Resize seed from width and height must be at least 8 (or 0 for off), got "
            f"{params.seed_resize_from_w}x{params.seed_resize_from_h}"
        )
    try:
        sampler, schedule = registry.resolve(params.sampler_name, params.scheduler)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    valid = replace(params, sampler_name=sampler, scheduler=schedule)
    if valid.enable_hr:  # the second pass, as HiresPass will run it (its sampler looked up when it plans)
        check_denoising_strength(valid.denoising_strength)
        validate(hires_fix.second_pass_params(valid), limits)
    return valid


def check_denoising_strength(strength: float) -> None:
    """Refuse a denoising strength outside 0…1 (img2img and hires fix use it)."""
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"Denoising strength must be between 0 and 1, got {strength}")


def seed_resize_from(params: GenerationParams) -> bool:
    """Whether "Resize seed from" is on: both sides above 0 (0 or -1 is off, as in A1111)."""
    return params.seed_resize_from_w > 0 and params.seed_resize_from_h > 0


@torch.inference_mode()
def encode_image(
    model: StableDiffusionModel, image: Image.Image, posterior_draws: torch.Generator | None = None
) -> torch.Tensor:
    """VAE latents of an RGB image, scaled for the UNet: the distribution's mean, so results repeat; or, given a
    CPU generator `posterior_draws`, its sample (mean + std · the generator's next float32 draw), as A1111's
    DiagonalGaussianDistribution.sample draws from torch's global generator."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None].to(device=model.device, dtype=model.vae.dtype)
    posterior = model.vae.encode(pixels).latent_dist
    if posterior_draws is None:
        latents = posterior.mode()
    else:
        draw = torch.randn(posterior.mean.shape, generator=posterior_draws).to(model.device)
        latents = posterior.mean.float() + posterior.std.float() * draw
    return (latents * model.vae.config.scaling_factor).to(model.latent_dtype)


def refiner_switch_call(calls: int, switch_at: float) -> int | None:
    """The model call a refiner takes over at, as A1111 counts: the first whose share of the pass's expected
    calls reaches `switch_at`; None when there is none."""
    return next((call for call in range(calls) if call / calls >= switch_at), None)


@dataclass
class Refiner:
    """The model sampling switches to, its conditioning of the batch's prompts, and when (a share of the calls)."""

    model: StableDiffusionModel
    conditioning: StepConditioning
    at: float


class Txt2Img:
    """Runs one txt2img job on a loaded model, reporting progress to `ctx`. Img2Img builds on it."""

    supports_hires = True
    step_offset = 0  # steps already reported in this batch (the hires pass follows the first)

    def __init__(
        self,
        model: StableDiffusionModel,
        params: GenerationParams,
        ctx: JobContext,
        settings: RunSettings,
        networks: Networks | None = None,
        tools: ImageTools | None = None,
    ) -> None:
        self.model = model
        self.params = params
        self.ctx = ctx
        self.settings = settings
        self.networks = networks
        self.tools = tools
        self.extra_infotext: dict[str, str] = {}
        self.plan: ImagePlan | None = None  # None: ImagePlan.repeated
        self._pass_plan: PassPlan | None = None
        self.hooks = JobHooks()
        self.hires_model: StableDiffusionModel | None = None  # hires fix's own checkpoint ("Hires checkpoint")
        self.refiner_model: StableDiffusionModel | None = None  # the "Refiner" checkpoint
        self.refiner_call: int | None = None  # the model call at which the refiner takes over
        self.use_extra_network_tags = True  # False: <lora:…> tags are ignored (A1111's disable_extra_networks)
        self.batches: range | None = None  # only these batches of the job (a part fanned out); None: all
        self.blend: ConditioningBlend | None = None  # the conditioning part-way to another prompt's
        self.validated = False  # True: `params` passed validate (a built GenerationJob's), so run() trusts them

    @property
    def job(self) -> str:
        """The kind of job, which picks the infotext fields: "txt2img", or "hires" with hires fix."""
        return "hires" if self.params.enable_hr else "txt2img"

    def run(self) -> GenerationResult:
        p = self.params if self.validated else validate(self.params, self.settings.limits)
        self.params = replace(
            p,
            seed=rng.resolve_seed(p.seed),
            subseed=rng.resolve_seed(p.subseed),
            hr_checkpoint_name=self._hires_checkpoint(),
        )
        hires = HiresPass(self) if p.enable_hr and self.supports_hires else None
        p = self.params = replace(self.params, refiner_checkpoint=self._refiner_checkpoint(hires))
        self._check_face_restoration()
        result = GenerationResult(params=p, model=ModelUsed.of(self.model))
        plan = self.plan or ImagePlan.repeated(p, p.batch_size * p.n_iter)
        count = min(p.batch_size * p.n_iter, len(plan.prompts))  # a script's plan may end in a smaller batch
        if min(len(plan.negative_prompts), len(plan.seeds)) < count:
            raise UserError(f"{count} images need as many negative prompts and seeds")
        if p.subseed_strength and len(plan.subseeds) < count:
            raise UserError(f"{count} images with a variation strength need as many variation seeds")
        self.ctx.set_job_count(p.n_iter)
        with self.tiling(), self.networks.job() if self.networks is not None else contextlib.nullcontext():
            for batch_no in range(p.n_iter) if self.batches is None else self.batches:
                first = batch_no * p.batch_size
                if self.ctx.interrupted or first >= count:
                    break
                self.ctx.begin_batch(batch_no, self.sampling_steps() + (hires.sampling_steps() if hires else 0))
                self.hooks.before_batch(batch_no, plan, first, min(p.batch_size, count - first))
                self.run_batch(batch_no, plan, slice(first, min(first + p.batch_size, count)), hires, result)
        result.interrupted = self.ctx.interrupted
        return result

    def _hires_checkpoint(self) -> str:
        """The "Hires checkpoint" value to run and write: the hires model's title when it has its own."""
        p = self.params
        if not self.supports_hires or p.hires_checkpoint is None:
            return p.hr_checkpoint_name
        if self.hires_model is None:
            raise UserError(f"Hires checkpoint {p.hr_checkpoint_name} is not loaded for this job")
        return self.hires_model.short_title

    def _refiner_checkpoint(self, hires: HiresPass | None) -> str:
        """The "Refiner" value to run and write: the refiner's title when sampling switches to it, else "None".
        Sets `refiner_call` of this pass and of `hires` (the setting hires_fix_refiner_pass picks the passes);
        a refiner of another kind than the model is refused."""
        p, refiner, m = self.params, self.refiner_model, self.model
        if p.refiner is None:
            return p.refiner_checkpoint
        if refiner is None:
            raise UserError(f"Refiner {p.refiner_checkpoint} is not loaded for this job")
        if (refiner.family, refiner.unet.config.in_channels) != (m.family, m.unet.config.in_channels):
            raise UserError(
                f"The refiner {refiner.short_title} can't take over from {m.short_title}: a refiner "
                f"must be of the same kind ({m.family.label}; inpainting or not)"
            )
        passes = self.settings.hires_refiner_pass if hires is not None else FIRST_PASS
        if passes != SECOND_PASS:
            self.refiner_call = refiner_switch_call(self.sampling_plan().calls, p.refiner_switch_at)
        if hires is not None and passes != FIRST_PASS:
            hires.refiner_call = refiner_switch_call(hires.sampling_plan().calls, p.refiner_switch_at)
        if self.refiner_call is None and (hires is None or hires.refiner_call is None):
            return NO_REFINER
        if hires is not None and passes != SECOND_PASS:
            self.extra_infotext["Hires refiner"] = passes
        return refiner.short_title

    def run_batch(
        self, batch_no: int, plan: ImagePlan, batch: slice, hires: HiresPass | None, result: GenerationResult
    ) -> None:
        """Encode, sample (switching to the refiner), (hires fix,) decode and save the images `batch` of the plan."""
        prompts, negatives, seeds = plan.prompts[batch], plan.negative_prompts[batch], plan.seeds[batch]
        subseeds = plan.subseeds[batch] if plan.subseeds else []
        conditioning = self.encode(prompts, negatives, result)
        refiner = self.refiner_for(prompts, negatives, result)
        noise = self.image_rng(seeds, subseeds, self.params.width, self.params.height)
        latents = self.sample(
            self.prepare_latents(noise, batch.start, seeds), conditioning, seeds, noise, refiner, result
        )
        vae_model = self.model if refiner is None else refiner.model  # A1111 decodes with the refiner's VAE
        if hires is not None and not self.ctx.should_stop:
            latents, hires_infotext = hires.continue_from(latents, seeds, subseeds, result, prompts, negatives)
            self.extra_infotext.update(hires_infotext)
            # a "Hires checkpoint" may have a VAE of its own, and so may a refiner in the second pass
            vae_model = hires.model if hires.refiner_call is None else hires.refiner_model
        finished = []
        for index, image in enumerate(self.decode(latents, vae_model), start=batch.start):
            image = self.hooks.image(self.finish_image(self.restore_faces(image, result), index), index)
            subseed = plan.subseeds[index] if index < len(plan.subseeds) else self.params.subseed
            self.postprocess(
                result, image, plan.seeds[index], plan.prompts[index], plan.negative_prompts[index], subseed
            )
            finished.append(image)
        self.hooks.after_batch(batch_no, finished)

    def refiner_for(self, prompts: list[str], negatives: list[str], result: GenerationResult) -> Refiner | None:
        """The refiner this pass switches to, with its conditioning of the prompts; None when it doesn't."""
        if self.refiner_call is None:
            return None
        return Refiner(
            self.refiner_model,
            self.encode(prompts, negatives, result, self.refiner_model),
            self.params.refiner_switch_at,
        )

    def tiling(self) -> contextlib.AbstractContextManager:
        """With "Tiling" on, the UNet and the VAE pad circularly for this job (restored afterwards)."""
        stack = contextlib.ExitStack()
        if self.params.tiling:
            for model in {id(m): m for m in (self.model, self.hires_model, self.refiner_model) if m}.values():
                stack.enter_context(tiling.circular_padding(model.unet, model.vae))
        return stack

    def _check_face_restoration(self) -> None:
        """Refuse "Restore faces" up front when the chosen restorer's weights are missing."""
        if not self.params.restore_faces:
            return
        if self.tools is None:
            raise UserError("Face restoration is not available in this context")
        restorer = self.tools.face_restorers.get(self.settings.face_restoration_model)
        missing = restorer.missing_files()
        if missing:
            raise MissingWeightsError(missing_weights_message(restorer.name, missing))

    def restore_faces(self, image: Image.Image, result: GenerationResult) -> Image.Image:
        """With "Restore faces" on, restore every face fully with the chosen model."""
        if not self.params.restore_faces or self.tools is None:
            return image
        name = self.settings.face_restoration_model
        restorer = self.tools.face_restorers.get(name)
        if name == "CodeFormer":
            image, note = restorer.restore(image, 1.0, self.settings.code_former_weight)
        else:
            image, note = restorer.restore(image, 1.0)
        if note and note not in result.warnings:
            result.warnings.append(note)
        return image

    def encode(
        self,
        prompts: list[str],
        negatives: list[str],
        result: GenerationResult,
        model: StableDiffusionModel | None = None,
    ) -> StepConditioning | BlendedConditioning:
        """Each image's conditioning for every step by `model`'s text encoders (default: the job's model's),
        with the prompts' LoRAs and embeddings ready on it."""
        model = model or self.model
        targets = [self.blend.prompt] * len(prompts) if self.blend is not None else []
        variant: tuple = ()
        if self.networks is not None:
            applied = self.networks.prepare(model, [*prompts, *targets], self.use_extra_network_tags)
            variant = applied.variant
            result.warnings.extend(w for w in applied.warnings if w not in result.warnings)
            self.extra_infotext.update(applied.infotext)
        options = self.settings.encoder_options  # scripts may have changed the prompts since the job was submitted
        timeline = self.timeline()
        self.settings.limits.check_prompt_chunks(
            [*prompts, *targets], negatives, timeline, lambda text: model.prompt_encoder.chunk_count(text, options)
        )
        conditioning: StepConditioning | BlendedConditioning = StepConditioning(
            model.prompt_encoder, prompts, negatives, timeline, self.params.clip_skip, options, variant
        )
        if self.blend is not None:
            target = StepConditioning(
                model.prompt_encoder, targets, negatives, timeline, self.params.clip_skip, options, variant
            )
            conditioning = BlendedConditioning(conditioning, target, self.blend)
        if self.networks is not None:
            self.extra_infotext.update(self.networks.ti_hashes(conditioning.embeddings_used))
        return conditioning

    def timeline(self) -> Timeline:
        """What prompt editing counts in this pass: A1111's model calls of its sampler over the job's steps."""
        return Timeline(
            self.sampling_plan().sampler.total_steps(self.params.steps),
            use_old_scheduling=self.settings.sampling.use_old_scheduling,
        )

    def sampling_plan(self) -> PassPlan:
        """This pass's schedule and sampler, as A1111 builds them (worked out once)."""
        if self._pass_plan is None:
            self._pass_plan = self.make_plan()
        return self._pass_plan

    def make_plan(self) -> PassPlan:
        """txt2img: the whole schedule, from pure noise."""
        return self.plan_with()

    def plan_with(self, **options: Any) -> PassPlan:
        """This pass's params planned on its model with the sampling settings; `options` as plan_pass takes."""
        p = self.params
        return plan_pass(
            p.sampler_name,
            p.scheduler,
            p.steps,
            self.model.denoiser,
            self.settings.sampling,
            sdxl_steps_table=self.model.family.needs_size_conditioning,
            **options,
        )

    def sampling_steps(self) -> int:
        """How many steps the sampler runs (img2img runs fewer, by denoising strength)."""
        return self.sampling_plan().steps

    def image_rng(self, seeds: list[int], subseeds: list[int], width: int, height: int) -> noise_sources.ImageRNG:
        """A1111's noise for a batch at width x height: its seeds, variation seeds and "Resize seed from"."""
        p, m, factor = self.params, self.model, self.model.vae_scale_factor
        resize = (p.seed_resize_from_h // factor, p.seed_resize_from_w // factor) if seed_resize_from(p) else None
        s = self.settings.sampling
        return noise_sources.ImageRNG(
            (m.family.latent_format.channels, height // factor, width // factor),
            seeds,
            subseeds=subseeds,
            subseed_strength=p.subseed_strength,
            seed_resize=resize,
            source=s.randn_source,
            device=m.device,
            eta_noise_seed_delta=s.eta_noise_seed_delta,
        )

    def prepare_latents(self, noise: noise_sources.ImageRNG, first: int, seeds: list[int]) -> torch.Tensor:
        """The batch's initial noise (images first, first+1, …), each from its own seeds."""
        return noise.next().to(self.model.latent_dtype)

    def start(self, plan: PassPlan, noise: torch.Tensor) -> torch.Tensor:
        """The latent sampling starts from: pure noise, scaled to the first step's level."""
        return start_latent(plan, noise, self.settings.sampling)

    def keep(self) -> Keep | None:
        """What inpainting keeps of the init latents (img2img with a mask); None for txt2img."""
        return None

    def image_conditioning(self, batch_size: int) -> torch.Tensor | None:
        """Extra UNet input channels of inpainting models (mask + masked image latents).

        For txt2img, as in A1111: the whole image is "masked" and the masked image is grey.
        """
        if not self.model.is_inpainting:
            return None
        m, factor = self.model, self.model.vae_scale_factor
        grey = torch.zeros(1, 3, self.params.height, self.params.width, device=m.device, dtype=m.vae.dtype)
        with torch.inference_mode():
            latents = m.vae.encode(grey).latent_dist.mode() * m.vae.config.scaling_factor
        mask = torch.ones(1, 1, self.params.height // factor, self.params.width // factor, device=m.device)
        return torch.cat([mask, latents.float()], dim=1).to(m.latent_dtype).repeat(batch_size, 1, 1, 1)

    def finish_image(self, image: Image.Image, index: int) -> Image.Image:
        """A hook for each decoded image (img2img composites it back into the original)."""
        return image

    def sample(
        self,
        noise: torch.Tensor,
        conditioning: StepConditioning,
        seeds: list[int],
        noise_source: noise_sources.ImageRNG,
        refiner: Refiner | None,
        result: GenerationResult,
    ) -> torch.Tensor:
        """Sample the batch from `noise` with classifier-free guidance (switching to `refiner` when its share of
        the calls is reached); an interrupt or skip ends it with the last prediction."""
        plan, settings, p = self.sampling_plan(), self.settings.sampling, self.params
        x = self.start(plan, noise)
        switch = None
        if refiner is not None:
            switch = RefinerSwitch(self.model_pass(refiner.model, refiner.conditioning, plan, len(seeds)), refiner.at)
        skipping = NegativeSkipping(
            settings.skip_early_cond,
            settings.s_min_uncond,
            settings.s_min_uncond_all,
            on_timesteps=plan.sampler.kind == TIMESTEPS,
        )
        model = CFGDenoiser(
            self.model_pass(self.model, conditioning, plan, len(seeds)),
            p.cfg_scale,
            plan.calls,
            skipping=skipping,
            padding=settings.cond_padding,
            keep=self.keep(),
            refiner=switch,
            check_stop=lambda: self.ctx.should_stop,
        )
        model.sampling_steps = plan.steps

        def on_step(step: dict) -> None:
            model.sampling_step = step["i"] + 1
            self.ctx.report_step(self.step_offset + min(step["i"] + 1, plan.steps))
            if self.settings.preview_every and (step["i"] + 1) % self.settings.preview_every == 0:
                self.offer_preview(step["denoised"])

        with torch.inference_mode():
            latents = run_pass(plan, model, x.float(), noise_source, seeds, settings, None, on_step)
        self.note_sampling(plan, model, result)
        return self.after_sampling(latents.to(self.model.latent_dtype))

    def after_sampling(self, latents: torch.Tensor) -> torch.Tensor:
        """A hook on the sampled latents (img2img puts back what the mask keeps)."""
        return latents

    def note_sampling(self, plan: PassPlan, model: CFGDenoiser, result: GenerationResult) -> None:
        """The infotext keys and page notes of the sampling: A1111's sampler keys, RNG, ENSD, and what guidance
        did (NGMS, Skip Early CFG, Pad conds)."""
        s = self.settings.sampling
        self.extra_infotext.update({key: _text(value) for key, value in {**plan.infotext, **model.infotext}.items()})
        if s.randn_source != "GPU":
            self.extra_infotext["RNG"] = s.randn_source
        if uses_ensd(plan, s, None):
            self.extra_infotext["ENSD"] = str(s.eta_noise_seed_delta)
        result.warnings.extend(note for note in plan.notes if note not in result.warnings)

    def model_pass(
        self, model: StableDiffusionModel, conditioning: StepConditioning, plan: PassPlan, images: int
    ) -> ModelPass:
        """`model`'s part in sampling: its UNet on a guided batch (with SDXL's size conditioning and an
        inpainting model's extra channels), the pass's noise levels and the batch's prompts."""
        channels = self.image_conditioning(images) if model.is_inpainting else None
        time_ids = self.size_conditioning(model)

        def unet(
            x_in: torch.Tensor,
            t: torch.Tensor,
            embeds: torch.Tensor,
            pooled: torch.Tensor | None,
            row_images: torch.Tensor,
        ) -> torch.Tensor:
            if channels is not None:
                x_in = torch.cat([x_in, channels[row_images].to(x_in.dtype)], dim=1)
            added = None
            if time_ids is not None:
                added = {"text_embeds": pooled, "time_ids": time_ids.repeat(len(row_images), 1)}
            return model.unet(x_in.to(model.dtype), t, encoder_hidden_states=embeds, added_cond_kwargs=added).sample

        return ModelPass(unet, plan.denoiser, conditioning)

    def offer_preview(self, latents: torch.Tensor) -> None:
        """Offer the first image of the batch (the sampler's latest prediction) as a live preview, by the chosen
        method. Only "Full" decodes here; the others are built by whoever asks for the preview."""
        method, latent_format = self.settings.preview_method, self.model.family.latent_format
        if method == "Full":
            image = self.decode(latents[:1])[0]
            self.ctx.set_preview(lambda: image)
            return
        tools = self.tools
        decoder = {"TAESD": tools.taesd, "Approx NN": tools.approx_nn}.get(method) if tools is not None else None

        def make() -> Image.Image:
            with torch.inference_mode():
                return (decoder.decode(latents, latent_format) if decoder else None) or previews.approx_cheap(
                    latents, latent_format
                )

        self.ctx.set_preview(make)

    def size_conditioning(self, model: StableDiffusionModel) -> torch.Tensor | None:
        """The size conditioning of families that take it (SDXL: original size, crop offset, target size), one
        row; None for the others."""
        if not model.family.needs_size_conditioning:
            return None
        p = self.params
        return torch.tensor([[p.height, p.width, 0, 0, p.height, p.width]], device=model.device, dtype=model.dtype)

    def decode(self, latents: torch.Tensor, model: StableDiffusionModel | None = None) -> list[Image.Image]:
        """Latents → RGB images, with the VAE of `model` (default: the job's)."""
        model = model or self.model
        vae, factor = model.vae, model.vae_scale_factor
        # Tiled decoding would break the seamless wrap-around of "Tiling" at the tiles' seams.
        tiled = (
            not self.params.tiling
            and 0 < self.settings.vae_tiling_min_pixels <= latents.shape[-1] * latents.shape[-2] * factor**2
        )
        with torch.inference_mode(), model_optimizations.vae_tiling(vae, tiled):
            # one image at a time and times the reciprocal, as A1111's decode_latent_batch and decode_first_stage (a
            # batched call or dividing rounds some pixels a level off)
            pixels = torch.cat(
                [
                    vae.decode(latent[None].to(vae.dtype) * (1.0 / vae.config.scaling_factor)).sample
                    for latent in latents
                ]
            )
        pixels = torch.clamp((pixels.float() + 1.0) / 2.0, min=0.0, max=1.0).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(img) for img in (255.0 * pixels).astype(np.uint8)]  # truncated, as A1111 writes

    def postprocess(
        self, result: GenerationResult, image: Image.Image, seed: int, prompt: str, negative_prompt: str, subseed: int
    ) -> None:
        """Write the infotext, save the image, and add it to the result."""
        p = replace(self.params, seed=seed, prompt=prompt, negative_prompt=negative_prompt, subseed=subseed)
        used = ModelUsed.of(self.model)
        extra = {"Model hash": used.hash, "Model": used.name, "VAE hash": used.vae_hash, "VAE": used.vae_name}
        if p.restore_faces:
            extra["Face restoration"] = self.settings.face_restoration_model
        if self.settings.encoder_options.emphasis != EncoderOptions().emphasis:
            extra["Emphasis"] = self.settings.encoder_options.emphasis
        infotext = create_infotext(p, {**extra, **self.extra_infotext}, self.job)
        result.images.append(image)
        result.infotexts.append(infotext)
        result.seeds.append(seed)
        result.prompts.append(p.prompt)
        result.negative_prompts.append(p.negative_prompt)
        if self.settings.save_dir is not None:
            try:
                path = save_output(
                    self.settings,
                    self.hooks.p,
                    image,
                    p,
                    len(result.images) - 1,
                    self.job,
                    used.name,
                    used.hash,
                    self.params.prompt,
                    infotext,
                )
            except DiskFull as exc:  # the image is still in the answer
                log.error("%s", exc)
                if str(exc) not in result.warnings:
                    result.warnings.append(str(exc))
                return
            result.paths.append(path)


def save_output(
    settings: RunSettings,
    p: object,
    image: Image.Image,
    params: GenerationParams,
    index: int,
    job: str,
    model_name: str,
    model_hash: str | None,
    prompt: str,
    infotext: str,
) -> Path:
    """Save image `index` of a job into `settings.save_dir` (which must be set), with the before/after
    image-saved callbacks; `params` holds the image's own seed and prompts. DiskFull when the disk is full."""
    fields = NameFields.of_image(params, index, job, model_name, model_hash, prompt)
    folder = images.dated_folder(settings.save_dir)
    planned = str(settings.naming.planned_path(folder, fields))
    saving = script_callbacks.ImageSaveParams(image, p, planned, {"parameters": infotext})
    script_callbacks.before_image_saved_callback(saving)
    path = settings.naming.save(
        saving.image,
        folder,
        fields,
        saving.pnginfo.get("parameters"),
        None if saving.filename == planned else saving.filename,
    )
    saving.filename = str(path)
    script_callbacks.image_saved_callback(saving)
    return path


class HiresPass(Txt2Img):
    """Hires fix's second pass: img2img at the larger size, started from the upscaled first pass."""

    supports_hires = False

    def __init__(self, first: Txt2Img) -> None:
        super().__init__(
            first.hires_model or first.model,
            hires_fix.second_pass_params(first.params),
            first.ctx,
            first.settings,
            first.networks,
            first.tools,
        )
        self.first = first
        self.use_extra_network_tags = first.use_extra_network_tags
        self.refiner_model = first.refiner_model  # takes over when hires_fix_refiner_pass includes this pass
        self.size = hires_fix.hires_size(first.params)
        self.upscaler = first.params.hr_upscaler
        self.step_offset = first.sampling_steps()
        self._init: torch.Tensor | None = None
        hires_fix.check_upscaler(self.upscaler, self.tools.upscalers if self.tools else None)

    def make_plan(self) -> PassPlan:
        """Exactly the hires steps, taken from the end of a schedule stretched by the denoising strength (A1111
        hands the hires pass its steps, so its fixed-steps rule applies)."""
        return self.plan_with(
            denoising_strength=self.params.denoising_strength,
            fixed_steps=True,
            hires=True,
            first_schedule=self.first.sampling_plan().infotext.get("Schedule type"),
        )

    def timeline(self) -> Timeline:
        """Prompt editing over both passes, as A1111 ≥ 1.6 counts it (unless use_old_scheduling)."""
        first = self.first
        return Timeline(
            first.sampling_plan().sampler.total_steps(first.params.steps),
            self.sampling_plan().sampler.total_steps(self.params.steps),
            self.settings.sampling.use_old_scheduling,
        )

    def start(self, plan: PassPlan, noise: torch.Tensor) -> torch.Tensor:
        return start_latent(plan, noise, self.settings.sampling, init=self._init.float())

    def continue_from(
        self,
        latents: torch.Tensor,
        seeds: list[int],
        subseeds: list[int],
        result: GenerationResult,
        prompts: list[str],
        negatives: list[str],
    ) -> tuple[torch.Tensor, dict[str, str]]:
        """Upscale a batch of first-pass latents and denoise them again at the larger size, with the hires prompts
        where given, else the batch's own. Its noise is fresh noise of the same seeds at the larger size. Returns
        the latents and the infotext keys of this pass, for the job's infotext."""
        first, count, factor = self.first.params, len(seeds), self.model.vae_scale_factor
        self._init = self._upscaled(latents, seeds)
        noise_source = self.image_rng(seeds, subseeds, self._init.shape[-1] * factor, self._init.shape[-2] * factor)
        noise = noise_source.next().to(self.model.latent_dtype)
        prompts = [first.hr_prompt] * count if first.hr_prompt else prompts
        negatives = [first.hr_negative_prompt] * count if first.hr_negative_prompt else negatives
        conditioning = self.encode(prompts, negatives, result)
        refiner = self.refiner_for(prompts, negatives, result)
        latents = self.sample(noise, conditioning, seeds, noise_source, refiner, result)
        return latents, dict(self.extra_infotext)

    def _upscaled(self, latents: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        factor = self.model.vae_scale_factor
        if is_latent_upscaler(self.upscaler):
            return hires_fix.upscale_latent_batch(latents, self.upscaler, self.size, factor)
        s = self.settings
        pictures = [
            hires_fix.upscale_image(
                image, self.upscaler, self.size, self.tools.upscalers, s.upscale_tile, s.upscale_overlap
            )
            for image in self.first.decode(latents)
        ]
        draws = self._posterior_draws(seeds)
        return torch.cat([encode_image(self.model, picture, draws) for picture in pictures])

    def _posterior_draws(self, seeds: list[int]) -> torch.Generator | None:
        """What A1111's VAE draws its posterior samples from when it encodes the upscaled pictures, one picture
        after the other: torch's global CPU generator, which the batch's noise (ImageRNG.first, through its
        randn(seed, …)) last seeded with the batch's last seed, for the GPU and CPU sources alike; an SDE sampler
        under no_dpmpp_sde_batch_determinism has drawn its tree's seed from it since. With the NV source A1111
        leaves torch's generator as the process left it, so no draw repeats: the mean then."""
        s = self.settings.sampling
        if s.randn_source == "NV":
            return None
        generator = torch.Generator().manual_seed(int(seeds[-1]))
        if s.no_dpmpp_sde_batch_determinism and self.first.sampling_plan().sampler.brownian_noise:
            torch.randint(0, 2**63 - 1, [], generator=generator)
        return generator


def _text(value: object) -> str:
    """An infotext value as A1111 writes numbers: 0.5, 2, 1e-05; True."""
    return f"{value:g}" if isinstance(value, float) else str(value)
