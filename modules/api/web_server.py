"""Serving, whatever the flags: the page, the /sdapi/v1 API, or both on one port, as one FastAPI app on one
uvicorn server. Every request passes modules/api/http_guards.py first, and the page is marked launched the way
Blocks.launch marks it, so Gradio checks every file a request names (only the user's uploads) and every
file an answer names (only allowed_paths, its cache, the working and temp folders)."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr
import uvicorn
from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse
from gradio import networking
from gradio.routes import App as GradioApp
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from modules import script_callbacks
from modules.api.api_docs import add_offline_docs
from modules.api.auth import schema_declaration
from modules.api.errors import install_error_handlers
from modules.api.file_urls import FileUrls
from modules.api.http_guards import RequestGuard, SessionCheck
from modules.api.routes import SdApi
from modules.core.services import Services
from modules.ui.page_head import PageHead

log = logging.getLogger(__name__)
OPTS_MAX_WAIT = 30.0  # seconds /internal/opts?wait= may hold a request for changed settings


def create_app(
    services: Services,
    api_auth: Sequence[tuple[str, str]] = (),
    page: gr.Blocks | None = None,
    page_options: dict[str, Any] | None = None,
    *,
    serve_api: bool = True,
    host: str = "127.0.0.1",
    port: int = 7860,
) -> FastAPI:
    """The app: the /sdapi/v1 routes when `serve_api` (HTTP Basic when `api_auth` has accounts) with their
    schema at /docs, the page at / when given (`page_options` as for Blocks.launch: auth, allowed_paths,
    css, head…, served at http://host:port), and the request guard (body cap: setting max_request_bytes)."""
    if serve_api:
        app = FastAPI(
            title="Stable Diffusion web UI API", description="AUTOMATIC1111-compatible /sdapi/v1 routes", docs_url=None
        )
        add_offline_docs(app)
        install_error_handlers(app)
        app.include_router(SdApi(services).router([Depends(schema_declaration)] if api_auth else []))
    else:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    page_session = None
    if page is not None:
        options = dict(page_options or {})
        head = options.pop("head", "")
        gr.mount_gradio_app(app, page, path="/", server_name=host, server_port=port, **options)
        gradio_app = _mounted_app(app)
        _mark_launched(page, gradio_app, host, port)
        if gradio_app.auth is not None:
            page_session = _session_check(gradio_app)
        _add_page_routes(app, services, page_session)
        app.add_middleware(PageHead, head=head, logged_in=page_session)
    elif serve_api:
        app.add_api_route("/", lambda: RedirectResponse("/docs"), include_in_schema=False)
    app.add_middleware(
        RequestGuard,
        max_body=services.opts.max_request_bytes,
        api_accounts=api_auth if serve_api else (),
        page_session=page_session,
    )
    _serve_page_last(app)
    return app


def _add_page_routes(app: FastAPI, services: Services, page_session: SessionCheck | None) -> None:
    """What A1111's page scripts fetch besides Gradio's routes: `/file=<path>` (modules/api/file_urls.py) and
    the settings' current values for the page's `opts` (`/internal/opts`), both behind the page login."""
    files = FileUrls(services.paths.root)

    def refused(request: Request) -> Response | None:
        if page_session is not None and not page_session(request):
            return PlainTextResponse("Log in to the page first", status_code=401)
        return None

    def serve_file(name: str, request: Request) -> Response:
        denied = refused(request)
        path = files.resolve(name) if denied is None else None
        return denied or (FileResponse(path) if path is not None else PlainTextResponse("File not found", 404))

    async def current_opts(request: Request, wait: float = 0.0) -> Response:
        """The settings' values, tagged (ETag). With `wait` and If-None-Match naming the values the page has,
        the answer waits up to `wait` seconds (30 at most) for them to change: 304 when they don't."""
        denied = refused(request)
        if denied is not None:
            return denied
        deadline = time.monotonic() + (min(wait, OPTS_MAX_WAIT) if wait > 0 else 0.0)
        while True:
            body = json.dumps(services.opts.as_dict(), default=str).encode()
            tag = f'"{hashlib.sha1(body).hexdigest()}"'
            headers = {"ETag": tag, "Cache-Control": "no-store"}
            if tag != request.headers.get("if-none-match"):
                return Response(body, media_type="application/json", headers=headers)
            if time.monotonic() >= deadline:
                return Response(status_code=304, headers=headers)
            await asyncio.sleep(0.25)

    app.add_api_route("/file={name:path}", serve_file, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/internal/opts", current_opts, methods=["GET"], include_in_schema=False)


def _mounted_app(app: FastAPI) -> GradioApp:
    return next(
        route.app for route in app.router.routes if isinstance(route, Mount) and isinstance(route.app, GradioApp)
    )


def _mark_launched(page: gr.Blocks, gradio_app: GradioApp, host: str, port: int) -> None:
    """What Blocks.launch records once its server runs. `has_launched` is what turns on Gradio's checks of
    the files named in requests and answers (processing_utils._check_allowed)."""
    page.server_app = page.app = gradio_app
    page._queue.set_server_app(gradio_app)
    page.server = None  # uvicorn is ours: Blocks.close must not close it
    page.server_name, page.server_port, page.protocol = host, port, "http"
    page.local_url = f"http://{host}:{port}/"
    page.local_api_url = f"{page.local_url}gradio_api/"
    page.has_launched = page.is_running = True


def _session_check(gradio_app: GradioApp) -> SessionCheck:
    """Whether a request carries a page session: a cookie Gradio's /login set, named and kept as
    gradio/routes.py does (`access-token[-unsecure]-<cookie_id>`, the token a key of `tokens`)."""

    def logged_in(request: Request) -> bool:
        return any(
            request.cookies.get(f"{name}-{gradio_app.cookie_id}") in gradio_app.tokens
            for name in ("access-token", "access-token-unsecure")
        )

    return logged_in


def _serve_page_last(app: FastAPI) -> None:
    """The page is mounted at /, so it would answer every path: routes that on_app_started hooks add
    (A1111 extensions do) go before it."""
    app.router.routes.sort(key=lambda route: isinstance(route, Mount) and route.path == "")


class CutStreams(logging.Filter):
    """uvicorn logs the requests it cancels when serving stops (a page's open event stream, at Reload UI) as
    errors, each with a traceback; that is expected, so each becomes one info line."""

    def filter(self, record: logging.LogRecord) -> bool:
        cancelled = record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError)
        if cancelled:
            record.msg, record.args = "A request still open when serving stopped was cancelled", ()
            record.exc_info = record.exc_text = None
        if cancelled or "graceful shutdown exceeded" in record.getMessage():
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def start(
    services: Services,
    args: argparse.Namespace,
    api_auth: Sequence[tuple[str, str]] = (),
    page: gr.Blocks | None = None,
    page_options: dict[str, Any] | None = None,
) -> Callable[[], None]:
    """Build the app (the API with --api or --nowebui), tell scripts it started (on_app_started) and serve
    it from a thread, once the checkpoint list is known (a client listing sd-models at once sees the demo model
    written at a first start). Returns the function that stops serving."""
    host = "0.0.0.0" if args.listen else "127.0.0.1"
    if services.checkpoints_listed is not None:
        concurrent.futures.wait([services.checkpoints_listed])  # a failure there is the model load's to report
    serve_api = bool(args.api or args.nowebui)
    app = create_app(services, api_auth, page, page_options, serve_api=serve_api, host=host, port=args.port)
    script_callbacks.app_started_callback(page, app)
    _serve_page_last(app)
    # Streams the page keeps open (heartbeats) end when the page closes; anything else gets a moment.
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=args.port, log_level="warning", timeout_graceful_shutdown=2)
    )
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(one, CutStreams) for one in uvicorn_log.filters):
        uvicorn_log.addFilter(CutStreams())
    thread = threading.Thread(target=server.run, name="http-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit(f"error: could not serve on {host}:{args.port}")
        time.sleep(0.05)
    served = " and ".join(part for part, on in (("the page", page is not None), ("the API", serve_api)) if on)
    log.info("Serving %s on http://%s:%d%s", served, host, args.port, " (API schema at /docs)" if serve_api else "")

    def stop() -> None:
        if page is not None:
            page.close(verbose=False)
        server.should_exit = True
        thread.join(10)

    return stop


def serve(services: Services, args: argparse.Namespace, api_auth: Sequence[tuple[str, str]]) -> None:
    """Serve the API alone (--nowebui) until Ctrl+C."""
    stop = start(services, args, api_auth)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop()


def open_share_tunnel(port: int) -> threading.Thread:
    """--share: ask Gradio's share server for a public link to this port, in the background. Offline (or
    when the share server refuses) the log says so and serving goes on."""

    def open_tunnel() -> None:
        try:
            url = networking.setup_tunnel("127.0.0.1", port, secrets.token_urlsafe(32), None, None)
        except Exception as exc:
            reason = f"{exc} ({exc.__cause__})" if exc.__cause__ else str(exc)
            log.error(
                "Could not create the --share link, so there is no public address (the local one still works): %s",
                reason,
            )
            return
        log.info("Public link (--share): %s", url)

    thread = threading.Thread(target=open_tunnel, name="share-tunnel", daemon=True)
    thread.start()
    return thread
