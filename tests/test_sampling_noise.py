"""modules/sampling/noise.py against independent oracles: Random123's published Philox4x32 answers, the values
A1111 documents for its NV source, plain torch.Generator draws in A1111's order, and k-diffusion's
BrownianTreeNoiseSampler (test-only)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sampling_oracles import k_diffusion_module, philox_randn, philox_words
from torchsde._brownian import brownian_interval

from modules.sampling import noise
from modules.sampling.noise import BrownianNoise, ImageRNG, PhiloxGenerator

SHAPE = (4, 8, 8)
TORCHSDE_RANDN = brownian_interval._randn

# Random123's kat_vectors (Salmon et al.), the philox4x32 lines: rounds, counter (4 words), key (2), result (4).
PHILOX_KAT = """
7 00000000 00000000 00000000 00000000 00000000 00000000 5f6fb709 0d893f64 4f121f81 4f730a48
7 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff 5207ddc2 45165e59 4d8ee751 8c52f662
7 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0 4dfccaba 190a87f0 c47362ba b6b5242a
10 00000000 00000000 00000000 00000000 00000000 00000000 6627e8d5 e169c58d bc57ac4c 9b00dbd8
10 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff 408f276d 41c83b0e a20bc7c6 6d5451fd
10 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0 d16cfe09 94fdcceb 5001e420 24126ea1
"""

# The "Expected output" in the docstring of A1111's modules/rng_philox.py: Generator(seed=0).randn((3, 4)).
A1111_SEED_0 = [
    -0.92466259,
    -0.42534415,
    -2.6438457,
    0.14518388,
    -0.12086647,
    -0.57972564,
    -0.62285122,
    -0.32838709,
    -1.07454231,
    -0.36314407,
    -1.67105067,
    2.26550497,
]


def draws(seed: int, *shapes: tuple[int, ...]) -> list[torch.Tensor]:
    """Successive torch.randn draws of `shapes` from one CPU generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for shape in shapes]


@pytest.mark.parametrize("line", PHILOX_KAT.strip().splitlines())
def test_philox_gives_random123s_known_answers(line):
    rounds, *words = line.split()
    values = [int(word, 16) for word in words]
    counter = np.array(values[:4], dtype=np.uint32).reshape(4, 1)
    key = np.array(values[4:6], dtype=np.uint32).reshape(2, 1)
    assert noise.philox4x32(counter, key, int(rounds))[:, 0].tolist() == values[6:]


def test_nv_seed_0_gives_the_values_a1111_documents():
    # The documented values are Box-Muller of the Philox words with an exact 2π/2³², unrounded: that pins the
    # counter and key layout and which words are used, to the printed precision.
    exact = [
        math.sqrt(-2 * math.log((x + 0.5) / 2**32)) * math.sin((y + 0.5) * 2 * math.pi / 2**32)
        for x, y in (philox_words(0, 0, i) for i in range(12))
    ]
    assert np.abs(np.array(exact) - A1111_SEED_0).max() < 5e-9
    # A1111's code (and this one) takes 2π/2³² as a float32 constant, so its float32 results lie within a few
    # float32 steps of those printed values.
    values = PhiloxGenerator(0).randn((3, 4))
    assert values.dtype == np.float32 and values.shape == (3, 4)
    assert np.abs(values.ravel() - A1111_SEED_0).max() < 3e-7


@pytest.mark.parametrize("seed", [12345, 2**32 + 7])
def test_nv_values_follow_a1111s_box_muller_for_other_seeds_and_later_calls(seed):
    generator = PhiloxGenerator(seed)
    for offset in range(2):  # each call moves the counter's first word on by one
        np.testing.assert_array_max_ulp(generator.randn((2, 5)), philox_randn(seed, offset, (2, 5)), maxulp=1)


def test_first_is_each_images_first_draw_and_next_continues_it():
    rng = ImageRNG(SHAPE, [3, 7], source="CPU")
    first3, second3, third3 = draws(3, SHAPE, SHAPE, SHAPE)
    first7, second7, _ = draws(7, SHAPE, SHAPE, SHAPE)
    first = rng.first()
    assert first.dtype == torch.float32 and first.shape == (2, *SHAPE)
    assert torch.equal(first, torch.stack([first3, first7]))
    assert torch.equal(rng.next(), torch.stack([second3, second7]))
    assert torch.equal(rng.next()[0], third3)


def test_the_first_next_is_first_as_in_a1111():
    rng = ImageRNG(SHAPE, [3], subseeds=[9], subseed_strength=0.5, source="CPU")
    assert torch.equal(rng.next(), ImageRNG(SHAPE, [3], subseeds=[9], subseed_strength=0.5, source="CPU").first())
    assert torch.equal(rng.next()[0], draws(3, SHAPE, SHAPE)[1])


def test_ensd_reseeds_the_generators_with_seed_plus_delta_after_first():
    rng = ImageRNG(SHAPE, [3, 7], source="CPU", eta_noise_seed_delta=31337)
    assert torch.equal(rng.first(), torch.stack([draws(3, SHAPE)[0], draws(7, SHAPE)[0]]))
    after3, later3 = draws(3 + 31337, SHAPE, SHAPE)
    after7, _ = draws(7 + 31337, SHAPE, SHAPE)
    assert torch.equal(rng.next(), torch.stack([after3, after7]))
    assert torch.equal(rng.next()[0], later3)


def slerp_columns(strength: float, low: torch.Tensor, high: torch.Tensor) -> np.ndarray:
    """Slerp of every (channel, column) vector along the height, in float64 numpy."""
    a, b = low.double().numpy(), high.double().numpy()
    out = np.empty_like(a)
    for c in range(a.shape[0]):
        for w in range(a.shape[2]):
            u, v = a[c, :, w], b[c, :, w]
            angle = math.acos(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
            out[c, :, w] = (math.sin((1 - strength) * angle) * u + math.sin(strength * angle) * v) / math.sin(angle)
    return out


def test_variation_seeds_slerp_each_column_from_the_seeds_noise_to_the_variation_seeds():
    seed_noise, seed_next = draws(5, SHAPE, SHAPE)
    (variation_noise,) = draws(9, SHAPE)
    rng = ImageRNG(SHAPE, [5], subseeds=[9], subseed_strength=0.3, source="CPU")
    np.testing.assert_allclose(rng.first()[0].numpy(), slerp_columns(0.3, seed_noise, variation_noise), atol=1e-5)
    assert torch.equal(rng.next()[0], seed_next)  # later draws are the seed's own, unmixed
    off = ImageRNG(SHAPE, [5], subseeds=[9], subseed_strength=0.0, source="CPU").first()[0]
    assert torch.equal(off, seed_noise)
    full = ImageRNG(SHAPE, [5], subseeds=[9], subseed_strength=1.0, source="CPU").first()[0]
    assert torch.allclose(full, variation_noise, atol=1e-5)


def test_variation_seeds_past_the_list_are_0_and_no_list_means_no_variation():
    (zero_noise,) = draws(0, SHAPE)
    mixed = ImageRNG(SHAPE, [5, 6], subseeds=[9], subseed_strength=0.5, source="CPU").first()
    np.testing.assert_allclose(mixed[1].numpy(), slerp_columns(0.5, draws(6, SHAPE)[0], zero_noise), atol=1e-5)
    unmixed = ImageRNG(SHAPE, [5], subseed_strength=0.5, source="CPU").first()[0]
    assert torch.equal(unmixed, draws(5, SHAPE)[0])


def test_nearly_equal_noises_mix_linearly_with_a1111s_reversed_weights():
    low = draws(3, SHAPE)[0]
    high = low + 1e-3 * draws(4, SHAPE)[0]
    assert torch.allclose(noise.slerp(0.2, low, high), 0.2 * low + 0.8 * high, atol=1e-6)


def test_resize_seed_from_a_smaller_size_pastes_it_centred_into_the_seeds_noise():
    (small,) = draws(5, (4, 4, 6))
    full, full_next = draws(5, SHAPE, SHAPE)
    rng = ImageRNG(SHAPE, [5], seed_resize=(4, 6), source="CPU")
    noise_ = rng.first()[0]
    assert torch.equal(noise_[:, 2:6, 1:7], small)
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[2:6, 1:7] = False
    assert torch.equal(noise_[:, outside], full[:, outside])
    assert torch.equal(rng.next()[0], full_next)


def test_resize_seed_from_a_larger_odd_size_crops_with_a1111s_floored_shift():
    # 13 columns into 8: the shift (8 - 13) // 2 is -3, so columns 3..9 fill 0..6 and column 7 keeps the seed's
    # own noise of the real size; 10 rows into 8: rows 1..8.
    (big,) = draws(5, (4, 10, 13))
    (full,) = draws(5, SHAPE)
    noise_ = ImageRNG(SHAPE, [5], seed_resize=(10, 13), source="CPU").first()[0]
    assert torch.equal(noise_[:, :, :7], big[:, 1:9, 3:10])
    assert torch.equal(noise_[:, :, 7], full[:, :, 7])


def test_resize_with_variation_mixes_at_the_made_size():
    (small,) = draws(5, (4, 4, 4))
    (variation,) = draws(9, (4, 4, 4))
    (full,) = draws(5, SHAPE)
    got = ImageRNG(SHAPE, [5], subseeds=[9], subseed_strength=0.4, seed_resize=(4, 4), source="CPU").first()[0]
    np.testing.assert_allclose(got[:, 2:6, 2:6].numpy(), slerp_columns(0.4, small, variation), atol=1e-5)
    assert torch.equal(got[:, 0], full[:, 0])


def test_a_batch_of_two_equals_two_batches_of_one():
    options = dict(subseed_strength=0.35, seed_resize=(6, 4), source="CPU", eta_noise_seed_delta=7)
    batch = ImageRNG(SHAPE, [5, 5], subseeds=[40, 41], **options)
    singles = [ImageRNG(SHAPE, [5], subseeds=[subseed], **options) for subseed in (40, 41)]
    for _ in range(3):
        assert torch.equal(batch.next(), torch.cat([single.next() for single in singles]))


def test_sources():
    cpu_rng, gpu_rng = ImageRNG(SHAPE, [3], source="CPU"), ImageRNG(SHAPE, [3], source="GPU")
    assert torch.equal(cpu_rng.next(), gpu_rng.next())  # on a CPU-only machine "GPU" draws on the CPU
    nv = ImageRNG(SHAPE, [3], source="NV", eta_noise_seed_delta=2)
    assert torch.equal(nv.next()[0], torch.from_numpy(PhiloxGenerator(3).randn(SHAPE)))
    assert torch.equal(nv.next()[0], torch.from_numpy(PhiloxGenerator(5).randn(SHAPE)))
    later = PhiloxGenerator(5)
    later.randn(SHAPE)
    assert torch.equal(nv.noise_sampler(1.0, 0.5)[0], torch.from_numpy(later.randn(SHAPE)))  # offset 1
    with pytest.raises(ValueError, match="Unknown random number source"):
        ImageRNG(SHAPE, [3], source="cuda")


SIGMAS = torch.tensor([14.6146, 7.0, 3.5, 1.5, 0.6, 0.2, 0.0292, 0.0])


def queries() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """What a DPM++ SDE run asks for: each step's σ to its midpoint and on to the next σ (above 0)."""
    pairs = []
    for sigma, sigma_next in itertools.pairwise(SIGMAS[:-1]):
        middle = (sigma * sigma_next).sqrt()
        pairs += [(sigma, middle), (middle, sigma_next)]
    return pairs


def test_brownian_noise_is_k_diffusions_brownian_tree_per_image():
    oracle_module = k_diffusion_module("sampling")
    x = torch.zeros(2, *SHAPE)
    ours = noise.brownian_noise(x, SIGMAS, [11, 12], source="CPU")
    oracle = oracle_module.BrownianTreeNoiseSampler(x, SIGMAS[SIGMAS > 0].min(), SIGMAS.max(), seed=[11, 12])
    for sigma, sigma_next in queries():
        got = ours(sigma, sigma_next)
        assert got.shape == x.shape and torch.equal(got, oracle(sigma, sigma_next))
    assert brownian_interval._randn is TORCHSDE_RANDN  # torchsde is left as it was


def test_brownian_noise_of_a_batch_of_two_equals_two_batches_of_one():
    x = torch.zeros(2, *SHAPE)
    batch = BrownianNoise(x, 0.0292, 14.6146, [11, 12], source="NV")
    singles = [BrownianNoise(x[:1], 0.0292, 14.6146, [seed], source="NV") for seed in (11, 12)]
    for sigma, sigma_next in queries()[:4]:
        assert torch.equal(batch(sigma, sigma_next), torch.cat([single(sigma, sigma_next) for single in singles]))
    with pytest.raises(ValueError, match="as many Brownian seeds"):
        BrownianNoise(x, 0.0292, 14.6146, [11])


def test_brownian_noise_draws_its_tree_from_the_nv_source(monkeypatch):
    # A1111 replaces torchsde's Gaussian draw with the RNG source's first draw for the node's seed.
    def nv_randn(size, dtype, device, seed):
        return torch.from_numpy(PhiloxGenerator(int(seed)).randn(size)).to(device=device, dtype=dtype)

    oracle_module = k_diffusion_module("sampling")
    x = torch.zeros(1, *SHAPE)
    ours = noise.brownian_noise(x, SIGMAS, [11], source="NV")
    monkeypatch.setattr(brownian_interval, "_randn", nv_randn)
    oracle = oracle_module.BrownianTreeNoiseSampler(x, SIGMAS[SIGMAS > 0].min(), SIGMAS.max(), seed=[11])
    plain = noise.brownian_noise(x, SIGMAS, [11], source="CPU")
    for sigma, sigma_next in queries()[:4]:
        assert torch.equal(ours(sigma, sigma_next), oracle(sigma, sigma_next))
        assert not torch.equal(ours(sigma, sigma_next), plain(sigma, sigma_next))


def test_without_batch_determinism_one_tree_is_seeded_as_k_diffusion_seeds_it_in_a1111():
    oracle_module = k_diffusion_module("sampling")
    x = torch.zeros(2, *SHAPE)
    ours = noise.brownian_noise(x, SIGMAS, [11, 12], source="CPU", batch_determinism=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12)  # A1111's noise for the batch seeds torch's global generator last with its last seed
        oracle = oracle_module.BrownianTreeNoiseSampler(x, SIGMAS[SIGMAS > 0].min(), SIGMAS.max())
    for sigma, sigma_next in queries()[:4]:
        assert torch.equal(ours(sigma, sigma_next), oracle(sigma, sigma_next))
