"""Save and Zip under the gallery (the selected image or all, log.csv with A1111's columns, a zip of the files), and
📂: opened with the system's opener on a local server, named only when other machines can connect."""

import csv
import os
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from modules import shared
from modules.core.server_paths import ServerPaths
from modules.jobs.generation import GenerationResult
from modules.jobs.generation_params import GenerationParams
from modules.jobs.saved_images import LOG_COLUMNS, save
from modules.options import Options
from modules.ui.output_panel import open_folder, seed_of, subseed_of

TEXT = "a {}\nNegative prompt: fog\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: {}, Size: 64x64"


@pytest.fixture
def opts(tmp_path, monkeypatch):
    options = Options(tmp_path / "config.json")
    monkeypatch.setattr(shared, "opts", options, raising=False)  # images.save_image reads A1111's shared.opts
    return options


def result_with_grid() -> GenerationResult:
    images = [
        Image.new("RGB", (128, 64), "white"),
        Image.new("RGB", (64, 64), "red"),
        Image.new("RGB", (64, 64), "blue"),
    ]
    texts = [TEXT.format("cat", 5), TEXT.format("cat", 5), TEXT.format("dog", 6)]
    return GenerationResult(
        GenerationParams(
            prompt="a cat", negative_prompt="fog", seed=5, steps=3, width=64, height=64, sampler_name="Euler"
        ),
        images=images,
        infotexts=texts,
        seeds=[5, 5, 6],
        index_of_first_image=1,
    )


def test_save_writes_the_selected_image_with_its_infotext_and_a_log_row(opts, tmp_path):
    folder = tmp_path / "log" / "images"
    [path] = save(result_with_grid(), 2, opts, folder)
    assert path.parent == folder and Image.open(path).info["parameters"] == TEXT.format("dog", 6)
    assert path.name.startswith("00000-6-a dog")
    save(result_with_grid(), 1, opts, folder)
    rows = list(csv.reader((folder / "log.csv").open(encoding="utf8")))
    assert rows[0] == list(LOG_COLUMNS) and len(rows) == 3
    assert rows[1] == ["a cat", "5", "64", "64", "Euler", "7.0", "3", path.name, "fog"]


def test_save_writes_all_when_the_grid_is_selected_or_the_setting_says_so(opts, tmp_path):
    assert len(save(result_with_grid(), 0, opts, tmp_path)) == 3
    opts.set_many({"save_selected_only": False, "save_write_log_csv": False})
    assert len(save(result_with_grid(), 2, opts, tmp_path / "all")) == 3
    assert not (tmp_path / "all" / "log.csv").exists()


def test_zip_packs_the_saved_files_and_comes_first(opts, tmp_path):
    archive, *files = save(result_with_grid(), 0, opts, tmp_path, make_zip=True)
    assert archive.suffix == ".zip" and archive.name.endswith("_5-6.zip")
    assert sorted(zipfile.ZipFile(archive).namelist()) == sorted(f.name for f in files)


def test_reused_seed_is_the_selected_images():
    result = result_with_grid()
    assert [seed_of(result, i) for i in (0, 1, 2, 7, None)] == [5, 5, 6, 5, 5] and seed_of(None, 0) == -1


def test_reused_variation_seed_is_the_selected_images_else_its_seed():
    result = result_with_grid()
    result.infotexts[2] += ", Variation seed: 77, Variation seed strength: 0.3"
    assert [subseed_of(result, i) for i in (0, 1, 2, None)] == [5, 5, 77, 5] and subseed_of(None, 0) == -1


def opener_on_path(tmp_path, monkeypatch) -> Path:
    """A real xdg-open/open on PATH that writes the folder it was asked to open."""
    bin_dir, record = tmp_path / "bin", tmp_path / "opened.txt"
    bin_dir.mkdir()
    for name in ("xdg-open", "open"):
        script = bin_dir / name
        # written aside, then renamed: the test waits for the file and must not find it half written
        script.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > {record}.part && mv {record}.part {record}\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return record


def policy(**flags) -> ServerPaths:
    args = SimpleNamespace(
        **{"listen": False, "share": False, "allow_server_paths": False, "hide_ui_dir_config": False, **flags}
    )
    return ServerPaths.from_args(args, SimpleNamespace(root=Path("/"), extra_ckpt_dir=None))


def wait_for_file(path: Path) -> str:
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.read_text()


def test_open_folder_opens_it_on_a_local_server_and_only_names_it_otherwise(tmp_path, monkeypatch):
    record = opener_on_path(tmp_path, monkeypatch)
    assert open_folder(tmp_path, policy()) == f"Opened {tmp_path}"
    assert wait_for_file(record) == str(tmp_path)
    record.unlink()
    for flags in ({"listen": True}, {"share": True}):
        assert open_folder(tmp_path, policy(**flags)) == f"Images are saved on the server, in {tmp_path}"
    assert open_folder(tmp_path, policy(hide_ui_dir_config=True)) == ""
    assert "does not exist yet" in open_folder(tmp_path / "missing", policy())
    assert not record.exists()
