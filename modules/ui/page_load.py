"""What the page asks the server for each time a browser loads it, as one load event.

Gradio's page keeps a loading status for every output of every event it has run, and on each status message of
any event it looks each of them up in its whole component tree. One event with all the outputs costs the browser
much less than one event per part (about 0.4 CPU s less per page load with four parts)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

log = logging.getLogger(__name__)

Part = tuple[Callable[..., Sequence[Any]], list[gr.components.Component], list[gr.components.Component]]


class PageLoad:
    """The parts of the page's load event: each a function of its inputs' values that returns one update per
    output. A part that fails is logged and leaves its outputs as they were; the other parts still land."""

    def __init__(self) -> None:
        self.parts: list[Part] = []

    def add(
        self,
        fn: Callable[..., Sequence[Any]],
        inputs: Sequence[gr.components.Component],
        outputs: Sequence[gr.components.Component],
    ) -> None:
        """Run `fn(*values of inputs)` when the page loads; it returns one value or update per output."""
        self.parts.append((fn, list(inputs), list(outputs)))

    def connect(self, page: gr.Blocks, **event: Any) -> None:
        """Register the one load event on `page`; `event`: more arguments for `page.load`."""
        parts = list(self.parts)

        def load_page(*values: Any) -> list:
            updates: list = []
            for fn, inputs, outputs in parts:
                taken, values = values[: len(inputs)], values[len(inputs) :]
                try:
                    updates.extend(fn(*taken))
                except Exception:
                    log.exception("Part of the page's load failed: %s", getattr(fn, "__qualname__", fn))
                    updates.extend(gr.update() for _ in outputs)
            return updates

        page.load(
            load_page,
            inputs=[control for _, inputs, _ in parts for control in inputs],
            outputs=[control for _, _, outputs in parts for control in outputs],
            show_progress="hidden",
            **event,
        )
