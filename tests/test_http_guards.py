"""The HTTP edge of a real app.py serving the page and the API on one port, both with logins: requests
without valid credentials are refused before their body is read (the server's memory doesn't grow, the
client can't even send it all), bodies over max_request_bytes get 413, refusals never echo the body, a
body of any type gets a clean 422, and failed logins (page and API) are throttled per address."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psutil
import pytest
import requests
from app_process import app_process
from shared_logins import AUTH_API_LOGIN, AUTH_MAX_REQUEST_BYTES, AUTH_PAGE_LOGIN

PAGE, API, CAP = AUTH_PAGE_LOGIN, AUTH_API_LOGIN, AUTH_MAX_REQUEST_BYTES  # the shared auth_app's
MARKER = "echo-me-if-you-dare-5150"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(auth_app) -> tuple[str, psutil.Process]:
    """The shared locked-down app and its process."""
    url, _ = auth_app
    return url, app_process(url)


def logged_in(url: str) -> requests.Session:
    session = requests.Session()
    assert session.post(url + "login", data=dict(zip(("username", "password"), PAGE)), timeout=10).ok
    return session


class Stream:
    """A request body of `size` bytes made on the fly; counts how much of it the client got to send.
    Sent with its length (Content-Length), or as an iterator of unknown length (chunked)."""

    def __init__(self, size: int, head: bytes = b"") -> None:
        self.size, self.sent, self.head = size, 0, head

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        self.sent = len(self.head)
        yield self.head
        chunk = b"x" * (MB - len(self.head))
        while self.sent < self.size:
            self.sent += len(chunk)
            yield chunk


def send_big(
    session, url: str, size: int, chunked: bool, headers: dict | None = None, head: bytes = b"", **kwargs
) -> tuple[requests.Response, Stream]:
    body = Stream(size, head)
    response = session.post(url, data=iter(body) if chunked else body, headers=headers, timeout=60, **kwargs)
    return response, body


@pytest.mark.parametrize("target", ["sdapi/v1/txt2img", "gradio_api/upload", "gradio_api/queue/join", "login"])
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_an_unauthenticated_200_mb_body_is_refused_unread(server, target, chunked):
    url, process = server
    rss = process.memory_info().rss
    start = time.monotonic()
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # what /login reads (up to a login's size)
    response, body = send_big(requests, url + target, 200 * MB, chunked, form)
    assert response.status_code in (401, 413), response.text[:300]
    assert time.monotonic() - start < 10
    assert body.sent < 40 * MB  # the server never read it, so the client could not send it
    assert process.memory_info().rss - rss < 40 * MB


def test_bodies_over_the_cap_get_413(server):
    url, _ = server
    api = url + "sdapi/v1/png-info"
    for chunked in (True, False):  # counted as it arrives, or refused from its length
        response, _ = send_big(requests, api, 2 * CAP, chunked, auth=API)
        assert response.status_code == 413 and "max_request_bytes" in response.text, response.text[:300]
    page = logged_in(url)
    upload = b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
    response, _ = send_big(
        page, url + "gradio_api/upload", 2 * CAP, True, {"Content-Type": "multipart/form-data; boundary=x"}, upload
    )
    assert response.status_code == 413, response.text[:300]
    response = requests.post(api, json={"image": "x" * (CAP // 2)}, auth=API, timeout=30)  # under the cap: read
    assert response.status_code == 422 and "image" in response.text


def test_refusals_never_echo_the_body(server):
    url, _ = server
    as_json = {"Content-Type": "application/json"}
    api, page = url + "sdapi/v1/txt2img", url + "gradio_api/queue/join"
    refusals = [
        requests.post(api, json={"prompt": MARKER}, timeout=10),
        requests.post(api, data=f"{{{MARKER}", headers=as_json, timeout=10),
        requests.post(api, json={"steps": MARKER}, auth=(API[0], "wrong"), timeout=10),
        requests.post(page, data=f"{{{MARKER}", headers=as_json, timeout=10),
        requests.post(page, json={"data": [MARKER], "fn_index": "x"}, timeout=10),
    ]
    for response in refusals:
        assert response.status_code == 401 and MARKER not in response.text, response.text[:300]


BODIES = {
    "text/plain": MARKER.encode(),
    "application/octet-stream": b"\xff\0",
    "application/x-www-form-urlencoded": b"prompt=x",
    "multipart/form-data; boundary=b": b"--b--\r\n",
    "application/json": b"[1, 2]",
    "application/json; charset=utf-8": b"{bad",
}


@pytest.mark.parametrize("content_type", list(BODIES))
def test_a_body_of_any_type_gets_a_clean_422(server, content_type):
    url, _ = server
    response = requests.post(
        url + "sdapi/v1/txt2img",
        data=BODIES[content_type],
        headers={"Content-Type": content_type},
        auth=API,
        timeout=10,
    )
    assert response.status_code == 422, response.text[:300]
    assert response.json()["error"] == "RequestValidationError" and response.json()["errors"]


def wrong_logins_until_refused(attempt) -> requests.Response:
    """Twenty wrong logins in a row; the answer to the last one."""
    answers = [attempt(wrong=True) for _ in range(20)]
    assert answers[0].status_code in (400, 401)
    return answers[-1]


def assert_waits_then_works(refused: requests.Response, attempt) -> None:
    assert refused.status_code == 429 and "try again" in refused.json()["detail"], refused.text[:300]
    waiting = attempt(wrong=False)
    assert waiting.status_code == 429  # during the wait not even the right password is checked
    time.sleep(int(waiting.headers["Retry-After"]))
    assert attempt(wrong=False).status_code == 200


def test_failed_page_logins_are_throttled(server):
    url, _ = server
    session = requests.Session()

    def attempt(wrong: bool) -> requests.Response:
        return session.post(
            url + "login", data={"username": PAGE[0], "password": "nope" if wrong else PAGE[1]}, timeout=10
        )

    note = requests.get(url + "config", timeout=10).json()["detail"]["auth_message"]  # what the login form shows
    assert "wrong passwords in a row" in note and "Login does nothing" in note
    assert_waits_then_works(wrong_logins_until_refused(attempt), attempt)
    assert session.get(url + "config", timeout=10).status_code == 200  # the session works
    assert attempt(wrong=True).status_code == 400  # and the count started again


def test_failed_api_logins_are_throttled(server):
    url, _ = server

    def attempt(wrong: bool) -> requests.Response:
        return requests.get(url + "sdapi/v1/samplers", auth=(API[0], "nope" if wrong else API[1]), timeout=10)

    assert_waits_then_works(wrong_logins_until_refused(attempt), attempt)
    assert attempt(wrong=True).status_code == 401
    assert requests.get(url + "sdapi/v1/samplers", auth=API, timeout=10).status_code == 200
