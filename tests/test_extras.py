"""The Extras job with real tools: a tiny ESRGAN file loaded by spandrel, GFPGAN's real architecture with
random weights (its detector set to find no face), real PNG files, and the real engine worker."""

from __future__ import annotations

import hashlib
import os
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import torch
from file_server import serving
from model_weights import link_gfpgan_files, tiny_esrgan
from PIL import Image, PngImagePlugin

from modules import face_restoration
from modules.errors import UserError
from modules.extras import SCALE_TO, ExtrasJob, ExtrasParams, ExtrasSettings, create_infotext, images_in_folder
from modules.face_restoration import (
    CODEFORMER_WEIGHTS,
    DETECTION_WEIGHTS,
    GFPGAN_WEIGHTS,
    NO_FACE_NOTE,
    PARSING_WEIGHTS,
    FaceRestorers,
    MissingWeightsError,
)
from modules.images import SaveFormat, read_infotext
from modules.imaging.image_tools import ImageTools
from modules.models.model_download import DownloadError, RemoteFile
from modules.ui.extras import FACE_MODELS_READY, download_missing_face_models, face_models_status

SOURCE_PARAMETERS = "an astronaut\nSteps: 20, Sampler: Euler, Seed: 5"


@pytest.fixture(scope="module")
def models_dir(weights_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 4x ESRGAN, a .pth that is no upscaler, and GFPGAN with a detector that finds no face."""
    root = tmp_path_factory.mktemp("models")
    (root / "ESRGAN").mkdir()
    torch.save(tiny_esrgan(), root / "ESRGAN" / "4x-tiny.pth")
    torch.save({"encoder.weight": torch.randn(8, 8)}, root / "ESRGAN" / "not-an-upscaler.pth")
    link_gfpgan_files(weights_store, root / "GFPGAN", finds_faces=False)
    return root


@pytest.fixture(scope="module")
def tools(models_dir: Path) -> ImageTools:
    return ImageTools.create(models_dir)


def _photo(size: tuple[int, int] = (64, 48)) -> Image.Image:
    from skimage.data import astronaut

    return Image.fromarray(astronaut()).resize(size, Image.Resampling.LANCZOS)


def _png(path: Path, image: Image.Image, parameters: str | None = None) -> Path:
    meta = PngImagePlugin.PngInfo()
    if parameters:
        meta.add_text("parameters", parameters)
    image.save(path, pnginfo=meta)
    return path


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# -- parameters and infotext ----------------------------------------------------------------------


def test_params_convert_page_values_and_refuse_bad_ones():
    params = ExtrasParams.from_dict(
        {"resize_mode": 1.0, "upscaling_resize_w": 300.0, "upscaling_crop": 0, "gfpgan_visibility": "0.5"}
    )
    assert (params.resize_mode, params.upscaling_resize_w, params.upscaling_crop) == (SCALE_TO, 300, False)
    assert params.gfpgan_visibility == 0.5 and params.upscaling_resize == 2.0 and params.upscaler_1 == "None"
    for bad, message in (
        ({"gfpgan_visibility": 1.5}, "between 0 and 1"),
        ({"resize_mode": 2}, "resize_mode"),
        ({"upscaling_resize": 0}, "above 0"),
        ({"upscaling_resize_w": "wide"}, "must be a int"),
        ({"denoising_strength": 0.3}, "Unknown extras field"),
    ):
        with pytest.raises(UserError, match=message):
            ExtrasParams.from_dict(bad)


def test_infotext_uses_a1111_keys_in_a1111_order():
    params = ExtrasParams(
        upscaling_resize=2.0,
        upscaler_1="Lanczos",
        upscaler_2="Nearest",
        extras_upscaler_2_visibility=0.5,
        gfpgan_visibility=1.0,
        codeformer_visibility=0.5,
        codeformer_weight=0.5,
    )
    assert create_infotext(params) == (
        "Postprocess upscale by: 2, Postprocess upscaler: Lanczos, Postprocess upscaler 2: Nearest, "
        "Postprocess upscaler 2 visibility: 0.5, GFPGAN visibility: 1, CodeFormer visibility: 0.5, "
        "CodeFormer weight: 0.5"
    )
    scale_to = ExtrasParams(
        resize_mode=SCALE_TO,
        upscaling_resize_w=300,
        upscaling_resize_h=200,
        upscaler_1="4x, tiny",
        upscaler_2="Nearest",
    )  # upscaler 2 unused at visibility 0
    assert create_infotext(scale_to) == (
        'Postprocess upscale to: 300x200, Postprocess crop to: 300x200, Postprocess upscaler: "4x, tiny"'
    )
    assert create_infotext(ExtrasParams(upscaling_resize=3.14159)) == ""  # upscaler 1 None: no upscaling


# -- one image ------------------------------------------------------------------------------------


def test_single_image_is_upscaled_blended_and_saved_with_both_chunks(tools, engine, tmp_path: Path):
    source = Image.open(_png(tmp_path / "in.png", _photo(), SOURCE_PARAMETERS))
    params = ExtrasParams(upscaler_1="4x-tiny", upscaler_2="Nearest", extras_upscaler_2_visibility=0.25)
    settings = ExtrasSettings(save_dir=tmp_path / "out", tile=32, overlap=8)
    result = engine.submit("extras", lambda ctx: ExtrasJob(tools, params, settings, ctx).run([source])).result()
    model = tools.upscalers.upscale_to(_photo(), 128, 96, "4x-tiny", tile=32, overlap=8)
    expected = Image.blend(model, _photo().resize((128, 96), Image.Resampling.NEAREST), 0.25)
    assert result.images[0].size == (128, 96) and np.abs(_pixels(result.images[0]) - _pixels(expected)).max() <= 1
    assert np.abs(_pixels(result.images[0]) - _pixels(model)).mean() > 1  # upscaler 2 really shows
    assert result.paths == [tmp_path / "out" / date.today().isoformat() / "00000.png"]
    saved = Image.open(result.paths[0])
    assert saved.text == {"parameters": SOURCE_PARAMETERS, "extras": result.infotexts[0]}
    assert result.infotexts[0] == (
        "Postprocess upscale by: 2, Postprocess upscaler: 4x-tiny, "
        "Postprocess upscaler 2: Nearest, Postprocess upscaler 2 visibility: 0.25"
    )
    assert not result.warnings and not result.interrupted


def test_extras_saves_in_the_chosen_format_with_the_parameters(tools, engine, tmp_path: Path):
    source = Image.open(_png(tmp_path / "in.png", _photo(), SOURCE_PARAMETERS))
    settings = ExtrasSettings(save_dir=tmp_path / "out", save_format=SaveFormat("webp"))
    params = ExtrasParams(upscaler_1="Nearest")
    result = engine.submit("extras", lambda ctx: ExtrasJob(tools, params, settings, ctx).run([source])).result()
    assert result.paths[0].name == "00000.webp"
    assert read_infotext(Image.open(result.paths[0])) == SOURCE_PARAMETERS


def test_scale_to_covers_the_size_then_crops_the_centre(tools):
    image = _photo((64, 48))
    params = ExtrasParams(resize_mode=SCALE_TO, upscaling_resize_w=100, upscaling_resize_h=100, upscaler_1="Lanczos")
    cropped = ExtrasJob(tools, params, ExtrasSettings()).run([image]).images[0]
    covering = image.resize((133, 100), Image.Resampling.LANCZOS)
    assert cropped.size == (100, 100)
    assert np.array_equal(_pixels(cropped), _pixels(covering.crop((16, 0, 116, 100))))
    params.upscaling_crop = False
    assert ExtrasJob(tools, params, ExtrasSettings()).run([image]).images[0].size == (133, 100)


def test_faces_are_restored_before_upscaling_unless_upscale_first(tools, monkeypatch):
    restorer = tools.face_restorers.get("GFPGAN")
    seen = []
    real_restore = restorer.restore

    def watched(image, visibility):
        seen.append(image.size)
        return real_restore(image, visibility)

    monkeypatch.setattr(restorer, "restore", watched)
    image = _photo()
    params = ExtrasParams(upscaler_1="Lanczos", gfpgan_visibility=1.0)
    result = ExtrasJob(tools, params, ExtrasSettings()).run([image])
    assert seen == [(64, 48)] and result.images[0].size == (128, 96)
    assert result.warnings == [NO_FACE_NOTE]  # no face: the image is left as it was, and the page says so
    assert np.array_equal(_pixels(result.images[0]), _pixels(image.resize((128, 96), Image.Resampling.LANCZOS)))
    params.upscale_first = True
    ExtrasJob(tools, params, ExtrasSettings()).run([image])
    assert seen[-1] == (128, 96)


# -- refusals -------------------------------------------------------------------------------------


def test_missing_face_weights_are_named_before_any_work(tmp_path: Path):
    params = ExtrasParams(upscaler_1="Lanczos", codeformer_visibility=1.0)
    with pytest.raises(MissingWeightsError) as info:
        ExtrasJob(ImageTools.create(tmp_path), params, ExtrasSettings(save_dir=tmp_path / "out")).run([_photo()])
    message = str(info.value)
    assert (
        f"{CODEFORMER_WEIGHTS.name}: download {CODEFORMER_WEIGHTS.url} and put it in {tmp_path / 'Codeformer'}"
        in message
        and DETECTION_WEIGHTS.url in message
        and "--download-face-models" in message
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name, message",
    [("not-an-upscaler", "not-an-upscaler.pth is not an upscaler model"), ("ghost", "Upscaler 'ghost' not found")],
)
def test_an_unusable_upscaler_is_refused(tools, name: str, message: str):
    with pytest.raises(UserError, match=message):
        ExtrasJob(tools, ExtrasParams(upscaler_1=name), ExtrasSettings()).run([_photo()])


def test_an_upscale_over_the_pixel_limit_is_refused(tools):
    params = ExtrasParams(upscaler_1="4x-tiny", upscaling_resize=8)
    with pytest.raises(UserError, match=r"Upscaling refused: the result would be 512x384 .* limit of 100,000"):
        ExtrasJob(tools, params, ExtrasSettings(max_pixels=100_000)).run([_photo()])


# -- batches --------------------------------------------------------------------------------------


def test_a_batch_skips_bad_files_and_goes_on(tools, tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    _png(folder / "a.png", _photo(), SOURCE_PARAMETERS)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _photo((400, 300)).save(folder / "huge.jpg")
    _photo((32, 32)).convert("L").save(folder / "grey.png")
    (folder / "notes.txt").write_text("not an image")
    files = images_in_folder(folder)
    assert [p.name for p in files] == ["a.png", "broken.png", "grey.png", "huge.jpg"]
    params = ExtrasParams(upscaler_1="Nearest")
    result = ExtrasJob(tools, params, ExtrasSettings(max_pixels=50_000)).run(files, tmp_path / "out")
    assert [p.name for p in result.paths] == ["00000-a.png", "00001-grey.png"]
    assert [w.split(":")[0] for w in result.warnings] == ["Skipped broken", "Skipped huge"]
    assert "not an image this app can read" in result.warnings[0] and "Upscaling refused" in result.warnings[1]
    assert Image.open(result.paths[0]).text["parameters"] == SOURCE_PARAMETERS
    assert Image.open(result.paths[1]).mode == "RGB" and result.images[1].size == (64, 64)
    paths_only = ExtrasJob(tools, params, ExtrasSettings()).run(files[:1], tmp_path / "out", keep_images=False)
    assert paths_only.images == [] and paths_only.paths == [tmp_path / "out" / "00002-a.png"]


def test_folder_errors():
    with pytest.raises(UserError, match="does not exist"):
        images_in_folder(Path("/no/such/folder"))


# -- the Download button --------------------------------------------------------------------------


@pytest.fixture
def release_server(monkeypatch):
    """Every face model file served from 127.0.0.1 under its real name, with the sha256 of what is served."""
    served: dict[str, bytes] = {}
    with serving(served) as base:
        for variable in ("GFPGAN_WEIGHTS", "DETECTION_WEIGHTS", "PARSING_WEIGHTS", "CODEFORMER_WEIGHTS"):
            remote = getattr(face_restoration, variable)
            body = remote.name.encode() * 50_000
            served[f"/{remote.name}"] = body
            monkeypatch.setattr(
                face_restoration,
                variable,
                RemoteFile(remote.name, f"{base}/{remote.name}", hashlib.sha256(body).hexdigest()),
            )
        monkeypatch.setattr(
            face_restoration,
            "FACE_MODEL_FILES",
            tuple(getattr(face_restoration, v) for v in ("GFPGAN_WEIGHTS", "DETECTION_WEIGHTS", "PARSING_WEIGHTS")),
        )
        yield served


def test_download_fetches_every_missing_file_with_progress(release_server, tmp_path: Path):
    restorers = FaceRestorers(tmp_path)
    before = face_models_status(restorers)
    assert before.startswith("Face restoration needs model files") and "\n\nOr let the program fetch" in before
    remotes = (GFPGAN_WEIGHTS, DETECTION_WEIGHTS, PARSING_WEIGHTS, CODEFORMER_WEIGHTS)
    assert [before.count(f"{remote.name}: download http") for remote in remotes] == [1, 1, 1, 1]
    calls = []
    status = download_missing_face_models(restorers, lambda fraction, desc: calls.append((fraction, desc)))
    assert status == FACE_MODELS_READY == face_models_status(restorers)
    for folder, remote in zip(("GFPGAN", "GFPGAN", "GFPGAN", "Codeformer"), remotes):
        assert (tmp_path / folder / remote.name).read_bytes() == release_server[f"/{remote.name}"]
    size = len(release_server[f"/{GFPGAN_WEIGHTS.name}"]) / 1e6
    assert calls[0] == (0.0, f"Downloading {GFPGAN_WEIGHTS.name}: 0.0 of {size:.1f} MB")
    assert (1.0, f"Downloading {GFPGAN_WEIGHTS.name}: {size:.1f} of {size:.1f} MB") in calls


def test_download_refuses_a_file_that_fails_its_checksum(release_server, tmp_path: Path):
    release_server[f"/{PARSING_WEIGHTS.name}"] = b"tampered"
    restorers = FaceRestorers(tmp_path)
    with pytest.raises(DownloadError, match=f"{PARSING_WEIGHTS.name} from .* failed its checksum"):
        download_missing_face_models(restorers, lambda *args, **kwargs: None)
    assert sorted(os.listdir(tmp_path / "GFPGAN")) == sorted([DETECTION_WEIGHTS.name, GFPGAN_WEIGHTS.name])
    assert f"{PARSING_WEIGHTS.name}: download" in face_models_status(restorers)
