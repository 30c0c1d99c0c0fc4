"""Requests that passed every limit before issue 18 and could exhaust the server's memory, sent to a real
`app.py --nowebui` (demo model): each must now be refused (422) at once. Prints `name: value` lines: the
HTTP status, the seconds until the answer, and the server's memory growth in MB (its peak RSS during the
request, reset before it through /proc/<pid>/clear_refs, over its RSS before). Also times the prompt-chunk
count itself (Lark parse + tokenizing) on 20,000-character prompts, in process.

    python bench/limits.py
"""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL = {"prompt": "a red house", "steps": 1, "width": 64, "height": 64, "seed": 1, "sampler_name": "Euler"}
BILLION = "1-1000000000 [1000000000]"


def _png(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def attacks() -> dict[str, tuple[str, dict]]:
    """name -> (route, body) of each request the security review found."""
    from PIL import Image

    huge = _png(Image.linear_gradient("L").resize((9000, 9000)))  # 81 million pixels, a small file
    small = _png(Image.new("RGB", (64, 64), "teal"))
    return {
        "and_break_prompt": ("txt2img", {**SMALL, "prompt": "BREAK " * 300 + "a" + " AND a" * 300}),
        "prompt_matrix_30_parts": (
            "txt2img",
            {**SMALL, "script_name": "prompt matrix", "prompt": "a|" + "|".join(f"part {n}" for n in range(30))},
        ),
        "xyz_billion_value_range": ("txt2img", {**SMALL, "script_name": "x/y/z plot", "script_args": [2, BILLION]}),
        "loopback_100000_loops": (
            "img2img",
            {**SMALL, "init_images": [small], "script_name": "loopback", "script_args": [100000, 0.5, "Linear"]},
        ),
        "four_9000px_pngs": ("img2img", {**SMALL, "init_images": [huge] * 4}),
        "extras_81mp_no_upscaler": ("extra-single-image", {"image": huge}),
    }


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(data: str, port: int, log) -> subprocess.Popen:
    """app.py serving the API alone; returns once its model is loaded."""
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--nowebui", "--data-dir", data, "--port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 300
    while "Loaded " not in Path(log.name).read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"app.py did not load its model:\n{Path(log.name).read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def refused_requests() -> dict[str, float]:
    """Each attack's status, answer time (s) and the server's memory growth (MB, peak during the request)."""
    import requests

    results: dict[str, float] = {}
    bodies = attacks()
    with tempfile.TemporaryDirectory() as data, open(Path(data) / "server.log", "w") as log:
        port = _free_port()
        proc = _serve(data, port, log)
        try:
            url = f"http://127.0.0.1:{port}/sdapi/v1"
            requests.post(f"{url}/txt2img", json=SMALL, timeout=300).raise_for_status()  # warm up
            for name, (route, body) in bodies.items():
                before = _status_kb(proc.pid, "VmRSS")
                Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # VmHWM restarts from the RSS now
                start = time.perf_counter()
                status = requests.post(f"{url}/{route}", json=body, timeout=600).status_code
                results[f"{name}_status"] = status
                results[f"{name}_s"] = time.perf_counter() - start
                results[f"{name}_peak_growth_mb"] = (_status_kb(proc.pid, "VmHWM") - before) / 1024
        finally:
            proc.terminate()
            proc.wait(30)
    return results


def prompt_chunk_count_s() -> dict[str, float]:
    """Seconds Limits.check_prompt_chunks takes (parse, schedule and tokenize; refusing or not) on
    20,000-character prompts with the demo model's tokenizer, each a new text so no cache helps."""
    import random
    import string

    from bench.run import _demo_model
    from modules.core.limits import Limits
    from modules.errors import UserError

    model = _demo_model()
    rng = random.Random(1)

    def words(count: int) -> str:
        return " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(count))

    prompts = {
        "plain_words": words(4000)[:20_000],  # ~180 chunks
        "edits_every_step": " ".join(f"[{words(1)}:{words(1)}:{n % 150}]" for n in range(2000))[:20_000],
        # 91 distinct texts of 19,000 characters, mostly spaces: one chunk each, so all are tokenized and the
        # prompt is allowed (the slowest allowed case found); before the lexer took runs of spaces whole, 4 s each
        "spaced_edits": " " * 19_000 + "".join(f"[a:b:{n}]" for n in range(1, 91)),
        "nested_emphasis": "(" * 9_000 + "a" + ")" * 9_000,
    }
    times = {}
    for name, prompt in prompts.items():
        limits = Limits(max_prompt_length=len(prompt))
        start = time.perf_counter()
        try:
            limits.check_prompt_chunks([prompt], [""], 150, model.prompt_encoder.chunk_count)
        except UserError:
            pass
        times[f"prompt_chunk_count_{name}_s"] = time.perf_counter() - start
    return times


def main() -> None:
    from app import quiet_library_logs

    quiet_library_logs()
    for name, value in {**prompt_chunk_count_s(), **refused_requests()}.items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}", flush=True)


if __name__ == "__main__":
    main()
