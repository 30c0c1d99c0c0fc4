"""The built-in scripts in scripts/ end to end on the demo model: grids, labels and sizes."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from PIL import Image
from script_services import generate, generate_img2img, services_with_scripts
from tiny_models import write_tiny_checkpoint

from modules import script_callbacks
from modules.errors import UserError
from modules.sampling import registry


@pytest.fixture(scope="module")
def services(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("data")
    write_tiny_checkpoint("sd1", data / "models" / "Stable-diffusion" / "other.safetensors", seed=7)
    made = services_with_scripts(data, demo_checkpoint, [])
    yield made
    made.engine.shutdown()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from skimage import data as samples

    return Image.fromarray(samples.astronaut()).resize((64, 64))


def script_module(name: str):
    return importlib.import_module(f"scripts.{name}")


def test_xyz_range_syntax(services):
    xyz = script_module("xyz_grid")
    steps, cfg = xyz.AXES[2], xyz.AXES[3]
    assert xyz.parse_values(steps, "1-10 (+3)") == [1, 4, 7, 10]
    assert xyz.parse_values(steps, "1-10 [4]") == [1, 4, 7, 10]
    assert xyz.parse_values(steps, "5-2, 9") == [5, 4, 3, 2, 9]
    assert xyz.parse_values(cfg, "0.5-1.0 (+0.25)") == [0.5, 0.75, 1.0]
    assert xyz.parse_values(xyz.AXES[4], 'Euler, "DPM++ 2M"') == ["Euler", "DPM++ 2M"]
    with pytest.raises(UserError, match="can't read 'a-b'"):
        xyz.parse_values(steps, "a-b")


def test_xyz_fill_lists_every_choice_as_the_values_box_reads_them(services):
    xyz = script_module("xyz_grid")
    sampler, checkpoint, steps = (
        next(a for a in xyz.AXES if a.label == name) for name in ("Sampler", "Checkpoint name", "Steps")
    )
    assert xyz.parse_values(sampler, xyz.all_values(sampler)) == registry.SAMPLER_NAMES
    assert xyz.parse_values(checkpoint, xyz.all_values(checkpoint)) == services.models.titles()
    assert xyz._csv_item('a, "b"') == '"a, ""b"""' and xyz.all_values(steps) == ""


def test_xyz_grid_cells_labels_and_sizes(services):
    result = generate(
        services,
        "X/Y/Z plot",
        {"X type": "Steps", "X values": "2-4", "Y type": "CFG Scale", "Y values": "3, 7", "Include Sub Images": True},
    )
    grid, *cells = result.images
    assert len(cells) == 6
    assert grid.width > 3 * 64 and grid.height > 2 * 64  # 3 columns and 2 rows plus the label bands
    assert next("Steps: 2," in t and "CFG scale: 3," in t for t in result.infotexts[1:])
    assert "Steps: 4," in result.infotexts[3] and "CFG scale: 7," in result.infotexts[6]
    alone = generate(services, steps=3, cfg_scale=7)
    assert np.array_equal(np.asarray(cells[4]), np.asarray(alone.images[0]))  # x=3, y=7: the same seed
    assert np.array_equal(
        np.asarray(grid.crop((grid.width - 128, grid.height - 64, grid.width - 64, grid.height))), np.asarray(cells[4])
    )


def test_xyz_z_axis_prompt_sr_and_checkpoints(services):
    before = services.models.current_title
    result = generate(
        services,
        "X/Y/Z plot",
        {
            "X type": "Prompt S/R",
            "X values": "red, blue",
            "Y type": "Nothing",
            "Z type": "Checkpoint name",
            "Z values": "demo, other",
            "Include Sub Images": True,
            "Include Sub Grids": True,
        },
    )
    summary, grid_a, grid_b, *cells = result.images
    assert len(cells) == 4 and summary.width >= grid_a.width + grid_b.width
    prompts = [text.split("\n")[0] for text in result.infotexts[3:]]
    assert prompts == ["a red house", "a blue house", "a red house", "a blue house"]
    assert "Model: demo" in result.infotexts[3] and "Model: other" in result.infotexts[5]
    assert services.models.current_title == before


def test_xyz_variation_axes(services):
    result = generate(
        services,
        "X/Y/Z plot",
        {
            "X type": "Var. strength",
            "X values": "0, 1",
            "Y type": "Var. seed",
            "Y values": "40, 41",
            "Include Sub Images": True,
        },
    )
    cells = result.images[1:]
    assert "Variation" not in result.infotexts[1]
    assert "Variation seed: 41, Variation seed strength: 1," in result.infotexts[4]
    assert np.array_equal(np.asarray(cells[0]), np.asarray(cells[2]))  # strength 0: the variation seed is unused
    assert not np.array_equal(np.asarray(cells[1]), np.asarray(cells[3]))


def test_xyz_refiner_axes(services):
    result = generate(
        services,
        "X/Y/Z plot",
        {
            "X type": "Refiner checkpoint",
            "X values": "None, other",
            "Y type": "Refiner switch at",
            "Y values": "0.3, 1",
            "Include Sub Images": True,
        },
        steps=4,
    )
    none_early, other_early, none_late, other_late = (np.asarray(cell) for cell in result.images[1:])
    assert "Refiner" not in result.infotexts[1] and "Refiner: other [" in result.infotexts[2]
    assert "Refiner switch at: 0.3" in result.infotexts[2] and "Refiner" not in result.infotexts[4]
    assert not np.array_equal(none_early, other_early)
    assert np.array_equal(none_early, none_late) and np.array_equal(none_late, other_late)  # 1: never takes over
    with pytest.raises(UserError, match="no checkpoint called 'nope'"):
        generate(services, "X/Y/Z plot", {"X type": "Refiner checkpoint", "X values": "nope"})


def test_xyz_refuses_a_bad_sampler_before_any_work(services):
    with pytest.raises(UserError, match="Nope"):
        generate(services, "X/Y/Z plot", {"X type": "Sampler", "X values": "Euler, Nope"})


def test_prompts_from_textbox(services):
    text = 'a cat\n--prompt "a dog" --steps 2 --cfg_scale 5\n'
    result = generate(services, "Prompts from file or textbox", {"List of prompt inputs": text}, prompt="")
    assert [t.split("\n")[0] for t in result.infotexts] == ["a cat", "a dog"]
    assert "Steps: 3," in result.infotexts[0] and "Steps: 2, " in result.infotexts[1]
    assert "CFG scale: 5," in result.infotexts[1]
    with pytest.raises(UserError, match="Unknown option '--colour'"):
        generate(services, "Prompts from file or textbox", {"List of prompt inputs": "--colour red"})


def test_loopback_feeds_each_result_back(services, photo):
    loopback = script_module("loopback")
    assert loopback.denoising_strength(0.8, 0.4, "Linear", 1, 3) == pytest.approx(0.6)
    assert loopback.denoising_strength(0.8, 0.4, "Aggressive", 1, 3) < 0.6
    result = generate_img2img(
        services, photo, "Loopback", {"Loops": 3, "Final denoising strength": 0.3}, denoising_strength=0.6
    )
    grid, *loops = result.images
    assert len(loops) == 3 and grid.size == (3 * 64, 64)
    assert "Denoising strength: 0.6," in result.infotexts[1] and "Denoising strength: 0.3," in result.infotexts[3]
    assert "Final denoising strength: 0.3" in result.infotexts[1]


def test_sd_upscale_redraws_tiles_at_the_new_size(services, photo):
    steps = []
    script_callbacks.on_cfg_denoiser(lambda params: steps.append(params.x.shape[-1]))
    try:
        result = generate_img2img(
            services,
            photo,
            "SD upscale",
            {"Scale Factor": 2.0, "Tile overlap": 16, "Upscaler": "Lanczos"},
            denoising_strength=0.5,
            steps=4,
        )
    finally:
        script_callbacks.clear()
    assert result.images[0].size == (128, 128)
    # 128 pixels in 64-pixel tiles overlapping by at least 16: 3 x 3 tiles, each img2img'd for int(4 × 0.5) + 1
    # steps (A1111).
    assert steps == [8] * 9 * 3
    lanczos = np.asarray(photo.resize((128, 128), Image.Resampling.LANCZOS), dtype=int)
    assert np.abs(np.asarray(result.images[0], dtype=int) - lanczos).mean() > 0


def test_outpainting_mk2_grows_the_chosen_sides_and_keeps_the_image(services, photo):
    values = {"Pixels to expand": 32, "Mask blur": 0, "Outpainting direction": ["left", "up"], "Color variation": 0.2}
    result = generate_img2img(services, photo, "Outpainting mk2", values, denoising_strength=0.8)
    (image,) = result.images
    assert image.size == (96, 96)
    out = np.asarray(image, dtype=int)
    assert (out[32:, 32:] == np.asarray(photo, dtype=int)).all(), "the old image is composited back unchanged"
    assert out[:32].std() > 0 and "Mask blur: 0" in result.infotexts[0]
    again = generate_img2img(services, photo, "Outpainting mk2", values, denoising_strength=0.8)
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(image))
    with pytest.raises(UserError, match="at least one outpainting direction"):
        generate_img2img(services, photo, "Outpainting mk2", {"Outpainting direction": []})


@pytest.mark.parametrize("sigma_adjustment", [False, True])
def test_reverse_euler_finds_the_noise_that_euler_turns_back_into_the_image(sigma_adjustment):
    """On a model whose x0 is exact (Gaussian data), Euler from the found noise lands back on the image."""
    import torch

    from modules.sampling.denoiser import Denoiser, alphas_cumprod_of
    from modules.sampling.k_samplers import sample_euler

    alt = script_module("img2imgalt")
    denoiser, variance = Denoiser(alphas_cumprod_of({})), 0.5
    model = lambda x, sigma: x * variance / (variance + sigma.reshape(-1, 1, 1, 1) ** 2)  # noqa: E731
    image = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * variance**0.5
    noise = alt.reverse_euler(model, image, denoiser.uniform_sigmas(40).flip(0), sigma_adjustment)
    start = alt.mixed(noise, torch.zeros_like(noise), 0.0) - image / denoiser.sigma_max  # as the script starts
    schedule = denoiser.uniform_sigmas(40)
    rebuilt = sample_euler(model, image + start * schedule[0], schedule)
    assert (rebuilt - image).abs().mean() < 0.1 * image.abs().mean()


def test_img2img_alternative_test_samples_from_the_image_not_the_seed(services, photo):
    import torch

    settings = {"prompt": "a photo", "sampler_name": "Euler", "steps": 6, "cfg_scale": 1.0, "denoising_strength": 1.0}
    values = {"Original prompt": "a photo", "Decode CFG scale": 1.0, "Decode steps": 6}
    calls = []
    handle = services.models.current.unet.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        first = generate_img2img(services, photo, "img2img alternative test", values, seed=1, **settings)
        decoded_and_sampled = len(calls)
        second = generate_img2img(services, photo, "img2img alternative test", values, seed=2, **settings)
    finally:
        handle.remove()
    assert decoded_and_sampled == 12 and len(calls) == 18, "the found noise is reused while nothing changed"
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(second.images[0])), "the seed plays no part"
    plain = [generate_img2img(services, photo, seed=seed, **settings).images[0] for seed in (1, 2)]
    assert not np.array_equal(np.asarray(plain[0]), np.asarray(plain[1]))
    random = generate_img2img(
        services, photo, "img2img alternative test", {**values, "Randomness": 0.5}, seed=1, **settings
    )
    assert not np.array_equal(np.asarray(random.images[0]), np.asarray(first.images[0]))
    text = first.infotexts[0]
    for entry in (
        "Decode prompt: a photo",
        "Decode CFG scale: 1.0",
        "Decode steps: 6",
        "Randomness: 0",
        "Sigma Adjustment: False",
    ):
        assert entry in text, text
    assert torch.is_tensor(script_module("img2imgalt").mixed(torch.ones(1), torch.zeros(1), 0.5))


def test_prompt_interpolation_moves_only_the_conditioning_and_makes_an_animation(services):
    lines = "a red house\na blue boat"
    result = generate(services, "Prompt interpolation", {"Prompts, one per line": lines, "Frames per transition": 3})
    animation, *frames = result.images
    assert len(frames) == 4 and animation.n_frames == 4 and result.paths[0].suffix == ".webp"
    assert result.paths[0].with_suffix(".gif").is_file() and all(path.is_file() for path in result.paths[1:])
    first, last = generate(services, prompt="a red house"), generate(services, prompt="a blue boat")
    assert np.array_equal(np.asarray(frames[0]), np.asarray(first.images[0]))
    assert np.array_equal(np.asarray(frames[-1]), np.asarray(last.images[0]))
    assert not np.array_equal(np.asarray(frames[1]), np.asarray(frames[0]))
    assert not np.array_equal(np.asarray(frames[2]), np.asarray(frames[-1]))
    # the value is quoted, as it holds a comma
    assert 'Interpolation: "2/4, slerp"' in result.infotexts[2] and "a red house" in result.infotexts[2]
    assert len(result.seeds) == 5 and len(set(result.seeds)) == 1  # one seed for every frame


def test_a_middle_frames_conditioning_is_the_slerp_of_the_two_prompts(services):
    from modules.prompting.conditioning_blend import BlendedConditioning, ConditioningBlend
    from modules.prompting.step_conditioning import StepConditioning

    encoder = services.models.current.prompt_encoder
    a = StepConditioning(encoder, ["a red house"], [""], 3)
    b = StepConditioning(encoder, ["a blue boat, " * 40], [""], 3)  # more chunks: the shorter is padded
    mixed = BlendedConditioning(a, b, ConditioningBlend("", 0.3, "slerp")).at(0).cond.double().numpy()
    start, end = a.at(0).cond.double().numpy(), b.at(0).cond.double().numpy()
    empty = a.empty_chunk.double().numpy()
    start = np.concatenate([start, *[empty] * ((end.shape[1] - start.shape[1]) // empty.shape[1])], axis=1)
    assert mixed.shape == end.shape and end.shape[1] > 77
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    theta = np.arccos(np.clip((unit(start) * unit(end)).sum(-1, keepdims=True), -1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = (np.sin(0.7 * theta) * start + np.sin(0.3 * theta) * end) / np.sin(theta)
    expected = np.where(np.sin(theta) > 1e-6, expected, 0.7 * start + 0.3 * end)
    assert np.allclose(mixed, expected, atol=1e-4)
    lerped = BlendedConditioning(a, b, ConditioningBlend("", 0.3, "lerp")).at(0).cond.double().numpy()
    assert np.allclose(lerped, 0.7 * start + 0.3 * end, atol=1e-5) and not np.allclose(lerped, mixed, atol=1e-4)


def test_prompt_interpolation_needs_two_prompts(services):
    with pytest.raises(UserError, match="at least two prompts"):
        generate(services, "Prompt interpolation", {"Prompts, one per line": "only one"})


def test_loopback_appends_what_clip_interrogation_sees_in_each_input(services, photo):
    from interrogate_models import write_term_lists, write_tiny_interrogate_models

    from modules import shared

    write_tiny_interrogate_models(services.paths.models)
    services.interrogator.lists_dir = write_term_lists(services.paths.root / "term-lists")
    services.opts.set_many({"interrogate_clip_min_length": 4, "interrogate_clip_max_length": 8})
    result = generate_img2img(
        services,
        photo,
        "Loopback",
        {"Loops": 2, "Append interrogated prompt at each iteration": "CLIP"},
        prompt="a fox",
    )
    _, *loops = result.images
    first_input = shared.interrogator.interrogate(photo)
    assert result.infotexts[1].startswith(f"a fox, {first_input}\n")
    assert result.infotexts[2].startswith(f"a fox, {shared.interrogator.interrogate(loops[0])}\n")
    with pytest.raises(UserError, match="'DeepBooru' is not available"):
        generate_img2img(services, photo, "Loopback", {"Append interrogated prompt at each iteration": "DeepBooru"})
