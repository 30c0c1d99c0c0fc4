"""Benchmarks of the model cache (sd_checkpoints_limit): through Services as the page submits jobs, on the demo
checkpoint and another of its layout."""

from __future__ import annotations

import time

from bench.ray_jobs import bench_services

HIRES_STEPS, SIZE = 10, 128


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def hires_checkpoint_repeat_ratio(rounds: int = 5) -> float:
    """With sd_checkpoints_limit 2: a job whose hires pass runs on another checkpoint, the second time (that
    checkpoint kept loaded since the first), over the same job once that checkpoint is the loaded one. The two are
    timed in turns, switching the loaded checkpoint between them (a cached switch, milliseconds), so a slow spell
    of the machine weighs on both; the fastest of each over `rounds` turns."""
    from modules.jobs.generation_params import GenerationParams

    params = GenerationParams(
        prompt="a lighthouse",
        steps=HIRES_STEPS,
        width=SIZE,
        height=SIZE,
        seed=1,
        sampler_name="Euler",
        enable_hr=True,
        hr_scale=1.5,
        hr_upscaler="Latent",
        denoising_strength=0.5,
        hr_checkpoint_name="other1.safetensors",
    )
    with bench_services([], settings={"sd_checkpoints_limit": 2}, other_checkpoints=1) as services:
        services.jobs.txt2img(params).result()  # loads other1 beside demo, and keeps it
        repeated: list[float] = []
        loaded: list[float] = []
        for _ in range(rounds):
            for checkpoint, times in (("demo.safetensors", repeated), ("other1.safetensors", loaded)):
                services.switching.load_checkpoint(checkpoint).result()
                times.append(_timed(lambda: services.jobs.txt2img(params).result()))
    return min(repeated) / min(loaded)


def cached_switch_s(rounds: int = 3) -> float:
    """Seconds to switch back to a checkpoint kept in the cache (sd_checkpoints_limit 2), the fastest of `rounds`."""
    with bench_services([], settings={"sd_checkpoints_limit": 2}, other_checkpoints=1) as services:
        times = []
        for _ in range(rounds):
            services.switching.load_checkpoint("other1.safetensors").result()
            times.append(_timed(lambda: services.switching.load_checkpoint("demo.safetensors").result()))
    return min(times)
