"""The server folders policy: any folder on a local server; with --listen or --share none, unless
--allow-server-paths, and then only inside the data dir (or --ckpt-dir); none with --hide-ui-dir-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from modules.cmd_args import parse_args
from modules.core.server_paths import ServerPaths
from modules.errors import UserError
from modules.paths import DataPaths


def policy(tmp_path, *flags: str) -> ServerPaths:
    paths = DataPaths(tmp_path / "data", extra_ckpt_dir=tmp_path / "ckpts")
    return ServerPaths.from_args(parse_args(list(flags)), paths)


def test_a_local_server_takes_any_folder(tmp_path):
    local = policy(tmp_path)
    assert local.folder("/srv/pictures", "Input directory") == Path("/srv/pictures")
    assert local.folder(" in ", "Input directory") == tmp_path / "data" / "in"


@pytest.mark.parametrize("flag", ["--listen", "--share"])
def test_a_reachable_server_takes_none_without_the_flag(tmp_path, flag):
    with pytest.raises(UserError, match=r"Input directory: .*--allow-server-paths"):
        policy(tmp_path, flag).folder("inputs", "Input directory")


def test_with_the_flag_only_folders_inside_the_data_dir(tmp_path):
    allowed = policy(tmp_path, "--listen", "--allow-server-paths")
    (tmp_path / "data" / "outputs").mkdir(parents=True)
    (tmp_path / "data" / "outputs" / "escape").symlink_to(tmp_path)
    assert allowed.folder("outputs/batch", "Output directory") == tmp_path / "data" / "outputs" / "batch"
    assert allowed.folder(str(tmp_path / "ckpts" / "x"), "Input directory") == tmp_path / "ckpts" / "x"
    for outside in ("/etc", "../secrets", "outputs/../../secrets", "outputs/escape/secrets", "~"):
        with pytest.raises(UserError, match="outside the data dir"):
            allowed.folder(outside, "Output directory")


def test_hide_ui_dir_config_takes_none_even_locally(tmp_path):
    with pytest.raises(UserError, match="--hide-ui-dir-config"):
        policy(tmp_path, "--hide-ui-dir-config").folder("inputs", "Input directory")
