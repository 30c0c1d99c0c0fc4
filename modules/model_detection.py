"""Tell which model family a single-file checkpoint is, and fit the shipped configs to its shapes."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import torch

from modules.errors import ModelLoadError
from modules.paths import MODEL_CONFIGS_DIR

UNET = "model.diffusion_model."
FAMILY_TEXT_KEYS = {
    # family: the key that only that family's text encoder has
    "sdxl": "conditioner.embedders.1.model.positional_embedding",
    "sd2": "cond_stage_model.model.token_embedding.weight",
    "sd1": "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
}
# Where each family keeps each CLIP text encoder, and the layout of its keys.
TEXT_ENCODERS = {
    "sd1": {"text_encoder": ("cond_stage_model.transformer.text_model.", "hf")},
    "sd2": {"text_encoder": ("cond_stage_model.model.", "open_clip")},
    "sdxl": {"text_encoder": ("conditioner.embedders.0.transformer.text_model.", "hf"),
             "text_encoder_2": ("conditioner.embedders.1.model.", "open_clip")},
}
# Families whose attention heads are 64 wide; SD 1.x uses 8 heads at every width.
HEAD_DIM_64 = {"sd2", "sdxl"}
SD2_TEXT_LAYERS = 23
SDXL_TIME_IDS = 6  # original size, crop offset and target size, each (h, w)


def detect_family(state: dict[str, torch.Tensor]) -> str:
    """"sd1", "sd2" or "sdxl", from the text encoder keys."""
    if f"{UNET}input_blocks.0.0.weight" not in state:
        raise ModelLoadError("This file has no Stable Diffusion UNet (model.diffusion_model.*): "
                             "it is not an SD 1.x, SD 2.x or SDXL checkpoint.")
    for family, key in FAMILY_TEXT_KEYS.items():
        if key in state:
            return family
    raise ModelLoadError("This checkpoint has a UNet but no text encoder this app recognises "
                         "(SD 1.x, SD 2.x or SDXL).")


def load_family_configs(family: str) -> dict[str, dict[str, Any]]:
    """The shipped component configs of a family, keyed by folder name."""
    root = MODEL_CONFIGS_DIR / family
    return {path.parent.name if path.parent != root else "model_index": json.loads(path.read_text())
            for path in root.rglob("*.json")}


def fit_configs(family: str, state: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """The family's configs with every shape-bearing value taken from the checkpoint itself.

    For a checkpoint of the family's standard size this changes nothing; it lets inpainting
    UNets (9 input channels) and smaller models of the same architecture load too.
    """
    configs = copy.deepcopy(load_family_configs(family))
    configs["unet"].update(_fit_unet(family, state, configs["unet"]))
    configs["vae"].update(_fit_vae(state))
    for folder, (prefix, layout) in TEXT_ENCODERS[family].items():
        configs[folder].update(_fit_text_encoder(state, prefix, layout))
    if family == "sdxl":
        # The time-id embedding has no weights: its width is what the pooled text embedding leaves.
        pooled = configs["text_encoder_2"]["projection_dim"]
        time_ids = configs["unet"]["projection_class_embeddings_input_dim"] - pooled
        configs["unet"]["addition_time_embed_dim"] = time_ids // SDXL_TIME_IDS
    return configs


def _indices(state: dict, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for key in state if (m := pattern.match(key))})


def _fit_unet(family: str, state: dict, base: dict) -> dict[str, Any]:
    conv_in = state[f"{UNET}input_blocks.0.0.weight"]
    blocks = _indices(state, f"{UNET}input_blocks.")[1:]
    downsamplers = [i for i in blocks if f"{UNET}input_blocks.{i}.0.op.weight" in state]
    levels = len(downsamplers) + 1
    per_level = (len(blocks) - len(downsamplers)) // levels
    channels, attention, depth = [], [], []
    for level in range(levels):
        first = 1 + level * (per_level + 1)
        channels.append(state[f"{UNET}input_blocks.{first}.0.out_layers.3.weight"].shape[0])
        has_attn = f"{UNET}input_blocks.{first}.1.proj_in.weight" in state
        attention.append(has_attn)
        depth.append(len(_indices(state, f"{UNET}input_blocks.{first}.1.transformer_blocks.")) if has_attn else 1)
    fitted: dict[str, Any] = {
        "in_channels": conv_in.shape[1],
        "out_channels": state[f"{UNET}out.2.weight"].shape[0],
        "block_out_channels": channels,
        "layers_per_block": per_level,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
    }
    if any(d != 1 for d in depth) or "transformer_layers_per_block" in base:
        mid = _indices(state, f"{UNET}middle_block.1.transformer_blocks.")
        fitted["transformer_layers_per_block"] = [d if a else 1 for d, a in zip(depth, attention)]
        if mid and "transformer_layers_per_block" not in base and len(mid) != depth[-1]:
            raise ModelLoadError("Unsupported UNet: its middle block depth differs from its last level's.")
    to_k = next((v for k, v in state.items() if k.startswith(UNET) and k.endswith("attn2.to_k.weight")), None)
    if to_k is not None:
        fitted["cross_attention_dim"] = to_k.shape[1]
    if family in HEAD_DIM_64:
        fitted["attention_head_dim"] = [max(1, c // 64) for c in channels]
    label = state.get(f"{UNET}label_emb.0.0.weight")
    if label is not None:
        fitted["projection_class_embeddings_input_dim"] = label.shape[1]
    return {k: v for k, v in fitted.items() if base.get(k) != v and not _same_depth(k, base, v)}


def _same_depth(key: str, base: dict, value: Any) -> bool:
    """transformer_layers_per_block missing from a config means 1 everywhere."""
    return key == "transformer_layers_per_block" and "transformer_layers_per_block" not in base and set(value) == {1}


def _fit_vae(state: dict) -> dict[str, Any]:
    prefix = "first_stage_model.encoder.down."
    levels = _indices(state, prefix)
    if not levels:
        raise ModelLoadError("This checkpoint has no VAE (first_stage_model.*).")
    channels = [state[f"{prefix}{i}.block.{len(_indices(state, f'{prefix}{i}.block.')) - 1}.conv2.weight"].shape[0]
                for i in levels]
    return {
        "block_out_channels": channels,
        "layers_per_block": len(_indices(state, f"{prefix}0.block.")),
        "latent_channels": state["first_stage_model.quant_conv.weight"].shape[0] // 2,
    }


def _fit_text_encoder(state: dict, prefix: str, layout: str) -> dict[str, Any]:
    if layout == "hf":
        hidden = state[f"{prefix}embeddings.token_embedding.weight"].shape[1]
        layers = len(_indices(state, f"{prefix}encoder.layers."))
        intermediate = state[f"{prefix}encoder.layers.0.mlp.fc1.weight"].shape[0]
    else:
        hidden = state[f"{prefix}token_embedding.weight"].shape[1]
        layers = len(_indices(state, f"{prefix}transformer.resblocks."))
        intermediate = state[f"{prefix}transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
    fitted = {"hidden_size": hidden, "intermediate_size": intermediate,
              "num_attention_heads": max(1, hidden // 64)}
    projection = state.get(f"{prefix}text_projection")
    if projection is not None and prefix.startswith("conditioner"):
        fitted["projection_dim"] = projection.shape[1]
    # SD 2.x conditions on OpenCLIP's penultimate layer, so diffusers keeps only 23 of its 24.
    is_sd2 = prefix.startswith("cond_stage_model.model")
    fitted["num_hidden_layers"] = min(layers, SD2_TEXT_LAYERS) if is_sd2 else layers
    return fitted


def write_config_folder(configs: dict[str, dict[str, Any]], root: Path) -> Path:
    """Write fitted configs as a diffusers layout folder named by their content; reuse it if present."""
    import hashlib
    blob = json.dumps(configs, sort_keys=True).encode()
    folder = root / hashlib.sha1(blob).hexdigest()[:16]
    if not (folder / "model_index.json").is_file():
        for name, config in configs.items():
            target = folder / "model_index.json" if name == "model_index" else folder / name / (
                "scheduler_config.json" if name == "scheduler" else "config.json")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(config, indent=2))
    return folder


@torch.inference_mode()
def predicts_v(unet: torch.nn.Module, context_dim: int, added_cond: dict | None = None) -> bool:
    """Guess whether an SD 2.x-style UNet was trained for v-prediction.

    At the last timestep, an epsilon model given a flat grey latent predicts roughly that latent
    back, while a v model predicts its negation; so the mean of (output - input) separates them.
    """
    param = next(unet.parameters())
    sample = torch.full((1, unet.config.in_channels, 8, 8), 0.5, device=param.device, dtype=param.dtype)
    context = torch.full((1, 2, context_dim), 0.5, device=param.device, dtype=param.dtype)
    out = unet(sample, torch.tensor([999], device=param.device), encoder_hidden_states=context,
               added_cond_kwargs=added_cond).sample
    return float((out - sample).float().mean()) < -1.0
