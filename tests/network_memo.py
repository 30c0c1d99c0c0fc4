"""Remembered network calls for tests that run the same small network on the same inputs many times.

`remembered_calls(module)` makes `module`'s forward answer a call it has seen before from memory. A call is the
same only when every argument is: each tensor's dtype, shape, strides and bytes, every other value by its repr,
and the module's weights (their storage and version counters, which in-place edits bump). So a remembered
answer is the one the network would give again on a deterministic CPU, and a call that differs in any bit runs.
Hooks still run on every call; answers are handed out as copies, so a caller that edits one in place edits only
its own."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import torch


def _key_of(value: Any, digest: Any) -> None:
    """Feed `value` (tensors, containers of them, anything else by its repr) into `digest`."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}{tensor.stride()}".encode())
        digest.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(b"{")
        for name in sorted(value):
            digest.update(repr(name).encode())
            _key_of(value[name], digest)
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _key_of(item, digest)
        digest.update(b"]")
    else:
        digest.update(repr(value).encode())


class _WeightsState:
    """The storage and version counter of every parameter and buffer under a module, read on each call. Its
    submodules are listed once, and again only when the tree changes (a child added, removed or replaced; the list
    holds the old children, so a new one can't take an old one's id): a flat pass over that list costs a quarter of
    walking `parameters()` and `buffers()`, which took 8% of the parity tests' time."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self._list_modules()

    def _list_modules(self) -> None:
        self.modules = list(self.module.modules())
        self.tree = self._children()

    def _children(self) -> tuple[int, ...]:
        return tuple(id(child) for module in self.modules for child in module._modules.values())

    def __call__(self) -> tuple:
        if self._children() != self.tree:
            self._list_modules()
        return tuple(
            (tensor.data_ptr(), tensor._version)
            for module in self.modules
            for tensors in (module._parameters, module._buffers)
            for tensor in tensors.values()
            if tensor is not None
        )


def _copied(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):  # diffusers' outputs are ordered dicts of tensors as well
        return type(value)(**{name: _copied(item) for name, item in value.items()})
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(item) for item in value)
    return value


@contextlib.contextmanager
def remembered_calls(*modules: torch.nn.Module) -> Iterator[dict[str, int]]:
    """Remember the calls of each of `modules` while open; yields counts of calls "run" and "remembered"."""
    counts = {"run": 0, "remembered": 0}
    originals = [(module, module.__dict__.get("forward")) for module in modules]
    for module in modules:
        module.forward = _remembering(module, module.forward, counts)
    try:
        yield counts
    finally:
        for module, original in originals:
            if original is None:
                del module.forward
            else:
                module.forward = original


def _remembering(module: torch.nn.Module, forward: Any, counts: dict[str, int]) -> Any:
    answers: dict[tuple, Any] = {}
    weights_state = _WeightsState(module)

    def remembered_forward(*args: Any, **kwargs: Any) -> Any:
        digest = hashlib.blake2b(digest_size=20)
        _key_of((args, kwargs), digest)
        key = (digest.digest(), torch.is_grad_enabled(), weights_state())
        if key not in answers:
            counts["run"] += 1
            answers[key] = forward(*args, **kwargs)
        else:
            counts["remembered"] += 1
        return _copied(answers[key])

    return remembered_forward
