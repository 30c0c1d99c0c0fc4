import torch

from modules import rng


def test_negative_seed_becomes_random_and_image_seeds_count_up():
    assert 0 <= rng.resolve_seed(-1) <= rng.MAX_SEED
    assert rng.resolve_seed(5) == 5
    assert rng.image_seeds(10, 3) == [10, 11, 12]


def test_noise_is_per_image_and_reproducible():
    cpu = torch.device("cpu")
    a = rng.initial_noise(rng.generators([1, 2], cpu), (4, 8, 8), cpu, torch.float32)
    b = rng.initial_noise(rng.generators([2], cpu), (4, 8, 8), cpu, torch.float32)
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
