"""Every file input of the page refuses a path on the server that no user uploaded, whether the page is
served alone or beside the API (--api), for a logged-in user: the file never comes back, neither in the
answer nor through /gradio_api/file=. The endpoints and their file inputs are read from the running page's
/config, so a new file input is covered without touching this test."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from app_process import running_app, with_demo_checkpoint
from PIL import Image, PngImagePlugin
from shared_servers import PAGE_LOGINS, add_route_extension

SECRET = "planted-secret-4d1f"
USER, PAGE_PASSWORD = PAGE_LOGINS[1]
FILE_META = {"_type": "gradio.FileData"}


@contextmanager
def page_alone(root: Path, demo_checkpoint: Path) -> Iterator[str]:
    """app.py serving the page alone, behind the same page login as login_page_app, with its extension."""
    data = with_demo_checkpoint(root / "data", demo_checkpoint)
    add_route_extension(data)
    with running_app(data, "--gradio-auth", f"{USER}:{PAGE_PASSWORD}") as url:
        yield url


@pytest.fixture(scope="module", params=["page alone", "page and API"])  # the API without a login of its own
def app(
    request, tmp_path_factory, demo_checkpoint, login_page_app
) -> Iterator[tuple[str, requests.Session, list[str], str]]:
    """A logged-in session on app.py (page alone, or page and API: shared_servers.login_page_app), the server
    paths to try, and the mode."""
    root = tmp_path_factory.mktemp("file-inputs")
    (root / "secret.txt").write_text(SECRET)
    meta = PngImagePlugin.PngInfo()
    meta.add_text("parameters", f"{SECRET}\nSteps: 2, Seed: 1, Size: 16x16")
    Image.new("RGB", (16, 16), "red").save(root / "secret.png", pnginfo=meta)
    paths = [str(root / "secret.png"), str(root / "secret.txt"), "/proc/self/cmdline"]  # cmdline: the passwords
    with ExitStack() as stack:
        if request.param == "page alone":
            url = stack.enter_context(page_alone(root, demo_checkpoint))
        else:
            url = login_page_app[0]
        session = requests.Session()
        assert (
            session.post(url + "login", data={"username": USER, "password": PAGE_PASSWORD}, timeout=10).status_code
            == 200
        )
        yield url, session, paths, request.param


def file_value(schema: dict, defs: dict, path: str) -> Any:
    """A value of the JSON schema `schema` with `path` in every file it holds; None when it holds none."""
    if "$ref" in schema:
        return file_value(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, path)
    properties = schema.get("properties", {})
    if "path" in properties and "meta" in properties:  # Gradio's FileData (ImageData is one too)
        return {"path": path, "orig_name": "upload.png", "meta": FILE_META}
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        value = file_value(option, defs, path)
        if value is not None:
            return value
    if schema.get("type") == "array":
        item = file_value(schema.get("items", {}), defs, path)
        return None if item is None else [item]
    filled = {name: file_value(part, defs, path) for name, part in properties.items()}
    filled = {name: value for name, value in filled.items() if value is not None}
    return filled or None


def file_inputs(config: dict) -> list[tuple[dict, int, dict]]:
    """(dependency, input position, input's schema) for every input of every event that takes a file."""
    components = {c["id"]: c for c in config["components"]}
    found = []
    for dependency in config["dependencies"]:
        for position, component_id in enumerate(dependency["inputs"]):
            schema = components[component_id].get("api_info") or {}
            if file_value(schema, schema.get("$defs", {}), "/probe") is not None:
                found.append((dependency, position, schema))
    return found


def call(session: requests.Session, url: str, session_hash: str, fn_index: int, data: list) -> dict:
    """Run one page event the way the browser does (queue/join, then the event stream) in the page session
    `session_hash`; its final message."""
    joined = session.post(
        url + "gradio_api/queue/join",
        timeout=30,
        json={"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None, "trigger_id": None},
    )
    assert joined.status_code == 200, joined.text
    with session.get(
        url + "gradio_api/queue/data", params={"session_hash": session_hash}, stream=True, timeout=120
    ) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError(f"no answer from event {fn_index}")


def assert_nothing_leaks(session: requests.Session, url: str, answer: str, what: str) -> None:
    """Neither the answer nor any file it names (fetched through Gradio's file route) holds a secret."""
    secrets = (SECRET, PAGE_PASSWORD)
    assert not any(secret in answer for secret in secrets), (what, answer[:500])
    for named in set(re.findall(r"/(?:tmp|proc|etc|home|root|var)/[^\s'\"\\]+", answer)):
        served = session.get(f"{url}gradio_api/file={named}", timeout=10)
        assert not any(secret.encode() in served.content for secret in secrets), (what, named)


def test_no_file_input_takes_a_path_on_the_server(app):
    url, session, paths, _ = app
    config = session.get(url + "config", timeout=10).json()
    components = {c["id"]: c for c in config["components"]}
    inputs = file_inputs(config)
    api_names = {dependency["api_name"] for dependency, _, _ in inputs}
    assert {"pnginfo", "img2img", "extras"} <= api_names, api_names  # the discovery finds the known ones
    session_hash = uuid.uuid4().hex[:12]  # one page's session, as a browser tab sends all its events in one
    for dependency, position, schema in inputs:
        defaults = [components[i]["props"].get("value") for i in dependency["inputs"]]
        for path in paths:
            data = [*defaults]
            data[position] = file_value(schema, schema.get("$defs", {}), path)
            what = f"{dependency['api_name']} input {position} <- {path}"
            answer = call(session, url, session_hash, dependency["id"], data)
            assert answer["success"] is False, (what, answer)
            assert "not uploaded by a user" in json.dumps(answer), (what, answer)
            assert_nothing_leaks(session, url, json.dumps(answer), what)


def test_routes_that_extensions_add_at_start_are_served(app):
    url, session, _, _ = app
    answer = session.get(url + "route-ext/ping", timeout=10)
    assert answer.status_code == 200 and answer.json() == {"pong": True}


@pytest.mark.parametrize("app", ["page and API"], indirect=True)
def test_the_api_beside_a_page_login_keeps_its_own_login(app):
    url, _, _, _ = app
    answer = requests.post(url + "sdapi/v1/png-info", json={"image": ""}, timeout=10)  # no page session, no login
    assert answer.status_code == 422 and "image" in answer.text, answer.text[:300]
