"""The scripts' part of the page: the Script dropdown and AlwaysVisible scripts' groups of a generation tab, the
component hooks while a tab is built, and the notices (scripts that failed included)."""

from __future__ import annotations

from contextlib import AbstractContextManager

import gradio as gr

from modules import scripts
from modules.core.services import Services


def script_controls(services: Services, tab: str) -> list[gr.components.Component]:
    """Create the tab's script controls (inside its layout); returns them as the job's extra inputs."""
    runner = services.scripts.runners.get(tab)
    return build_controls(runner) if runner is not None else []


def build_controls(runner: scripts.ScriptRunner) -> list[gr.components.Component]:
    """Create the Script dropdown, each selectable script's group (shown while it is picked) and the AlwaysVisible
    scripts' groups of `runner`'s tab (call inside the tab's layout); returns the job's extra inputs: the dropdown
    (an index, 0 = None) followed by every script's controls."""
    inputs: list[gr.components.Component] = []
    dropdown = gr.Dropdown(
        label="Script",
        choices=["None", *runner.titles],
        value="None",
        type="index",
        elem_id=f"{runner.tab}_script_dropdown",
    )
    inputs.append(dropdown)
    for script in list(runner.alwayson):  # in a plain group, as A1111: the script brings its own accordion
        with gr.Group(elem_id=script.elem_id("group")) as group:
            added = _add_controls(runner, script, inputs)
        group.visible = added
    groups = []
    for script in list(runner.selectable):
        with gr.Group(visible=False) as group:
            added = _add_controls(runner, script, inputs)
        if added:
            script.group = group
            groups.append(group)
    dropdown.choices = [(title, title) for title in ["None", *runner.titles]]

    def show_selected(index: int | None) -> list:
        return [gr.Group(visible=index == number + 1) for number in range(len(groups))]

    if groups:
        dropdown.change(show_selected, inputs=dropdown, outputs=groups, queue=False, api_visibility="private")
    return inputs


def _add_controls(runner: scripts.ScriptRunner, script: scripts.Script, inputs: list) -> bool:
    """Call the script's ui() and add its controls to `inputs`; False (and the script left out of the tab) when
    ui() raises."""
    try:
        controls = script.ui(runner.is_img2img) or []
    except Exception:
        runner.leave_out(script, f"The controls (ui()) of script {type(script).__name__}")
        return False
    script.controls = list(controls)
    script.args_from = len(inputs)
    inputs.extend(control for control in controls if control is not None)
    script.args_to = len(inputs)
    return True


def tab_scripts(services: Services, tab: str) -> AbstractContextManager:
    """Enter while building `tab` ("txt2img", "img2img"): its scripts' before_component/after_component see
    each component made."""
    return scripts.building_tab(services.scripts.runners.get(tab))


def notice_board() -> gr.Markdown:
    """The page's notices, empty and hidden until show_notices fills it once the tabs are built."""
    return gr.Markdown(elem_id="notices", visible=False)


def show_notices(board: gr.Markdown, services: Services) -> None:
    """Fill the board with the start-up notices and those of scripts that failed while the page was built."""
    notices = [
        *services.page.notices,
        *(notice for runner in services.scripts.runners.values() for notice in runner.notices),
    ]
    board.value = "\n".join(f"⚠️ {notice}" for notice in dict.fromkeys(notices))
    board.visible = bool(notices)
