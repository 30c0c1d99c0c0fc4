"""Registry mapping A1111 sampler and schedule names to fresh diffusers schedulers.

Each sampler is one diffusers scheduler class plus a few config overrides; each
schedule type is a set of config flags (``use_karras_sigmas`` ...). A scheduler is
built from the model's own scheduler config, so the betas, ``prediction_type`` and
``steps_offset`` always come from the model, as does ``timestep_spacing`` except
under SGM Uniform ("trailing"). Uniform just turns the sigma flags off.

A schedule is applied only through the flags the scheduler class uses and is
otherwise ignored, as A1111 ignores the schedule for its timestep samplers. With
diffusers 0.42, Karras/Exponential/Beta have no effect on Euler a, DDIM, PLMS and
LCM, and SGM Uniform has none on DPM++ 2S a and LCM; ``SamplerInfo.schedules``
lists what each sampler honours.

Not available because no diffusers scheduler implements them: DPM fast,
DPM adaptive, Restart and DDIM CFG++.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import diffusers
from diffusers import SchedulerMixin

_SIGMA_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


def _sigma_flags(enabled: str | None = None) -> dict[str, bool]:
    """All sigma-spacing flags off, except ``enabled``."""
    return {flag: flag == enabled for flag in _SIGMA_FLAGS}


@dataclass(frozen=True)
class Schedule:
    """A schedule type: API ``name``, UI ``label`` and the scheduler config it sets."""

    name: str
    label: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None  # config key a scheduler class needs for this schedule to take effect


SCHEDULES: tuple[Schedule, ...] = (
    Schedule("automatic", "Automatic"),
    Schedule("uniform", "Uniform", _sigma_flags()),
    Schedule("karras", "Karras", _sigma_flags("use_karras_sigmas"), "use_karras_sigmas"),
    Schedule("exponential", "Exponential", _sigma_flags("use_exponential_sigmas"), "use_exponential_sigmas"),
    Schedule("sgm_uniform", "SGM Uniform", {**_sigma_flags(), "timestep_spacing": "trailing"}, "timestep_spacing"),
    Schedule("beta", "Beta", _sigma_flags("use_beta_sigmas"), "use_beta_sigmas"),
)
"""Schedule types in UI order; "Automatic" means the sampler's own default."""

SCHEDULE_LABELS: list[str] = [s.label for s in SCHEDULES]


@dataclass(frozen=True)
class SamplerInfo:
    """One A1111 sampler and how to build it with diffusers.

    ``stochastic``: the sampler draws fresh random noise while sampling, so the
    step generator (and A1111's ENSD) matters. DDIM only does so with ``eta > 0``.
    """

    label: str
    class_name: str
    aliases: tuple[str, ...] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)
    default_schedule: str = "uniform"
    stochastic: bool = False
    ignored_keys: tuple[str, ...] = ()  # config keys the class accepts but never reads

    @property
    def scheduler_class(self) -> type[SchedulerMixin]:
        """The diffusers scheduler class."""
        return getattr(diffusers, self.class_name)

    @property
    def config_keys(self) -> frozenset[str]:
        """Config keys the scheduler class accepts and uses."""
        return frozenset(inspect.signature(self.scheduler_class.__init__).parameters) - set(self.ignored_keys)

    @property
    def _step_params(self) -> Mapping[str, inspect.Parameter]:
        return inspect.signature(self.scheduler_class.step).parameters

    @property
    def accepts_generator(self) -> bool:
        """Whether ``step()`` takes a ``generator`` for its noise."""
        return "generator" in self._step_params

    @property
    def accepts_eta(self) -> bool:
        """Whether ``step()`` takes ``eta``."""
        return "eta" in self._step_params

    @property
    def accepts_churn(self) -> bool:
        """Whether ``step()`` takes the sigma churn parameters (see ``SigmaChurn``)."""
        return "s_churn" in self._step_params

    @property
    def brownian_noise(self) -> bool:
        """Whether noise comes from a Brownian tree seeded via the config (see ``create_scheduler``)."""
        return "noise_sampler_seed" in self.config_keys

    @property
    def schedules(self) -> list[str]:
        """Labels of the schedules that change this sampler's behaviour."""
        keys = self.config_keys
        return [s.label for s in SCHEDULES if s.key is None or s.key in keys]


@dataclass(frozen=True)
class SigmaChurn:
    """A1111's sampler parameters sigma churn, tmin, tmax (0: no upper bound) and noise: noise, scaled by
    `noise`, that a step whose sigma lies in [tmin, tmax] adds before it runs, more with more `churn`.
    Here only Euler takes them (A1111 also gives them to Heun and DPM2); other samplers ignore them."""

    churn: float = 0.0
    tmin: float = 0.0
    tmax: float = 0.0
    noise: float = 1.0

    def step_arguments(self) -> dict[str, float]:
        return {"s_churn": self.churn, "s_tmin": self.tmin, "s_tmax": self.tmax or math.inf, "s_noise": self.noise}

    def infotext(self) -> dict[str, str]:
        """A1111's infotext keys for the values that differ from the defaults."""
        default = SigmaChurn()
        keys = {"churn": "Sigma churn", "tmin": "Sigma tmin", "tmax": "Sigma tmax", "noise": "Sigma noise"}
        return {key: f"{getattr(self, name):g}" for name, key in keys.items()
                if getattr(self, name) != getattr(default, name)}


def _dpm(algorithm: str, order: int = 2, solver_type: str = "midpoint") -> dict[str, Any]:
    return {"algorithm_type": algorithm, "solver_order": order, "solver_type": solver_type}


SAMPLERS: tuple[SamplerInfo, ...] = (
    SamplerInfo("Euler a", "EulerAncestralDiscreteScheduler", ("k_euler_a", "k_euler_ancestral"), stochastic=True),
    SamplerInfo("Euler", "EulerDiscreteScheduler", ("k_euler",)),
    SamplerInfo("LMS", "LMSDiscreteScheduler", ("k_lms",)),
    SamplerInfo("Heun", "HeunDiscreteScheduler", ("k_heun",)),
    SamplerInfo("DPM2", "KDPM2DiscreteScheduler", ("k_dpm_2",), default_schedule="karras"),
    SamplerInfo("DPM2 a", "KDPM2AncestralDiscreteScheduler", ("k_dpm_2_a",), default_schedule="karras",
                stochastic=True),
    # Closest diffusers match: single-step 2nd-order DPM-Solver++ with SDE noise (one model call per step).
    SamplerInfo("DPM++ 2S a", "DPMSolverSinglestepScheduler", ("k_dpmpp_2s_a",),
                {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}, "karras", True),
    SamplerInfo("DPM++ 2M", "DPMSolverMultistepScheduler", ("k_dpmpp_2m",), _dpm("dpmsolver++"), "karras"),
    SamplerInfo("DPM++ SDE", "DPMSolverSDEScheduler", ("k_dpmpp_sde",), default_schedule="karras", stochastic=True),
    SamplerInfo("DPM++ 2M SDE", "DPMSolverMultistepScheduler", ("k_dpmpp_2m_sde",),
                _dpm("sde-dpmsolver++"), "exponential", True),
    SamplerInfo("DPM++ 2M SDE Heun", "DPMSolverMultistepScheduler", ("k_dpmpp_2m_sde_heun",),
                _dpm("sde-dpmsolver++", solver_type="heun"), "exponential", True),
    SamplerInfo("DPM++ 3M SDE", "DPMSolverMultistepScheduler", ("k_dpmpp_3m_sde",),
                _dpm("sde-dpmsolver++", order=3), "exponential", True),
    # Latent-space SD must never be clipped to [-1, 1]; DDIM clips by default.
    SamplerInfo("DDIM", "DDIMScheduler", ("ddim",), {"clip_sample": False}),
    SamplerInfo("PLMS", "PNDMScheduler", ("plms",), {"skip_prk_steps": True}),
    SamplerInfo("UniPC", "UniPCMultistepScheduler", ("unipc",)),
    SamplerInfo("LCM", "LCMScheduler", ("k_lcm",), stochastic=True, ignored_keys=("timestep_spacing",)),
)
"""Samplers in UI order."""

SAMPLER_NAMES: list[str] = [s.label for s in SAMPLERS]

_SAMPLER_KEYS: dict[str, SamplerInfo] = {
    key.casefold(): s for s in SAMPLERS for key in (s.label, *s.aliases)
}
_SCHEDULE_KEYS: dict[str, Schedule] = {
    key: s for s in SCHEDULES for key in (s.name, s.label.casefold(), s.label.casefold().replace(" ", ""))
}
# Suffixes of legacy combined names: "DPM++ 2M Karras", "k_dpmpp_2m_ka", "k_dpmpp_2m_sde_exp".
_LEGACY_SUFFIXES: tuple[tuple[str, Schedule], ...] = tuple(
    (" " + s.label.casefold(), s) for s in SCHEDULES[1:]
) + (("_ka", _SCHEDULE_KEYS["karras"]), ("_exp", _SCHEDULE_KEYS["exponential"]))


def _lookup_schedule(schedule: str | None) -> Schedule:
    if not schedule:
        return SCHEDULES[0]
    found = _SCHEDULE_KEYS.get(schedule.strip().casefold())
    if found is None:
        valid = ", ".join(f"{s.label} ({s.name})" for s in SCHEDULES)
        raise ValueError(f"Unknown schedule type {schedule!r}. Valid schedule types: {valid}")
    return found


def _lookup(sampler_name: str, schedule: str | None) -> tuple[SamplerInfo, Schedule]:
    explicit = _lookup_schedule(schedule)
    key = " ".join(sampler_name.split()).casefold()
    if key in _SAMPLER_KEYS:
        return _SAMPLER_KEYS[key], explicit
    for suffix, legacy in _LEGACY_SUFFIXES:
        base = key.removesuffix(suffix)
        if base != key and base in _SAMPLER_KEYS:
            return _SAMPLER_KEYS[base], legacy
    raise ValueError(f"Unknown sampler {sampler_name!r}. Valid samplers: {', '.join(SAMPLER_NAMES)}")


def resolve(sampler_name: str, schedule: str | None = None) -> tuple[str, str]:
    """Canonical ``(sampler label, schedule label)`` for any accepted spelling.

    Accepts labels and A1111 aliases case-insensitively, and legacy combined names
    such as "DPM++ 2M Karras", whose schedule suffix wins over ``schedule`` as in
    A1111. ``None`` or "" means "Automatic". Raises ``ValueError`` listing the
    valid names on unknown input.
    """
    sampler, sched = _lookup(sampler_name, schedule)
    return sampler.label, sched.label


def sampler_info(name: str) -> SamplerInfo:
    """The ``SamplerInfo`` for a sampler label, alias or legacy combined name."""
    return _lookup(name, None)[0]


def create_scheduler(
    sampler_name: str,
    schedule: str | None,
    base_config: Mapping[str, Any],
    *,
    noise_seed: int | list[int] | None = None,
) -> SchedulerMixin:
    """A fresh diffusers scheduler for a sampler and schedule type.

    ``base_config`` is the model's scheduler config (e.g. ``pipe.scheduler.config``);
    only the sampler's overrides and the schedule's flags are applied on top, and
    only those the class accepts. "Automatic" applies the sampler's default schedule,
    or nothing when that default is Uniform, so e.g. Euler a/Automatic equals
    ``EulerAncestralDiscreteScheduler.from_config(base_config)``.
    ``noise_seed`` (an int or one per batch item) seeds the Brownian noise of
    samplers with ``brownian_noise`` (DPM++ SDE); others ignore it.
    """
    sampler, sched = _lookup(sampler_name, schedule)
    if sched.name == "automatic" and sampler.default_schedule != "uniform":
        sched = _SCHEDULE_KEYS[sampler.default_schedule]
    keys = sampler.config_keys
    overrides = {k: v for k, v in {**sched.overrides, **sampler.overrides}.items() if k in keys}
    if noise_seed is not None and sampler.brownian_noise:
        overrides["noise_sampler_seed"] = noise_seed
    return sampler.scheduler_class.from_config(dict(base_config), **overrides)
