"""The k-diffusion samplers A1111 1.10 offers, with k-diffusion's names, options and defaults (the version A1111
pins, commit ab527a9, whose sampling code equals PyPI k-diffusion 0.1.1.post1), written for this project's
conventions (docs/SAMPLING.md): `model(x, sigma, **extra_args)` returns the denoised x0, `callback(dict)` is
called once per step with k-diffusion's keys, and every random draw goes through `noise_sampler(sigma,
sigma_next)` in the order and number k-diffusion draws it under A1111 (where k-diffusion calls
torch.randn_like, A1111 substitutes its image noise: Euler, Heun and DPM2 draw one every step, used only with
churn). A sampler raises for a missing noise_sampler only when the draw would change the result. The arithmetic
keeps k-diffusion's order of operations, so float32 results equal k-diffusion's bit for bit on the CPU (LMS:
to its numpy-1 precision, see _lms_coefficient)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, overload

import numpy as np
import torch
from scipy import integrate

Model = Callable[..., torch.Tensor]
NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict], None]


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE's derivative dx/dσ at (x, σ) for a scalar σ."""
    return (x - denoised) / sigma


def get_ancestral_step(sigma_from, sigma_to, eta: float = 1.0):
    """(σ_down, σ_up) of an ancestral step from σ_from to σ_to: a deterministic step to σ_down, then fresh noise
    of std σ_up, with σ_down² + σ_up² = σ_to² and σ_up scaled by eta (0: no noise)."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    return (sigma_to**2 - sigma_up**2) ** 0.5, sigma_up


@overload
def _draw(noise_sampler: NoiseSampler | None, sigma, sigma_next, needed: Literal[True]) -> torch.Tensor: ...
@overload
def _draw(noise_sampler: NoiseSampler | None, sigma, sigma_next, needed) -> torch.Tensor | None: ...
def _draw(noise_sampler: NoiseSampler | None, sigma, sigma_next, needed) -> torch.Tensor | None:
    """One random draw where k-diffusion makes one; None when there is no noise_sampler and the draw's weight is
    zero (`needed` false), so leaving it out changes nothing."""
    if noise_sampler is not None:
        return noise_sampler(sigma, sigma_next)
    if needed:
        raise ValueError("This sampler adds noise here: pass a noise_sampler")
    return None


def _add_noise(x: torch.Tensor, noise: torch.Tensor | None, *factors) -> torch.Tensor:
    """x + noise × each factor in turn (k-diffusion's order of products), or x when there is no draw."""
    if noise is None:
        return x
    for factor in factors:
        noise = noise * factor
    return x + noise


def _batch_of(x: torch.Tensor) -> torch.Tensor:
    return x.new_ones([x.shape[0]])


def _report(callback: Callback | None, x, i, sigma, sigma_hat, denoised) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def _churned(x, sigmas, i, noise_sampler, s_churn, s_tmin, s_tmax, s_noise):
    """Karras et al.'s "churn": σ raised to σ̂ = σ(1 + γ) with matching noise added (γ > 0 only inside
    [s_tmin, s_tmax]). A draw is made every step, as k-diffusion does, used only when γ > 0."""
    sigma = sigmas[i]
    gamma = min(s_churn / (len(sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
    noise = _draw(noise_sampler, sigma, sigmas[i + 1], gamma > 0)
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        x = x + noise * s_noise * (sigma_hat**2 - sigma**2) ** 0.5
    return x, sigma_hat


@torch.no_grad()
def sample_euler(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """Euler steps of the probability-flow ODE (Karras et al. 2022, Algorithm 2 without the correction)."""
    extra_args = extra_args or {}
    ones = _batch_of(x)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise_sampler, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * ones, **extra_args)
        slope = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        x = x + slope * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_euler_ancestral(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """Euler steps down to σ_down, then fresh noise up to the next σ."""
    extra_args = extra_args or {}
    ones = _batch_of(x)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * ones, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigma, sigma_next, eta)
        _report(callback, x, i, sigma, sigma, denoised)
        x = x + to_d(x, sigma, denoised) * (sigma_down - sigma)
        if sigma_next > 0:
            x = _add_noise(x, _draw(noise_sampler, sigma, sigma_next, eta), s_noise, sigma_up)
    return x


@torch.no_grad()
def sample_heun(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """Heun's second-order method (Karras et al. 2022, Algorithm 2); a plain Euler step onto σ = 0."""
    extra_args = extra_args or {}
    ones = _batch_of(x)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise_sampler, s_churn, s_tmin, s_tmax, s_noise)
        sigma_next = sigmas[i + 1]
        denoised = model(x, sigma_hat * ones, **extra_args)
        slope = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        step = sigma_next - sigma_hat
        if sigma_next == 0:
            x = x + slope * step
        else:
            x_euler = x + slope * step
            slope_end = to_d(x_euler, sigma_next, model(x_euler, sigma_next * ones, **extra_args))
            x = x + (slope + slope_end) / 2 * step
    return x


@torch.no_grad()
def sample_dpm_2(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DPM-Solver-2-like midpoint steps (the slope taken at the geometric mean of the two σ's)."""
    extra_args = extra_args or {}
    ones = _batch_of(x)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise_sampler, s_churn, s_tmin, s_tmax, s_noise)
        sigma_next = sigmas[i + 1]
        denoised = model(x, sigma_hat * ones, **extra_args)
        slope = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        x = _midpoint_step(model, x, slope, sigma_hat, sigma_next, ones, extra_args)
    return x


def _midpoint_step(model, x, slope, sigma, sigma_to, ones, extra_args):
    """DPM2's step from σ to σ_to: Euler onto 0, else the slope at the log-midpoint carried over the whole step."""
    if sigma_to == 0:
        return x + slope * (sigma_to - sigma)
    sigma_mid = sigma.log().lerp(sigma_to.log(), 0.5).exp()
    x_mid = x + slope * (sigma_mid - sigma)
    slope_mid = to_d(x_mid, sigma_mid, model(x_mid, sigma_mid * ones, **extra_args))
    return x + slope_mid * (sigma_to - sigma)


@torch.no_grad()
def sample_dpm_2_ancestral(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DPM2 steps down to σ_down, then fresh noise up to the next σ (none after a step onto 0)."""
    extra_args = extra_args or {}
    ones = _batch_of(x)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * ones, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigma, sigma_next, eta)
        _report(callback, x, i, sigma, sigma, denoised)
        x = _midpoint_step(model, x, to_d(x, sigma, denoised), sigma, sigma_down, ones, extra_args)
        if sigma_down != 0:
            x = _add_noise(x, _draw(noise_sampler, sigma, sigma_next, eta), s_noise, sigma_up)
    return x


def _lms_coefficient(order: int, sigmas: np.ndarray, i: int, j: int) -> float:
    """∫ from σ_i to σ_(i+1) of the Lagrange basis polynomial of σ_(i-j) over the last `order` σ's (float32
    nodes), by adaptive quadrature with relative tolerance 1e-4. Precision as k-diffusion's under A1111's
    numpy 1.x: node differences in float32, the rest in float64 (numpy 2 would keep it all in float32)."""
    if order - 1 > i:
        raise ValueError(f"Order {order} too high for step {i}")

    def basis(tau: float) -> float:
        value = 1.0
        for k in range(order):
            if k != j:
                value *= (tau - float(sigmas[i - k])) / float(sigmas[i - j] - sigmas[i - k])
        return value

    return integrate.quad(basis, float(sigmas[i]), float(sigmas[i + 1]), epsrel=1e-4)[0]


@torch.no_grad()
def sample_lms(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    order: int = 4,
) -> torch.Tensor:
    """Linear multistep: the step integrates the polynomial through the last `order` slopes."""
    extra_args = extra_args or {}
    ones = _batch_of(x)
    nodes = sigmas.detach().cpu().float().numpy()
    slopes: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * ones, **extra_args)
        slopes = [*slopes, to_d(x, sigmas[i], denoised)][-order:]
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        current = min(i + 1, order)
        coefficients = [_lms_coefficient(current, nodes, i, j) for j in range(current)]
        x = x + sum(c * slope for c, slope in zip(coefficients, reversed(slopes)))
    return x


def _sigma_of(t: torch.Tensor) -> torch.Tensor:
    return t.neg().exp()


def _t_of(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.log().neg()


@torch.no_grad()
def sample_dpmpp_2s_ancestral(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2S) single-step second order down to σ_down, then fresh noise up to the next σ."""
    extra_args = extra_args or {}
    ones = _batch_of(x)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * ones, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigma, sigma_next, eta)
        _report(callback, x, i, sigma, sigma, denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigma, denoised) * (sigma_down - sigma)
        else:
            t, t_down = _t_of(sigma), _t_of(sigma_down)
            h = t_down - t
            t_mid = t + 1 / 2 * h
            x_mid = (_sigma_of(t_mid) / _sigma_of(t)) * x - (-h * (1 / 2)).expm1() * denoised
            denoised_mid = model(x_mid, _sigma_of(t_mid) * ones, **extra_args)
            x = (_sigma_of(t_down) / _sigma_of(t)) * x - (-h).expm1() * denoised_mid
        if sigma_next > 0:
            x = _add_noise(x, _draw(noise_sampler, sigma, sigma_next, eta), s_noise, sigma_up)
    return x


@torch.no_grad()
def sample_dpmpp_sde(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
    r: float = 1 / 2,
) -> torch.Tensor:
    """DPM-Solver++ (stochastic), two stages per step: an ancestral step to the fraction `r` of the step in
    log σ, then the full step with the two x0 estimates blended; noise at both stages (A1111: Brownian)."""
    extra_args = extra_args or {}
    ones = _batch_of(x)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * ones, **extra_args)
        _report(callback, x, i, sigma, sigma, denoised)
        if sigma_next == 0:
            x = x + to_d(x, sigma, denoised) * (sigma_next - sigma)
            continue
        t, t_next = _t_of(sigma), _t_of(sigma_next)
        h = t_next - t
        t_stage = t + h * r
        weight = 1 / (2 * r)

        down, up = get_ancestral_step(_sigma_of(t), _sigma_of(t_stage), eta)
        t_down = _t_of(down)
        x_stage = (_sigma_of(t_down) / _sigma_of(t)) * x - (t - t_down).expm1() * denoised
        noise = _draw(noise_sampler, _sigma_of(t), _sigma_of(t_stage), eta)
        x_stage = _add_noise(x_stage, noise, s_noise, up)
        denoised_stage = model(x_stage, _sigma_of(t_stage) * ones, **extra_args)

        down, up = get_ancestral_step(_sigma_of(t), _sigma_of(t_next), eta)
        t_down = _t_of(down)
        blended = (1 - weight) * denoised + weight * denoised_stage
        x = (_sigma_of(t_down) / _sigma_of(t)) * x - (t - t_down).expm1() * blended
        x = _add_noise(x, _draw(noise_sampler, _sigma_of(t), _sigma_of(t_next), eta), s_noise, up)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M): multistep second order, the previous x0 estimate extrapolated in log σ."""
    extra_args = extra_args or {}
    ones = _batch_of(x)
    previous = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * ones, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = _t_of(sigmas[i]), _t_of(sigmas[i + 1])
        h = t_next - t
        if previous is None or sigmas[i + 1] == 0:
            estimate = denoised
        else:
            ratio = (t - _t_of(sigmas[i - 1])) / h
            estimate = (1 + 1 / (2 * ratio)) * denoised - (1 / (2 * ratio)) * previous
        x = (_sigma_of(t_next) / _sigma_of(t)) * x - (-h).expm1() * estimate
        previous = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
    solver_type: str = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE; `solver_type` "midpoint" (A1111's DPM++ 2M SDE) or "heun" (DPM++ 2M SDE Heun)
    picks the second-order correction. The last step returns the x0 estimate."""
    if solver_type not in {"heun", "midpoint"}:
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    extra_args = extra_args or {}
    ones = _batch_of(x)
    previous: torch.Tensor | None = None
    h_previous: Any = None  # a tensor once `previous` is set
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * ones, **extra_args)
        _report(callback, x, i, sigma, sigma, denoised)
        h = None
        if sigma_next == 0:
            x = denoised
        else:
            h = (-sigma_next.log()) - (-sigma.log())
            eta_h = eta * h
            decay = (-h - eta_h).expm1().neg()
            x = sigma_next / sigma * (-eta_h).exp() * x + decay * denoised
            if previous is not None:
                ratio = h_previous / h
                if solver_type == "heun":
                    x = x + (decay / (-h - eta_h) + 1) * (1 / ratio) * (denoised - previous)
                else:
                    x = x + 0.5 * decay * (1 / ratio) * (denoised - previous)
            if eta:
                noise = _draw(noise_sampler, sigma, sigma_next, True)
                x = x + noise * sigma_next * (-2 * eta_h).expm1().neg().sqrt() * s_noise
        previous, h_previous = denoised, h
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DPM-Solver++(3M) SDE: multistep third order from the last three x0 estimates. The last step returns the
    x0 estimate."""
    extra_args = extra_args or {}
    ones = _batch_of(x)
    denoised_1: Any = None  # the last x0 estimates and log-σ steps: tensors once set
    denoised_2: Any = None
    h_1: Any = None
    h_2: Any = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * ones, **extra_args)
        _report(callback, x, i, sigma, sigma, denoised)
        h = None
        if sigma_next == 0:
            x = denoised
        else:
            h = (-sigma_next.log()) - (-sigma.log())
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * ((denoised - denoised_1) / (h_1 / h))
            if eta:
                noise = _draw(noise_sampler, sigma, sigma_next, True)
                x = x + noise * sigma_next * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


class _StepSizeController:
    """PID control of the step size h from the scaled error of each attempt (k-diffusion's
    PIDStepSizeController): the factor is limited by 1 + atan(f − 1), and a step is accepted when it is at
    least `accept_safety`."""

    def __init__(
        self,
        h: float,
        pcoeff: float,
        icoeff: float,
        dcoeff: float,
        order: float = 1,
        accept_safety: float = 0.81,
        eps: float = 1e-8,
    ) -> None:
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self.inverse_errors: list[float] = []

    def propose_step(self, error) -> bool:
        inverse = 1 / (float(error) + self.eps)
        if not self.inverse_errors:
            self.inverse_errors = [inverse, inverse, inverse]
        self.inverse_errors[0] = inverse
        e0, e1, e2 = self.inverse_errors
        factor = 1 + math.atan(e0**self.b1 * e1**self.b2 * e2**self.b3 - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.inverse_errors[2], self.inverse_errors[1] = e1, e0
        self.h *= factor
        return accept


class _DPMSolver:
    """DPM-Solver (Lu et al. 2022, arXiv:2206.00927) over t = −log σ, on the noise prediction ε = (x − x0)/σ:
    first-, second- and third-order single steps, a fixed-step schedule (DPM fast) and an embedded-pair
    adaptive one (DPM adaptive). Within a step, ε at a point is computed once and reused by name."""

    def __init__(self, model: Model, extra_args: dict, info_callback: Callback | None) -> None:
        self.model = model
        self.extra_args = extra_args
        self.info_callback = info_callback

    @staticmethod
    def t(sigma: torch.Tensor) -> torch.Tensor:
        return -sigma.log()

    @staticmethod
    def sigma(t: torch.Tensor) -> torch.Tensor:
        return t.neg().exp()

    def eps(self, cache: dict, key: str, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if key not in cache:
            sigma = self.sigma(t) * x.new_ones([x.shape[0]])
            cache[key] = (x - self.model(x, sigma, **self.extra_args)) / self.sigma(t)
        return cache[key]

    def step_1(self, x, t, t_next, cache):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        return x - self.sigma(t_next) * h.expm1() * eps

    def step_2(self, x, t, t_next, cache, r1=1 / 2):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(self, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = (
            x
            - self.sigma(s2) * (r2 * h).expm1() * eps
            - self.sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        )
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)

    def _ancestral_target(self, t, t_next, t_end, eta):
        """Where a step from t to t_next lands before its noise, and the noise's std (eta 0: t_next, 0)."""
        if not eta:
            return t_next, 0.0
        sigma_down, _ = get_ancestral_step(self.sigma(t), self.sigma(t_next), eta)
        t_down = torch.minimum(t_end, self.t(sigma_down))
        return t_down, (self.sigma(t_next) ** 2 - self.sigma(t_down) ** 2) ** 0.5

    def fast(self, x, t_start, t_end, nfe, eta, s_noise, noise_sampler):
        """`nfe` model calls on evenly spaced t: third-order steps, the last one or two of lower order."""
        if not t_end > t_start and eta:
            raise ValueError("eta must be 0 for reverse sampling")
        m = math.floor(nfe / 3) + 1
        ts = torch.linspace(t_start, t_end, m + 1, device=x.device)
        orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
        steps = {1: self.step_1, 2: self.step_2, 3: self.step_3}
        for i, order in enumerate(orders):
            cache: dict = {}
            t, t_next = ts[i], ts[i + 1]
            t_target, noise_std = self._ancestral_target(t, t_next, t_end, eta)
            denoised = x - self.sigma(t) * self.eps(cache, "eps", x, t)
            if self.info_callback is not None:
                self.info_callback({"x": x, "i": i, "t": ts[i], "t_up": t, "denoised": denoised})
            x = steps[order](x, t, t_target, cache)
            noise = _draw(noise_sampler, self.sigma(t), self.sigma(t_next), eta)
            if noise is not None:
                x = x + noise_std * s_noise * noise
        return x

    def adaptive(
        self,
        x,
        t_start,
        t_end,
        order,
        rtol,
        atol,
        h_init,
        pcoeff,
        icoeff,
        dcoeff,
        accept_safety,
        eta,
        s_noise,
        noise_sampler,
    ):
        """Steps whose size follows the difference between an order-`order` and a lower-order solution, scaled
        by atol + rtol·|x|; returns x and the counts (steps, nfe, n_accept, n_reject)."""
        if order not in {2, 3}:
            raise ValueError("order should be 2 or 3")
        forward = t_end > t_start
        if not forward and eta:
            raise ValueError("eta must be 0 for reverse sampling")
        h_init = abs(h_init) * (1 if forward else -1)
        atol, rtol = torch.tensor(atol), torch.tensor(rtol)
        s, x_prev = t_start, x
        controller = _StepSizeController(h_init, pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
        info = {"steps": 0, "nfe": 0, "n_accept": 0, "n_reject": 0}
        while s < t_end - 1e-5 if forward else s > t_end + 1e-5:
            cache: dict = {}
            t = torch.minimum(t_end, s + controller.h) if forward else torch.maximum(t_end, s + controller.h)
            t_target, noise_std = self._ancestral_target(s, t, t_end, eta)
            denoised = x - self.sigma(s) * self.eps(cache, "eps", x, s)
            if order == 2:
                x_low = self.step_1(x, s, t_target, cache)
                x_high = self.step_2(x, s, t_target, cache)
            else:
                x_low = self.step_2(x, s, t_target, cache, r1=1 / 3)
                x_high = self.step_3(x, s, t_target, cache)
            delta = torch.maximum(atol, rtol * torch.maximum(x_low.abs(), x_prev.abs()))
            error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
            if controller.propose_step(error):
                x_prev = x_low
                noise = _draw(noise_sampler, self.sigma(s), self.sigma(t), eta)
                x = x_high if noise is None else x_high + noise_std * s_noise * noise
                s = t
                info["n_accept"] += 1
            else:
                info["n_reject"] += 1
            info["nfe"] += order
            info["steps"] += 1
            if self.info_callback is not None:
                self.info_callback(
                    {
                        "x": x,
                        "i": info["steps"] - 1,
                        "t": s,
                        "t_up": s,
                        "denoised": denoised,
                        "error": error,
                        "h": controller.h,
                        **info,
                    }
                )
        return x, info


def _dpm_solver(model: Model, extra_args: dict | None, callback: Callback | None) -> _DPMSolver:
    solver = _DPMSolver(model, extra_args or {}, None)
    if callback is not None:
        solver.info_callback = lambda info: callback(
            {"sigma": solver.sigma(info["t"]), "sigma_hat": solver.sigma(info["t_up"]), **info}
        )
    return solver


def _check_range(sigma_min, sigma_max) -> None:
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")


@torch.no_grad()
def sample_dpm_fast(
    model: Model,
    x: torch.Tensor,
    sigma_min,
    sigma_max,
    n: int,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    eta: float = 0.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DPM-Solver-Fast: `n` model calls from σ_max down to σ_min (> 0) on fixed steps. The callback's dict
    also holds k-diffusion's "t" and "t_up"."""
    _check_range(sigma_min, sigma_max)
    solver = _dpm_solver(model, extra_args, callback)
    t_start = solver.t(torch.as_tensor(sigma_max, dtype=torch.float32))
    t_end = solver.t(torch.as_tensor(sigma_min, dtype=torch.float32))
    return solver.fast(x, t_start, t_end, n, eta, s_noise, noise_sampler)


@torch.no_grad()
def sample_dpm_adaptive(
    model: Model,
    x: torch.Tensor,
    sigma_min,
    sigma_max,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    *,
    order: int = 3,
    rtol: float = 0.05,
    atol: float = 0.0078,
    h_init: float = 0.05,
    pcoeff: float = 0.0,
    icoeff: float = 1.0,
    dcoeff: float = 0.0,
    accept_safety: float = 0.81,
    eta: float = 0.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
    return_info: bool = False,
):
    """DPM-Solver-12/23 with adaptive step size from σ_max down to σ_min (> 0); the number of steps follows
    the error control. The callback runs after every attempt, accepted or not, with k-diffusion's extra keys
    (t, t_up, error, h, steps, nfe, n_accept, n_reject). With `return_info`: (x, those counts)."""
    _check_range(sigma_min, sigma_max)
    solver = _dpm_solver(model, extra_args, callback)
    t_start = solver.t(torch.as_tensor(sigma_max, dtype=torch.float32))
    t_end = solver.t(torch.as_tensor(sigma_min, dtype=torch.float32))
    x, info = solver.adaptive(
        x, t_start, t_end, order, rtol, atol, h_init, pcoeff, icoeff, dcoeff, accept_safety, eta, s_noise, noise_sampler
    )
    return (x, info) if return_info else x
