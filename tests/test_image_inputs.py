"""Odd image files as img2img and Extras inputs: each gets a defined result (modules/imaging/image_inputs.py makes
every input upright, 8-bit, RGB or RGBA) or a clear message (modules/images.open_image)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from app_process import endpoint_args
from PIL import Image

from modules.errors import UserError
from modules.extras import ExtrasJob, ExtrasParams, ExtrasSettings
from modules.images import open_image
from modules.imaging.image_inputs import flatten_input, normalize_input
from modules.imaging.image_tools import ImageTools
from modules.img2img import Img2Img, Img2ImgInputs
from modules.jobs.generation import RunSettings
from modules.jobs.generation_params import GenerationParams

RED, BLUE = (255, 0, 0), (0, 0, 255)
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # refused all the same


def encoded(image: Image.Image, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def cmyk_jpeg() -> bytes:
    return encoded(Image.new("CMYK", (32, 24), (0, 255, 255, 0)), "JPEG", quality=95)  # red ink


def sixteen_bit_png() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 32).round().astype(np.uint16), (24, 1))
    return encoded(Image.fromarray(ramp), "PNG")  # uint16: mode I;16


def palette_png() -> bytes:
    image = Image.new("P", (32, 24), 1)
    image.putpalette([*RED, *BLUE] + [0] * 762)
    image.paste(0, (0, 0, 16, 24))  # left half: index 0, the transparent one
    return encoded(image, "PNG", transparency=0)


def rgba_png() -> bytes:
    image = Image.new("RGBA", (32, 24), (*BLUE, 255))
    image.paste((*RED, 0), (0, 0, 16, 24))  # left half fully transparent
    return encoded(image, "PNG")


def rotated_jpeg() -> bytes:
    """Stored 40x20 with red on the left, and EXIF orientation 6: shown rotated 90° clockwise, red on top."""
    image = Image.new("RGB", (40, 20), BLUE)
    image.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(image, "JPEG", quality=95, exif=exif)


def near(pixel, colour, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def check_cmyk(image: Image.Image) -> None:
    assert image.mode == "RGB" and image.size == (32, 24) and near(image.getpixel((5, 5)), RED)


def check_sixteen_bit(image: Image.Image) -> None:
    assert image.mode == "RGB"
    row = [image.getpixel((x, 3))[0] for x in range(32)]
    # Scaled to 8 bits (Pillow's own conversion clips: all but the first column would be white).
    assert row[0] <= 8 and row[-1] >= 247 and abs(row[16] - 255 * 16 / 31) <= 8


def check_palette(image: Image.Image) -> None:
    assert image.mode == "RGBA" and image.getpixel((5, 5))[3] == 0 and image.getpixel((25, 5)) == (*BLUE, 255)


def check_rgba(image: Image.Image) -> None:
    assert image.mode == "RGBA" and image.getpixel((5, 5))[3] == 0 and image.getpixel((25, 5)) == (*BLUE, 255)


def check_rotated(image: Image.Image) -> None:
    assert image.size == (20, 40) and near(image.getpixel((10, 5)), RED) and near(image.getpixel((10, 35)), BLUE)


CASES = {
    "cmyk.jpg": (cmyk_jpeg, check_cmyk),
    "sixteen-bit.png": (sixteen_bit_png, check_sixteen_bit),
    "palette-transparent.png": (palette_png, check_palette),
    "rgba.png": (rgba_png, check_rgba),
    "exif-rotated.jpg": (rotated_jpeg, check_rotated),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    written = {}
    for name, (make, _) in CASES.items():
        written[name] = folder / name
        written[name].write_bytes(make())
    good = written["rgba.png"].read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    jpeg = written["cmyk.jpg"].read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    # Pillow refuses over twice MAX_IMAGE_PIXELS itself and only warns above it; both are refused here.
    for name, side in (("bomb.png", 20_000), ("over-limit.png", 9_500)):
        Image.new("1", (side, side)).save(folder / name)
    return {path.name: path for path in folder.iterdir()}


def test_the_files_are_what_they_claim(files):
    modes = {name: Image.open(files[name]).mode for name in CASES}
    assert modes == {
        "cmyk.jpg": "CMYK",
        "sixteen-bit.png": "I;16",
        "palette-transparent.png": "P",
        "rgba.png": "RGBA",
        "exif-rotated.jpg": "RGB",
    }
    assert Image.open(files["exif-rotated.jpg"]).getexif()[0x0112] == 6
    assert 9_500**2 > Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("name", CASES)
def test_normalize_input_gives_upright_8bit_rgb_or_rgba(files, name):
    CASES[name][1](normalize_input(open_image(files[name])))
    CASES[name][1](normalize_input(Image.open(files[name])))  # not yet decoded, as the page may hand it over


@pytest.mark.parametrize(
    "name,message",
    [
        ("truncated.png", "damaged"),
        ("truncated.jpg", "damaged"),
        ("bomb.png", "too large to open safely"),
        ("over-limit.png", "too large to open safely"),
    ],
)
def test_broken_and_huge_files_are_refused_with_a_clear_message(files, name, message):
    with pytest.raises(UserError, match=f"{name}.*{message}"):
        open_image(files[name])


def test_an_undecoded_truncated_image_is_refused_when_used(files):
    lazy = Image.open(files["truncated.png"])  # the header is whole: only decoding finds the damage
    with pytest.raises(UserError, match="The upload could not be read; it may be damaged"):
        normalize_input(lazy, "The upload")


# ---- img2img --------------------------------------------------------------------------------------------


def run_img2img(engine, model, image: Image.Image) -> tuple:
    params = GenerationParams(
        prompt="a photo",
        steps=2,
        width=64,
        height=64,
        seed=3,
        sampler_name="Euler",
        denoising_strength=0.5,
        resize_mode=0,
    )
    made = []

    def job(ctx):
        made.append(Img2Img(model, params, ctx, RunSettings(), inputs=Img2ImgInputs([image])))
        return made[0].run()

    return engine.call("img2img", job, timeout=300), made[0]


@pytest.mark.parametrize("name", CASES)
def test_each_odd_file_works_as_an_img2img_input(engine, demo_model, files, name):
    result, job = run_img2img(engine, demo_model, open_image(files[name]))
    assert len(result.images) == 1 and result.images[0].size == (64, 64)
    encoded_input = job.sources[0].original
    assert encoded_input.mode == "RGB"  # transparency flattened onto white
    expected = flatten_input(normalize_input(open_image(files[name])))
    assert encoded_input.tobytes() == expected.tobytes()
    if name in ("palette-transparent.png", "rgba.png"):
        assert encoded_input.getpixel((5, 5)) == (255, 255, 255)


def test_a_truncated_img2img_input_is_refused_before_sampling(engine, demo_model, files):
    calls = []
    handle = demo_model.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(UserError, match="Input image 1 could not be read"):
            run_img2img(engine, demo_model, Image.open(files["truncated.png"]))
    finally:
        handle.remove()
    assert calls == []


# ---- Extras ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extras(tmp_path_factory):
    tools = ImageTools.create(tmp_path_factory.mktemp("models"))
    params = ExtrasParams.from_dict({"upscaler_1": "Lanczos", "upscaling_resize": 2})

    def run(engine, inputs: list, output_dir: Path | None = None):
        job = lambda ctx: ExtrasJob(tools, params, ExtrasSettings(), ctx).run(inputs, output_dir)  # noqa: E731
        return engine.call("extras", job, timeout=120)

    return run


@pytest.mark.parametrize("name", CASES)
def test_each_odd_file_works_as_an_extras_input(engine, extras, files, name):
    for source in (files[name], open_image(files[name])):
        result = extras(engine, [source])
        (image,) = result.images
        expected = normalize_input(open_image(files[name]))
        assert image.mode == expected.mode and image.size == (expected.width * 2, expected.height * 2)
        CASES[name][1](image.resize(expected.size, Image.Resampling.NEAREST))


@pytest.mark.parametrize(
    "name,message",
    [
        ("truncated.png", "damaged"),
        ("bomb.png", "too large to open safely"),
        ("over-limit.png", "too large to open safely"),
    ],
)
def test_extras_refuses_a_bad_single_file_and_skips_it_in_a_batch(engine, extras, files, tmp_path, name, message):
    with pytest.raises(UserError, match=message):
        extras(engine, [files[name]])
    result = extras(engine, [files[name], files["rgba.png"]], tmp_path)
    assert len(result.paths) == 1 and any(f"Skipped {Path(name).stem}" in w for w in result.warnings)


def test_an_undecoded_huge_image_is_refused_before_decoding(files):
    with pytest.raises(UserError, match=r"The upload is 9500x9500 .* too large to open safely"):
        normalize_input(Image.open(files["over-limit.png"]), "The upload")


# ---- Through the page ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(page_app):
    from gradio_client import Client

    return Client(page_app[0], verbose=False)


def page_img2img(client, path: Path) -> bytes:
    from gradio_client import handle_file

    values = {
        "Sampling method": "Euler",
        "Width": 64,
        "Height": 64,
        "Sampling steps": 2,
        "Seed": 9,
        "Image for img2img": handle_file(str(path)),
    }
    gallery, *_ = client.predict(*endpoint_args(client, "/img2img", values), api_name="/img2img")
    return Image.open(gallery[0]["image"]).tobytes()


@pytest.mark.parametrize("name", ["sixteen-bit.png", "exif-rotated.jpg", "palette-transparent.png", "cmyk.jpg"])
def test_the_page_hands_odd_uploads_to_the_one_normalizer(page, files, tmp_path, name):
    """The same result as the file's normalized pixels saved as a plain PNG: the page neither clips 16-bit
    values nor drops the rotation or the transparency on the way."""
    plain = tmp_path / "plain.png"
    flatten_input(open_image(files[name])).save(plain)
    assert page_img2img(page, files[name]) == page_img2img(page, plain)


@pytest.mark.parametrize("name", ["over-limit.png", "bomb.png"])
def test_the_page_refuses_a_huge_upload_with_a_message(page, files, name):
    with pytest.raises(Exception, match="decompression bomb"):
        page_img2img(page, files[name])
