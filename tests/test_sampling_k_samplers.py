"""modules.sampling.k_samplers against k-diffusion's functions of the same name (the test-only oracle, PyPI
k-diffusion 0.1.1.post1, whose sampling code is the commit A1111 1.10 pins), on the same model and the same
noise: an analytic model (Gaussian data, x0 prediction in closed form) and the demo checkpoint's UNet behind
our Denoiser. Where k-diffusion calls torch.randn_like itself, it is given A1111's substitute (TorchHijack:
every randn_like is the next draw of the image noise), so the comparison also checks that our samplers make
the same draws, in the same order, with the same σ arguments."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from sampling_oracles import k_diffusion_module

from modules.sampling import k_samplers
from modules.sampling.denoiser import Denoiser, alphas_cumprod_of
from modules.sampling.schedules import compute_sigmas

SHAPE = (1, 4, 8, 8)
RTOL = 1e-5

# (sampler, options) for every sampler that takes `sigmas`; each runs on Uniform and Karras sigmas.
CASES = [
    ("sample_euler", {}),
    ("sample_euler", {"s_churn": 1.0}),
    ("sample_euler", {"s_churn": 8.0, "s_tmin": 0.5, "s_tmax": 5.0, "s_noise": 1.003}),  # γ capped at √2 − 1
    ("sample_euler_ancestral", {"eta": 1.0}),
    ("sample_euler_ancestral", {"eta": 0.0}),
    ("sample_euler_ancestral", {"eta": 0.67, "s_noise": 0.9}),
    ("sample_heun", {}),
    ("sample_heun", {"s_churn": 1.0}),
    ("sample_heun", {"s_churn": 20.0}),
    ("sample_dpm_2", {}),
    ("sample_dpm_2", {"s_churn": 1.0, "s_tmin": 1.0}),
    ("sample_dpm_2_ancestral", {"eta": 1.0}),
    ("sample_dpm_2_ancestral", {"eta": 0.0}),
    ("sample_lms", {}),
    ("sample_lms", {"order": 2}),
    ("sample_dpmpp_2s_ancestral", {"eta": 1.0}),
    ("sample_dpmpp_2s_ancestral", {"eta": 0.0}),
    ("sample_dpmpp_sde", {"eta": 1.0}),
    ("sample_dpmpp_sde", {"eta": 0.0}),
    ("sample_dpmpp_sde", {"eta": 1.0, "r": 0.3}),
    ("sample_dpmpp_2m", {}),
    ("sample_dpmpp_2m_sde", {"eta": 1.0}),
    ("sample_dpmpp_2m_sde", {"eta": 0.0}),
    ("sample_dpmpp_2m_sde", {"eta": 1.0, "solver_type": "heun"}),
    ("sample_dpmpp_2m_sde", {"eta": 0.0, "solver_type": "heun"}),
    ("sample_dpmpp_3m_sde", {"eta": 1.0}),
    ("sample_dpmpp_3m_sde", {"eta": 0.0}),
]
# DPM fast / adaptive take a σ range; A1111 passes floats for txt2img and tensors (a schedule's tail) for img2img.
RANGE_CASES = [
    ("sample_dpm_fast", {"n": 10, "eta": 0.0}),
    ("sample_dpm_fast", {"n": 9, "eta": 0.0}),  # n a multiple of 3: the last two steps of order 2 and 1
    ("sample_dpm_fast", {"n": 10, "eta": 1.0}),
    ("sample_dpm_adaptive", {"eta": 0.0}),
    ("sample_dpm_adaptive", {"eta": 1.0}),
    ("sample_dpm_adaptive", {"eta": 0.0, "order": 2, "rtol": 0.1}),
]


class RecordedNoise:
    """A seeded stream of standard normal draws that records the σ arguments of each draw."""

    def __init__(self, seed: int = 1234) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.calls: list[tuple] = []

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        self.calls.append(
            (sigma if sigma is None else float(sigma), sigma_next if sigma_next is None else float(sigma_next))
        )
        return torch.randn(SHAPE, generator=self.generator)


class TorchHijack:
    """What A1111 puts in place of k_diffusion.sampling.torch: randn_like gives the next image-noise draw."""

    def __init__(self, noise: RecordedNoise) -> None:
        self.noise = noise

    def __getattr__(self, name: str):
        return (lambda x: self.noise()) if name == "randn_like" else getattr(torch, name)


@pytest.fixture(scope="module")
def oracle():
    sampling = k_diffusion_module("sampling")
    yield sampling
    sampling.torch = torch


@pytest.fixture(scope="module")
def sd15() -> Denoiser:
    return Denoiser(alphas_cumprod_of({}))


def gaussian_model():
    """Data x0 ~ N(μ, 0.5²) per element: E[x0 | x] = (0.25·x + σ²·μ) / (0.25 + σ²)."""
    mean = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))

    def model(x, sigma):
        variance = sigma.view(-1, 1, 1, 1) ** 2
        return (0.25 * x + variance * mean) / (0.25 + variance)

    return model


def start_noise() -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(9))


def run_both(oracle, name: str, model, *args, **options):
    """(ours, k-diffusion's): the results, the noise draws' σ arguments and the callbacks' dicts."""
    results = []
    for module in (k_samplers, oracle):
        noise, steps = RecordedNoise(), []
        oracle.torch = TorchHijack(noise)
        function = getattr(module, name)
        kwargs = dict(options)
        if "noise_sampler" in inspect.signature(function).parameters:
            kwargs["noise_sampler"] = noise
        if module is oracle:
            kwargs["disable"] = True
        out = function(model, *args, callback=steps.append, **kwargs)
        results.append((out, noise.calls, steps))
    oracle.torch = torch
    return results


def assert_same_run(ours, theirs) -> None:
    (x, calls, steps), (x_ref, calls_ref, steps_ref) = ours, theirs
    assert torch.isfinite(x_ref).all()
    assert float((x - x_ref).abs().max()) <= RTOL * float(x_ref.abs().max())
    assert len(calls) == len(calls_ref)
    for call, call_ref in zip(calls, calls_ref):  # randn_like (k-diffusion's own draws) has no σ to compare
        assert call_ref == (None, None) or call == pytest.approx(call_ref, rel=1e-6)
    assert len(steps) == len(steps_ref) > 0
    for step, step_ref in zip(steps, steps_ref):
        assert step.keys() == step_ref.keys() and step["i"] == step_ref["i"]
        assert float(step["sigma"]) == pytest.approx(float(step_ref["sigma"]), rel=1e-6)
        assert float(step["sigma_hat"]) == pytest.approx(float(step_ref["sigma_hat"]), rel=1e-6)
        scale = float(step_ref["denoised"].abs().max())
        assert float((step["denoised"] - step_ref["denoised"]).abs().max()) <= RTOL * scale


@pytest.mark.parametrize("schedule", ["uniform", "karras"])
@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_analytic_model_matches_k_diffusion(oracle, sd15, schedule, name, options):
    sigmas = compute_sigmas(schedule, 10, sd15.sigma_min, sd15.sigma_max, sd15)
    x = start_noise() * sigmas[0]
    assert_same_run(*run_both(oracle, name, gaussian_model(), x, sigmas, **options))


@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")  # k-diffusion's torch.tensor(tensor)
@pytest.mark.parametrize("tensor_range", [False, True])
@pytest.mark.parametrize(("name", "options"), RANGE_CASES, ids=[f"{n}-{o}" for n, o in RANGE_CASES])
def test_analytic_model_matches_k_diffusion_dpm_solver(oracle, sd15, tensor_range, name, options):
    if tensor_range:  # img2img: the tail of a Karras schedule, last nonzero σ to first
        tail = compute_sigmas("karras", 10, sd15.sigma_min, sd15.sigma_max)[4:]
        sigma_min, sigma_max = tail[-2], tail[0]
    else:
        sigma_min, sigma_max = sd15.sigma_min, sd15.sigma_max
    x = start_noise() * float(sigma_max)
    assert_same_run(*run_both(oracle, name, gaussian_model(), x, sigma_min, sigma_max, **options))


def test_dpm_adaptive_counts_match(oracle, sd15):
    """The step-size control makes the same accepts and rejects."""
    x = start_noise() * sd15.sigma_max
    common = dict(eta=1.0, return_info=True)
    _, info = k_samplers.sample_dpm_adaptive(
        gaussian_model(), x, sd15.sigma_min, sd15.sigma_max, noise_sampler=RecordedNoise(), **common
    )
    _, info_ref = oracle.sample_dpm_adaptive(
        gaussian_model(), x, sd15.sigma_min, sd15.sigma_max, noise_sampler=RecordedNoise(), disable=True, **common
    )
    assert info == info_ref and info["n_reject"] > 0


@pytest.fixture(scope="module")
def unet_model(demo_model):
    """The demo checkpoint's UNet behind our Denoiser, with a fixed text conditioning."""
    denoiser = Denoiser(alphas_cumprod_of(demo_model.scheduler_config), demo_model.prediction_type)
    cond = torch.randn(1, 77, demo_model.unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(3))

    @torch.no_grad()
    def model(x, sigma):
        latents, t = denoiser.model_input(x, sigma)
        return denoiser.denoised(demo_model.unet(latents, t, encoder_hidden_states=cond).sample, x, sigma)

    return denoiser, model


UNET_CASES = [(n, o) for n, o in CASES if o.get("eta", 1.0) == 1.0 or n == "sample_euler_ancestral"]


@pytest.mark.parametrize("schedule", ["uniform", "karras"])
@pytest.mark.parametrize(("name", "options"), UNET_CASES, ids=[f"{n}-{o}" for n, o in UNET_CASES])
def test_demo_unet_matches_k_diffusion(oracle, unet_model, schedule, name, options):
    denoiser, model = unet_model
    sigmas = compute_sigmas(schedule, 5, denoiser.sigma_min, denoiser.sigma_max, denoiser)
    x = start_noise() * sigmas[0]
    assert_same_run(*run_both(oracle, name, model, x, sigmas, **options))


UNET_RANGE_CASES = [
    ("sample_dpm_fast", {"n": 5, "eta": 0.0}),
    ("sample_dpm_fast", {"n": 6, "eta": 1.0}),
    ("sample_dpm_adaptive", {"eta": 1.0}),
]


@pytest.mark.parametrize(("name", "options"), UNET_RANGE_CASES)
def test_demo_unet_matches_k_diffusion_dpm_solver(oracle, unet_model, name, options):
    denoiser, model = unet_model
    x = start_noise() * denoiser.sigma_max
    assert_same_run(*run_both(oracle, name, model, x, denoiser.sigma_min, denoiser.sigma_max, **options))


def test_draws_go_through_the_noise_sampler_only(sd15):
    """No draw from torch's global generator; a missing noise_sampler is an error only where noise is added."""
    sigmas = compute_sigmas("karras", 6, sd15.sigma_min, sd15.sigma_max)
    x, model = start_noise() * sigmas[0], gaussian_model()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with_noise = k_samplers.sample_euler(model, x, sigmas, s_churn=0.0, noise_sampler=RecordedNoise())
    without = k_samplers.sample_euler(model, x, sigmas)
    deterministic = k_samplers.sample_dpmpp_2m_sde(model, x, sigmas, eta=0.0)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(with_noise, without) and torch.isfinite(deterministic).all()
    with pytest.raises(ValueError, match="noise_sampler"):
        k_samplers.sample_euler(model, x, sigmas, s_churn=1.0)
    with pytest.raises(ValueError, match="noise_sampler"):
        k_samplers.sample_euler_ancestral(model, x, sigmas)
    with pytest.raises(ValueError, match="noise_sampler"):
        k_samplers.sample_dpm_fast(model, x, sd15.sigma_min, sd15.sigma_max, 6, eta=1.0)


def test_lms_coefficients_integrate_the_lagrange_basis():
    """Each coefficient is the exact integral of a Lagrange basis polynomial (numpy's polynomial algebra)."""
    nodes = np.array([14.6, 7.8, 4.6, 2.9, 1.95, 1.34], dtype=np.float32)
    for i in range(3, 5):
        for j in range(4):
            others = [float(nodes[i - k]) for k in range(4) if k != j]
            basis = np.poly1d(others, r=True) / np.prod([float(nodes[i - j]) - o for o in others])
            exact = np.polyint(basis)(float(nodes[i + 1])) - np.polyint(basis)(float(nodes[i]))
            assert k_samplers._lms_coefficient(4, nodes, i, j) == pytest.approx(exact, rel=1e-6)


def test_options_keep_k_diffusions_names_and_defaults(oracle):
    for name in {n for n, _ in CASES + RANGE_CASES}:
        ours = inspect.signature(getattr(k_samplers, name)).parameters
        theirs = inspect.signature(getattr(oracle, name)).parameters
        for option, parameter in theirs.items():
            if option in ("disable",):
                continue
            assert option in ours, (name, option)
            assert ours[option].default == parameter.default, (name, option)
