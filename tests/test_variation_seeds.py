"""Variation seeds and "Resize seed from" on the demo model: txt2img, hires fix, img2img, infotext,
the A1111 processing view and validation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modules.errors import UserError
from modules.img2img import Img2Img, Img2ImgInputs
from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.jobs.infotext import create_infotext, params_from_infotext
from modules.processing import Processed, StableDiffusionProcessingTxt2Img

BASE = {"prompt": "a red house", "steps": 4, "width": 64, "height": 64, "seed": 5, "sampler_name": "DPM++ 2M"}


def run(engine, model, **kw):
    params = GenerationParams(**{**BASE, **kw})
    return engine.call("txt2img", lambda ctx: Txt2Img(model, params, ctx, RunSettings()).run(), timeout=300)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


def distance(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


def test_strength_0_is_the_plain_image_and_writes_no_variation_keys(engine, demo_model):
    plain = run(engine, demo_model, batch_size=2)
    off = run(engine, demo_model, batch_size=2, subseed=99, subseed_strength=0.0)
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(plain.images, off.images))
    assert off.seeds == [5, 6] and off.infotexts == plain.infotexts
    assert "Variation" not in off.infotexts[0]


def test_strength_1_is_the_variation_seeds_image_and_half_lies_between(engine, demo_model):
    seed_image = run(engine, demo_model).images[0]
    sub_image = run(engine, demo_model, seed=99).images[0]
    full = run(engine, demo_model, subseed=99, subseed_strength=1.0).images[0]
    half = run(engine, demo_model, subseed=99, subseed_strength=0.5)
    assert np.abs(pixels(full) - pixels(sub_image)).max() <= 2
    apart = distance(seed_image, sub_image)
    assert apart > 5
    assert 0 < distance(half.images[0], seed_image) < apart and 0 < distance(half.images[0], sub_image) < apart
    assert "Seed: 5, " in half.infotexts[0]
    assert "Variation seed: 99, Variation seed strength: 0.5," in half.infotexts[0]


def test_in_a_batch_the_variation_seeds_count_up_and_the_seed_stays(engine, demo_model):
    batch = run(engine, demo_model, batch_size=2, subseed=40, subseed_strength=0.3)
    second = run(engine, demo_model, subseed=41, subseed_strength=0.3)
    assert batch.seeds == [5, 5]
    assert np.abs(pixels(batch.images[1]) - pixels(second.images[0])).max() <= 1  # batched maths may round apart
    assert "Variation seed: 40," in batch.infotexts[0] and "Variation seed: 41," in batch.infotexts[1]


def test_a_random_variation_seed_is_resolved_and_written(engine, demo_model):
    result = run(engine, demo_model, steps=2, subseed=-1, subseed_strength=0.2)
    assert result.params.subseed >= 0
    assert f"Variation seed: {result.params.subseed}," in result.infotexts[0]


def test_seed_resize_from_changes_the_image_and_is_written(engine, demo_model):
    plain = run(engine, demo_model, steps=3)
    resized = run(engine, demo_model, steps=3, seed_resize_from_w=32, seed_resize_from_h=48)
    same_size = run(engine, demo_model, steps=3, seed_resize_from_w=64, seed_resize_from_h=64)
    assert "Seed resize from: 32x48," in resized.infotexts[0] and "Variation" not in resized.infotexts[0]
    assert not np.array_equal(pixels(plain.images[0]), pixels(resized.images[0]))
    assert np.array_equal(pixels(plain.images[0]), pixels(same_size.images[0]))  # made at its own size: no change
    assert "Seed resize from" not in run(engine, demo_model, steps=2, seed_resize_from_w=32).infotexts[0]


def test_hires_fix_runs_with_variation_noise(engine, demo_model):
    hires = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "steps": 4, "denoising_strength": 0.6}
    plain = run(engine, demo_model, **hires)
    varied = run(engine, demo_model, subseed=12, subseed_strength=0.6, **hires)
    off = run(engine, demo_model, subseed=12, subseed_strength=0.0, **hires)
    assert varied.images[0].size == (96, 96)
    assert np.array_equal(pixels(plain.images[0]), pixels(off.images[0]))
    assert not np.array_equal(pixels(plain.images[0]), pixels(varied.images[0]))
    assert "Variation seed strength: 0.6" in varied.infotexts[0] and "Hires upscale: 1.5" in varied.infotexts[0]


def test_img2img_uses_the_variation_noise(engine, demo_model):
    photo = Image.radial_gradient("L").convert("RGB").resize((64, 64))

    def img2img(**kw):
        params = GenerationParams(**{**BASE, "denoising_strength": 0.8, **kw})
        return engine.call(
            "img2img",
            lambda ctx: Img2Img(demo_model, params, ctx, RunSettings(), inputs=Img2ImgInputs([photo])).run(),
            timeout=300,
        )

    plain, full = img2img(seed=31), img2img(subseed=31, subseed_strength=1.0)
    assert np.abs(pixels(full.images[0]) - pixels(plain.images[0])).max() <= 2
    assert not np.array_equal(pixels(img2img().images[0]), pixels(plain.images[0]))
    assert "Variation seed: 31, Variation seed strength: 1," in full.infotexts[0]


def test_infotext_round_trip():
    params = GenerationParams(
        **{**BASE, "subseed": 77, "subseed_strength": 0.25, "seed_resize_from_w": 320, "seed_resize_from_h": 256}
    )
    text = create_infotext(params)
    assert "Seed: 5, Size: 64x64, Variation seed: 77, Variation seed strength: 0.25, Seed resize from: 320x256" in text
    values, _ = params_from_infotext(text)
    assert (values["subseed"], values["subseed_strength"]) == (77, 0.25)
    assert (values["seed_resize_from_w"], values["seed_resize_from_h"]) == (320, 256)
    older, _ = params_from_infotext("a house\nSteps: 20, Seed: 3, Size: 64x64")
    assert older["subseed_strength"] == 0.0 and older["seed_resize_from_w"] == older["seed_resize_from_h"] == 0


@pytest.mark.parametrize(
    "values, message",
    [
        ({"subseed_strength": 1.5}, "Variation strength must be between 0 and 1"),
        ({"seed_resize_from_w": 4, "seed_resize_from_h": 64}, "Resize seed from width and height must be at least 8"),
    ],
)
def test_bad_values_are_refused_with_a_message(engine, demo_model, values, message):
    with pytest.raises(UserError, match=message):
        run(engine, demo_model, **values)


def test_processing_view_reads_and_writes_the_real_fields():
    p = StableDiffusionProcessingTxt2Img(
        prompt="x", seed=8, subseed=20, subseed_strength=0.4, batch_size=3, seed_resize_from_w=-1, seed_resize_from_h=-1
    )
    assert p.params.subseed == 20 and p.params.subseed_strength == 0.4 and p.seed_resize_from_w == -1
    plan = p.plan()
    assert p.all_seeds == [8, 8, 8] and p.all_subseeds == plan.subseeds == [20, 21, 22]
    p.subseed_strength = 0
    p.plan()
    assert p.all_seeds == [8, 9, 10]
    info = Processed(p, [], seed=8).js()
    assert '"subseed": 20' in info and '"all_subseeds": [20, 21, 22]' in info and '"subseed_strength": 0.0' in info
    assert '"seed_resize_from_w": -1' in info
