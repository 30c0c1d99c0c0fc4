"""A1111 1.10's own timestep samplers: DDIM, DDIM CFG++, PLMS and UniPC, with A1111's timesteps and img2img start.

They walk integer training timesteps (`a1111_timesteps`) on the variance-preserving latent
`x_t = √ᾱ·x0 + √(1−ᾱ)·ε`, as A1111's loops do: `x` enters in that scale (txt2img: the noise itself; img2img:
`noised_init`) and the result is A1111's last `x_t`, the latent A1111 decodes. The model is the same
`model(x, sigma) -> x0` every sampler calls (docs/SAMPLING.md): at a model call for training timestep τ the
sampler uses σ = the model's noise level at τ (log σ interpolated, like `Denoiser.t_to_sigma`, so the
UNet sees τ itself), passes `x_k = x_t·√(σ²+1)` and reads `ε = (x_k − x0) / σ`.

`callback` gets `{"x", "i", "sigma", "sigma_hat", "denoised"}` once per step, before the step's update, as
k-diffusion's samplers call it: `i` counts the steps from 0, `x` is the latent at the step's start in
k-diffusion scale, `sigma` (= `sigma_hat`) its noise level and `denoised` the model's x0 there. DDIM and
PLMS make `len(timesteps) − 1` steps (A1111 never steps from its smallest timestep), UniPC `len(timesteps)`.

DDIM CFG++ needs two things of its model (guidance.CFGDenoiser has both): a float attribute `cfg_scale`, the
guidance scale read at every call, which the sampler multiplies by 1/12.5 for the run (A1111's
`cond_scale_miltiplier`) and restores afterwards; and `last_uncond`, each image's x0 from its negative prompt
at the latest call (where NGMS skipped the negatives, the stand-in A1111 uses: the first positive part)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import torch

from modules.errors import UserError
from modules.sampling.denoiser import Denoiser

TRAIN_STEPS = 1000  # A1111's timestep arithmetic assumes 1000 training steps
CFGPP_SCALE = 1 / 12.5  # DDIM CFG++ maps CFG 0…12.5 to a guidance of 0…1
UNIPC_VARIANTS = ("bh1", "bh2", "vary_coeff")
UNIPC_SKIP_TYPES = ("time_uniform", "time_quadratic", "logSNR")

Model = Callable[..., torch.Tensor]


class GuidedModel(Protocol):
    """What DDIM CFG++ needs of its model (see the module docstring)."""

    cfg_scale: float
    last_uncond: torch.Tensor

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs: Any) -> torch.Tensor: ...


NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def a1111_timesteps(steps: int, *, discard_next_to_last_sigma: bool = False) -> torch.Tensor:
    """A1111's timesteps for `steps`: `range(0, 1000, 1000 // steps) + 1`, clipped to 999. When 1000 is not a
    multiple of `steps` the list is longer than `steps` (3 → 1, 334, 667, 999; 30 → 31 values). With
    `always_discard_next_to_last_sigma` A1111 builds it for steps + 1."""
    steps += 1 if discard_next_to_last_sigma else 0
    if not 1 <= steps <= TRAIN_STEPS:
        raise ValueError(f"Timestep samplers take 1 to {TRAIN_STEPS} steps, not {steps}")
    return (torch.arange(0, TRAIN_STEPS, TRAIN_STEPS // steps) + 1).clamp(0, TRAIN_STEPS - 1)


def img2img_steps(steps: int, denoising_strength: float, *, fix_steps: bool = False) -> tuple[int, int]:
    """A1111's setup_img2img_steps: (the steps the full schedule is built for, t_enc: how many of them the
    denoising strength keeps). `fix_steps` is the setting img2img_fix_steps ("do exactly the amount of steps
    the slider specifies")."""
    strength = min(denoising_strength, 0.999)
    if fix_steps:
        return (int(steps / strength) if denoising_strength > 0 else 0), steps - 1
    return steps, int(strength * steps)


def img2img_timesteps(
    steps: int, denoising_strength: float, *, fix_steps: bool = False, discard_next_to_last_sigma: bool = False
) -> tuple[torch.Tensor, int]:
    """A1111's img2img for timestep samplers: (the timesteps the sampler runs: the first t_enc of the full
    list, the training timestep the init latent is noised to: the next one). The first model call is at the
    last timestep kept, one below the noise level, as in A1111."""
    total, t_enc = img2img_steps(steps, denoising_strength, fix_steps=fix_steps)
    timesteps = a1111_timesteps(total, discard_next_to_last_sigma=discard_next_to_last_sigma)
    return timesteps[:t_enc], int(timesteps[t_enc])


def noised_init(
    init_latent: torch.Tensor,
    noise: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    timestep: int,
    extra_noise: float = 0.0,
) -> torch.Tensor:
    """The img2img start: `init·√ᾱ + noise·√(1−ᾱ)` at `timestep`, plus `noise·extra_noise·√ᾱ` (the setting
    img2img_extra_noise, added with the same noise)."""
    alpha = alphas_cumprod[timestep].to(torch.float32)
    start = init_latent * alpha.sqrt() + noise * (1 - alpha).sqrt()
    if extra_noise > 0:
        start = start + noise * extra_noise * alpha.sqrt()
    return start


def _eps(
    model: Model, x: torch.Tensor, sigma: torch.Tensor, extra_args: dict
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x in k-diffusion scale, the model's x0, ε) for the VP latent `x` at noise level `sigma` (a scalar)."""
    x_k = x * (sigma**2 + 1) ** 0.5
    denoised = model(x_k, sigma * x.new_ones(x.shape[0]), **extra_args)
    return x_k, denoised, (x_k - denoised) / sigma


def _ddim_transfer(
    x: torch.Tensor,
    eps: torch.Tensor,
    a_t: float,
    a_prev: float,
    *,
    eps_direction: torch.Tensor | None = None,
    noise_scale: float = 0.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDIM's move from ᾱ_t to ᾱ_prev (Song et al. 2021, eq. 12): the x0 that `eps` implies, rescaled, plus
    the direction (`eps_direction`, default `eps`) and `noise_scale`·noise."""
    pred_x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
    direction = eps if eps_direction is None else eps_direction
    x_prev = a_prev**0.5 * pred_x0 + (1 - a_prev - noise_scale**2) ** 0.5 * direction
    if noise is not None:
        x_prev = x_prev + noise_scale * noise
    return x_prev


def _ddim_loop(
    model: Model,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    extra_args: dict | None,
    callback: Callable | None,
    alphas_cumprod: torch.Tensor,
    eta: float,
    noise_sampler: NoiseSampler | None,
    uncond_direction: bool,
) -> torch.Tensor:
    if eta > 0 and noise_sampler is None:
        raise ValueError("DDIM with eta > 0 needs a noise_sampler")
    extra_args = extra_args or {}
    alphas = alphas_cumprod.to(torch.float64)
    sigmas = Denoiser(alphas_cumprod).sigmas
    steps = timesteps.tolist()
    for i in range(len(steps) - 1):
        index = len(steps) - 1 - i
        t, t_prev = steps[index], steps[index - 1]
        a_t, a_prev = float(alphas[t]), float(alphas[t_prev])
        sigma, sigma_next = sigmas[t], sigmas[t_prev]
        x_k, denoised, eps = _eps(model, x, sigma, extra_args)
        direction = (x_k - cast(GuidedModel, model).last_uncond) / sigma if uncond_direction else None
        if callback is not None:
            callback({"x": x_k, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        noise_scale = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        noise = noise_sampler(sigma, sigma_next) if noise_sampler is not None else None  # drawn even at eta 0
        x = _ddim_transfer(x, eps, a_t, a_prev, eps_direction=direction, noise_scale=noise_scale, noise=noise)
    return x


@torch.no_grad()
def sample_ddim(
    model: Model,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable | None = None,
    *,
    alphas_cumprod: torch.Tensor,
    eta: float = 0.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DDIM over A1111's ascending `timesteps`, from the last down to the first; `eta` (A1111: the API's eta,
    else the setting eta_ddim, 0) scales the fresh noise. `noise_sampler` is drawn once a step, as A1111 draws
    (and multiplies by 0 at eta 0); it may be None only at eta 0."""
    return _ddim_loop(model, x, timesteps, extra_args, callback, alphas_cumprod, eta, noise_sampler, False)


@torch.no_grad()
def sample_ddim_cfgpp(
    model: GuidedModel,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable | None = None,
    *,
    alphas_cumprod: torch.Tensor,
    eta: float = 0.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DDIM CFG++ (Chung et al. 2024, as A1111 1.10 has it): guidance at cfg_scale / 12.5, and the step's
    direction taken from the negative prompt's ε instead of the guided one. See the module docstring for what
    the model must offer."""
    scale = model.cfg_scale
    model.cfg_scale = scale * CFGPP_SCALE
    try:
        return _ddim_loop(model, x, timesteps, extra_args, callback, alphas_cumprod, eta, noise_sampler, True)
    finally:
        model.cfg_scale = scale


# Adams–Bashforth weights on the newest ε first, by how many earlier ε there are (Liu et al. 2022, PLMS).
_ADAMS_BASHFORTH = {1: (3 / 2, -1 / 2), 2: (23 / 12, -16 / 12, 5 / 12), 3: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


@torch.no_grad()
def sample_plms(
    model: Model,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable | None = None,
    *,
    alphas_cumprod: torch.Tensor,
) -> torch.Tensor:
    """PLMS (pseudo linear multistep): the first step is DDIM with ε averaged over both ends (two model
    calls), the later ones DDIM with an Adams–Bashforth combination of the last (up to 4) ε."""
    extra_args = extra_args or {}
    alphas = alphas_cumprod.to(torch.float64)
    sigmas = Denoiser(alphas_cumprod).sigmas
    steps = timesteps.tolist()
    history: list[torch.Tensor] = []
    for i in range(len(steps) - 1):
        index = len(steps) - 1 - i
        t, t_prev = steps[index], steps[index - 1]
        a_t, a_prev = float(alphas[t]), float(alphas[t_prev])
        x_k, denoised, eps = _eps(model, x, sigmas[t], extra_args)
        if callback is not None:
            callback({"x": x_k, "i": i, "sigma": sigmas[t], "sigma_hat": sigmas[t], "denoised": denoised})
        if not history:
            x_next = _ddim_transfer(x, eps, a_t, a_prev)
            combined = (eps + _eps(model, x_next, sigmas[t_prev], extra_args)[2]) / 2
        else:
            weights = _ADAMS_BASHFORTH[len(history)]
            combined = weights[0] * eps
            for weight, earlier in zip(weights[1:], reversed(history)):
                combined = combined + weight * earlier
        x = _ddim_transfer(x, combined, a_t, a_prev)
        history = ([*history, eps])[-3:]
    return x


class _VPSchedule:
    """UniPC's continuous time over the training schedule (DPM-Solver's discrete NoiseScheduleVP): training step
    k sits at t = (k + 1) / N, log α = ½ log ᾱ is linear in t between them and extended linearly past the ends;
    σ_t = √(1 − α²), λ = log α − log σ."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.log_alphas = 0.5 * alphas_cumprod.to(torch.float64).log()
        self.n = len(alphas_cumprod)

    def log_alpha(self, t: float) -> float:
        position = t * self.n - 1
        low = min(max(math.floor(position), 0), self.n - 2)
        below, above = float(self.log_alphas[low]), float(self.log_alphas[low + 1])
        return below + (position - low) * (above - below)

    def alpha(self, t: float) -> float:
        return math.exp(self.log_alpha(t))

    def std(self, t: float) -> float:
        return math.sqrt(1 - math.exp(2 * self.log_alpha(t)))

    def lam(self, t: float) -> float:
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * math.log(1 - math.exp(2 * log_alpha))

    def t_of_lambda(self, lam: float) -> float:
        """The time whose λ is `lam`: log α = −½ log(1 + e^(−2λ)), placed on the (decreasing) log α table."""
        log_alpha = -0.5 * float(
            torch.logaddexp(torch.tensor(0.0, dtype=torch.float64), torch.tensor(-2 * lam, dtype=torch.float64))
        )
        table = self.log_alphas
        # the first step whose log α is at or below the target, kept inside the table for extrapolation
        high = int(torch.searchsorted(-table, torch.tensor(-log_alpha, dtype=torch.float64)))
        high = min(max(high, 1), self.n - 1)
        below, above = float(table[high - 1]), float(table[high])
        return (high + (log_alpha - below) / (above - below)) / self.n

    def times(self, skip_type: str, t_start: float, t_end: float, steps: int) -> list[float]:
        """`steps` + 1 times from t_start to t_end: even in t, in √t (time_quadratic) or in λ (logSNR)."""
        if skip_type == "time_uniform":
            return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).tolist()
        if skip_type == "time_quadratic":
            return (torch.linspace(t_start**0.5, t_end**0.5, steps + 1, dtype=torch.float64) ** 2).tolist()
        if skip_type == "logSNR":
            lambdas = torch.linspace(self.lam(t_start), self.lam(t_end), steps + 1, dtype=torch.float64)
            return [self.t_of_lambda(lam) for lam in lambdas.tolist()]
        raise ValueError(f"Unknown UniPC skip type {skip_type!r} (one of {', '.join(UNIPC_SKIP_TYPES)})")


def _unipc_weights(
    variant: str, hh: float, ratios: Sequence[float], corrector: bool
) -> tuple[list[float], list[float] | None]:
    """UniPC's weights for one step of order p = len(ratios) (log-SNR distances to the earlier points over h,
    then 1 for the new point), as x = base − α_t·Σ weight·difference: (the predictor's, on the p − 1 earlier
    differences; the corrector's, on those and the new point's, or None without the corrector)."""
    order = len(ratios)
    rks = torch.tensor(ratios, dtype=torch.float64)
    h_phi = [math.expm1(hh)]  # h·φ terms: e^h − 1, then each previous one / h − 1/k!
    for k in range(1, order + 1):
        h_phi.append(h_phi[-1] / hh - 1 / math.factorial(k))
    if variant == "vary_coeff":  # C[i, k] = r_i^k / (k+1)!, its inverse's rows weighed by h·φ_(k+1)
        c = torch.stack([rks**k / math.factorial(k + 1) for k in range(order)], dim=1)
        factors = torch.tensor(h_phi[1:order], dtype=torch.float64)
        pred = (factors @ torch.linalg.inv(c[:-1, :-1])).tolist() if order > 1 else []
        if not corrector:
            return pred, None
        inverse = torch.linalg.inv(c)
        # the new point's weight takes the last row used above (row 0 at order 1) with h·φ_p, as A1111's
        # vendored UniPC does
        corr: list[float] | None = [
            *(factors @ inverse[:-1, :-1]).tolist(),
            h_phi[order] * float(inverse[max(order - 2, 0), -1]),
        ]
        return pred, corr
    b_h = hh if variant == "bh1" else math.expm1(hh)  # B(h) = h or e^h − 1
    r = torch.stack([rks**i for i in range(order)])
    b = torch.tensor([h_phi[i] * math.factorial(i) / b_h for i in range(1, order + 1)], dtype=torch.float64)
    if order <= 2:
        pred = [0.5] * (order - 1)
    else:
        pred = torch.linalg.solve(r[:-1, :-1], b[:-1]).tolist()
    corr = ([0.5] if order == 1 else torch.linalg.solve(r, b).tolist()) if corrector else None
    return [b_h * w for w in pred], None if corr is None else [b_h * w for w in corr]


def _weighted(weights: Sequence[float], differences: Sequence[torch.Tensor]) -> torch.Tensor | float:
    total: torch.Tensor | float = 0.0
    for weight, difference in zip(weights, differences):
        total = total + weight * difference
    return total


def _unipc_step(
    schedule: _VPSchedule,
    data: Callable,
    variant: str,
    x: torch.Tensor,
    times: list[float],
    values: list[torch.Tensor],
    t: float,
    order: int,
    corrector: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One multistep UniPC step (data prediction) from times[-1] to t with the last `order` model values:
    UniP predicts; with `corrector`, the model is called at the prediction and UniC corrects with that value.
    Returns (x at t, the model value at t or None)."""
    lam_0 = schedule.lam(times[-1])
    h = schedule.lam(t) - lam_0
    ratios = [(schedule.lam(times[-1 - i]) - lam_0) / h for i in range(1, order)] + [1.0]
    value_0 = values[-1]
    differences = [(values[-1 - i] - value_0) / ratios[i - 1] for i in range(1, order)]
    alpha_t = schedule.alpha(t)
    base = (schedule.std(t) / schedule.std(times[-1])) * x - alpha_t * math.expm1(-h) * value_0
    pred, corr = _unipc_weights(variant, -h, ratios, corrector)
    x_t = base - alpha_t * _weighted(pred, differences)
    if corr is None:
        return x_t, None
    value_t = data(x_t, t)
    return base - alpha_t * _weighted(corr, [*differences, value_t - value_0]), value_t


@torch.no_grad()
def sample_unipc(
    model: Model,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable | None = None,
    *,
    alphas_cumprod: torch.Tensor,
    variant: str = "bh1",
    skip_type: str = "time_uniform",
    order: int = 3,
    lower_order_final: bool = True,
    is_img2img: bool = False,
    v_prediction: bool = False,
) -> torch.Tensor:
    """UniPC (Zhao et al. 2023), multistep with data prediction, as A1111 runs it: len(timesteps) steps from
    t = 1 (img2img: the last timestep's time) to t = 1/N, spaced by `skip_type`; the settings uni_pc_variant,
    uni_pc_skip_type, uni_pc_order and uni_pc_lower_order_final give the options. The first order − 1 steps
    warm up at orders 1, 2, …; every step but the last is corrected; `lower_order_final` lowers the order of
    the last steps to the steps left. The model timesteps are fractional: for a v-prediction model
    (`v_prediction`) A1111 turns v into ε with ᾱ at the timestep truncated to a whole one, and so does this."""
    steps = len(timesteps)
    if variant not in UNIPC_VARIANTS:
        raise ValueError(f"Unknown UniPC variant {variant!r} (one of {', '.join(UNIPC_VARIANTS)})")
    if steps < order or steps == 0:
        raise UserError(
            "UniPC needs at least as many sampling steps as its order (the uni_pc_order setting): "
            f"order {order}, {steps} steps"
        )
    extra_args = extra_args or {}
    schedule = _VPSchedule(alphas_cumprod)
    model_sigma = Denoiser(alphas_cumprod)
    n = schedule.n
    t_start = (int(timesteps[-1]) + 1) / n if is_img2img else 1.0
    times = schedule.times(skip_type, t_start, 1 / n, steps)

    def data(x_t: torch.Tensor, t: float) -> torch.Tensor:
        """x0 as A1111's UniPC forms it from the model's ε at model timestep N·t − 1."""
        timestep = torch.tensor(min(max(t * n - 1, 0.0), n - 1.0))
        sigma = model_sigma.t_to_sigma(timestep)
        _, _, eps = _eps(model, x_t, sigma, extra_args)
        if v_prediction:  # ε = √(1−ā)·x_t + √ā·v at the model's own ā = 1/(σ²+1); A1111 uses ᾱ[⌊timestep⌋]
            alpha_model = 1 / (sigma**2 + 1)
            v = (eps - (1 - alpha_model) ** 0.5 * x_t) / alpha_model**0.5
            alpha_whole = alphas_cumprod[int(timestep)].to(x_t.dtype)
            eps = alpha_whole**0.5 * v + (1 - alpha_whole) ** 0.5 * x_t
        return (x_t - schedule.std(t) * eps) / schedule.alpha(t)

    done = [times[0]]
    values: list[Any] = [data(x, times[0])]  # the model values; the final step, without corrector, adds None
    for step in range(1, steps + 1):
        if callback is not None:
            alpha = schedule.alpha(done[-1])
            sigma = torch.tensor(schedule.std(done[-1]) / alpha, dtype=torch.float32)
            callback({"x": x / alpha, "i": step - 1, "sigma": sigma, "sigma_hat": sigma, "denoised": values[-1]})
        if step < order:
            step_order = step
        else:
            step_order = min(order, steps + 1 - step) if lower_order_final else order
        x, value = _unipc_step(schedule, data, variant, x, done, values, times[step], step_order, step < steps)
        done, values = ([*done, times[step]])[-order:], ([*values, value])[-order:]
    return x
