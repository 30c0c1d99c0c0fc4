"""The same infotext gives A1111's image (issue 19): jobs run through the project's Txt2Img / Img2Img must equal
tests/a1111_oracle.py's independent rebuild of A1111 1.10's pipeline within 2 levels per pixel.

Covered: every sampler with every schedule type that applies to it (txt2img on the demo checkpoint, 64×64,
3 steps, batch 1, CPU noise, ENSD 0); every sampler with each combination of the CPU or NV source, ENSD 0 or
31337 and a batch of one or two; a batch count of two; prompts of two chunks; an SD 2.x v-prediction
checkpoint with every sampler and schedule type; img2img at denoising 0.5 and 0.75, and with
img2img_fix_steps; the settings that change the σ or the noise, once each. And the oracle's own footing:
A1111's SD1.5 σ tables, DDIM timesteps and NV values. A prompt longer than its negative prompt is covered too:
A1111 (pad_cond_uncond off) runs the two in separate UNet calls.

Then A1111's other features, each on the samplers that exercise it: variation seeds and "Resize seed from"
(both sources, with ENSD); AND parts with weights (of other lengths too), NGMS in σ and in timesteps, NGMS all
steps, Skip Early CFG, Pad conds and Pad conds v0, in batches of one and two; prompt editing and alternation
over model calls (second-order samplers too, texts of other lengths, negative prompts, old timelines); the
txt2img hires pass (Latent modes, Lanczos and None, hires steps 0 or not, another hires sampler, variation
seeds, prompt editing over both passes); inpainting's keep (k-diffusion after denoising, timestep samplers
before); a tiny SDXL checkpoint (and its empty negative prompt, and hires fix); Zero Terminal SNR,
enable_quantization and no_dpmpp_sde_batch_determinism (txt2img, img2img and hires, batches of two)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import a1111_oracle as oracle
import a1111_oracle_features as oracle_features
import numpy as np
import pytest
import torch
from network_memo import remembered_calls
from PIL import Image
from skimage import data
from test_sampling_noise import A1111_SEED_0
from test_sampling_schedules import SD15_KARRAS_10, SD15_UNIFORM_10
from tiny_models import write_tiny_checkpoint

from modules.core.engine import Engine
from modules.imaging.image_tools import ImageTools
from modules.img2img import Img2Img, Img2ImgInputs
from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import USE_SAME_SAMPLER, GenerationParams
from modules.masking import FILL, LATENT_NOISE, LATENT_NOTHING, ORIGINAL
from modules.models.checkpoints import CheckpointInfo, HashCache
from modules.sampling import registry
from modules.sampling.passes import SamplingSettings
from modules.sd_models import load_model

TOLERANCE = 2  # levels of 255, per pixel and channel
LATENT_TOLERANCE = 1e-4  # of the largest latent value
BASE = oracle.Job(
    "Euler", prompt="a lighthouse on a cliff at dawn", negative_prompt="blurry, dark", seed=1234, steps=3, cfg_scale=7.0
)
CPU = {"randn_source": "CPU"}
LONG_PROMPT = ", ".join(["a lighthouse on a cliff at dawn with seagulls"] * 12)  # 2 chunks
TOOLS = ImageTools.create(Path(__file__).parent / "no-models")  # None, Lanczos and Nearest for hires fix

# (source, ENSD, batch size): every combination but the base case (CPU, 0, 1), which the schedule test covers
NOISE_AXES = [("CPU", 31337, 2), ("NV", 0, 1), ("NV", 31337, 2)]  # each source, ENSD and batch size, with every sampler
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
    (
        "UniPC",
        "Automatic",
        {"uni_pc_variant": "bh2", "uni_pc_skip_type": "logSNR", "uni_pc_order": 2, "uni_pc_lower_order_final": False},
    ),
]


def schedules_of(sampler: str) -> list[str]:
    """Automatic and the 11 schedule types for k-diffusion samplers and LCM; Automatic for timestep samplers."""
    if oracle.SAMPLERS[sampler].kind == oracle.TIMESTEPS:
        return ["Automatic"]
    return list(oracle.SCHEDULE_NAMES)


SAMPLER_SCHEDULES = [(sampler, schedule) for sampler in oracle.SAMPLERS for schedule in schedules_of(sampler)]
# v-prediction: every sampler on its default schedule, and every schedule type under Euler (the full product runs
# on the epsilon model above; the prediction rule sits in the denoiser, apart from sampler and schedule)
V_SCHEDULES = [(sampler, "Automatic") for sampler in oracle.SAMPLERS] + [
    ("Euler", schedule) for schedule in schedules_of("Euler") if schedule != "Automatic"
]


@pytest.fixture(scope="module")
def jobs():
    engine = Engine()
    yield engine
    engine.shutdown()


def remembered(ldm: oracle.LDMModel) -> Iterator[oracle.LDMModel]:
    """`ldm` with its UNet and VAE answering repeated calls from memory (tests/network_memo.py): both sides of a
    comparison, and many cases, make the same first calls; a call that differs in any bit still runs."""
    vae = ldm.model.vae
    with remembered_calls(ldm.model.unet, vae.encoder, vae.decoder):
        yield ldm


@pytest.fixture(scope="module")
def sd1(demo_model) -> Iterator[oracle.LDMModel]:
    yield from remembered(oracle.LDMModel(demo_model))


@pytest.fixture(scope="module")
def sd2_v(tmp_path_factory) -> Iterator[oracle.LDMModel]:
    """A tiny SD 2.x checkpoint whose sidecar .yaml makes it v-prediction, as A1111 reads it."""
    folder = tmp_path_factory.mktemp("sd2v")
    path = write_tiny_checkpoint("sd2", folder / "tiny-sd2-v.safetensors", seed=3)
    path.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    model = load_model(
        CheckpointInfo(path, path.name), torch.device("cpu"), torch.float32, folder, HashCache(folder / "cache.json")
    )
    assert model.prediction_type == "v_prediction"
    yield from remembered(oracle.LDMModel(model, v_prediction=True))


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


def project_run(
    jobs: Engine,
    model,
    job: oracle.Job,
    settings: dict,
    init: Image.Image | None = None,
    n_iter: int = 1,
    mask: Image.Image | None = None,
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """The project's (latents, pixels) for the job and settings (img2img from `init`, inpainting where `mask`
    is white, "Whole picture")."""
    params = GenerationParams(
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        seed=job.seed,
        steps=job.steps,
        cfg_scale=job.cfg_scale,
        width=job.width,
        height=job.height,
        batch_size=job.batch_size,
        n_iter=n_iter,
        sampler_name=job.sampler,
        scheduler=job.scheduler,
        clip_skip=job.clip_skip,
        denoising_strength=job.denoising_strength or 0.75,
        subseed=job.subseed,
        subseed_strength=job.subseed_strength,
        seed_resize_from_w=job.seed_resize_from_w,
        seed_resize_from_h=job.seed_resize_from_h,
        enable_hr=job.enable_hr,
        hr_scale=job.hr_scale,
        hr_upscaler=job.hr_upscaler,
        hr_second_pass_steps=job.hr_second_pass_steps,
        hr_sampler_name=job.hr_sampler or USE_SAME_SAMPLER,
        mask_blur=job.mask_blur,
        inpainting_fill=job.inpainting_fill,
        inpaint_full_res=0,
    )
    run = RunSettings(sampling=SamplingSettings(**settings))
    if init is None:
        txt2img = RecordedTxt2Img(model, params, None, run, tools=TOOLS)
    else:
        txt2img = RecordedImg2Img(model, params, None, run, inputs=Img2ImgInputs([init], mask))

    def make(ctx):
        txt2img.ctx = ctx
        return txt2img.run()

    result = jobs.call("parity", make, timeout=300)
    final = [latents for latents in txt2img.decoded if latents.shape[-2:] == txt2img.decoded[-1].shape[-2:]]
    return torch.cat(final), [np.asarray(image) for image in result.images]  # (not the first pass's for hires)


def oracle_run(
    ldm: oracle.LDMModel,
    job: oracle.Job,
    settings: dict,
    init: Image.Image | None = None,
    mask: Image.Image | None = None,
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """A1111's (latents, pixels) for the job and settings, by the oracle; with a mask ("Whole picture"), the
    pixels carry the overlay of the init image."""
    picture = init
    if mask is not None:
        mask = oracle_features.inpaint_mask(mask, job.mask_blur, job.mask_blur)
        picture = init if job.inpainting_fill == ORIGINAL else oracle_features.fill(init, mask)
    latent = None if init is None else oracle.encode_image(ldm, picture)
    latents = oracle.sample(ldm, job, oracle.Opts(**settings), latent, mask)
    pixels = oracle.decode(ldm, latents)
    if mask is not None:
        pixels = [np.asarray(oracle_features.overlay(init, Image.fromarray(image), mask)) for image in pixels]
    return latents, pixels


def max_difference(ours: list[np.ndarray], theirs: list[np.ndarray]) -> int:
    assert len(ours) == len(theirs) > 0
    assert all(a.shape == b.shape and a.shape[-1] == 3 for a, b in zip(ours, theirs))
    return max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(ours, theirs))


def assert_same(ours: tuple[torch.Tensor, list[np.ndarray]], theirs: tuple[torch.Tensor, list[np.ndarray]]) -> None:
    """Pixels within TOLERANCE; and, since the demo VAE hides latent errors of up to ~0.1, the latents within
    LATENT_TOLERANCE of their scale, which only float rounding can stay inside."""
    (our_latents, our_pixels), (their_latents, their_pixels) = ours, theirs
    pixels = max_difference(our_pixels, their_pixels)
    latents = float((our_latents - their_latents).abs().max() / their_latents.abs().max())
    assert pixels <= TOLERANCE, f"pixels differ by up to {pixels} levels (latents by {latents:.1e})"
    assert latents <= LATENT_TOLERANCE, f"latents differ by {latents:.1e} of their scale (pixels by {pixels})"


def assert_parity(
    jobs: Engine,
    ldm: oracle.LDMModel,
    job: oracle.Job,
    settings: dict,
    init: Image.Image | None = None,
    mask: Image.Image | None = None,
) -> None:
    ours = project_run(jobs, ldm.model, job, settings, init, mask=mask)
    assert_same(ours, oracle_run(ldm, job, settings, init, mask))


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
    settings = {"randn_source": source, "eta_noise_seed_delta": ensd} | ({"eta_ddim": 1.0} if sampler == "DDIM" else {})
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


@pytest.mark.parametrize("sampler,schedule", V_SCHEDULES)
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


# --- variation seeds and "Resize seed from" ---------------------------------------------------------------------

VARIATIONS = [
    {"subseed": 98765, "subseed_strength": 0.3},
    {"subseed": 98765, "subseed_strength": 1.0},
    {"seed_resize_from_w": 72, "seed_resize_from_h": 40},  # wider and lower: cropped and pasted, an odd excess
    {"seed_resize_from_w": 128, "seed_resize_from_h": 96, "subseed": 5, "subseed_strength": 0.5},
]


@pytest.mark.parametrize("variation", VARIATIONS, ids=lambda v: "-".join(f"{k}={v}" for k, v in v.items()))
@pytest.mark.parametrize("source", ["CPU", "NV"])
def test_variation_seeds_and_resize_seed_from(jobs, sd1, variation, source):
    """A batch of two (the same seed, variation seeds counting up), with ENSD: the first noise and every later
    draw of Euler a."""
    job = replace(BASE, sampler="Euler a", batch_size=2, **variation)
    assert_parity(jobs, sd1, job, {"randn_source": source, "eta_noise_seed_delta": 31337})


@pytest.mark.parametrize("sampler", ["DPM++ SDE", "DDIM"])
def test_variation_seeds_with_other_samplers(jobs, sd1, sampler):
    """The Brownian trees of a variation batch (one seed for all) and a timestep sampler's start."""
    job = replace(
        BASE,
        sampler=sampler,
        batch_size=2,
        subseed=777,
        subseed_strength=0.6,
        seed_resize_from_w=48,
        seed_resize_from_h=48,
    )
    assert_parity(jobs, sd1, job, CPU)


def test_variation_seeds_over_a_batch_count(jobs, sd1):
    """Every batch keeps the seed; the variation seeds count on across batches."""
    job = replace(BASE, sampler="Euler a", batch_size=2, subseed=300, subseed_strength=0.5)
    batches = [oracle_run(sd1, replace(job, subseed=job.subseed + 2 * k), CPU) for k in range(2)]
    theirs = torch.cat([latents for latents, _ in batches]), [image for _, images in batches for image in images]
    assert_same(project_run(jobs, sd1.model, job, CPU, n_iter=2), theirs)


# --- guidance ---------------------------------------------------------------------------------------------------

AND_PROMPT = "a lighthouse AND a storm at sea:0.6 AND seagulls:-0.3"
GUIDANCE = [
    ("Euler", AND_PROMPT, "blurry, dark", {}),
    ("DDIM", AND_PROMPT, "blurry, dark", {}),
    ("Euler", f"a lighthouse AND {LONG_PROMPT}:0.5", "blurry, dark", {}),  # parts of other lengths, split calls
    ("Euler", f"{LONG_PROMPT} AND a storm:0.5", LONG_PROMPT, {}),  # parts of other lengths, one call
    ("Euler", BASE.prompt, "blurry, dark", {"s_min_uncond": 5.0}),
    ("Heun", BASE.prompt, "blurry, dark", {"s_min_uncond": 5.0, "s_min_uncond_all": True}),
    ("DDIM", BASE.prompt, "blurry, dark", {"s_min_uncond": 800.0}),  # NGMS in timesteps
    ("UniPC", BASE.prompt, "blurry, dark", {"s_min_uncond": 800.0}),
    ("UniPC", BASE.prompt, "blurry, dark", {"s_min_uncond": 1000.0, "s_min_uncond_all": True}),
    ("Euler", AND_PROMPT, "blurry, dark", {"s_min_uncond": 15.0, "s_min_uncond_all": True}),
    ("Euler", BASE.prompt, "blurry, dark", {"skip_early_cond": 0.4}),
    ("Heun", AND_PROMPT, "blurry, dark", {"skip_early_cond": 0.25}),
    ("DDIM", BASE.prompt, "blurry, dark", {"skip_early_cond": 0.5}),
    ("Euler", LONG_PROMPT, "blurry, dark", {"pad_cond_uncond": True}),
    ("Euler", "a lighthouse", LONG_PROMPT, {"pad_cond_uncond": True}),
    ("Euler", LONG_PROMPT, "blurry, dark", {"pad_cond_uncond_v0": True}),
    ("DDIM", "a lighthouse", LONG_PROMPT, {"pad_cond_uncond_v0": True}),
    ("Euler", f"a lighthouse AND {LONG_PROMPT}:0.5", "blurry", {"s_min_uncond": 5.0, "pad_cond_uncond": True}),
]


@pytest.mark.parametrize("sampler,prompt,negative,settings", GUIDANCE)
@pytest.mark.parametrize("batch", [1, 2])
def test_guidance(jobs, sd1, sampler, prompt, negative, settings, batch):
    """AND parts and weights, NGMS, NGMS all steps, Skip Early CFG, Pad conds, Pad conds v0 (CFGDenoiser.forward),
    over 5 steps, so that several calls fall below the NGMS thresholds."""
    job = replace(BASE, sampler=sampler, prompt=prompt, negative_prompt=negative, batch_size=batch, steps=5)
    assert_parity(jobs, sd1, job, CPU | settings)


# --- prompt editing and alternation -----------------------------------------------------------------------------

EDITING = [
    ("Euler", "a [lighthouse:castle:0.5] on a cliff", ""),
    ("Heun", "a [lighthouse:castle:0.5] on a cliff", ""),  # A1111 counts a second-order sampler's model calls
    ("Heun", "a [lighthouse|castle] on a cliff", ""),
    ("DPM2 a", "a [lighthouse|castle|tower] [at dawn:3]", "[blurry:dark:2]"),
    ("DDIM", "a [lighthouse:castle:2] [on a cliff|in a storm]", "[blurry|dark]"),
    ("Euler", f"a [lighthouse:{LONG_PROMPT}:0.5]", "blurry"),  # a schedule's texts of other lengths
    ("Euler", "a [lighthouse:castle:0.5] AND [a storm:0.25]:0.5", ""),
]


@pytest.mark.parametrize("sampler,prompt,negative", EDITING)
def test_prompt_editing(jobs, sd1, sampler, prompt, negative):
    job = replace(BASE, sampler=sampler, prompt=prompt, negative_prompt=negative, steps=4)
    assert_parity(jobs, sd1, job, CPU)


def test_old_prompt_editing_timelines(jobs, sd1):
    job = replace(BASE, prompt="a [lighthouse:castle:2] [on a cliff::0.3]", steps=4)
    assert_parity(jobs, sd1, job, CPU | {"use_old_scheduling": True})


@pytest.mark.parametrize("sampler", ["Heun", "DDIM"])
def test_prompt_editing_in_img2img(jobs, sd1, photo, sampler):
    """A1111 schedules an img2img pass's prompts over all its steps' calls, and counts from the first it runs."""
    job = replace(
        BASE, sampler=sampler, prompt="a [lighthouse:castle:0.75] [at dawn|at dusk]", steps=6, denoising_strength=0.6
    )
    assert_parity(jobs, sd1, job, CPU, photo)


# --- hires fix --------------------------------------------------------------------------------------------------

HIRES = [
    ("Euler", None, "Latent", 0, 0.6, {}),
    ("Euler a", None, "Latent", 2, 0.5, {}),
    ("DDIM", None, "Latent (nearest-exact)", 0, 0.7, {}),
    ("Euler", None, "Lanczos", 0, 0.6, {}),
    ("DPM++ 2M", "Euler a", "None", 3, 0.45, {}),
    (
        "Euler a",
        None,
        "Latent",
        0,
        0.6,
        {"subseed": 55, "subseed_strength": 0.4, "seed_resize_from_w": 48, "seed_resize_from_h": 80},
    ),
    ("Heun", None, "Latent", 2, 0.6, {"prompt": "a [lighthouse:castle:1.5] [at dawn:0.5]"}),
]


@pytest.mark.parametrize("sampler,hr_sampler,upscaler,hr_steps,strength,extra", HIRES)
def test_hires_fix(jobs, sd1, sampler, hr_sampler, upscaler, hr_steps, strength, extra):
    """The txt2img hires pass at twice the size: latent or pixel upscaling, the fresh noise at the hires size,
    A1111's fixed hires steps, the denoising strength, prompt editing over both passes."""
    job = replace(
        BASE,
        sampler=sampler,
        enable_hr=True,
        hr_sampler=hr_sampler,
        hr_upscaler=upscaler,
        hr_second_pass_steps=hr_steps,
        denoising_strength=strength,
        **extra,
    )
    assert_parity(jobs, sd1, job, CPU | {"eta_noise_seed_delta": 31337})


# --- inpainting -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def right_half() -> Image.Image:
    mask = np.zeros((BASE.height, BASE.width), dtype=np.uint8)
    mask[:, BASE.width // 2 :] = 255
    return Image.fromarray(mask, "L")


@pytest.mark.parametrize(
    "sampler,fill",
    [
        ("Euler a", ORIGINAL),
        ("DPM++ 2M", ORIGINAL),
        ("DDIM", ORIGINAL),
        ("UniPC", ORIGINAL),
        ("Euler a", FILL),
        ("DPM++ 2M", LATENT_NOISE),
        ("DDIM", LATENT_NOTHING),
    ],
)
def test_inpainting_keeps_the_unmasked_latents(jobs, sd1, photo, right_half, sampler, fill):
    """img2img with a hard mask: A1111 blends the init latents into each step's result (k-diffusion) or input
    (timestep samplers) and once more after sampling, then overlays the original; other masked content than
    "original" fills the masked pixels first (and latent noise / nothing replace the masked latents)."""
    job = replace(BASE, sampler=sampler, steps=6, denoising_strength=0.75, batch_size=2, inpainting_fill=fill)
    assert_parity(jobs, sd1, job, CPU | {"eta_noise_seed_delta": 31337}, photo, right_half)


@pytest.fixture(scope="module")
def soft_masks() -> dict[str, Image.Image]:
    """A luminance ramp across, and an RGBA mask whose alpha ramps down (A1111 hardens it at 128)."""
    ramp = np.tile(np.linspace(0, 255, BASE.width).astype(np.uint8), (BASE.height, 1))
    rgba = np.full((BASE.height, BASE.width, 4), 90, dtype=np.uint8)
    rgba[..., 3] = ramp.T
    return {"ramp": Image.fromarray(ramp, "L"), "alpha": Image.fromarray(rgba, "RGBA")}


@pytest.mark.parametrize("kind,blur", [("ramp", 0), ("ramp", 4), ("alpha", 8)])
def test_inpainting_masks(jobs, sd1, photo, soft_masks, kind, blur):
    """A1111's mask: an RGBA mask's alpha hardened, OpenCV's blur across then down, the latent mask resized with
    Pillow's default filter and rounded, and the overlay through the mask doubled."""
    job = replace(BASE, sampler="Euler", steps=4, denoising_strength=0.8, mask_blur=blur)
    assert_parity(jobs, sd1, job, CPU, photo, soft_masks[kind])


# --- other models and settings ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory) -> Iterator[oracle.LDMModel]:
    folder = tmp_path_factory.mktemp("sdxl")
    path = write_tiny_checkpoint("sdxl", folder / "tiny-sdxl.safetensors", seed=5)
    model = load_model(
        CheckpointInfo(path, path.name), torch.device("cpu"), torch.float32, folder, HashCache(folder / "cache.json")
    )
    yield from remembered(oracle.LDMModel(model))


@pytest.mark.parametrize(
    "sampler,negative",
    [("Euler a", "blurry, dark"), ("DPM++ 2M", "blurry, dark"), ("DDIM", "blurry, dark"), ("Euler", ""), ("UniPC", "")],
)
def test_sdxl(jobs, sdxl, sampler, negative):
    """SDXL's pooled text and size conditioning; an empty negative prompt is zeros in A1111."""
    assert_parity(jobs, sdxl, replace(BASE, sampler=sampler, negative_prompt=negative, batch_size=2), CPU)


def test_sdxl_hires_fix(jobs, sdxl):
    job = replace(BASE, sampler="Euler", enable_hr=True, hr_scale=1.5, denoising_strength=0.6, negative_prompt="")
    assert_parity(jobs, sdxl, job, CPU)


MODEL_SETTINGS = [
    ("Euler", {"sd_noise_schedule": "Zero Terminal SNR"}),
    ("DPM++ 2M", {"sd_noise_schedule": "Zero Terminal SNR"}),
    ("DDIM", {"sd_noise_schedule": "Zero Terminal SNR"}),
    ("Euler", {"enable_quantization": True}),
    ("DPM++ 2M", {"enable_quantization": True}),
    ("DPM++ SDE", {"no_dpmpp_sde_batch_determinism": True}),
    ("DPM++ 2M SDE", {"no_dpmpp_sde_batch_determinism": True}),
]


@pytest.mark.parametrize("sampler,settings", MODEL_SETTINGS)
def test_noise_schedule_quantization_and_sde_batches(jobs, sd1, sampler, settings):
    """Also the UNet's timesteps: on the demo model quantizing them moves the latents by less than the tolerance."""
    job = replace(BASE, sampler=sampler, batch_size=2)
    with UNetTimesteps(sd1.model.unet) as ours:
        project = project_run(jobs, sd1.model, job, CPU | settings)
    with UNetTimesteps(sd1.model.unet) as theirs:
        assert_same(project, oracle_run(sd1, job, CPU | settings))
    assert ours.seen == pytest.approx(theirs.seen, abs=1e-3)
    if settings.get("enable_quantization"):
        assert all(t == round(t) for t in ours.seen) and any(t != round(t) for t in unquantized_timesteps(sd1, job))


class UNetTimesteps:
    """The timestep of every UNet call while it is open."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet, self.seen = unet, []

    def __enter__(self) -> UNetTimesteps:
        self.handle = self.unet.register_forward_pre_hook(
            lambda module, args: self.seen.append(float(args[1].flatten()[0]))
        )
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def unquantized_timesteps(ldm: oracle.LDMModel, job: oracle.Job) -> list[float]:
    with UNetTimesteps(ldm.model.unet) as plain:
        oracle.sample(ldm, job, oracle.Opts(**CPU))
    return plain.seen


@pytest.mark.parametrize("sampler", ["DPM++ SDE", "DPM++ 2M SDE"])
def test_sde_batches_without_determinism_in_img2img_passes(jobs, sd1, photo, sampler):
    """k-diffusion's own tree over the img2img tail's σ range; in hires fix, its seed drawn before the VAE's."""
    settings = CPU | {"no_dpmpp_sde_batch_determinism": True}
    assert_parity(
        jobs, sd1, replace(BASE, sampler=sampler, steps=4, denoising_strength=0.6, batch_size=2), settings, photo
    )
    hires = replace(BASE, sampler=sampler, batch_size=2, enable_hr=True, hr_upscaler="Lanczos", denoising_strength=0.6)
    assert_parity(jobs, sd1, hires, settings)
