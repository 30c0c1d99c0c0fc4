"""app.py servers that two test modules share: session fixtures, registered once by tests/conftest.py (which also
puts each pair of modules in one xdist worker), so each starts once, as the session apps in conftest.py do. A
test on one of them undoes what it changes."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_process import running_app, with_demo_checkpoint
from PIL import Image

LISTEN_SECRET = "top-secret-file-contents"
PAGE_LOGINS = (("ann", "pass-4321"), ("user", "page-pw-31337"))  # test_file_urls', test_page_file_inputs'
ROUTE_EXTENSION = """from modules import script_callbacks


def started(demo, app):
    app.add_api_route("/route-ext/ping", lambda: {"pong": True}, methods=["GET"])


script_callbacks.on_app_started(started)
"""


SECRET = "secret-b7f3e1"  # test_file_urls'
EXT = "tagger-ext"
ROUTES_SCRIPT = """from fastapi import FastAPI
from modules import script_callbacks


def routes(_demo, app: FastAPI):
    @app.get("/tacapi/v1/tag-list")
    def tag_list():
        return {"tags": ["1girl", "scenery"]}


script_callbacks.on_app_started(routes)
"""


def make_data_dir(root: Path, demo_checkpoint: Path) -> Path:
    """root/data with an extension, outputs, tmp, a Lora preview, settings files and planted escapes
    (test_file_urls')."""
    data = root / "data"
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    shutil.copy(demo_checkpoint, data / "models" / "Stable-diffusion" / "demo.safetensors")
    (root / "secret.txt").write_text(SECRET)
    ext = data / "extensions" / EXT
    files = {
        ext / "scripts" / "tag_routes.py": ROUTES_SCRIPT,
        ext / "tags" / "tags.csv": "1girl,0\nscenery,0\n",
        ext / "javascript" / "tagger.js": "window.taggerLoaded = true;\n",
        ext / ".git" / "config": SECRET,
        data / "extensions" / "README.txt": SECRET,
        data / "outputs" / "txt2img-images" / "note.txt": "output",
        data / "tmp" / "tagPath.txt": "tmp file",
        data / "models" / "Lora" / "style.png": "png bytes",
        data / "models" / "Lora" / "style.safetensors": SECRET,
        data / "config.json": f'{{"note": "{SECRET}"}}',
        data / "ui-config.json": f'{{"note": "{SECRET}"}}',
        data / "styles.csv": SECRET,
        data / "top.png": SECRET,
        data / ".env": SECRET,
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (ext / "tags" / "link.csv").symlink_to(root / "secret.txt")
    (ext / "tags" / "outside").symlink_to(root)
    (ext / "tags" / "settings.csv").symlink_to(data / "config.json")
    (data / "models" / "Lora" / "link.png").symlink_to(root / "secret.txt")
    (data / "outputs" / "link.txt").symlink_to(root / "secret.txt")
    return data


def plant_secrets(root: Path, data: Path) -> None:
    """A readable file in outputs, a secret outside it (root/secret.txt, and a note in config.json), and
    symlinks in outputs pointing at the secret (test_security's)."""
    (root / "secret.txt").write_text(LISTEN_SECRET)
    (data / "config.json").write_text(f'{{"note": "{LISTEN_SECRET}"}}')
    images = data / "outputs" / "txt2img-images"
    images.mkdir(parents=True)
    (images / "allowed.txt").write_text("fine to serve")
    (images / "link.txt").symlink_to(root / "secret.txt")
    (images / "link-dir").symlink_to(root)


@pytest.fixture(scope="session")
def listening_app(demo_checkpoint: Path) -> Iterator[tuple[str, Path, Path]]:
    """app.py --listen --api with no login (the open case): (URL, data dir, the folder around it). Planted:
    plant_secrets (test_security's), and for test_listen_policy inputs/a.png and a checkpoint outside the data
    dir (root/outside.safetensors)."""
    with tempfile.TemporaryDirectory(prefix="listening-") as folder:
        root = Path(folder)
        data = with_demo_checkpoint(root / "data", demo_checkpoint)
        plant_secrets(root, data)
        shutil.copy(demo_checkpoint, root / "outside.safetensors")
        (data / "inputs").mkdir()
        Image.new("RGB", (64, 64), "teal").save(data / "inputs" / "a.png")
        with running_app(data, "--listen", "--api", model_name="demo.safetensors") as url:
            yield url, data, root


@pytest.fixture(scope="session")
def login_page_app(demo_checkpoint: Path) -> Iterator[tuple[str, Path, Path]]:
    """app.py with a page login (either of PAGE_LOGINS) and the API beside it with no login of its own (--api),
    the demo model loaded: (URL, data dir, the folder around it). Planted: make_data_dir (test_file_urls') and
    test_page_file_inputs' extension (ROUTE_EXTENSION)."""
    with tempfile.TemporaryDirectory(prefix="login-page-") as folder:
        root = Path(folder)
        data = make_data_dir(root, demo_checkpoint)
        add_route_extension(data)
        logins = ",".join(f"{user}:{password}" for user, password in PAGE_LOGINS)
        with running_app(data, "--api", "--gradio-auth", logins, model_name="demo.safetensors") as url:
            yield url, data, root


def add_route_extension(data: Path) -> None:
    """An extension adding a route when the app starts (GET /route-ext/ping), as A1111 extensions do."""
    script = data / "extensions" / "route-ext" / "scripts" / "route.py"
    script.parent.mkdir(parents=True)
    script.write_text(ROUTE_EXTENSION)
