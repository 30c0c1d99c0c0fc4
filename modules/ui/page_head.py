"""The page's own and the extensions' scripts, written into the HTML of the page's `<head>` as plain
`<script>` tags, as A1111 does: they run in order while the page is parsed, before DOMContentLoaded and
before Gradio's app starts. (Gradio's own `head` option adds them from its app code, after the document
has loaded, so listeners for DOMContentLoaded would never run.)"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_PATHS = ("/", "")
HEAD_END = b"</head>"


class PageHead:
    """ASGI middleware: adds `head` (HTML) at the end of the `<head>` of the page served at /. With a page
    login, only a logged-in request gets it (`logged_in`; None: the page has no login)."""

    def __init__(self, app: ASGIApp, *, head: str, logged_in: Callable[[Request], bool] | None = None) -> None:
        self.app = app
        self.head = head.encode("utf-8")
        self.logged_in = logged_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["path"] not in PAGE_PATHS
            or not self.head
            or (self.logged_in is not None and not self.logged_in(Request(scope)))
        ):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            named = {k.lower(): v for k, v in headers}
            if named.get(b"content-type", b"").startswith(b"text/html") and b"content-encoding" not in named:
                body = with_head(body, self.head)
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffered)


def with_head(html: bytes, head: bytes) -> bytes:
    """`html` with `head` just before the `</head>` that closes the document's head (the last one before
    `<body`, so no `</head>` inside the page's embedded config can be taken for it)."""
    body_at = html.find(b"<body")
    end = html.rfind(HEAD_END, 0, body_at if body_at >= 0 else len(html))
    return html if end < 0 else html[:end] + head + html[end:]
