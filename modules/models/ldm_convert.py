"""Convert diffusers/transformers weights to the original Stable Diffusion key layout.

This is the inverse of diffusers' single-file loading: UNet2DConditionModel,
AutoencoderKL and CLIP text encoders become one flat state dict as found in
the CompVis (SD 1.x), Stability LDM (SD 2.x) and SGM (SDXL) ``.safetensors``
checkpoints, e.g. ``model.diffusion_model.input_blocks.1.0.in_layers.0.weight``.

Text encoders are written in two layouts:

* CLIP (transformers naming kept): ``cond_stage_model.transformer.text_model.*``
  for SD 1.x, ``conditioner.embedders.0.transformer.text_model.*`` for SDXL.
* OpenCLIP (fused attention ``in_proj``, ``resblocks``, ``ln_final``):
  ``cond_stage_model.model.*`` for SD 2.x, ``conditioner.embedders.1.model.*``
  (with ``text_projection``) for SDXL.

SD 2.x checkpoints from Stability also carry the unused 24th OpenCLIP block and
a ``text_projection``; diffusers skips both on load, so they are not written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch

from modules.models import model_families
from modules.models.model_families.base import CLIP, OPEN_CLIP, ModelFamily

StateDictLike = torch.nn.Module | Mapping[str, torch.Tensor]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."

_UNET_TOP_LEVEL = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_TOP_LEVEL = {
    "encoder.conv_in": "encoder.conv_in",
    "encoder.conv_out": "encoder.conv_out",
    "encoder.conv_norm_out": "encoder.norm_out",
    "decoder.conv_in": "decoder.conv_in",
    "decoder.conv_out": "decoder.conv_out",
    "decoder.conv_norm_out": "decoder.norm_out",
    "quant_conv": "quant_conv",
    "post_quant_conv": "post_quant_conv",
}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPEN_CLIP_TOP_LEVEL = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}
_OPEN_CLIP_LAYER = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def _state_dict(source: StateDictLike) -> dict[str, torch.Tensor]:
    if isinstance(source, torch.nn.Module):
        source = source.state_dict()
    return {key: value.detach() for key, value in source.items()}


def _split_module(key: str) -> tuple[str, str]:
    """Split ``a.b.weight`` into (``a.b``, ``weight``)."""
    module, _, param = key.rpartition(".")
    return module, param


def _rename(module: str, table: Mapping[str, str]) -> str | None:
    """Rename ``module`` (exactly, or as a prefix ending at a dot) using ``table``."""
    for old, new in table.items():
        if module == old or module.startswith(old + "."):
            return new + module[len(old) :]
    return None


def _block_indices(keys: Sequence[str], pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in keys if (m := re.match(pattern, k))})


def _unet_resnet(rest: str) -> str:
    renamed = _rename(rest, _UNET_RESNET)
    if renamed is None:
        raise KeyError(f"unsupported UNet resnet weight: {rest}")
    return renamed


def _unet_part(base: str, kind: str, rest: str) -> str:
    """Resnets sit in slot 0 of an LDM block (renamed), spatial transformers in slot 1."""
    if kind == "resnets":
        return f"{base}.0.{_unet_resnet(rest)}"
    return f"{base}.1.{rest}"


def _unet_module(module: str, layers: int, up_has_attention: set[int]) -> str:
    """Map one diffusers UNet module path to its LDM path."""
    if (top := _rename(module, _UNET_TOP_LEVEL)) is not None:
        return top
    stride = layers + 1
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", module):
        return _unet_part(f"input_blocks.{1 + int(m[1]) * stride + int(m[3])}", m[2], m[4])
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv", module):
        return f"input_blocks.{1 + int(m[1]) * stride + layers}.0.op"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", module):
        return f"middle_block.{2 * int(m[1])}.{_unet_resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", module):
        return f"middle_block.1.{m[1]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", module):
        return _unet_part(f"output_blocks.{int(m[1]) * stride + int(m[3])}", m[2], m[4])
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv", module):
        slot = 2 if int(m[1]) in up_has_attention else 1
        return f"output_blocks.{int(m[1]) * stride + layers}.{slot}.conv"
    raise KeyError(f"unsupported UNet weight: {module}")


def unet_to_ldm(unet: StateDictLike) -> dict[str, torch.Tensor]:
    """Convert a UNet2DConditionModel (or its state dict) to LDM keys, without prefix."""
    weights = _state_dict(unet)
    keys = list(weights)
    layers = len(_block_indices(keys, r"down_blocks\.0\.resnets\.(\d+)\."))
    up_has_attention = set(_block_indices(keys, r"up_blocks\.(\d+)\.attentions\."))
    converted = {}
    for key, value in weights.items():
        module, param = _split_module(key)
        converted[f"{_unet_module(module, layers, up_has_attention)}.{param}"] = value
    return converted


def _vae_resnet(rest: str) -> str:
    return rest.replace("conv_shortcut", "nin_shortcut")


def _vae_module(module: str, num_up: int) -> str:
    """Map one diffusers AutoencoderKL module path to its LDM path."""
    if (top := _rename(module, _VAE_TOP_LEVEL)) is not None:
        return top
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", module):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_vae_resnet(m[3])}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", module):
        renamed = _rename(m[2], _VAE_ATTENTION)
        if renamed is None:
            raise KeyError(f"unsupported VAE weight: {module}")
        return f"{m[1]}.mid.attn_1.{renamed}"
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", module):
        return f"encoder.down.{m[1]}.block.{m[2]}.{_vae_resnet(m[3])}"
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv", module):
        return f"encoder.down.{m[1]}.downsample.conv"
    # The LDM decoder numbers its levels from the highest resolution, diffusers from the lowest.
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", module):
        level = num_up - 1 - int(m[1])
        return f"decoder.up.{level}.block.{m[2]}.{_vae_resnet(m[3])}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv", module):
        return f"decoder.up.{num_up - 1 - int(m[1])}.upsample.conv"
    raise KeyError(f"unsupported VAE weight: {module}")


def vae_to_ldm(vae: StateDictLike) -> dict[str, torch.Tensor]:
    """Convert an AutoencoderKL (or its state dict) to LDM keys, without prefix."""
    weights = _state_dict(vae)
    num_up = len(_block_indices(list(weights), r"decoder\.up_blocks\.(\d+)\."))
    converted = {}
    for key, value in weights.items():
        module, param = _split_module(key)
        new_key = f"{_vae_module(module, num_up)}.{param}"
        # The LDM mid-block attention uses 1x1 convolutions where diffusers uses linear layers.
        if ".mid.attn_1." in new_key and param == "weight" and value.ndim == 2:
            value = value[:, :, None, None]
        converted[new_key] = value
    return converted


def _text_model_weights(encoder: StateDictLike) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Return (weights keyed relative to ``text_model.``, text projection or None)."""
    weights = _state_dict(encoder)
    projection = weights.pop("text_projection.weight", None)
    inner = {key.removeprefix("text_model."): value for key, value in weights.items()}
    inner.pop("embeddings.position_ids", None)
    return inner, projection


def clip_to_ldm(encoder: StateDictLike) -> dict[str, torch.Tensor]:
    """Convert a CLIPTextModel to FrozenCLIPEmbedder keys (``transformer.text_model.*``)."""
    weights, projection = _text_model_weights(encoder)
    if projection is not None:
        raise ValueError("a CLIP-layout text encoder has no text_projection; use open_clip_to_ldm")
    return {f"transformer.text_model.{key}": value for key, value in weights.items()}


def open_clip_to_ldm(encoder: StateDictLike) -> dict[str, torch.Tensor]:
    """Convert a CLIPTextModel(WithProjection) to FrozenOpenCLIPEmbedder keys (``model.*``)."""
    weights, projection = _text_model_weights(encoder)
    converted: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        if key in _OPEN_CLIP_TOP_LEVEL:
            converted[_OPEN_CLIP_TOP_LEVEL[key]] = value
            continue
        m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key)
        if m is None:
            raise KeyError(f"unsupported text encoder weight: {key}")
        index, rest = m[1], m[2]
        if q := re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest):
            if q[1] == "q":  # fuse q, k and v into OpenCLIP's single in_proj
                parts = [weights[f"encoder.layers.{index}.self_attn.{p}_proj.{q[2]}"] for p in "qkv"]
                converted[f"transformer.resblocks.{index}.attn.in_proj_{q[2]}"] = torch.cat(parts)
            continue
        module, param = _split_module(rest)
        renamed = _rename(module, _OPEN_CLIP_LAYER)
        if renamed is None:
            raise KeyError(f"unsupported text encoder weight: {key}")
        converted[f"transformer.resblocks.{index}.{renamed}.{param}"] = value
    if projection is not None:
        # OpenCLIP multiplies by text_projection (hidden x proj); nn.Linear stores proj x hidden.
        converted["text_projection"] = projection.t().contiguous()
    return {f"model.{key}": value for key, value in converted.items()}


_TEXT_CONVERTERS = {CLIP: clip_to_ldm, OPEN_CLIP: open_clip_to_ldm}


def to_ldm_state_dict(
    family: ModelFamily | str,
    unet: StateDictLike,
    vae: StateDictLike,
    text_encoders: Sequence[StateDictLike],
) -> dict[str, torch.Tensor]:
    """Build one original-layout checkpoint state dict for ``family`` (a family or its name: "sd1", "sd2", "sdxl").

    Every argument may be a model or a state dict; ``text_encoders`` lists them in
    pipeline order (SDXL: CLIP-L ``text_encoder``, then bigG ``text_encoder_2``).
    Returned tensors are contiguous and may share memory with the inputs.
    """
    family = model_families.get(family) if isinstance(family, str) else family
    slots = family.text_encoders
    if len(text_encoders) != len(slots):
        raise ValueError(f"{family.label} needs {len(slots)} text encoder(s), got {len(text_encoders)}")
    parts = [(UNET_PREFIX, unet_to_ldm(unet)), (VAE_PREFIX, vae_to_ldm(vae))]
    for slot, encoder in zip(slots, text_encoders):
        parts.append((slot.embedder, _TEXT_CONVERTERS[slot.layout](encoder)))
    return {prefix + key: value.contiguous() for prefix, weights in parts for key, value in weights.items()}
