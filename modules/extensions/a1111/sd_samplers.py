"""A1111's `modules.sd_samplers`: the samplers as A1111's SamplerData (name, constructor, aliases, options),
from the app's registry (modules/sampling/registry.py). A constructor would build A1111's sampler object
around an LDM model, which this app doesn't have: calling one raises NotImplementedError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from modules.extensions.a1111.unsupported import unsupported
from modules.sampling.registry import SAMPLERS, SamplerInfo, resolve


class SamplerData(NamedTuple):
    """A1111's sampler record."""

    name: str
    constructor: Callable[[Any], Any]
    aliases: list[str]
    options: dict[str, Any]


def _options(info: SamplerInfo) -> dict[str, Any]:
    """The A1111 option flags a sampler has (only those that are set, as A1111 declares them)."""
    flags = {
        "scheduler": info.default_schedule,
        "second_order": info.second_order,
        "uses_ensd": info.uses_ensd,
        "brownian_noise": info.brownian_noise,
        "discard_next_to_last_sigma": info.discard_next_to_last_sigma,
    }
    return {key: value for key, value in {**flags, **info.fixed}.items() if value}


def _constructor(name: str) -> Callable[[Any], Any]:
    def construct(model: Any) -> Any:
        unsupported(f"modules.sd_samplers constructor of {name!r}")

    return construct


all_samplers: list[SamplerData] = [
    SamplerData(s.label, _constructor(s.label), list(s.aliases), _options(s)) for s in SAMPLERS
]
all_samplers_map: dict[str, SamplerData] = {s.name: s for s in all_samplers}
samplers: list[SamplerData] = list(all_samplers)
samplers_for_img2img: list[SamplerData] = list(all_samplers)
samplers_map: dict[str, str] = {key.lower(): s.name for s in all_samplers for key in (s.name, *s.aliases)}


def find_sampler_config(name: str | None) -> SamplerData:
    """The sampler a name, alias or older combined name ("DPM++ 2M Karras") means; the first one for None."""
    if name is None:
        return all_samplers[0]
    return all_samplers_map[resolve(name)[0]]


def visible_sampler_names() -> list[str]:
    return [s.name for s in samplers]


def create_sampler(name: str, model: Any) -> Any:
    unsupported("modules.sd_samplers.create_sampler")
