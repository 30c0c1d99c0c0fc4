"""Tiny random-weight checkpoints in the real SD 1.x / 2.x / XL architectures, for tests."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors.torch import save_file

from modules.models.ldm_convert import to_ldm_state_dict
from modules.models.model_detection import load_family_configs

TEXT_SIZE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 1}


def tiny_configs(family: str) -> dict[str, dict]:
    """The shipped family configs shrunk to a few channels; heads stay 64 wide where the family says so."""
    configs = copy.deepcopy(load_family_configs(family))
    unet = configs["unet"]
    levels = 2
    unet.update(
        block_out_channels=[64, 128],
        layers_per_block=1,
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
        norm_num_groups=32,
    )
    if family == "sd1":
        unet.update(cross_attention_dim=64)
    else:
        unet.update(attention_head_dim=[1, 2][:levels])
    if family == "sdxl":
        # diffusers tells SDXL's two text encoders apart by width, so they must differ, as in the real model.
        unet.update(
            transformer_layers_per_block=[1, 1],
            cross_attention_dim=64 + 128,
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 128,
        )
    if family == "sd2":
        unet.update(cross_attention_dim=64)
    configs["vae"].update(block_out_channels=[32, 32, 64, 64], layers_per_block=1, norm_num_groups=32)
    configs["text_encoder"].update(TEXT_SIZE, projection_dim=64)
    if "text_encoder_2" in configs:
        configs["text_encoder_2"].update(TEXT_SIZE, hidden_size=128, num_attention_heads=2, projection_dim=128)
    return configs


def tiny_modules(family: str, seed: int = 0) -> tuple:
    """Random-weight (unet, vae, text encoders) of a tiny `family` model."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    configs = tiny_configs(family)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(configs["unet"])
    vae = AutoencoderKL.from_config(configs["vae"])
    encoders = [CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))]
    if "text_encoder_2" in configs:
        encoders.append(CLIPTextModelWithProjection(CLIPTextConfig(**configs["text_encoder_2"])))
    return unet, vae, encoders


def write_tiny_checkpoint(family: str, path: Path, seed: int = 0) -> Path:
    """Build tiny random models for `family` and save them as one original-layout .safetensors."""
    unet, vae, encoders = tiny_modules(family, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(to_ldm_state_dict(family, unet, vae, encoders), str(path))
    return path
