"""GPU benchmarks for docs/PERFORMANCE.md: an SD1.5-size random-weight checkpoint at 512x512 in fp16
with SDP attention, the engine against diffusers' StableDiffusionPipeline on the same weights in the same
process, at batch 1 and 4, then both again with torch.compile (the engine's --compile); peak VRAM; and
the share of the card's peak fp16 throughput that the sampling loop reaches. With two or more GPUs and the
.[ray] extra, also `ray_fanout_speedup_2_replicas` (bench/ray_jobs.py: one Ray Serve replica per GPU).

On a machine with CUDA: `.venv/bin/python bench/gpu.py`. `--device cpu --blueprint demo --size 256
--no-compile` runs the same code on a CPU in seconds, to check the script itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import load_models  # noqa: E402
from modules.core.engine import Engine  # noqa: E402

# Dense fp16 tensor-core peaks with fp32 accumulation, in TFLOP/s, from the makers' data sheets.
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "RTX 4090": 165.2,
    "RTX 3090": 71.0,
    "A10": 125.0,
    "T4": 65.0,
}


def peak_tflops(device_name: str) -> float | None:
    """The table's peak for a CUDA device name such as "NVIDIA H200", or None for an unknown card."""
    return next((peak for key, peak in PEAK_TFLOPS.items() if key in device_name), None)


def unet_flops_per_step(unet, size: int, device, dtype) -> float:
    """FLOPs of one CFG step for one image: a UNet call on a batch of 2 (prompt and negative prompt),
    counted by PyTorch's FlopCounterMode. Attention runs on the math kernel while counting, as plain
    matrix products, so that it is counted whichever fused kernel the device would pick."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    latents = torch.randn(2, unet.config.in_channels, size // 8, size // 8, device=device, dtype=dtype)
    context = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        unet(latents, 500, encoder_hidden_states=context)
    return float(counter.get_total_flops())


class Sides:
    """The engine and diffusers' pipeline on the same weights, each timed as a whole job."""

    def __init__(self, engine, model, pipe, size: int, rounds: int) -> None:
        self.engine, self.model, self.pipe, self.size, self.rounds = engine, model, pipe, size, rounds

    def engine_job(self, steps: int, batch: int) -> None:
        from modules.jobs.generation import RunSettings, Txt2Img
        from modules.jobs.generation_params import GenerationParams

        params = GenerationParams(
            prompt="a lighthouse at dusk",
            negative_prompt="blurry",
            steps=steps,
            width=self.size,
            height=self.size,
            sampler_name="Euler a",
            batch_size=batch,
        )
        self.engine.call("bench", lambda ctx: Txt2Img(self.model, params, ctx, RunSettings()).run())

    def diffusers_job(self, steps: int, batch: int) -> None:
        import torch

        self.engine.call(
            "diffusers",
            lambda ctx: self.pipe(
                "a lighthouse at dusk",
                negative_prompt="blurry",
                num_inference_steps=steps,
                width=self.size,
                height=self.size,
                num_images_per_prompt=batch,
                guidance_scale=7.0,
                generator=torch.Generator("cpu").manual_seed(0),
            ),
        )

    def sampling_rates(self, steps: int, batch: int) -> tuple[float, float]:
        """Sampling steps per second of (engine, diffusers): the extra steps of a `2 * steps` job over
        a `steps` job, divided by the extra time, so prompt encoding and decoding drop out. The fastest
        of `rounds` alternated rounds, after one warm-up round (which is also where compiling happens). Where other
        load on the machine hides the extra time (the extra steps seem to take under a quarter of the longer job, so
        the difference is mostly noise), the longer job's own rate stands in: a lower bound."""
        best: dict[tuple[str, int], float] = {}
        for side in (self.engine_job, self.diffusers_job):
            side(steps, batch)
        for i in range(self.rounds):
            sides = (self.engine_job, self.diffusers_job)
            for side in sides if i % 2 == 0 else sides[::-1]:
                for count in (steps, 2 * steps):
                    start = time.perf_counter()
                    side(count, batch)
                    elapsed = time.perf_counter() - start
                    key = (side.__name__, count)
                    best[key] = min(best.get(key, elapsed), elapsed)

        def rate(name: str) -> float:
            longer = best[(name, 2 * steps)]
            extra = longer - best[(name, steps)]
            return steps / extra if extra > longer / 4 else 2 * steps / longer

        return rate("engine_job"), rate("diffusers_job")

    def peak_memory_gib(self, steps: int, batch: int) -> float:
        """Peak CUDA memory allocated during one engine job, in GiB (0 on a CPU)."""
        import torch

        if self.model.device.type != "cuda":
            return 0.0
        torch.cuda.reset_peak_memory_stats()
        self.engine_job(steps, batch)
        return torch.cuda.max_memory_allocated() / 2**30


def runs_ray_fanout(device) -> bool:
    """Whether the Ray fan-out line applies: two or more CUDA GPUs, one for each of two replicas."""
    import torch

    return device.type == "cuda" and torch.cuda.device_count() >= 2


def compile_both(model, pipe) -> None:
    """Compile the engine's model as --compile does, and the pipeline's UNet and VAE the same way."""
    from modules.models.model_optimizations import Optimizations, apply, compile_unet_and_vae

    apply(model, Optimizations(compile=True), model.device)
    compile_unet_and_vae(pipe.unet, pipe.vae, model.device)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--blueprint", default="sd1", help="shipped config to build with random weights")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile lines")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense fp16 peak, if not in the table")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    engine = Engine()  # all torch work runs on its worker, as in the app (see bench/run.py)
    model, pipe = engine.call("load", lambda ctx: load_models(args.blueprint, device, dtype, with_pipeline=True))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or peak_tflops(name)
    flops = engine.call("flops", lambda ctx: unet_flops_per_step(model.unet, args.size, device, dtype))
    print(f"device: {name}")
    print(f"tflop_per_cfg_step: {flops / 1e12:.4g}")
    sides = Sides(engine, model, pipe, args.size, args.rounds)
    for compiled in (False, True):
        if compiled:
            if args.no_compile:
                break
            compile_both(model, pipe)
        tag = "_compile" if compiled else ""
        for batch in args.batches:
            ours, theirs = sides.sampling_rates(args.steps, batch)
            print(f"b{batch}{tag}_engine_it_per_s: {ours:.4g}")
            print(f"b{batch}{tag}_diffusers_it_per_s: {theirs:.4g}")
            print(f"b{batch}{tag}_engine_over_diffusers_speed: {ours / theirs:.4g}")
            if peak:
                print(f"b{batch}{tag}_share_of_peak: {ours * batch * flops / (peak * 1e12):.4g}")
            print(f"b{batch}{tag}_peak_vram_gib: {sides.peak_memory_gib(args.steps, batch):.2f}", flush=True)
    engine.shutdown()
    if runs_ray_fanout(device):
        from bench.ray_jobs import ray_fanout_speedup_2_replicas

        del sides, model, pipe  # the replicas need the GPUs' memory
        torch.cuda.empty_cache()
        print(f"ray_fanout_speedup_2_replicas: {ray_fanout_speedup_2_replicas():.3f}", flush=True)


if __name__ == "__main__":
    main()
