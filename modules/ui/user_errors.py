"""How the page answers a problem the user can act on: one line in the server log and the message in a toast,
with no traceback (Gradio prints one for every gr.Error unless told not to). Real faults still raise as they
are, so Gradio logs their tracebacks."""

from __future__ import annotations

import logging

import gradio as gr

log = logging.getLogger(__name__)


def page_error(exc: Exception | str) -> gr.Error:
    """The gr.Error to raise for `exc` (a UserError, a refused value, or a message), logged as one line."""
    message = str(exc)
    log.warning("Refused: %s", message.splitlines()[0] if message else type(exc).__name__)
    return gr.Error(message, print_exception=False)
