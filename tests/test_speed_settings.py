"""Settings that trade work for memory or speed: tiled VAE decoding, and the guidance settings that leave the negative
prompt out of UNet calls or pad it (NGMS, Skip Early CFG, Pad conds)."""

from __future__ import annotations

import numpy as np
import torch

from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.sampling.passes import SamplingSettings


def _decoder_calls(
    model, settings: RunSettings, latents: torch.Tensor, params: GenerationParams | None = None
) -> tuple[int, np.ndarray]:
    calls = []
    handle = model.vae.decoder.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape))
    try:
        image = Txt2Img(model, params or GenerationParams(), None, settings).decode(latents)[0]
    finally:
        handle.remove()
    return len(calls), np.asarray(image, dtype=np.float64)


def test_large_images_decode_in_tiles_and_small_ones_whole(demo_model):
    latents = torch.randn(1, 4, 80, 80, generator=torch.Generator().manual_seed(0))  # 640x640 pixels
    tiles, tiled = _decoder_calls(demo_model, RunSettings(vae_tiling_min_pixels=512 * 512), latents)
    whole_calls, whole = _decoder_calls(demo_model, RunSettings(vae_tiling_min_pixels=0), latents)
    above_calls, _ = _decoder_calls(demo_model, RunSettings(vae_tiling_min_pixels=1024 * 1024), latents)
    seamless_calls, _ = _decoder_calls(
        demo_model, RunSettings(vae_tiling_min_pixels=512 * 512), latents, GenerationParams(tiling=True)
    )
    assert tiles > 1 and whole_calls == 1 and above_calls == 1
    assert seamless_calls == 1, "Tiling (seamless images) decodes whole: tiles would break the wrap-around"
    assert tiled.shape == whole.shape == (640, 640, 3)
    assert np.abs(tiled - whole).mean() < 8, "tiles are blended into nearly the same image"
    assert not demo_model.vae.use_tiling, "tiling is switched off again after the decode"


def test_a_batch_decodes_one_image_at_a_time_as_a1111(demo_model):
    """A1111's decode_latent_batch decodes each image alone; a batched VAE call rounds some pixels a level off."""
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * 4
    calls, _ = _decoder_calls(demo_model, RunSettings(), latents)
    assert calls == 3
    job = Txt2Img(demo_model, GenerationParams(), None, RunSettings())
    together = [np.asarray(image) for image in job.decode(latents)]
    alone = [np.asarray(job.decode(latent[None])[0]) for latent in latents]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone))


def _run(engine, model, ngms: float = 0.0, prompt: str = "a red house", **sampling):
    """A 6-step Euler job with these sampling settings; its result and the UNet batch size of each call."""
    batch_sizes = []
    handle = model.unet.register_forward_pre_hook(lambda module, args: batch_sizes.append(args[0].shape[0]))
    params = GenerationParams(
        prompt=prompt, negative_prompt="blue", steps=6, width=64, height=64, seed=3, sampler_name="Euler"
    )
    try:
        settings = RunSettings(sampling=SamplingSettings(s_min_uncond=ngms, **sampling))
        result = engine.call("test", lambda ctx: Txt2Img(model, params, ctx, settings).run())
    finally:
        handle.remove()
    return result, batch_sizes


def test_negative_guidance_minimum_sigma_skips_the_negative_on_alternate_late_steps(engine, demo_model):
    plain, plain_batches = _run(engine, demo_model, 0.0)
    assert plain_batches == [2] * 6 and "NGMS" not in plain.infotexts[0]
    fast, fast_batches = _run(engine, demo_model, 15.0)  # above every sigma but the first steps'
    assert fast_batches.count(1) >= 2 and fast_batches[0] == 2
    assert all(size == 2 for size in fast_batches[::2]), "even steps keep the negative prompt"
    assert "NGMS: 15" in fast.infotexts[0]
    assert not np.array_equal(np.asarray(plain.images[0]), np.asarray(fast.images[0]))


def test_ngms_all_steps_and_skip_early_cfg_leave_the_negative_out_as_in_a1111(engine, demo_model):
    every, every_batches = _run(engine, demo_model, 15.0, s_min_uncond_all=True)  # every σ is below 15
    assert every_batches == [1] * 6
    assert "NGMS: 15" in every.infotexts[0] and "NGMS all steps: True" in every.infotexts[0]
    early, early_batches = _run(engine, demo_model, skip_early_cond=0.5)  # calls 0..3 of 6: call / 6 <= 0.5
    assert early_batches == [1, 1, 1, 1, 2, 2]
    assert "Skip Early CFG: 0.5" in early.infotexts[0] and "NGMS" not in early.infotexts[0]


def test_a_prompt_longer_than_its_negative_runs_in_separate_unet_calls_unless_padded(engine, demo_model):
    """A1111: cond and uncond of different lengths go through the UNet apart; pad_cond_uncond (empty chunks) or
    pad_cond_uncond_v0 (the negative fitted with its last vector) make one batch and say so in the infotext."""
    long_prompt = " ".join(["house"] * 100)
    apart, apart_batches = _run(engine, demo_model, prompt=long_prompt)
    assert apart_batches == [1, 1] * 6 and "Pad conds" not in apart.infotexts[0]
    padded, padded_batches = _run(engine, demo_model, prompt=long_prompt, pad_cond_uncond=True)
    assert padded_batches == [2] * 6 and "Pad conds: True" in padded.infotexts[0]
    v0, v0_batches = _run(engine, demo_model, prompt=long_prompt, pad_cond_uncond=True, pad_cond_uncond_v0=True)
    assert v0_batches == [2] * 6 and "Pad conds v0: True" in v0.infotexts[0] and "Pad conds:" not in v0.infotexts[0]
    images = [np.asarray(r.images[0], dtype=np.int16) for r in (apart, padded, v0)]
    assert np.abs(images[0] - images[1]).max() > 0 and np.abs(images[1] - images[2]).max() > 0
