"""/docs works offline: Swagger UI's files come from the app itself, and the page renders with every other
host unreachable. On the session's shared page server (tests/conftest.py's page_app): its --api serves /docs
as --nowebui does (modules/api/web_server.py: one create_app path), so no server of its own."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlparse

import pytest
import requests
from page_controls import new_tab


@pytest.fixture(scope="module")
def api_url(page_app):
    return page_app[0]


def test_docs_names_only_local_files_and_they_answer(api_url):
    html = requests.get(urljoin(api_url, "docs"), timeout=10).text
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]|url: ?['"]([^'"]+)['"]""", html)
    named = [one or other for one, other in urls]
    assert any(name.endswith("swagger-ui-bundle.js") for name in named), html
    assert any(name.endswith("swagger-ui.css") for name in named), html
    for name in named:
        assert not urlparse(name).netloc, f"/docs loads {name} from another host"
        assert requests.get(urljoin(api_url, name), timeout=10).status_code == 200, name


def test_docs_render_with_other_hosts_blocked(chromium, api_url):
    page = new_tab(chromium, api_url)
    elsewhere: list[str] = []

    def only_local(route):
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    try:
        page.goto(urljoin(api_url, "docs"))
        page.wait_for_selector(".info .title", timeout=20000)
        assert "Stable Diffusion web UI API" in page.inner_text(".info .title")
        page.locator(".opblock-summary-path", has_text="/sdapi/v1/txt2img").first.wait_for(timeout=20000)
        assert elsewhere == []
    finally:
        page.close()
