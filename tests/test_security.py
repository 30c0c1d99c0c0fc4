"""Security through a real app.py on a free port: file serving stays inside outputs and Gradio's temp
folder, extension installs are off when listening, logins protect the page and the API, passwords
never reach the log or /sdapi/v1/cmd-flags, and an open server says so at start."""

from __future__ import annotations

import os
import socket
from urllib.parse import quote

import pytest
import requests
from app_process import ROOT, running_app, with_demo_checkpoint
from git_repos import Remote
from shared_servers import LISTEN_SECRET, plant_secrets

SECRET = LISTEN_SECRET
API_PASSWORD = "api-pass-5150"


def data_dir_with_model(root, demo_checkpoint):
    data = root / "data"
    with_demo_checkpoint(data, demo_checkpoint)
    return data


@pytest.fixture(scope="module")
def open_app(listening_app, tmp_path_factory):
    """--listen without any login: the case A1111 locks extension installs for (the server test_listen_policy
    shares, which serves the API beside the page)."""
    url, data, root = listening_app
    install = {"install.py": "open('installed.txt', 'w').write('yes')\n"}
    return url, data, root, Remote(tmp_path_factory.mktemp("remote"), "some-ext", install)


@pytest.fixture(scope="module")
def locked_app(tmp_path_factory, demo_checkpoint):
    """--listen with page logins from a file and an API login, page and API on one port."""
    root = tmp_path_factory.mktemp("locked")
    data = data_dir_with_model(root, demo_checkpoint)
    plant_secrets(root, data)
    logins = root / "logins.txt"
    logins.write_text("alice:wonder-land-77, carol:c4r0l-pw\n\nbob:builder-no\n")  # A1111's format
    with running_app(
        data, "--listen", "--api", "--gradio-auth-path", str(logins), "--api-auth", f"robot:{API_PASSWORD}"
    ) as url:
        yield url, data, root


def login(url: str, user: str, password: str) -> requests.Session:
    session = requests.Session()
    session.post(url + "login", data={"username": user, "password": password}, timeout=10)
    return session


def escapes(root) -> list[str]:
    """File paths that point outside outputs, written the ways a crafted request might write them."""
    secret, config = str(root / "secret.txt"), str(root / "data" / "config.json")
    outputs = root / "data" / "outputs"
    relative = os.path.relpath(secret, outputs / "txt2img-images")
    return [
        "/etc/passwd",
        "../../etc/passwd",
        "../../../../../../../../etc/passwd",
        secret,
        config,
        f"{outputs}/../config.json",
        f"{outputs}/txt2img-images/{relative}",
        quote("/etc/passwd", safe=""),
        quote("../../etc/passwd", safe=""),
        quote(quote(secret, safe=""), safe=""),
        quote(quote("../../etc/passwd", safe=""), safe=""),
        "..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e/%2e%2e/etc/passwd",
        f"{outputs}/txt2img-images/link.txt",
        f"{outputs}/txt2img-images/link-dir/secret.txt",
        "app.py",
        str(ROOT / "app.py"),
        str(root / "data" / "models" / "Stable-diffusion" / "demo.safetensors"),
    ]


def fetch(session, url: str, path: str) -> list[requests.Response]:
    """The file routes Gradio has answered on, old and new spelling."""
    return [
        session.get(f"{url}{prefix}file={path}", timeout=10, allow_redirects=False) for prefix in ("", "gradio_api/")
    ]


def assert_refused(responses: list[requests.Response], path: str) -> None:
    for response in responses:
        assert response.status_code in (403, 404), (path, response.status_code, response.text[:200])
        assert SECRET not in response.text and "root:" not in response.text


def test_files_come_only_from_outputs(open_app):
    url, data, root, _ = open_app
    allowed = fetch(requests, url, str(data / "outputs" / "txt2img-images" / "allowed.txt"))
    assert allowed[1].status_code == 200 and allowed[1].text == "fine to serve"  # the control case
    for path in escapes(root):
        assert_refused(fetch(requests, url, path), path)


def test_raw_paths_that_clients_do_not_normalise_are_refused(open_app):
    url, _, root, _ = open_app
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    for path in (
        "/gradio_api/file=../../../../etc/passwd",
        f"/gradio_api/file=/{root}/secret.txt",
        "/gradio_api/file=%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
    ):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        status = int(reply.split(b" ", 2)[1])
        assert status in (403, 404), (path, reply[:300])
        assert SECRET.encode() not in reply and b"root:" not in reply


def test_listening_without_a_login_is_warned_about(open_app):
    log = (open_app[1] / "server.log").read_text()
    assert "WARNING" in log and "no login protects the page" in log


def test_extension_install_and_apply_are_refused_when_listening(open_app):
    from gradio_client import Client

    url, data, _, remote = open_app
    client = Client(url, verbose=False)
    message, _, _ = client.predict(remote.bare.as_uri(), "", "", api_name="/extensions_install")
    assert "--enable-insecure-extension-access" in message and "--listen" in message
    assert not (data / "extensions" / "some-ext").exists()
    message = client.predict([], [], api_name="/extensions_apply")
    assert "--enable-insecure-extension-access" in message
    assert requests.get(url, timeout=10).status_code == 200  # still serving, not restarting


def test_page_logins_from_the_file(locked_app):
    url, _, _ = locked_app
    assert requests.get(url + "config", timeout=10).status_code == 401
    for user, password in (
        ("alice", "wrong"),
        ("alice", ""),
        ("", ""),
        ("nobody", "wonder-land-77"),
        ("robot", API_PASSWORD),
    ):
        assert login(url, user, password).get(url + "config", timeout=10).status_code == 401, (user, password)
    for user, password in (("alice", "wonder-land-77"), ("carol", "c4r0l-pw"), ("bob", "builder-no")):
        assert login(url, user, password).get(url + "config", timeout=10).status_code == 200, user


def test_api_login_is_separate_from_the_page_login(locked_app):
    url, _, _ = locked_app
    api = url + "sdapi/v1/samplers"
    assert requests.get(api, timeout=10).status_code == 401
    assert requests.get(api, auth=("alice", "wonder-land-77"), timeout=10).status_code == 401
    assert requests.get(api, auth=("robot", API_PASSWORD), timeout=10).status_code == 200


def test_logged_in_users_still_get_only_output_files(locked_app):
    url, data, root = locked_app
    session = login(url, "alice", "wonder-land-77")
    allowed = fetch(session, url, str(data / "outputs" / "txt2img-images" / "allowed.txt"))
    assert allowed[1].status_code == 200
    for path in escapes(root):
        assert_refused(fetch(session, url, path), path)


def test_passwords_never_reach_the_log_or_cmd_flags(locked_app):
    url, data, _root = locked_app
    flags = requests.get(url + "sdapi/v1/cmd-flags", auth=("robot", API_PASSWORD), timeout=10)
    assert flags.status_code == 200
    assert flags.json()["api_auth"] == "***" and flags.json()["listen"] is True
    log = (data / "server.log").read_text()
    for password in ("wonder-land-77", "c4r0l-pw", "builder-no", API_PASSWORD):
        assert password not in flags.text and password not in log
    assert "no login protects" not in log  # both the page and the API ask for one


def test_a_malformed_login_file_stops_the_start_without_echoing_it(tmp_path):
    import subprocess
    import sys

    logins = tmp_path / "logins.txt"
    logins.write_text("alice:fine\n:leaked-password\n")
    done = subprocess.run(
        [sys.executable, "app.py", "--data-dir", str(tmp_path), "--gradio-auth-path", str(logins)],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "line 2" in done.stderr and "leaked-password" not in done.stderr
