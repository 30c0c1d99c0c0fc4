"""The model every sampler calls: classifier-free guidance over the UNet rows of a batch.

Each call takes the batch's latents x (k-diffusion scale) at noise level σ and returns the guided x0: every
image's AND parts and its negative prompt go through the UNet (in one batch when they are as long), each part's
x0 is weighed against the negative's (A1111's combine_denoised), the inpainting keep is blended in, and A1111's
callbacks see each stage. Calls are counted: the count picks the prompt-editing step (A1111 schedules prompts
over model calls), the moment a refiner takes over and the calls Skip Early CFG leaves without the negative."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import torch

from modules import script_callbacks
from modules.errors import UserError
from modules.prompting.step_conditioning import StepBatch, StepConditioning
from modules.sampling.denoiser import Denoiser

NAN_ADVICE = (
    "This can happen when the precision is too low for the picture: try --no-half, or another VAE or checkpoint."
)


class NansProduced(UserError):
    """The UNet returned nothing but NaNs (A1111: "A tensor with all NaNs was produced")."""


class SamplingStopped(Exception):
    """Raised inside a model call when the job is interrupted or skipped; the sampler stops there."""


class UNetCall(Protocol):
    """A model's UNet on rows of a guided batch: `x_in` already scaled by c_in, `t` the timesteps, `embeds` and
    `pooled` (SDXL) the rows' text conditioning, `row_images` the image each row belongs to (for an inpainting
    model's extra channels); returns the raw output (ε or v)."""

    def __call__(
        self,
        x_in: torch.Tensor,
        t: torch.Tensor,
        embeds: torch.Tensor,
        pooled: torch.Tensor | None,
        row_images: torch.Tensor,
    ) -> torch.Tensor: ...


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
        scale = ((sigma**2 + 1) ** 0.5).reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return self.init * scale * self.mask + x * (1 - self.mask)


@dataclass
class RefinerSwitch:
    """Sampling switches to `model` at the first call whose share of the expected calls reaches `at`."""

    model: ModelPass
    at: float
    switched: Callable[[], None] | None = None  # told once the switch happened (for the infotext)


@dataclass(frozen=True)
class NegativeSkipping:
    """A1111's settings that leave the negative prompt out of some calls (each image's first part stands in for
    it): `early` (skip_early_cond) the first share of the expected calls; `min_sigma` (s_min_uncond, NGMS) every
    second call whose σ (for timestep samplers: t, `on_timesteps`) is below it, or every such call with
    `every_call` (s_min_uncond_all)."""

    early: float = 0.0
    min_sigma: float = 0.0
    every_call: bool = False
    on_timesteps: bool = False


class CFGDenoiser:
    """`(x, sigma) -> guided x0` for a batch of images, as samplers call it (see docs/SAMPLING.md).

    As in A1111, the UNet rows are every image's AND parts, then every image's negative prompt; when the two differ
    in length and `padding` (step_conditioning.PAD_EMPTY or PAD_LAST) is off, they go through the UNet in separate
    calls. `infotext` collects the keys A1111 writes for what happened (NGMS, Skip Early CFG, Pad conds)."""

    def __init__(
        self,
        model: ModelPass,
        cfg_scale: float,
        expected_calls: int,
        *,
        skipping: NegativeSkipping = NegativeSkipping(),
        padding: str = "",
        keep: Keep | None = None,
        refiner: RefinerSwitch | None = None,
        check_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.model = model
        self.cfg_scale = cfg_scale
        self.expected_calls = max(1, expected_calls)
        self.skipping = skipping
        self.padding = padding
        self.keep = keep
        self.refiner = refiner
        self.check_stop = check_stop
        self.calls = 0
        self.sampling_step, self.sampling_steps = 0, 0  # the sampler's step, kept by the caller for callbacks
        self.last_prediction: torch.Tensor | None = None  # each image's first part's x0 at the last call
        self.last_uncond: torch.Tensor | None = None  # each image's negative x0 at the last call (DDIM CFG++)
        self.infotext: dict[str, object] = {}

    @property
    def denoiser(self) -> Denoiser:
        return self.model.denoiser

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **_: object) -> torch.Tensor:
        if self.check_stop is not None and self.check_stop():
            raise SamplingStopped
        self._maybe_switch()
        keep = self.keep
        keep_before = keep is not None and keep.before_denoising
        given = x
        if keep is not None and keep_before:
            x = keep.blend_input(x, sigma)
        batch = self.model.conditioning.at(self.calls)
        x_rows = torch.cat([x[batch.part_image], x])
        sigma_rows = torch.cat([sigma[batch.part_image], sigma])
        if script_callbacks.has("cfg_denoiser"):
            params = script_callbacks.CFGDenoiserParams(
                x_rows, None, sigma_rows, self.sampling_step, self.sampling_steps, batch.cond, batch.uncond, self
            )
            script_callbacks.cfg_denoiser_callback(params)
            x_rows, sigma_rows = params.x, params.sigma
            batch = replace(batch, cond=params.text_cond, uncond=params.text_uncond)
        skip_negatives = self._skips_negatives(sigma)
        batch, padded = batch.matched(self.padding, self.model.conditioning.empty_chunk)
        if padded:
            self.infotext[padded] = True
        out = self._denoised(x_rows, sigma_rows, batch, skip_negatives)
        first_parts = _first_parts(batch)
        if skip_negatives:  # each image's first part stands in for its negative
            out = torch.cat([out, out[first_parts]])
        if script_callbacks.has("cfg_denoised"):
            denoised_params = script_callbacks.CFGDenoisedParams(
                out, self.sampling_step, self.sampling_steps, self.model.unet
            )
            script_callbacks.cfg_denoised_callback(denoised_params)
            out = denoised_params.x
        conds, uncond = out[: batch.parts], out[batch.parts :]
        self.last_uncond = uncond
        self.last_prediction = conds[first_parts]
        denoised = combine(uncond, conds, batch, 1.0 if skip_negatives else self.cfg_scale)
        if keep_before:  # the sampler reads ε against its own x, as A1111's timestep samplers do
            denoised = denoised + (given - x)
        elif keep is not None:
            denoised = keep.blend(denoised)
        if script_callbacks.has("cfg_after_cfg"):
            after_params = script_callbacks.AfterCFGCallbackParams(denoised, self.sampling_step, self.sampling_steps)
            script_callbacks.cfg_after_cfg_callback(after_params)
            denoised = after_params.x
        self.calls += 1
        return denoised

    def _skips_negatives(self, sigma: torch.Tensor) -> bool:
        """Whether this call leaves the negatives out (A1111's order: Skip Early CFG first, then NGMS)."""
        s = self.skipping
        if s.early and self.calls / self.expected_calls <= s.early:
            self.infotext["Skip Early CFG"] = s.early
            return True
        level = self.model.denoiser.sigma_to_t(sigma[:1]) if s.on_timesteps else sigma[:1]
        if (self.calls % 2 == 1 or s.every_call) and 0 < s.min_sigma and float(level) < s.min_sigma:
            self.infotext["NGMS"] = s.min_sigma
            if s.every_call:
                self.infotext["NGMS all steps"] = True
            return True
        return False

    def _denoised(self, x: torch.Tensor, sigma: torch.Tensor, batch: StepBatch, skip_negatives: bool) -> torch.Tensor:
        """Each row's x0: conds and negatives in one UNet call when they are as long, else (as A1111 does) the
        conds in calls of twice the batch's images and the negatives in one; without the negatives when they are
        skipped. NansProduced when the UNet returned only NaNs."""
        row_images = torch.cat([batch.part_image, torch.arange(batch.images, device=batch.part_image.device)])
        if skip_negatives:
            groups = [(0, batch.parts, batch.cond, batch.cond_pooled)]
        elif batch.cond.shape[1] == batch.uncond.shape[1]:
            groups = [
                (
                    0,
                    len(row_images),
                    torch.cat([batch.cond, batch.uncond]),
                    _cat_pooled(batch.cond_pooled, batch.uncond_pooled),
                )
            ]
        else:
            size = 2 * batch.images
            groups = [
                (a, min(a + size, batch.parts), batch.cond[a : a + size], _rows(batch.cond_pooled, a, a + size))
                for a in range(0, batch.parts, size)
            ]
            groups.append((batch.parts, len(row_images), batch.uncond, batch.uncond_pooled))
        return torch.cat(
            [self._unet_rows(x[a:b], sigma[a:b], embeds, pooled, row_images[a:b]) for a, b, embeds, pooled in groups]
        )

    def _unet_rows(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        embeds: torch.Tensor,
        pooled: torch.Tensor | None,
        row_images: torch.Tensor,
    ) -> torch.Tensor:
        denoiser = self.model.denoiser
        x_in, t = denoiser.model_input(x, sigma)
        output = self.model.unet(x_in, t, embeds, pooled, row_images)
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
    """The row of each image's first AND part in the UNet batch (the parts come first)."""
    return torch.searchsorted(batch.part_image, torch.arange(batch.images, device=batch.part_image.device))


def _cat_pooled(cond: torch.Tensor | None, uncond: torch.Tensor | None) -> torch.Tensor | None:
    return None if cond is None or uncond is None else torch.cat([cond, uncond])


def _rows(pooled: torch.Tensor | None, a: int, b: int) -> torch.Tensor | None:
    return None if pooled is None else pooled[a:b]
