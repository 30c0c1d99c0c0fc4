"""One txt2img generation as a list of stages: validate → encode → noise → denoise → (hires fix) →
decode → (face restoration) → save."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules import hires_fix, images, model_optimizations, previews, rng, samplers, script_callbacks, tiling
from modules.conditioning import EncoderOptions
from modules.engine import JobContext
from modules.errors import DiskFull, UserError
from modules.file_names import NameFields
from modules.face_restoration import MissingWeightsError, missing_weights_message
from modules.generation_params import FIRST_PASS, NO_REFINER, SECOND_PASS, GenerationParams
from modules.image_tools import ImageTools
from modules.infotext import create_infotext
from modules.limits import Limits
from modules.networks import Networks
from modules.sd_models import StableDiffusionModel
from modules.upscalers import is_latent_upscaler
from modules.step_conditioning import StepConditioning, guided_noise, model_input, with_negatives_from_first_part

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    """Settings a job reads, captured when it is submitted."""

    randn_source: str = "CPU"
    eta_noise_seed_delta: int = 0
    ddim_eta: float = 0.0  # A1111's "Eta for DDIM"
    sigma_churn: samplers.SigmaChurn = samplers.SigmaChurn()
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
    negative_guidance_min_sigma: float = 0.0  # A1111's NGMS: 0 = always run the negative prompt
    img2img_noise_multiplier: float = 1.0  # scales the noise img2img starts from ("Noise multiplier")
    vae_tiling_min_pixels: int = 0  # decode tile by tile from this many pixels; 0 = never


@dataclass
class GenerationResult:
    """Images of a job with each one's infotext and seed, and where they were saved."""

    params: GenerationParams
    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False


@dataclass
class ImagePlan:
    """Each image's prompt, negative prompt, seed and variation seed (scripts may give every image its own)."""

    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]
    subseeds: list[int] = field(default_factory=list)  # needed only with a variation strength

    @classmethod
    def repeated(cls, params: GenerationParams, count: int) -> "ImagePlan":
        """The usual plan: the same prompts for every image, seeds (or, with a variation strength,
        variation seeds) counting up."""
        return cls([params.prompt] * count, [params.negative_prompt] * count,
                   rng.image_seeds(params.seed, count, params.subseed_strength), rng.image_seeds(params.subseed, count))


class JobHooks:
    """Where scripts join a running job. This base class changes nothing."""

    p = None  # the A1111 processing object the job was started from, if any

    def before_batch(self, batch_no: int, plan: ImagePlan, first: int, count: int) -> None:
        """Before a batch is encoded and sampled."""

    def image(self, image: Image.Image, index: int) -> Image.Image:
        """Each finished image before it is saved; may return a replacement."""
        return image

    def after_batch(self, batch_no: int, batch_images: list[Image.Image]) -> None:
        """After a batch's images are finished and saved."""


def validate(params: GenerationParams, limits: Limits) -> None:
    """Refuse impossible jobs and those over the limits with a clear message, before anything is allocated."""
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
        raise UserError("Resize seed from width and height must be at least 8 (or 0 for off), got "
                        f"{params.seed_resize_from_w}x{params.seed_resize_from_h}")
    try:
        samplers.resolve(params.sampler_name, params.scheduler)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def seed_resize_from(params: GenerationParams) -> bool:
    """Whether "Resize seed from" is on: both sides above 0 (0 or -1 is off, as in A1111)."""
    return params.seed_resize_from_w > 0 and params.seed_resize_from_h > 0


def sigma_of(scheduler, t: torch.Tensor) -> float:
    """The noise level (k-diffusion's sigma) of diffusers timestep `t`."""
    alphas = scheduler.alphas_cumprod
    index = min(max(int(round(float(t))), 0), len(alphas) - 1)
    return float(((1 - alphas[index]) / alphas[index]) ** 0.5)


def partial_steps(steps: int, strength: float) -> int:
    """How many of `steps` an img2img-style pass runs at denoising `strength`."""
    return min(int(steps * strength), steps)


def noised_start(scheduler, steps: int, sampling_steps: int, init: torch.Tensor,
                 noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Skip the first `steps - sampling_steps` steps of the schedule and noise `init` to where it resumes."""
    skip = (steps - sampling_steps) * getattr(scheduler, "order", 1)
    timesteps = scheduler.timesteps[skip:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(skip)
    if len(timesteps) == 0:
        return timesteps, init
    return timesteps, scheduler.add_noise(init, noise, timesteps[:1].repeat(init.shape[0]))


@torch.inference_mode()
def encode_image(model: StableDiffusionModel, image: Image.Image) -> torch.Tensor:
    """VAE latents of an RGB image (the distribution's mean, so results repeat), scaled for the UNet."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None].to(device=model.device, dtype=model.vae.dtype)
    latents = model.vae.encode(pixels).latent_dist.mode() * model.vae.config.scaling_factor
    return latents.to(model.latent_dtype)


def refiner_switch_step(steps: int, switch_at: float) -> int | None:
    """The sampling step a refiner takes over at, as A1111 counts: the first before which more than
    `switch_at` of the `steps` are done; None when there is none."""
    return next((step for step in range(steps) if step / steps > switch_at), None)


@dataclass
class Refiner:
    """The model sampling switches to, its conditioning of the batch's prompts, and the step it takes over at."""

    model: StableDiffusionModel
    conditioning: StepConditioning
    step: int


class Txt2Img:
    """Runs one txt2img job on a loaded model, reporting progress to `ctx`. Img2Img builds on it."""

    supports_hires = True
    step_offset = 0  # steps already reported in this batch (the hires pass follows the first)

    def __init__(self, model: StableDiffusionModel, params: GenerationParams, ctx: JobContext,
                 settings: RunSettings, networks: Networks | None = None, tools: ImageTools | None = None) -> None:
        self.model = model
        self.params = params
        self.ctx = ctx
        self.settings = settings
        self.networks = networks
        self.tools = tools
        self.extra_infotext: dict[str, str] = {}
        self.plan: ImagePlan | None = None  # None: ImagePlan.repeated
        self.hooks = JobHooks()
        self.hires_model: StableDiffusionModel | None = None  # hires fix's own checkpoint ("Hires checkpoint")
        self.refiner_model: StableDiffusionModel | None = None  # the "Refiner" checkpoint
        self.refiner_step: int | None = None  # the sampling step at which the refiner takes over
        self.use_extra_network_tags = True  # False: <lora:…> tags are ignored (A1111's disable_extra_networks)

    @property
    def job(self) -> str:
        """The kind of job, which picks the infotext fields: "txt2img", or "hires" with hires fix."""
        return "hires" if self.params.enable_hr else "txt2img"

    def run(self) -> GenerationResult:
        p = self.params
        validate(p, self.settings.limits)
        sampler, schedule = samplers.resolve(p.sampler_name, p.scheduler)
        self.params = replace(p, sampler_name=sampler, scheduler=schedule, seed=rng.resolve_seed(p.seed),
                              subseed=rng.resolve_seed(p.subseed), hr_checkpoint_name=self._hires_checkpoint())
        hires = HiresPass(self) if p.enable_hr and self.supports_hires else None
        p = self.params = replace(self.params, refiner_checkpoint=self._refiner_checkpoint(hires))
        self._check_face_restoration()
        result = GenerationResult(params=p)
        plan = self.plan or ImagePlan.repeated(p, p.batch_size * p.n_iter)
        count = min(p.batch_size * p.n_iter, len(plan.prompts))  # a script's plan may end in a smaller batch
        if min(len(plan.negative_prompts), len(plan.seeds)) < count:
            raise UserError(f"{count} images need as many negative prompts and seeds")
        if p.subseed_strength and len(plan.subseeds) < count:
            raise UserError(f"{count} images with a variation strength need as many variation seeds")
        self.ctx.set_job_count(p.n_iter)
        with self.tiling():
            for batch_no in range(p.n_iter):
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
        Sets `refiner_step` of this pass and of `hires` (the setting hires_fix_refiner_pass picks the passes);
        a refiner of another kind than the model is refused."""
        p, refiner, m = self.params, self.refiner_model, self.model
        if p.refiner is None:
            return p.refiner_checkpoint
        if refiner is None:
            raise UserError(f"Refiner {p.refiner_checkpoint} is not loaded for this job")
        if (refiner.family, refiner.unet.config.in_channels) != (m.family, m.unet.config.in_channels):
            raise UserError(f"The refiner {refiner.short_title} can't take over from {m.short_title}: a refiner "
                            "must be of the same kind (SD 1.x, SD 2.x or SDXL; inpainting or not)")
        passes = self.settings.hires_refiner_pass if hires is not None else FIRST_PASS
        if passes != SECOND_PASS:
            self.refiner_step = refiner_switch_step(self.sampling_steps(), p.refiner_switch_at)
        if hires is not None and passes != FIRST_PASS:
            hires.refiner_step = refiner_switch_step(hires.sampling_steps(), p.refiner_switch_at)
        if self.refiner_step is None and (hires is None or hires.refiner_step is None):
            return NO_REFINER
        if hires is not None and passes != SECOND_PASS:
            self.extra_infotext["Hires refiner"] = passes
        return refiner.short_title

    def run_batch(self, batch_no: int, plan: ImagePlan, batch: slice, hires: HiresPass | None,
                  result: GenerationResult) -> None:
        """Encode, sample (switching to the refiner), (hires fix,) decode and save the images `batch` of the plan."""
        prompts, negatives, seeds = plan.prompts[batch], plan.negative_prompts[batch], plan.seeds[batch]
        conditioning = self.encode(prompts, negatives, result)
        refiner = self.refiner_for(prompts, negatives, result)
        noise = self.batch_noise(seeds, plan.subseeds[batch])
        latents = self.denoise(self.prepare_latents(noise, batch.start), conditioning, seeds, noise.generators,
                               refiner)
        vae_model = self.model if refiner is None else refiner.model  # A1111 decodes with the refiner's VAE
        if hires is not None and not self.ctx.should_stop:
            latents = hires.continue_from(latents, noise, result, prompts, negatives)
            # a "Hires checkpoint" may have a VAE of its own, and so may a refiner in the second pass
            vae_model = hires.model if hires.refiner_step is None else hires.refiner_model
        finished = []
        for index, image in enumerate(self.decode(latents, vae_model), start=batch.start):
            image = self.hooks.image(self.finish_image(self.restore_faces(image, result), index), index)
            subseed = plan.subseeds[index] if index < len(plan.subseeds) else self.params.subseed
            self.postprocess(result, image, plan.seeds[index], plan.prompts[index], plan.negative_prompts[index],
                             subseed)
            finished.append(image)
        self.hooks.after_batch(batch_no, finished)

    def refiner_for(self, prompts: list[str], negatives: list[str], result: GenerationResult) -> Refiner | None:
        """The refiner this pass switches to, with its conditioning of the prompts; None when it doesn't."""
        if self.refiner_step is None:
            return None
        return Refiner(self.refiner_model, self.encode(prompts, negatives, result, self.refiner_model),
                       self.refiner_step)

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

    def encode(self, prompts: list[str], negatives: list[str], result: GenerationResult,
               model: StableDiffusionModel | None = None) -> StepConditioning:
        """Each image's conditioning for every step by `model`'s text encoders (default: the job's model's),
        with the prompts' LoRAs and embeddings ready on it."""
        model = model or self.model
        variant: tuple = ()
        if self.networks is not None:
            applied = self.networks.prepare(model, prompts, self.use_extra_network_tags)
            variant = applied.variant
            result.warnings.extend(w for w in applied.warnings if w not in result.warnings)
            self.extra_infotext.update(applied.infotext)
        options = self.settings.encoder_options  # scripts may have changed the prompts since the job was submitted
        self.settings.limits.check_prompt_chunks(prompts, negatives, self.params.steps,
                                                 lambda text: model.prompt_encoder.chunk_count(text, options))
        conditioning = StepConditioning(model.prompt_encoder, prompts, negatives, self.params.steps,
                                        self.params.clip_skip, options, variant)
        if self.networks is not None:
            self.extra_infotext.update(self.networks.ti_hashes(conditioning.embeddings_used))
        return conditioning

    def sampling_steps(self) -> int:
        """How many steps the sampler runs (img2img runs fewer, by denoising strength)."""
        return self.params.steps

    def batch_noise(self, seeds: list[int], subseeds: list[int]) -> rng.BatchNoise:
        """The noise source of a batch: its seeds, and its variation seeds and "Resize seed from" if set."""
        p, factor = self.params, self.model.vae_scale_factor
        resize = (p.seed_resize_from_h // factor, p.seed_resize_from_w // factor) if seed_resize_from(p) else None
        return rng.BatchNoise(seeds, self.model.device, self.settings.randn_source, subseeds, p.subseed_strength,
                              resize)

    def prepare_latents(self, noise: rng.BatchNoise, first: int) -> torch.Tensor:
        """Initial noise for images first, first+1, …, each from its own seeds."""
        m = self.model
        factor = m.vae_scale_factor
        shape = (m.vae.config.latent_channels, self.params.height // factor, self.params.width // factor)
        return noise.first(shape, m.device, m.latent_dtype)

    def start(self, scheduler, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The timesteps to run and the latents to start from: all of them, from pure noise."""
        return scheduler.timesteps, noise * scheduler.init_noise_sigma

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

    def after_step(self, latents: torch.Tensor, scheduler, index: int, timesteps: torch.Tensor) -> torch.Tensor:
        """A hook after each sampler step (img2img keeps the unmasked area there)."""
        return latents

    def finish_image(self, image: Image.Image, index: int) -> Image.Image:
        """A hook for each decoded image (img2img composites it back into the original)."""
        return image

    def _step_arguments(self, seeds: list[int], gens: list[torch.Generator]) -> dict:
        """The scheduler step's eta (DDIM), sigma churn (Euler) and noise generators, noting them and ENSD in the
        infotext."""
        info, settings, extra = samplers.sampler_info(self.params.sampler_name), self.settings, {}
        if info.accepts_eta and settings.ddim_eta:
            extra["eta"] = settings.ddim_eta
            self.extra_infotext["Eta DDIM"] = f"{settings.ddim_eta:g}"
        if info.accepts_churn and settings.sigma_churn != samplers.SigmaChurn():
            extra.update(settings.sigma_churn.step_arguments())
            self.extra_infotext.update(settings.sigma_churn.infotext())
        if info.accepts_generator:
            extra["generator"] = rng.sampler_generators(seeds, gens, self.model.device, settings.randn_source,
                                                         settings.eta_noise_seed_delta)
            if settings.eta_noise_seed_delta and (info.stochastic or "eta" in extra):
                self.extra_infotext["ENSD"] = str(settings.eta_noise_seed_delta)
        return extra

    def denoise(self, latents: torch.Tensor, conditioning: StepConditioning, seeds: list[int],
                gens: list[torch.Generator], refiner: Refiner | None = None) -> torch.Tensor:
        """The sampling loop with classifier-free guidance, switching to `refiner` at its step; stops early
        on interrupt or skip."""
        m, p = self.model, self.params
        scheduler = samplers.create_scheduler(p.sampler_name, p.scheduler, m.scheduler_config, noise_seed=seeds)
        scheduler.set_timesteps(p.steps, device=m.device)
        timesteps, latents = self.start(scheduler, latents)
        conditioning_channels = self.image_conditioning(len(seeds))
        extra = self._step_arguments(seeds, gens)
        order = getattr(scheduler, "order", 1)
        time_ids = self._sdxl_time_ids(conditioning.at(0).embeds.shape[0], m)
        if self.settings.negative_guidance_min_sigma > 0:
            self.extra_infotext["NGMS"] = f"{self.settings.negative_guidance_min_sigma:g}"
        with torch.inference_mode():
            for i, t in enumerate(timesteps):
                if self.ctx.should_stop:
                    break
                if refiner is not None and i == refiner.step * order:
                    m, conditioning = refiner.model, refiner.conditioning
                    time_ids = self._sdxl_time_ids(conditioning.at(0).embeds.shape[0], m)
                batch = conditioning.at((i + order - 1) // order)
                x_in = scheduler.scale_model_input(model_input(latents, batch), t)
                if conditioning_channels is not None:
                    x_in = torch.cat([x_in, model_input(conditioning_channels, batch)], dim=1)
                embeds = batch.embeds
                if script_callbacks.has("cfg_denoiser"):
                    before = script_callbacks.CFGDenoiserParams(x_in, conditioning_channels, t, i, len(timesteps),
                                                                embeds, None)
                    script_callbacks.cfg_denoiser_callback(before)
                    x_in, embeds = before.x, before.text_cond
                skip = i % 2 == 1 and sigma_of(scheduler, t) < self.settings.negative_guidance_min_sigma
                rows = slice(batch.images if skip else 0, None)  # NGMS: without the negatives' rows
                added = None if time_ids is None else {"text_embeds": batch.pooled[rows], "time_ids": time_ids[rows]}
                noise = m.unet(x_in[rows].to(m.dtype), t, encoder_hidden_states=embeds[rows],
                               added_cond_kwargs=added).sample.to(latents.dtype)
                if skip:
                    noise = with_negatives_from_first_part(noise, batch)
                guided = guided_noise(noise, batch, p.cfg_scale)
                if script_callbacks.has("cfg_denoised"):
                    after = script_callbacks.CFGDenoisedParams(guided, i, len(timesteps), m.unet)
                    script_callbacks.cfg_denoised_callback(after)
                    guided = after.x
                latents = scheduler.step(guided, t, latents, **extra).prev_sample
                latents = self.after_step(latents, scheduler, i, timesteps)
                step = (i + order) // order
                self.ctx.report_step(self.step_offset + step)
                if self.settings.preview_every and step % self.settings.preview_every == 0:
                    self.offer_preview(latents)
        return latents

    def offer_preview(self, latents: torch.Tensor) -> None:
        """Offer the first image of the batch as a live preview, by the chosen method. Only "Full"
        decodes here; the others are built by whoever asks for the preview."""
        method, sdxl = self.settings.preview_method, self.model.is_sdxl
        if method == "Full":
            image = self.decode(latents[:1])[0]
            self.ctx.set_preview(lambda: image)
            return
        tools = self.tools
        decoder = {"TAESD": tools.taesd, "Approx NN": tools.approx_nn}.get(method) if tools is not None else None

        def make() -> Image.Image:
            with torch.inference_mode():
                return (decoder.decode(latents, sdxl) if decoder else None) or previews.approx_cheap(latents, sdxl)
        self.ctx.set_preview(make)

    def _sdxl_time_ids(self, rows: int, model: StableDiffusionModel) -> torch.Tensor | None:
        """SDXL's size conditioning (original size, crop offset, target size) for `rows` inputs of `model`."""
        if not model.is_sdxl:
            return None
        p = self.params
        return torch.tensor([[p.height, p.width, 0, 0, p.height, p.width]], device=model.device,
                            dtype=model.dtype).repeat(rows, 1)

    def decode(self, latents: torch.Tensor, model: StableDiffusionModel | None = None) -> list[Image.Image]:
        """Latents → RGB images, with the VAE of `model` (default: the job's)."""
        model = model or self.model
        vae, factor = model.vae, model.vae_scale_factor
        # Tiled decoding would break the seamless wrap-around of "Tiling" at the tiles' seams.
        tiled = (not self.params.tiling
                 and 0 < self.settings.vae_tiling_min_pixels <= latents.shape[-1] * latents.shape[-2] * factor ** 2)
        with torch.inference_mode(), model_optimizations.vae_tiling(vae, tiled):
            pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        pixels = (pixels / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
        return [Image.fromarray(img) for img in (pixels * 255).round().astype(np.uint8)]

    def postprocess(self, result: GenerationResult, image: Image.Image, seed: int, prompt: str,
                    negative_prompt: str, subseed: int) -> None:
        """Write the infotext, save the image, and add it to the result."""
        p = replace(self.params, seed=seed, prompt=prompt, negative_prompt=negative_prompt, subseed=subseed)
        m = self.model
        extra = {"Model hash": m.short_hash, "Model": m.checkpoint.model_name,
                 "VAE hash": m.vae_short_hash, "VAE": m.vae_name}
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
            saving = script_callbacks.ImageSaveParams(image, self.hooks.p, "", {"parameters": infotext})
            script_callbacks.before_image_saved_callback(saving)
            fields = NameFields.of_image(p, len(result.images) - 1, self.job, m.checkpoint.model_name, m.short_hash,
                                         self.params.prompt)
            try:
                path = self.settings.naming.save(saving.image, images.dated_folder(self.settings.save_dir), fields,
                                                 saving.pnginfo.get("parameters"))
            except DiskFull as exc:  # the image is still in the answer
                log.error("%s", exc)
                if str(exc) not in result.warnings:
                    result.warnings.append(str(exc))
                return
            saving.filename = str(path)
            script_callbacks.image_saved_callback(saving)
            result.paths.append(path)



class HiresPass(Txt2Img):
    """Hires fix's second pass: img2img at the larger size, started from the upscaled first pass."""

    supports_hires = False

    def __init__(self, first: Txt2Img) -> None:
        super().__init__(first.hires_model or first.model, hires_fix.second_pass_params(first.params), first.ctx,
                         first.settings, first.networks, first.tools)
        self.first = first
        self.use_extra_network_tags = first.use_extra_network_tags
        self.refiner_model = first.refiner_model  # takes over when hires_fix_refiner_pass includes this pass
        self.size = hires_fix.hires_size(first.params)
        self.upscaler = first.params.hr_upscaler
        self.step_offset = first.sampling_steps()
        self._init: torch.Tensor | None = None
        if not 0.0 <= first.params.denoising_strength <= 1.0:
            raise UserError(f"Denoising strength must be between 0 and 1, got {first.params.denoising_strength}")
        validate(self.params, self.settings.limits)
        sampler, schedule = samplers.resolve(self.params.sampler_name, self.params.scheduler)
        self.params = replace(self.params, sampler_name=sampler, scheduler=schedule)
        hires_fix.check_upscaler(self.upscaler, self.tools.upscalers if self.tools else None)

    def sampling_steps(self) -> int:
        return partial_steps(self.params.steps, self.params.denoising_strength)

    def start(self, scheduler, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return noised_start(scheduler, self.params.steps, self.sampling_steps(), self._init, noise)

    def continue_from(self, latents: torch.Tensor, noise: rng.BatchNoise, result: GenerationResult,
                      prompts: list[str], negatives: list[str]) -> torch.Tensor:
        """Upscale a batch of first-pass latents and denoise them again at the larger size, with the
        hires prompts where given, else the batch's own. Its noise continues the batch's generators."""
        m, first, count = self.model, self.first.params, len(noise.seeds)
        self._init = self._upscaled(latents)
        start = noise.next(tuple(self._init.shape[1:]), m.device, m.latent_dtype)
        prompts = [first.hr_prompt] * count if first.hr_prompt else prompts
        negatives = [first.hr_negative_prompt] * count if first.hr_negative_prompt else negatives
        conditioning = self.encode(prompts, negatives, result)
        refiner = self.refiner_for(prompts, negatives, result)
        self.first.extra_infotext.update(self.extra_infotext)
        return self.denoise(start, conditioning, noise.seeds, noise.generators, refiner)

    def _upscaled(self, latents: torch.Tensor) -> torch.Tensor:
        factor = self.model.vae_scale_factor
        if is_latent_upscaler(self.upscaler):
            return hires_fix.upscale_latent_batch(latents, self.upscaler, self.size, factor)
        s = self.settings
        pictures = [hires_fix.upscale_image(image, self.upscaler, self.size, self.tools.upscalers, s.upscale_tile,
                                            s.upscale_overlap) for image in self.first.decode(latents)]
        return torch.cat([encode_image(self.model, picture) for picture in pictures])
