"""A1111 routes for features this server doesn't have: each answers in A1111's error shape, saying what is
missing, so a client learns why instead of getting a 404 for a route A1111 has."""

from __future__ import annotations

from typing import Any

from fastapi import Body, HTTPException

from modules.paths import DataPaths

# route → what it would need that this server lacks
NOT_IMPLEMENTED = {
    "create/embedding": "Creating textual-inversion embeddings needs A1111's training code, which this server "
    "doesn't have; put ready-made embeddings in {embeddings}",
    "create/hypernetwork": "Creating hypernetworks needs A1111's training code, which this server doesn't have; "
    "put ready-made .pt files in {hypernetworks}",
    "train/embedding": "Training textual-inversion embeddings needs A1111's training code, which this server "
    "doesn't have; train elsewhere and put the result in {embeddings}",
    "train/hypernetwork": "Training hypernetworks needs A1111's training code, which this server doesn't have; "
    "train elsewhere and put the result in {hypernetworks}",
}


def not_implemented(route: str, paths: DataPaths) -> HTTPException:
    """501 for a training route, naming what is missing."""
    message = NOT_IMPLEMENTED[route].format(embeddings=paths.embeddings, hypernetworks=paths.models / "hypernetworks")
    return HTTPException(501, f"{route}: {message}")


def add_routes(router: Any, paths: DataPaths) -> None:
    """POST the create/train routes on `router` (an APIRouter)."""

    def route_for(name: str):
        def refuse(args: dict[str, Any] = Body(default_factory=dict)) -> dict:
            raise not_implemented(name, paths)

        refuse.__name__ = name.replace("/", "_")
        return refuse

    for name in NOT_IMPLEMENTED:
        router.add_api_route(f"/{name}", route_for(name), methods=["POST"])
