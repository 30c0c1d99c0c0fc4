"""Saving images: counters, patterns, formats with their infotext, and names that never collide."""

import threading
from types import SimpleNamespace

import pytest
from PIL import Image

from modules import shared
from modules.errors import UserError
from modules.images import FileNaming, SaveFormat, dated_folder, prompt_words, read_infotext, save_image, save_unique
from modules.jobs.file_names import NameFields
from modules.options import Options
from modules.ui.png_info import describe

INFOTEXT = "a cat, 猫\nNegative prompt: dog\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 8x8"


def test_file_name_counter_and_parameters_chunk(tmp_path):
    image = Image.new("RGB", (8, 8), "red")
    naming = FileNaming()  # the default pattern, [seed]-[prompt_words]
    first = naming.save(
        image, tmp_path, NameFields(seed=123, prompt="a cat: on/a mat"), "a cat\nSteps: 1, Seed: 123, Size: 8x8"
    )
    second = naming.save(image, tmp_path, NameFields(seed=124, prompt=""), None)
    assert first.name == "00000-123-a cat on a mat.png"
    assert second.name == "00001-124.png"
    assert Image.open(first).info["parameters"].startswith("a cat")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("extension, kind", [("jpg", "JPEG"), ("JPEG", "JPEG"), ("webp", "WEBP"), (".png", "PNG")])
def test_each_format_keeps_the_infotext_for_png_info(tmp_path, extension, kind):
    fmt = SaveFormat.named(extension)
    path = save_unique(Image.new("RGBA", (8, 8), (9, 9, 9, 128)), tmp_path, "x", INFOTEXT, fmt=fmt)
    assert path.suffix == "." + extension.lower().lstrip(".") and Image.open(path).format == kind
    assert read_infotext(Image.open(path)) == INFOTEXT
    assert describe(str(path))[2] == INFOTEXT


def test_lossless_webp_and_quality(tmp_path):
    noisy = Image.effect_noise((64, 64), 80).convert("RGB")
    lossless = save_unique(noisy, tmp_path, "a", fmt=SaveFormat("webp", webp_lossless=True))
    assert Image.open(lossless).convert("RGB").tobytes() == noisy.tobytes()
    low, high = (save_unique(noisy, tmp_path, "q", fmt=SaveFormat("jpg", q)) for q in (5, 95))
    assert low.stat().st_size < high.stat().st_size


def test_unknown_format_is_refused():
    with pytest.raises(UserError, match="can't be saved as 'gif'"):
        SaveFormat.named("gif")


def test_pattern_and_numbering_settings(tmp_path):
    fields = NameFields(seed=7, prompt="a cat", steps=20)
    naming = FileNaming(pattern="[seed]-[steps]-[prompt_spaces]", format=SaveFormat("jpg"))
    assert naming.save(Image.new("RGB", (8, 8)), tmp_path, fields, INFOTEXT).name == "00000-7-20-a cat.jpg"
    plain = FileNaming(pattern="[prompt]/[seed]", add_number=False)
    names = [plain.save(Image.new("RGB", (8, 8)), tmp_path, fields, None).name for _ in range(3)]
    assert names == ["a_cat_7.png", "a_cat_7-1.png", "a_cat_7-2.png"]
    empty = FileNaming(pattern="[none]", add_number=False)
    assert empty.save(Image.new("RGB", (8, 8)), tmp_path, fields, None).name == "00001.png"


def test_naming_follows_the_settings(tmp_path):
    opts = Options(tmp_path / "config.json")
    for key, value in (
        ("samples_format", "webp"),
        ("jpeg_quality", 50),
        ("samples_filename_pattern", "[seed]"),
        ("save_images_add_number", False),
        ("samples_filename_prompt_words", 3),
    ):
        opts.set(key, value)
    naming = FileNaming.from_options(opts)
    assert (naming.pattern, naming.add_number, naming.prompt_words) == ("[seed]", False, 3)
    assert naming.format == SaveFormat("webp", 50, False)
    with pytest.raises(ValueError, match="Unknown file name tag"):
        opts.set("samples_filename_pattern", "[seeds]")


@pytest.mark.parametrize(
    "naming",
    [FileNaming(), FileNaming(pattern="[job_timestamp]", add_number=False)],
    ids=["numbered", "same name, no number"],
)
def test_many_threads_saving_at_once_never_overwrite(tmp_path, naming):
    paths, errors, start = [], [], threading.Barrier(16)

    def save(i: int) -> None:
        start.wait()
        try:
            for j in range(4):
                image = Image.new("RGB", (4, 4), (i, j, 0))
                paths.append(naming.save(image, tmp_path, NameFields(seed=1, prompt="x"), f"image {i} {j}"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    files = sorted(tmp_path.iterdir())
    assert len({p.name for p in paths}) == 64 == len(files)
    texts = {Image.open(path).info["parameters"] for path in files}
    assert texts == {f"image {i} {j}" for i in range(16) for j in range(4)}


def test_save_image_for_scripts_follows_the_settings(tmp_path):
    opts = Options(tmp_path / "config.json")
    opts.set("samples_filename_pattern", "[seed]-[steps]")
    opts.set("save_to_dirs", False)
    shared.install(SimpleNamespace(opts=opts))
    try:
        p = SimpleNamespace(
            params=SimpleNamespace(
                seed=1,
                prompt="",
                styles=(),
                steps=9,
                cfg_scale=7,
                batch_size=1,
                n_iter=1,
                sampler_name="Euler",
                scheduler="Automatic",
                width=8,
                height=8,
                clip_skip=1,
                denoising_strength=0.5,
            )
        )
        name, _ = save_image(Image.new("RGB", (8, 8)), tmp_path / "out", "grid", 3, "cat", "webp", info=INFOTEXT, p=p)
        assert name.endswith("out/grid-0000-3-9.webp") and read_infotext(Image.open(name)) == INFOTEXT
        forced, _ = save_image(Image.new("RGB", (8, 8)), tmp_path, "", extension="png", forced_filename="../up")
        assert forced == str(tmp_path / "_up.png")
        with pytest.raises(UserError):
            save_image(Image.new("RGB", (8, 8)), tmp_path, "", extension="tiff")
    finally:
        shared.install(None)


def test_prompt_words_and_dated_folder(tmp_path):
    assert prompt_words("one two three four", 2) == "one two"
    assert dated_folder(tmp_path).parent == tmp_path
    assert len(dated_folder(tmp_path).name) == 10
