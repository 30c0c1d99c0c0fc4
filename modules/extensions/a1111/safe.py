"""A1111's `modules.safe`: loading weight files. Every name reads through the app's one safe reader
(modules/models/safe_weights.py: safetensors, or torch's weights-only unpickler), `unsafe_torch_load` included: this
app never unpickles code, so a file holding any refuses to load with a message naming it (docs/SECURITY.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from modules.models.safe_weights import UnsafeWeightsError, read_weights  # noqa: F401 - the error extensions may catch


def _moved(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _moved(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_moved(item, device) for item in value)
    return value


def load(filename: str | Path, *args: Any, map_location: Any = None, **kwargs: Any) -> Any:
    """The file's contents, as torch.load gives them, read safely; tensors moved to `map_location` when it
    names a device (a function as map_location is not run: the tensors stay on the CPU)."""
    loaded = read_weights(filename)
    if isinstance(map_location, (str, torch.device)):
        return _moved(loaded, torch.device(map_location))
    return loaded


def load_with_extra(filename: str | Path, extra_handler: Callable | None = None, *args: Any, **kwargs: Any) -> Any:
    """As load(); A1111's `extra_handler` allowed more globals to be unpickled, which this app never does."""
    return load(filename, *args, **kwargs)


unsafe_torch_load = load
