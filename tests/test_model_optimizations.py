"""--medvram / --lowvram offloading, --xformers and --compile: each gives the image of a plain model."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
import torch

from modules.cmd_args import parse_args
from modules.core.engine import Engine
from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.models.model_manager import ModelManager
from modules.models.model_optimizations import Optimizations
from modules.paths import DataPaths

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def paths(tmp_path_factory, demo_checkpoint):
    paths = DataPaths.create(str(tmp_path_factory.mktemp("optimizations") / "data"))
    shutil.copy(demo_checkpoint, paths.sd_models / demo_checkpoint.name)
    return paths


@pytest.fixture(scope="module")
def plain(paths) -> np.ndarray:
    """The plain model's image at _image's defaults, made once for the tests that compare with it."""
    return _image(paths, Optimizations())[0]


def _image(paths, optimizations: Optimizations, size: int = 128, steps: int = 6) -> np.ndarray:
    manager = ModelManager(paths, CPU, torch.float32, optimizations)
    engine = Engine()
    try:
        model = engine.call("load", lambda ctx: manager.load(manager.checkpoints[0].name))
        params = GenerationParams(
            prompt="a red boat on a lake",
            negative_prompt="fog",
            steps=steps,
            width=size,
            height=size,
            sampler_name="Euler",
            seed=5,
        )
        result = engine.call("test", lambda ctx: Txt2Img(model, params, ctx, RunSettings()).run())
    finally:
        engine.shutdown()
    return np.asarray(result.images[0], dtype=np.int16), model


def test_flags_pick_the_offload_mode():
    assert Optimizations.from_args(parse_args([])) == Optimizations()
    assert Optimizations.from_args(parse_args(["--medvram"])).offload == "model"
    assert Optimizations.from_args(parse_args(["--lowvram", "--medvram"])).offload == "sequential"
    assert Optimizations.from_args(parse_args(["--compile", "--xformers"])) == Optimizations(
        compile=True, xformers=True
    )


@pytest.mark.parametrize("offload", ["model", "sequential"])
def test_offloading_gives_the_same_image(paths, plain, offload):
    offloaded, model = _image(paths, Optimizations(offload=offload))
    hooked = [m for m in model.unet.modules() if getattr(m, "_hf_hook", None) or getattr(m, "_diffusers_hook", None)]
    assert hooked, "the offloading hooks were not installed"
    assert np.abs(plain - offloaded).max() <= 1


@pytest.mark.skipif(importlib.util.find_spec("xformers") is not None, reason="xformers is installed here")
def test_missing_xformers_falls_back_with_a_note(paths, plain, caplog):
    with caplog.at_level("WARNING"):
        fallback, _ = _image(paths, Optimizations(xformers=True))
    assert "xformers is not installed" in caplog.text
    assert np.array_equal(plain, fallback)


@pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None, reason="torch.compile's CPU backend needs a C compiler"
)
def test_compiled_model_gives_the_same_image(paths, monkeypatch):
    from torch._dynamo.utils import counters

    # Inductor's C++ kernels are built unoptimised (TORCHINDUCTOR_DEBUG_COMPILE: -O0 and debug symbols in place
    # of -O3): what is checked here is which modules run compiled and that the image matches, not how fast the
    # kernels are; from a cold cache g++ -O3 costs about 18 CPU seconds more on the 2-core CI machine.
    monkeypatch.setenv("TORCHINDUCTOR_DEBUG_COMPILE", "1")
    plain, _ = _image(paths, Optimizations(), size=64, steps=2)
    counters.clear()
    compiled, model = _image(paths, Optimizations(compile=True), size=64, steps=2)
    assert all(module._compiled_call_impl is not None for module in (model.unet, model.vae.encoder, model.vae.decoder))
    assert counters["stats"]["unique_graphs"] == 2, "the UNet and the VAE decoder ran compiled"
    assert np.abs(plain - compiled).max() <= 2
