"""Fit a model family's shipped configs to a checkpoint's shapes, and probe a UNet for v-prediction.
Which family a checkpoint is, and what each family is, live in modules/models/model_families."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from modules.errors import ModelLoadError
from modules.paths import MODEL_CONFIGS_DIR

if TYPE_CHECKING:
    from modules.models.model_families.base import ModelFamily, TextEncoderSlot

UNET = "model.diffusion_model."


def diffusers_config(module: torch.nn.Module) -> Any:
    """A diffusers model's config, whose attributes torch's Module typing does not know."""
    return module.config


def load_family_configs(folder: str) -> dict[str, dict[str, Any]]:
    """The shipped component configs in modules/model_configs/`folder`, keyed by component folder name."""
    root = MODEL_CONFIGS_DIR / folder
    return {
        path.parent.name if path.parent != root else "model_index": json.loads(path.read_text())
        for path in root.rglob("*.json")
    }


def fit_configs(family: ModelFamily, state: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """The family's configs with every shape-bearing value taken from the checkpoint itself.

    For a checkpoint of the family's standard size this changes nothing; it lets inpainting
    UNets (9 input channels) and smaller models of the same architecture load too.
    """
    configs = copy.deepcopy(family.load_configs())
    configs["unet"].update(_fit_unet(family, state, configs["unet"]))
    configs["vae"].update(_fit_vae(state))
    for slot in family.text_encoders:
        configs[slot.folder].update(_fit_text_encoder(state, slot))
    if family.needs_size_conditioning:
        # The time-id embedding has no weights: its width is what the pooled text embedding leaves.
        pooled_slot = family.pooled_slot
        assert pooled_slot is not None, "size conditioning comes with a pooled text encoder"
        pooled = configs[pooled_slot.folder]["projection_dim"]
        time_ids = configs["unet"]["projection_class_embeddings_input_dim"] - pooled
        configs["unet"]["addition_time_embed_dim"] = time_ids // family.time_ids
    return configs


def _indices(state: dict, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for key in state if (m := pattern.match(key))})


def _fit_unet(family: ModelFamily, state: dict, base: dict) -> dict[str, Any]:
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
    if family.attention_head_dim:  # heads of a fixed width; otherwise the config's head counts stand
        fitted["attention_head_dim"] = [max(1, c // family.attention_head_dim) for c in channels]
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
    channels = [
        state[f"{prefix}{i}.block.{len(_indices(state, f'{prefix}{i}.block.')) - 1}.conv2.weight"].shape[0]
        for i in levels
    ]
    return {
        "block_out_channels": channels,
        "layers_per_block": len(_indices(state, f"{prefix}0.block.")),
        "latent_channels": state["first_stage_model.quant_conv.weight"].shape[0] // 2,
    }


def _fit_text_encoder(state: dict, slot: TextEncoderSlot) -> dict[str, Any]:
    prefix = slot.weights_prefix
    if slot.layout == "clip":
        hidden = state[f"{prefix}embeddings.token_embedding.weight"].shape[1]
        layers = len(_indices(state, f"{prefix}encoder.layers."))
        intermediate = state[f"{prefix}encoder.layers.0.mlp.fc1.weight"].shape[0]
    else:
        hidden = state[f"{prefix}token_embedding.weight"].shape[1]
        layers = len(_indices(state, f"{prefix}transformer.resblocks."))
        intermediate = state[f"{prefix}transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
    fitted = {"hidden_size": hidden, "intermediate_size": intermediate, "num_attention_heads": max(1, hidden // 64)}
    projection = state.get(f"{prefix}text_projection")
    if projection is not None and slot.pooled:
        fitted["projection_dim"] = projection.shape[1]
    fitted["num_hidden_layers"] = min(layers, slot.max_layers) if slot.max_layers else layers
    return fitted


def write_config_folder(configs: dict[str, dict[str, Any]], root: Path) -> Path:
    """Write fitted configs as a diffusers layout folder named by their content; reuse it if present."""
    import hashlib

    blob = json.dumps(configs, sort_keys=True).encode()
    folder = root / hashlib.sha1(blob).hexdigest()[:16]
    if not (folder / "model_index.json").is_file():
        for name, config in configs.items():
            target = (
                folder / "model_index.json"
                if name == "model_index"
                else folder / name / ("scheduler_config.json" if name == "scheduler" else "config.json")
            )
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
    sample = torch.full((1, diffusers_config(unet).in_channels, 8, 8), 0.5, device=param.device, dtype=param.dtype)
    context = torch.full((1, 2, context_dim), 0.5, device=param.device, dtype=param.dtype)
    out = unet(
        sample, torch.tensor([999], device=param.device), encoder_hidden_states=context, added_cond_kwargs=added_cond
    ).sample
    return float((out - sample).float().mean()) < -1.0
