import json

import pytest
from small_disk import fill

from modules.errors import DiskFull
from modules.options import OPTIONS, OptionInfo, Options


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
    with pytest.raises(ValueError, match="one of GPU, CPU, NV"):
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


@pytest.mark.parametrize(
    "key, value, reason",
    [
        ("outdir_txt2img_samples", None, "must be text"),
        ("s_noise", "nan", "finite number"),
        ("s_noise", float("nan"), "finite number"),
        ("CLIP_stop_at_last_layers", "2", "finite number"),
        ("CLIP_stop_at_last_layers", 2.5, "whole number"),
        ("CLIP_stop_at_last_layers", True, "finite number"),
        ("grid_save", "yes", "true or false"),
        ("quicksettings_list", 5, "list of text"),
        ("disabled_extensions", [1], "list of text"),
        ("sd_model_checkpoint", 3, "text or null"),
        ("extensions_index_url", "file:///etc/passwd", "http:// or https://"),
    ],
)
def test_values_of_the_wrong_type_are_refused(tmp_path, key, value, reason):
    opts = Options(tmp_path / "config.json")
    before = getattr(opts, key)
    with pytest.raises(ValueError, match=reason):
        opts.set(key, value)
    assert getattr(opts, key) == before and not (tmp_path / "config.json").exists()


def test_whole_floats_stand_for_ints(tmp_path):
    opts = Options(tmp_path / "config.json")
    opts.set("CLIP_stop_at_last_layers", 2.0)
    assert opts.CLIP_stop_at_last_layers == 2 and isinstance(opts.CLIP_stop_at_last_layers, int)


def test_a_bad_value_in_config_json_moves_it_aside_and_keeps_the_others(tmp_path):
    from modules.ui.quicksettings import row_keys

    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "quicksettings_list": 5,
                "s_noise": "nan",
                "CLIP_stop_at_last_layers": 2,
                "from_an_extension": {"kept": True},
            }
        )
    )
    opts = Options(path)
    opts.load()
    assert "quicksettings_list" in opts.load_notice and "sigma noise" in opts.load_notice
    assert "moved to config.json.bad-" in opts.load_notice
    assert opts.quicksettings_list == OPTIONS["quicksettings_list"].default and opts.s_noise == 1.0
    assert row_keys(opts) == ["sd_vae", "CLIP_stop_at_last_layers"]  # the page builds (5 crashed it)
    assert opts.CLIP_stop_at_last_layers == 2
    assert [p.name.split("-")[0] for p in tmp_path.glob("config.json.bad-*")] == ["config.json.bad"]
    saved = json.loads(path.read_text())
    assert saved["CLIP_stop_at_last_layers"] == 2 and saved["from_an_extension"] == {"kept": True}
    assert saved["s_noise"] == 1.0


def test_a_value_an_extension_declares_later_is_checked_then(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"ext_steps": "many", "ext_flag": True}))
    opts = Options(path)
    opts.load()
    opts.add_option("ext_steps", OptionInfo(4, "Extension steps"))
    opts.add_option("ext_flag", OptionInfo(False, "Extension flag"))
    assert opts.ext_steps == 4 and opts.ext_flag is True


def test_a_failed_save_changes_nothing_in_memory(small_disk):
    path = small_disk / "config.json"
    opts = Options(path)
    opts.set("CLIP_stop_at_last_layers", 2)
    saved = path.read_text()
    fill(small_disk)
    with pytest.raises(DiskFull, match=f"No space left on device while saving {path}"):
        opts.set_many({"CLIP_stop_at_last_layers": 3, "samples_filename_pattern": "[seed]-" + "x" * 4000})
    assert opts.CLIP_stop_at_last_layers == 2 and path.read_text() == saved
    assert [p.name for p in small_disk.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_ray_replica_cpus_is_a_whole_number_that_waits_for_a_restart(tmp_path):
    info = OPTIONS["ray_replica_num_cpus"]
    assert (info.default, info.section, info.applies) == (1, "System", "restart")
    opts = Options(tmp_path / "config.json")
    opts.set("ray_replica_num_cpus", 4)
    assert opts.ray_replica_num_cpus == 4
    with pytest.raises(ValueError, match="at least 1"):
        opts.set("ray_replica_num_cpus", 0)
