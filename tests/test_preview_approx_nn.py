"""The "Approx NN" live preview: A1111's VAEApprox weights from models/VAE-approx, read weights-only, with
Approx cheap in their place when the file is missing, broken or unsafe."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_previews import run_with_previews
from test_safe_weights import write_evil

from modules.imaging.image_tools import ImageTools
from modules.jobs.generation import RunSettings
from modules.jobs.previews import ApproxNNDecoders, approx_cheap, enlarged, to_image
from modules.models.model_families.sd1 import SD_LATENTS
from modules.models.model_families.sdxl import SDXL_LATENTS
from modules.options import OPTIONS

# A1111's VAEApprox as its weight files hold it: key prefix, in channels, out channels, kernel size.
A1111_LAYERS = [
    ("conv1", 4, 8, 7),
    ("conv2", 8, 16, 5),
    ("conv3", 16, 32, 3),
    ("conv4", 32, 64, 3),
    ("conv5", 64, 32, 3),
    ("conv6", 32, 16, 3),
    ("conv7", 16, 8, 3),
    ("conv8", 8, 3, 3),
]


def random_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, channels_in, channels_out, kernel in A1111_LAYERS:
        scale = (channels_in * kernel * kernel) ** -0.5
        weights[f"{name}.weight"] = torch.randn(channels_out, channels_in, kernel, kernel, generator=generator) * scale
        weights[f"{name}.bias"] = torch.randn(channels_out, generator=generator) * 0.1
    return weights


def reference_pixels(weights: dict[str, torch.Tensor], latents: torch.Tensor) -> torch.Tensor:
    """The network written out by hand: 2x nearest, 11 pixels of zero padding, conv + leaky ReLU(0.1) x 8."""
    x = latents.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    x = F.pad(x, (11, 11, 11, 11))
    for name, *_ in A1111_LAYERS:
        x = F.leaky_relu(F.conv2d(x, weights[f"{name}.weight"], weights[f"{name}.bias"]), 0.1)
    return x


@pytest.fixture(scope="module")
def approx_models(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("models")
    (models / "VAE-approx").mkdir()
    torch.save(random_weights(), models / "VAE-approx" / "model.pt")
    return models


def pixels(image) -> np.ndarray:
    return np.asarray(image).astype(int)


def test_approx_nn_is_a_live_preview_method():
    assert "Approx NN" in OPTIONS["show_progress_type"].choices


def test_approx_nn_decodes_at_eight_times_the_latent_size(approx_models):
    latents = torch.randn(2, 4, 6, 10, generator=torch.Generator().manual_seed(1))
    image = ApproxNNDecoders(approx_models / "VAE-approx").decode(latents)
    assert image.size == (80, 48)
    assert image.mode == "RGB"
    # The network's 2x output, shown 4x larger as Approx cheap's is.
    expected = enlarged(to_image(reference_pixels(random_weights(), latents[:1])[0]), 4)
    assert np.abs(pixels(image) - pixels(expected)).max() <= 1


def test_approx_nn_matches_the_network_written_out_by_hand(approx_models):
    decoders = ApproxNNDecoders(approx_models / "VAE-approx")
    latents = torch.randn(1, 4, 5, 7, generator=torch.Generator().manual_seed(2))
    model = decoders.load(SD_LATENTS)
    assert model is not None
    with torch.inference_mode():
        ours = decoders.run(model.eval(), latents)
    assert ours.shape == (1, 3, 10, 14)
    assert torch.allclose(ours, reference_pixels(random_weights(), latents), atol=1e-5)


def test_approx_nn_differs_from_approx_cheap_and_is_deterministic(approx_models):
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    first = ApproxNNDecoders(approx_models / "VAE-approx").decode(latents)
    again = ApproxNNDecoders(approx_models / "VAE-approx").decode(latents.clone())
    cheap = approx_cheap(latents)
    assert first.size == cheap.size
    assert np.abs(pixels(first) - pixels(cheap)).mean() > 5
    assert np.array_equal(pixels(first), pixels(again))


def test_a_missing_file_gives_no_decoder_and_one_message_naming_it(tmp_path, caplog):
    decoders = ApproxNNDecoders(tmp_path / "VAE-approx")
    latents = torch.zeros(1, 4, 4, 4)
    with caplog.at_level(logging.WARNING, logger="modules.jobs.previews"):
        assert decoders.decode(latents) is None
        assert decoders.decode(latents) is None
        assert decoders.decode(latents, SDXL_LATENTS) is None
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2  # once per file, not once per preview
    assert "model.pt" in messages[0] and str(tmp_path / "VAE-approx") in messages[0]
    assert "vaeapprox-sdxl.pt" in messages[1]


def test_a_file_put_there_later_is_used(tmp_path, approx_models):
    decoders = ApproxNNDecoders(tmp_path / "VAE-approx")
    latents = torch.randn(1, 4, 4, 4)
    assert decoders.decode(latents) is None
    (tmp_path / "VAE-approx").mkdir()
    (tmp_path / "VAE-approx" / "model.pt").write_bytes((approx_models / "VAE-approx" / "model.pt").read_bytes())
    assert decoders.decode(latents).size == (32, 32)


@pytest.mark.parametrize("defect", ["garbage", "wrong keys", "wrong shapes"])
def test_a_broken_file_gives_no_decoder(tmp_path, caplog, defect):
    path = tmp_path / "VAE-approx" / "model.pt"
    path.parent.mkdir()
    if defect == "garbage":
        path.write_bytes(b"not a weights file")
    elif defect == "wrong keys":
        torch.save({f"layers.{i}": t for i, t in enumerate(random_weights().values())}, path)
    else:
        torch.save({k: t[..., :1] if t.ndim == 4 else t for k, t in random_weights().items()}, path)
    with caplog.at_level(logging.WARNING, logger="modules.jobs.previews"):
        assert ApproxNNDecoders(path.parent).decode(torch.zeros(1, 4, 4, 4)) is None
    assert "could not load" in caplog.text and str(path) in caplog.text


def test_a_pickle_that_runs_code_is_refused(tmp_path, caplog):
    marker = tmp_path / "payload-ran"
    write_evil(tmp_path / "VAE-approx" / "model.pt", marker)
    with caplog.at_level(logging.WARNING, logger="modules.jobs.previews"):
        assert ApproxNNDecoders(tmp_path / "VAE-approx").decode(torch.zeros(1, 4, 4, 4)) is None
    assert not marker.exists()
    assert "Refused to load model.pt" in caplog.text


def test_the_engine_previews_with_approx_nn_and_falls_back_to_approx_cheap(engine, demo_model, approx_models, tmp_path):
    def previews(method: str, models: Path) -> list:
        seen = run_with_previews(
            engine, demo_model, RunSettings(preview_every=2, preview_method=method), ImageTools.create(models)
        )
        return [pixels(image) for _, image in seen[2:]]

    nn, cheap = previews("Approx NN", approx_models), previews("Approx cheap", approx_models)
    missing = previews("Approx NN", tmp_path)
    assert all(image.shape == (64, 64, 3) for image in nn)
    assert all(np.abs(a - b).mean() > 5 for a, b in zip(nn, cheap))
    assert all(np.array_equal(a, b) for a, b in zip(missing, cheap))
