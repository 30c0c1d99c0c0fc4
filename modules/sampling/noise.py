"""A1111's image noise, bit for bit (its modules/rng.py and rng_philox.py, version 1.10).

- Sources: "GPU" draws with a torch generator on the model's device (the CPU on a CPU-only machine, and on Apple
  MPS), "CPU" always on the CPU, "NV" A1111's imitation of torch.randn on NVIDIA GPUs (Philox4x32-10 and
  Box-Muller in numpy), on any device.
- ImageRNG: one generator per image. `first()` is the batch's initial noise (variation seeds and "Resize seed
  from" applied), `next()` every later draw; ENSD re-seeds the generators after `first()`.
- BrownianNoise: the noise sampler of the SDE samplers, a torchsde Brownian tree per image whose Gaussians come
  from the same source.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torchsde
from torchsde._brownian import brownian_interval

SOURCES = ("GPU", "CPU", "NV")

# Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC 2011): round multipliers and
# Weyl key increments.
PHILOX_M = (0xD2511F53, 0xCD9E8D57)
PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_LOW32 = np.uint64(0xFFFFFFFF)

# Box-Muller as A1111 computes it: two uint32 become u = x·2⁻³² + 2⁻³³ and v = (y·2⁻³² + 2⁻³³)·2π with
# float32 constants (2.3283064e-10 and 2.3283064e-10 × 6.2831855 rounded to float32), the rest in float64.
_UNIT = float(np.float32(2.3283064e-10))
_UNIT_2PI = float(np.float32(2.3283064e-10 * 6.2831855))


def _uint64_rows(words: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(word, dtype=np.uint64) for word in words]


def philox4x32(counter: np.ndarray, key: np.ndarray, rounds: int = 10) -> np.ndarray:
    """Philox4x32 of `counter` ((4, n) uint32) under `key` ((2, n) uint32): (4, n) uint32, one block per column."""
    c0, c1, c2, c3 = _uint64_rows(counter)
    k0, k1 = _uint64_rows(key)
    for done in range(rounds):
        if done:
            k0, k1 = (k0 + PHILOX_W[0]) & _LOW32, (k1 + PHILOX_W[1]) & _LOW32
        product0, product1 = c0 * PHILOX_M[0], c2 * PHILOX_M[1]  # 32 × 32 bits: exact in 64
        c0, c1, c2, c3 = ((product1 >> 32) ^ c1 ^ k0, product1 & _LOW32, (product0 >> 32) ^ c3 ^ k1, product0 & _LOW32)
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def box_muller(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One standard normal per pair of uint32 (the sine half of Box-Muller), as float32."""
    u = x.astype(np.float64) * _UNIT + _UNIT / 2
    v = y.astype(np.float64) * _UNIT_2PI + _UNIT_2PI / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


class PhiloxGenerator:
    """The "NV" source for one seed: A1111's imitation of torch.randn on an NVIDIA GPU.

    Call k (from 0) of `randn` numbers its values i = 0, 1, … with the counter (k, 0, i, 0) under the key (the
    seed's low and high 32 bits); each value is Box-Muller of the block's first two words. The values A1111's
    documentation prints are that Box-Muller with an exact 2π; its code, and this, lie within a few float32 steps
    of them."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed) % 2**64
        self.offset = 0

    def randn(self, shape: Sequence[int]) -> np.ndarray:
        count = math.prod(shape)
        counter = np.zeros((4, count), dtype=np.uint32)
        counter[0] = self.offset
        counter[2] = np.arange(count, dtype=np.uint32)
        key = np.array([[self.seed & 0xFFFFFFFF], [self.seed >> 32]], dtype=np.uint32).repeat(count, axis=1)
        self.offset += 1
        words = philox4x32(counter, key)
        return box_muller(words[0], words[1]).reshape(tuple(shape))


NoiseGenerator = torch.Generator | PhiloxGenerator


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"Unknown random number source {source!r}: use one of {', '.join(SOURCES)}")
    return source


def create_generator(seed: int, source: str, device: torch.device) -> NoiseGenerator:
    """A generator seeded with `seed` for `source`; `device` is the model's (where "GPU" draws)."""
    if check_source(source) == "NV":
        return PhiloxGenerator(seed)
    where = torch.device("cpu") if source == "CPU" or device.type == "mps" else device
    return torch.Generator(where).manual_seed(int(seed))


def draw(generator: NoiseGenerator, shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """The generator's next standard-normal float32 tensor of `shape`, on `device`."""
    if isinstance(generator, PhiloxGenerator):
        return torch.from_numpy(generator.randn(shape)).to(device)
    return torch.randn(tuple(shape), generator=generator, device=generator.device).to(device)


def seed_noise(seed: int, shape: Sequence[int], source: str, device: torch.device) -> torch.Tensor:
    """A seed's first draw of `shape` (A1111's randn_local)."""
    return draw(create_generator(seed, source, device), shape, device)


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's variation mix of two (C, H, W) noises: spherical interpolation from `low` to `high` by `strength`,
    each (channel, column) vector along the height on its own. When the vectors are nearly parallel on average
    it falls back to `low·strength + high·(1 − strength)`, weights the wrong way round, as A1111 does."""
    low_unit = low / torch.norm(low, dim=1, keepdim=True)
    high_unit = high / torch.norm(high, dim=1, keepdim=True)
    cosine = (low_unit * high_unit).sum(1)
    if cosine.mean() > 0.9995:
        return low * strength + high * (1 - strength)
    angle = torch.acos(cosine)
    sine = torch.sin(angle)
    low_weight = (torch.sin((1.0 - strength) * angle) / sine).unsqueeze(1)
    high_weight = (torch.sin(strength * angle) / sine).unsqueeze(1)
    return low_weight * low + high_weight * high


def _centred(target: int, source: int) -> tuple[int, int, int]:
    """(start in target, start in source, length) of a `source`-long span centred on a `target`-long one. The
    shift is floored as in A1111: when a longer source's excess is odd, the target's last line stays uncovered."""
    shift = (target - source) // 2
    return max(shift, 0), max(-shift, 0), source if shift >= 0 else source + 2 * shift


def paste_centred(noise: torch.Tensor, into: torch.Tensor) -> torch.Tensor:
    """`into` ((C, H, W), changed in place and returned) with `noise` ((C, h, w)) over its centre; a larger
    `noise` is cropped around its centre."""
    top, source_top, rows = _centred(into.shape[1], noise.shape[1])
    left, source_left, columns = _centred(into.shape[2], noise.shape[2])
    into[:, top : top + rows, left : left + columns] = noise[
        :, source_top : source_top + rows, source_left : source_left + columns
    ]
    return into


class ImageRNG:
    """The noise of one batch, one generator per image (A1111's ImageRNG).

    `shape` is one image's latent (C, H, W); `seeds` the images' seeds (the job's: seed + i, or the same seed for
    every image with a variation strength). Given `subseeds` and a `subseed_strength` other than 0, the initial
    noise is slerped towards the variation seeds' (an image past the end of `subseeds` uses 0). `seed_resize`
    (h, w) makes that noise at this latent size instead (A1111: seed_resize_from_h // 8, seed_resize_from_w // 8,
    when both are above 0) and pastes it centred into the seed's noise of the real size. `eta_noise_seed_delta`
    (ENSD) re-seeds the generators with seed + ENSD after `first()`. Noise is float32 on `device`.
    """

    def __init__(
        self,
        shape: Sequence[int],
        seeds: Sequence[int],
        subseeds: Sequence[int] | None = None,
        subseed_strength: float = 0.0,
        seed_resize: tuple[int, int] | None = None,
        source: str = "GPU",
        device: torch.device = torch.device("cpu"),
        eta_noise_seed_delta: int = 0,
    ) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.seeds = [int(s) for s in seeds]
        self.subseeds = None if subseeds is None else [int(s) for s in subseeds]
        self.subseed_strength = float(subseed_strength)
        self.noise_shape = self.shape if seed_resize is None else (self.shape[0], *map(int, seed_resize))
        self.source, self.device = check_source(source), torch.device(device)
        self.eta_noise_seed_delta = int(eta_noise_seed_delta or 0)
        self.generators = [create_generator(seed, source, self.device) for seed in self.seeds]
        self.started = False

    def first(self) -> torch.Tensor:
        """The initial noise, (batch, C, H, W): each image's generator's draw, or, with a variation strength or
        another seed size, the seed's and the variation seed's fresh noise slerped (and pasted centred)."""
        self.started = True
        resized = self.noise_shape != self.shape
        images = []
        for i, (seed, generator) in enumerate(zip(self.seeds, self.generators)):
            if resized:
                noise = seed_noise(seed, self.noise_shape, self.source, self.device)
            else:
                noise = draw(generator, self.shape, self.device)
            if self.subseeds is not None and self.subseed_strength != 0:
                subseed = self.subseeds[i] if i < len(self.subseeds) else 0
                noise = slerp(
                    self.subseed_strength, noise, seed_noise(subseed, self.noise_shape, self.source, self.device)
                )
            if resized:
                noise = paste_centred(noise, draw(generator, self.shape, self.device))
            images.append(noise)
        if self.eta_noise_seed_delta:
            self.generators = [
                create_generator(seed + self.eta_noise_seed_delta, self.source, self.device) for seed in self.seeds
            ]
        return torch.stack(images)

    def next(self) -> torch.Tensor:
        """The next noise of the batch, (batch, C, H, W); before `first()` it is `first()`, as in A1111."""
        if not self.started:
            return self.first()
        return torch.stack([draw(generator, self.shape, self.device) for generator in self.generators])

    def noise_sampler(self, sigma: torch.Tensor | float, sigma_next: torch.Tensor | float) -> torch.Tensor:
        """`next()` in the samplers' noise_sampler(sigma, sigma_next) form (A1111 ignores the sigmas)."""
        return self.next()


# torchsde draws each Gaussian of a Brownian tree with brownian_interval._randn(size, dtype, device, seed). A1111
# replaces that function for the whole process with its randn_local (the seed's first draw from the RNG source);
# here the replacement holds only while one of our trees is built or queried.
_TREE_LOCK = threading.RLock()


@contextlib.contextmanager
def _tree_draws(source: str, device: torch.device) -> Iterator[None]:
    def randn(size, dtype, where, seed):
        return seed_noise(int(seed), size, source, device).to(device=where, dtype=dtype)

    with _TREE_LOCK:
        original, brownian_interval._randn = brownian_interval._randn, randn
        try:
            yield
        finally:
            brownian_interval._randn = original


# The schedule's σ reach the trees as float32 while a tree keeps its ends as Python floats, so a query at an end can
# lie a rounding error outside and torchsde warns on every such step (as it does under A1111); the result is the same.
warnings.filterwarnings("ignore", message=r"Should have t[ab]", category=UserWarning, module=r"torchsde\.")


def _ordered(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    return (a, b, 1) if a < b else (b, a, -1)


class BrownianNoise:
    """A noise sampler over Brownian trees (k-diffusion's BrownianTreeNoiseSampler as A1111 uses it).

    `x` gives the shape, dtype and device. With a list of `seeds` (one per image) each image has its own tree, so
    an image's noise does not depend on its batch; with one int seed, one tree covers the whole batch. The trees
    span [sigma_min, sigma_max]; their Gaussians come from `source` ("GPU" draws on `device`, by default x's).
    A call (sigma, sigma_next) gives (W(sigma_next) − W(sigma)) / √|sigma_next − sigma|."""

    def __init__(
        self,
        x: torch.Tensor,
        sigma_min: torch.Tensor | float,
        sigma_max: torch.Tensor | float,
        seeds: Sequence[int] | int,
        source: str = "GPU",
        device: torch.device | None = None,
    ) -> None:
        self.source, self.device = check_source(source), torch.device(device or x.device)
        self.batched = not isinstance(seeds, int)
        seeds = [seeds] if isinstance(seeds, int) else list(seeds)
        if self.batched and len(seeds) != x.shape[0]:
            raise ValueError(f"A batch of {x.shape[0]} images needs as many Brownian seeds, got {len(seeds)}")
        start, end, self.sign = _ordered(torch.as_tensor(sigma_min), torch.as_tensor(sigma_max))
        w0 = torch.zeros_like(x[0] if self.batched else x)
        with _tree_draws(self.source, self.device):
            self.trees = [torchsde.BrownianTree(start, w0, end, entropy=int(seed)) for seed in seeds]

    def __call__(self, sigma: torch.Tensor | float, sigma_next: torch.Tensor | float) -> torch.Tensor:
        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        start, end, sign = _ordered(t0, t1)
        with _tree_draws(self.source, self.device):
            w = torch.stack([tree(start, end) for tree in self.trees]) * (self.sign * sign)
        return (w if self.batched else w[0]) / (t1 - t0).abs().sqrt()


def brownian_noise(
    x: torch.Tensor,
    sigmas: torch.Tensor,
    seeds: Sequence[int],
    source: str = "GPU",
    device: torch.device | None = None,
    batch_determinism: bool = True,
) -> BrownianNoise:
    """The SDE samplers' noise sampler as A1111 makes it (create_noise_sampler): trees over the schedule's
    smallest σ above 0 to its largest, one per image seeded with the image's seed (the batch's all_seeds).

    With the setting no_dpmpp_sde_batch_determinism (`batch_determinism=False`) A1111 passes none and k-diffusion
    makes one tree for the whole batch, seeded with torch.randint(0, 2⁶³ − 1) from torch's global CPU generator,
    which A1111's noise last seeded with the batch's last seed; that seed is derived the same way here (with the
    "NV" source A1111 leaves the global generator alone, so its result there depends on the process's history)."""
    sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
    if batch_determinism:
        return BrownianNoise(x, sigma_min, sigma_max, seeds, source, device)
    generator = torch.Generator().manual_seed(int(seeds[-1]))
    seed = int(torch.randint(0, 2**63 - 1, [], generator=generator))
    return BrownianNoise(x, sigma_min, sigma_max, seed, source, device)
