"""img2img and inpainting on the demo model, checked numerically on a real photo."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from modules import masking
from modules.errors import UserError
from modules.img2img import Img2Img, Img2ImgInputs
from modules.jobs.generation import RunSettings, encode_image
from modules.jobs.generation_params import GenerationParams

SIZE = 64


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((SIZE, SIZE), Image.LANCZOS)


def square_mask(size=SIZE, box=(16, 16, 40, 40)) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, box)
    return mask


def job(model, ctx=None, mask=None, images=None, **kw):
    params = GenerationParams(
        **{"prompt": "a photo", "steps": 10, "width": SIZE, "height": SIZE, "seed": 3, "sampler_name": "Euler", **kw}
    )
    return Img2Img(model, params, ctx, RunSettings(), inputs=Img2ImgInputs(images, mask))


def run(engine, model, images, mask=None, **kw):
    return engine.call("img2img", lambda ctx: job(model, ctx, mask, images, **kw).run(), timeout=300)


def pixels(image):
    return np.asarray(image).astype(int)


def unet_timesteps(engine, model, images, **kw):
    """(the result, the timestep of each UNet call)."""
    seen = []
    handle = model.unet.register_forward_pre_hook(lambda module, args: seen.append(float(args[1][0])))
    try:
        return run(engine, model, images, **kw), seen
    finally:
        handle.remove()


def test_denoising_zero_runs_the_last_step_only(engine, demo_model, photo):
    """As A1111: only the schedule's last step, from its smallest noise level (timestep 0)."""
    result, timesteps = unet_timesteps(engine, demo_model, [photo], denoising_strength=0.0)
    assert timesteps == [0.0]
    assert "Denoising strength: 0," in result.infotexts[0] and "Mask blur" not in result.infotexts[0]


def test_denoising_strength_sets_the_steps_run(engine, demo_model, photo):
    result, timesteps = unet_timesteps(engine, demo_model, [photo], denoising_strength=0.6)
    # A1111: int(10 × 0.6) + 1 steps of the 10-step schedule's tail, one UNet call each for Euler
    assert timesteps == pytest.approx([666, 555, 444, 333, 222, 111, 0], abs=1e-3)
    assert "Denoising strength: 0.6" in result.infotexts[0]


def test_inpainting_changes_only_the_blurred_mask(engine, demo_model, photo):
    mask = square_mask()
    result = run(engine, demo_model, [photo], mask=mask, denoising_strength=0.9, mask_blur=4)
    out = pixels(result.images[0])
    blurred = np.asarray(masking.prepare_mask(mask, False, 4))
    assert (out[blurred == 0] == pixels(photo)[blurred == 0]).all()
    assert np.abs(out[blurred == 255] - pixels(photo)[blurred == 255]).mean() > 5
    text = result.infotexts[0]
    for entry in (
        "Mask blur: 4",
        "Mask mode: Inpaint masked",
        "Masked content: original",
        "Inpaint area: Whole picture",
        "Masked area padding: 32",
        "Denoising strength: 0.9",
    ):
        assert entry in text, entry


def test_inpaint_not_masked_changes_the_outside(engine, demo_model, photo):
    mask = square_mask()
    result = run(engine, demo_model, [photo], mask=mask, inpainting_mask_invert=1, mask_blur=0)
    out, src = pixels(result.images[0]), pixels(photo)
    inside = np.asarray(mask) == 255
    assert (out[inside] == src[inside]).all() and np.abs(out[~inside] - src[~inside]).mean() > 5


def test_only_masked_works_on_the_crop_and_pastes_back_at_full_size(engine, demo_model):
    big = Image.fromarray(data.astronaut()).resize((160, 160), Image.LANCZOS)
    mask = square_mask(160, (60, 60, 90, 90))
    result = run(engine, demo_model, [big], mask=mask, inpaint_full_res=1, inpaint_full_res_padding=8, mask_blur=2)
    out = pixels(result.images[0])
    assert result.images[0].size == (160, 160)
    blurred = np.asarray(masking.prepare_mask(mask, False, 2))
    assert (out[blurred == 0] == pixels(big)[blurred == 0]).all()
    assert "Inpaint area: Only masked" in result.infotexts[0] and "Masked area padding: 8" in result.infotexts[0]


@pytest.mark.parametrize("fill", [masking.LATENT_NOISE, masking.LATENT_NOTHING])
def test_latent_fills_replace_the_masked_latents(demo_model, photo, fill):
    j = job(demo_model, mask=square_mask(), images=[photo], inpainting_fill=fill, mask_blur=0)
    j.sources = [j._prepare(photo)]
    noise = j.prepare_latents(j.image_rng([3], [], SIZE, SIZE), 0, [3])
    init, lm = j._latents.init, j._latents.mask.bool().expand_as(j._latents.init)
    expected = noise[lm] if fill == masking.LATENT_NOISE else torch.zeros_like(init[lm])
    assert torch.equal(init[lm], expected)
    assert not torch.equal(init[~lm], torch.zeros_like(init[~lm]))
    # as A1111, the kept latents are those of the image with its masked pixels filled
    filled = encode_image(demo_model, masking.fill(photo, j.sources[0].processed_mask))
    assert torch.equal(init[~lm], filled.expand_as(init)[~lm])


def test_every_masked_content_option_runs(engine, demo_model, photo):
    outputs = [
        pixels(run(engine, demo_model, [photo], mask=square_mask(), inpainting_fill=fill).images[0])
        for fill in range(4)
    ]
    assert all(not np.array_equal(outputs[0], other) for other in outputs[1:])


def test_odd_inputs_get_a_defined_result(engine, demo_model, photo):
    empty = run(engine, demo_model, [photo], mask=Image.new("L", (SIZE, SIZE)))
    assert any("mask is empty" in w for w in empty.warnings) and "Mask blur" not in empty.infotexts[0]
    other_size = run(engine, demo_model, [photo], mask=square_mask(32, (8, 8, 20, 20)))
    assert any("was resized" in w for w in other_size.warnings)
    white = run(engine, demo_model, [photo], mask=Image.new("L", (SIZE, SIZE), 255), mask_blur=0)
    assert white.images[0].size == (SIZE, SIZE)
    tiny = run(engine, demo_model, [Image.new("RGB", (1, 1), "red")])
    assert tiny.images[0].size == (SIZE, SIZE)
    rgba = run(engine, demo_model, [Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))], denoising_strength=0.0)
    assert rgba.images
    with pytest.raises(UserError, match="needs an input image"):
        run(engine, demo_model, [])
    with pytest.raises(UserError, match="between 0 and 1"):
        run(engine, demo_model, [photo], denoising_strength=1.5)


def test_batch_cycles_the_init_images(demo_model, photo):
    flipped = photo.transpose(Image.FLIP_LEFT_RIGHT)
    j = job(demo_model, images=[photo, flipped], batch_size=2, n_iter=2)
    j.sources = [j._prepare(photo), j._prepare(flipped)]
    inits = []
    for first in (0, 2):
        j.prepare_latents(j.image_rng([first, first + 1], [], SIZE, SIZE), first, [first, first + 1])
        inits.append(j._latents.init)
    assert torch.equal(inits[0], inits[1])  # images 0 and 2 start from the photo, 1 and 3 from the flipped one
    assert not torch.equal(inits[0][0], inits[0][1])


def test_inpainting_checkpoint_uses_its_masked_image_conditioning(engine, tmp_path, photo):
    from safetensors.torch import load_file, save_file
    from tiny_models import write_tiny_checkpoint

    from modules.jobs.generation import Txt2Img
    from modules.models.checkpoints import CheckpointInfo
    from modules.sd_models import load_model

    state = load_file(str(write_tiny_checkpoint("sd1", tmp_path / "base.safetensors")))
    key = "model.diffusion_model.input_blocks.0.0.weight"
    state[key] = torch.cat([state[key], torch.randn(state[key].shape[0], 5, 3, 3) * 0.1], dim=1)
    save_file(state, str(tmp_path / "inpainting.safetensors"))
    model = load_model(
        CheckpointInfo(tmp_path / "inpainting.safetensors", "inpainting.safetensors"),
        torch.device("cpu"),
        torch.float32,
        tmp_path,
    )
    assert model.is_inpainting
    seen = []
    handle = model.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    try:
        result = run(engine, model, [photo], mask=square_mask(), mask_blur=0)
        params = GenerationParams(prompt="x", steps=2, width=SIZE, height=SIZE, seed=1)
        engine.call("t", lambda ctx: Txt2Img(model, params, ctx, RunSettings()).run())
    finally:
        handle.remove()
    assert set(seen) == {9}
    out, inside = pixels(result.images[0]), np.asarray(square_mask()) == 255
    assert (out[~inside] == pixels(photo)[~inside]).all()


def test_batch_folder_skips_bad_files_and_writes_the_rest(engine, demo_model, photo, tmp_path):
    from modules.jobs.img2img_batch import run_batch

    source, masks, target = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    source.mkdir(), masks.mkdir()
    photo.save(source / "a.png")
    photo.save(source / "b.jpg")
    (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (source / "notes.txt").write_text("not an image")
    square_mask().save(masks / "b.png")
    params = GenerationParams(prompt="x", steps=2, width=SIZE, height=SIZE, seed=1, mask_blur=0)
    result = engine.call(
        "batch",
        lambda ctx: run_batch(demo_model, params, ctx, RunSettings(), None, str(source), str(target), str(masks)),
    )
    assert sorted(p.name for p in target.iterdir()) == ["a.png", "b.png"]
    assert any("Skipped broken.png" in w for w in result.warnings)
    assert "Mask blur: 0" in Image.open(target / "b.png").info["parameters"]
    assert "Mask blur" not in Image.open(target / "a.png").info["parameters"]
    with pytest.raises(UserError, match="does not exist"):
        run_batch(demo_model, params, None, RunSettings(), None, str(tmp_path / "nowhere"), str(target))


def test_batch_output_into_the_input_folder_never_replaces_a_file(engine, demo_model, photo, tmp_path):
    from modules.jobs.img2img_batch import run_batch

    folder = tmp_path / "same"
    folder.mkdir()
    photo.save(folder / "a.png")
    original = (folder / "a.png").read_bytes()
    params = GenerationParams(prompt="x", steps=1, width=SIZE, height=SIZE, seed=1)
    result = engine.call(
        "batch", lambda ctx: run_batch(demo_model, params, ctx, RunSettings(), None, str(folder), str(folder))
    )
    assert (folder / "a.png").read_bytes() == original
    assert result.paths == [folder / "a-1.png"] and "Steps: 1" in Image.open(folder / "a-1.png").info["parameters"]


@pytest.mark.parametrize("determinism", [True, False])
def test_an_sde_samplers_trees_span_a1111s_sigma_range(engine, demo_model, photo, monkeypatch, determinism):
    """A1111 spans its per-image trees over the whole schedule's σ; without batch determinism k-diffusion makes
    the tree itself, over the σ of the img2img tail it walks."""
    from modules.sampling import noise, passes

    spans = []
    original = noise.brownian_noise

    def recorded(x, sigmas, *args, **kwargs):
        spans.append((float(sigmas[sigmas > 0].min()), float(sigmas.max())))
        return original(x, sigmas, *args, **kwargs)

    monkeypatch.setattr(passes.noise_sources, "brownian_noise", recorded)
    img2img = job(demo_model, images=[photo], sampler_name="DPM++ SDE", steps=6, denoising_strength=0.5)
    img2img.settings = RunSettings(sampling=passes.SamplingSettings(no_dpmpp_sde_batch_determinism=not determinism))

    def start(ctx):
        img2img.ctx = ctx
        return img2img.run()

    engine.call("img2img", start, timeout=300)
    plan = img2img.sampling_plan()
    walked = plan.full if determinism else plan.schedule
    assert spans == [(float(walked[walked > 0].min()), float(walked.max()))]
    assert float(plan.schedule.max()) < float(plan.full.max())
