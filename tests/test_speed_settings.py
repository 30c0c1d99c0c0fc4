"""Settings that trade work for memory or speed: tiled VAE decoding and Negative Guidance minimum sigma."""
from __future__ import annotations

import numpy as np
import torch

from modules.generation import RunSettings, Txt2Img
from modules.generation_params import GenerationParams
from modules.sampling.passes import SamplingSettings


def _decoder_calls(model, settings: RunSettings, latents: torch.Tensor,
                   params: GenerationParams = GenerationParams()) -> tuple[int, np.ndarray]:
    calls = []
    handle = model.vae.decoder.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape))
    try:
        image = Txt2Img(model, params, None, settings).decode(latents)[0]
    finally:
        handle.remove()
    return len(calls), np.asarray(image, dtype=np.float64)


def test_large_images_decode_in_tiles_and_small_ones_whole(demo_model):
    latents = torch.randn(1, 4, 80, 80, generator=torch.Generator().manual_seed(0))  # 640x640 pixels
    tiles, tiled = _decoder_calls(demo_model, RunSettings(vae_tiling_min_pixels=512 * 512), latents)
    whole_calls, whole = _decoder_calls(demo_model, RunSettings(vae_tiling_min_pixels=0), latents)
    above_calls, _ = _decoder_calls(demo_model, RunSettings(vae_tiling_min_pixels=1024 * 1024), latents)
    seamless_calls, _ = _decoder_calls(demo_model, RunSettings(vae_tiling_min_pixels=512 * 512), latents,
                                       GenerationParams(tiling=True))
    assert tiles > 1 and whole_calls == 1 and above_calls == 1
    assert seamless_calls == 1, "Tiling (seamless images) decodes whole: tiles would break the wrap-around"
    assert tiled.shape == whole.shape == (640, 640, 3)
    assert np.abs(tiled - whole).mean() < 8, "tiles are blended into nearly the same image"
    assert not demo_model.vae.use_tiling, "tiling is switched off again after the decode"


def _run(engine, model, ngms: float):
    batch_sizes = []
    handle = model.unet.register_forward_pre_hook(lambda module, args: batch_sizes.append(args[0].shape[0]))
    params = GenerationParams(prompt="a red house", negative_prompt="blue", steps=6, width=64, height=64, seed=3,
                              sampler_name="Euler")
    try:
        settings = RunSettings(sampling=SamplingSettings(s_min_uncond=ngms))
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
