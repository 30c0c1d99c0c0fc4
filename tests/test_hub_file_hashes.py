"""Downloads checked against the hash the Hugging Face Hub announces, from a local stand-in for the Hub on
127.0.0.1: its `resolve` path answers a weights file (LFS) with a 302 to a CDN on another port and
`X-Linked-Etag: "<sha256>"`, and a small file with a relative 307 to a cache path on the Hub that serves it with
`ETag: "<git blob sha1>"`. The CDN sends an ETag of its own, which must not be read."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from interrogate_models import write_tiny_blip
from PIL import Image

from modules.models.hub_file_hashes import GitBlobSha1, hub_checksum
from modules.models.interrogate_models import BlipCaptioner, official_files
from modules.models.model_download import DownloadError, RemoteFile, download_file, download_files

REPO = "Salesforce/blip-image-captioning-large"
CDN_ETAG = hashlib.sha256(b"the CDN's own etag").hexdigest()


def git_blob_sha1(content: bytes) -> str:
    return (
        subprocess.run(["git", "hash-object", "--stdin"], input=content, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )


class FakeHub:
    """`published` holds each file as the Hub knows it (its hashes are announced from these bytes); `served` the
    bytes actually sent, which a test may tamper with; names in `unannounced` get no hash headers."""

    def __init__(self, hub: str, cdn: str) -> None:
        self.hub, self.cdn = hub, cdn
        self.published: dict[str, bytes] = {}
        self.served: dict[str, bytes] = {}
        self.unannounced: set[str] = set()

    def publish(self, name: str, content: bytes) -> None:
        self.published[name] = self.served[name] = content

    def url(self, name: str) -> str:
        return f"{self.hub}/{REPO}/resolve/main/{name}"

    def answer(self, handler: http.server.BaseHTTPRequestHandler, on_cdn: bool) -> None:
        path = handler.path
        name = path.rsplit("/", 1)[-1]
        if name not in self.published:
            return handler.send_error(404)
        headers: dict[str, str] = {}
        if on_cdn:
            status, body, headers["ETag"] = 200, self.served[name], f'"{CDN_ETAG}"'
        elif path.startswith("/api/resolve-cache/"):
            status, body = 200, self.served[name]
            headers["ETag"] = f'"{git_blob_sha1(self.published[name])}"'
        elif name.endswith(".safetensors"):  # LFS: the Hub redirects to its CDN and names the content's sha256
            status, body = 302, b""
            headers["Location"] = f"{self.cdn}/lfs/{name}"
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(self.published[name]).hexdigest()}"'
        else:  # a small git file: served from the Hub's own cache path
            status, body = 307, b""
            headers["Location"] = f"/api/resolve-cache/models/{REPO}/0123abc/{name}"
        if name in self.unannounced:
            headers.pop("X-Linked-Etag", None)
            if not on_cdn:
                headers.pop("ETag", None)
        handler.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)


@contextmanager
def _server(answer) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer(self)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory) -> Path:
    return write_tiny_blip(tmp_path_factory.mktemp("published") / "blip")


@pytest.fixture
def hub(tiny_blip) -> Iterator[FakeHub]:
    fake: FakeHub | None = None

    def answer(on_cdn: bool):
        return lambda handler: fake.answer(handler, on_cdn)

    with _server(answer(False)) as hub_url, _server(answer(True)) as cdn_url:
        fake = FakeHub(hub_url, cdn_url)
        for file in tiny_blip.iterdir():
            fake.publish(file.name, file.read_bytes())
        yield fake


def test_files_checked_against_the_hubs_hashes_load_as_a_blip_folder(hub, tmp_path):
    names = sorted(hub.published)
    assert "model.safetensors" in names and "vocab.txt" in names
    files = official_files(f"{hub.hub}/{REPO}/resolve/main", dict.fromkeys(names))
    folder = tmp_path / "models" / "BLIP"
    assert download_files(files, folder) == [folder / name for name in names]
    assert sorted(p.name for p in folder.iterdir()) == names  # no temporary file left
    captioner = BlipCaptioner(folder, torch.device("cpu"), torch.float32)
    pixels = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    assert captioner.caption(Image.fromarray(pixels), num_beams=1, min_length=2, max_length=4)


@pytest.mark.parametrize("name, kind", [("model.safetensors", "sha256"), ("vocab.txt", "git blob sha1")])
def test_a_tampered_file_fails_its_check_and_nothing_is_kept(hub, tmp_path, name, kind):
    hub.served[name] = hub.published[name][:-1] + bytes([hub.published[name][-1] ^ 1])
    with pytest.raises(DownloadError, match="failed its checksum") as caught:
        download_file(hub.url(name), tmp_path / name, announced=hub_checksum)
    message = str(caught.value)
    assert name in message and hub.url(name) in message and f"expected {kind} " in message
    assert list(tmp_path.iterdir()) == []


def test_a_file_the_hub_announces_no_hash_for_is_refused(hub, tmp_path):
    hub.unannounced = {"model.safetensors", "config.json"}
    for name in hub.unannounced:
        with pytest.raises(DownloadError, match="announced no hash") as caught:
            download_file(hub.url(name), tmp_path / name, announced=hub_checksum)
        assert name in str(caught.value) and hub.url(name) in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_pinned_sha256_wins_over_the_announced_hash(hub, tmp_path):
    content = hub.published["vocab.txt"]
    hub.published["vocab.txt"] = b"what the Hub announces"
    pinned = RemoteFile("vocab.txt", hub.url("vocab.txt"), hashlib.sha256(content).hexdigest(), hub_checksum)
    assert download_files([pinned], tmp_path)[0].read_bytes() == content


def test_the_git_blob_sha1_is_gits_object_name():
    for content in (b"", b"hello\n", bytes(range(256)) * 3):
        digest = GitBlobSha1()
        for start in range(0, len(content), 100):
            digest.update(content[start : start + 100])
        assert digest.hexdigest() == git_blob_sha1(content)
