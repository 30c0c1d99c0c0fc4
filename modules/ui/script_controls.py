"""The Script dropdown and the AlwaysVisible scripts' accordions of a generation tab."""
from __future__ import annotations

import gradio as gr

from modules.services import Services


def script_controls(services: Services, tab: str) -> list[gr.components.Component]:
    """Create the tab's script controls (inside its layout); returns them as the job's extra inputs."""
    runner = services.script_runners.get(tab)
    return runner.setup_ui() if runner is not None else []
