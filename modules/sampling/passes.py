"""One sampling pass as A1111 1.10 runs it: the schedule (σ for k-diffusion samplers, integer timesteps for
DDIM, PLMS and UniPC) from the sampler, the schedule type and A1111's settings, with the infotext keys they
add; the latent the pass starts from; and the sampler run with the model, its noise and its options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from modules.options import OPTIONS
from modules.prompting.step_conditioning import PAD_EMPTY, PAD_LAST
from modules.sampling import noise as noise_sources
from modules.sampling import registry, schedules, timestep_samplers
from modules.sampling.denoiser import V_PREDICTION, Denoiser, rescale_zero_terminal_snr
from modules.sampling.extra_samplers import LCMDenoiser
from modules.sampling.guidance import CFGDenoiser, SamplingStopped
from modules.sampling.registry import TIMESTEPS, SamplerInfo

ZERO_TERMINAL_SNR = "Zero Terminal SNR"
UNUSED_SCHEDULE = "Schedule type unused"  # infotext key: the chosen schedule type, which the sampler ignores
CHURN = ("s_churn", "s_tmin", "s_tmax", "s_noise")
# A1111 gives the sigma settings only to these samplers (sampler_extra_params); s_tmax 0 means no limit.
_SIGMA_OPTIONS = {k: CHURN for k in ("sample_euler", "sample_heun", "sample_dpm_2")} | {
    k: ("s_noise",)
    for k in (
        "sample_dpm_fast",
        "sample_dpm_2_ancestral",
        "sample_dpmpp_2s_ancestral",
        "sample_dpmpp_sde",
        "sample_dpmpp_2m_sde",
        "sample_dpmpp_3m_sde",
    )
}
_SIGMA_DEFAULTS = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": float("inf"), "s_noise": 1.0}
_SIGMA_INFOTEXT = {"s_churn": "Sigma churn", "s_tmin": "Sigma tmin", "s_tmax": "Sigma tmax", "s_noise": "Sigma noise"}


def _setting(key: str) -> Any:
    return field(default=OPTIONS[key].default)


@dataclass(frozen=True)
class SamplingSettings:
    """A1111's sampling settings a job reads; each field is the setting of the same name."""

    eta_ancestral: float = _setting("eta_ancestral")
    eta_ddim: float = _setting("eta_ddim")
    s_churn: float = _setting("s_churn")
    s_tmin: float = _setting("s_tmin")
    s_tmax: float = _setting("s_tmax")
    s_noise: float = _setting("s_noise")
    sigma_min: float = _setting("sigma_min")
    sigma_max: float = _setting("sigma_max")
    rho: float = _setting("rho")
    k_sched_type: str = _setting("k_sched_type")
    always_discard_next_to_last_sigma: bool = _setting("always_discard_next_to_last_sigma")
    sgm_noise_multiplier: bool = _setting("sgm_noise_multiplier")
    uni_pc_variant: str = _setting("uni_pc_variant")
    uni_pc_skip_type: str = _setting("uni_pc_skip_type")
    uni_pc_order: int = _setting("uni_pc_order")
    uni_pc_lower_order_final: bool = _setting("uni_pc_lower_order_final")
    use_old_karras_scheduler_sigmas: bool = _setting("use_old_karras_scheduler_sigmas")
    no_dpmpp_sde_batch_determinism: bool = _setting("no_dpmpp_sde_batch_determinism")
    enable_quantization: bool = _setting("enable_quantization")
    sd_noise_schedule: str = _setting("sd_noise_schedule")
    beta_dist_alpha: float = _setting("beta_dist_alpha")
    beta_dist_beta: float = _setting("beta_dist_beta")
    randn_source: str = _setting("randn_source")
    eta_noise_seed_delta: int = _setting("eta_noise_seed_delta")
    s_min_uncond: float = _setting("s_min_uncond")
    s_min_uncond_all: bool = _setting("s_min_uncond_all")
    skip_early_cond: float = _setting("skip_early_cond")
    pad_cond_uncond: bool = _setting("pad_cond_uncond")
    pad_cond_uncond_v0: bool = _setting("pad_cond_uncond_v0")
    initial_noise_multiplier: float = _setting("initial_noise_multiplier")
    img2img_fix_steps: bool = _setting("img2img_fix_steps")
    use_old_scheduling: bool = _setting("use_old_scheduling")

    @property
    def cond_padding(self) -> str:
        """How cond and uncond of different lengths are made one length ("" = they are not)."""
        return PAD_LAST if self.pad_cond_uncond_v0 else PAD_EMPTY if self.pad_cond_uncond else ""

    @classmethod
    def from_options(cls, opts: Any) -> SamplingSettings:
        """The settings in force now (a job's override_settings included)."""
        return cls(**{f.name: getattr(opts, f.name) for f in fields(cls)})


@dataclass
class PassPlan:
    """What a pass runs: `schedule` is the σ it walks (k-diffusion; from its first step's σ down to 0) or the
    timesteps it walks (DDIM, PLMS, UniPC), `full` the whole schedule it was cut from; `steps` the sampling
    steps it makes, `calls` A1111's count of the model calls it expects (the refiner switches by their share)."""

    sampler: SamplerInfo
    denoiser: Denoiser
    schedule: torch.Tensor
    full: torch.Tensor
    steps: int
    calls: int
    img2img: bool = False
    noise_timestep: int = 0  # timestep samplers' img2img: the training step the init latent is noised to
    infotext: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def pass_denoiser(
    sampler: SamplerInfo, model_denoiser: Denoiser, settings: SamplingSettings, infotext: dict[str, Any]
) -> Denoiser:
    """The noise levels a pass runs with: the model's, with the Zero Terminal SNR noise schedule and quantized
    timesteps when the settings ask for them, or A1111's LCM levels for LCM."""
    alphas = model_denoiser.alphas_cumprod
    if settings.sd_noise_schedule == ZERO_TERMINAL_SNR:
        alphas = rescale_zero_terminal_snr(alphas)
        infotext["Noise Schedule"] = ZERO_TERMINAL_SNR
    if sampler.lcm:
        return LCMDenoiser(alphas)
    # A1111's timestep samplers hand the UNet their timesteps as they are, never quantized
    return Denoiser(alphas, model_denoiser.prediction, settings.enable_quantization and sampler.kind != TIMESTEPS)


def plan_pass(
    sampler_name: str,
    schedule_name: str | None,
    steps: int,
    model_denoiser: Denoiser,
    settings: SamplingSettings,
    *,
    denoising_strength: float | None = None,
    fixed_steps: bool = False,
    hires: bool = False,
    first_schedule: str | None = None,
    sdxl_steps_table: bool = False,
) -> PassPlan:
    """The plan of one pass. `denoising_strength` makes it an img2img pass (A1111's setup_img2img_steps; with
    `fixed_steps`, as hires fix runs, exactly `steps` steps of a longer schedule). For a hires pass the schedule
    type goes to the infotext as "Hires schedule type" when it differs from the first pass's
    (`first_schedule`); `sdxl_steps_table` picks Align Your Steps' SDXL table."""
    sampler, chosen = registry.lookup(sampler_name, schedule_name)
    infotext: dict[str, Any] = {}
    notes = []
    denoiser = pass_denoiser(sampler, model_denoiser, settings, infotext)
    img2img = denoising_strength is not None
    total, t_enc = (
        timestep_samplers.img2img_steps(steps, denoising_strength, fix_steps=fixed_steps)
        if denoising_strength is not None
        else (steps, steps - 1)
    )
    discard = sampler.discard_next_to_last_sigma or settings.always_discard_next_to_last_sigma
    if settings.always_discard_next_to_last_sigma and not sampler.discard_next_to_last_sigma:
        infotext["Discard penultimate sigma"] = True
    if sampler.kind == TIMESTEPS:
        if chosen is not None:  # a note, never silently dropped; the infotext keeps the user's choice too
            notes.append(
                f"Schedule type {chosen.label} does not apply to {sampler.label}, which walks its own timesteps"
            )
            infotext[UNUSED_SCHEDULE] = chosen.label
        full = timestep_samplers.a1111_timesteps(total, discard_next_to_last_sigma=discard)
        noise_timestep = int(full[t_enc]) if img2img else 0
        schedule = full[:t_enc] if img2img else full
        walks_last = sampler.function is timestep_samplers.sample_unipc  # the others never step from the last
        run_steps = len(schedule) - (0 if walks_last else 1)
        return PassPlan(
            sampler,
            denoiser,
            schedule,
            full,
            run_steps,
            sampler.total_steps(t_enc + 1),
            img2img,
            noise_timestep,
            infotext,
            notes,
        )
    full = _sigmas(
        sampler,
        chosen,
        total + (1 if discard else 0),
        denoiser,
        settings,
        infotext,
        hires,
        first_schedule,
        sdxl_steps_table,
    )
    if discard:
        full = torch.cat([full[:-2], full[-1:]])
    schedule = full[total - t_enc - 1 :] if img2img else full
    return PassPlan(
        sampler,
        denoiser,
        schedule,
        full,
        len(schedule) - 1,
        sampler.total_steps(t_enc + 1),
        img2img,
        infotext=infotext,
        notes=notes,
    )


def _sigmas(
    sampler: SamplerInfo,
    chosen: schedules.Schedule | None,
    n: int,
    denoiser: Denoiser,
    settings: SamplingSettings,
    infotext: dict[str, Any],
    hires: bool,
    first_schedule: str | None,
    sdxl_steps_table: bool,
) -> torch.Tensor:
    """A1111's get_sigmas: the schedule type (Automatic: the sampler's own, or the model's uniform σ) between the
    model's σ range or the settings' overrides, noted in the infotext as A1111 notes it."""
    if chosen is None:
        default = settings.k_sched_type if settings.k_sched_type != registry.AUTOMATIC else sampler.default_schedule
        chosen = registry.find_schedule(default)
    if chosen is None:
        return denoiser.uniform_sigmas(n)
    if not hires:
        infotext["Schedule type"] = chosen.label
    elif chosen.label != first_schedule:
        infotext["Hires schedule type"] = chosen.label
    model_min, model_max = denoiser.sigma_min, denoiser.sigma_max
    sigma_min, sigma_max = (0.1, 10.0) if settings.use_old_karras_scheduler_sigmas else (model_min, model_max)
    if settings.sigma_min != 0 and settings.sigma_min != model_min:
        sigma_min = infotext["Schedule min sigma"] = settings.sigma_min
    if settings.sigma_max != 0 and settings.sigma_max != model_max:
        sigma_max = infotext["Schedule max sigma"] = settings.sigma_max
    rho = None
    if chosen.default_rho is not None and settings.rho != 0 and settings.rho != chosen.default_rho:
        rho = infotext["Schedule rho"] = settings.rho
    if chosen.name == "beta":
        infotext["Beta schedule alpha"], infotext["Beta schedule beta"] = (
            settings.beta_dist_alpha,
            settings.beta_dist_beta,
        )
    return schedules.compute_sigmas(
        chosen,
        n,
        sigma_min,
        sigma_max,
        denoiser,
        rho,
        sdxl=sdxl_steps_table,
        beta_alpha=settings.beta_dist_alpha,
        beta_beta=settings.beta_dist_beta,
    )


def start_latent(
    plan: PassPlan, noise: torch.Tensor, settings: SamplingSettings, init: torch.Tensor | None = None
) -> torch.Tensor:
    """The latent the sampler starts from. txt2img: noise·σ₀ (·√(1+σ₀²) with sgm_noise_multiplier), or the
    noise itself for timestep samplers; img2img: the init latent noised to the first step's level."""
    if plan.sampler.kind == TIMESTEPS:
        if init is None:
            return noise
        return timestep_samplers.noised_init(init, noise, plan.denoiser.alphas_cumprod, plan.noise_timestep)
    first = plan.schedule[0].to(noise.device)
    if init is not None:
        return init + noise * first
    if settings.sgm_noise_multiplier:
        plan.infotext["SGM noise multiplier"] = True
        return noise * torch.sqrt(1.0 + first**2.0)
    return noise * first


def run_pass(
    plan: PassPlan,
    model: CFGDenoiser,
    x: torch.Tensor,
    rng: noise_sources.ImageRNG,
    seeds: list[int],
    settings: SamplingSettings,
    eta: float | None,
    callback: Callable[[dict], None],
) -> torch.Tensor:
    """Sample from `x` with `model`; stopped by an interrupt or skip, the last prediction of x0 (as A1111)."""
    sampler = plan.sampler
    kwargs = dict(sampler.fixed) | _options(plan, settings, eta)
    if sampler.takes("noise_sampler"):
        # A1111 spans its trees over the whole schedule's σ; without batch determinism it leaves the tree to
        # k-diffusion, which spans the σ the sampler walks (an img2img pass's tail)
        determinism = not settings.no_dpmpp_sde_batch_determinism
        kwargs["noise_sampler"] = (
            noise_sources.brownian_noise(
                x,
                plan.full if determinism else plan.schedule,
                seeds,
                source=settings.randn_source,
                device=x.device,
                batch_determinism=determinism,
            )
            if sampler.brownian_noise
            else rng.noise_sampler
        )
    schedule = plan.schedule.to(x.device)
    if sampler.takes("sigma_min"):  # DPM fast and adaptive: a σ range instead of a schedule
        if plan.img2img:
            kwargs.update(sigma_min=schedule[-2], sigma_max=schedule[0])
        else:
            kwargs.update(sigma_min=plan.denoiser.sigma_min, sigma_max=plan.denoiser.sigma_max)
        if sampler.takes("n"):
            kwargs["n"] = plan.steps
        positional: tuple[torch.Tensor, ...] = ()
    else:
        positional = (schedule,)
    try:
        return sampler.function(model, x, *positional, callback=callback, **kwargs)
    except SamplingStopped:
        return model.last_prediction if model.last_prediction is not None else x


def _options(plan: PassPlan, settings: SamplingSettings, eta: float | None) -> dict[str, Any]:
    """The sampler's options from the settings, noting in the infotext those A1111 notes."""
    sampler, options = plan.sampler, {}
    if sampler.takes("eta"):
        options["eta"] = eta if eta is not None else getattr(settings, sampler.eta_setting)
        default = 0.0 if sampler.kind == TIMESTEPS else 1.0
        if options["eta"] != default:
            plan.infotext["Eta DDIM" if sampler.kind == TIMESTEPS else "Eta"] = options["eta"]
    for name in _SIGMA_OPTIONS.get(sampler.function.__name__, ()):
        value = getattr(settings, name) or (_SIGMA_DEFAULTS[name] if name == "s_tmax" else 0.0)
        if value != _SIGMA_DEFAULTS[name]:
            options[name] = value
            plan.infotext[_SIGMA_INFOTEXT[name]] = value
    if sampler.kind == TIMESTEPS:
        options["alphas_cumprod"] = plan.denoiser.alphas_cumprod
        if sampler.takes("variant"):
            options.update(
                variant=settings.uni_pc_variant,
                skip_type=settings.uni_pc_skip_type,
                order=settings.uni_pc_order,
                lower_order_final=settings.uni_pc_lower_order_final,
                is_img2img=plan.img2img,
                v_prediction=plan.denoiser.prediction == V_PREDICTION,
            )
    return options


def uses_ensd(plan: PassPlan, settings: SamplingSettings, eta: float | None) -> bool:
    """Whether A1111 writes ENSD for this pass: set, and a sampler that draws its noise with eta above 0."""
    sampler = plan.sampler
    value = eta if eta is not None else getattr(settings, sampler.eta_setting)
    return settings.eta_noise_seed_delta != 0 and value != 0 and sampler.uses_ensd
