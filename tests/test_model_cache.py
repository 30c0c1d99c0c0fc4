"""The checkpoints kept loaded besides the current one: A1111's sd_checkpoints_limit and a memory budget."""

from __future__ import annotations

import pytest
import torch
from tiny_models import write_tiny_checkpoint

from modules.errors import ModelLoadError
from modules.models.model_manager import ModelManager
from modules.paths import DataPaths
from modules.sd_models import model_bytes


@pytest.fixture
def manager(tmp_path):
    paths = DataPaths.create(str(tmp_path / "data"))
    for seed, name in enumerate("abc"):
        write_tiny_checkpoint("sd1", paths.sd_models / f"{name}.safetensors", seed=seed)
    (paths.sd_models / "broken.ckpt").write_bytes(b"not a checkpoint")
    return ModelManager(paths, torch.device("cpu"), torch.float32)


def freed(model) -> bool:
    return model.unet.conv_in.weight.device.type == "meta"


def test_switching_back_to_a_kept_checkpoint_reads_nothing(manager):
    manager.cache_limits = lambda: (2, 0.0)
    a = manager.load("a.safetensors")
    b = manager.load("b.safetensors")
    assert [info.name for info in manager.kept] == ["a.safetensors"] and not freed(a)
    loads = manager.loads
    assert manager.load("a.safetensors") is a and manager.loads == loads  # no file read, no build
    assert [info.name for info in manager.kept] == ["b.safetensors"]
    manager.load("c.safetensors")  # the limit of 2: the least recently used one (b) goes
    assert [info.name for info in manager.kept] == ["a.safetensors"] and freed(b) and not freed(a)


def test_with_the_default_limit_of_one_the_old_model_is_freed(manager):
    a = manager.load("a.safetensors")
    with manager.borrowed("b.safetensors") as b:
        assert not freed(b)
    manager.load("c.safetensors")
    assert freed(a) and freed(b) and manager.kept == []


def test_a_hires_or_refiner_checkpoint_stays_loaded_between_jobs(manager):
    manager.cache_limits = lambda: (2, 0.0)
    a = manager.load("a.safetensors")
    with manager.borrowed("b.safetensors") as first:
        pass
    loads = manager.loads
    with manager.borrowed("b.safetensors") as second:
        assert second is first and manager.loads == loads
    assert manager.current is a and not freed(first)


def test_the_memory_budget_drops_kept_models_first(manager):
    a = manager.load("a.safetensors")
    size = model_bytes(a) / 2**30
    manager.cache_limits = lambda: (3, size * 2.5)  # room for two models, not three
    b = manager.load("b.safetensors")
    manager.load("c.safetensors")
    assert [info.name for info in manager.kept] == ["b.safetensors"] and freed(a) and not freed(b)


def test_a_failed_switch_keeps_the_current_model_and_the_kept_ones(manager):
    manager.cache_limits = lambda: (2, 0.0)
    a = manager.load("a.safetensors")
    b = manager.load("b.safetensors")
    with pytest.raises(ModelLoadError, match=r"broken.ckpt"):
        manager.load("broken.ckpt")
    assert manager.current is b and [info.name for info in manager.kept] == ["a.safetensors"] and not freed(a)
    manager.unload()
    assert manager.current is None and manager.kept == [] and freed(a) and freed(b)
