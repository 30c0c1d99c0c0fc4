"""Seeds (A1111's exact noise, ImageRNG, is tested in test_sampling_noise.py)."""

from modules import rng


def test_negative_seed_becomes_random_and_image_seeds_count_up():
    assert 0 <= rng.resolve_seed(-1) <= rng.MAX_SEED
    assert rng.resolve_seed(5) == 5
    assert rng.image_seeds(10, 3) == [10, 11, 12]
    assert rng.image_seeds(10, 3, variation_strength=0.5) == [10, 10, 10]
