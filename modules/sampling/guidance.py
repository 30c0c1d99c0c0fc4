"""The model every sampler calls: classifier-free guidance over one UNet batch per call.

Each call takes the batch's latents x (k-diffusion scale) at noise level σ and returns the guided x0: every
image's AND parts and its negative prompt go through the UNet together, each part's x0 is weighed against the
negative's (A1111's combine_denoised), the inpainting keep is blended in, and A1111's callbacks see each stage.
Calls are counted: the count picks the prompt-editing step (A1111 schedules prompts over model calls) and
the moment a refiner takes over."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from modules import script_callbacks
from modules.errors import UserError
from modules.sampling.denoiser import Denoiser
from modules.step_conditioning import StepBatch, StepConditioning

NAN_ADVICE = ("This can happen when the precision is too low for the picture: try --no-half, or another VAE or "
              "checkpoint.")


class NansProduced(UserError):
    """The UNet returned nothing but NaNs (A1111: "A tensor with all NaNs was produced")."""


class SamplingStopped(Exception):
    """Raised inside a model call when the job is interrupted or skipped; the sampler stops there."""


class UNetCall(Protocol):
    """A model's UNet on a guided batch: `x_in` already scaled by c_in, `t` the timesteps, `rows` the rows of
    `batch` it carries (all, or without the negatives when NGMS skips them); returns the raw output (ε or v)."""

    def __call__(self, x_in: torch.Tensor, t: torch.Tensor, batch: StepBatch, rows: slice) -> torch.Tensor: ...


@dataclass
class ModelPass:
    """What one checkpoint brings to sampling: its UNet call, its noise levels, and the batch's prompts as its
    text encoders read them."""

    unet: UNetCall
    denoiser: Denoiser
    conditioning: StepConditioning


@dataclass
class Keep:
    """Inpainting: the init latents and where they are kept (1 = keep, A1111's `mask`; 0 = repaint). A1111 blends
    them into each step's x0 for k-diffusion samplers, and into each step's input for its timestep samplers
    (`before_denoising`; there the init latents stand unscaled in the DDPM-scale input, so in k-diffusion scale
    they count √(σ²+1) times)."""

    init: torch.Tensor
    mask: torch.Tensor
    before_denoising: bool = False

    def blend(self, latents: torch.Tensor) -> torch.Tensor:
        return self.init * self.mask + latents * (1 - self.mask)

    def blend_input(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        scale = ((sigma ** 2 + 1) ** 0.5).reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return self.init * scale * self.mask + x * (1 - self.mask)


@dataclass
class RefinerSwitch:
    """Sampling switches to `model` at the first call whose share of the expected calls reaches `at`."""

    model: ModelPass
    at: float
    switched: Callable[[], None] | None = None  # told once the switch happened (for the infotext)


class CFGDenoiser:
    """`(x, sigma) -> guided x0` for a batch of images, as samplers call it (see docs/SAMPLING.md)."""

    def __init__(self, model: ModelPass, cfg_scale: float, expected_calls: int, *, negative_min_sigma: float = 0.0,
                 negative_min_on_timesteps: bool = False, keep: Keep | None = None,
                 refiner: RefinerSwitch | None = None, check_stop: Callable[[], bool] | None = None) -> None:
        self.model = model
        self.cfg_scale = cfg_scale
        self.expected_calls = max(1, expected_calls)
        self.negative_min_sigma = negative_min_sigma
        self.negative_min_on_timesteps = negative_min_on_timesteps  # A1111's timestep samplers compare it with t
        self.keep = keep
        self.refiner = refiner
        self.check_stop = check_stop
        self.calls = 0
        self.sampling_step, self.sampling_steps = 0, 0  # the sampler's step, kept by the caller for callbacks
        self.last_prediction: torch.Tensor | None = None  # each image's first part's x0 at the last call
        self.last_uncond: torch.Tensor | None = None  # each image's negative x0 at the last call (DDIM CFG++)

    @property
    def denoiser(self) -> Denoiser:
        return self.model.denoiser

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **_: object) -> torch.Tensor:
        if self.check_stop is not None and self.check_stop():
            raise SamplingStopped
        self._maybe_switch()
        keep_before = self.keep is not None and self.keep.before_denoising
        given = x
        if keep_before:
            x = self.keep.blend_input(x, sigma)
        batch = self.model.conditioning.at(self.calls)
        images = batch.images
        x_rows = torch.cat([x, x[batch.part_image]])
        sigma_rows = torch.cat([sigma, sigma[batch.part_image]])
        embeds = batch.embeds
        if script_callbacks.has("cfg_denoiser"):
            params = script_callbacks.CFGDenoiserParams(x_rows, None, sigma_rows, self.sampling_step,
                                                        self.sampling_steps, embeds[images:], embeds[:images], self)
            script_callbacks.cfg_denoiser_callback(params)
            x_rows, sigma_rows = params.x, params.sigma
            batch = _with_embeds(batch, torch.cat([params.text_uncond, params.text_cond]))
        level = self.model.denoiser.sigma_to_t(sigma[:1]) if self.negative_min_on_timesteps else sigma[:1]
        skip_negatives = self.calls % 2 == 1 and 0 < self.negative_min_sigma and float(level) < self.negative_min_sigma
        rows = slice(images if skip_negatives else 0, None)
        out = self._denoised(x_rows[rows], sigma_rows[rows], batch, rows)
        if skip_negatives:  # each image's first part stands in for its negative
            out = torch.cat([out[_first_parts(batch) - images], out])
        if script_callbacks.has("cfg_denoised"):
            params = script_callbacks.CFGDenoisedParams(out, self.sampling_step, self.sampling_steps, self.model.unet)
            script_callbacks.cfg_denoised_callback(params)
            out = params.x
        uncond, conds = out[:images], out[images:]
        self.last_uncond = uncond
        self.last_prediction = conds[_first_parts(batch) - images]
        denoised = combine(uncond, conds, batch, 1.0 if skip_negatives else self.cfg_scale)
        if keep_before:  # the sampler reads ε against its own x, as A1111's timestep samplers do
            denoised = denoised + (given - x)
        elif self.keep is not None:
            denoised = self.keep.blend(denoised)
        if script_callbacks.has("cfg_after_cfg"):
            params = script_callbacks.AfterCFGCallbackParams(denoised, self.sampling_step, self.sampling_steps)
            script_callbacks.cfg_after_cfg_callback(params)
            denoised = params.x
        self.calls += 1
        return denoised

    def _denoised(self, x: torch.Tensor, sigma: torch.Tensor, batch: StepBatch, rows: slice) -> torch.Tensor:
        """Each row's x0 from one UNet call; NansProduced when the UNet returned only NaNs."""
        denoiser = self.model.denoiser
        x_in, t = denoiser.model_input(x, sigma)
        output = self.model.unet(x_in, t, batch, rows)
        if torch.isnan(output).all():
            raise NansProduced(f"A tensor with all NaNs was produced in the UNet. {NAN_ADVICE}")
        return denoiser.denoised(output.to(x.dtype), x, sigma)

    def _maybe_switch(self) -> None:
        refiner = self.refiner
        if refiner is None or self.calls / self.expected_calls < refiner.at:
            return
        self.model, self.refiner = refiner.model, None
        if refiner.switched is not None:
            refiner.switched()


def combine(uncond: torch.Tensor, conds: torch.Tensor, batch: StepBatch, cfg_scale: float) -> torch.Tensor:
    """A1111's guidance: each image's negative x0 plus Σ weight · scale · (part x0 − negative x0) over its parts."""
    delta = conds - uncond[batch.part_image]
    weights = (batch.part_weight.to(delta.dtype) * cfg_scale).reshape(-1, *([1] * (delta.ndim - 1)))
    return uncond + torch.zeros_like(uncond).index_add_(0, batch.part_image, delta * weights)


def _first_parts(batch: StepBatch) -> torch.Tensor:
    """The row of each image's first AND part in the UNet batch."""
    images = torch.arange(batch.images, device=batch.part_image.device)
    return torch.searchsorted(batch.part_image, images) + batch.images


def _with_embeds(batch: StepBatch, embeds: torch.Tensor) -> StepBatch:
    return StepBatch(embeds, batch.pooled, batch.part_image, batch.part_weight)
