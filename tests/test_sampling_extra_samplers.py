"""modules.sampling.extra_samplers: A1111 1.10's Restart and LCM samplers and the LCM noise levels
(LCMDenoiser), on the analytic model of test_sampling_timestep_samplers and on the demo checkpoint's UNet,
against k-diffusion (the test-only oracle: Restart below 20 steps is its Heun; its Karras schedule), the LCM
formulas transcribed here, and numbers A1111's own code produced (see A1111_RESTART and A1111_LCM)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from sampling_oracles import k_diffusion_module
from test_sampling_timestep_samplers import (
    AC,
    LATENT,
    MEAN,
    SHAPE,
    SIGMAS,
    START,
    Draws,
    flow_solution,
    posterior,
    relative_error,
)

from modules.sampling import extra_samplers as ex
from modules.sampling.denoiser import Denoiser, alphas_cumprod_of
from modules.sampling.schedules import karras

SIGMA_MIN, SIGMA_MAX = float(SIGMAS[0]), float(SIGMAS[-1])


@pytest.fixture(scope="module")
def oracle():
    sampling = k_diffusion_module("sampling")
    yield sampling
    sampling.torch = torch


def eps_network(x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The analytic model as an ε network at a whole training timestep (what the UNet is to A1111)."""
    sigma = SIGMAS[t.long()]
    x = x_in * (sigma.reshape(-1, 1, 1, 1) ** 2 + 1) ** 0.5
    return (x - posterior(x, sigma)) / sigma.reshape(-1, 1, 1, 1)


def behind(denoiser: Denoiser, network):
    """`model(x, sigma) -> x0`: an ε network behind a denoiser, as guidance.CFGDenoiser calls the UNet."""

    def model(x, sigma):
        latents, t = denoiser.model_input(x, sigma)
        return denoiser.denoised(network(latents, t), x, sigma)

    return model


# --- Restart ------------------------------------------------------------------------------------------------

# Made once by running A1111 1.10's sd_samplers_extra.restart_sampler (the verbatim copy in
# lllyasviel/stable-diffusion-webui-forge) with k-diffusion 0.1.1.post1 outside this repository: the analytic
# model (posterior of the Gaussian data), START × σ_max as x, k-diffusion's Karras sigmas for SD1.5
# (σ 0.0292 … 14.6146) and every torch.randn_like replaced by draw(0), draw(1), … Keys: (steps, restart_list,
# the number of draws A1111 made); printed to 9 significant digits.
A1111_RESTART = {
    (10, None, 0): [
        -0.587195992,
        0.0680070221,
        -0.297079325,
        -0.807359278,
        -0.375027776,
        0.706791937,
        1.19347489,
        0.71227318,
    ],
    (20, None, 1): [
        -0.0555602498,
        0.115990698,
        -0.253985077,
        -0.722944379,
        -0.76396203,
        -0.296963394,
        0.349986076,
        0.919239402,
    ],
    (40, None, 2): [
        0.00722547248,
        -0.425620407,
        -1.02453434,
        -0.9693501,
        -0.12496686,
        0.819697678,
        1.10451365,
        0.732432187,
    ],
    (12, ((0.5, (4, 2, 3.0)),), 2): [
        0.0419430807,
        -0.413036793,
        -1.04369068,
        -0.999361932,
        -0.136353016,
        0.833718598,
        1.12232769,
        0.730706513,
    ],
}


@pytest.mark.parametrize("key", A1111_RESTART, ids=str)
def test_restart_matches_a1111(key):
    steps, restart_list, draws_made = key
    sigmas, draws = karras(steps, SIGMA_MIN, SIGMA_MAX), Draws()
    ours = ex.sample_restart(
        posterior,
        START * sigmas[0],
        sigmas,
        noise_sampler=draws,
        restart_list=None if restart_list is None else dict(restart_list),
    )
    assert len(draws.calls) == draws_made
    assert relative_error(ours, torch.tensor(A1111_RESTART[key]).reshape(SHAPE)) < 1e-6


@pytest.mark.parametrize(
    ("steps", "restart_steps", "restarts"), [(10, 0, 0), (19, 0, 0), (20, 9, 1), (35, 9, 1), (36, 9, 2), (40, 10, 2)]
)
def test_restart_plan_follows_a1111s_rules(oracle, steps, restart_steps, restarts):
    """Below 20 steps the given sigmas, Heun all the way; from 20 a Karras main pass of steps − restarts·n
    steps and `restarts` passes of n steps (n = 9, or steps // 4 from 36) from the σ nearest 0.1 back up to the
    σ nearest 2; `steps` steps in all."""
    sigmas = karras(steps, SIGMA_MIN, SIGMA_MAX)
    plan = ex.restart_plan(sigmas)
    assert len(plan) == steps
    if not restarts:
        assert [(float(a), float(b)) for a, b in plan] == list(zip(sigmas[:-1].tolist(), sigmas[1:].tolist()))
        return
    main = oracle.get_sigmas_karras(steps - restart_steps * restarts, float(sigmas[-2]), float(sigmas[0]))
    low = int((main - 0.1).abs().argmin())
    high = int((main - 2.0).abs().argmin())
    levels = oracle.get_sigmas_karras(restart_steps + 1, float(main[low]), float(main[high]))[:-1]
    expected = (
        list(itertools.pairwise(main[: low + 1]))
        + list(itertools.pairwise(levels)) * restarts
        + list(zip(main[low:-1], main[low + 1 :]))
    )
    assert [(float(a), float(b)) for a, b in plan] == [(float(a), float(b)) for a, b in expected]


def test_restart_below_20_steps_is_k_diffusions_heun(oracle):
    sigmas = karras(10, SIGMA_MIN, SIGMA_MAX)
    ours = ex.sample_restart(posterior, START * sigmas[0], sigmas)
    theirs = oracle.sample_heun(posterior, START * sigmas[0], sigmas, disable=True)
    assert relative_error(ours, theirs) < 1e-6


def test_restart_converges_with_heuns_order():
    """Karras sigmas from σ_max down to σ_min (no final 0): Heun steps, second order."""
    counts, x = [4, 8, 16], START.double() * SIGMA_MAX
    exact = flow_solution(x, SIGMA_MAX, SIGMA_MIN)
    errors = [
        float((ex.sample_restart(posterior, x, karras(n + 1, SIGMA_MIN, SIGMA_MAX)[:-1].double()) - exact).abs().max())
        for n in counts
    ]
    assert errors[0] > errors[1] > errors[2]
    assert abs(math.log2(errors[1] / errors[2]) - 2) < 0.3


def test_restart_noise_and_callbacks():
    sigmas, draws, reports = karras(20, SIGMA_MIN, SIGMA_MAX), Draws(), []
    ex.sample_restart(posterior, START * sigmas[0], sigmas, callback=reports.append, noise_sampler=draws)
    plan = ex.restart_plan(sigmas)
    jump = next(k for k in range(1, len(plan)) if plan[k][0] > plan[k - 1][1])
    assert draws.calls == [(float(plan[jump - 1][1]), float(plan[jump][0]))]  # (from σ, back up to σ)
    assert [r["i"] for r in reports] == list(range(20))
    assert [float(r["sigma"]) for r in reports] == [float(a) for a, _ in plan]
    with pytest.raises(ValueError, match="noise_sampler"):
        ex.sample_restart(posterior, START * sigmas[0], sigmas)


# --- LCM ----------------------------------------------------------------------------------------------------

# Made once like A1111_RESTART, with A1111 1.10's sd_samplers_lcm.py (LCMCompVisDenoiser and sample_lcm) over an
# inner model with SD1.5's alphas_cumprod whose apply_model is eps_network: the noise levels for n steps
# (get_sigmas), and sample_lcm from START × σ_max on those for 4 steps and on k-diffusion's Karras sigmas
# between the LCM levels' σ_min and σ_max for 6 steps, draws from draw(0), draw(1), …
A1111_LCM = {
    ("sigmas", 4): [14.6146431, 2.99105597, 0.972825944, 0.13445057, 0.0],
    ("sigmas", 8): [
        14.6146431,
        6.76838303,
        3.60098863,
        2.12036538,
        1.32306099,
        0.829859555,
        0.476454377,
        0.13445057,
        0.0,
    ],
    ("uniform", 4): [
        -0.479371011,
        -0.754084826,
        -0.822834194,
        -0.37753886,
        0.203888342,
        0.522832513,
        0.643473625,
        0.777685761,
    ],
    ("karras", 6): [
        -0.821650565,
        -1.217502,
        -0.247506469,
        0.0967657566,
        -0.0899012908,
        0.267834127,
        0.599346161,
        0.78713429,
    ],
}


def test_lcm_noise_levels():
    lcm = ex.LCMDenoiser(AC)
    steps = list(range(19, 1000, 20))  # LCM's 50 original steps among the 1000
    assert torch.equal(lcm.sigmas, SIGMAS[steps])
    assert (lcm.sigma_min, lcm.sigma_max) == (float(SIGMAS[19]), float(SIGMAS[999]))
    for n in (4, 8):
        assert torch.allclose(lcm.uniform_sigmas(n), torch.tensor(A1111_LCM[("sigmas", n)]), rtol=1e-6)
    # σ → t snaps to the nearest of the 50 in log σ; t → σ interpolates between them
    for sigma in (0.05, 0.5, 1.0, 7.0, 14.0):
        nearest = min(steps, key=lambda t: abs(math.log(sigma) - math.log(float(SIGMAS[t]))))
        assert float(lcm.sigma_to_t(torch.tensor([sigma]))) == nearest
    assert torch.allclose(
        lcm.t_to_sigma(torch.tensor([39.0, 49.0])),
        torch.stack([SIGMAS[39], (SIGMAS[39].log() + SIGMAS[59].log()).div(2).exp()]),
    )


@pytest.mark.parametrize("key", [("uniform", 4), ("karras", 6)])
def test_lcm_matches_a1111(key):
    lcm = ex.LCMDenoiser(AC)
    schedule, n = key
    sigmas = lcm.uniform_sigmas(n) if schedule == "uniform" else karras(n, lcm.sigma_min, lcm.sigma_max)
    draws = Draws()
    ours = ex.sample_lcm(behind(lcm, eps_network), START * sigmas[0], sigmas, noise_sampler=draws)
    assert len(draws.calls) == n - 1
    assert relative_error(ours, torch.tensor(A1111_LCM[key]).reshape(SHAPE)) < 1e-6


def test_lcm_steps_and_callbacks():
    """Each step jumps to the model's x0 and noises it to the next σ with one draw, none onto σ = 0."""
    sigmas, draws, reports = torch.tensor([10.0, 3.0, 0.5, 0.0]), Draws(), []
    x = START * 10

    def constant(x_, sigma):
        return MEAN.expand_as(x_)

    out = ex.sample_lcm(constant, x, sigmas, callback=reports.append, noise_sampler=draws)
    assert torch.equal(out, MEAN) and draws.calls == [(10.0, 3.0), (3.0, 0.5)]
    assert [r["i"] for r in reports] == [0, 1, 2]
    assert torch.equal(reports[1]["x"], MEAN + 3.0 * Draws()(0, 0))
    assert [float(r["sigma"]) for r in reports] == [10.0, 3.0, 0.5]


# --- The demo checkpoint's UNet -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unet_network(demo_model):
    """The demo UNet as an ε network for a fixed text conditioning."""
    assert demo_model.prediction_type == "epsilon"
    assert torch.equal(alphas_cumprod_of(demo_model.scheduler_config), AC)
    cond = torch.randn(1, 77, demo_model.unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(3))

    @torch.no_grad()
    def network(x_in, t):
        return demo_model.unet(x_in, t, encoder_hidden_states=cond).sample

    return network


class LatentDraws:
    """A seeded noise_sampler for the demo UNet's latents."""

    def __init__(self) -> None:
        self.generator = torch.Generator().manual_seed(21)

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        return torch.randn(LATENT.shape, generator=self.generator)


def test_demo_unet_restart_is_k_diffusions_heun(oracle, unet_network):
    model = behind(Denoiser(AC), unet_network)
    sigmas = karras(4, SIGMA_MIN, SIGMA_MAX)
    ours = ex.sample_restart(model, LATENT * sigmas[0], sigmas)
    theirs = oracle.sample_heun(model, LATENT * sigmas[0], sigmas, disable=True)
    assert relative_error(ours, theirs) < 1e-6


def test_demo_unet_lcm_is_the_lcm_formulas(unet_network):
    """A1111's LCM model call written out: ε at LCM's nearest step t, x0 = x − σ·ε, then the boundary scaling
    c_out·x0 + c_skip·x at 10·t (σ_data 0.5). Four steps: with three, the middle σ lies halfway (in log σ) between
    LCM's steps 499 and 519, and which one float32 picks changes from CPU to CPU."""
    lcm = ex.LCMDenoiser(AC)
    sigmas, draws = lcm.uniform_sigmas(4), LatentDraws()
    ours = ex.sample_lcm(behind(lcm, unet_network), LATENT * sigmas[0], sigmas, noise_sampler=LatentDraws())
    x = LATENT * sigmas[0]
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        t = min(range(19, 1000, 20), key=lambda step: abs(math.log(sigma) - math.log(float(SIGMAS[step]))))
        eps = unet_network(x / (sigma**2 + 1) ** 0.5, torch.tensor([float(t)]))
        c_skip, c_out = 0.25 / ((10 * t) ** 2 + 0.25), 10 * t / ((10 * t) ** 2 + 0.25) ** 0.5
        x = c_out * (x - sigma * eps) + c_skip * x
        if sigma_next > 0:
            x = x + sigma_next * draws(sigma, sigma_next)
    assert relative_error(ours, x) < 1e-5
