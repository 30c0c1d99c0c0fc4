"""Benchmarks. Prints one `name: value` line each; run with `python bench/run.py`."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.model_cache import cached_switch_s, hires_checkpoint_repeat_ratio  # noqa: E402
from bench.ray_jobs import ray_fanout_speedup_2_replicas, ray_job_overhead_ratio  # noqa: E402

TYPICAL_PROMPT = (
    "masterpiece, best quality, a (cozy:1.2) wooden cabin in a [snowy:autumn:0.4] forest at dusk, "
    "warm light from the windows, ((smoke)) rising from the chimney, [deer|fox] in the foreground, "
    "mountains in the background, volumetric fog, detailed, sharp focus, 35mm photograph, "
    "film grain, by a famous photographer, trending"
)


def _demo_model(with_pipeline: bool = False):
    """The demo checkpoint, loaded as a user's checkpoint is; see `load_models`."""
    import torch

    return load_models("demo", torch.device("cpu"), torch.float32, with_pipeline)


def load_models(blueprint: str, device, dtype, with_pipeline: bool = False):
    """A random-weight checkpoint of `blueprint` ("demo" or "sd1"), written to a temporary file and
    loaded as a user's checkpoint is; with `with_pipeline`, also diffusers' own StableDiffusionPipeline
    on the same file, its components loaded by diffusers' single-file loader and left as diffusers
    leaves them."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    from modules import sd_models
    from modules.models import model_detection
    from modules.models.checkpoints import CheckpointInfo
    from modules.models.demo_model import write_demo_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = write_demo_checkpoint(Path(tmp) / f"{blueprint}.safetensors", blueprint=blueprint, dtype=dtype)
        info = CheckpointInfo(path, path.name)
        model = sd_models.load_model(info, device, dtype, Path(tmp))
        if not with_pipeline:
            return model
        prepared = sd_models.prepare_checkpoint(info)
        folder = model_detection.write_config_folder(prepared.configs, Path(tmp) / "configs")
        unet, vae, (text_encoder,) = sd_models.components_from_state(
            prepared.state, prepared.family, str(folder), dtype
        )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=model.tokenizers[0],
        unet=unet,
        scheduler=EulerAncestralDiscreteScheduler.from_config(model.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return model, pipe.to(device)


def _engine_vs_diffusers(prompt_for, rounds: int) -> float:
    """Engine time per image / diffusers StableDiffusionPipeline time, same demo-model weights and
    settings (20 steps, 256x256, Euler a, CFG 7), alternated after a warm-up round, each going first in
    every other round; the fastest round of each, since other load on a shared machine only ever adds
    time. `prompt_for(round)` gives each round's prompt.

    All torch work, both pipelines' and the loading, runs on the engine's worker thread, as in the app.
    Torch work on a second thread would give that thread an OpenMP pool of its own, and with more pooled
    threads than cores libgomp stops spinning between ops, which slows both sides by a third on 2 cores."""
    import torch

    from modules.core.engine import Engine
    from modules.jobs.generation import RunSettings, Txt2Img
    from modules.jobs.generation_params import GenerationParams

    engine = Engine()
    model, pipe = engine.call("load", lambda ctx: _demo_model(with_pipeline=True))
    ours, theirs = [], []

    def run_engine(seed: int) -> None:
        params = GenerationParams(
            prompt=prompt_for(seed),
            negative_prompt="blurry",
            steps=20,
            width=256,
            height=256,
            sampler_name="Euler a",
            seed=seed,
        )
        engine.call("bench", lambda ctx: Txt2Img(model, params, ctx, RunSettings()).run())

    def run_diffusers(seed: int) -> None:
        engine.call(
            "diffusers",
            lambda ctx: pipe(
                prompt_for(seed),
                negative_prompt="blurry",
                num_inference_steps=20,
                width=256,
                height=256,
                guidance_scale=7.0,
                generator=torch.Generator("cpu").manual_seed(seed),
            ),
        )

    run_engine(0), run_diffusers(0)  # warm-up
    for i in range(1, rounds + 1):
        pairs = ((run_engine, ours), (run_diffusers, theirs))
        for runner, times in pairs if i % 2 else pairs[::-1]:  # each goes first in every other round
            start = time.perf_counter()
            runner(i)
            times.append(time.perf_counter() - start)
    engine.shutdown()
    return min(ours) / min(theirs)


def txt2img_overhead_ratio(rounds: int = 10) -> float:
    """Engine / diffusers with a new prompt each round, so the conditioning cache never helps."""
    return _engine_vs_diffusers(lambda i: f"a lighthouse at dusk {i}", rounds)


def sampler_step_overhead_ms(steps: int = 30, rounds: int = 5) -> float:
    """Milliseconds per sampling step spent outside the UNet on the demo model at 64x64: the CFG batch, the
    sampler's maths, its noise, the callbacks. The larger of DPM++ 2M (A1111's default) and Euler a (noise every
    step), each the fastest of `rounds`, all on the engine's worker as in the app."""
    from modules.core.engine import Engine
    from modules.jobs.generation import RunSettings, Txt2Img
    from modules.jobs.generation_params import GenerationParams

    class Timed(Txt2Img):
        def sample(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return super().sample(*args, **kwargs)
            finally:
                spent["sampling"] += time.perf_counter() - start

    engine = Engine()
    model = engine.call("load", lambda ctx: _demo_model())
    spent = {"sampling": 0.0, "unet": 0.0}
    entered: list[float] = []
    before = model.unet.register_forward_pre_hook(lambda *_: entered.append(time.perf_counter()))
    after = model.unet.register_forward_hook(
        lambda *_: spent.__setitem__("unet", spent["unet"] + time.perf_counter() - entered.pop())
    )
    worst = 0.0
    try:
        for sampler in ("DPM++ 2M", "Euler a"):
            params = GenerationParams(
                prompt="a lighthouse",
                negative_prompt="blurry",
                steps=steps,
                width=64,
                height=64,
                sampler_name=sampler,
                seed=1,
            )
            rounds_ms = []
            for _ in range(rounds + 1):  # the first warms up
                spent.update(sampling=0.0, unet=0.0)
                engine.call("bench", lambda ctx, params=params: Timed(model, params, ctx, RunSettings()).run())
                rounds_ms.append((spent["sampling"] - spent["unet"]) / steps * 1000)
            worst = max(worst, min(rounds_ms[1:]))
    finally:
        before.remove(), after.remove()
        engine.shutdown()
    return worst


def repeat_prompt_ratio(rounds: int = 10) -> float:
    """Engine / diffusers with the same prompt every round (new seeds): the engine's conditioning
    comes from its cache after the warm-up, diffusers encodes the prompt each time."""
    return _engine_vs_diffusers(lambda i: "a lighthouse at dusk", rounds)


def text_encoding_share_sd15(steps: int = 20) -> float:
    """Share of an SD1.5-size 512x512 job (random weights, in the precision the app picks on this
    machine) spent encoding a typical prompt and negative prompt: the most that the conditioning cache
    can take off a repeated job, and so the most `repeat_prompt_ratio` can sit below `txt2img_overhead_ratio`."""
    import torch

    from modules.core.engine import Engine
    from modules.jobs.generation import RunSettings, Txt2Img
    from modules.jobs.generation_params import GenerationParams
    from modules.sd_models import pick_dtype

    engine = Engine()
    cpu = torch.device("cpu")
    model = engine.call("load", lambda ctx: load_models("sd1", cpu, pick_dtype(cpu, no_half=False)))
    negative = "lowres, bad anatomy, blurry, watermark, text, jpeg artifacts, worst quality"

    def encode(i: int) -> float:
        start = time.perf_counter()
        engine.call(
            "encode", lambda ctx: [model.prompt_encoder.encode(f"{text} {i}") for text in (TYPICAL_PROMPT, negative)]
        )
        return time.perf_counter() - start

    encoding = min(encode(i) for i in range(4))  # new texts, so the cache never answers
    params = GenerationParams(prompt=TYPICAL_PROMPT, negative_prompt=negative, steps=steps, width=512, height=512)
    start = time.perf_counter()
    engine.call("job", lambda ctx: Txt2Img(model, params, ctx, RunSettings()).run())
    job = time.perf_counter() - start
    engine.shutdown()
    return encoding / job


def cpu_bf16_vs_fp32_ratio(repeats: int = 3) -> float:
    """Median time of one SD1.5-size UNet step (random weights, 256x256, a CFG batch of 2) in bf16
    divided by the same step in fp32, in one process."""
    import torch
    from diffusers import UNet2DConditionModel

    from modules.paths import MODEL_CONFIGS_DIR

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(MODEL_CONFIGS_DIR / "sd1" / "unet"))
    latents, context = torch.randn(2, 4, 32, 32), torch.randn(2, 77, 768)
    medians = {}
    for dtype in (torch.float32, torch.bfloat16):
        unet.to(dtype)
        x, c = latents.to(dtype), context.to(dtype)
        times = []
        with torch.inference_mode():
            for _ in range(repeats + 1):
                start = time.perf_counter()
                unet(x, 500, encoder_hidden_states=c)
                times.append(time.perf_counter() - start)
        medians[dtype] = statistics.median(times[1:])  # the first call warms up
    return medians[torch.bfloat16] / medians[torch.float32]


def _probe(*args: str) -> float:
    """Run bench/memory_probe.py in a fresh process and return the number it prints last."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "memory_probe.py"), *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.split()[-1]) if out.strip() else 0.0


def _probe_with_checkpoints(action: str, blueprint: str, count: int) -> float:
    """Write `count` random checkpoints of `blueprint` into a fresh data dir, then probe `action` there."""
    with tempfile.TemporaryDirectory() as data:
        folder = Path(data) / "models" / "Stable-diffusion"
        folder.mkdir(parents=True)
        for seed in range(count):
            _probe("write", blueprint, str(seed), str(folder / f"{blueprint}-{seed}.safetensors"))
        return _probe(action, data)


def model_switch_rss_growth() -> float:
    """RSS growth, as a fraction, over 10 switches between two SD1.5-size random checkpoints, counted
    from the point where both have been loaded once."""
    return _probe_with_checkpoints("switch", "sd1", 2)


def peak_rss_mb_demo() -> float:
    """Peak RSS (MB) of a process that loads the demo model and makes one 512x512 image."""
    return _probe_with_checkpoints("generate", "demo", 1)


def peak_rss_mb_sd15() -> float:
    """Peak RSS (MB) of a process that loads an SD1.5-size random checkpoint and makes one 512x512 image."""
    return _probe_with_checkpoints("generate", "sd1", 1)


def merge_peak_rss_ratio() -> float:
    """Peak RSS growth of a process that merges three SD1.5-size random fp16 checkpoints (Add difference,
    streamed tensor by tensor), over the size of one checkpoint file; issue 23 asks for at most 2.5."""
    return _probe_with_checkpoints("merge", "sd1", 3)


def launch_to_page_s() -> float:
    """Seconds from starting app.py to the first HTTP 200 of the page (demo model, fresh data dir)."""
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as data:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--data-dir", data, "--port", str(port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200:
                        return time.perf_counter() - start
                except OSError as error:
                    if proc.poll() is not None:
                        raise RuntimeError("app.py exited before serving the page") from error
                    time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(30)


def prompt_parse_vs_tokenize_ratio(count: int = 300) -> float:
    """Time to parse and schedule a ~300-character prompt with editing at 150 steps, divided by
    the CLIP tokenizer's time on the same text. Each round uses a new text, so no cache helps."""
    from modules.prompt_parser import get_learned_conditioning_prompt_schedules
    from modules.prompting.clip_tokenizer import load_clip_tokenizer

    tokenizer = load_clip_tokenizer()
    texts = [f"{TYPICAL_PROMPT} {i}" for i in range(count)]
    get_learned_conditioning_prompt_schedules(["warm up [a:b:3]"], 150), tokenizer("warm up")
    start = time.perf_counter()
    for text in texts:
        get_learned_conditioning_prompt_schedules([text], 150)
    parse = time.perf_counter() - start
    start = time.perf_counter()
    for text in texts:
        tokenizer(text)
    return parse / (time.perf_counter() - start)


def preview_overhead_ratio(rounds: int = 5) -> float:
    """Extra time a job takes with live previews at the default interval (every 10 steps, Approx
    cheap) while a poller asks for them as the page does, over the time without previews."""
    import threading

    from modules.core.engine import Engine
    from modules.jobs.generation import RunSettings, Txt2Img
    from modules.jobs.generation_params import GenerationParams
    from modules.options import OPTIONS
    from modules.ui.generation_tab import POLL_SECONDS

    engine = Engine()
    model = engine.call("load", lambda ctx: _demo_model())  # torch work on the worker only, as in the app
    every = OPTIONS["show_progress_every_n_steps"].default
    params = GenerationParams(prompt="a lighthouse at dusk", steps=20, width=256, height=256, sampler_name="Euler a")

    def timed(settings: RunSettings) -> float:
        done = threading.Event()

        def poll() -> None:
            while not done.wait(POLL_SECONDS):
                engine.preview()

        poller = threading.Thread(target=poll)
        poller.start()
        start = time.perf_counter()
        engine.call("bench", lambda ctx: Txt2Img(model, params, ctx, settings).run())
        elapsed = time.perf_counter() - start
        done.set()
        poller.join()
        return elapsed

    with_previews, without = RunSettings(preview_every=every), RunSettings(preview_every=0)
    timed(with_previews), timed(without)  # warm-up
    on, off = [], []
    for _ in range(rounds):
        on.append(timed(with_previews))
        off.append(timed(without))
    engine.shutdown()
    return statistics.median(on) / statistics.median(off) - 1


BENCHMARKS = {
    benchmark.__name__: benchmark
    for benchmark in (
        txt2img_overhead_ratio,
        sampler_step_overhead_ms,
        repeat_prompt_ratio,
        text_encoding_share_sd15,
        cpu_bf16_vs_fp32_ratio,
        model_switch_rss_growth,
        launch_to_page_s,
        peak_rss_mb_demo,
        peak_rss_mb_sd15,
        merge_peak_rss_ratio,
        prompt_parse_vs_tokenize_ratio,
        preview_overhead_ratio,
        ray_job_overhead_ratio,
        ray_fanout_speedup_2_replicas,
        hires_checkpoint_repeat_ratio,
        cached_switch_s,
    )
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    args = parser.parse_args()
    from app import quiet_library_logs

    quiet_library_logs()
    for name in args.names or BENCHMARKS:
        print(f"{name}: {BENCHMARKS[name]():.3f}", flush=True)


if __name__ == "__main__":
    main()
