"""What the server log shows: a user's mistake is one line, a request cut off when serving stops (Reload UI)
is one line, and real faults keep their tracebacks."""

from __future__ import annotations

import asyncio
import logging

import pytest
from app_process import endpoint_args, wait_for
from gradio_client import Client

from modules.api.web_server import CutStreams


def test_a_user_error_on_the_page_is_one_log_line(page_app):
    url, data = page_app
    log_file = data / "server.log"
    start = log_file.stat().st_size  # the shared server's log: this test reads what was written from here on

    def written() -> str:
        return log_file.read_bytes()[start:].decode()

    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="Width must be a multiple of 8 and at least 64, got 65"):
        client.predict(*endpoint_args(client, "/txt2img", {"Width": 65, "Sampling steps": 2}), api_name="/txt2img")
    wait_for(lambda: "Width must be a multiple of 8" in written(), 10, "the log line")
    log = written()
    lines = [line for line in log.splitlines() if "Width must be a multiple of 8" in line]
    assert len(lines) == 1 and "WARNING" in lines[0], log
    assert "Traceback" not in log, log


def raise_cancelled() -> None:
    raise asyncio.CancelledError("Task cancelled, timeout graceful shutdown exceeded")


@pytest.fixture
def uvicorn_log():
    logger = logging.getLogger("uvicorn.error.test-cut-streams")
    logger.addFilter(CutStreams())
    yield logger
    logger.filters.clear()


def test_requests_cut_off_when_serving_stops_are_one_info_line(uvicorn_log, caplog):
    try:
        raise_cancelled()
    except asyncio.CancelledError as exc:
        uvicorn_log.error("Exception in ASGI application\n", exc_info=exc)
    uvicorn_log.error("Cancel %d running task(s), timeout graceful shutdown exceeded", 1)
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("INFO", "A request still open when serving stopped was cancelled", None),
        ("INFO", "Cancel 1 running task(s), timeout graceful shutdown exceeded", None),
    ]
    assert "Traceback" not in caplog.text


def test_real_faults_keep_their_traceback(uvicorn_log, caplog):
    try:
        raise RuntimeError("a real fault")
    except RuntimeError as exc:
        uvicorn_log.error("Exception in ASGI application\n", exc_info=exc)
    assert caplog.records[0].levelname == "ERROR"
    assert "Traceback" in caplog.text and "RuntimeError: a real fault" in caplog.text
