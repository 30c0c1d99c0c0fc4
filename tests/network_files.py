"""Real textual-inversion and LoRA files in the formats people share, made for tests."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def a1111_embedding(path: Path, vectors: torch.Tensor) -> Path:
    """A1111's .pt format: string_to_param['*'] holds the (count, width) vectors."""
    torch.save(
        {
            "string_to_token": {"*": 265},
            "string_to_param": {"*": vectors},
            "name": path.stem,
            "step": 500,
            "sd_checkpoint": "0123456789",
            "sd_checkpoint_name": "demo",
        },
        path,
    )
    return path


def safetensors_embedding(path: Path, vectors: torch.Tensor) -> Path:
    save_file({"emb_params": vectors.contiguous()}, str(path))
    return path


def sdxl_embedding(path: Path, clip_l: torch.Tensor, clip_g: torch.Tensor) -> Path:
    save_file({"clip_l": clip_l.contiguous(), "clip_g": clip_g.contiguous()}, str(path))
    return path


def diffusers_embedding(path: Path, vector: torch.Tensor) -> Path:
    """diffusers' learned_embeds.bin: {placeholder token: vector}."""
    torch.save({"<concept>": vector}, path)
    return path


def _lora_targets(module: torch.nn.Module, kinds: tuple[str, ...]) -> list[tuple[str, torch.nn.Linear]]:
    return [
        (name, m)
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in kinds
    ]


def kohya_lora(
    path: Path,
    unet: torch.nn.Module,
    text_encoder: torch.nn.Module | None,
    rank: int = 2,
    seed: int = 0,
    scale: float = 0.5,
) -> Path:
    """A kohya-ss/A1111 LoRA: lora_unet_*/lora_te_* keys with lora_down, lora_up and alpha."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def add(prefix: str, name: str, layer: torch.nn.Linear) -> None:
        key = prefix + name.replace(".", "_")
        state[f"{key}.lora_down.weight"] = torch.randn(rank, layer.in_features, generator=gen) * scale
        state[f"{key}.lora_up.weight"] = torch.randn(layer.out_features, rank, generator=gen) * scale
        state[f"{key}.alpha"] = torch.tensor(float(rank))

    for name, layer in _lora_targets(unet, ("to_q", "to_k", "to_v", "0")):
        if ".attn1." in f".{name}" or ".attn2." in f".{name}":
            add("lora_unet_", name, layer)
    if text_encoder is not None:
        for name, layer in _lora_targets(text_encoder, ("q_proj", "k_proj", "v_proj", "out_proj")):
            add("lora_te_", name if name.startswith("text_model.") else f"text_model.{name}", layer)
    save_file(state, str(path))
    return path
