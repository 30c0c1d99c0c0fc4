"""Memory measurements that need a fresh process each; bench/run.py runs them and reads the last number.

memory_probe.py write BLUEPRINT SEED PATH   write a random checkpoint (fp16) of a shipped blueprint
memory_probe.py generate DATA_DIR           load its checkpoint, make one 512x512 image, print peak RSS in MB
memory_probe.py switch DATA_DIR             switch between its two checkpoints, print the RSS growth fraction
memory_probe.py merge DATA_DIR              merge its three checkpoints (Add difference), print the peak RSS
                                            growth over the size of one checkpoint file
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SWITCHES = 10


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set size now (VmRSS), or its peak (VmHWM), in MB.

    The peak is read here rather than from getrusage: Linux carries ru_maxrss over from the parent
    across fork and exec, so a probe started by a large benchmark process would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def manager(data_dir: str):
    """A ModelManager over DATA_DIR with this machine's default device and precision, as app.py makes it."""
    import torch

    from modules.models.model_manager import ModelManager
    from modules.paths import DataPaths
    from modules.sd_models import pick_dtype

    cpu = torch.device("cpu")
    return ModelManager(DataPaths.create(data_dir), cpu, pick_dtype(cpu, no_half=False))


def generate(data_dir: str) -> float:
    """Peak RSS in MB of loading the only checkpoint and making one 512x512 image (2 steps: the peak
    does not depend on the step count)."""
    from modules.core.engine import Engine
    from modules.jobs.generation import RunSettings, Txt2Img
    from modules.jobs.generation_params import GenerationParams

    models = manager(data_dir)
    model = models.load(models.checkpoints[0].name)
    params = GenerationParams(prompt="a lighthouse at dusk", steps=2, width=512, height=512, seed=1)
    engine = Engine()
    engine.call("probe", lambda ctx: Txt2Img(model, params, ctx, RunSettings()).run())
    engine.shutdown()
    return rss_mb("VmHWM")


def switch(data_dir: str) -> float:
    """RSS growth fraction over SWITCHES switches, counted from when both checkpoints were loaded once."""
    models = manager(data_dir)
    names = [info.name for info in models.checkpoints]
    for name in (*names, names[0]):
        models.load(name)
    settled = rss_mb()
    for i in range(SWITCHES):
        models.load(names[(i + 1) % 2])
    return (rss_mb() - settled) / settled


def merge(data_dir: str) -> float:
    """Peak RSS growth of an Add difference merge of the three checkpoints (from the RSS just before it, the
    libraries imported), over the size of one checkpoint file."""
    from modules.models.checkpoint_merger import ADD_DIFFERENCE, MergeSettings, merge_checkpoints
    from modules.sd_vae import VaeLibrary

    models = manager(data_dir)
    vaes = VaeLibrary(models.paths, models.hashes)
    infos = models.checkpoints
    size_mb = infos[0].path.stat().st_size / 2**20
    before = rss_mb()
    merge_checkpoints(
        MergeSettings(*(info.name for info in infos), interpolation=ADD_DIFFERENCE, multiplier=0.5), models, vaes
    )
    return (rss_mb("VmHWM") - before) / size_mb


def main() -> None:
    action, *args = sys.argv[1:]
    if action == "write":
        import torch

        from modules.models.demo_model import write_demo_checkpoint

        blueprint, seed, path = args
        write_demo_checkpoint(Path(path), int(seed), blueprint, torch.float16)
        return
    print({"generate": generate, "switch": switch, "merge": merge}[action](*args))


if __name__ == "__main__":
    main()
