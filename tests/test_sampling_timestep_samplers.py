"""modules.sampling.timestep_samplers: A1111 1.10's DDIM, DDIM CFG++, PLMS and UniPC, its timesteps and its img2img
start. Checked on an analytic model (Gaussian data: the x0 prediction and the probability-flow solution in
closed form) and on the demo checkpoint's UNet behind our Denoiser, against independent implementations:
diffusers' DDIMScheduler and UniPCMultistepScheduler stepping A1111's timesteps, the PLMS and CFG++ formulas
transcribed here, and numbers A1111's own code produced (see A1111_REFERENCE)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UniPCMultistepScheduler

from modules.errors import UserError
from modules.sampling import timestep_samplers as ts
from modules.sampling.denoiser import Denoiser, alphas_cumprod_of

SD15 = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
AC = alphas_cumprod_of(SD15)
SIGMAS = Denoiser(AC).sigmas
SHAPE = (1, 2, 2, 2)
DATA_STD = 0.6


def _ramp(fn) -> torch.Tensor:
    return fn(torch.arange(8, dtype=torch.float64)).to(torch.float32).reshape(SHAPE)


MEAN = _ramp(lambda k: -0.9 + 1.7 * k / 7)
MEAN_UNCOND = _ramp(lambda k: 0.4 * torch.cos(2.1 * k))
START = _ramp(lambda k: 1.1 * torch.sin(1.3 * k + 0.4))


def draw(k: int) -> torch.Tensor:
    """The k-th 'random' draw: deterministic, so A1111's code could be given the same ones."""
    return _ramp(lambda j: 1.3 * torch.cos((0.7 + 0.37 * k) * j + 0.5 * k))


class Draws:
    """A noise_sampler handing out draw(0), draw(1), … and recording its σ arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        self.calls.append((float(sigma), float(sigma_next)))
        return draw(len(self.calls) - 1)


def posterior(x: torch.Tensor, sigma: torch.Tensor, mean: torch.Tensor = MEAN) -> torch.Tensor:
    """E[x0 | x0 + σ·ε = x] for x0 ~ N(mean, DATA_STD²) per element: the exact denoiser of Gaussian data."""
    variance = sigma.reshape(-1, 1, 1, 1).to(x.dtype) ** 2
    return (DATA_STD**2 * x + variance * mean.to(x.dtype)) / (DATA_STD**2 + variance)


def flow_solution(x: torch.Tensor, sigma: float, sigma_end: float, mean: torch.Tensor = MEAN) -> torch.Tensor:
    """The probability-flow ODE's exact solution for Gaussian data: (x − μ)/√(s² + σ²) is constant."""
    return mean + (x - mean) * math.sqrt((DATA_STD**2 + sigma_end**2) / (DATA_STD**2 + sigma**2))


class Guided:
    """An analytic CFG model with what DDIM CFG++ needs of guidance.CFGDenoiser: cfg_scale and last_uncond."""

    def __init__(self, cfg_scale: float = 7.0, mean_uncond: torch.Tensor = MEAN_UNCOND) -> None:
        self.cfg_scale, self.mean_uncond = cfg_scale, mean_uncond
        self.last_uncond = None
        self.scales_seen: set[float] = set()

    def __call__(self, x, sigma):
        self.scales_seen.add(self.cfg_scale)
        cond, self.last_uncond = posterior(x, sigma), posterior(x, sigma, self.mean_uncond)
        return self.last_uncond + (cond - self.last_uncond) * self.cfg_scale


def eps_at(x_t: torch.Tensor, t: int, mean: torch.Tensor = MEAN) -> torch.Tensor:
    """The analytic model as an ε network: ε at the VP latent x_t and training timestep t."""
    sigma = SIGMAS[t]
    x = x_t * (sigma**2 + 1) ** 0.5
    return (x - posterior(x, sigma.reshape(1), mean)) / sigma


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference.double()).abs().max() / reference.double().abs().max())


# --- A1111's timesteps and img2img start -------------------------------------------------------------------


def test_a1111_timesteps():
    assert ts.a1111_timesteps(10).tolist() == [1, 101, 201, 301, 401, 501, 601, 701, 801, 901]
    assert ts.a1111_timesteps(20).tolist() == list(range(1, 1000, 50))
    # 1000 // 3 = 333: range(0, 1000, 333) has a 4th value, 999 + 1 clipped to 999
    assert ts.a1111_timesteps(3).tolist() == [1, 334, 667, 999]
    assert ts.a1111_timesteps(7).tolist() == [1 + 142 * k for k in range(8)]  # 8 values for 7 steps
    assert ts.a1111_timesteps(30).tolist() == [1 + 33 * k for k in range(31)]
    assert ts.a1111_timesteps(150).tolist()[-1] == 997 and len(ts.a1111_timesteps(150)) == 167
    assert ts.a1111_timesteps(1).tolist() == [1]
    assert ts.a1111_timesteps(10, discard_next_to_last_sigma=True).tolist() == [1 + 90 * k for k in range(12)]
    for steps in (0, 1001):
        with pytest.raises(ValueError):
            ts.a1111_timesteps(steps)


def test_img2img_timesteps():
    # 20 steps at 0.5: t_enc = 10, the sampler runs the first 10, the init latent is noised to the 11th
    tail, start = ts.img2img_timesteps(20, 0.5)
    assert tail.tolist() == list(range(1, 500, 50)) and start == 501
    tail, start = ts.img2img_timesteps(30, 0.75)  # t_enc = int(22.5) = 22, spacing 33
    assert tail.tolist() == [1 + 33 * k for k in range(22)] and start == 1 + 33 * 22
    # img2img_fix_steps: the schedule is built for 20 / 0.5 = 40 steps and the last 19 + 1 of them run
    tail, start = ts.img2img_timesteps(20, 0.5, fix_steps=True)
    assert tail.tolist() == [1 + 25 * k for k in range(19)] and start == 476
    assert ts.img2img_timesteps(20, 1.0)[1] == 951  # strength capped at 0.999: t_enc = 19
    assert ts.img2img_steps(20, 0.3) == (20, 6) and ts.img2img_steps(20, 0.3, fix_steps=True) == (66, 19)


def test_noised_init_is_diffusers_add_noise():
    init, noise = START, draw(0)
    expected = DDPMScheduler(**SD15).add_noise(init, noise, torch.tensor([501]))
    assert torch.allclose(ts.noised_init(init, noise, AC, 501), expected, rtol=1e-6, atol=1e-6)
    extra = ts.noised_init(init, noise, AC, 501, extra_noise=0.2) - ts.noised_init(init, noise, AC, 501)
    assert torch.allclose(extra, noise * 0.2 * AC[501].sqrt(), atol=1e-6)


# --- The analytic model against independent implementations ------------------------------------------------

# Made once by running A1111 1.10's own functions outside this repository: sd_samplers_timesteps_impl.ddim,
# ddim_cfgpp, plms and unipc with the UniPC class of modules/models/diffusion/uni_pc/uni_pc.py (the verbatim
# copies in lllyasviel/stable-diffusion-webui-forge), on SD1.5's alphas_cumprod, START as x, A1111's timesteps
# (img2img: the first int(strength·steps) of them, is_img2img=True), and as the model an ε network equal to
# the analytic one here: ε at (x_t, t) from posterior() at σ = the model's σ at t (log σ interpolated) and
# x = x_t·√(σ²+1); CFG++ with cond_scale 7 and MEAN_UNCOND as the negative; every torch.randn_like replaced by
# draw(0), draw(1), … The UniPC keys are (variant, skip type, order, lower order final, steps, img2img
# strength); printed to 9 significant digits.
A1111_REFERENCE = {
    ("ddim", 10, 0.0): [
        -0.630210698,
        -0.0688135847,
        -0.311196327,
        -0.667962253,
        -0.282142371,
        0.615341783,
        1.04397976,
        0.710121572,
    ],
    ("ddim", 7, 0.5): [
        -0.514813066,
        -0.546628654,
        -0.362030149,
        -0.667954147,
        -0.174214184,
        0.383716315,
        0.834545434,
        0.782280326,
    ],
    ("ddim_cfgpp", 10, 0.0): [
        -1.2275902,
        -0.277990103,
        -0.411455661,
        -0.930520415,
        -0.153869346,
        0.847171307,
        1.1162945,
        1.17581725,
    ],
    ("ddim_cfgpp", 7, 1.0): [
        -0.725103438,
        -0.830089211,
        -0.147308081,
        -0.278494895,
        0.101777531,
        0.1065116,
        0.576494694,
        0.56214726,
    ],
    ("plms", 10): [
        -0.587049067,
        0.0254876725,
        -0.294713467,
        -0.747648954,
        -0.3388592,
        0.663685918,
        1.12216365,
        0.695810914,
    ],
    ("plms", 30): [
        -0.60513854,
        0.0224644486,
        -0.303589612,
        -0.765354872,
        -0.346068174,
        0.680290222,
        1.15037894,
        0.715792716,
    ],
    ("unipc", "bh1", "time_uniform", 3, True, 10, None): [
        -0.633993208,
        -0.0409627333,
        -0.31458807,
        -0.71154362,
        -0.307825208,
        0.64758265,
        1.09746861,
        0.725212336,
    ],
    ("unipc", "bh2", "time_uniform", 3, True, 10, None): [
        -0.636175513,
        -0.0460229516,
        -0.315405607,
        -0.707105637,
        -0.304709524,
        0.644843161,
        1.09302747,
        0.725824058,
    ],
    ("unipc", "vary_coeff", "time_uniform", 3, True, 10, None): [
        -0.641995132,
        -0.0595165268,
        -0.317586094,
        -0.695270717,
        -0.296401322,
        0.637538195,
        1.08118463,
        0.727455199,
    ],
    ("unipc", "bh1", "logSNR", 3, True, 10, None): [
        -0.600773513,
        0.0360633433,
        -0.302141666,
        -0.779100955,
        -0.355251789,
        0.68928206,
        1.16507244,
        0.715901971,
    ],
    ("unipc", "bh2", "time_quadratic", 2, True, 8, None): [
        -0.605925858,
        0.0241164621,
        -0.304072142,
        -0.768622696,
        -0.347895741,
        0.682814419,
        1.15458727,
        0.717345893,
    ],
    ("unipc", "bh1", "time_uniform", 4, False, 12, None): [
        -0.78624481,
        -0.39396888,
        -0.371633172,
        -0.401930928,
        -0.0904762894,
        0.456487119,
        0.787645221,
        0.767897367,
    ],
    ("unipc", "vary_coeff", "logSNR", 2, True, 6, None): [
        -0.604346514,
        0.0277790315,
        -0.303480327,
        -0.771835387,
        -0.350150943,
        0.684797645,
        1.15780187,
        0.716903329,
    ],
    ("unipc", "vary_coeff", "time_uniform", 4, False, 12, None): [
        -0.787625432,
        -0.397183478,
        -0.372146696,
        -0.399116844,
        -0.0884926915,
        0.454741448,
        0.784835815,
        0.768281758,
    ],
    ("unipc", "bh2", "time_uniform", 1, True, 5, None): [
        -0.689509451,
        -0.169687554,
        -0.335388333,
        -0.598643363,
        -0.228566617,
        0.577894926,
        0.984490097,
        0.740772247,
    ],
    ("unipc", "bh1", "time_uniform", 3, True, 20, 0.6): [
        -0.374710321,
        0.210577577,
        -0.198590428,
        -0.749275565,
        -0.381216168,
        0.619886458,
        1.04092121,
        0.518578231,
    ],
    ("unipc", "vary_coeff", "time_quadratic", 3, True, 20, 0.35): [
        -0.0630194843,
        0.535702407,
        -0.0603726357,
        -0.826474547,
        -0.488743484,
        0.60956192,
        1.01094091,
        0.278890491,
    ],
}


def run_case(key: tuple) -> torch.Tensor:
    kind = key[0]
    if kind == "ddim":
        return ts.sample_ddim(
            posterior, START, ts.a1111_timesteps(key[1]), alphas_cumprod=AC, eta=key[2], noise_sampler=Draws()
        )
    if kind == "ddim_cfgpp":
        return ts.sample_ddim_cfgpp(
            Guided(), START, ts.a1111_timesteps(key[1]), alphas_cumprod=AC, eta=key[2], noise_sampler=Draws()
        )
    if kind == "plms":
        return ts.sample_plms(posterior, START, ts.a1111_timesteps(key[1]), alphas_cumprod=AC)
    variant, skip_type, order, lower_order_final, steps, strength = key[1:]
    timesteps = ts.a1111_timesteps(steps) if strength is None else ts.img2img_timesteps(steps, strength)[0]
    return ts.sample_unipc(
        posterior,
        START,
        timesteps,
        alphas_cumprod=AC,
        variant=variant,
        skip_type=skip_type,
        order=order,
        lower_order_final=lower_order_final,
        is_img2img=strength is not None,
    )


@pytest.mark.parametrize("key", A1111_REFERENCE, ids=str)
def test_matches_a1111(key):
    # An order-4 last step over UniPC's widest λ gap magnifies A1111's float32 rounding (rks and R are float32
    # there) to ~2e-5; everywhere else the difference is A1111's float32 arithmetic itself, below 1e-6.
    tolerance = 5e-5 if key[0] == "unipc" and key[3] == 4 and not key[4] else 1e-5
    reference = torch.tensor(A1111_REFERENCE[key]).reshape(SHAPE)
    assert relative_error(run_case(key), reference) < tolerance


# Made the same way with a v-prediction network: v at (x_t, τ) = √ā·ε − √(1−ā)·x0 of the analytic model at
# σ(τ) (ā = 1/(σ²+1)), which A1111's CompVisTimestepsVDenoiser turns into ε with ᾱ[int(τ)]; UniPC's τ are
# fractional here. Keys: (variant, skip type, order, steps).
A1111_V_PREDICTION = {
    ("bh2", "time_uniform", 3, 10): [
        -0.637316346,
        -0.0463689826,
        -0.315957129,
        -0.708004832,
        -0.305032462,
        0.645733416,
        1.09454715,
        0.727024734,
    ],
    ("bh1", "logSNR", 2, 8): [
        -0.581998706,
        0.0817652419,
        -0.29522419,
        -0.820319116,
        -0.383897007,
        0.715040445,
        1.20690441,
        0.711470604,
    ],
}


def v_network(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    sigma = Denoiser(AC).t_to_sigma(t.float()).reshape(-1, 1, 1, 1)
    x = x_t * (sigma**2 + 1) ** 0.5
    x0 = posterior(x, sigma)
    alpha = 1 / (sigma**2 + 1)
    return alpha**0.5 * (x - x0) / sigma - (1 - alpha) ** 0.5 * x0


@pytest.mark.parametrize("key", A1111_V_PREDICTION, ids=str)
def test_unipc_v_prediction_matches_a1111(key):
    denoiser = Denoiser(AC, "v_prediction")

    def model(x, sigma):
        latents, t = denoiser.model_input(x, sigma)
        return denoiser.denoised(v_network(latents, t), x, sigma)

    variant, skip_type, order, steps = key
    reference = torch.tensor(A1111_V_PREDICTION[key]).reshape(SHAPE)
    common = dict(alphas_cumprod=AC, variant=variant, skip_type=skip_type, order=order)
    ours = ts.sample_unipc(model, START, ts.a1111_timesteps(steps), v_prediction=True, **common)
    assert relative_error(ours, reference) < 1e-5
    # without A1111's whole-timestep ᾱ the result is ~1e-3 off
    assert relative_error(ts.sample_unipc(model, START, ts.a1111_timesteps(steps), **common), reference) > 1e-4


@pytest.mark.parametrize(("steps", "eta"), [(10, 0.0), (20, 0.8)])
def test_ddim_is_diffusers_ddim_on_a1111_timesteps(steps, eta):
    """diffusers' DDIM stepping from A1111's last timestep down to its first (A1111 never steps from it)."""
    scheduler = DDIMScheduler(**SD15, clip_sample=False, set_alpha_to_one=False)
    scheduler.alphas_cumprod = AC.clone()
    scheduler.set_timesteps(steps)
    timesteps, draws, x = ts.a1111_timesteps(steps), Draws(), START
    for t in timesteps.flip(0)[:-1].tolist():
        x = scheduler.step(eps_at(x, t), t, x, eta=eta, variance_noise=draws(0, 0)).prev_sample
    ours = ts.sample_ddim(posterior, START, timesteps, alphas_cumprod=AC, eta=eta, noise_sampler=Draws())
    assert relative_error(ours, x) < 1e-5


def unipc_scheduler(variant: str, order: int, lower_order_final: bool, steps: int) -> UniPCMultistepScheduler:
    """diffusers' UniPC on the same discretisation as A1111's time_uniform when 999 / steps is whole: timesteps
    999 − k·999/steps, then the first training step's σ."""
    scheduler = UniPCMultistepScheduler(
        **SD15,
        solver_order=order,
        solver_type=variant,
        lower_order_final=lower_order_final,
        final_sigmas_type="sigma_min",
    )
    scheduler.alphas_cumprod = AC.clone()
    scheduler.set_timesteps(steps)
    return scheduler


@pytest.mark.parametrize(
    ("variant", "order", "lower_order_final"),
    [("bh1", 3, True), ("bh2", 3, True), ("bh2", 2, True), ("bh1", 1, True), ("bh1", 3, False)],
)
def test_unipc_is_diffusers_unipc(variant, order, lower_order_final):
    timesteps = ts.a1111_timesteps(26)  # 27 values: UniPC's model timesteps are 999 − 37k, all whole
    scheduler = unipc_scheduler(variant, order, lower_order_final, len(timesteps))
    x = START
    for t in scheduler.timesteps:
        x = scheduler.step(eps_at(x, int(t)), t, x).prev_sample
    ours = ts.sample_unipc(
        posterior,
        START,
        timesteps,
        alphas_cumprod=AC,
        variant=variant,
        order=order,
        lower_order_final=lower_order_final,
    )
    assert relative_error(ours, x) < 1e-5


def naive_plms(eps, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """PLMS as Liu et al. (2022) and the LDM code write it, on an ε network over VP latents."""
    earlier: list[torch.Tensor] = []
    descending = timesteps.flip(0).tolist()
    for t, t_prev in itertools.pairwise(descending):
        a, a_prev = float(AC[t]), float(AC[t_prev])

        def ddim(e, x=x, a=a, a_prev=a_prev):
            return a_prev**0.5 * (x - (1 - a) ** 0.5 * e) / a**0.5 + (1 - a_prev) ** 0.5 * e

        e = eps(x, t)
        if len(earlier) == 0:
            combined = (e + eps(ddim(e), t_prev)) / 2
        elif len(earlier) == 1:
            combined = (3 * e - earlier[-1]) / 2
        elif len(earlier) == 2:
            combined = (23 * e - 16 * earlier[-1] + 5 * earlier[-2]) / 12
        else:
            combined = (55 * e - 59 * earlier[-1] + 37 * earlier[-2] - 9 * earlier[-3]) / 24
        x = ddim(combined)
        earlier = ([*earlier, e])[-3:]
    return x


def naive_ddim_cfgpp(eps_cond, eps_uncond, x: torch.Tensor, timesteps: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    """DDIM CFG++ at eta 0 as A1111 1.10 writes it: x0 from ε guided at cfg_scale / 12.5, direction from ε_uncond."""
    descending = timesteps.flip(0).tolist()
    for t, t_prev in itertools.pairwise(descending):
        a, a_prev = float(AC[t]), float(AC[t_prev])
        e_c, e_u = eps_cond(x, t), eps_uncond(x, t)
        e = e_u + (e_c - e_u) * cfg_scale / 12.5
        x = a_prev**0.5 * (x - (1 - a) ** 0.5 * e) / a**0.5 + (1 - a_prev) ** 0.5 * e_u
    return x


@pytest.mark.parametrize("steps", [5, 30])
def test_plms_is_the_plms_formulas(steps):
    timesteps = ts.a1111_timesteps(steps)
    ours = ts.sample_plms(posterior, START, timesteps, alphas_cumprod=AC)
    assert relative_error(ours, naive_plms(eps_at, START, timesteps)) < 1e-5


def test_ddim_cfgpp():
    timesteps = ts.a1111_timesteps(10)
    model = Guided(cfg_scale=6.0)
    ours = ts.sample_ddim_cfgpp(model, START, timesteps, alphas_cumprod=AC)
    assert model.scales_seen == {6.0 / 12.5} and model.cfg_scale == 6.0  # guided at 6 / 12.5, then restored
    expected = naive_ddim_cfgpp(eps_at, lambda x, t: eps_at(x, t, MEAN_UNCOND), START, timesteps, 6.0)
    assert relative_error(ours, expected) < 1e-5
    # with the negative prompt's prediction equal to the positive one, CFG++ is DDIM
    same = ts.sample_ddim_cfgpp(Guided(mean_uncond=MEAN), START, timesteps, alphas_cumprod=AC)
    assert relative_error(same, ts.sample_ddim(posterior, START, timesteps, alphas_cumprod=AC)) < 1e-6


def convergence_rate(errors: list[float], counts: list[int]) -> float:
    return math.log(errors[-2] / errors[-1]) / math.log(counts[-1] / counts[-2])


def test_ddim_and_plms_converge_to_the_probability_flow_solution():
    """Timesteps 161 … 961 evenly spaced (DDIM and PLMS take any ascending list): DDIM is first order in the
    step, PLMS second (its Adams–Bashforth weights average ε over timesteps, not over σ)."""
    counts, x = [40, 80, 160], START.double()
    exact = flow_solution(x * (SIGMAS[961].double() ** 2 + 1) ** 0.5, float(SIGMAS[961]), float(SIGMAS[161]))
    exact_vp = exact * AC[161].double().sqrt()
    for sampler, order in ((ts.sample_ddim, 1), (ts.sample_plms, 2)):
        errors = [
            float((sampler(posterior, x, torch.arange(161, 962, 800 // n), alphas_cumprod=AC) - exact_vp).abs().max())
            for n in counts
        ]
        assert errors[0] > errors[1] > errors[2]
        assert abs(convergence_rate(errors, counts) - order) < 0.15


@pytest.mark.parametrize(("variant", "order"), [("bh1", 1), ("bh2", 1), ("bh1", 2), ("bh2", 2)])
def test_unipc_converges_with_its_order(variant, order):
    """UniPC-p with its corrector is of order p + 1 in the log-SNR step (skip type logSNR: even λ steps)."""
    counts, x = [8, 16, 32], START.double()
    exact = flow_solution(x * (SIGMAS[999].double() ** 2 + 1) ** 0.5, float(SIGMAS[999]), float(SIGMAS[0]))
    exact_vp = exact * AC[0].double().sqrt()
    errors = [
        float(
            (
                ts.sample_unipc(
                    posterior,
                    x,
                    torch.arange(n),
                    alphas_cumprod=AC.double(),
                    variant=variant,
                    order=order,
                    skip_type="logSNR",
                )
                - exact_vp
            )
            .abs()
            .max()
        )
        for n in counts
    ]
    assert errors[0] > errors[1] > errors[2]
    assert convergence_rate(errors, counts) > order + 0.7


# --- Conventions: callbacks, model calls, noise draws, refusals ---------------------------------------------

SAMPLERS = {
    "ddim": lambda model, x, t, **kw: ts.sample_ddim(model, x, t, alphas_cumprod=AC, **kw),
    "ddim_cfgpp": lambda model, x, t, **kw: ts.sample_ddim_cfgpp(Guided(), x, t, alphas_cumprod=AC, **kw),
    "plms": lambda model, x, t, **kw: ts.sample_plms(model, x, t, alphas_cumprod=AC, **kw),
    "unipc": lambda model, x, t, **kw: ts.sample_unipc(model, x, t, alphas_cumprod=AC, **kw),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_callbacks_and_model_calls(name):
    timesteps, calls, reports = ts.a1111_timesteps(10), [], []

    def model(x, sigma):
        calls.append(float(sigma[0]))
        return posterior(x, sigma)

    SAMPLERS[name](model, START, timesteps, callback=reports.append)
    steps = len(timesteps) if name == "unipc" else len(timesteps) - 1
    assert [r["i"] for r in reports] == list(range(steps))
    sigmas = [float(r["sigma"]) for r in reports]
    assert sigmas == sorted(sigmas, reverse=True) and all(r["sigma_hat"] == r["sigma"] for r in reports)
    if name == "ddim_cfgpp":
        return
    assert len(calls) == {"ddim": steps, "plms": steps + 1, "unipc": steps}[name]
    first = reports[0]
    top = SIGMAS[999] if name == "unipc" else SIGMAS[901]
    assert first["sigma"] == pytest.approx(float(top), rel=1e-5)
    # x in k-diffusion scale (the VP latent × √(σ² + 1)) and the model's x0 there
    assert torch.allclose(first["x"], START * (top**2 + 1) ** 0.5, rtol=1e-5)
    assert torch.allclose(first["denoised"], posterior(first["x"], top.reshape(1)), rtol=1e-5, atol=1e-6)


def test_ddim_draws_its_noise_every_step():
    timesteps, draws = ts.a1111_timesteps(5), Draws()
    eta0 = ts.sample_ddim(posterior, START, timesteps, alphas_cumprod=AC, noise_sampler=draws)
    assert len(draws.calls) == 4  # as A1111, which draws (and multiplies by 0) at eta 0
    assert draws.calls[0] == pytest.approx((float(SIGMAS[801]), float(SIGMAS[601])), rel=1e-6)
    assert torch.equal(eta0, ts.sample_ddim(posterior, START, timesteps, alphas_cumprod=AC))
    noisy = ts.sample_ddim(posterior, START, timesteps, alphas_cumprod=AC, eta=1.0, noise_sampler=Draws())
    assert not torch.allclose(noisy, eta0)
    with pytest.raises(ValueError, match="noise_sampler"):
        ts.sample_ddim(posterior, START, timesteps, alphas_cumprod=AC, eta=1.0)


def test_too_few_timesteps():
    # A1111 returns the start untouched when no step is left (1 step, or img2img at a low strength)
    assert torch.equal(ts.sample_ddim(posterior, START, ts.a1111_timesteps(1), alphas_cumprod=AC), START)
    with pytest.raises(UserError, match="UniPC needs at least as many sampling steps as its order"):
        ts.sample_unipc(posterior, START, ts.a1111_timesteps(2), alphas_cumprod=AC, order=3)
    with pytest.raises(ValueError, match="variant"):
        ts.sample_unipc(posterior, START, ts.a1111_timesteps(5), alphas_cumprod=AC, variant="bh3")
    with pytest.raises(ValueError, match="skip type"):
        ts.sample_unipc(posterior, START, ts.a1111_timesteps(5), alphas_cumprod=AC, skip_type="karras")


# --- The demo checkpoint's UNet ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_unet(demo_model):
    """(model: the UNet behind our Denoiser, x0 in k-diffusion scale; eps: the bare UNet on VP latents at a
    training timestep, the way A1111's timestep samplers call it), each for a fixed text conditioning."""
    assert demo_model.prediction_type == "epsilon"
    denoiser = Denoiser(alphas_cumprod_of(demo_model.scheduler_config), demo_model.prediction_type)
    width = demo_model.unet.config.cross_attention_dim
    conds = [torch.randn(1, 77, width, generator=torch.Generator().manual_seed(seed)) for seed in (3, 4)]

    @torch.no_grad()
    def model(x, sigma, cond=0):
        latents, t = denoiser.model_input(x, sigma)
        return denoiser.denoised(demo_model.unet(latents, t, encoder_hidden_states=conds[cond]).sample, x, sigma)

    @torch.no_grad()
    def eps(x_t, t, cond=0):
        return demo_model.unet(x_t, torch.tensor([t]), encoder_hidden_states=conds[cond]).sample

    assert torch.equal(denoiser.alphas_cumprod, AC)
    return model, eps


LATENT = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(11))


def test_demo_unet_ddim_and_cfgpp(demo_unet):
    model, eps = demo_unet
    timesteps = ts.a1111_timesteps(5)
    scheduler = DDIMScheduler(**SD15, clip_sample=False, set_alpha_to_one=False)
    scheduler.alphas_cumprod = AC.clone()
    scheduler.set_timesteps(5)
    x = LATENT
    for t in timesteps.flip(0)[:-1].tolist():
        x = scheduler.step(eps(x, t), t, x).prev_sample
    assert relative_error(ts.sample_ddim(model, LATENT, timesteps, alphas_cumprod=AC), x) < 1e-5

    class DemoGuided:
        cfg_scale, last_uncond = 5.0, None

        def __call__(self, x, sigma):
            cond, self.last_uncond = model(x, sigma, 0), model(x, sigma, 1)
            return self.last_uncond + (cond - self.last_uncond) * self.cfg_scale

    ours = ts.sample_ddim_cfgpp(DemoGuided(), LATENT, timesteps, alphas_cumprod=AC)
    expected = naive_ddim_cfgpp(eps, lambda x, t: eps(x, t, 1), LATENT, timesteps, 5.0)
    assert relative_error(ours, expected) < 1e-5


def test_demo_unet_plms(demo_unet):
    model, eps = demo_unet
    timesteps = ts.a1111_timesteps(5)
    ours = ts.sample_plms(model, LATENT, timesteps, alphas_cumprod=AC)
    assert relative_error(ours, naive_plms(eps, LATENT, timesteps)) < 1e-5


def test_demo_unet_unipc(demo_unet):
    model, eps = demo_unet
    timesteps = torch.arange(9)  # 9 steps: model timesteps 999, 888, …, 111, 0
    scheduler = unipc_scheduler("bh2", 3, True, 9)
    x = LATENT
    for t in scheduler.timesteps:
        x = scheduler.step(eps(x, int(t)), t, x).prev_sample
    ours = ts.sample_unipc(model, LATENT, timesteps, alphas_cumprod=AC, variant="bh2")
    assert relative_error(ours, x) < 1e-5
