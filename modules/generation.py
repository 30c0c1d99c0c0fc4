"""One txt2img generation as a list of stages: validate → encode → noise → denoise → decode → save."""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules import images, rng, samplers
from modules.conditioning import EncoderOptions
from modules.engine import JobContext
from modules.errors import UserError
from modules.generation_params import GenerationParams
from modules.infotext import create_infotext
from modules.networks import Networks
from modules.sd_models import StableDiffusionModel
from modules.step_conditioning import StepConditioning, guided_noise, model_input

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    """Settings a job reads, captured when it is submitted."""

    randn_source: str = "CPU"
    eta_noise_seed_delta: int = 0
    max_pixels: int = 2048 * 2048
    save_dir: Path | None = None  # None: don't save
    filename_words: int = 8
    encoder_options: EncoderOptions = EncoderOptions()


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


def validate(params: GenerationParams, max_pixels: int) -> None:
    """Refuse impossible or too-large jobs with a clear message, before anything is allocated."""
    for name in ("width", "height"):
        value = getattr(params, name)
        if value < 64 or value % 8:
            raise UserError(f"{name.capitalize()} must be a multiple of 8 and at least 64, got {value}")
    if params.width * params.height > max_pixels:
        raise UserError(f"{params.width}x{params.height} is {params.width * params.height:,} pixels, more than "
                        f"the limit of {max_pixels:,} (setting: Largest image size allowed)")
    if not 1 <= params.steps <= 1000:
        raise UserError(f"Sampling steps must be between 1 and 1000, got {params.steps}")
    if params.batch_size < 1 or params.n_iter < 1:
        raise UserError("Batch size and batch count must be at least 1")
    if not np.isfinite(params.cfg_scale):
        raise UserError(f"CFG Scale must be a finite number, got {params.cfg_scale}")
    try:
        samplers.resolve(params.sampler_name, params.scheduler)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


class Txt2Img:
    """Runs one txt2img job on a loaded model, reporting progress to `ctx`. Img2Img builds on it."""

    job = "txt2img"

    def __init__(self, model: StableDiffusionModel, params: GenerationParams, ctx: JobContext,
                 settings: RunSettings, networks: Networks | None = None) -> None:
        self.model = model
        self.params = params
        self.ctx = ctx
        self.settings = settings
        self.networks = networks
        self.extra_infotext: dict[str, str] = {}

    def run(self) -> GenerationResult:
        p = self.params
        validate(p, self.settings.max_pixels)
        sampler, schedule = samplers.resolve(p.sampler_name, p.scheduler)
        p = self.params = replace(p, sampler_name=sampler, scheduler=schedule, seed=rng.resolve_seed(p.seed))
        result = GenerationResult(params=p)
        all_seeds = rng.image_seeds(p.seed, p.batch_size * p.n_iter)
        self.ctx.set_job_count(p.n_iter)
        for batch_no in range(p.n_iter):
            if self.ctx.interrupted:
                break
            self.ctx.begin_batch(batch_no, self.sampling_steps())
            first = batch_no * p.batch_size
            seeds = all_seeds[first:first + p.batch_size]
            conditioning = self.encode([p.prompt] * len(seeds), [p.negative_prompt] * len(seeds), result)
            latents, gens = self.prepare_latents(seeds, first)
            latents = self.denoise(latents, conditioning, seeds, gens)
            for index, (image, seed) in enumerate(zip(self.decode(latents), seeds), start=first):
                self.postprocess(result, self.finish_image(image, index), seed)
        result.interrupted = self.ctx.interrupted
        return result

    def encode(self, prompts: list[str], negatives: list[str], result: GenerationResult) -> StepConditioning:
        """Each image's conditioning for every step, with the prompts' LoRAs and embeddings ready."""
        variant: tuple = ()
        if self.networks is not None:
            applied = self.networks.prepare(self.model, prompts)
            variant = applied.variant
            result.warnings.extend(w for w in applied.warnings if w not in result.warnings)
            self.extra_infotext.update(applied.infotext)
        conditioning = StepConditioning(self.model.prompt_encoder, prompts, negatives, self.params.steps,
                                        self.params.clip_skip, self.settings.encoder_options, variant)
        if self.networks is not None:
            self.extra_infotext.update(self.networks.ti_hashes(conditioning.embeddings_used))
        return conditioning

    def sampling_steps(self) -> int:
        """How many steps the sampler runs (img2img runs fewer, by denoising strength)."""
        return self.params.steps

    def prepare_latents(self, seeds: list[int], first: int) -> tuple[torch.Tensor, list[torch.Generator]]:
        """Initial noise for images first, first+1, …: one generator per image, seeded with its seed."""
        m = self.model
        factor = m.vae_scale_factor
        shape = (m.vae.config.latent_channels, self.params.height // factor, self.params.width // factor)
        gens = rng.generators(seeds, m.device, self.settings.randn_source)
        return rng.initial_noise(gens, shape, m.device, m.dtype), gens

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
        return torch.cat([mask, latents.float()], dim=1).to(m.dtype).repeat(batch_size, 1, 1, 1)

    def after_step(self, latents: torch.Tensor, scheduler, index: int, timesteps: torch.Tensor) -> torch.Tensor:
        """A hook after each sampler step (img2img keeps the unmasked area there)."""
        return latents

    def finish_image(self, image: Image.Image, index: int) -> Image.Image:
        """A hook for each decoded image (img2img composites it back into the original)."""
        return image

    def denoise(self, latents: torch.Tensor, conditioning: StepConditioning, seeds: list[int],
                gens: list[torch.Generator]) -> torch.Tensor:
        """The sampling loop with classifier-free guidance; stops early on interrupt or skip."""
        m, p = self.model, self.params
        scheduler = samplers.create_scheduler(p.sampler_name, p.scheduler, m.scheduler_config, noise_seed=seeds)
        scheduler.set_timesteps(p.steps, device=m.device)
        timesteps, latents = self.start(scheduler, latents)
        conditioning_channels = self.image_conditioning(len(seeds))
        extra = {}
        if "generator" in inspect.signature(scheduler.step).parameters:
            extra["generator"] = rng.sampler_generators(seeds, gens, m.device, self.settings.randn_source,
                                                         self.settings.eta_noise_seed_delta)
        order = getattr(scheduler, "order", 1)
        time_ids = self._sdxl_time_ids(conditioning.at(0).embeds.shape[0])
        with torch.inference_mode():
            for i, t in enumerate(timesteps):
                if self.ctx.should_stop:
                    break
                batch = conditioning.at((i + order - 1) // order)
                x_in = scheduler.scale_model_input(model_input(latents, batch), t)
                if conditioning_channels is not None:
                    x_in = torch.cat([x_in, model_input(conditioning_channels, batch)], dim=1)
                added = None if time_ids is None else {"text_embeds": batch.pooled, "time_ids": time_ids}
                noise = m.unet(x_in, t, encoder_hidden_states=batch.embeds, added_cond_kwargs=added).sample
                latents = scheduler.step(guided_noise(noise, batch, p.cfg_scale), t, latents, **extra).prev_sample
                latents = self.after_step(latents, scheduler, i, timesteps)
                self.ctx.report_step((i + order) // order)
        return latents

    def _sdxl_time_ids(self, rows: int) -> torch.Tensor | None:
        """SDXL's size conditioning (original size, crop offset, target size) for `rows` UNet inputs."""
        if not self.model.is_sdxl:
            return None
        p = self.params
        return torch.tensor([[p.height, p.width, 0, 0, p.height, p.width]], device=self.model.device,
                            dtype=self.model.dtype).repeat(rows, 1)

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        """Latents → RGB images."""
        vae = self.model.vae
        with torch.inference_mode():
            pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        pixels = (pixels / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
        return [Image.fromarray(img) for img in (pixels * 255).round().astype(np.uint8)]

    def postprocess(self, result: GenerationResult, image: Image.Image, seed: int) -> None:
        """Write the infotext, save the image, and add it to the result."""
        p = replace(self.params, seed=seed)
        m = self.model
        extra = {"Model hash": m.short_hash, "Model": m.checkpoint.model_name}
        if self.settings.encoder_options.emphasis != EncoderOptions().emphasis:
            extra["Emphasis"] = self.settings.encoder_options.emphasis
        infotext = create_infotext(p, {**extra, **self.extra_infotext}, self.job)
        result.images.append(image)
        result.infotexts.append(infotext)
        result.seeds.append(seed)
        result.prompts.append(p.prompt)
        result.negative_prompts.append(p.negative_prompt)
        if self.settings.save_dir is not None:
            folder = images.dated_folder(self.settings.save_dir)
            result.paths.append(images.save_image(image, folder, seed, p.prompt, infotext,
                                                  self.settings.filename_words))

