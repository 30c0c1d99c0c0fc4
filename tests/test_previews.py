"""Live previews: the cheap linear map, TAESD from a local folder, the full VAE, and the engine's offer."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from modules.imaging.image_tools import ImageTools
from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.jobs.previews import TaesdDecoders, approx_cheap
from modules.models.model_families.sdxl import SDXL_LATENTS
from modules.ui.generation_tab import POLL_SECONDS, previews_while_waiting


def test_approx_cheap_is_the_linear_map_at_eight_times_the_size():
    latents = torch.zeros(2, 4, 3, 5)
    latents[0, 0] = 1.0  # channel 0 only: SD's first row of weights, (0.3512, 0.2297, 0.3227)
    image = approx_cheap(latents)
    assert image.size == (40, 24)
    assert np.allclose(
        np.asarray(image)[12, 20], [(0.3512 + 1) * 127.5, (0.2297 + 1) * 127.5, (0.3227 + 1) * 127.5], atol=1
    )
    assert not np.array_equal(np.asarray(approx_cheap(latents, SDXL_LATENTS)), np.asarray(image))


@pytest.fixture(scope="module")
def taesd_models(tmp_path_factory):
    from diffusers import AutoencoderTiny

    models = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    tiny = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    )
    tiny.save_pretrained(models / "VAE-taesd" / "taesd")
    return models


def test_taesd_decodes_from_its_folder_and_only_for_its_family(taesd_models):
    decoders = TaesdDecoders(taesd_models / "VAE-taesd")
    latents = torch.randn(1, 4, 8, 8)
    image = decoders.decode(latents)
    assert image.size == (64, 64)
    assert decoders.decode(latents, SDXL_LATENTS) is None  # no folder with "xl" in its name


def run_with_previews(engine, model, settings, tools=None):
    """A 6-step job that asks the engine for its preview at every UNet call (as a poller would)."""
    seen = []

    def look(*_):
        seen.append((engine.progress.preview_id, engine.preview()))

    handle = model.unet.register_forward_pre_hook(look)
    params = GenerationParams(prompt="a boat", steps=6, width=64, height=64, seed=3, sampler_name="Euler")
    try:
        engine.call("txt2img", lambda ctx: Txt2Img(model, params, ctx, settings, None, tools).run(), timeout=300)
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("method", ["Approx cheap", "TAESD", "Full"])
def test_the_engine_offers_a_preview_every_n_steps(engine, demo_model, taesd_models, method):
    seen = run_with_previews(
        engine, demo_model, RunSettings(preview_every=2, preview_method=method), ImageTools.create(taesd_models)
    )
    ids = [preview_id for preview_id, _ in seen]
    assert ids == [0, 0, 1, 1, 2, 2]  # offered after steps 2 and 4 (before steps 3 and 5)
    assert seen[0][1] is None and all(image.size == (64, 64) for _, image in seen[2:])
    assert seen[2][1] is seen[3][1]  # made once per offer


def test_no_previews_when_turned_off(engine, demo_model):
    seen = run_with_previews(engine, demo_model, RunSettings(preview_every=0))
    assert all(image is None for _, image in seen)


def test_a_queued_page_job_mirrors_nothing_of_the_job_ahead_of_it(engine):
    ahead_started, ahead_done, mine_shown = threading.Event(), threading.Event(), threading.Event()

    def ahead(ctx):
        ctx.begin_batch(0, steps=4)
        ctx.report_step(2)
        ctx.set_preview(lambda: "ahead's preview")
        ahead_started.set()
        ahead_done.wait(30)

    def mine(ctx):
        ctx.begin_batch(0, steps=8)
        ctx.report_step(1)
        ctx.set_preview(lambda: "my preview")
        mine_shown.wait(30)

    engine.submit("ahead", ahead)
    assert ahead_started.wait(30)
    future = engine.submit("mine", mine)
    threading.Timer(3 * POLL_SECONDS, ahead_done.set).start()  # the page looks a few times while mine waits
    progress: list[tuple[float, str]] = []
    shown = []
    for image in previews_while_waiting(engine, future, lambda fraction, desc: progress.append((fraction, desc))):
        shown.append(image)
        mine_shown.set()
    assert shown == ["my preview"]
    assert progress and all("/8" in desc for _, desc in progress)  # my job's 8 steps, never the 4 of the one ahead
