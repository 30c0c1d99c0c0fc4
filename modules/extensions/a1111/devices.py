"""A1111's `modules.devices`: the device and dtypes the running app uses, and A1111's torch helpers.

`device`, `dtype`, `dtype_vae`, `dtype_unet` (and the per-task devices) are read when asked: the loaded
model's, else the app's choice from its flags, else (before the app starts) what `--device auto` picks."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from modules import shared
from modules.core.memory_release import release_freed_memory
from modules.sd_models import pick_device, pick_dtype

cpu = torch.device("cpu")
unet_needs_upcast = False  # the app runs the UNet in the dtype it chose; nothing to upcast


class NansException(Exception):
    """A1111's error for a tensor that came out as NaN."""


def get_optimal_device() -> torch.device:
    """The device the app runs its model on."""
    services = shared.running()
    return services.models.device if services is not None else pick_device("auto")


def get_optimal_device_name() -> str:
    return str(get_optimal_device())


def get_device_for(task: str) -> torch.device:
    """A1111 may move some tasks to the CPU by flag; this app runs them all on one device."""
    return get_optimal_device()


def _model_dtype(part: str | None) -> torch.dtype:
    services = shared.running()
    if services is None:
        return pick_dtype(get_optimal_device(), no_half=False)
    model = services.models.current
    if model is None:
        return services.models.dtype
    return getattr(model, part).dtype if part else model.dtype


def torch_gc() -> None:
    """Collect garbage and empty torch's GPU caches."""
    release_freed_memory()


def test_for_nans(x: torch.Tensor, where: str) -> None:
    """Raise NansException when `x` holds a NaN."""
    if torch.isnan(x).any():
        raise NansException(
            f"A tensor with NaN values was produced in the {where}. Try --no-half, or another VAE or checkpoint."
        )


def autocast(disable: bool = False) -> contextlib.AbstractContextManager:
    """torch's autocast to the app's dtype on a GPU; nothing in fp32 or on the CPU."""
    dtype = _model_dtype(None)
    target = get_optimal_device()
    if disable or dtype == torch.float32 or target.type == "cpu":
        return contextlib.nullcontext()
    return torch.autocast(target.type, dtype=dtype)


def without_autocast(disable: bool = False) -> contextlib.AbstractContextManager:
    """Turn autocast off inside the block where it is on."""
    if disable or not torch.is_autocast_enabled():
        return contextlib.nullcontext()
    return torch.autocast(get_optimal_device().type, enabled=False)


def cond_cast_unet(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(_model_dtype("unet"))


def cond_cast_float(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float()


def has_mps() -> bool:
    return torch.backends.mps.is_available()


_READ_WHEN_ASKED = {
    "device": get_optimal_device,
    "device_interrogate": get_optimal_device,
    "device_gfpgan": get_optimal_device,
    "device_esrgan": get_optimal_device,
    "device_codeformer": get_optimal_device,
    "dtype": lambda: _model_dtype(None),
    "dtype_inference": lambda: _model_dtype(None),
    "dtype_unet": lambda: _model_dtype("unet"),
    "dtype_vae": lambda: _model_dtype("vae"),
}


def __getattr__(name: str) -> Any:
    if name in _READ_WHEN_ASKED:
        return _READ_WHEN_ASKED[name]()
    raise AttributeError(f"module 'modules.devices' has no attribute {name!r}")
