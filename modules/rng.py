"""Seeds and initial noise, reproducible per image whatever the device (A1111's CPU RNG)."""
from __future__ import annotations

import random

import torch

MAX_SEED = 2**32 - 1


def resolve_seed(seed: int) -> int:
    """-1 (or any negative seed) becomes a random seed, as in A1111."""
    return random.randrange(MAX_SEED) if seed is None or seed < 0 else int(seed)


def image_seeds(seed: int, count: int) -> list[int]:
    """Image i of a job uses seed + i."""
    return [seed + i for i in range(count)]


def generators(seeds: list[int], device: torch.device, source: str = "CPU") -> list[torch.Generator]:
    """One generator per image: on the CPU by default, so results don't depend on the device."""
    where = "cpu" if source == "CPU" or device.type == "mps" else device
    return [torch.Generator(where).manual_seed(int(s)) for s in seeds]


def initial_noise(gens: list[torch.Generator], shape: tuple[int, ...], device: torch.device,
                  dtype: torch.dtype) -> torch.Tensor:
    """Noise of `shape` (C, H, W) for each image from its own generator, stacked into a batch."""
    noise = [torch.randn(shape, generator=g, device=g.device, dtype=torch.float32) for g in gens]
    return torch.stack(noise).to(device=device, dtype=dtype)


def sampler_generators(seeds: list[int], gens: list[torch.Generator], device: torch.device,
                       source: str, eta_noise_seed_delta: int) -> list[torch.Generator]:
    """Generators for the noise that ancestral/SDE samplers add during sampling.

    With ENSD 0 they continue the initial-noise generators; otherwise they restart at seed + ENSD.
    """
    if eta_noise_seed_delta:
        return generators([s + eta_noise_seed_delta for s in seeds], device, source)
    return gens
