"""Benchmarks of generation on Ray Serve, through Services as the page and the API submit jobs: a local Ray
runtime on this machine, the demo checkpoint, 20 steps at 256x256."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

STEPS, SIZE = 20, 256
ROOT = Path(__file__).resolve().parent.parent


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


def _timed_job(services, number: int, n_iter: int = 1) -> float:
    """Seconds of one txt2img job with a prompt of its own (`number`)."""
    from modules.jobs.generation_params import GenerationParams

    params = GenerationParams(
        prompt=f"a lighthouse at dusk {number}",
        steps=STEPS,
        width=SIZE,
        height=SIZE,
        sampler_name="Euler a",
        seed=1,
        n_iter=n_iter,
    )
    start = time.perf_counter()
    services.jobs.txt2img(params).result()
    return time.perf_counter() - start


def _fastest_job(services, rounds: int, n_iter: int = 1) -> float:
    """Seconds of the fastest of `rounds` txt2img jobs (after one to warm up)."""
    _timed_job(services, 0, n_iter)
    return min(_timed_job(services, number, n_iter) for number in range(1, rounds + 1))


def serve_in_process_jobs() -> None:
    """The in-process side of ray_job_overhead_ratio, in a process of its own: after a "ready" line, each job
    number read from stdin is answered with a "seconds S" line."""
    with bench_services([], os.cpu_count() or 1) as services:
        _timed_job(services, 0)  # warm up
        print("ready", flush=True)
        for line in sys.stdin:
            print(f"seconds {_timed_job(services, int(line))}", flush=True)


@contextmanager
def in_process_side() -> Iterator[Callable[[int], float]]:
    """serve_in_process_jobs in a child process, warmed up; yields `run(number)`, its seconds for that job."""
    child = subprocess.Popen(
        [sys.executable, "-c", "from bench.ray_jobs import serve_in_process_jobs; serve_in_process_jobs()"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    requests, answers = child.stdin, child.stdout
    assert requests is not None and answers is not None

    def answer(prefix: str) -> str:  # other lines on its stdout (a library's print) are passed over
        for line in answers:
            if line.startswith(prefix):
                return line.removeprefix(prefix)
        raise RuntimeError("The in-process side of the benchmark ended early")

    def run(number: int) -> float:
        requests.write(f"{number}\n")
        requests.flush()
        return float(answer("seconds "))

    try:
        answer("ready")
        yield run
    finally:
        child.kill()
        child.wait()


def ray_job_overhead_ratio(rounds: int = 10) -> float:
    """The same job through one Ray Serve replica (all of this machine's cores) / in-process, fastest of
    `rounds` each. The two take turns job by job (the in-process engine in a child process), so that a slower
    spell of a shared machine falls on both; whichever side waits is idle meanwhile."""
    with bench_services(["--ray-address", "local", "--ray-replicas", "1"], os.cpu_count() or 1) as remote:
        _timed_job(remote, 0)  # warm up
        with in_process_side() as run_in_process:
            on_ray, in_process = [], []
            for number in range(1, rounds + 1):
                in_process.append(run_in_process(number))
                on_ray.append(_timed_job(remote, number))
    return min(on_ray) / min(in_process)


def ray_fanout_speedup_2_replicas(rounds: int = 3) -> float:
    """A batch count of 4 on one replica / on two (one core each): about 1 on a 2-core machine, near 2 with
    one GPU per replica (bench/gpu.py)."""
    times = []
    for replicas in ("1", "2"):
        with bench_services(["--ray-address", "local", "--ray-replicas", replicas], 1) as services:
            times.append(_fastest_job(services, rounds, n_iter=4))
    return times[0] / times[1]
