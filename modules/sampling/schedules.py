"""A1111's schedule types: the descending noise levels (sigmas) a k-sampler walks for n steps, each ending in 0
(KL Optimal ends at σ_min, as in A1111). Computed on the CPU in float32 with the same arithmetic as A1111 1.10
(sd_schedulers.py and k-diffusion's get_sigmas_*), so the same settings give the same values bit for bit.
"Automatic" is not a schedule here: the registry resolves it to the sampler's default."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from modules.sampling.denoiser import Denoiser

# Align Your Steps' published 10-step schedules (11 noise levels), for SD1.5-like and SDXL-like models.
AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


def _then_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _from_floats(values) -> torch.Tensor:
    """Python or numpy float64 values, then 0, as one float32 tensor."""
    return torch.tensor([*(float(v) for v in values), 0.0], dtype=torch.float32)


def uniform(n: int, sigma_min: float, sigma_max: float, *, denoiser: Denoiser) -> torch.Tensor:
    """The model's own schedule: timesteps evenly from the last training step to the first."""
    return denoiser.uniform_sigmas(n)


def karras(n: int, sigma_min: float, sigma_max: float, *, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022), eq. 5: evenly spaced in σ^(1/ρ)."""
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    ramp = torch.linspace(0, 1, n)
    return _then_zero((top + ramp * (bottom - top)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in log σ."""
    return _then_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, *, rho: float = 1.0) -> torch.Tensor:
    """log σ placed along a power ρ of a ramp from 1 to 0 (ρ = 1 is Exponential)."""
    log_min, log_max = math.log(sigma_min), math.log(sigma_max)
    ramp = torch.linspace(1, 0, n) ** rho
    return _then_zero(torch.exp(ramp * (log_max - log_min) + log_min))


def _timesteps_between(denoiser: Denoiser, sigma_min: float, sigma_max: float, count: int) -> torch.Tensor:
    """`count` timesteps evenly from σ_max's (continuous) timestep to σ_min's, both ends included."""
    start = denoiser.sigma_to_t(torch.tensor(sigma_max, dtype=torch.float32))
    end = denoiser.sigma_to_t(torch.tensor(sigma_min, dtype=torch.float32))
    return torch.linspace(float(start), float(end), count)


def sgm_uniform(n: int, sigma_min: float, sigma_max: float, *, denoiser: Denoiser) -> torch.Tensor:
    """SGM's uniform discretisation: n + 1 evenly spaced timesteps from σ_max to σ_min, the last one dropped."""
    return _then_zero(denoiser.t_to_sigma(_timesteps_between(denoiser, sigma_min, sigma_max, n + 1)[:-1]))


def normal(n: int, sigma_min: float, sigma_max: float, *, denoiser: Denoiser) -> torch.Tensor:
    """n evenly spaced timesteps from σ_max's to σ_min's, both included."""
    return _then_zero(denoiser.t_to_sigma(_timesteps_between(denoiser, sigma_min, sigma_max, n)))


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in arctan σ; n + 1 values ending at σ_min, not 0 (as A1111 has it)."""
    top = torch.arctan(torch.tensor(sigma_max, dtype=torch.float32))
    bottom = torch.arctan(torch.tensor(sigma_min, dtype=torch.float32))
    fraction = torch.arange(n + 1) / n
    return torch.tan(fraction * bottom + (1.0 - fraction) * top)


def align_your_steps(n: int, sigma_min: float, sigma_max: float, *, sdxl: bool = False) -> torch.Tensor:
    """NVIDIA's Align Your Steps table (SDXL's or SD1.5's) resampled to n values by linear interpolation of
    log σ (n = 11 gives the table itself); σ_min and σ_max are not used."""
    table = AYS_SDXL if sdxl else AYS_SD15
    ascending_logs = np.log(np.array(table[::-1]))
    resampled = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(table)), ascending_logs)
    return _from_floats(np.exp(resampled)[::-1])


def simple(n: int, sigma_min: float, sigma_max: float, *, denoiser: Denoiser) -> torch.Tensor:
    """Every (1000 / n)-th training sigma, from the largest down."""
    count = len(denoiser.sigmas)
    stride = count / n
    return _from_floats(float(denoiser.sigmas[count - 1 - int(i * stride)]) for i in range(n))


def ddim(n: int, sigma_min: float, sigma_max: float, *, denoiser: Denoiser) -> torch.Tensor:
    """The training sigmas at timesteps 1, 1 + k, 1 + 2k, … (k = 1000 // n), from the largest down. Like A1111's,
    this gives more than n steps when 1000 is not a multiple of n (n = 7: 8 steps)."""
    stride = max(len(denoiser.sigmas) // n, 1)
    picked = [float(denoiser.sigmas[t]) for t in range(1, len(denoiser.sigmas), stride)]
    return _from_floats(reversed(picked))


def beta(
    n: int, sigma_min: float, sigma_max: float, *, beta_alpha: float = 0.6, beta_beta: float = 0.6
) -> torch.Tensor:
    """ "Beta Sampling is All You Need" (Lee et al. 2024): σ from σ_max to σ_min along the quantiles of a
    Beta(α, β) distribution at evenly spaced levels (A1111's settings beta_dist_alpha, beta_dist_beta)."""
    quantiles = stats.beta.ppf(1 - np.linspace(0, 1, n), beta_alpha, beta_beta)
    return _from_floats(sigma_min + quantiles * (sigma_max - sigma_min))


@dataclass(frozen=True)
class Schedule:
    """A schedule type: A1111's name (infotext value, API `scheduler`), its label, and what it reads."""

    name: str
    label: str
    function: Callable[..., torch.Tensor]
    default_rho: float | None = None  # schedules that take ρ (A1111's setting `rho`, 0 = this default)
    needs_denoiser: bool = False
    options: tuple[str, ...] = ()  # other keyword arguments the function reads
    aliases: tuple[str, ...] = ()


SCHEDULES: tuple[Schedule, ...] = (
    Schedule("uniform", "Uniform", uniform, needs_denoiser=True),
    Schedule("karras", "Karras", karras, default_rho=7.0),
    Schedule("exponential", "Exponential", exponential),
    Schedule("polyexponential", "Polyexponential", polyexponential, default_rho=1.0),
    Schedule("sgm_uniform", "SGM Uniform", sgm_uniform, needs_denoiser=True, aliases=("SGMUniform",)),
    Schedule("kl_optimal", "KL Optimal", kl_optimal),
    Schedule("align_your_steps", "Align Your Steps", align_your_steps, options=("sdxl",)),
    Schedule("simple", "Simple", simple, needs_denoiser=True),
    Schedule("normal", "Normal", normal, needs_denoiser=True),
    Schedule("ddim", "DDIM", ddim, needs_denoiser=True),
    Schedule("beta", "Beta", beta, options=("beta_alpha", "beta_beta")),  # A1111 flags it, never reads it
)


def find_schedule(name: str) -> Schedule | None:
    """The schedule with this name, label or alias (exact spelling), or None."""
    return next((s for s in SCHEDULES if name == s.name or name == s.label or name in s.aliases), None)


def compute_sigmas(
    schedule: Schedule | str,
    n: int,
    sigma_min: float,
    sigma_max: float,
    denoiser: Denoiser | None = None,
    rho: float | None = None,
    *,
    sdxl: bool = False,
    beta_alpha: float = 0.6,
    beta_beta: float = 0.6,
) -> torch.Tensor:
    """The float32 CPU sigmas of `schedule` for `n` steps between `sigma_min` and `sigma_max` (the model's
    own range, or A1111's overrides), as A1111 computes them. `rho` None or 0 means the schedule's default;
    `sdxl` picks Align Your Steps' table; `beta_alpha`/`beta_beta` shape the Beta schedule. A1111's
    discard-penultimate-sigma and the old Karras range are the caller's business."""
    entry = find_schedule(schedule) if isinstance(schedule, str) else schedule
    if entry is None:
        raise ValueError(f"Unknown schedule type {schedule!r}")
    kwargs: dict = {}
    if entry.default_rho is not None:
        kwargs["rho"] = rho or entry.default_rho
    if entry.needs_denoiser:
        if denoiser is None:
            raise ValueError(f"The {entry.label} schedule needs the model's denoiser")
        kwargs["denoiser"] = denoiser
    given = {"sdxl": sdxl, "beta_alpha": beta_alpha, "beta_beta": beta_beta}
    kwargs.update({option: given[option] for option in entry.options})
    return entry.function(n, float(sigma_min), float(sigma_max), **kwargs)
