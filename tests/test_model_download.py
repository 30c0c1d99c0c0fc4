"""model_download against a real HTTP server on 127.0.0.1: success, checksum mismatch, 404, short body."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
from app_process import free_port

from modules.core.file_hashes import sha256_of_file
from modules.errors import UserError
from modules.models.model_download import DownloadError, RemoteFile, download_file, download_files

PAYLOAD = bytes(range(256)) * 9000  # ~2.3 MB: several chunks
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/model.pth":
            self._send(PAYLOAD, len(PAYLOAD))
        elif self.path == "/short.pth":  # announces the whole file, sends a third, hangs up
            self._send(PAYLOAD[: len(PAYLOAD) // 3], len(PAYLOAD))
        elif self.path == "/nolength.pth":  # no Content-Length: the body ends when the connection closes
            self.close_connection = True
            self.send_response(200)
            self.end_headers()
            self.wfile.write(PAYLOAD)
        else:
            self.send_error(404, "Not Found")

    def _send(self, body: bytes, length: int) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_writes_the_file_and_reports_progress(server, tmp_path: Path):
    calls: list[tuple[int, int | None]] = []
    dest = download_file(
        f"{server}/model.pth",
        tmp_path / "sub" / "model.pth",
        PAYLOAD_SHA,
        lambda done, total: calls.append((done, total)),
    )
    assert dest.read_bytes() == PAYLOAD
    assert calls[0] == (0, len(PAYLOAD)) and calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert len(calls) > 2 and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert list(dest.parent.iterdir()) == [dest]  # no temporary file left behind


def test_download_without_content_length(server, tmp_path: Path):
    calls: list[tuple[int, int | None]] = []
    dest = download_file(
        f"{server}/nolength.pth", tmp_path / "m.pth", PAYLOAD_SHA, lambda done, total: calls.append((done, total))
    )
    assert sha256_of_file(dest) == PAYLOAD_SHA
    assert calls[-1] == (len(PAYLOAD), None)


def test_checksum_mismatch_keeps_nothing(server, tmp_path: Path):
    with pytest.raises(DownloadError, match="checksum") as info:
        download_file(f"{server}/model.pth", tmp_path / "model.pth", "0" * 64)
    assert PAYLOAD_SHA in str(info.value) and "0" * 64 in str(info.value)
    assert isinstance(info.value, UserError)
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_leaves_an_existing_file_alone(server, tmp_path: Path):
    old = tmp_path / "model.pth"
    old.write_bytes(b"old content")
    with pytest.raises(DownloadError):
        download_file(f"{server}/model.pth", old, "f" * 64)
    assert old.read_bytes() == b"old content"
    assert list(tmp_path.iterdir()) == [old]


def test_404_is_a_clear_error(server, tmp_path: Path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(f"{server}/missing.pth", tmp_path / "missing.pth", PAYLOAD_SHA)
    assert f"{server}/missing.pth" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_short_download_is_refused(server, tmp_path: Path):
    with pytest.raises(DownloadError) as info:
        download_file(f"{server}/short.pth", tmp_path / "short.pth", None)
    assert "short.pth" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server(tmp_path: Path):
    with pytest.raises(DownloadError, match="connection failed"):  # a port nobody listens on
        download_file(f"http://127.0.0.1:{free_port()}/x.pth", tmp_path / "x.pth", None, timeout=5)


def test_download_files_skips_present_files(server, tmp_path: Path):
    (tmp_path / "present.pth").write_bytes(b"mine")
    files = [
        RemoteFile("present.pth", f"{server}/missing.pth", "0" * 64),
        RemoteFile("new.pth", f"{server}/model.pth", PAYLOAD_SHA),
    ]
    seen: list[str] = []
    paths = download_files(files, tmp_path, lambda remote, done, total: seen.append(remote.name))
    assert paths == [tmp_path / "present.pth", tmp_path / "new.pth"]
    assert (tmp_path / "present.pth").read_bytes() == b"mine"
    assert sha256_of_file(tmp_path / "new.pth") == PAYLOAD_SHA
    assert set(seen) == {"new.pth"}
