import json

from modules.ui.ui_config import UiConfig, default_entries


def test_defaults_use_a1111_keys():
    entries = default_entries()
    assert entries["txt2img/Sampling steps/value"] == 20
    assert entries["txt2img/Sampling steps/minimum"] == 1
    assert entries["txt2img/Width/step"] == 8
    assert entries["txt2img/CFG Scale/maximum"] == 30.0
    assert entries["txt2img/Prompt/visible"] is True


def test_written_on_first_start_and_edits_win(tmp_path):
    path = tmp_path / "ui-config.json"
    UiConfig(path)
    assert json.loads(path.read_text()) == default_entries()
    data = json.loads(path.read_text())
    data["txt2img/Sampling steps/maximum"] = 250
    path.write_text(json.dumps(data))
    config = UiConfig(path)
    assert config.control("txt2img", "Sampling steps")["maximum"] == 250


def test_committed_copy_matches_the_defaults():
    from modules.paths import REPO_ROOT

    assert json.loads((REPO_ROOT / "ui-config.json").read_text()) == default_entries()


def test_unreadable_file_is_kept_aside_and_defaults_are_used(tmp_path):
    path = tmp_path / "ui-config.json"
    path.write_text("[1, 2")
    config = UiConfig(path)
    assert config.control("txt2img", "Width")["value"] == 512
    assert "moved to ui-config.json.bad-" in config.notice
    assert [p.read_text() for p in tmp_path.glob("ui-config.json.bad-*")] == ["[1, 2"]
