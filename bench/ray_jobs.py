"""Benchmarks of generation on Ray Serve, through Services as the page and the API submit jobs: a local Ray
runtime on this machine, the demo checkpoint, 20 steps at 256x256."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STEPS, SIZE = 20, 256


@contextmanager
def bench_services(
    flags: list[str], replica_cpus: int = 1, settings: dict | None = None, other_checkpoints: int = 0
) -> Iterator:
    """Services as app.py builds them over a fresh data folder holding the demo checkpoint (demo.safetensors) and
    `other_checkpoints` more of its layout with other weights (other1.safetensors, …), with `flags` and
    `settings` in its config.json."""
    import ray

    from app import create_services
    from modules.cmd_args import parse_args
    from modules.models.demo_model import write_demo_checkpoint
    from modules.ray_backend.backend import init_ray

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        write_demo_checkpoint(data / "models" / "Stable-diffusion" / "demo.safetensors")
        for number in range(1, other_checkpoints + 1):
            write_demo_checkpoint(data / "models" / "Stable-diffusion" / f"other{number}.safetensors", seed=number)
        config = {"samples_save": False, "ray_replica_num_cpus": replica_cpus, **(settings or {})}
        (data / "config.json").write_text(json.dumps(config))
        if flags:
            init_ray("local", object_store_memory=200 * 1024 * 1024)
        services = create_services(parse_args(["--data-dir", tmp, "--skip-install", *flags]))
        try:
            deadline = time.monotonic() + 300
            while services.models.current is None and time.monotonic() < deadline:
                time.sleep(0.1)
            yield services
        finally:
            services.backend.close()
            services.engine.shutdown()
            if flags:
                from ray import serve

                serve.shutdown()
                ray.shutdown()


def _fastest_job(services, rounds: int, n_iter: int = 1) -> float:
    """Seconds of the fastest of `rounds` txt2img jobs (after one to warm up), each with a new prompt."""
    from modules.jobs.generation_params import GenerationParams

    times = []
    for i in range(rounds + 1):
        params = GenerationParams(
            prompt=f"a lighthouse at dusk {i}",
            steps=STEPS,
            width=SIZE,
            height=SIZE,
            sampler_name="Euler a",
            seed=1,
            n_iter=n_iter,
        )
        start = time.perf_counter()
        services.jobs.txt2img(params).result()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def ray_job_overhead_ratio(rounds: int = 5) -> float:
    """The same job through one Ray Serve replica (all of this machine's cores) / in-process."""
    import os

    cores = os.cpu_count() or 1
    with bench_services([], cores) as local:
        in_process = _fastest_job(local, rounds)
    with bench_services(["--ray-address", "local", "--ray-replicas", "1"], cores) as remote:
        on_ray = _fastest_job(remote, rounds)
    return on_ray / in_process


def ray_fanout_speedup_2_replicas(rounds: int = 3) -> float:
    """A batch count of 4 on one replica / on two (one core each): about 1 on a 2-core machine, near 2 with
    one GPU per replica (bench/gpu.py)."""
    times = []
    for replicas in ("1", "2"):
        with bench_services(["--ray-address", "local", "--ray-replicas", replicas], 1) as services:
            times.append(_fastest_job(services, rounds, n_iter=4))
    return times[0] / times[1]
