"""The scripts' part of the page: the Script dropdown and AlwaysVisible scripts' groups of a generation tab, the
component hooks while a tab is built, and the notices (scripts that failed included)."""
from __future__ import annotations

from contextlib import AbstractContextManager

import gradio as gr

from modules import scripts
from modules.services import Services


def script_controls(services: Services, tab: str) -> list[gr.components.Component]:
    """Create the tab's script controls (inside its layout); returns them as the job's extra inputs."""
    runner = services.script_runners.get(tab)
    return runner.setup_ui() if runner is not None else []


def tab_scripts(services: Services, tab: str) -> AbstractContextManager:
    """Enter while building `tab` ("txt2img", "img2img"): its scripts' before_component/after_component see
    each component made."""
    return scripts.building_tab(services.script_runners.get(tab))


def notice_board() -> gr.Markdown:
    """The page's notices, empty and hidden until show_notices fills it once the tabs are built."""
    return gr.Markdown(elem_id="notices", visible=False)


def show_notices(board: gr.Markdown, services: Services) -> None:
    """Fill the board with the start-up notices and those of scripts that failed while the page was built."""
    notices = [*services.notices, *(notice for runner in services.script_runners.values()
                                    for notice in runner.notices)]
    board.value = "\n".join(f"⚠️ {notice}" for notice in dict.fromkeys(notices))
    board.visible = bool(notices)
