"""Upscalers: latent modes, real spandrel-loaded model files built here, tiling, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_weights import tiny_esrgan
from PIL import Image
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact

from modules.errors import UserError
from modules.imaging.upscalers import LATENT_MODES, UpscalerLibrary, is_latent_upscaler, tiled_apply, upscale_latents


def _photo(size: tuple[int, int] = (48, 40)) -> Image.Image:
    from skimage.data import astronaut

    return Image.fromarray(astronaut()).resize(size, Image.Resampling.LANCZOS)


def _tiny_compact() -> dict[str, torch.Tensor]:
    """Real-ESRGAN's compact network with one body conv: a receptive field of 3 pixels."""
    torch.manual_seed(1)
    return Compact(num_feat=8, num_conv=1, upscale=2).state_dict()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    (tmp_path / "ESRGAN").mkdir()
    (tmp_path / "RealESRGAN" / "nested").mkdir(parents=True)
    torch.save(tiny_esrgan(), tmp_path / "ESRGAN" / "4x-tiny.pth")
    save_file(tiny_esrgan(), str(tmp_path / "ESRGAN" / "tiny-safe.safetensors"))
    torch.save({"params": _tiny_compact()}, tmp_path / "RealESRGAN" / "nested" / "compact-2x.pth")
    (tmp_path / "ESRGAN" / "readme.txt").write_text("not a model")
    return tmp_path


# -- latent modes ---------------------------------------------------------------------------------


def test_latent_modes_are_a1111s():
    assert LATENT_MODES == [
        "Latent",
        "Latent (antialiased)",
        "Latent (bicubic)",
        "Latent (bicubic antialiased)",
        "Latent (nearest)",
        "Latent (nearest-exact)",
    ]
    assert all(is_latent_upscaler(m) for m in LATENT_MODES) and not is_latent_upscaler("Lanczos")


def test_every_latent_mode_gives_the_requested_shape_and_dtype():
    latents = torch.randn(2, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    results = {}
    for mode in LATENT_MODES:
        out = upscale_latents(latents, mode, 13, 20)
        assert out.shape == (2, 4, 13, 20) and out.dtype == latents.dtype
        results[mode] = out
    for i, a in enumerate(LATENT_MODES):  # six different resamplers: no two agree
        for b in LATENT_MODES[i + 1 :]:
            assert not torch.allclose(results[a], results[b]), (a, b)
    half = upscale_latents(latents.half(), "Latent (bicubic antialiased)", 16, 24)
    assert half.dtype == torch.float16 and half.shape == (2, 4, 16, 24)


def test_latent_modes_match_their_interpolation():
    latents = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(1))
    nearest = upscale_latents(latents, "Latent (nearest)", 12, 12)
    assert torch.equal(nearest[..., ::2, ::2], latents)  # 2x nearest repeats each value
    bilinear = upscale_latents(latents, "Latent", 12, 12)
    assert torch.allclose(bilinear, torch.nn.functional.interpolate(latents, size=(12, 12), mode="bilinear"))
    # Antialiasing only matters when shrinking: there it must smooth.
    shrunk = upscale_latents(latents, "Latent (antialiased)", 3, 3)
    assert not torch.allclose(shrunk, upscale_latents(latents, "Latent", 3, 3))


def test_unknown_latent_mode():
    with pytest.raises(UserError, match="Unknown latent upscale mode"):
        upscale_latents(torch.zeros(1, 4, 8, 8), "Latent (bogus)", 16, 16)


# -- the library ------------------------------------------------------------------------------------


def test_names_follow_a1111_order(models_dir: Path):
    lib = UpscalerLibrary(models_dir)
    assert lib.names() == ["None", "Lanczos", "Nearest", "4x-tiny", "compact-2x", "tiny-safe"]
    assert lib.model_files()["compact-2x"] == models_dir / "RealESRGAN" / "nested" / "compact-2x.pth"
    assert UpscalerLibrary(models_dir / "nothing-here").names() == ["None", "Lanczos", "Nearest"]


@pytest.mark.parametrize("name", ["None", "Lanczos", "Nearest"])
def test_pil_upscalers(name: str):
    image = _photo()
    out = UpscalerLibrary(Path("/nonexistent")).upscale(image, 2.5, name)
    assert out.size == (120, 100) and out.mode == "RGB"
    if name == "Nearest":
        assert out.getpixel((0, 0)) == image.getpixel((0, 0))


@pytest.mark.parametrize("name", ["4x-tiny", "tiny-safe"])
def test_esrgan_file_loads_through_spandrel_and_upscales(models_dir: Path, name: str):
    lib = UpscalerLibrary(models_dir)
    model = lib.load(name)
    assert model.architecture.id == "ESRGAN" and model.scale == 4
    assert lib.load(name) is model  # cached
    image = _photo()
    out = lib.upscale(image, 3.0, name, tile=0)
    assert out.size == (144, 120) and out.mode == "RGB"
    # The network really ran: its output is not a plain resize of the input.
    plain = np.asarray(image.resize(out.size, Image.Resampling.LANCZOS), dtype=np.int16)
    assert np.abs(np.asarray(out, dtype=np.int16) - plain).mean() > 2


def test_model_runs_twice_for_a_scale_above_its_own(models_dir: Path):
    lib = UpscalerLibrary(models_dir)
    passes = []
    out = lib.upscale(_photo((20, 16)), 6.0, "compact-2x", tile=0, progress=lambda d, t: passes.append((d, t)))
    assert out.size == (120, 96)
    assert passes.count((1, 1)) == 3  # 2x -> 4x -> 8x, then resized down to 6x


def test_alpha_is_kept(models_dir: Path):
    image = _photo((24, 20)).convert("RGBA")
    image.putalpha(Image.new("L", image.size, 77))
    out = UpscalerLibrary(models_dir).upscale(image, 2.0, "compact-2x")
    assert out.mode == "RGBA" and out.size == (48, 40)
    assert out.getchannel("A").getextrema() == (77, 77)


def test_tiled_equals_untiled_for_a_small_receptive_field(models_dir: Path):
    lib = UpscalerLibrary(models_dir)
    image = _photo((100, 76))
    whole = np.asarray(lib.upscale(image, 2.0, "compact-2x", tile=0), dtype=np.int16)
    calls = []
    tiled = np.asarray(
        lib.upscale(image, 2.0, "compact-2x", tile=32, overlap=16, progress=lambda d, t: calls.append((d, t))),
        dtype=np.int16,
    )
    assert calls[-1] == (calls[-1][1], calls[-1][1]) and calls[-1][1] == 6 * 4  # 6 columns x 4 rows
    assert np.abs(whole - tiled).max() <= 1  # only float rounding differs


def test_tiles_blend_without_seams():
    """A model with a large receptive field differs from the untiled run near tile edges, but
    the cross-fade keeps the error spread out instead of a hard seam."""
    torch.manual_seed(2)
    blur = torch.nn.Conv2d(3, 3, 9, padding=4, bias=False)  # 4-pixel reach, more than overlap / 4
    with torch.no_grad():
        blur.weight.fill_(1 / (81 * 3))
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    whole = blur(image).detach()
    tiled = tiled_apply(lambda t: blur(t).detach(), image, 1, tile=32, overlap=8)
    assert tiled.shape == whole.shape
    hard = tiled_apply(lambda t: blur(t).detach(), image, 1, tile=32, overlap=0)
    assert (tiled - whole).abs().max() < (hard - whole).abs().max()


def test_overlap_must_be_smaller_than_tile(models_dir: Path):
    with pytest.raises(UserError, match="overlap"):
        UpscalerLibrary(models_dir).upscale(_photo((80, 80)), 2.0, "compact-2x", tile=32, overlap=32)


# -- refusals -----------------------------------------------------------------------------------


def test_a_pth_that_is_not_an_upscaler_is_refused(models_dir: Path):
    torch.save(
        {"encoder.weight": torch.randn(16, 16), "head.bias": torch.randn(3)}, models_dir / "ESRGAN" / "random.pth"
    )
    lib = UpscalerLibrary(models_dir)
    assert "random" in lib.names()  # listed like any file, refused when used
    with pytest.raises(UserError, match=r"random.pth is not an upscaler model"):
        lib.upscale(_photo(), 2.0, "random")


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.marker),))


def test_pickled_code_is_never_run(models_dir: Path, tmp_path: Path):
    _Payload.marker = str(tmp_path / "pwned")
    torch.save({"model": _Payload()}, models_dir / "ESRGAN" / "evil.pth")
    with pytest.raises(UserError, match=r"evil.pth"):
        UpscalerLibrary(models_dir).load("evil")
    assert not (tmp_path / "pwned").exists()


def test_garbage_file_is_refused(models_dir: Path):
    (models_dir / "HAT").mkdir()
    (models_dir / "HAT" / "broken.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match=r"broken.safetensors"):
        UpscalerLibrary(models_dir).load("broken")


def test_unknown_upscaler_name(models_dir: Path):
    with pytest.raises(UserError, match="not found"):
        UpscalerLibrary(models_dir).upscale(_photo(), 2.0, "ghost")


def test_pixel_limit_refuses_before_any_work(models_dir: Path):
    lib = UpscalerLibrary(models_dir, max_pixels=100 * 100)
    with pytest.raises(UserError, match="over the limit"):
        lib.upscale(_photo(), 4.0, "Lanczos")
    with pytest.raises(UserError, match="4x pass of 4x-tiny"):  # the target fits, a 4x pass would not
        lib.upscale(_photo((40, 40)), 2.0, "4x-tiny")
    assert lib.upscale(_photo((40, 40)), 2.0, "Lanczos").size == (80, 80)
