"""Model precision: bf16 on CPUs with fast bf16 units, fp32 with --no-half, and bf16 images close to fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modules import sd_models
from modules.core.engine import Engine
from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.models.checkpoints import CheckpointInfo
from modules.sd_models import load_model, pick_dtype, prepare_checkpoint


def test_no_half_forces_fp32():
    assert pick_dtype(torch.device("cpu"), no_half=True) == torch.float32
    assert pick_dtype(torch.device("cuda"), no_half=True) == torch.float32


def test_cpu_precision_follows_the_hardware():
    expected = torch.bfloat16 if sd_models.cpu_has_fast_bf16() else torch.float32
    assert pick_dtype(torch.device("cpu"), no_half=False) == expected
    assert pick_dtype(torch.device("cuda"), no_half=False) == torch.float16


def test_small_unets_stay_fp32_on_the_cpu(demo_checkpoint):
    prepared = prepare_checkpoint(CheckpointInfo(demo_checkpoint, demo_checkpoint.name))
    cpu = torch.device("cpu")
    assert sd_models.dtype_for(prepared, cpu, torch.bfloat16) == torch.float32
    assert sd_models.dtype_for(prepared, cpu, torch.float32) == torch.float32
    assert sd_models.dtype_for(prepared, torch.device("cuda"), torch.float16) == torch.float16


def test_full_size_unets_keep_bf16():
    full = sd_models.PreparedCheckpoint(
        CheckpointInfo(Path("big.safetensors"), "big.safetensors"),
        state={"model.diffusion_model.weight": torch.empty(sd_models.BF16_MIN_UNET_PARAMS, device="meta")},
    )
    assert sd_models.dtype_for(full, torch.device("cpu"), torch.bfloat16) == torch.bfloat16


def _image(model) -> np.ndarray:
    params = GenerationParams(
        prompt="a red lighthouse on a cliff",
        negative_prompt="blurry",
        steps=12,
        width=128,
        height=128,
        sampler_name="DPM++ 2M",
        seed=11,
    )
    engine = Engine()
    try:
        result = engine.call("test", lambda ctx: Txt2Img(model, params, ctx, RunSettings()).run())
    finally:
        engine.shutdown()
    return np.asarray(result.images[0], dtype=np.float64)


def test_bf16_image_is_close_to_fp32(demo_checkpoint, tmp_path):
    """Loads bf16 explicitly, so it runs on any CPU (without bf16 units torch emulates them, slowly)."""
    info = CheckpointInfo(demo_checkpoint, demo_checkpoint.name)
    cpu = torch.device("cpu")
    half = load_model(info, cpu, torch.bfloat16, tmp_path)
    assert half.unet.dtype == torch.bfloat16 and half.vae.dtype == torch.bfloat16
    full = load_model(info, cpu, torch.float32, tmp_path)
    a, b = _image(half), _image(full)
    mse = ((a - b) ** 2).mean()
    assert mse > 0, "bf16 weights should change the image at least a little"
    psnr = 10 * np.log10(255**2 / mse)
    assert psnr > 25, f"bf16 image drifted from fp32: PSNR {psnr:.1f} dB"
