"""Import seams: the settings load no feature (no torch), the UI modules of a former cycle import alone, and the
Ray replicas load no Gradio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(module: str) -> list[str]:
    """The modules a fresh interpreter imports for `import <module>`, from -X importtime's report."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]


def test_options_import_no_torch_and_no_feature():
    names = imported_modules("modules.options")
    assert "modules.options" in names
    assert [name for name in names if name == "torch" or name.startswith("torch.")] == []
    assert {
        "modules.face_restoration",
        "modules.jobs.previews",
        "modules.images",
        "modules.interrogate",
        "modules.jobs.generation_params",
        "modules.extensions",
    }.isdisjoint(names)


def test_send_buttons_and_img2img_import_on_their_own():
    # img2img's tab and the send buttons under the generation galleries once imported each other
    runs = [
        subprocess.Popen([sys.executable, "-c", f"import {module}"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for module in ("modules.ui.send_buttons", "modules.ui.img2img")
    ]
    for run in runs:
        _, errors = run.communicate(timeout=180)
        assert run.returncode == 0, errors


def test_ray_replicas_leave_gradio_out():
    # a replica runs jobs only: Gradio (about 2 s of a replica's start here) comes with the page or a script's load
    names = imported_modules("modules.ray_backend.replica")
    assert "modules.ray_backend.replica" in names and "torch" in names
    assert [name for name in names if name == "gradio" or name.startswith("gradio.")] == []
