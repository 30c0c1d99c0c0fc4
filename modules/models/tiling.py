"""A1111's "Tiling": convolutions pad by wrapping around the edges, so the image tiles seamlessly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def circular_padding(*models: torch.nn.Module) -> Iterator[None]:
    """Inside the block every Conv2d of `models` pads circularly; each one's own padding mode is put
    back afterwards, also when the block fails or is interrupted."""
    convs = [layer for model in models for layer in model.modules() if isinstance(layer, torch.nn.Conv2d)]
    saved = [conv.padding_mode for conv in convs]
    try:
        for conv in convs:
            conv.padding_mode = "circular"
        yield
    finally:
        for conv, mode in zip(convs, saved):
            conv.padding_mode = mode
