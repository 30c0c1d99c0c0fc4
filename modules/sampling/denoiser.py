"""A discrete-time diffusion model seen as a denoiser over continuous noise levels σ (k-diffusion's view of
an LDM): the training schedule's 1000 sigmas, the map between σ and the model's timestep t, and the scalings
that turn the model's output (ε or v) into the denoised x0. Pure maths: the UNet is called elsewhere."""

from __future__ import annotations

from collections.abc import Mapping

import torch

EPSILON = "epsilon"
V_PREDICTION = "v_prediction"


def alphas_cumprod_of(config: Mapping, zero_terminal_snr: bool = False) -> torch.Tensor:
    """The training schedule's ᾱ (cumulative products of 1 − β) from a diffusers scheduler config, computed in
    float64 as the original LDM code computes it and stored as float32. `zero_terminal_snr` rescales it (in
    float32, as A1111 does) so the last step is pure noise (A1111's "Zero Terminal SNR" noise schedule)."""
    steps = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    kind = config.get("beta_schedule", "scaled_linear")
    if kind == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(start, end, steps, dtype=torch.float64)
    else:
        raise ValueError(f"The beta schedule {kind!r} is not supported")
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).to(torch.float32)
    return rescale_zero_terminal_snr(alphas_cumprod) if zero_terminal_snr else alphas_cumprod


def rescale_zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """ᾱ shifted and scaled in √ᾱ so the first step keeps its value and the last reaches 0 (Lin et al. 2023),
    with the last kept just above 0 so σ stays finite, as A1111 does."""
    root = alphas_cumprod.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    rescaled = root**2
    rescaled[-1] = 4.8973451890853435e-08
    return rescaled


class Denoiser:
    """The noise levels of a model trained on `alphas_cumprod`, predicting ε or v."""

    def __init__(self, alphas_cumprod: torch.Tensor, prediction: str = EPSILON, quantize: bool = False) -> None:
        if prediction not in (EPSILON, V_PREDICTION):
            raise ValueError(f"Unknown prediction type {prediction!r}")
        self.alphas_cumprod = alphas_cumprod.to(torch.float32)
        self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()
        self.prediction = prediction
        self.quantize = quantize

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
        """The (continuous) timestep of noise level `sigma`: log σ placed between its two neighbouring training
        steps; the nearest step with `quantize` (A1111's enable_quantization)."""
        log_sigmas = self.log_sigmas.to(sigma.device)
        distances = sigma.float().log() - log_sigmas[:, None]
        if self.quantize if quantize is None else quantize:
            return distances.abs().argmin(dim=0).view(sigma.shape)
        low = distances.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=len(log_sigmas) - 2)
        high = low + 1
        below, above = log_sigmas[low], log_sigmas[high]
        weight = ((below - sigma.float().log()) / (below - above)).clamp(0, 1)
        return ((1 - weight) * low + weight * high).view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """The noise level of (continuous) timestep `t`, interpolating log σ."""
        t = t.float()
        log_sigmas = self.log_sigmas.to(t.device)
        low, high, weight = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - weight) * log_sigmas[low] + weight * log_sigmas[high]).exp()

    def uniform_sigmas(self, n: int) -> torch.Tensor:
        """The model's own schedule for `n` steps: timesteps evenly from the last to the first, then 0."""
        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        return torch.cat([self.t_to_sigma(t), t.new_zeros(1)])

    def scalings(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in) for noise level `sigma`: x0 = c_skip·x + c_out·model(c_in·x, t)."""
        c_in = 1 / (sigma**2 + 1) ** 0.5
        if self.prediction == EPSILON:
            return torch.ones_like(sigma), -sigma, c_in
        return 1 / (sigma**2 + 1), -sigma / (sigma**2 + 1) ** 0.5, c_in  # k-diffusion's rounding of c_out

    def denoised(self, model_output: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x0 from the model's output at `x` (k-diffusion scale) and `sigma` (shape [batch])."""
        c_skip, c_out, _ = (_per_image(s, x) for s in self.scalings(sigma))
        return x * c_skip + model_output * c_out

    def model_input(self, x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the UNet takes at `x` and `sigma`: the scaled latents and the timesteps."""
        _, _, c_in = self.scalings(sigma)
        return x * _per_image(c_in, x), self.sigma_to_t(sigma)


def _per_image(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A [batch] tensor shaped to broadcast over `x`'s image dimensions."""
    return values.reshape(values.shape[0], *([1] * (x.ndim - 1))).to(x.dtype)
