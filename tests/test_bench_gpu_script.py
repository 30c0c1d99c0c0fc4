"""bench/gpu.py fills docs/PERFORMANCE.md's GPU lines on a machine with CUDA; here it runs the same
code on the CPU with the demo model, so the script is known to work before a GPU is lent. It runs as a script
(runpy, as `__main__`) in the test's own process, which has already imported torch and diffusers."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_benchmark_script_runs_every_line_on_the_cpu(monkeypatch, capsys):
    flags = "--device cpu --blueprint demo --size 64 --steps 5 --rounds 2 --batches 1 2 --no-compile --peak-tflops 1"
    monkeypatch.setattr(sys, "argv", ["bench/gpu.py", *flags.split()])
    runpy.run_path(str(ROOT / "bench" / "gpu.py"), run_name="__main__")
    out = capsys.readouterr().out
    values = dict(line.split(": ", 1) for line in out.splitlines())
    assert values["device"] == "cpu"
    assert float(values["tflop_per_cfg_step"]) > 0
    for batch in (1, 2):
        ours, theirs = float(values[f"b{batch}_engine_it_per_s"]), float(values[f"b{batch}_diffusers_it_per_s"])
        assert ours > 0 and theirs > 0
        # The script prints 4 significant digits, so the printed ratio matches the printed rates to about 1e-3.
        assert float(values[f"b{batch}_engine_over_diffusers_speed"]) == pytest.approx(ours / theirs, rel=2e-3)
        assert 0 < float(values[f"b{batch}_share_of_peak"]) < 1
    assert not any("compile" in key for key in values)
    assert "ray_fanout_speedup_2_replicas" not in values  # two GPUs only


def test_card_peaks_are_found_by_device_name():
    sys.path.insert(0, str(ROOT))
    from bench.gpu import peak_tflops

    assert peak_tflops("NVIDIA H200") == 989.0
    assert peak_tflops("NVIDIA GeForce RTX 4090") == 165.2
    assert peak_tflops("Some Future Card") is None


def test_ray_fanout_line_needs_two_cuda_gpus():
    import torch

    sys.path.insert(0, str(ROOT))
    from bench.gpu import runs_ray_fanout

    assert not runs_ray_fanout(torch.device("cpu"))
    assert runs_ray_fanout(torch.device("cuda")) == (torch.cuda.device_count() >= 2)
