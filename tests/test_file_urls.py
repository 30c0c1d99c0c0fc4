"""A1111's `/file=<path>` URLs and on_app_started routes through a real app.py on a free port: the files
an extension points its page scripts at are served from its own folder and the data dir's outputs/, tmp/ and
images, and nothing else (traversal, encodings, symlinks, dot folders, settings and model files, /proc); with a
page login, both need the login, as does /internal/opts (the page's `opts`, which waits for a change when asked);
an extension's route answers beside the page, with and without --api."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from app_process import ROOT, running_app
from shared_servers import EXT, SECRET, make_data_dir

from modules.api.file_urls import FileUrls


@pytest.fixture(scope="module")
def open_app(tmp_path_factory, demo_checkpoint):
    root = tmp_path_factory.mktemp("file-urls")
    data = make_data_dir(root, demo_checkpoint)
    with running_app(data) as url:
        yield url, data, root


def allowed(data: Path) -> dict[str, str]:
    """Names a `file=` URL may use, with the text each serves."""
    ext = data / "extensions" / EXT
    return {
        f"extensions/{EXT}/tags/tags.csv": "1girl,0\nscenery,0\n",
        f"{ext}/tags/tags.csv?1733": "1girl,0\nscenery,0\n",
        quote(f"{ext}/javascript/tagger.js"): "window.taggerLoaded = true;\n",
        "outputs/txt2img-images/note.txt": "output",
        f"{data}/tmp/tagPath.txt": "tmp file",
        "models/Lora/style.png": "png bytes",
    }


def refused(data: Path, root: Path) -> list[str]:
    """Names that point at settings, models, dot folders, symlink targets outside, or out of the data dir."""
    ext = f"extensions/{EXT}"
    return [
        "config.json",
        f"{data}/config.json",
        "ui-config.json",
        "styles.csv",
        "top.png",
        ".env",
        "server.log",
        "extensions/README.txt",
        f"{ext}/.git/config",
        f"{ext}/tags/link.csv",
        f"{ext}/tags/outside/secret.txt",
        f"{ext}/tags/settings.csv",
        "models/Lora/link.png",
        "models/Lora/style.safetensors",
        "models/Stable-diffusion/demo.safetensors",
        "outputs/link.txt",
        f"{ext}/../../config.json",
        f"{ext}/tags/..%2f..%2f..%2fconfig.json",
        "%2e%2e/secret.txt",
        quote(quote("../secret.txt", safe=""), safe=""),
        f"{data}/../secret.txt",
        str(root / "secret.txt"),
        "/etc/passwd",
        "/proc/self/environ",
        "/proc/self/cmdline",
        "app.py",
        str(ROOT / "app.py"),
        "extensions",
        f"{ext}/tags",
        "outputs",
    ]


def raw_get(url: str, path: str, cookie: str = "") -> tuple[int, bytes]:
    """GET `path` exactly as written (no client normalises `..` away)."""
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        extra = f"Cookie: {cookie}\r\n" if cookie else ""
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1]), reply


def test_files_in_the_extension_and_served_folders_are_served(open_app):
    url, data, _ = open_app
    for name, text in allowed(data).items():
        response = requests.get(f"{url}file={name}", timeout=10)
        assert response.status_code == 200 and response.text == text, (name, response.status_code)
    assert requests.head(f"{url}file=extensions/{EXT}/tags/tags.csv", timeout=10).status_code == 200


def test_everything_else_is_refused(open_app):
    url, data, root = open_app
    for name in refused(data, root):
        status, reply = raw_get(url, f"/file={name}")
        assert status in (403, 404), (name, status, reply[:300])
        assert SECRET.encode() not in reply and b"root:" not in reply and b"PATH=" not in reply, name


def test_the_extensions_scripts_are_in_the_page_head_and_load(open_app):
    url, _, _ = open_app
    html = requests.get(url, timeout=10).text
    head = html[: html.index("<body")]
    sources = re.findall(r'<script src="(file=[^"]+)"', head)
    assert len(sources) == 1 and f"/extensions/{EXT}/javascript/tagger.js?" in sources[0]
    assert requests.get(url + sources[0], timeout=10).text == "window.taggerLoaded = true;\n"
    assert head.index("window.gradioApp") < head.index(sources[0])  # the page's helpers come first


def test_an_on_app_started_route_answers_beside_the_page(open_app, login_page_app):
    for url, _, _ in (open_app, login_page_app):  # without --api, and with --api and a page login
        response = requests.get(url + "tacapi/v1/tag-list", timeout=10)
        assert response.status_code == 200 and response.json() == {"tags": ["1girl", "scenery"]}, url


def test_a_page_login_guards_files_opts_and_scripts(login_page_app):
    url, data, _ = login_page_app
    name = f"extensions/{EXT}/tags/tags.csv"
    for path in (f"file={name}", "internal/opts"):
        assert requests.get(url + path, timeout=10).status_code == 401, path
    assert "tagger.js" not in requests.get(url, timeout=10).text  # the login page names no extension files
    session = requests.Session()
    assert session.post(url + "login", data={"username": "ann", "password": "pass-4321"}, timeout=10).ok
    assert session.get(f"{url}file={name}", timeout=10).text == "1girl,0\nscenery,0\n"
    assert session.get(url + "internal/opts", timeout=10).json()["note"] == SECRET  # a kept config.json key
    assert "tagger.js" in session.get(url, timeout=10).text
    cookie = "; ".join(f"{key}={value}" for key, value in session.cookies.items())
    for bad in refused(data, data.parent):
        status, reply = raw_get(url, f"/file={bad}", cookie)
        assert status in (403, 404) and SECRET.encode() not in reply, (bad, status)


def test_opts_answer_when_the_settings_change(login_page_app):
    """The page asks with the values it has (If-None-Match) and `wait`: the answer comes once they change."""
    url, _, _ = login_page_app
    session = requests.Session()
    session.post(url + "login", data={"username": "ann", "password": "pass-4321"}, timeout=10)
    tag = session.get(url + "internal/opts", timeout=10).headers["ETag"]
    for wait in ("0", "nan", "-5"):
        assert (
            session.get(f"{url}internal/opts?wait={wait}", headers={"If-None-Match": tag}, timeout=10).status_code
            == 304
        ), wait
    change = threading.Timer(1.0, requests.post, (url + "sdapi/v1/options",), {"json": {"samples_format": "jpg"}})
    change.start()
    started = time.monotonic()
    try:
        answer = session.get(url + "internal/opts?wait=20", headers={"If-None-Match": tag}, timeout=30)
    finally:  # a shared server: the setting goes back
        change.join()
        requests.post(url + "sdapi/v1/options", json={"samples_format": "png"}, timeout=30).raise_for_status()
    assert answer.status_code == 200 and answer.json()["samples_format"] == "jpg", answer.json()
    assert 1.0 <= time.monotonic() - started < 10 and answer.headers["ETag"] != tag


def test_a1111s_webui_tmp_folder_is_served_for_relative_names(tmp_path):
    """Tag Autocomplete writes tmp/ under modules.paths.script_path and fetches `file=tmp/…`."""
    data, webui = tmp_path / "data", tmp_path / "webui"
    (webui / "tmp").mkdir(parents=True)
    (webui / "tmp" / "tagAutocompletePath.txt").write_text("tags")
    (webui / "app.py").write_text(SECRET)
    data.mkdir()
    files = FileUrls(data, webui)
    assert files.resolve("tmp/tagAutocompletePath.txt") == (webui / "tmp" / "tagAutocompletePath.txt").resolve()
    assert files.resolve("app.py") is None and files.resolve(f"{webui}/app.py") is None
    (data / "tmp").mkdir()
    (data / "tmp" / "tagAutocompletePath.txt").write_text("data first")
    assert files.resolve("tmp/tagAutocompletePath.txt") == (data / "tmp" / "tagAutocompletePath.txt").resolve()
    os.symlink(tmp_path, webui / "tmp" / "up")
    assert files.resolve("tmp/up/webui/app.py") is None
