"""The state files survive crashes: a process saving config.json, ui-config.json, styles.csv or the
hash cache in a tight loop is killed with SIGKILL at random moments, and the file is always one
complete version. A broken file found at start is moved aside, defaults are used, and the log and
the page say so (through a real app.py)."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import requests
from app_process import running_app, with_demo_checkpoint
from forked_runs import errors, forked_runs, start

PADDING = "x" * 300_000  # large enough that a torn write would be caught mid-file

# Each saver runs in a child process: it prepares nothing, prints "saving" after its first save, and
# saves forever, alternating between two versions, through the app's own code.
SAVERS = {
    "config.json": """
from modules.options import Options
opts = Options(path)
opts.load()
for i in count():
    opts.set("CLIP_stop_at_last_layers", 1 + i % 2)
    started()
""",
    "ui-config.json": """
import os, shutil
from modules.ui.ui_config import UiConfig
partial = path.with_name("partial.json")
for i in count():
    shutil.copy(partial, path.with_name("partial.tmp"))
    os.replace(path.with_name("partial.tmp"), path)  # an older, smaller version, itself complete
    UiConfig(path)  # completes the file with every default
    started()
""",
    "styles.csv": """
from modules.styles import PromptStyle, StyleDatabase
db = StyleDatabase(path)
for i in count():
    db.save_style(PromptStyle("padded", "ab"[i % 2] * 100_000, "negative"))
    started()
""",
    "cache.json": """
import os
from modules.models.checkpoints import HashCache
cache = HashCache(path)
weights = path.with_name("weights.bin")
for i in count():
    os.utime(weights, (1_000_000 + i, 1_000_000 + i))  # a new mtime makes the cache hash it again
    cache.sha256(weights)
    started()
""",
}
PRELUDE = """
from itertools import count
from pathlib import Path
announced = []
def started():
    if not announced:
        say("saving")
        announced.append(True)
"""
SAVER_MODULES = ("modules.models.checkpoints", "modules.options", "modules.styles", "modules.ui.ui_config")


def prepare(kind: str, path: Path) -> None:
    if kind == "config.json":
        path.write_text(json.dumps({"padding": PADDING}))
    elif kind == "ui-config.json":
        path.with_name("partial.json").write_text(json.dumps({"padding": PADDING}))
    elif kind == "cache.json":
        path.with_name("weights.bin").write_bytes(b"weights" * 1000)
        fake = {f"/models/file-{n}.safetensors": {"mtime": n, "size": n, "sha256": "0" * 64} for n in range(3000)}
        path.write_text(json.dumps({"hashes": fake}))


def check_complete(kind: str, path: Path) -> None:
    """The file is one whole version the saver writes."""
    text = path.read_text(encoding="utf-8")
    if kind == "styles.csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 1 and rows[0]["prompt"] in ("a" * 100_000, "b" * 100_000), text[-200:]
        assert rows[0]["negative_prompt"] == "negative"
        return
    data = json.loads(text)
    if kind == "config.json":
        assert data["padding"] == PADDING and data["CLIP_stop_at_last_layers"] in (1, 2)
    elif kind == "ui-config.json":
        assert data["padding"] == PADDING
        assert len(data) == 1 or "txt2img/Sampling steps/value" in data
    else:
        assert len(data["hashes"]) in (3000, 3001)


@pytest.mark.parametrize("kind", SAVERS)
def test_killed_while_saving_leaves_a_whole_file(kind, tmp_path):
    path = tmp_path / kind
    prepare(kind, path)
    rng = random.Random(kind)
    with forked_runs(*SAVER_MODULES) as runner:  # only the forks are killed: a kill costs no fresh start
        for _ in range(3):
            start(runner, f"{PRELUDE}path = Path({str(path)!r})\n{SAVERS[kind]}")
            lines = [runner.stdout.readline(), runner.stdout.readline()]  # the saver's pid and its "saving"
            if "saving\n" not in lines:
                pytest.fail(f"the saver did not start: {lines} {errors(runner)}")
            saver = int(next(line for line in lines if line != "saving\n"))
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(saver, signal.SIGKILL)
            assert int(runner.stdout.readline()) == -signal.SIGKILL  # it was still saving when killed
            check_complete(kind, path)
    assert not list(tmp_path.glob("*.bad-*"))


@pytest.fixture(scope="module")
def broken_start(tmp_path_factory, demo_checkpoint):

    data = tmp_path_factory.mktemp("broken")
    with_demo_checkpoint(data, demo_checkpoint)
    (data / "config.json").write_text('{"CLIP_stop_at_last_layers": 2, "samples_save": fal')  # cut short
    (data / "ui-config.json").write_bytes(b"\x00\x00\x00\x00")  # as left by a crash on some file systems
    (data / "styles.csv").write_bytes(b"name,prompt\nGolden,\xff\xfe gold\n")
    (data / "cache.json").write_text('{"hashes": {')
    with running_app(data, "--api") as url:
        yield url, data


def test_broken_files_are_moved_aside_at_start(broken_start):
    _, data = broken_start
    for name in ("config.json", "ui-config.json", "styles.csv", "cache.json"):
        aside = list(data.glob(f"{name}.bad-*"))
        assert len(aside) == 1, name
    assert next(iter(data.glob("config.json.bad-*"))).read_text().endswith('"samples_save": fal')
    assert next(iter(data.glob("styles.csv.bad-*"))).read_bytes() == b"name,prompt\nGolden,\xff\xfe gold\n"
    assert "txt2img/Sampling steps/value" in json.loads((data / "ui-config.json").read_text())  # rewritten


def test_the_log_and_the_page_say_so_and_defaults_are_used(broken_start):
    url, data = broken_start
    log = (data / "server.log").read_text()
    config = requests.get(url + "config", timeout=10).json()
    notices = next(c["props"]["value"] for c in config["components"] if c["props"].get("elem_id") == "notices")
    for name in ("config.json", "ui-config.json", "styles.csv"):
        aside = next(iter(data.glob(f"{name}.bad-*"))).name
        assert f"it was moved to {aside}" in log, name
        assert name in notices and aside in notices, notices
    assert "cache.json could not be read" in log
    options = requests.get(url + "sdapi/v1/options", timeout=10).json()
    assert options["CLIP_stop_at_last_layers"] == 1  # the default, not the broken file's 2
    assert requests.get(url + "sdapi/v1/prompt-styles", timeout=10).json() == []
