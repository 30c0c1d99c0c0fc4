"""Speed and memory options a loaded model can run with: offloading (--medvram, --lowvram),
the attention kernel (--opt-sdp-attention, --xformers) and torch.compile (--compile)."""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Optimizations:
    """How to place and run a model's components.

    offload: "none" (everything on the device), "model" (--medvram: one whole component on the
    device at a time) or "sequential" (--lowvram: one block at a time).
    """

    offload: str = "none"
    xformers: bool = False
    compile: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Optimizations:
        offload = "sequential" if args.lowvram else "model" if args.medvram else "none"
        return cls(offload=offload, xformers=args.xformers, compile=args.compile)

    @property
    def offloads(self) -> bool:
        return self.offload != "none"


def apply(model, optimizations: Optimizations, device: torch.device) -> list[str]:
    """Set a freshly built model (its components still on the CPU when offloading) up to run on
    `device` with `optimizations`. Returns notes for the log and page."""
    notes = []
    if optimizations.offloads:
        if device.type == "cpu":
            notes.append(f"Offloading ({optimizations.offload}) saves nothing without a GPU; it still runs.")
        _offload(model, optimizations.offload, device)
        model.device = model.prompt_encoder.device = device  # where inputs are made; hooks bring weights
    if optimizations.xformers:
        notes.extend(_use_xformers(model))
    if optimizations.compile:
        compile_unet_and_vae(model.unet, model.vae, device)
    for note in notes:
        log.warning(note)
    return notes


def compile_unet_and_vae(unet: torch.nn.Module, vae: torch.nn.Module, device: torch.device) -> None:
    """torch.compile the UNet, and the VAE's encoder and decoder: VAE.decode and VAE.encode call those, so
    compiling the VAE module itself would only reach its unused forward. Each is specialised per shape, so
    a new image size compiles once more. On a CPU, Inductor's C++ wrapper calls the kernels from C++ rather
    than Python: with the demo model a UNet call is about 6% faster, and the compile builds a few larger
    libraries instead of one per kernel (about a quarter less CPU time; the same kernels, so the same images)."""
    options = {"cpp_wrapper": True} if device.type == "cpu" else None
    modules: tuple[torch.nn.Module, ...] = (unet, vae.get_submodule("encoder"), vae.get_submodule("decoder"))
    for module in modules:
        module.compile(dynamic=False, options=options)


def _offload(model, mode: str, device: torch.device) -> None:
    """Install diffusers/accelerate hooks that move weights to `device` when a forward pass needs them."""
    components = [*model.text_encoders, model.unet, model.vae]
    if mode == "model":
        from accelerate import cpu_offload_with_hook

        hook = None
        for module in components:  # each component's hook sends the previous one back to the CPU
            _, hook = cpu_offload_with_hook(module, device, prev_module_hook=hook)
        return
    from diffusers.hooks import apply_group_offloading

    for module in components:
        apply_group_offloading(
            module, onload_device=device, offload_device=torch.device("cpu"), offload_type="leaf_level"
        )


def _use_xformers(model) -> list[str]:
    if importlib.util.find_spec("xformers") is None:
        return ["--xformers was given, but xformers is not installed; using PyTorch's SDP attention."]
    try:
        model.unet.enable_xformers_memory_efficient_attention()
        model.vae.enable_xformers_memory_efficient_attention()
    except (ValueError, RuntimeError, NotImplementedError) as exc:
        model.unet.set_default_attn_processor()
        model.vae.set_default_attn_processor()
        return [f"xformers could not be used ({exc}); using PyTorch's SDP attention."]
    return []


@contextmanager
def vae_tiling(vae, enabled: bool) -> Iterator[None]:
    """Within the block, a diffusers VAE encodes and decodes in overlapping tiles when `enabled`."""
    if not enabled:
        yield
        return
    vae.enable_tiling()
    try:
        yield
    finally:
        vae.disable_tiling()
