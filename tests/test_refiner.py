"""The refiner: a second checkpoint that takes over sampling after "Switch at" of the steps, as in A1111."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_hires_fix import UnetCalls
from tiny_models import write_tiny_checkpoint

from modules.errors import UserError
from modules.img2img import Img2Img, Img2ImgInputs
from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.jobs.infotext import params_from_infotext
from modules.models.checkpoints import CheckpointInfo
from modules.sd_models import load_model


def _load(path, tmp_path_factory):
    return load_model(
        CheckpointInfo(path, path.name), torch.device("cpu"), torch.float32, tmp_path_factory.mktemp("cache")
    )


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """A second SD1 checkpoint with other weights."""
    from modules.models.demo_model import write_demo_checkpoint

    return _load(
        write_demo_checkpoint(tmp_path_factory.mktemp("other") / "other.safetensors", seed=3), tmp_path_factory
    )


def run(engine, model, refiner=None, job=Txt2Img, settings=RunSettings(), **kw):
    values = {
        "prompt": "a red house",
        "negative_prompt": "fog",
        "steps": 4,
        "width": 64,
        "height": 64,
        "seed": 9,
        "sampler_name": "DPM++ 2M",
        **kw,
    }
    params = GenerationParams(**values)

    def work(ctx):
        extra = {"inputs": Img2ImgInputs([init_image()])} if job is Img2Img else {}
        task = job(model, params, ctx, settings, **extra)
        task.refiner_model = refiner
        return task.run()

    result = engine.call("t", work, timeout=300)
    return np.asarray(result.images[0]).astype(int), result.infotexts[0]


def init_image():
    from PIL import Image

    return Image.new("RGB", (64, 64), (30, 140, 90))


def test_the_refiner_takes_over_after_switch_at(engine, demo_model, other):
    plain, plain_text = run(engine, demo_model)
    with UnetCalls(demo_model.unet) as base_calls, UnetCalls(other.unet) as refiner_calls:
        refined, text = run(engine, demo_model, other, refiner_checkpoint="other.safetensors", refiner_switch_at=0.5)
    # A1111 switches at the first call whose share of the expected calls reaches switch_at: the third of 4
    assert len(base_calls.sizes) == 2 and len(refiner_calls.sizes) == 2
    assert np.abs(refined - plain).mean() > 1
    assert "Refiner" not in plain_text
    assert f"Refiner: {other.short_title}, Refiner switch at: 0.5" in text
    values, _ = params_from_infotext(text)
    assert values["refiner_checkpoint"] == other.short_title and values["refiner_switch_at"] == 0.5
    assert params_from_infotext(plain_text)[0]["refiner_checkpoint"] == "None"


def test_a_refiner_that_never_takes_over_changes_nothing(engine, demo_model, other):
    plain, _ = run(engine, demo_model)
    with UnetCalls(other.unet) as refiner_calls:
        late, text = run(engine, demo_model, other, refiner_checkpoint="other.safetensors", refiner_switch_at=1.0)
    assert refiner_calls.sizes == [] and np.array_equal(late, plain) and "Refiner" not in text
    same, text = run(engine, demo_model, demo_model, refiner_checkpoint="demo", refiner_switch_at=0.3)
    assert np.array_equal(same, plain) and "Refiner: " in text, "the same weights refine to the same image"


def test_the_refiner_works_in_img2img_over_the_steps_it_samples(engine, demo_model, other):
    with UnetCalls(demo_model.unet) as base_calls, UnetCalls(other.unet) as refiner_calls:
        _, text = run(
            engine,
            demo_model,
            other,
            job=Img2Img,
            steps=8,
            denoising_strength=0.5,
            refiner_checkpoint="other.safetensors",
            refiner_switch_at=0.5,
        )
    # int(8 × 0.5) + 1 = 5 steps run, and 3/5 is the first share to reach 0.5
    assert len(base_calls.sizes) == 3 and len(refiner_calls.sizes) == 2 and "Refiner switch at: 0.5" in text


@pytest.mark.parametrize(
    "passes, first_pass_calls, second_pass_calls",
    [
        ("second pass", (4, 0), (2, 2)),  # A1111's default
        ("first pass", (2, 2), (4, 0)),
        ("both passes", (2, 2), (2, 2)),
    ],
)
def test_with_hires_fix_a_setting_picks_the_passes_the_refiner_joins(
    engine, demo_model, other, passes, first_pass_calls, second_pass_calls
):
    with UnetCalls(demo_model.unet) as base, UnetCalls(other.unet) as refiner:
        _, text = run(
            engine,
            demo_model,
            other,
            settings=RunSettings(hires_refiner_pass=passes),
            enable_hr=True,
            hr_scale=2,
            hr_second_pass_steps=4,
            denoising_strength=1.0,
            refiner_checkpoint="other",
            refiner_switch_at=0.5,
        )
    for size, expected in (((8, 8), first_pass_calls), ((16, 16), second_pass_calls)):
        assert (base.sizes.count(size), refiner.sizes.count(size)) == expected, size
    assert f"Refiner: {other.short_title}," in text
    written = passes != "second pass"  # A1111 writes "Hires refiner" only when it is not the default
    assert ("Hires refiner" in text) == written and (f"Hires refiner: {passes}," in text) == written


def test_a_refiner_of_another_kind_is_refused_before_any_work(engine, demo_model, tmp_path_factory):
    sdxl = _load(write_tiny_checkpoint("sdxl", tmp_path_factory.mktemp("xl") / "xl.safetensors"), tmp_path_factory)
    with UnetCalls(demo_model.unet) as calls, pytest.raises(UserError, match="must be of the same kind"):
        run(engine, demo_model, sdxl, refiner_checkpoint="xl.safetensors")
    assert calls.sizes == []
    with pytest.raises(UserError, match="is not loaded"):
        run(engine, demo_model, None, refiner_checkpoint="xl.safetensors")


def test_img2img_batch_folders_borrow_the_refiner_too(tmp_path, demo_checkpoint, other):
    from script_services import services_with_scripts

    services = services_with_scripts(tmp_path / "data", demo_checkpoint, [])
    try:
        (services.paths.models / "Stable-diffusion" / "other.safetensors").write_bytes(
            other.checkpoint.path.read_bytes()
        )
        services.models.refresh()
        (tmp_path / "in").mkdir()
        init_image().save(tmp_path / "in" / "a.png")
        params = GenerationParams(
            prompt="a red house",
            steps=4,
            width=64,
            height=64,
            seed=9,
            denoising_strength=0.5,
            refiner_checkpoint="other",
            refiner_switch_at=0.3,
        )
        result = services.jobs.img2img_batch(params, str(tmp_path / "in"), str(tmp_path / "out")).result(timeout=300)
        with pytest.raises(UserError, match="No checkpoint named 'missing'"):
            services.jobs.img2img_batch(
                GenerationParams(refiner_checkpoint="missing"), str(tmp_path / "in"), str(tmp_path / "out")
            )
    finally:
        services.engine.shutdown()
    assert "Refiner: other [" in result.infotexts[0] and (tmp_path / "out" / "a.png").is_file()
