"""Seeds, and the diffusers path's BatchNoise (A1111's exact noise, ImageRNG, is tested in test_sampling_noise.py)."""
import pytest
import torch

from modules import rng


def test_negative_seed_becomes_random_and_image_seeds_count_up():
    assert 0 <= rng.resolve_seed(-1) <= rng.MAX_SEED
    assert rng.resolve_seed(5) == 5
    assert rng.image_seeds(10, 3) == [10, 11, 12]


def test_noise_is_per_image_and_reproducible():
    cpu = torch.device("cpu")
    a = rng.BatchNoise([1, 2], cpu).first((4, 8, 8), cpu, torch.float32)
    b = rng.BatchNoise([2], cpu).first((4, 8, 8), cpu, torch.float32)
    assert torch.equal(a[1], b[0])  # image 2's noise does not depend on the batch it is in
    assert not torch.equal(a[0], a[1])
    assert torch.equal(a[0], torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(1)))


def test_ensd_restarts_the_sampler_noise_at_seed_plus_delta():
    cpu = torch.device("cpu")
    gens = rng.generators([7], cpu)
    assert rng.sampler_generators([7], gens, cpu, "CPU", 0) is gens
    shifted = rng.sampler_generators([7], gens, cpu, "CPU", 31337)
    expected = torch.randn(3, generator=torch.Generator().manual_seed(7 + 31337))
    assert torch.equal(torch.randn(3, generator=shifted[0]), expected)


def randn(seed, shape):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_variation_strength_slerps_from_the_seed_noise_to_the_variation_seed_noise():
    cpu = torch.device("cpu")
    seed_noise, sub_noise = randn(5, (4, 8, 8)), randn(9, (4, 8, 8))
    none = rng.BatchNoise([5], cpu, subseeds=[9], strength=0.0).first((4, 8, 8), cpu, torch.float32)[0]
    full = rng.BatchNoise([5], cpu, subseeds=[9], strength=1.0).first((4, 8, 8), cpu, torch.float32)[0]
    half = rng.BatchNoise([5], cpu, subseeds=[9], strength=0.5).first((4, 8, 8), cpu, torch.float32)[0]
    assert torch.equal(none, seed_noise)
    assert torch.allclose(full, sub_noise, atol=1e-5)
    cosine = torch.nn.functional.cosine_similarity
    to_seed, to_sub = cosine(half.flatten(), seed_noise.flatten(), 0), cosine(half.flatten(), sub_noise.flatten(), 0)
    assert 0.6 < to_seed < 0.8 and 0.6 < to_sub < 0.8  # half way round the sphere: about cos 45°
    assert abs(half.std() - seed_noise.std()) < 0.1  # a slerp keeps the noise's scale, a straight mix would not


def test_seed_resize_pastes_the_smaller_noise_centred():
    cpu = torch.device("cpu")
    noise = rng.BatchNoise([5], cpu, resize_from=(4, 6)).first((4, 8, 8), cpu, torch.float32)[0]
    small, full = randn(5, (4, 4, 6)), randn(5, (4, 8, 8))
    assert torch.equal(noise[:, 2:6, 1:7], small)
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[2:6, 1:7] = False
    assert torch.equal(noise[:, outside], full[:, outside])


def test_seed_resize_from_a_larger_size_keeps_its_centre():
    cpu = torch.device("cpu")
    noise = rng.BatchNoise([5], cpu, resize_from=(12, 10)).first((4, 8, 8), cpu, torch.float32)[0]
    assert torch.equal(noise, randn(5, (4, 12, 10))[:, 2:10, 1:9])


def test_variation_seeds_of_a_batch_and_the_noise_that_follows():
    cpu = torch.device("cpu")
    assert rng.image_seeds(10, 3, variation_strength=0.2) == [10, 10, 10]
    batch = rng.BatchNoise([5, 5], cpu, subseeds=[9, 10], strength=0.4)
    alone = rng.BatchNoise([5], cpu, subseeds=[10], strength=0.4)
    assert torch.equal(batch.first((4, 8, 8), cpu, torch.float32)[1], alone.first((4, 8, 8), cpu, torch.float32)[0])
    assert torch.equal(batch.next((4, 16, 16), cpu, torch.float32)[1], alone.next((4, 16, 16), cpu, torch.float32)[0])
    plain = rng.BatchNoise([5], cpu)
    plain.first((4, 8, 8), cpu, torch.float32)
    expected = torch.Generator().manual_seed(5)
    torch.randn((4, 8, 8), generator=expected)
    assert torch.equal(plain.next((4, 16, 16), cpu, torch.float32)[0], torch.randn((4, 16, 16), generator=expected))
    with pytest.raises(ValueError, match="variation seeds"):
        rng.BatchNoise([5, 6], cpu, subseeds=[1], strength=0.5)
