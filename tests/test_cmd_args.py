import subprocess
import sys
from pathlib import Path

import pytest

from modules.cmd_args import DEFAULT_API_PORT, DEFAULT_PORT, ReplicaRange, parse_args, parse_credentials

ROOT = Path(__file__).resolve().parent.parent
FLAGS = [
    "--listen",
    "--port",
    "--api",
    "--nowebui",
    "--ckpt",
    "--ckpt-dir",
    "--data-dir",
    "--device",
    "--no-half",
    "--gradio-auth",
    "--api-auth",
    "--download-face-models",
    "--share",
    "--enable-insecure-extension-access",
    "--skip-install",
]


def test_help_lists_every_a1111_flag():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for flag in FLAGS:
        assert flag in out.stdout, flag


def test_port_defaults_follow_nowebui():
    assert parse_args([]).port == DEFAULT_PORT == 7860
    assert parse_args(["--nowebui"]).port == DEFAULT_API_PORT == 7861
    assert parse_args(["--port", "9000", "--nowebui"]).port == 9000


def test_download_face_models_is_off_unless_asked():
    assert parse_args([]).download_face_models is False
    assert parse_args(["--download-face-models"]).download_face_models is True


def test_extension_flags_are_off_unless_given():
    args = parse_args([])
    assert (args.share, args.enable_insecure_extension_access, args.skip_install) == (False, False, False)
    args = parse_args(["--share", "--enable-insecure-extension-access", "--skip-install"])
    assert (args.share, args.enable_insecure_extension_access, args.skip_install) == (True, True, True)


def test_preload_hook_adds_flags_before_parsing_and_sees_the_data_dir():
    seen = []

    def preload(parser, data_dir):
        seen.append(data_dir)
        parser.add_argument("--from-extension", type=int)

    assert parse_args(["--from-extension", "3", "--data-dir", "d"], preload=preload).from_extension == 3
    assert parse_args([], preload=preload).from_extension is None
    assert seen == ["d", None]
    with pytest.raises(SystemExit):
        parse_args(["--from-extension", "3"])  # without the hook the flag is unknown


def test_device_choices_are_checked():
    assert parse_args(["--device", "cpu"]).device == "cpu"
    with pytest.raises(SystemExit):
        parse_args(["--device", "tpu"])


def test_credentials():
    assert parse_credentials("a:b, c:d:e") == [("a", "b"), ("c", "d:e")]
    assert parse_credentials(None) == []
    with pytest.raises(ValueError, match="user:password"):
        parse_credentials("nopassword")


def test_ray_flags_default_to_in_process():
    args = parse_args([])
    assert (args.ray_address, args.ray_replicas, args.ray_models_per_replica) == (None, None, 1)


def test_ray_flags_parse_to_address_range_and_count():
    args = parse_args(["--ray-address", "10.0.0.5:6379", "--ray-replicas", "1:4", "--ray-models-per-replica", "2"])
    assert args.ray_address == "10.0.0.5:6379"
    assert args.ray_replicas == ReplicaRange(1, 4) and args.ray_replicas.max == 4
    assert args.ray_models_per_replica == 2
    assert parse_args(["--ray-address", "local", "--ray-replicas", "3"]).ray_replicas == (3, 3)
    assert parse_args(["--ray-address", "auto", "--ray-replicas", "0:2"]).ray_replicas == (0, 2)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--ray-address", "local", "--ray-replicas", "4:2"], "MIN <= MAX"),
        (["--ray-address", "local", "--ray-replicas", "0:0"], "MAX >= 1"),
        (["--ray-address", "local", "--ray-replicas", "two"], "is not MIN:MAX"),
        (["--ray-address", "local", "--ray-replicas", "1:"], "is not MIN:MAX"),
        (["--ray-address", "local", "--ray-models-per-replica", "0"], "at least 1"),
        (["--ray-address", "cluster"], "is not local, auto or host:port"),
        (["--ray-address", "head:99999"], "is not local, auto or host:port"),
        (["--ray-replicas", "1:2"], "need --ray-address"),
        (["--ray-models-per-replica", "2"], "need --ray-address"),
    ],
)
def test_bad_ray_flags_are_refused_with_a_reason(flags, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(flags)
    assert message in capsys.readouterr().err
