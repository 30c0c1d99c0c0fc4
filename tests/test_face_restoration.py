"""Face restoration with GFPGAN's and CodeFormer's real architectures and random weights; how the
detector is made to find exactly one face is explained in tests/model_weights.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from model_weights import TEST_WIDTHS, codeformer_weights, face_model_folders
from PIL import Image

from modules.errors import UserError
from modules.face_restoration import (
    CODEFORMER_WEIGHTS,
    DETECTION_WEIGHTS,
    FACE_MODEL_FILES,
    GFPGAN_WEIGHTS,
    NO_FACE_NOTE,
    PARSING_WEIGHTS,
    CodeFormerRestorer,
    GFPGANRestorer,
    MissingWeightsError,
    create_face_restorer,
)
from modules.imaging.face_networks import (
    GFPGAN_WIDTHS,
    PARSENET_WIDTHS,
    gfpgan_network,
    gfpgan_widths,
    parsenet,
    parsenet_widths,
)


@pytest.fixture(scope="module")
def weights(weights_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return face_model_folders(weights_store, tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """The astronaut's head and shoulders, 128 pixels square."""
    from skimage.data import astronaut

    return Image.fromarray(astronaut()).crop((130, 20, 322, 212)).resize((128, 128), Image.Resampling.LANCZOS)


def _diff(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))


def test_gfpgan_restores_the_face_and_blends_by_visibility(weights, photo, monkeypatch):
    restorer = GFPGANRestorer(weights["face_models"])
    assert restorer.available()
    runs = counted_runs(restorer, monkeypatch)
    full, note = restorer.restore(photo, 1.0)
    assert note is None and full.size == photo.size and full.mode == "RGB"
    changed = _diff(full, photo).max(axis=2) > 0
    assert changed.mean() > 0.05  # the pasted face covers a good part of the image
    assert not changed.all()  # ... but not all of it: the ParseNet mask is feathered and bounded
    part, note = restorer.restore(photo, 0.3)
    assert note is None
    assert _diff(part, Image.blend(photo, full, 0.3)).max() <= 1  # the same restore, 30% of it
    assert len(runs) == 1  # ... kept from the first call
    assert restorer.restore(photo, 0.0) == (photo, None)


def counted_runs(restorer: GFPGANRestorer, monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """The images `restorer` runs its networks on from now on."""
    runs: list[np.ndarray] = []
    run_networks = restorer._restore_array
    monkeypatch.setattr(restorer, "_restore_array", lambda rgb, weight: runs.append(rgb) or run_networks(rgb, weight))
    return runs


def test_no_face_returns_the_image_unchanged_with_a_note(weights, photo, monkeypatch):
    restorer = GFPGANRestorer(weights["noface_models"])
    runs = counted_runs(restorer, monkeypatch)
    for image in (photo, photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)):
        restored, note = restorer.restore(image, 1.0)
        assert restored is image and note == NO_FACE_NOTE
    assert len(runs) == 2  # the same image again is answered from the last run; another one runs again


def test_alpha_channel_survives(weights, photo):
    rgba = photo.convert("RGBA")
    rgba.putalpha(200)
    restored, note = GFPGANRestorer(weights["noface_models"]).restore(rgba, 1.0)
    assert restored.mode == "RGBA" and note == NO_FACE_NOTE


def test_missing_weights_name_files_urls_and_folder(tmp_path: Path, photo):
    restorer = GFPGANRestorer(tmp_path)
    assert not restorer.available()
    with pytest.raises(MissingWeightsError) as info:
        restorer.restore(photo, 1.0)
    message = str(info.value)
    for remote in FACE_MODEL_FILES:
        assert f"{remote.name}: download {remote.url} and put it in {tmp_path / 'GFPGAN'}" in message
    assert list(tmp_path.iterdir()) == []  # nothing fetched, nothing created


def test_only_the_missing_files_are_named(tmp_path: Path, weights, photo):
    (tmp_path / "GFPGAN").mkdir()
    os.link(weights["gfpgan"], tmp_path / "GFPGAN" / "GFPGANv1.3-renamed-GFPGAN.pth")
    restorer = GFPGANRestorer(tmp_path)
    assert restorer.model_path() == tmp_path / "GFPGAN" / "GFPGANv1.3-renamed-GFPGAN.pth"
    with pytest.raises(MissingWeightsError) as info:
        restorer.restore(photo, 1.0)
    assert GFPGAN_WEIGHTS.url not in str(info.value)
    assert DETECTION_WEIGHTS.url in str(info.value) and PARSING_WEIGHTS.url in str(info.value)


def test_a_file_that_is_not_gfpgan_is_refused(tmp_path: Path, weights, photo):
    folder = tmp_path / "GFPGAN"
    folder.mkdir()
    torch.save({"params_ema": {"conv.weight": torch.zeros(3, 3, 1, 1)}}, folder / GFPGAN_WEIGHTS.name)
    os.link(weights["parse"], folder / PARSING_WEIGHTS.name)
    os.link(weights["noface"], folder / DETECTION_WEIGHTS.name)
    with pytest.raises(UserError, match=r"GFPGANv1.4.pth is not a GFPGAN v1.2-v1.4 model"):
        GFPGANRestorer(tmp_path).restore(photo, 1.0)


def test_a_parsing_file_that_is_not_parsenet_is_refused(tmp_path: Path, weights, photo):
    folder = tmp_path / "GFPGAN"
    folder.mkdir()
    torch.save({"encoder.0.conv2d.weight": torch.zeros(8, 3, 3, 3)}, folder / PARSING_WEIGHTS.name)
    os.link(weights["gfpgan"], folder / GFPGAN_WEIGHTS.name)
    os.link(weights["face"], folder / DETECTION_WEIGHTS.name)
    with pytest.raises(UserError, match=rf"parsing_parsenet.pth is not a ParseNet model .*{PARSING_WEIGHTS.url}"):
        GFPGANRestorer(tmp_path).restore(photo, 1.0)


@pytest.mark.parametrize(
    ("name", "build", "read_widths", "official"),
    [
        ("gfpgan", gfpgan_network, gfpgan_widths, GFPGAN_WIDTHS),
        ("parsenet", parsenet, parsenet_widths, PARSENET_WIDTHS),
    ],
)
def test_the_widths_read_from_a_file_rebuild_its_network(name, build, read_widths, official):
    """An official file's tensors give the official widths back, the tests' narrower file's give theirs, and each
    rebuilds a network of the file's shapes."""
    narrow = {**official, **TEST_WIDTHS[name]}
    with torch.device("meta"):  # shapes only
        states = {"official": build().state_dict(), "narrow": build(**narrow).state_dict()}
        for state, widths in ((states["official"], official), (states["narrow"], narrow)):
            assert read_widths(state) == widths
            rebuilt = build(**read_widths(state)).state_dict()
            assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in state.items()}
    assert sum(v.numel() for v in states["narrow"].values()) < sum(v.numel() for v in states["official"].values()) / 20


def test_codeformer_restores_the_face(tmp_path: Path, weights, photo):
    (tmp_path / "Codeformer").mkdir()
    torch.save(codeformer_weights(), tmp_path / "Codeformer" / CODEFORMER_WEIGHTS.name)
    restorer = create_face_restorer("CodeFormer", weights["face_models"])
    assert isinstance(restorer, CodeFormerRestorer) and restorer.missing_files() == [
        (CODEFORMER_WEIGHTS, weights["face_models"] / "Codeformer")
    ]
    restorer = CodeFormerRestorer(tmp_path)
    (tmp_path / "GFPGAN").symlink_to(weights["face_models"] / "GFPGAN")
    restored, note = restorer.restore(photo, 1.0, weight=0.3)
    assert note is None and restored.size == photo.size
    assert (_diff(restored, photo).max(axis=2) > 0).mean() > 0.05


def test_unknown_restorer_name(tmp_path: Path):
    with pytest.raises(UserError, match="Unknown face restoration model"):
        create_face_restorer("RestoreFormer", tmp_path)
