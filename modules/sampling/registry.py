"""Every A1111 1.10 sampler by name, with the options A1111 gives it, and name resolution for samplers and
schedule types (labels, aliases, A1111's older combined names such as "DPM++ 2M Karras")."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modules.sampling import extra_samplers, k_samplers, timestep_samplers
from modules.sampling.schedules import SCHEDULES, Schedule

KDIFFUSION = "k-diffusion"  # walks σ from a schedule type
TIMESTEPS = "timesteps"  # walks A1111's own integer timesteps; schedule types don't apply
AUTOMATIC = "Automatic"


@dataclass(frozen=True)
class SamplerInfo:
    """One sampler as A1111 declares it: its function, aliases and options. `default_schedule` is what
    Automatic means for it (None: the model's own, Uniform); `second_order` samplers make two model calls a
    step (A1111 counts prompt-editing steps in calls); `uses_ensd`: its extra noise makes ENSD matter;
    `brownian_noise`: its noise comes from a Brownian tree; `fixed` are keyword arguments it always gets."""

    label: str
    function: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    kind: str = KDIFFUSION
    default_schedule: str | None = None
    second_order: bool = False
    uses_ensd: bool = False
    brownian_noise: bool = False
    discard_next_to_last_sigma: bool = False
    fixed: Mapping[str, Any] = field(default_factory=dict)
    lcm: bool = False  # runs with A1111's LCM noise levels (extra_samplers.LCMDenoiser)

    def total_steps(self, steps: int) -> int:
        """A1111's count of model calls for `steps`, against which prompt editing and the refiner are timed."""
        return steps * 2 if self.second_order else steps

    def takes(self, argument: str) -> bool:
        """Whether its function has a keyword argument of that name."""
        return argument in inspect.signature(self.function).parameters

    @property
    def eta_setting(self) -> str:
        """The setting its eta comes from when a job gives none (A1111's eta_option_field)."""
        return "eta_ddim" if self.kind == TIMESTEPS else "eta_ancestral"


_K = k_samplers
SAMPLERS: tuple[SamplerInfo, ...] = (
    SamplerInfo("DPM++ 2M", _K.sample_dpmpp_2m, ("k_dpmpp_2m",), default_schedule="karras"),
    SamplerInfo(
        "DPM++ SDE",
        _K.sample_dpmpp_sde,
        ("k_dpmpp_sde",),
        default_schedule="karras",
        second_order=True,
        brownian_noise=True,
    ),
    SamplerInfo(
        "DPM++ 2M SDE", _K.sample_dpmpp_2m_sde, ("k_dpmpp_2m_sde",), default_schedule="exponential", brownian_noise=True
    ),
    SamplerInfo(
        "DPM++ 2M SDE Heun",
        _K.sample_dpmpp_2m_sde,
        ("k_dpmpp_2m_sde_heun",),
        default_schedule="exponential",
        brownian_noise=True,
        fixed={"solver_type": "heun"},
    ),
    SamplerInfo(
        "DPM++ 2S a",
        _K.sample_dpmpp_2s_ancestral,
        ("k_dpmpp_2s_a",),
        default_schedule="karras",
        second_order=True,
        uses_ensd=True,
    ),
    SamplerInfo(
        "DPM++ 3M SDE",
        _K.sample_dpmpp_3m_sde,
        ("k_dpmpp_3m_sde",),
        default_schedule="exponential",
        discard_next_to_last_sigma=True,
        brownian_noise=True,
    ),
    SamplerInfo("Euler a", _K.sample_euler_ancestral, ("k_euler_a", "k_euler_ancestral"), uses_ensd=True),
    SamplerInfo("Euler", _K.sample_euler, ("k_euler",)),
    SamplerInfo("LMS", _K.sample_lms, ("k_lms",)),
    SamplerInfo("Heun", _K.sample_heun, ("k_heun",), second_order=True),
    SamplerInfo(
        "DPM2",
        _K.sample_dpm_2,
        ("k_dpm_2",),
        default_schedule="karras",
        second_order=True,
        discard_next_to_last_sigma=True,
    ),
    SamplerInfo(
        "DPM2 a",
        _K.sample_dpm_2_ancestral,
        ("k_dpm_2_a",),
        default_schedule="karras",
        second_order=True,
        uses_ensd=True,
        discard_next_to_last_sigma=True,
    ),
    SamplerInfo("DPM fast", _K.sample_dpm_fast, ("k_dpm_fast",), uses_ensd=True),
    SamplerInfo("DPM adaptive", _K.sample_dpm_adaptive, ("k_dpm_ad",), uses_ensd=True),
    SamplerInfo("Restart", extra_samplers.sample_restart, ("restart",), default_schedule="karras", second_order=True),
    SamplerInfo("DDIM", timestep_samplers.sample_ddim, ("ddim",), kind=TIMESTEPS),
    SamplerInfo("DDIM CFG++", timestep_samplers.sample_ddim_cfgpp, ("ddim_cfgpp",), kind=TIMESTEPS),
    SamplerInfo("PLMS", timestep_samplers.sample_plms, ("plms",), kind=TIMESTEPS),
    SamplerInfo("UniPC", timestep_samplers.sample_unipc, ("unipc",), kind=TIMESTEPS),
    SamplerInfo("LCM", extra_samplers.sample_lcm, ("k_lcm",), lcm=True),
)
"""Samplers in A1111 1.10's order."""

SAMPLER_NAMES: list[str] = [s.label for s in SAMPLERS]
SCHEDULE_LABELS: list[str] = [AUTOMATIC, *(s.label for s in SCHEDULES)]
# A1111's older settings name schedules in lower case (k_sched_type: "karras").
_SAMPLER_KEYS = {key.casefold(): s for s in SAMPLERS for key in (s.label, *s.aliases)}
_SCHEDULE_KEYS = {key.casefold().replace(" ", ""): s for s in SCHEDULES for key in (s.name, s.label, *s.aliases)}
# Suffixes of older combined names: "DPM++ 2M Karras", "k_dpmpp_2m_ka", "k_dpmpp_2m_sde_exp".
_LEGACY_SUFFIXES = (
    *((" " + s.label.casefold(), s) for s in SCHEDULES),
    ("_ka", _SCHEDULE_KEYS["karras"]),
    ("_exp", _SCHEDULE_KEYS["exponential"]),
)


def find_schedule(name: str | None) -> Schedule | None:
    """The schedule type a name, label or alias means in any case; None for Automatic (or "" / None).
    ValueError listing the schedule types for an unknown name."""
    if not name or name.strip().casefold() == AUTOMATIC.casefold():
        return None
    found = _SCHEDULE_KEYS.get(name.strip().casefold().replace(" ", ""))
    if found is None:
        valid = ", ".join([AUTOMATIC, *(f"{s.label} ({s.name})" for s in SCHEDULES)])
        raise ValueError(f"Unknown schedule type {name!r}. Valid schedule types: {valid}")
    return found


def lookup(sampler_name: str, schedule: str | None = None) -> tuple[SamplerInfo, Schedule | None]:
    """The sampler and the chosen schedule type (None: Automatic). An older combined name's schedule wins over
    `schedule`, as in A1111. ValueError listing the valid names for unknown ones."""
    explicit = find_schedule(schedule)
    key = " ".join(sampler_name.split()).casefold()
    if key in _SAMPLER_KEYS:
        return _SAMPLER_KEYS[key], explicit
    for suffix, legacy in _LEGACY_SUFFIXES:
        base = key.removesuffix(suffix)
        if base != key and base in _SAMPLER_KEYS:
            return _SAMPLER_KEYS[base], legacy
    raise ValueError(f"Unknown sampler {sampler_name!r}. Valid samplers: {', '.join(SAMPLER_NAMES)}")


def resolve(sampler_name: str, schedule: str | None = None) -> tuple[str, str]:
    """The canonical (sampler label, schedule label) for any accepted spelling ("Automatic" for none)."""
    sampler, chosen = lookup(sampler_name, schedule)
    return sampler.label, chosen.label if chosen else AUTOMATIC


def sampler_info(name: str) -> SamplerInfo:
    """The sampler a label, alias or combined name means."""
    return lookup(name)[0]


def applies(sampler: SamplerInfo, schedule: str | None) -> bool:
    """Whether a schedule type changes what `sampler` does (timestep samplers walk their own timesteps)."""
    return sampler.kind == KDIFFUSION or find_schedule(schedule) is None
