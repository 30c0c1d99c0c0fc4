import subprocess
import sys
from pathlib import Path

import pytest

from modules.cmd_args import DEFAULT_API_PORT, DEFAULT_PORT, parse_args, parse_credentials

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--listen", "--port", "--api", "--nowebui", "--ckpt", "--ckpt-dir", "--data-dir", "--device",
         "--no-half", "--gradio-auth", "--api-auth", "--download-face-models"]


def test_help_lists_every_a1111_flag():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
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


def test_device_choices_are_checked():
    assert parse_args(["--device", "cpu"]).device == "cpu"
    with pytest.raises(SystemExit):
        parse_args(["--device", "tpu"])


def test_credentials():
    assert parse_credentials("a:b, c:d:e") == [("a", "b"), ("c", "d:e")]
    assert parse_credentials(None) == []
    with pytest.raises(ValueError, match="user:password"):
        parse_credentials("nopassword")
