"""A1111 1.10's own k-diffusion-style samplers: Restart (sd_samplers_extra.py) and LCM (sd_samplers_lcm.py), plus
the noise levels A1111's LCM sampler runs its model with (`LCMDenoiser`). Both follow docs/SAMPLING.md's
conventions: `model(x, sigma) -> x0` in k-diffusion scale, descending `sigmas` ending in 0, every random draw
from `noise_sampler(sigma, sigma_next)`, and `callback({"x", "i", "sigma", "sigma_hat", "denoised"})` once per
step with `x` the latent at the step's start, `sigma` (= `sigma_hat`) its noise level and `denoised` the model's
x0 there."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from modules.sampling.denoiser import EPSILON, Denoiser
from modules.sampling.schedules import karras

Model = Callable[..., torch.Tensor]
NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RestartList = dict[float, tuple[int, int, float]]  # {σ to restart from: (steps, times, σ to go back up to)}


def restart_plan(
    sigmas: torch.Tensor, restart_list: RestartList | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (σ from, σ to) pairs Restart walks for `sigmas`, restarts included: `len(plan)` is its step count.
    Without an explicit `restart_list`, A1111's rule by step count applies: no restarts below 20 steps; from
    20, one restart of 9 steps, from 36 two of steps // 4, each from the σ nearest 0.1 back up to the σ nearest
    2; and then the main pass becomes a Karras schedule of the steps left between the given σ_max and the last
    σ above 0 (so the plan still has `steps` pairs)."""
    steps = len(sigmas) - 1
    if restart_list is None:
        restart_list = {}
        if steps >= 20:
            restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
            sigmas = karras(steps - restart_steps * restart_times, float(sigmas[-2]), float(sigmas[0])).to(
                sigmas.device
            )
            restart_list = {0.1: (restart_steps + 1, restart_times, 2.0)}
    restarts = {_nearest(sigmas, key): value for key, value in restart_list.items()}
    plan = []
    for i in range(len(sigmas) - 1):
        plan.append((sigmas[i], sigmas[i + 1]))
        if i + 1 not in restarts:
            continue
        restart_steps, restart_times, restart_max = restarts[i + 1]
        low, high = i + 1, _nearest(sigmas, restart_max)
        if high < low:  # the restart runs its own Karras schedule from σ[high] down to σ[low]
            levels = karras(restart_steps, float(sigmas[low]), float(sigmas[high]))[:-1]
            plan.extend(list(itertools.pairwise(levels)) * restart_times)
    return plan


def _nearest(sigmas: torch.Tensor, value: float) -> int:
    return int(torch.argmin((sigmas - value).abs()))


@torch.no_grad()
def sample_restart(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable | None = None,
    *,
    s_noise: float = 1.0,
    restart_list: RestartList | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """Restart sampling (Xu et al. 2023) as A1111 1.10 runs it: Heun steps (Euler onto σ = 0) along
    `restart_plan`; where the plan goes back up, from σ_low to σ_high, fresh noise of variance
    s_noise²·(σ_high² − σ_low²) is added first. A1111's default schedule for it is Karras."""
    extra_args = extra_args or {}
    ones = x.new_ones(x.shape[0])
    last = None
    for i, (sigma, sigma_next) in enumerate(restart_plan(sigmas, restart_list)):
        if last is not None and last < sigma:
            if noise_sampler is None:
                raise ValueError("Restart needs a noise_sampler for its restarts")
            x = x + noise_sampler(last, sigma) * s_noise * (sigma**2 - last**2) ** 0.5
        denoised = model(x, sigma * ones, **extra_args)
        slope = (x - denoised) / sigma
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        step = sigma_next - sigma
        if sigma_next == 0:
            x = x + slope * step
        else:
            x_next = x + slope * step
            slope_next = (x_next - model(x_next, sigma_next * ones, **extra_args)) / sigma_next
            x = x + (slope + slope_next) / 2 * step
        last = sigma_next
    return x


@torch.no_grad()
def sample_lcm(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable | None = None,
    *,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """Latent consistency sampling (Luo et al. 2023): each step jumps to the model's x0 and, unless the next σ is
    0, noises it back to the next σ with a fresh draw. A1111 runs it with `LCMDenoiser`'s noise levels."""
    extra_args = extra_args or {}
    ones = x.new_ones(x.shape[0])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * ones, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = denoised
        if sigmas[i + 1] > 0:
            if noise_sampler is None:
                raise ValueError("LCM needs a noise_sampler")
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


class LCMDenoiser(Denoiser):
    """The noise levels and output scaling A1111 gives the LCM sampler (LCMCompVisDenoiser): only every 20th
    training step, 19, 39, …, 999 (LCM's 50 original steps); σ → t always snaps to the nearest of them; and the
    ε model's x0 goes through LCM's boundary scaling, x0' = c_out·x0 + c_skip·x with c_skip = ¼ / ((10t)² + ¼),
    c_out = 10t / √((10t)² + ¼). Always ε-prediction, as in A1111. Use it in place of the model's `Denoiser`:
    its `sigmas`, `sigma_min`/`sigma_max`, `uniform_sigmas(n)` (t from 999 to 19) and the model calls."""

    def __init__(self, alphas_cumprod: torch.Tensor, original_steps: int = 50) -> None:
        self.skip = len(alphas_cumprod) // original_steps
        super().__init__(alphas_cumprod[self.skip - 1 :: self.skip][:original_steps], EPSILON)

    def sigma_to_t(self, sigma: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
        nearest = (sigma.float().log() - self.log_sigmas.to(sigma.device)[:, None]).abs().argmin(dim=0)
        return (nearest * self.skip + (self.skip - 1)).view(sigma.shape).float()

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return super().t_to_sigma(((t.float() - (self.skip - 1)) / self.skip).clamp(0, len(self.sigmas) - 1))

    def uniform_sigmas(self, n: int) -> torch.Tensor:
        top = self.sigma_to_t(torch.tensor(self.sigma_max))
        bottom = self.sigma_to_t(torch.tensor(self.sigma_min))
        t = torch.linspace(float(top), float(bottom), n)
        return torch.cat([self.t_to_sigma(t), t.new_zeros(1)])

    def denoised(self, model_output: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        plain = super().denoised(model_output, x, sigma)
        scaled_t = (self.sigma_to_t(sigma) * 10.0).reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        c_skip = 0.25 / (scaled_t**2 + 0.25)
        c_out = scaled_t / (scaled_t**2 + 0.25) ** 0.5
        return c_out * plain + c_skip * x
