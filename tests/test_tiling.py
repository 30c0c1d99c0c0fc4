"""Tiling: circular padding in the UNet and VAE for one job only, seamless edges, and restoring the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.jobs.generation import JobHooks, RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.jobs.infotext import params_from_infotext
from modules.models.tiling import circular_padding

BASE = {"prompt": "a red house", "steps": 6, "width": 64, "height": 64, "seed": 5}


def job(model, ctx, **kw):
    return Txt2Img(model, GenerationParams(**{**BASE, **kw}), ctx, RunSettings())


def run(engine, model, **kw):
    return engine.call("txt2img", lambda ctx: job(model, ctx, **kw).run(), timeout=300)


def padding_modes(model) -> set[str]:
    return {
        layer.padding_mode
        for part in (model.unet, model.vae)
        for layer in part.modules()
        if isinstance(layer, torch.nn.Conv2d)
    }


def seam_ratio(image) -> float:
    """How far apart the opposite edges are (left/right and top/bottom), against neighbouring rows and columns."""
    a = np.asarray(image).astype(float)
    seams = np.abs(a[:, 0] - a[:, -1]).mean() + np.abs(a[0] - a[-1]).mean()
    neighbours = np.abs(a[:, 1:] - a[:, :-1]).mean() + np.abs(a[1:] - a[:-1]).mean()
    return seams / neighbours


def test_circular_padding_makes_the_vae_decoder_wrap_around(demo_model):
    vae = demo_model.vae
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))

    def decode(z):
        with torch.inference_mode():
            return vae.decode(z).sample

    def shifted_equals_shifted_decode() -> bool:  # moving the latents moves the image by 8x as much
        return torch.allclose(decode(latents.roll(2, dims=3)), decode(latents).roll(16, dims=3), atol=1e-4)

    with circular_padding(vae):
        assert padding_modes(demo_model) >= {"circular"}
        assert shifted_equals_shifted_decode()
    assert padding_modes(demo_model) == {"zeros"}
    assert not shifted_equals_shifted_decode()


def test_padding_is_restored_when_the_block_fails(demo_model):
    with pytest.raises(RuntimeError, match="boom"):
        with circular_padding(demo_model.unet, demo_model.vae):
            raise RuntimeError("boom")
    assert padding_modes(demo_model) == {"zeros"}


def test_a_tiled_image_has_matching_edges_and_the_next_job_is_untouched(engine, demo_model):
    before = run(engine, demo_model)
    tiled = run(engine, demo_model, tiling=True)
    after = run(engine, demo_model)
    assert seam_ratio(tiled.images[0]) < 1.1 < 1.2 < seam_ratio(before.images[0])
    assert np.array_equal(np.asarray(before.images[0]), np.asarray(after.images[0]))
    assert padding_modes(demo_model) == {"zeros"}
    assert "Tiling: True" in tiled.infotexts[0] and "Tiling" not in before.infotexts[0]
    assert params_from_infotext(tiled.infotexts[0])[0]["tiling"] is True
    assert params_from_infotext(before.infotexts[0])[0]["tiling"] is False


class FailingHooks(JobHooks):
    def before_batch(self, batch_no, plan, first, count) -> None:
        assert padding_modes(self.model) >= {"circular"}
        raise RuntimeError("a script failed")


def test_a_failing_tiled_job_restores_the_padding(engine, demo_model):
    def failing(ctx):
        tiled = job(demo_model, ctx, tiling=True, steps=1)
        tiled.hooks = FailingHooks()
        tiled.hooks.model = demo_model
        return tiled.run()

    with pytest.raises(RuntimeError, match="a script failed"):
        engine.call("txt2img", failing, timeout=300)
    assert padding_modes(demo_model) == {"zeros"}
