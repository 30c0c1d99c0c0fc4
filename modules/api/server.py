"""Serving the API: beside the page on one port (--api), or alone (--nowebui)."""
from __future__ import annotations

import argparse
import logging
import threading
import time
from typing import Any, Callable

import gradio as gr
import uvicorn
from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse

from modules import script_callbacks
from modules.api.auth import basic_auth
from modules.api.errors import install_error_handlers
from modules.api.routes import SdApi
from modules.services import Services

log = logging.getLogger(__name__)


def create_app(services: Services, api_auth: list[tuple[str, str]], page: gr.Blocks | None = None,
               page_options: dict[str, Any] | None = None) -> FastAPI:
    """A FastAPI app with the /sdapi/v1 routes (HTTP Basic when `api_auth` has accounts), their schema at
    /docs, and the page mounted at / when given (`page_options` as for Blocks.launch: auth, css, …)."""
    app = FastAPI(title="Stable Diffusion web UI API", description="AUTOMATIC1111-compatible /sdapi/v1 routes")
    install_error_handlers(app)
    dependencies = [Depends(basic_auth(api_auth))] if api_auth else []
    app.include_router(SdApi(services).router(dependencies))
    if page is None:
        app.add_api_route("/", lambda: RedirectResponse("/docs"), include_in_schema=False)
        return app
    return gr.mount_gradio_app(app, page, path="/", **(page_options or {}))


def start(services: Services, args: argparse.Namespace, api_auth: list[tuple[str, str]],
          page: gr.Blocks | None = None, page_options: dict[str, Any] | None = None) -> Callable[[], None]:
    """Build the app, tell scripts it started (on_app_started) and serve it from a thread.
    Returns the function that stops the server."""
    app = create_app(services, api_auth, page, page_options)
    script_callbacks.app_started_callback(page, app)
    host = "0.0.0.0" if args.listen else "127.0.0.1"
    # Streams the page keeps open (heartbeats) never end by themselves: give them a moment, then stop.
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=args.port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="http-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit(f"error: could not serve on {host}:{args.port}")
        time.sleep(0.05)
    log.info("Serving %s on http://%s:%d (API schema at /docs)", "the page and the API" if page else "the API",
             host, args.port)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
    return stop


def serve(services: Services, args: argparse.Namespace, api_auth: list[tuple[str, str]]) -> None:
    """Serve the API alone (--nowebui) until Ctrl+C."""
    stop = start(services, args, api_auth)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
