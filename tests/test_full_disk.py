"""A full disk under a running server (--nowebui on a real tmpfs data dir): saving settings answers 507 naming
the file and changes nothing, in memory or on disk; a generation still answers with its images."""

from __future__ import annotations

import base64
import io
import json

import requests
from app_process import running_app
from PIL import Image
from small_disk import fill, mounted_small_disk


def test_a_full_disk_is_named_and_loses_nothing(tmp_path, demo_checkpoint):
    with mounted_small_disk(tmp_path / "data", size=4 * 1024 * 1024) as data:
        with running_app(
            data, "--nowebui", "--ckpt-dir", str(demo_checkpoint.parent), model_name=demo_checkpoint.name
        ) as url:
            api = url + "sdapi/v1/"
            (data / "config.json").write_text("{}")
            fill(data)
            answer = requests.post(api + "options", json={"CLIP_stop_at_last_layers": 2}, timeout=30)
            assert answer.status_code == 507, answer.text
            assert f"No space left on device while saving {data / 'config.json'}" in answer.json()["detail"]
            assert requests.get(api + "options", timeout=10).json()["CLIP_stop_at_last_layers"] == 1
            assert json.loads((data / "config.json").read_text()) == {}
            job = {"prompt": "a boat", "steps": 1, "width": 128, "height": 128, "save_images": True}
            answer = requests.post(api + "txt2img", json=job, timeout=120)
            assert answer.status_code == 200, answer.text
            image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
            assert image.size == (128, 128)
            warnings = json.loads(answer.json()["info"])["warnings"]
            assert any(w.startswith("No space left on device while saving ") for w in warnings), warnings
