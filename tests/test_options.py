import json

import pytest

from modules.options import Options


def test_defaults_set_and_reload(tmp_path):
    path = tmp_path / "config.json"
    opts = Options(path)
    assert opts.CLIP_stop_at_last_layers == 1
    opts.set("CLIP_stop_at_last_layers", 2)
    again = Options(path)
    again.load()
    assert again.CLIP_stop_at_last_layers == 2
    assert json.loads(path.read_text())["CLIP_stop_at_last_layers"] == 2


def test_out_of_range_and_unknown_values_are_refused(tmp_path):
    opts = Options(tmp_path / "config.json")
    with pytest.raises(ValueError, match="at most 12"):
        opts.set("CLIP_stop_at_last_layers", 13)
    with pytest.raises(ValueError, match="one of CPU, GPU"):
        opts.set("randn_source", "TPU")
    with pytest.raises(KeyError):
        opts.set("no_such_setting", 1)
    assert opts.CLIP_stop_at_last_layers == 1


def test_broken_config_is_moved_aside(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{ not json")
    opts = Options(path)
    opts.load()
    assert opts.CLIP_stop_at_last_layers == 1
    assert opts.load_notice and "moved" in opts.load_notice
    assert not path.exists()
    assert len(list(tmp_path.glob("config.json.bad-*"))) == 1


def test_save_is_atomic_no_temp_files_left(tmp_path):
    opts = Options(tmp_path / "config.json")
    for value in range(1, 5):
        opts.set("CLIP_stop_at_last_layers", value)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
