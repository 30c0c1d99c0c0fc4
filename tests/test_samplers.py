"""Tests for modules.samplers: name resolution and every sampler x schedule on a toy model."""

from __future__ import annotations

import functools
import inspect

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler

from modules import samplers

SD1_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "prediction_type": "epsilon",
}
SCHEDULE_NAMES = [s.name for s in samplers.SCHEDULES]


def _sample(scheduler, steps: int = 20, seed: int = 0) -> torch.Tensor:
    """Run a full sampling loop with the toy model ``output = 0.1 * scaled input``."""
    scheduler.set_timesteps(steps)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, 8, 8, generator=gen) * scheduler.init_noise_sigma
    extra = {"generator": gen} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for t in scheduler.timesteps:
        model_output = 0.1 * scheduler.scale_model_input(x, t)
        x = scheduler.step(model_output, t, x, **extra).prev_sample
    return x


def _public(config) -> dict:
    """Config without private bookkeeping such as ``_use_default_values``."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _create(sampler: str, schedule: str | None, config=SD1_CONFIG, **kw):
    return samplers.create_scheduler(sampler, schedule, config, **kw)


def _sigmas_or_timesteps(scheduler) -> torch.Tensor:
    scheduler.set_timesteps(20)
    values = getattr(scheduler, "sigmas", None)
    return torch.as_tensor(values if values is not None else scheduler.timesteps, dtype=torch.float64)


@functools.cache
def _uniform_schedule(sampler: str) -> torch.Tensor:
    return _sigmas_or_timesteps(_create(sampler, "Uniform"))


def test_names_and_order():
    assert samplers.SAMPLER_NAMES[:4] == ["Euler a", "Euler", "LMS", "Heun"]
    assert samplers.SAMPLER_NAMES[-4:] == ["DDIM", "PLMS", "UniPC", "LCM"]
    assert [(s.name, s.label) for s in samplers.SCHEDULES][:3] == [
        ("automatic", "Automatic"), ("uniform", "Uniform"), ("karras", "Karras")]
    assert len(set(samplers.SAMPLER_NAMES)) == len(samplers.SAMPLER_NAMES)


@pytest.mark.parametrize("schedule", SCHEDULE_NAMES)
@pytest.mark.parametrize("sampler", samplers.SAMPLER_NAMES)
def test_every_combination_samples(sampler, schedule):
    """Each combination keeps the model's v-prediction and betas and samples to finite values;
    a schedule changes the sigmas iff the sampler claims to honour it."""
    scheduler = _create(sampler, schedule, {**SD1_CONFIG, "prediction_type": "v_prediction"})
    info = samplers.sampler_info(sampler)
    assert type(scheduler).__name__ == info.class_name
    assert scheduler.config.prediction_type == "v_prediction"
    assert (scheduler.config.beta_start, scheduler.config.beta_end) == (0.00085, 0.012)
    assert scheduler.config.beta_schedule == "scaled_linear"
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
    x = _sample(scheduler)
    assert len(scheduler.timesteps) >= 20
    assert torch.isfinite(x).all()
    assert not torch.allclose(x, x0)
    if schedule not in ("automatic", "uniform"):
        values, uniform = _sigmas_or_timesteps(scheduler), _uniform_schedule(sampler)
        changed = values.shape != uniform.shape or not torch.allclose(values, uniform)
        label = samplers.resolve(sampler, schedule)[1]
        assert changed == (label in info.schedules)


def test_karras_changes_sigmas():
    uniform = _create("Euler", "Uniform")
    karras = _create("Euler", "Karras")
    assert karras.config.use_karras_sigmas and not uniform.config.use_karras_sigmas
    assert not torch.allclose(_sigmas_or_timesteps(uniform), _sigmas_or_timesteps(karras))


def test_automatic_uses_sampler_default():
    auto = _create("DPM++ 2M", "Automatic")
    assert auto.config.use_karras_sigmas
    assert torch.equal(_sigmas_or_timesteps(auto), _sigmas_or_timesteps(_create("DPM++ 2M", "Karras")))
    assert _create("DPM++ 2M SDE", None).config.use_exponential_sigmas
    assert not _create("DPM++ 2M", "Uniform").config.use_karras_sigmas


def test_euler_a_automatic_matches_diffusers_from_config():
    ours = samplers.create_scheduler("Euler a", "Automatic", SD1_CONFIG)
    ref = EulerAncestralDiscreteScheduler.from_config(SD1_CONFIG)
    assert type(ours) is EulerAncestralDiscreteScheduler
    assert _public(ours.config) == _public(ref.config)
    plain = samplers.create_scheduler("Euler", "Karras", {**SD1_CONFIG, "timestep_spacing": "leading"})
    assert plain.config.timestep_spacing == "leading" and plain.config.steps_offset == 1


def test_sampler_variants_override_model_config():
    base = {**SD1_CONFIG, "_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++",
            "solver_order": 3, "use_karras_sigmas": True}
    two_m = samplers.create_scheduler("DPM++ 2M", "Exponential", base)
    assert (two_m.config.algorithm_type, two_m.config.solver_order) == ("dpmsolver++", 2)
    assert two_m.config.use_exponential_sigmas and not two_m.config.use_karras_sigmas
    heun = samplers.create_scheduler("DPM++ 2M SDE Heun", None, base)
    assert (heun.config.algorithm_type, heun.config.solver_type) == ("sde-dpmsolver++", "heun")
    assert samplers.create_scheduler("DPM++ 3M SDE", None, SD1_CONFIG).config.solver_order == 3
    assert samplers.create_scheduler("PLMS", None, SD1_CONFIG).config.skip_prk_steps
    assert not samplers.create_scheduler("DDIM", None, {**SD1_CONFIG, "clip_sample": True}).config.clip_sample
    sgm = samplers.create_scheduler("Euler", "SGM Uniform", SD1_CONFIG)
    assert sgm.config.timestep_spacing == "trailing"


def test_unhonoured_schedule_leaves_config_alone():
    """A schedule a sampler ignores must not show up in its config either."""
    assert "use_karras_sigmas" not in samplers.create_scheduler("Euler a", "Karras", SD1_CONFIG).config
    lcm = samplers.create_scheduler("LCM", "SGM Uniform", {**SD1_CONFIG, "timestep_spacing": "leading"})
    assert lcm.config.timestep_spacing == "leading"


def test_fresh_instance_each_call():
    a = samplers.create_scheduler("DPM++ 2M", "Karras", SD1_CONFIG)
    b = samplers.create_scheduler("DPM++ 2M", "Karras", SD1_CONFIG)
    assert a is not b
    a.set_timesteps(5)
    b.set_timesteps(30)
    assert len(a.timesteps) == 5


@pytest.mark.parametrize(("name", "expected"), [
    ("DPM++ 2M Karras", ("DPM++ 2M", "Karras")),
    ("DPM++ SDE Karras", ("DPM++ SDE", "Karras")),
    ("DPM++ 2M SDE Exponential", ("DPM++ 2M SDE", "Exponential")),
    ("DPM++ 2M SDE Heun Karras", ("DPM++ 2M SDE Heun", "Karras")),
    ("DPM++ 2M SDE Heun", ("DPM++ 2M SDE Heun", "Automatic")),
    ("Euler a", ("Euler a", "Automatic")),
    ("euler  A", ("Euler a", "Automatic")),
    ("LMS Karras", ("LMS", "Karras")),
    ("DPM2 a Karras", ("DPM2 a", "Karras")),
    ("Euler SGM Uniform", ("Euler", "SGM Uniform")),
    ("k_euler_a", ("Euler a", "Automatic")),
    ("k_dpmpp_2m", ("DPM++ 2M", "Automatic")),
    ("k_dpmpp_2m_ka", ("DPM++ 2M", "Karras")),
    ("k_dpmpp_2m_sde_exp", ("DPM++ 2M SDE", "Exponential")),
    ("ddim", ("DDIM", "Automatic")),
])
def test_resolve_names(name, expected):
    assert samplers.resolve(name) == expected


def test_legacy_suffix_wins_and_create_accepts_legacy_names():
    assert samplers.resolve("DPM++ 2M Karras", "Exponential") == ("DPM++ 2M", "Karras")
    scheduler = samplers.create_scheduler("DPM++ SDE Karras", None, SD1_CONFIG)
    assert scheduler.config.use_karras_sigmas
    assert samplers.sampler_info("k_dpmpp_2m_sde_exp").label == "DPM++ 2M SDE"


@pytest.mark.parametrize(("given", "label"), [
    (None, "Automatic"), ("", "Automatic"), ("automatic", "Automatic"), ("Karras", "Karras"),
    ("karras", "Karras"), ("KARRAS", "Karras"), ("sgm_uniform", "SGM Uniform"), ("SGM Uniform", "SGM Uniform"),
    ("sgm uniform", "SGM Uniform"), ("SGMUniform", "SGM Uniform"), (" Exponential ", "Exponential"), ("Beta", "Beta"),
])
def test_schedule_spellings(given, label):
    assert samplers.resolve("Euler", given) == ("Euler", label)


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="Unknown sampler") as err:
        samplers.resolve("Euler z")
    assert all(name in str(err.value) for name in samplers.SAMPLER_NAMES)
    with pytest.raises(ValueError, match="Unknown schedule type") as err:
        samplers.resolve("Euler", "Polyexponential")
    assert "Karras (karras)" in str(err.value) and "SGM Uniform (sgm_uniform)" in str(err.value)
    with pytest.raises(ValueError, match="DPM fast"):
        samplers.create_scheduler("DPM fast", None, SD1_CONFIG)
    with pytest.raises(ValueError):
        samplers.sampler_info("DPM++ 2M Polyexponential")


def test_sampler_flags():
    info = {name: samplers.sampler_info(name) for name in samplers.SAMPLER_NAMES}
    assert {n for n, i in info.items() if i.stochastic} == {
        "Euler a", "DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE", "LCM"}
    assert [n for n, i in info.items() if i.accepts_eta] == ["DDIM"]
    assert [n for n, i in info.items() if i.brownian_noise] == ["DPM++ SDE"]
    for name, i in info.items():
        step = inspect.signature(i.scheduler_class.step).parameters
        assert i.accepts_generator == ("generator" in step), name
        if i.stochastic:
            assert i.accepts_generator or i.brownian_noise, name
    assert info["Euler a"].schedules == ["Automatic", "Uniform", "SGM Uniform"]
    assert "Karras" in info["UniPC"].schedules


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M SDE", "DPM++ 2S a"])
def test_generator_noise_is_reproducible(sampler):
    first, again = _sample(_create(sampler, None), seed=1), _sample(_create(sampler, None), seed=1)
    assert torch.equal(first, again)
    assert not torch.allclose(first, _sample(_create(sampler, None), seed=2))


def test_brownian_noise_seed():
    run = lambda seed: _sample(_create("DPM++ SDE", "Karras", noise_seed=seed), steps=6, seed=0)  # noqa: E731
    assert torch.equal(run(5), run(5))
    assert not torch.allclose(run(5), run(6))
    plain = samplers.create_scheduler("Euler", None, SD1_CONFIG, noise_seed=5)
    assert "noise_sampler_seed" not in plain.config


def test_dpm_2m_matches_diffusers_reference():
    ours = samplers.create_scheduler("DPM++ 2M", "Uniform", SD1_CONFIG)
    ref = DPMSolverMultistepScheduler.from_config(SD1_CONFIG)
    assert _public(ours.config) == _public(ref.config)
