"""Saving files: the process umask decides their permissions, and a full disk is named with the file."""

from __future__ import annotations

import os
import stat

import pytest
from small_disk import fill

from modules.core.atomic_files import process_umask, write_json_atomic, write_new
from modules.errors import DiskFull


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_the_umask_is_read_without_changing_it(umask_027):
    assert process_umask() == 0o027
    assert process_umask() == 0o027


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_saved_files_follow_the_umask(tmp_path, mask, mode):
    from PIL import Image

    from modules.images import FileNaming
    from modules.jobs.file_names import NameFields

    previous = os.umask(mask)
    try:
        write_json_atomic(tmp_path / "config.json", {"a": 1})
        saved = write_new(tmp_path, ["image.png"], lambda handle: handle.write(b"png"))
        image = FileNaming().save(Image.new("RGB", (8, 8)), tmp_path / "outputs", NameFields(seed=1), "a cat")
        plain = tmp_path / "plain.txt"
        plain.write_text("as open() makes it")
    finally:
        os.umask(previous)
    for path in (tmp_path / "config.json", saved, image):
        assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == mode, path


def test_a_full_disk_names_the_file_and_leaves_no_temporary_file(small_disk):
    write_json_atomic(small_disk / "config.json", {"kept": True})
    fill(small_disk)
    with pytest.raises(DiskFull, match=f"No space left on device while saving {small_disk / 'config.json'}"):
        write_json_atomic(small_disk / "config.json", {"big": "x" * 8192})
    with pytest.raises(DiskFull, match=r"while saving .*00001.png"):
        write_new(small_disk, ["00001.png"], lambda handle: handle.write(b"\0" * 8192))
    assert sorted(p.name for p in small_disk.iterdir()) == ["config.json", "filler"]
    assert (small_disk / "config.json").read_text().strip() == '{\n    "kept": true\n}'


def test_a_generation_on_a_full_disk_still_answers_with_its_images(engine, demo_model, small_disk):
    from modules.jobs.generation import RunSettings, Txt2Img
    from modules.jobs.generation_params import GenerationParams

    fill(small_disk)
    params = GenerationParams(prompt="a boat", steps=2, width=128, height=128, seed=3, batch_size=2)
    settings = RunSettings(save_dir=small_disk / "outputs")
    result = engine.call("full", lambda ctx: Txt2Img(demo_model, params, ctx, settings).run())
    assert len(result.images) == 2 and result.paths == []
    assert len(result.warnings) == 2  # one for each image's file
    assert all(warning.startswith("No space left on device while saving ") for warning in result.warnings)
