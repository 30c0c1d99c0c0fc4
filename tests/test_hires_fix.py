"""Hires fix on the demo model: sizes, the second pass's steps and size, every upscaler kind, infotext."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from model_weights import face_model_folders
from PIL import Image

from modules.core.limits import Limits
from modules.errors import UserError
from modules.imaging.image_tools import ImageTools
from modules.imaging.upscalers import LATENT_MODES
from modules.jobs.generation import HiresPass, RunSettings, Txt2Img, encode_image
from modules.jobs.generation_params import GenerationParams
from modules.jobs.hires_fix import hires_size, second_pass_params, summary
from modules.jobs.infotext import params_from_infotext
from modules.sampling.passes import SamplingSettings

BASE = {
    "prompt": "a red house",
    "steps": 6,
    "width": 64,
    "height": 64,
    "seed": 5,
    "enable_hr": True,
    "sampler_name": "Euler",
}


def run(engine, model, tools=None, settings=None, **kw):
    params = GenerationParams(**{**BASE, **kw})
    return engine.call(
        "txt2img", lambda ctx: Txt2Img(model, params, ctx, settings or RunSettings(), None, tools).run(), timeout=300
    )


class UnetCalls:
    """Records the latent size of every UNet call."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.sizes: list[tuple[int, int]] = []
        self._handle = unet.register_forward_pre_hook(lambda _m, args: self.sizes.append(tuple(args[0].shape[-2:])))

    def __enter__(self) -> UnetCalls:
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


@pytest.mark.parametrize(
    "kw,expected",
    [
        ({"hr_scale": 2.0}, (1024, 1536, 1024, 1536)),
        ({"hr_scale": 1.5, "width": 512, "height": 768}, (768, 1152, 768, 1152)),
        ({"hr_resize_x": 1024}, (1024, 1536, 1024, 1536)),
        ({"hr_resize_y": 1024}, (680, 1024, 680, 1024)),
        ({"hr_resize_x": 1024, "hr_resize_y": 1024}, (1024, 1536, 1024, 1024)),
        ({"hr_resize_x": 1000, "hr_resize_y": 300}, (1000, 1496, 1000, 296)),
    ],
)
def test_target_size_follows_scale_or_resize(kw, expected):
    params = GenerationParams(**{"width": 512, "height": 768, **kw})
    size = hires_size(params)
    assert (size.upscale_width, size.upscale_height, size.width, size.height) == expected


def test_summary_line():
    assert summary(GenerationParams(width=512, height=512, hr_scale=2)) == "from 512x512 to 1024x1024"
    assert summary(GenerationParams(width=512, height=512, hr_resize_x=768)) == "from 512x512 to 768x768"


def test_second_pass_defaults_to_the_first_pass_settings():
    first = GenerationParams(prompt="a", negative_prompt="b", steps=30, sampler_name="Euler a", scheduler="Karras")
    second = second_pass_params(first)
    assert (second.steps, second.sampler_name, second.scheduler) == (30, "Euler a", "Karras")
    assert (second.prompt, second.negative_prompt) == ("a", "b")
    own = second_pass_params(
        replace(
            first,
            hr_second_pass_steps=12,
            hr_sampler_name="DDIM",
            hr_scheduler="Uniform",
            hr_prompt="c",
            hr_negative_prompt="d",
        )
    )
    assert (own.steps, own.sampler_name, own.scheduler, own.prompt, own.negative_prompt) == (
        12,
        "DDIM",
        "Uniform",
        "c",
        "d",
    )


def test_second_pass_gets_the_right_size_and_steps(engine, demo_model):
    with UnetCalls(demo_model.unet) as calls:
        result = run(engine, demo_model, steps=6, hr_second_pass_steps=10, denoising_strength=0.5)
    # The first pass: 6 steps at 64x64 (8x8 latents), then, as A1111 runs hires fix, exactly the 10 hires steps at
    # 128x128 (the last 10 of a 20-step schedule at denoising 0.5), each with CFG's batch.
    assert calls.sizes == [(8, 8)] * 6 + [(16, 16)] * 10
    assert result.images[0].size == (128, 128)
    text = result.infotexts[0]
    for part in (
        "Size: 64x64",
        "Denoising strength: 0.5",
        "Hires upscale: 2",
        "Hires steps: 10",
        "Hires upscaler: Latent",
    ):
        assert part in text, text


def test_hires_steps_0_means_the_first_pass_steps(engine, demo_model):
    with UnetCalls(demo_model.unet) as calls:
        run(engine, demo_model, steps=4, denoising_strength=1.0)
    assert calls.sizes == [(8, 8)] * 4 + [(16, 16)] * 4


@pytest.mark.parametrize("mode", LATENT_MODES)
def test_every_latent_mode_runs_and_differs(engine, demo_model, mode):
    result = run(engine, demo_model, steps=2, hr_upscaler=mode, denoising_strength=0.5, hr_scale=1.5)
    assert result.images[0].size == (96, 96)
    assert f"Hires upscaler: {mode}" in result.infotexts[0]


def test_latent_modes_give_different_images(engine, demo_model):
    first = run(engine, demo_model, steps=2, hr_upscaler="Latent", denoising_strength=0.3)
    nearest = run(engine, demo_model, steps=2, hr_upscaler="Latent (nearest)", denoising_strength=0.3)
    assert first.images[0].tobytes() != nearest.images[0].tobytes()


def test_resize_to_crops_to_the_requested_size(engine, demo_model):
    result = run(
        engine, demo_model, steps=2, width=64, height=96, hr_resize_x=96, hr_resize_y=96, denoising_strength=0.3
    )
    assert result.images[0].size == (96, 96)
    assert "Hires resize: 96x96" in result.infotexts[0] and "Hires upscale:" not in result.infotexts[0]


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> ImageTools:
    from spandrel.architectures.ESRGAN import ESRGAN

    models = tmp_path_factory.mktemp("models")
    (models / "ESRGAN").mkdir()
    torch.manual_seed(0)
    torch.save(ESRGAN(num_filters=8, num_blocks=1, scale=4).state_dict(), models / "ESRGAN" / "4x-tiny.pth")
    return ImageTools.create(models)


@pytest.mark.parametrize("upscaler", ["Lanczos", "Nearest", "None", "4x-tiny"])
def test_pixel_upscalers_decode_upscale_and_encode(engine, demo_model, tools, upscaler):
    result = run(engine, demo_model, tools, steps=2, hr_upscaler=upscaler, denoising_strength=0.4)
    assert result.images[0].size == (128, 128)
    assert f"Hires upscaler: {upscaler}" in result.infotexts[0]


@pytest.mark.parametrize(
    "source,sampler,no_determinism,draws",
    [
        ("CPU", "Euler", False, "seeded"),
        ("GPU", "Euler a", True, "seeded"),
        ("CPU", "DPM++ SDE", False, "seeded"),
        ("CPU", "DPM++ SDE", True, "after the tree's seed"),
        ("NV", "Euler", False, None),
    ],
)
def test_pixel_upscaled_pictures_encode_to_a1111s_posterior_sample(
    demo_model, tools, source, sampler, no_determinism, draws
):
    """A1111 encodes the upscaled pictures with the VAE's posterior sample, drawn from torch's global generator,
    which the batch's noise last seeded with the batch's last seed (an SDE sampler without batch determinism has
    drawn its tree's seed from it since); under NV that generator is the process's, so the mean is taken."""
    sampling = SamplingSettings(randn_source=source, no_dpmpp_sde_batch_determinism=no_determinism)
    settings = RunSettings(sampling=sampling)
    first = Txt2Img(
        demo_model,
        GenerationParams(**{**BASE, "hr_upscaler": "Lanczos", "sampler_name": sampler}),
        None,
        settings,
        None,
        tools,
    )
    generator = HiresPass(first)._posterior_draws([40, 41])
    if draws is None:
        assert generator is None
        return
    expected = torch.Generator().manual_seed(41)
    if draws == "after the tree's seed":
        torch.randint(0, 2**63 - 1, [], generator=expected)
    assert torch.equal(torch.randn(5, generator=generator), torch.randn(5, generator=expected))
    picture = Image.new("RGB", (64, 64), (200, 40, 90))
    with torch.inference_mode():
        pixels = torch.tensor([200, 40, 90], dtype=torch.float32).reshape(1, 3, 1, 1).expand(1, 3, 64, 64)
        posterior = demo_model.vae.encode(pixels / 127.5 - 1.0).latent_dist
    noise = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(7))
    scale = demo_model.vae.config.scaling_factor
    sample = encode_image(demo_model, picture, torch.Generator().manual_seed(7))
    assert torch.allclose(sample, (posterior.mean + posterior.std * noise) * scale, atol=1e-5)
    assert torch.allclose(encode_image(demo_model, picture), posterior.mean * scale, atol=1e-5)


def test_hires_sampler_prompt_and_infotext_round_trip(engine, demo_model):
    result = run(
        engine,
        demo_model,
        steps=3,
        hr_second_pass_steps=4,
        hr_sampler_name="DPM++ 2M",
        hr_scheduler="Karras",
        hr_prompt="a blue house",
        hr_negative_prompt="fog",
        hr_resize_x=96,
        denoising_strength=0.6,
    )
    values, _ = params_from_infotext(result.infotexts[0])
    expected = {
        "enable_hr": True,
        "hr_second_pass_steps": 4,
        "hr_sampler_name": "DPM++ 2M",
        "hr_scheduler": "Karras",
        "hr_prompt": "a blue house",
        "hr_negative_prompt": "fog",
        "hr_resize_x": 96,
        "hr_resize_y": 0,
        "denoising_strength": 0.6,
        "hr_upscaler": "Latent",
        "hr_checkpoint_name": "Use same checkpoint",
    }
    assert {k: values[k] for k in expected} == expected
    named = result.infotexts[0].replace("Hires upscaler:", "Hires checkpoint: other [0123456789], Hires upscaler:")
    assert params_from_infotext(named)[0]["hr_checkpoint_name"] == "other [0123456789]"


def test_plain_txt2img_writes_no_hires_keys(engine, demo_model):
    result = run(engine, demo_model, steps=2, enable_hr=False)
    assert "Hires" not in result.infotexts[0] and "Denoising strength" not in result.infotexts[0]
    values, _ = params_from_infotext(result.infotexts[0])
    assert values["enable_hr"] is False


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"hr_scale": 4.0, "width": 256, "height": 256}, "more than the limit"),
        ({"hr_upscaler": "4x-missing"}, "no upscaler called '4x-missing'"),
        ({"denoising_strength": 1.5}, "Denoising strength must be between 0 and 1"),
        ({"hr_checkpoint_name": "other.safetensors"}, "Hires checkpoint other.safetensors is not loaded"),
    ],
)
def test_bad_hires_settings_are_refused_before_any_work(engine, demo_model, kw, message):
    settings = RunSettings(limits=Limits(max_pixels=512 * 512))
    with UnetCalls(demo_model.unet) as calls, pytest.raises(UserError, match=message):
        run(engine, demo_model, settings=settings, **kw)
    assert calls.sizes == []


def test_interrupt_in_the_first_pass_skips_the_second(engine, demo_model):
    handle = demo_model.unet.register_forward_pre_hook(lambda *_: engine.interrupt())
    try:
        with UnetCalls(demo_model.unet) as calls:
            result = run(engine, demo_model, steps=4)
    finally:
        handle.remove()
    assert result.interrupted
    assert all(size == (8, 8) for size in calls.sizes)
    assert result.images[0].size == (64, 64)


def test_restore_faces_without_weights_names_the_files(engine, demo_model, tmp_path: Path):
    with pytest.raises(UserError, match=r"GFPGANv1.4.pth") as error:
        run(engine, demo_model, ImageTools.create(tmp_path), enable_hr=False, restore_faces=True)
    assert "detection_Resnet50_Final.pth" in str(error.value) and str(tmp_path / "GFPGAN") in str(error.value)


@pytest.fixture(scope="module")
def face_weights(weights_store, tmp_path_factory) -> dict[str, Path]:
    return face_model_folders(weights_store, tmp_path_factory.mktemp("faces"))


def test_restore_faces_runs_after_hires_and_is_written(engine, demo_model, face_weights):
    from modules.face_restoration import NO_FACE_NOTE

    kw = {"steps": 2, "width": 64, "height": 64, "hr_scale": 2.0, "denoising_strength": 0.3}
    plain = run(engine, demo_model, **kw)
    restored = run(engine, demo_model, ImageTools.create(face_weights["face_models"]), restore_faces=True, **kw)
    assert restored.images[0].size == (128, 128)
    assert restored.images[0].tobytes() != plain.images[0].tobytes()
    assert "Face restoration: GFPGAN" in restored.infotexts[0]
    assert params_from_infotext(restored.infotexts[0])[0]["restore_faces"] is True
    unchanged = run(engine, demo_model, ImageTools.create(face_weights["noface_models"]), restore_faces=True, **kw)
    assert unchanged.images[0].tobytes() == plain.images[0].tobytes()
    assert NO_FACE_NOTE in unchanged.warnings
