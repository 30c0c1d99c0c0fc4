"""POST server-kill, server-restart and server-stop: allowed only when the server was started with
--api-server-stop (A1111's flag), refused with 403 naming the flag otherwise."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException
from fastapi.responses import PlainTextResponse
from starlette.background import BackgroundTask

from modules import restart

log = logging.getLogger(__name__)


def _stop_gracefully() -> None:
    """As Ctrl+C: app.py's main thread stops serving and frees what it holds (SIGTERM raises KeyboardInterrupt
    there)."""
    os.kill(os.getpid(), signal.SIGTERM)


def _kill() -> None:
    """Exit at once, as A1111's server-kill does."""
    logging.shutdown()
    os._exit(0)


def kill() -> PlainTextResponse:
    log.warning("server-kill: exiting now")
    return PlainTextResponse("Killing.", background=BackgroundTask(_kill))


def stop() -> PlainTextResponse:
    log.warning("server-stop: stopping the server")
    return PlainTextResponse("Stopping.", background=BackgroundTask(_stop_gracefully))


def restart_in_place() -> dict:
    """Rebuild the page and reload scripts in this process (as Settings → Reload UI); 501, as in A1111, when
    the server can't restart (the API alone, --nowebui)."""
    if not restart.request_restart():
        raise HTTPException(
            501, "This server can't restart in place: it serves the API alone (--nowebui); stop it and start it again"
        )
    return {}


COMMANDS: dict[str, Callable[[], Any]] = {"server-kill": kill, "server-restart": restart_in_place, "server-stop": stop}


def add_routes(router: Any, allowed: bool) -> None:
    """The three routes on `router` (an APIRouter); each refuses unless `allowed` (--api-server-stop)."""
    for name, command in COMMANDS.items():
        router.add_api_route(f"/{name}", command if allowed else _refusal(name), methods=["POST"])


def _refusal(name: str) -> Callable[[], Any]:
    def refuse() -> None:
        raise HTTPException(403, f"{name} is turned off: start the server with --api-server-stop to allow it")

    refuse.__name__ = f"refuse_{name.replace('-', '_')}"
    return refuse
