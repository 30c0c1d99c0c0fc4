"""modules.sampling.schedules against A1111 1.10's schedule formulas: k-diffusion's own get_sigmas_* and
DiscreteSchedule (the test-only oracle, PyPI k-diffusion 0.1.1.post1) where A1111 calls them, A1111's loops in
sd_schedulers.py re-derived here over the oracle's σ↔t maps where it has its own, and the SD1.5 tables that
A1111 prints (docs/A1111-REFERENCE.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sampling_oracles import k_diffusion_module
from scipy import stats

from modules.sampling import schedules
from modules.sampling.denoiser import Denoiser, alphas_cumprod_of

SD15_UNIFORM_10 = [14.6146, 7.8399, 4.6092, 2.9183, 1.9502, 1.3449, 0.9324, 0.6250, 0.3687, 0.0292, 0]
SD15_KARRAS_10 = [14.6146, 9.1029, 5.4784, 3.1686, 1.7494, 0.9141, 0.4469, 0.2014, 0.0819, 0.0292, 0]
STEPS = [1, 3, 7, 10, 11, 20, 33]


@pytest.fixture(scope="module")
def sd15() -> Denoiser:
    return Denoiser(alphas_cumprod_of({}))


@pytest.fixture(scope="module")
def oracle_schedule(sd15):
    """k-diffusion's DiscreteSchedule over the same training sigmas (A1111's model_wrap)."""
    return k_diffusion_module("external").DiscreteSchedule(sd15.sigmas.clone(), quantize=False)


def sigmas_of(name: str, n: int, denoiser: Denoiser, **kwargs) -> torch.Tensor:
    return schedules.compute_sigmas(name, n, denoiser.sigma_min, denoiser.sigma_max, denoiser, **kwargs)


def test_sd15_tables_at_10_steps(sd15):
    assert sigmas_of("uniform", 10, sd15).tolist() == pytest.approx(SD15_UNIFORM_10, abs=5e-5)
    assert sigmas_of("karras", 10, sd15).tolist() == pytest.approx(SD15_KARRAS_10, abs=5e-5)


@pytest.mark.parametrize("n", STEPS)
def test_uniform_is_the_denoisers_own_schedule(sd15, oracle_schedule, n):
    assert torch.equal(sigmas_of("uniform", n, sd15), oracle_schedule.get_sigmas(n))


@pytest.mark.parametrize("n", STEPS)
@pytest.mark.parametrize("rho", [None, 3.0, 9.5])
def test_karras_exponential_polyexponential_are_k_diffusions(sd15, n, rho):
    sampling = k_diffusion_module("sampling")
    lo, hi = sd15.sigma_min, sd15.sigma_max
    assert torch.equal(sigmas_of("karras", n, sd15, rho=rho), sampling.get_sigmas_karras(n, lo, hi, rho or 7.0))
    assert torch.equal(
        sigmas_of("polyexponential", n, sd15, rho=rho), sampling.get_sigmas_polyexponential(n, lo, hi, rho or 1.0)
    )
    assert torch.equal(sigmas_of("exponential", n, sd15, rho=rho), sampling.get_sigmas_exponential(n, lo, hi))


def test_settings_range_and_rho_zero(sd15):
    """A1111 passes its sigma_min / sigma_max settings (or 0.1 / 10, the old Karras range) instead of the
    model's, and rho 0 means the schedule's default."""
    sampling = k_diffusion_module("sampling")
    assert torch.equal(schedules.compute_sigmas("karras", 12, 0.1, 10, rho=0), sampling.get_sigmas_karras(12, 0.1, 10))
    exponential = schedules.compute_sigmas("Exponential", 5, 0.5, 3.0)
    assert torch.equal(exponential, sampling.get_sigmas_exponential(5, 0.5, 3.0))


def _between(oracle_schedule, n_points: int, sigma_min: float, sigma_max: float) -> list:
    """A1111's sgm_uniform / normal timesteps: `n_points` from σ_max's timestep to σ_min's."""
    start = oracle_schedule.sigma_to_t(torch.tensor(sigma_max))
    end = oracle_schedule.sigma_to_t(torch.tensor(sigma_min))
    return torch.linspace(start, end, n_points)


@pytest.mark.parametrize("n", STEPS)
@pytest.mark.parametrize("span", ["model", "narrow"])
def test_sgm_uniform_and_normal(sd15, oracle_schedule, n, span):
    lo, hi = (sd15.sigma_min, sd15.sigma_max) if span == "model" else (0.3, 7.5)
    sgm = [oracle_schedule.t_to_sigma(t) for t in _between(oracle_schedule, n + 1, lo, hi)[:-1]] + [0.0]
    normal = [oracle_schedule.t_to_sigma(t) for t in _between(oracle_schedule, n, lo, hi)] + [0.0]
    assert torch.equal(schedules.compute_sigmas("SGM Uniform", n, lo, hi, sd15), torch.FloatTensor(sgm))
    assert torch.equal(schedules.compute_sigmas("normal", n, lo, hi, sd15), torch.FloatTensor(normal))
    assert schedules.find_schedule("SGMUniform").name == "sgm_uniform"


@pytest.mark.parametrize("n", STEPS)
def test_simple_and_ddim_pick_training_sigmas(sd15, n):
    trained = sd15.sigmas
    stride = len(trained) / n
    simple = [float(trained[-(1 + int(i * stride))]) for i in range(n)] + [0.0]
    assert torch.equal(sigmas_of("simple", n, sd15), torch.FloatTensor(simple))
    step, picked, t = max(1000 // n, 1), [], 1
    while t < 1000:
        picked.append(float(trained[t]))
        t += step
    assert torch.equal(sigmas_of("ddim", n, sd15), torch.FloatTensor([*picked[::-1], 0.0]))


def test_ddim_has_more_steps_when_1000_is_not_a_multiple(sd15):
    assert len(sigmas_of("ddim", 7, sd15)) == 9  # timesteps 1, 143, …, 995: 8 steps, then 0
    assert float(sigmas_of("ddim", 10, sd15)[0]) == float(sd15.sigmas[901])


@pytest.mark.parametrize("n", STEPS)
def test_kl_optimal(sd15, n):
    """Evenly spaced in arctan σ, from σ_max to σ_min; A1111 appends no 0."""
    result = sigmas_of("kl_optimal", n, sd15)
    a_min, a_max = math.atan(sd15.sigma_min), math.atan(sd15.sigma_max)
    expected = [math.tan(i / n * a_min + (1 - i / n) * a_max) for i in range(n + 1)]
    assert result.tolist() == pytest.approx(expected, rel=1e-5)  # float32 angles near π/2: tan amplifies
    assert float(result[-1]) == pytest.approx(sd15.sigma_min, rel=1e-6)


@pytest.mark.parametrize("sdxl", [False, True])
@pytest.mark.parametrize("n", STEPS)
def test_align_your_steps(sd15, sdxl, n):
    table = list(schedules.AYS_SDXL if sdxl else schedules.AYS_SD15)
    result = sigmas_of("align_your_steps", n, sd15, sdxl=sdxl)
    logs = [math.log(v) for v in table[::-1]]  # ascending σ at evenly spaced positions 0 … 10
    expected = []
    for i in range(n):  # log σ piecewise linear, read at n evenly spaced positions from the top
        position = (1 - i / (n - 1)) * (len(table) - 1) if n > 1 else 0  # numpy's linspace(0, 1, 1) is [0]
        low = min(int(position), len(table) - 2)
        w = position - low
        expected.append(math.exp((1 - w) * logs[low] + w * logs[low + 1]))
    assert result.tolist() == pytest.approx([*expected, 0.0], rel=1e-6)
    assert float(result[0]) == pytest.approx(14.615 if n > 1 else 0.029) and result[-1] == 0


def test_align_your_steps_tables(sd15):
    """NVIDIA's published tables as A1111 1.10 ships them, used unchanged at n = 11."""
    sd15_table = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
    sdxl_table = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]
    assert torch.equal(sigmas_of("align_your_steps", 11, sd15), torch.FloatTensor([*sd15_table, 0]))
    assert torch.equal(sigmas_of("align_your_steps", 11, sd15, sdxl=True), torch.FloatTensor([*sdxl_table, 0]))


@pytest.mark.parametrize("n", STEPS)
@pytest.mark.parametrize("shape", [(0.6, 0.6), (0.5, 0.7), (2.0, 3.0)])
def test_beta(sd15, n, shape):
    """Quantiles of Beta(α, β) at 1 − linspace(0, 1, n), mapped onto [σ_min, σ_max] (A1111's beta_scheduler)."""
    lo, hi = sd15.sigma_min, sd15.sigma_max
    quantiles = [stats.beta.ppf(level, *shape) for level in 1 - np.linspace(0, 1, n)]
    expected = torch.FloatTensor([lo + q * (hi - lo) for q in quantiles] + [0.0])
    result = sigmas_of("beta", n, sd15, beta_alpha=shape[0], beta_beta=shape[1])
    assert torch.equal(result, expected)


def test_beta_with_a_uniform_distribution_is_linear(sd15):
    result = sigmas_of("beta", 5, sd15, beta_alpha=1.0, beta_beta=1.0)
    linear = torch.linspace(sd15.sigma_max, sd15.sigma_min, 5)
    assert result[:-1].tolist() == pytest.approx(linear.tolist(), rel=1e-6)


def test_every_schedule_descends_to_its_end(sd15):
    for schedule in schedules.SCHEDULES:
        values = schedules.compute_sigmas(schedule, 15, sd15.sigma_min, sd15.sigma_max, sd15)
        assert values.dtype == torch.float32 and values.device.type == "cpu"
        assert bool((values[1:] < values[:-1]).all()), schedule.name


def test_names_and_errors(sd15):
    labels = {s.label for s in schedules.SCHEDULES}
    assert labels == {
        "Uniform",
        "Karras",
        "Exponential",
        "Polyexponential",
        "SGM Uniform",
        "KL Optimal",
        "Align Your Steps",
        "Simple",
        "Normal",
        "DDIM",
        "Beta",
    }
    assert all(schedules.find_schedule(s.name) is s for s in schedules.SCHEDULES)
    assert schedules.find_schedule("Automatic") is None
    with pytest.raises(ValueError, match="Unknown schedule"):
        schedules.compute_sigmas("nope", 10, 0.1, 10)
    with pytest.raises(ValueError, match="denoiser"):
        schedules.compute_sigmas("normal", 10, 0.1, 10)
