"""An independent rebuild of A1111 1.10's sampling pipeline: the oracle that tests/test_a1111_parity.py holds the
project's jobs to ("the same infotext gives A1111's image", within 2/255 per pixel).

A1111's glue, rewritten here from A1111 1.10's sources, without the project's sampling code (no
modules/sampling guidance, passes, noise, registry or denoiser, no modules/jobs/generation):
- processing.py: txt2img samples from `x = rng.next()`, img2img from the init latent and that same draw; the
  latents are decoded one image at a time (decode_first_stage: z · (1 / scale factor) through the VAE), then
  clamp((x + 1) / 2) · 255 truncated to uint8.
- rng.py's ImageRNG (variation seeds, "Resize seed from", ENSD; CPU = GPU on a CPU machine, and NV), prompt
  schedules, AND, the conditioning and CFGDenoiser.forward, the timestep and LCM denoisers, and img2img's mask
  (create_binary_mask, the blur, masking.fill, the latent mask, the overlay): tests/a1111_oracle_features.py.
- sd_samplers_common.py: setup_img2img_steps; TorchHijack (k-diffusion's torch.randn_like is the next image
  noise); create_noise_sampler (a BrownianTreeNoiseSampler over the schedule's σ range, a tree per image seed;
  none with no_dpmpp_sde_batch_determinism, so k-diffusion seeds one tree from torch's global generator);
  Sampler.initialize (eta, and the s_* settings for the functions that take them); total_steps (twice the steps
  for second-order samplers), which prompt editing and Skip Early CFG count in.
- processing.py: the batch's seeds (all the seed with a variation strength, variation seeds counting up); the
  txt2img hires pass (a Latent mode's interpolation of the latents, or the decoded pixels resized with Lanczos
  and encoded again, the VAE's posterior sample drawn from torch's global generator, which the batch's noise last
  seeded; a fresh ImageRNG at the hires size; sample_img2img with the hires steps, the first pass's steps
  offsetting prompt editing); img2img's masked content (the filled image encoded; latent noise from a fresh
  ImageRNG of the batch's seeds; latent nothing) and the blend after sampling. sd_models.py: the Zero Terminal
  SNR noise schedule; sd_models_xl.py: SDXL's size conditioning (original = target = the pass's size, crop 0).
- sd_samplers_kdiffusion.py: the sampler table, get_sigmas (schedule type or the sampler's default, the settings'
  σ range and ρ, the old Karras range, discarding the penultimate σ), sample and sample_img2img.
- sd_samplers_timesteps.py: the timesteps, the img2img noising, CompVisTimestepsDenoiser / VDenoiser (ε from v
  with ᾱ at the truncated timestep); sd_samplers_timesteps_impl.py's DDIM, DDIM CFG++ and PLMS loops;
  sd_samplers_lcm.py's LCM denoiser and loop.

Borrowed, and why:
- k-diffusion 0.1.1.post1 (the sampling code A1111 1.10 pins), called as A1111 calls it: CompVisDenoiser /
  CompVisVDenoiser (and DiscreteEpsDDPMDenoiser under the LCM denoiser) over `LDMModel`, which gives them
  `alphas_cumprod` (float64 betas, cumprod, float32, as the original LDM code computes them) and
  `apply_model(x, t, cond)` on the loaded model's UNet; its samplers; get_sigmas_karras / exponential /
  polyexponential; DiscreteSchedule.get_sigmas (Uniform); BrownianTreeNoiseSampler.
- The project's UniPC (timestep_samplers.sample_unipc) and Restart (extra_samplers.sample_restart), which
  k-diffusion lacks and which are long: they run here on the oracle's model and noise; their own tests check
  them against diffusers' UniPC and k-diffusion's Heun.
- The project's schedules.py for SGM Uniform, KL Optimal, Align Your Steps, Simple, Normal, DDIM and Beta
  (A1111's sd_schedulers.py formulas; tests/test_sampling_schedules.py checks them), given the oracle's
  k-diffusion denoiser as A1111's inner model.
- The text conditioning from the project's PromptEncoder (prompt encoding is tested on its own); the UNet and
  the VAE of the loaded model.

Not rebuilt: the refiner, inpainting's "Only masked", inpainting checkpoints, hires fix's "Resize width/height to"
and pixel upscaler models, the textual-inversion / LoRA networks.
A1111 encodes img2img's init image with a draw from the VAE's posterior (torch's global generator, in whatever
state the process left it, so not even A1111 repeats it); `encode_image` takes the posterior's mean there, as the
project does."""

from __future__ import annotations

import copy
import inspect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from a1111_oracle_features import (
    LATENT_UPSCALE_MODES,
    BatchConds,
    CFGDenoiser,
    Guidance,
    ImageNoise,
    Inpainting,
    LCMDenoiser,
    TimestepsDenoiser,
    a1111_patches,
    global_generator,
    latent_keep,
    per_image,
)
from PIL import Image
from sampling_oracles import k_diffusion_module

from modules.sampling import extra_samplers, schedules, timestep_samplers

kd_sampling = k_diffusion_module("sampling")
kd_external = k_diffusion_module("external")
LATENT_FACTOR = 8  # A1111's opt_f
CFGPP_MULTIPLIER = 1 / 12.5


@dataclass(frozen=True)
class Opts:
    """The A1111 settings sampling reads, by A1111's names, with A1111 1.10's defaults."""

    eta_ancestral: float = 1.0
    eta_ddim: float = 0.0
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = 0.0
    s_noise: float = 1.0
    sigma_min: float = 0.0
    sigma_max: float = 0.0
    rho: float = 0.0
    always_discard_next_to_last_sigma: bool = False
    sgm_noise_multiplier: bool = False
    use_old_karras_scheduler_sigmas: bool = False
    uni_pc_variant: str = "bh1"
    uni_pc_skip_type: str = "time_uniform"
    uni_pc_order: int = 3
    uni_pc_lower_order_final: bool = True
    beta_dist_alpha: float = 0.6
    beta_dist_beta: float = 0.6
    randn_source: str = "GPU"
    eta_noise_seed_delta: int = 0
    img2img_fix_steps: bool = False
    s_min_uncond: float = 0.0
    s_min_uncond_all: bool = False
    skip_early_cond: float = 0.0
    pad_cond_uncond: bool = False
    pad_cond_uncond_v0: bool = False
    use_old_scheduling: bool = False
    sd_noise_schedule: str = "Default"
    enable_quantization: bool = False
    no_dpmpp_sde_batch_determinism: bool = False

    @property
    def guidance(self) -> Guidance:
        return Guidance(
            self.s_min_uncond,
            self.s_min_uncond_all,
            self.skip_early_cond,
            self.pad_cond_uncond,
            self.pad_cond_uncond_v0,
        )


@dataclass(frozen=True)
class Job:
    """What an infotext fixes for one batch: img2img's denoising strength (with an init image), or the hires
    pass's (with enable_hr)."""

    sampler: str
    scheduler: str = "Automatic"
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 4
    cfg_scale: float = 7.0
    width: int = 64
    height: int = 64
    batch_size: int = 1
    clip_skip: int = 1
    denoising_strength: float | None = None
    subseed: int = 0
    subseed_strength: float = 0.0
    seed_resize_from_w: int = 0
    seed_resize_from_h: int = 0
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str = "Latent"
    hr_second_pass_steps: int = 0
    hr_sampler: str | None = None  # None: the first pass's
    inpainting_fill: int = 1  # with a mask: 0 fill, 1 original, 2 latent noise, 3 latent nothing
    mask_blur: int = 4


@dataclass(frozen=True)
class Sampler:
    """A row of A1111's sampler tables: its function, what Automatic means for it, and its options."""

    function: str
    scheduler: str | None = None
    discard_next_to_last_sigma: bool = False
    brownian_noise: bool = False
    solver_type: str | None = None
    kind: str = "k-diffusion"  # or "timesteps", "lcm"
    second_order: bool = False

    def total_steps(self, steps: int) -> int:
        return steps * 2 if self.second_order else steps


TIMESTEPS = "timesteps"
SAMPLERS: dict[str, Sampler] = {
    "DPM++ 2M": Sampler("sample_dpmpp_2m", "karras"),
    "DPM++ SDE": Sampler("sample_dpmpp_sde", "karras", brownian_noise=True, second_order=True),
    "DPM++ 2M SDE": Sampler("sample_dpmpp_2m_sde", "exponential", brownian_noise=True),
    "DPM++ 2M SDE Heun": Sampler("sample_dpmpp_2m_sde", "exponential", brownian_noise=True, solver_type="heun"),
    "DPM++ 2S a": Sampler("sample_dpmpp_2s_ancestral", "karras", second_order=True),
    "DPM++ 3M SDE": Sampler("sample_dpmpp_3m_sde", "exponential", discard_next_to_last_sigma=True, brownian_noise=True),
    "Euler a": Sampler("sample_euler_ancestral"),
    "Euler": Sampler("sample_euler"),
    "LMS": Sampler("sample_lms"),
    "Heun": Sampler("sample_heun", second_order=True),
    "DPM2": Sampler("sample_dpm_2", "karras", discard_next_to_last_sigma=True, second_order=True),
    "DPM2 a": Sampler("sample_dpm_2_ancestral", "karras", discard_next_to_last_sigma=True, second_order=True),
    "DPM fast": Sampler("sample_dpm_fast"),
    "DPM adaptive": Sampler("sample_dpm_adaptive"),
    "Restart": Sampler("restart_sampler", "karras", second_order=True),
    "DDIM": Sampler("ddim", kind=TIMESTEPS),
    "DDIM CFG++": Sampler("ddim_cfgpp", kind=TIMESTEPS),
    "PLMS": Sampler("plms", kind=TIMESTEPS),
    "UniPC": Sampler("unipc", kind=TIMESTEPS),
    "LCM": Sampler("sample_lcm", kind="lcm"),
}
# sampler_extra_params: the s_* settings A1111 hands to these k-diffusion functions.
EXTRA_PARAMS = {
    name: ("s_churn", "s_tmin", "s_tmax", "s_noise") for name in ("sample_euler", "sample_heun", "sample_dpm_2")
} | {
    name: ("s_noise",)
    for name in (
        "sample_dpm_fast",
        "sample_dpm_2_ancestral",
        "sample_dpmpp_2s_ancestral",
        "sample_dpmpp_sde",
        "sample_dpmpp_2m_sde",
        "sample_dpmpp_3m_sde",
    )
}


class LDMModel:
    """The loaded model as the original LDM code shows it to A1111's samplers: its training schedule and
    `apply_model(x, t, cond)` (the UNet's ε or v for latents x at timesteps t, text in cond["c_crossattn"])."""

    def __init__(self, model: Any, v_prediction: bool = False) -> None:
        schedule = model.family.beta_schedule
        if schedule.beta_schedule != "scaled_linear":  # LDM's "linear" is diffusers' scaled_linear
            raise ValueError(f"The oracle knows LDM's linear schedule only, not {schedule.beta_schedule}")
        betas = (
            torch.linspace(
                schedule.beta_start**0.5, schedule.beta_end**0.5, schedule.num_train_timesteps, dtype=torch.float64
            )
            ** 2
        )
        cumulative = np.cumprod(1.0 - betas.numpy(), axis=0)
        self.alphas_cumprod = torch.tensor(cumulative, dtype=torch.float32)
        self.sqrt_alphas_cumprod = torch.tensor(np.sqrt(cumulative), dtype=torch.float32)
        self.sqrt_one_minus_alphas_cumprod = torch.tensor(np.sqrt(1.0 - cumulative), dtype=torch.float32)
        self.parameterization = "v" if v_prediction else "eps"
        self.model = model
        self.sdxl = model.family.name == "sdxl"

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        added = None
        if cond.get("vector") is not None:  # SDXL: pooled text and the size (original, crop 0 0, target)
            height, width = cond["size"]
            sizes = torch.tensor([[height, width, 0, 0, height, width]], dtype=x.dtype).repeat(x.shape[0], 1)
            added = {"text_embeds": cond["vector"], "time_ids": sizes}
        return self.model.unet(x, t, encoder_hidden_states=cond["c_crossattn"][0], added_cond_kwargs=added).sample

    def scheduled(self, opts: Opts) -> LDMModel:
        """apply_alpha_schedule_override: with Zero Terminal SNR, alphas_cumprod rescaled (√ᾱ shifted to end at 0
        and scaled to keep its first value; the last ᾱ set just above 0); the sqrt buffers stay as trained."""
        if opts.sd_noise_schedule != "Zero Terminal SNR":
            return self
        rescaled = copy.copy(self)
        root = self.alphas_cumprod.sqrt()
        first, last = root[0].clone(), root[-1].clone()
        root = (root - last) * (first / (first - last))
        rescaled.alphas_cumprod = root**2
        rescaled.alphas_cumprod[-1] = 4.8973451890853435e-08
        return rescaled

    def sigmas(self) -> torch.Tensor:
        return ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5


# A1111's schedule types: (function of n, sigma_min, sigma_max, …; default ρ; whether it reads the model's σ)
SCHEDULES: dict[str, tuple[Callable | None, float | None, bool]] = {
    "uniform": (None, None, True),
    "karras": (kd_sampling.get_sigmas_karras, 7.0, False),
    "exponential": (kd_sampling.get_sigmas_exponential, None, False),
    "polyexponential": (kd_sampling.get_sigmas_polyexponential, 1.0, False),
    "sgm_uniform": (schedules.sgm_uniform, None, True),
    "kl_optimal": (schedules.kl_optimal, None, False),
    "align_your_steps": (schedules.align_your_steps, None, False),
    "simple": (schedules.simple, None, True),
    "normal": (schedules.normal, None, True),
    "ddim": (schedules.ddim, None, True),
    "beta": (schedules.beta, None, False),
}
SCHEDULE_NAMES = {
    "Automatic": None,
    "Uniform": "uniform",
    "Karras": "karras",
    "Exponential": "exponential",
    "Polyexponential": "polyexponential",
    "SGM Uniform": "sgm_uniform",
    "KL Optimal": "kl_optimal",
    "Align Your Steps": "align_your_steps",
    "Simple": "simple",
    "Normal": "normal",
    "DDIM": "ddim",
    "Beta": "beta",
}


def get_sigmas(
    sampler: Sampler, schedule_label: str, steps: int, wrap: Any, opts: Opts, sdxl: bool = False
) -> torch.Tensor:
    """KDiffusionSampler.get_sigmas: the schedule type (Automatic: the sampler's own, else the model's uniform σ)
    over the model's σ range (0.1…10 with the old Karras setting) or the settings' σ range and ρ."""
    discard = sampler.discard_next_to_last_sigma or opts.always_discard_next_to_last_sigma
    n = steps + (1 if discard else 0)
    name = SCHEDULE_NAMES[schedule_label] or sampler.scheduler or "uniform"
    function, default_rho, needs_model = SCHEDULES[name]
    model_min, model_max = wrap.sigmas[0].item(), wrap.sigmas[-1].item()
    if function is None:
        sigmas = wrap.get_sigmas(n)
    else:
        kwargs: dict[str, Any] = dict(
            zip(
                ("sigma_min", "sigma_max"),
                (0.1, 10) if opts.use_old_karras_scheduler_sigmas else (model_min, model_max),
            )
        )
        if opts.sigma_min != 0 and opts.sigma_min != model_min:
            kwargs["sigma_min"] = opts.sigma_min
        if opts.sigma_max != 0 and opts.sigma_max != model_max:
            kwargs["sigma_max"] = opts.sigma_max
        if default_rho is not None and opts.rho != 0 and opts.rho != default_rho:
            kwargs["rho"] = opts.rho
        if needs_model:
            kwargs["denoiser"] = wrap
        if name == "align_your_steps":
            kwargs["sdxl"] = sdxl
        if name == "beta":
            kwargs.update(beta_alpha=opts.beta_dist_alpha, beta_beta=opts.beta_dist_beta)
        sigmas = function(n, **kwargs)
    return torch.cat([sigmas[:-2], sigmas[-1:]]) if discard else sigmas


def setup_img2img_steps(steps: int, denoising_strength: float, fix_steps: bool) -> tuple[int, int]:
    """(the steps the schedule is made for, t_enc: the steps the denoising strength keeps, less one)."""
    if fix_steps:
        return (int(steps / min(denoising_strength, 0.999)) if denoising_strength > 0 else 0), steps - 1
    return steps, int(min(denoising_strength, 0.999) * steps)


def restart_sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0, restart_list=None):
    """A1111's Restart (its signature, so A1111's option handling sees what it sees): the project's loop, drawing
    each restart's noise through k-diffusion's randn_like as A1111's does."""
    return extra_samplers.sample_restart(
        model,
        x,
        sigmas,
        extra_args,
        s_noise=s_noise,
        restart_list=restart_list,
        noise_sampler=lambda sigma, sigma_next: kd_sampling.torch.randn_like(x),
    )


def sample_lcm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """LCM: jump to the model's x0 each step, then noise it to the next σ with a fresh draw (none onto 0)."""
    draw = noise_sampler or kd_sampling.default_noise_sampler(x)
    ones = x.new_ones([x.shape[0]])
    for sigma, sigma_next in itertools.pairwise(sigmas):
        x = model(x, sigma * ones, **(extra_args or {}))
        if sigma_next > 0:
            x = x + sigma_next * draw(sigma, sigma_next)
    return x


def _k_function(sampler: Sampler) -> Callable:
    own = {"restart_sampler": restart_sampler, "sample_lcm": sample_lcm}
    return own.get(sampler.function) or getattr(kd_sampling, sampler.function)


@dataclass
class Pass:
    """One sampling pass: its sampler, the batch's conditioning, its start noise and noise source, the images'
    seeds; img2img's init latents (and the inpainting mask), or None for txt2img; the hires pass's steps (A1111
    hands them to sample_img2img, which then keeps them fixed)."""

    sampler: Sampler
    conds: BatchConds
    noise: torch.Tensor
    rng: ImageNoise
    seeds: list[int]
    init: torch.Tensor | None = None
    inpainting: Inpainting | None = None
    steps: int | None = None

    def img2img_steps(self, job: Job, opts: Opts) -> tuple[int, int]:
        return setup_img2img_steps(
            self.steps or job.steps, job.denoising_strength, opts.img2img_fix_steps or self.steps is not None
        )

    def guided(self, inner: Callable, job: Job, opts: Opts, total_steps: int) -> CFGDenoiser:
        return CFGDenoiser(inner, self.conds, job.cfg_scale, opts.guidance, total_steps, self.inpainting)


def _k_sample(run: Pass, ldm: LDMModel, job: Job, opts: Opts) -> torch.Tensor:
    """KDiffusionSampler.sample (no init) and sample_img2img, with Sampler.initialize's options."""
    sampler, noise, init = run.sampler, run.noise, run.init
    if sampler.kind == "lcm":
        wrap = LCMDenoiser(ldm)
    else:
        denoiser = kd_external.CompVisVDenoiser if ldm.parameterization == "v" else kd_external.CompVisDenoiser
        wrap = denoiser(ldm, quantize=opts.enable_quantization)
    function = _k_function(sampler)
    parameters = inspect.signature(function).parameters
    kwargs: dict[str, Any] = {}
    for name in EXTRA_PARAMS.get(sampler.function, ()):
        value = getattr(opts, name)
        kwargs[name] = (value or float("inf")) if name == "s_tmax" else value  # s_tmax 0: no limit
    if "eta" in parameters:
        kwargs["eta"] = opts.eta_ancestral
    if init is None:
        steps = run.steps or job.steps
        calls = sampler.total_steps(steps)
        sigmas = get_sigmas(sampler, job.scheduler, steps, wrap, opts, ldm.sdxl)
        x = noise * (torch.sqrt(1.0 + sigmas[0] ** 2.0) if opts.sgm_noise_multiplier else sigmas[0])
        if "n" in parameters:
            kwargs["n"] = steps
        if "sigma_min" in parameters:
            kwargs.update(sigma_min=wrap.sigmas[0].item(), sigma_max=wrap.sigmas[-1].item())
        if "sigmas" in parameters:
            kwargs["sigmas"] = sigmas
    else:
        steps, t_enc = run.img2img_steps(job, opts)
        calls = sampler.total_steps(t_enc + 1)
        sigmas = get_sigmas(sampler, job.scheduler, steps, wrap, opts, ldm.sdxl)
        tail = sigmas[steps - t_enc - 1 :]
        x = init + noise * tail[0]
        for name, value in (("sigma_min", tail[-2]), ("sigma_max", tail[0]), ("n", len(tail) - 1), ("sigmas", tail)):
            if name in parameters:
                kwargs[name] = value
    if sampler.solver_type:
        kwargs["solver_type"] = sampler.solver_type
    with a1111_patches(run.rng, opts.randn_source):
        if sampler.brownian_noise and not opts.no_dpmpp_sde_batch_determinism:
            kwargs["noise_sampler"] = kd_sampling.BrownianTreeNoiseSampler(
                x, sigmas[sigmas > 0].min(), sigmas.max(), seed=run.seeds
            )
        return function(run.guided(wrap, job, opts, calls), x, extra_args={}, disable=True, callback=None, **kwargs)


def _ddim_like(
    model: CFGDenoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    extra_args: dict,
    ldm: LDMModel,
    eta: float,
    cfgpp: bool,
) -> torch.Tensor:
    """DDIM and DDIM CFG++: from the last timestep down to the first, each step from ᾱ_t to the previous ᾱ,
    with a fresh draw every step (scaled by 0 at eta 0). CFG++ guides at cond_scale / 12.5 and steps along the
    uncond ε."""
    if cfgpp:
        model.cond_scale_multiplier, model.need_last_noise_uncond = CFGPP_MULTIPLIER, True
    alphas = ldm.alphas_cumprod
    ones = x.new_ones(x.shape[0])

    def value(number: float) -> torch.Tensor:
        return x.new_full((x.shape[0], 1, 1, 1), number)

    for index in range(len(timesteps) - 1, 0, -1):
        t, t_prev = int(timesteps[index]), int(timesteps[index - 1])
        eps = model(x, t * ones, **extra_args)
        a_t, a_prev = alphas[t], alphas[t_prev].double()
        spread = eta * math.sqrt(float((1 - a_prev) / (1 - a_t).double() * (1 - a_t.double() / a_prev)))
        x0 = (x - value(float(torch.sqrt(1 - a_t))) * eps) / value(float(a_t)).sqrt()
        direction = model.last_noise_uncond if cfgpp else eps
        x = (
            value(float(a_prev)).sqrt() * x0
            + (1.0 - value(float(a_prev)) - value(spread) ** 2).sqrt() * direction
            + value(spread) * kd_sampling.torch.randn_like(x)
        )
    return x


# Adams–Bashforth weights on the newest ε first, by how many earlier ε there are.
_PLMS_WEIGHTS = {1: (3 / 2, -1 / 2), 2: (23 / 12, -16 / 12, 5 / 12), 3: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def _plms(
    model: CFGDenoiser, x: torch.Tensor, timesteps: torch.Tensor, extra_args: dict, ldm: LDMModel
) -> torch.Tensor:
    """PLMS: the first step DDIM with ε averaged over both of its ends, the later ones DDIM with an
    Adams–Bashforth mix of the latest ε (up to four)."""
    alphas = ldm.alphas_cumprod
    ones = x.new_ones(x.shape[0])

    def step(x, eps, t, t_prev):
        a_t = x.new_full((x.shape[0], 1, 1, 1), float(alphas[t]))
        a_prev = x.new_full((x.shape[0], 1, 1, 1), float(alphas[t_prev]))
        x0 = (x - x.new_full(a_t.shape, float(torch.sqrt(1 - alphas[t]))) * eps) / a_t.sqrt()
        return a_prev.sqrt() * x0 + (1.0 - a_prev).sqrt() * eps

    history: list[torch.Tensor] = []
    for index in range(len(timesteps) - 1, 0, -1):
        t, t_prev = int(timesteps[index]), int(timesteps[max(index - 1, 0)])
        eps = model(x, t * ones, **extra_args)
        if not history:
            eps_next = model(step(x, eps, t, t_prev), t_prev * ones, **extra_args)
            mixed = (eps + eps_next) / 2
        else:
            weights = _PLMS_WEIGHTS[len(history)]
            mixed = weights[0] * eps
            for weight, earlier in zip(weights[1:], reversed(history)):
                mixed = mixed + weight * earlier
        x = step(x, mixed, t, t_prev)
        history = ([*history, eps])[-3:]
    return x


def _unipc(
    model: CFGDenoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    extra_args: dict,
    ldm: LDMModel,
    opts: Opts,
    is_img2img: bool,
) -> torch.Tensor:
    """A1111's UniPC: the project's loop, its model calls at (fractional) timestep τ answered by the oracle's
    CFG ε model at τ (the project asks in k-diffusion terms: x·√(σ²+1) at σ(τ), for x0)."""
    schedule = kd_external.DiscreteSchedule(ldm.sigmas(), quantize=False)

    def denoiser(x_k: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        scale = per_image((sigma**2 + 1) ** 0.5, x_k)
        eps = model(x_k / scale, schedule.sigma_to_t(sigma), **kwargs)
        return x_k - per_image(sigma, x_k) * eps

    return timestep_samplers.sample_unipc(
        denoiser,
        x,
        timesteps,
        extra_args,
        alphas_cumprod=ldm.alphas_cumprod,
        variant=opts.uni_pc_variant,
        skip_type=opts.uni_pc_skip_type,
        order=opts.uni_pc_order,
        lower_order_final=opts.uni_pc_lower_order_final,
        is_img2img=is_img2img,
    )


def a1111_timesteps(steps: int) -> torch.Tensor:
    """CompVisSampler.get_timesteps: range(0, 1000, 1000 // steps) + 1, clipped to 999."""
    return torch.clip(torch.arange(0, 1000, 1000 // steps) + 1, 0, 999)


def _timesteps_sample(run: Pass, ldm: LDMModel, job: Job, opts: Opts) -> torch.Tensor:
    """CompVisSampler.sample and sample_img2img: timesteps range(0, 1000, 1000 // steps) + 1; img2img noises the
    init latent to the first timestep left out and walks the ones below it."""
    if run.init is None:
        steps, t_enc, calls = run.steps or job.steps, 0, run.steps or job.steps
    else:
        steps, t_enc = run.img2img_steps(job, opts)
        calls = t_enc + 1
    timesteps = a1111_timesteps(steps + (1 if opts.always_discard_next_to_last_sigma else 0))
    x = run.noise
    if run.init is not None:
        alpha = ldm.alphas_cumprod[timesteps[t_enc]]
        x = run.init * torch.sqrt(alpha) + run.noise * torch.sqrt(1 - alpha)
        timesteps = timesteps[:t_enc]
    model = run.guided(TimestepsDenoiser(ldm), job, opts, calls)
    function = run.sampler.function
    with a1111_patches(run.rng, opts.randn_source):
        if function == "unipc":
            return _unipc(model, x, timesteps, {}, ldm, opts, run.init is not None)
        if function == "plms":
            return _plms(model, x, timesteps, {}, ldm)
        return _ddim_like(model, x, timesteps, {}, ldm, opts.eta_ddim, function == "ddim_cfgpp")


@torch.inference_mode()
def decode(ldm: LDMModel, latents: torch.Tensor) -> list[np.ndarray]:
    """decode_latent_batch, then the uint8 pixels A1111 saves: one image at a time through the VAE at
    z · (1 / scale factor), clamp((x + 1) / 2) · 255, truncated."""
    vae = ldm.model.vae
    images = []
    for latent in latents:
        pixels = vae.decode(1.0 / vae.config.scaling_factor * latent[None].to(vae.dtype)).sample[0].float()
        pixels = torch.clamp((pixels + 1.0) / 2.0, min=0.0, max=1.0)
        images.append((255.0 * np.moveaxis(pixels.cpu().numpy(), 0, 2)).astype(np.uint8))
    return images


@torch.inference_mode()
def encode_image(ldm: LDMModel, image: Image.Image, posterior_sample: bool = False) -> torch.Tensor:
    """An image's latent: pixels / 255 · 2 − 1 through the VAE's encoder, the posterior's mean (or, with
    `posterior_sample`, its sample: mean + std · a draw from torch's global generator), times the scale."""
    vae = ldm.model.vae
    pixels = torch.from_numpy(np.moveaxis(np.array(image.convert("RGB")).astype(np.float32) / 255.0, 2, 0))[None]
    posterior = vae.encode((pixels * 2 - 1).to(vae.dtype)).latent_dist
    latent = posterior.mean
    if posterior_sample:
        latent = latent + posterior.std * torch.randn(posterior.mean.shape).to(latent)
    return (latent * vae.config.scaling_factor).float()


def _conds(
    ldm: LDMModel, job: Job, opts: Opts, steps: int, hires_steps: int | None, size: tuple[int, int]
) -> BatchConds:
    encoder = ldm.model.prompt_encoder
    return BatchConds(
        lambda text: encoder.encode(text, job.clip_skip),
        [job.prompt] * job.batch_size,
        [job.negative_prompt] * job.batch_size,
        steps,
        hires_steps,
        opts.use_old_scheduling,
        ldm.sdxl,
        size,
    )


def _image_noise(shape: tuple[int, ...], seeds: list[int], subseeds: list[int], job: Job, opts: Opts) -> ImageNoise:
    return ImageNoise(
        shape,
        seeds,
        opts.randn_source,
        opts.eta_noise_seed_delta,
        subseeds,
        job.subseed_strength,
        (job.seed_resize_from_w, job.seed_resize_from_h),
    )


def _run(run: Pass, ldm: LDMModel, job: Job, opts: Opts) -> torch.Tensor:
    return (_timesteps_sample if run.sampler.kind == TIMESTEPS else _k_sample)(run, ldm, job, opts)


def _hires(
    ldm: LDMModel, job: Job, opts: Opts, latents: torch.Tensor, seeds: list[int], subseeds: list[int]
) -> torch.Tensor:
    """sample_hr_pass: the first pass upscaled to hr_scale, noised afresh at that size, sampled again."""
    width, height = int(job.width * job.hr_scale), int(job.height * job.hr_scale)
    if job.hr_upscaler in LATENT_UPSCALE_MODES:
        mode, antialias = LATENT_UPSCALE_MODES[job.hr_upscaler]
        init = torch.nn.functional.interpolate(
            latents, size=(height // LATENT_FACTOR, width // LATENT_FACTOR), mode=mode, antialias=antialias
        )
    else:  # "None" and "Lanczos" are one Lanczos resize of the first pass's saved pixels
        pictures = [Image.fromarray(pixels).resize((width, height), Image.LANCZOS) for pixels in decode(ldm, latents)]
        init = torch.cat([encode_image(ldm, picture, posterior_sample=True) for picture in pictures])
    sampler, steps = SAMPLERS[job.hr_sampler or job.sampler], job.hr_second_pass_steps or job.steps
    conds = _conds(
        ldm, job, opts, SAMPLERS[job.sampler].total_steps(job.steps), sampler.total_steps(steps), (height, width)
    )
    rng = _image_noise(tuple(init.shape[1:]), seeds, subseeds, job, opts)
    return _run(Pass(sampler, conds, rng.next(), rng, seeds, init, steps=steps), ldm, job, opts)


@torch.inference_mode()
def sample(
    ldm: LDMModel, job: Job, opts: Opts = Opts(), init: torch.Tensor | None = None, mask: Image.Image | None = None
) -> torch.Tensor:
    """The batch's latents as A1111 1.10 samples them, to be decoded: txt2img (and its hires pass with
    job.enable_hr), or img2img from `init` (one image's latent, repeated for the batch) with
    job.denoising_strength, kept where `mask` (255 = repaint) is 0 (its init image filled already, but for
    "original" content)."""
    with global_generator():
        ldm = ldm.scheduled(opts)
        count = job.batch_size
        seeds = [job.seed + (0 if job.subseed_strength else i) for i in range(count)]
        subseeds = [job.subseed + i for i in range(count)]
        sampler = SAMPLERS[job.sampler]
        conds = _conds(ldm, job, opts, sampler.total_steps(job.steps), None, (job.height, job.width))
        shape = (ldm.model.vae.config.latent_channels, job.height // LATENT_FACTOR, job.width // LATENT_FACTOR)
        rng = _image_noise(shape, seeds, subseeds, job, opts)
        batch_init = None if init is None else init.repeat(count, 1, 1, 1)
        inpainting = None
        if mask is not None:
            keep = latent_keep(mask, shape)
            if job.inpainting_fill == 2:  # create_random_tensors of the seeds: a fresh ImageRNG's first noise
                batch_init = batch_init * keep + ImageNoise(shape, seeds, opts.randn_source, 0).next() * (1 - keep)
            elif job.inpainting_fill == 3:
                batch_init = batch_init * keep
            inpainting = Inpainting(batch_init, keep, before_denoising=sampler.kind == TIMESTEPS)
        latents = _run(Pass(sampler, conds, rng.next(), rng, seeds, batch_init, inpainting), ldm, job, opts)
        if inpainting is not None:
            latents = inpainting.blend(latents)
        if job.enable_hr and init is None:
            latents = _hires(ldm, job, opts, latents, seeds, subseeds)
        return latents
