"""The real app with --download-face-models, fetching the face model files from a local server, then the
Extras tab's "extras" and Download endpoints driven with gradio_client."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import torch
from app_process import running_app
from file_server import serving
from model_weights import gfpgan_files, tiny_esrgan
from PIL import Image, PngImagePlugin
from tiny_models import write_tiny_checkpoint

from modules.core.file_hashes import sha256_of_file
from modules.extras import ExtrasParams
from modules.face_restoration import CODEFORMER_WEIGHTS, DETECTION_WEIGHTS, GFPGAN_WEIGHTS, PARSING_WEIGHTS
from modules.ui.extras import FACE_MODELS_READY

CODEFORMER_BODY = b"a stand-in for the CodeFormer weights" * 1000
PARAMETERS = "an astronaut\nSteps: 20, Sampler: Euler, Seed: 5"

# Runs app.main with the release URLs pointed at the test's server; argv: urls (JSON), then app flags. The fork it
# runs in has imported modules.face_restoration already; the app reads these names from it when it uses them.
LAUNCHER = """
import json, sys
import modules.face_restoration as faces
from modules.models.model_download import RemoteFile
urls = json.loads(sys.argv[1])
for variable, (url, sha256) in urls.items():
    setattr(faces, variable, RemoteFile(getattr(faces, variable).name, url, sha256))
faces.FACE_MODEL_FILES = (faces.GFPGAN_WEIGHTS, faces.DETECTION_WEIGHTS, faces.PARSING_WEIGHTS)
import app
app.main(sys.argv[2:])
"""


@pytest.fixture(scope="module")
def release(weights_store):
    """The GFPGAN files (real architectures, random weights, a detector that finds one face) on 127.0.0.1.
    CodeFormer's file is served tampered until a test puts the right one in place."""
    files: dict[str, Path | bytes] = {"/codeformer.pth": b"tampered"}
    with serving(files) as base:
        urls = {
            "CODEFORMER_WEIGHTS": (f"{base}/codeformer.pth", hashlib.sha256(CODEFORMER_BODY).hexdigest()),
            "files": files,
        }
        shared = gfpgan_files(weights_store, finds_faces=True)
        for variable, remote in (
            ("GFPGAN_WEIGHTS", GFPGAN_WEIGHTS),
            ("DETECTION_WEIGHTS", DETECTION_WEIGHTS),
            ("PARSING_WEIGHTS", PARSING_WEIGHTS),
        ):
            files[f"/{remote.name}"] = shared[remote.name]
            urls[variable] = (f"{base}/{remote.name}", sha256_of_file(shared[remote.name]))
        yield urls


@pytest.fixture(scope="module")
def server(tmp_path_factory, release):
    data = tmp_path_factory.mktemp("data")
    write_tiny_checkpoint("sd1", data / "models" / "Stable-diffusion" / "tiny.safetensors", seed=7)
    (data / "models" / "ESRGAN").mkdir(parents=True)
    torch.save(tiny_esrgan(), data / "models" / "ESRGAN" / "4x-tiny.pth")
    torch.save({"encoder.weight": torch.randn(8, 8)}, data / "models" / "ESRGAN" / "not-an-upscaler.pth")
    urls = {key: value for key, value in release.items() if key != "files"}
    launcher = tmp_path_factory.mktemp("launcher") / "launcher.py"
    launcher.write_text(LAUNCHER)
    with running_app(data, "--download-face-models", script=[str(launcher), json.dumps(urls)]) as url:
        yield url, data


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def run_extras(
    client,
    mode: int = 0,
    image=None,
    files=None,
    input_dir: str = "",
    output_dir: str = "",
    show: bool = True,
    **fields,
) -> tuple[list, str]:
    """Call the "extras" endpoint; `fields` are ExtrasParams fields, the rest keep their defaults."""
    values = dataclasses.asdict(ExtrasParams(**fields)).values()
    return client.predict(mode, image, files, input_dir, output_dir, show, *values, api_name="/extras")


def _photo_file(path: Path) -> Path:
    """The astronaut's head and shoulders, 128 pixels square, with a `parameters` chunk."""
    from skimage.data import astronaut

    meta = PngImagePlugin.PngInfo()
    meta.add_text("parameters", PARAMETERS)
    photo = Image.fromarray(astronaut()).crop((130, 20, 322, 212)).resize((128, 128), Image.Resampling.LANCZOS)
    photo.save(path, pnginfo=meta)
    return path


def test_the_flag_downloads_before_serving_and_logs_a_failure(server):
    _url, data = server
    for remote in (GFPGAN_WEIGHTS, DETECTION_WEIGHTS, PARSING_WEIGHTS):
        assert (data / "models" / "GFPGAN" / remote.name).is_file()
    assert not (data / "models" / "Codeformer" / CODEFORMER_WEIGHTS.name).exists()
    log = (data / "server.log").read_text()
    assert f"Downloading {GFPGAN_WEIGHTS.name} from http://127.0.0.1" in log
    assert "ERROR webui: Could not download the face restoration models: " in log and "failed its checksum" in log


def test_restore_faces_then_upscale_saves_both_chunks(server, client, tmp_path):
    from gradio_client import handle_file

    _url, data = server
    photo = handle_file(str(_photo_file(tmp_path / "photo.png")))
    settings = {"upscaler_1": "4x-tiny", "upscaler_2": "Lanczos", "extras_upscaler_2_visibility": 0.25}
    _gallery, info = run_extras(client, image=photo, gfpgan_visibility=1.0, **settings)
    assert (
        "Postprocess upscale by: 2, Postprocess upscaler: 4x-tiny, Postprocess upscaler 2: Lanczos, "
        "Postprocess upscaler 2 visibility: 0.25, GFPGAN visibility: 1"
    ) in info
    folder = data / "outputs" / "extras-images" / date.today().isoformat()
    saved = Image.open(folder / "00000.png")
    assert saved.size == (256, 256) and saved.text["parameters"] == PARAMETERS
    assert saved.text["extras"].startswith("Postprocess upscale by: 2,")
    _, plain_info = run_extras(client, image=photo, **settings)
    assert "GFPGAN" not in plain_info
    plain = Image.open(folder / "00001.png")
    changed = np.abs(np.asarray(saved, dtype=np.int16) - np.asarray(plain, dtype=np.int16)).max(axis=2) > 8
    assert 0.05 < changed.mean() < 0.95  # the face was restored, not the whole picture


def test_bad_requests_get_clear_messages_and_the_server_goes_on(server, client, tmp_path):
    from gradio_client import handle_file

    photo = handle_file(str(_photo_file(tmp_path / "photo.png")))
    with pytest.raises(Exception, match=r"not-an-upscaler.pth is not an upscaler model"):
        run_extras(client, image=photo, upscaler_1="not-an-upscaler")
    with pytest.raises(Exception, match="Upscaling refused: the result would be 4096x4096"):
        run_extras(
            client, image=photo, upscaler_1="Lanczos", resize_mode=1, upscaling_resize_w=4096, upscaling_resize_h=4096
        )
    with pytest.raises(Exception, match="CodeFormer needs model files"):
        run_extras(client, image=photo, codeformer_visibility=1.0)
    with pytest.raises(Exception, match="Drop an image"):
        run_extras(client)
    gallery, info = run_extras(client, image=photo, upscaler_1="Nearest")
    assert len(gallery) == 1 and "Postprocess upscaler: Nearest" in info


def test_batch_from_directory_skips_a_bad_file(server, client, tmp_path):
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    _photo_file(source / "a.png")
    (source / "b.png").write_bytes(b"not a picture")
    gallery, info = run_extras(client, 2, input_dir=str(source), output_dir=str(target), upscaler_1="Nearest")
    assert len(gallery) == 1 and "Skipped b: b.png is not an image" in info
    assert [p.name for p in target.iterdir()] == ["00000-a.png"]
    gallery, _ = run_extras(client, 2, input_dir=str(source), output_dir=str(target), show=False)
    assert gallery == [] and len(list(target.iterdir())) == 2


def test_batch_process_of_uploaded_files(server, client, tmp_path):
    from gradio_client import handle_file

    _url, data = server
    _photo_file(tmp_path / "first.png")
    (tmp_path / "second.png").write_bytes(b"not a picture")
    files = [handle_file(str(tmp_path / "first.png")), handle_file(str(tmp_path / "second.png"))]
    gallery, info = run_extras(client, 1, files=files, upscaler_1="Nearest", upscaling_resize=1.5)
    assert len(gallery) == 1 and "Skipped second: second.png is not an image" in info
    saved = Image.open(gallery[0]["image"])
    assert saved.size == (192, 192)
    folder = data / "outputs" / "extras-images" / date.today().isoformat()
    assert any(p.name.endswith("-first.png") for p in folder.iterdir())


def test_download_button_checks_the_sha256_then_fetches(server, client, release):
    _url, data = server
    with pytest.raises(Exception, match="failed its checksum"):
        client.predict(api_name="/extras_download_face_models")
    release["files"]["/codeformer.pth"] = CODEFORMER_BODY
    assert client.predict(api_name="/extras_download_face_models") == FACE_MODELS_READY
    assert (data / "models" / "Codeformer" / CODEFORMER_WEIGHTS.name).read_bytes() == CODEFORMER_BODY
