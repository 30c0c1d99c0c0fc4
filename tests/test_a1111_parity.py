"""The same infotext gives A1111's image (issue 19): jobs run through the project's Txt2Img / Img2Img must equal
tests/a1111_oracle.py's independent rebuild of A1111 1.10's pipeline within 2 levels per pixel.

Covered: every sampler with every schedule type that applies to it (txt2img on the demo checkpoint, 64×64,
3 steps, batch 1, CPU noise, ENSD 0); every sampler with each combination of the CPU or NV source, ENSD 0 or
31337 and a batch of one or two; a batch count of two; prompts of two chunks; an SD 2.x v-prediction
checkpoint with every sampler and schedule type; img2img at denoising 0.5 and 0.75, and with
img2img_fix_steps; the settings that change the σ or the noise, once each. And the oracle's own footing:
A1111's SD1.5 σ tables, DDIM timesteps and NV values. A prompt longer than its negative prompt is covered too:
A1111 (pad_cond_uncond off) runs the two in separate UNet calls."""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import a1111_oracle as oracle
from modules.checkpoints import CheckpointInfo, HashCache
from modules.engine import Engine
from modules.generation import RunSettings, Txt2Img
from modules.generation_params import GenerationParams
from modules.img2img import Img2Img, Img2ImgInputs
from modules.sampling import registry
from modules.sampling.passes import SamplingSettings
from modules.sd_models import load_model
from test_sampling_noise import A1111_SEED_0
from test_sampling_schedules import SD15_KARRAS_10, SD15_UNIFORM_10
from tiny_models import write_tiny_checkpoint

TOLERANCE = 2  # levels of 255, per pixel and channel
LATENT_TOLERANCE = 1e-4  # of the largest latent value
BASE = oracle.Job("Euler", prompt="a lighthouse on a cliff at dawn", negative_prompt="blurry, dark", seed=1234,
                  steps=3, cfg_scale=7.0)
CPU = {"randn_source": "CPU"}
LONG_PROMPT = ", ".join(["a lighthouse on a cliff at dawn with seagulls"] * 12)  # 2 chunks

# (source, ENSD, batch size): every combination but the base case (CPU, 0, 1), which the schedule test covers
NOISE_AXES = [axes for axes in itertools.product(("CPU", "NV"), (0, 31337), (1, 2)) if axes != ("CPU", 0, 1)]
SETTINGS = [
    ("Euler", "Karras", {"sigma_min": 0.1}),
    ("Euler", "Karras", {"sigma_max": 8.0}),
    ("Euler", "Karras", {"rho": 3.0}),
    ("Euler", "Polyexponential", {"rho": 2.0}),
    ("Euler", "Karras", {"use_old_karras_scheduler_sigmas": True}),
    ("Euler", "Automatic", {"always_discard_next_to_last_sigma": True}),
    ("DDIM", "Automatic", {"always_discard_next_to_last_sigma": True}),
    ("Euler", "Automatic", {"sgm_noise_multiplier": True}),
    ("Euler", "Automatic", {"s_churn": 1.0}),
    ("Euler", "Automatic", {"s_churn": 2.0, "s_tmin": 0.5, "s_tmax": 5.0, "s_noise": 1.003}),
    ("Euler a", "Automatic", {"eta_ancestral": 0.0}),
    ("DPM2 a", "Automatic", {"s_noise": 0.9}),
    ("Euler", "Beta", {"beta_dist_alpha": 0.4, "beta_dist_beta": 0.8}),
    ("UniPC", "Automatic", {"uni_pc_variant": "bh2", "uni_pc_skip_type": "logSNR", "uni_pc_order": 2,
                            "uni_pc_lower_order_final": False}),
]


def schedules_of(sampler: str) -> list[str]:
    """Automatic and the 11 schedule types for k-diffusion samplers and LCM; Automatic for timestep samplers."""
    if oracle.SAMPLERS[sampler].kind == oracle.TIMESTEPS:
        return ["Automatic"]
    return list(oracle.SCHEDULE_NAMES)


SAMPLER_SCHEDULES = [(sampler, schedule) for sampler in oracle.SAMPLERS for schedule in schedules_of(sampler)]


@pytest.fixture(scope="module")
def jobs():
    engine = Engine()
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def sd1(demo_model) -> oracle.LDMModel:
    return oracle.LDMModel(demo_model)


@pytest.fixture(scope="module")
def sd2_v(tmp_path_factory) -> oracle.LDMModel:
    """A tiny SD 2.x checkpoint whose sidecar .yaml makes it v-prediction, as A1111 reads it."""
    folder = tmp_path_factory.mktemp("sd2v")
    path = write_tiny_checkpoint("sd2", folder / "tiny-sd2-v.safetensors", seed=3)
    path.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    model = load_model(CheckpointInfo(path, path.name), torch.device("cpu"), torch.float32, folder,
                       HashCache(folder / "cache.json"))
    assert model.prediction_type == "v_prediction"
    return oracle.LDMModel(model, v_prediction=True)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((BASE.width, BASE.height), Image.LANCZOS)


class DecodedLatents:
    """Keeps the latents a job decodes, batch by batch: the sampler's result, compared with the oracle's besides
    the pixels."""

    def decode(self, latents, model=None):
        self.decoded = [*getattr(self, "decoded", []), latents.float().cpu()]
        return super().decode(latents, model)


class RecordedTxt2Img(DecodedLatents, Txt2Img):
    pass


class RecordedImg2Img(DecodedLatents, Img2Img):
    pass


def project_run(jobs: Engine, model, job: oracle.Job, settings: dict, init: Image.Image | None = None,
                n_iter: int = 1) -> tuple[torch.Tensor, list[np.ndarray]]:
    """The project's (latents, pixels) for the job and settings."""
    params = GenerationParams(prompt=job.prompt, negative_prompt=job.negative_prompt, seed=job.seed, steps=job.steps,
                              cfg_scale=job.cfg_scale, width=job.width, height=job.height, batch_size=job.batch_size,
                              n_iter=n_iter, sampler_name=job.sampler, scheduler=job.scheduler,
                              clip_skip=job.clip_skip, denoising_strength=job.denoising_strength or 0.75)
    run = RunSettings(sampling=SamplingSettings(**settings))
    if init is None:
        txt2img = RecordedTxt2Img(model, params, None, run)
    else:
        txt2img = RecordedImg2Img(model, params, None, run, inputs=Img2ImgInputs([init]))

    def make(ctx):
        txt2img.ctx = ctx
        return txt2img.run()

    result = jobs.call("parity", make, timeout=300)
    return torch.cat(txt2img.decoded), [np.asarray(image) for image in result.images]


def oracle_run(ldm: oracle.LDMModel, job: oracle.Job, settings: dict, init: Image.Image | None = None
               ) -> tuple[torch.Tensor, list[np.ndarray]]:
    """A1111's (latents, pixels) for the job and settings, by the oracle."""
    latent = None if init is None else oracle.encode_image(ldm, init)
    latents = oracle.sample(ldm, job, oracle.Opts(**settings), latent)
    return latents, oracle.decode(ldm, latents)


def max_difference(ours: list[np.ndarray], theirs: list[np.ndarray]) -> int:
    assert len(ours) == len(theirs) > 0
    assert all(a.shape == b.shape == (BASE.height, BASE.width, 3) for a, b in zip(ours, theirs))
    return max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(ours, theirs))


def assert_same(ours: tuple[torch.Tensor, list[np.ndarray]], theirs: tuple[torch.Tensor, list[np.ndarray]]) -> None:
    """Pixels within TOLERANCE; and, since the demo VAE hides latent errors of up to ~0.1, the latents within
    LATENT_TOLERANCE of their scale, which only float rounding can stay inside."""
    (our_latents, our_pixels), (their_latents, their_pixels) = ours, theirs
    pixels = max_difference(our_pixels, their_pixels)
    latents = float((our_latents - their_latents).abs().max() / their_latents.abs().max())
    assert pixels <= TOLERANCE, f"pixels differ by up to {pixels} levels (latents by {latents:.1e})"
    assert latents <= LATENT_TOLERANCE, f"latents differ by {latents:.1e} of their scale (pixels by {pixels})"


def assert_parity(jobs: Engine, ldm: oracle.LDMModel, job: oracle.Job, settings: dict,
                  init: Image.Image | None = None) -> None:
    assert_same(project_run(jobs, ldm.model, job, settings, init), oracle_run(ldm, job, settings, init))


# --- the oracle's footing ---------------------------------------------------------------------------------------

def test_the_oracle_knows_every_sampler_and_schedule_type():
    assert set(oracle.SAMPLERS) == set(registry.SAMPLER_NAMES)
    assert list(oracle.SCHEDULE_NAMES) == registry.SCHEDULE_LABELS


def test_the_oracle_gives_a1111s_sd15_tables(sd1):
    """A1111's printed SD1.5 σ at 10 steps (the project's are checked in test_sampling_schedules.py)."""
    wrap = oracle.kd_external.CompVisDenoiser(sd1)
    euler = oracle.SAMPLERS["Euler"]
    uniform = oracle.get_sigmas(euler, "Uniform", 10, wrap, oracle.Opts())
    karras = oracle.get_sigmas(euler, "Karras", 10, wrap, oracle.Opts())
    assert uniform.tolist() == pytest.approx(SD15_UNIFORM_10, abs=5e-5)
    assert karras.tolist() == pytest.approx(SD15_KARRAS_10, abs=5e-5)


def test_the_oracle_gives_a1111s_ddim_timesteps():
    assert oracle.a1111_timesteps(10).tolist() == [1, 101, 201, 301, 401, 501, 601, 701, 801, 901]
    assert oracle.a1111_timesteps(3).tolist() == [1, 334, 667, 999]


def test_the_oracles_nv_noise_gives_a1111s_values_for_seed_0():
    noise = oracle.ImageNoise((3, 4), [0], "NV", 0).first()[0]
    assert np.abs(noise.numpy().ravel() - A1111_SEED_0).max() < 3e-7


def test_the_comparison_tells_a_schedule_and_an_ensd_apart(jobs, sd1):
    job = replace(BASE, sampler="Euler a")
    _, theirs = oracle_run(sd1, job, CPU)
    assert max_difference(project_run(jobs, sd1.model, replace(job, scheduler="Karras"), CPU)[1], theirs) > TOLERANCE
    other_ensd = CPU | {"eta_noise_seed_delta": 31337}
    assert max_difference(project_run(jobs, sd1.model, job, other_ensd)[1], theirs) > TOLERANCE


# --- parity -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler,schedule", SAMPLER_SCHEDULES)
def test_every_sampler_and_schedule_type(jobs, sd1, sampler, schedule):
    assert_parity(jobs, sd1, replace(BASE, sampler=sampler, scheduler=schedule), CPU)


@pytest.mark.parametrize("source,ensd,batch", NOISE_AXES)
@pytest.mark.parametrize("sampler", list(oracle.SAMPLERS))
def test_noise_sources_ensd_and_batches(jobs, sd1, sampler, source, ensd, batch):
    settings = {"randn_source": source, "eta_noise_seed_delta": ensd} | ({"eta_ddim": 1.0} if sampler == "DDIM"
                                                                          else {})
    assert_parity(jobs, sd1, replace(BASE, sampler=sampler, batch_size=batch), settings)


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ SDE"])
def test_batch_count(jobs, sd1, sampler):
    """The second batch of a batch count of 2 is A1111's batch of the next seed (its noise, its Brownian tree)."""
    job = replace(BASE, sampler=sampler)
    batches = [oracle_run(sd1, replace(job, seed=job.seed + k), CPU) for k in range(2)]
    theirs = torch.cat([latents for latents, _ in batches]), [image for _, images in batches for image in images]
    assert_same(project_run(jobs, sd1.model, job, CPU, n_iter=2), theirs)


def test_long_prompts(jobs, sd1):
    """Prompt and negative prompt of two 75-token chunks each: one UNet batch of 154-token conditionings."""
    assert_parity(jobs, sd1, replace(BASE, prompt=LONG_PROMPT, negative_prompt=f"{LONG_PROMPT}, blurry"), CPU)


@pytest.mark.parametrize("sampler", ["Euler", "DDIM"])
def test_prompt_longer_than_the_negative_prompt(jobs, sd1, sampler):
    assert_parity(jobs, sd1, replace(BASE, sampler=sampler, prompt=LONG_PROMPT), CPU)


@pytest.mark.parametrize("sampler,schedule", SAMPLER_SCHEDULES)
def test_v_prediction(jobs, sd2_v, sampler, schedule):
    assert_parity(jobs, sd2_v, replace(BASE, sampler=sampler, scheduler=schedule), CPU)


@pytest.mark.parametrize("strength", [0.5, 0.75])
@pytest.mark.parametrize("sampler", ["Euler a", "DPM2", "DDIM", "UniPC"])
def test_img2img(jobs, sd1, photo, sampler, strength):
    assert_parity(jobs, sd1, replace(BASE, sampler=sampler, steps=6, denoising_strength=strength), CPU, photo)


@pytest.mark.parametrize("sampler", ["Euler a", "DDIM"])
def test_img2img_fix_steps(jobs, sd1, photo, sampler):
    job = replace(BASE, sampler=sampler, steps=3, denoising_strength=0.5)
    assert_parity(jobs, sd1, job, CPU | {"img2img_fix_steps": True}, photo)


@pytest.mark.parametrize("sampler,schedule,settings", SETTINGS)
def test_settings(jobs, sd1, sampler, schedule, settings):
    assert_parity(jobs, sd1, replace(BASE, sampler=sampler, scheduler=schedule), CPU | settings)
