"""Import seams: the settings load no feature (no torch), the UI modules of a former cycle import alone, and the
Ray replicas load no Gradio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from forked_runs import errors, forked_runs, start

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
    # img2img's tab and the send buttons under the generation galleries once imported each other. Each imports in a
    # fork made once the third-party packages are in: they cost most of an import, and no cycle among the
    # project's modules can hide behind them.
    nothing_of_ours = "import sys\nassert not any(n == 'modules' or n.startswith('modules.') for n in sys.modules)"
    with forked_runs("torch", "gradio", "diffusers", "transformers") as runner:
        for code in (nothing_of_ours, "import modules.ui.send_buttons", "import modules.ui.img2img"):
            start(runner, code)
            runner.stdout.readline()  # its pid
            if int(runner.stdout.readline()) != 0:
                pytest.fail(errors(runner))


def test_ray_replicas_leave_gradio_out():
    # a replica runs jobs only: Gradio (about 2 s of a replica's start here) comes with the page or a script's load
    names = imported_modules("modules.ray_backend.replica")
    assert "modules.ray_backend.replica" in names and "torch" in names
    assert [name for name in names if name == "gradio" or name.startswith("gradio.")] == []
