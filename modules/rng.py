"""Seeds: a random one for -1, and each image's seed in a batch.

A1111's noise itself (ImageRNG, the CPU / GPU / NV sources, ENSD, variation seeds, "Resize seed from") is
modules/sampling/noise.py. BatchNoise and sampler_generators below feed the diffusers-scheduler path of
generation.py until it moves to noise.ImageRNG; they go with it."""
from __future__ import annotations

import random

import torch

from modules.sampling.noise import paste_centred, slerp

MAX_SEED = 2**32 - 1


def resolve_seed(seed: int) -> int:
    """-1 (or any negative seed) becomes a random seed, as in A1111."""
    return random.randrange(MAX_SEED) if seed is None or seed < 0 else int(seed)


def image_seeds(seed: int, count: int, variation_strength: float = 0.0) -> list[int]:
    """Image i uses seed + i; with a variation strength every image keeps the seed, as in A1111 (their
    variation seeds count up instead)."""
    return [seed + (0 if variation_strength else i) for i in range(count)]


def generators(seeds: list[int], device: torch.device, source: str = "CPU") -> list[torch.Generator]:
    """One generator per image: on the CPU by default, so results don't depend on the device."""
    where = "cpu" if source == "CPU" or device.type == "mps" else device
    return [torch.Generator(where).manual_seed(int(s)) for s in seeds]


def _draw(generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)


class BatchNoise:
    """The noise of one batch: each image's generator seeded with its seed, and with a variation strength
    above 0 a second generator seeded with its variation seed (subseed).

    `first()` is the initial noise (A1111's create_random_tensors): the seed's noise, slerped towards the
    subseed's by `strength`. With `resize_from` ((height, width) in latent units) that mix is made at that
    size and pasted centred into the seed's noise of the real size, so a seed keeps its composition at
    another size. `next()` draws more noise (for hires fix) from where the generators are.
    """

    def __init__(self, seeds: list[int], device: torch.device, source: str = "CPU", subseeds: list[int] = (),
                 strength: float = 0.0, resize_from: tuple[int, int] | None = None) -> None:
        if strength and len(subseeds) < len(seeds):
            raise ValueError(f"{len(seeds)} images need as many variation seeds, got {len(subseeds)}")
        self.seeds = list(seeds)
        self.device, self.source = device, source
        self.strength = float(strength)
        self.resize_from = resize_from
        self.generators = generators(self.seeds, device, source)
        self.sub_generators = generators(list(subseeds)[:len(seeds)], device, source) if strength else []

    def first(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The initial noise of `shape` (C, H, W) for every image, stacked into a batch."""
        base = [_draw(g, shape) for g in self.generators]
        if not self.strength and self.resize_from is None:
            return torch.stack(base).to(device=device, dtype=dtype)
        made = shape if self.resize_from is None else (shape[0], *self.resize_from)
        images = []
        for i, seed in enumerate(self.seeds):
            noise = base[i] if made == shape else _draw(generators([seed], self.device, self.source)[0], made)
            if self.strength:
                noise = slerp(self.strength, noise, _draw(self.sub_generators[i], made))
            images.append(noise if made == shape else paste_centred(noise, base[i]))
        return torch.stack(images).to(device=device, dtype=dtype)

    def next(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """More noise of `shape` for every image, varied by the same strength."""
        noise = [_draw(g, shape) for g in self.generators]
        if self.strength:
            noise = [slerp(self.strength, n, _draw(g, shape)) for n, g in zip(noise, self.sub_generators)]
        return torch.stack(noise).to(device=device, dtype=dtype)


def sampler_generators(seeds: list[int], gens: list[torch.Generator], device: torch.device,
                       source: str, eta_noise_seed_delta: int) -> list[torch.Generator]:
    """Generators for the noise that ancestral/SDE samplers add during sampling.

    With ENSD 0 they continue the initial-noise generators; otherwise they restart at seed + ENSD.
    """
    if eta_noise_seed_delta:
        return generators([s + eta_noise_seed_delta for s in seeds], device, source)
    return gens
