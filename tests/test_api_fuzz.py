"""Fuzzing every /sdapi/v1 route from the server's own OpenAPI schema (schemathesis): data that fits the
schema and data that doesn't, and bodies of types the schema doesn't name, against a real
`app.py --nowebui`. No request may get a 5xx, and the server must answer after each one.

Generation stays cheap through the server's limits (tiny sizes, few steps and images) and a small
number of examples per route; the examples are derandomized, so CI sends the same requests every run.
"""

from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from app_process import running_app
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from modules.api.not_available import NOT_IMPLEMENTED

# Keep each generation tiny: the demo model at 64x64 or 128x64, two steps, two images at most.
LIMITS = {
    "max_pixels": 128 * 64,
    "max_steps": 2,
    "max_batch_images": 2,
    "max_prompt_length": 300,
    "max_upload_bytes": 100_000,
}
SLOW = ("/txt2img", "/img2img", "/extra-single-image", "/extra-batch-images")
# POST /options could lift the limits above (or move output folders): fuzzed here with data that can't
# change a setting; tests/test_api.py covers real changes.
SETTINGS_ROUTE = "POST /sdapi/v1/options"


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("data")
    ckpts = data / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    (ckpts / demo_checkpoint.name).write_bytes(demo_checkpoint.read_bytes())
    (data / "config.json").write_text(json.dumps({**LIMITS, "samples_save": False}))
    with running_app(data, "--nowebui", model_name=demo_checkpoint.name) as url:
        yield url, data


def _alive(url: str) -> bool:
    try:
        return requests.get(f"{url}sdapi/v1/progress", timeout=30).status_code == 200
    except requests.RequestException:
        return False


def _fuzz(operation, mode: GenerationMode, url: str, examples: int, failures: list[str]) -> None:
    session = requests.Session()

    @settings(
        max_examples=examples, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case) -> None:
        if operation.label == SETTINGS_ROUTE and isinstance(case.body, dict):
            case.body = {f"not a setting {key}": value for key, value in case.body.items()}
        try:
            response = case.call(base_url=url.rstrip("/"), session=session, timeout=120)
        except requests.RequestException as exc:
            failures.append(f"{operation.label} ({mode}): no answer ({exc}) to {case.as_curl_command()}")
            return
        deliberate = response.status_code == 501 and operation.path.rsplit("/v1/", 1)[-1] in NOT_IMPLEMENTED
        if response.status_code >= 500 and not deliberate:  # 501: training, which this server says it hasn't
            failures.append(
                f"{operation.label} ({mode}): {response.status_code} {response.text[:300]} "
                f"for {case.as_curl_command()[:600]}"
            )

    try:
        send()
    except Unsatisfiable:  # no data violates this route's schema (a GET without parameters)
        assert mode == GenerationMode.NEGATIVE, operation.label


def test_no_route_answers_5xx_and_the_server_stays_up(server):
    url, data = server
    schema = schemathesis.openapi.from_url(f"{url}openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 25, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        slow = operation.path.endswith(SLOW)
        for mode, examples in (
            (GenerationMode.POSITIVE, 6 if slow else 12),
            (GenerationMode.NEGATIVE, 4 if slow else 8),
        ):
            _fuzz(operation, mode, url, examples, failures)
            assert _alive(url), (
                f"the server stopped answering after {operation.label}:\n{(data / 'server.log').read_text()[-3000:]}"
            )
    assert not failures, "\n".join(failures[:20])


# Bodies the schema doesn't describe (it names JSON only): raw text, bytes, forms, XML, broken JSON.
OTHER_BODIES = {
    "text/plain": b"a lighthouse",
    "application/octet-stream": b"\xff\xd8\xff\x00",
    "application/x-www-form-urlencoded": b"prompt=a&steps=2",
    "multipart/form-data; boundary=b": b"--b--\r\n",
    "application/json": b"{not json",
    "application/xml": b"<prompt/>",
}


def test_bodies_of_any_type_get_no_5xx(server):
    url, _ = server
    schema = requests.get(f"{url}openapi.json", timeout=30).json()
    routes = [path for path, methods in schema["paths"].items() if "requestBody" in methods.get("post", {})]
    assert len(routes) > 5, routes
    for path in routes:
        for content_type, body in OTHER_BODIES.items():
            response = requests.post(
                url.rstrip("/") + path, data=body, headers={"Content-Type": content_type}, timeout=60
            )
            assert response.status_code < 500, (path, content_type, response.status_code, response.text[:300])
