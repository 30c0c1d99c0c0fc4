"""The Settings tab: every declared setting (extensions' included), grouped by section; "Apply settings",
which validates the changed ones and saves them atomically (or none, if any is wrong) and says which wait
for a Reload UI or a restart; and "Reload UI", which rebuilds the page in the process."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from modules import restart
from modules.errors import UserError
from modules.extensions import gradio_compat
from modules.options import RELOAD_UI, RESTART, OptionInfo, Options
from modules.ui.extensions import RELOAD_AFTER_RESTART_JS, RESTARTING

log = logging.getLogger(__name__)


def setting_control(key: str, info: OptionInfo, value: Any, **extra: Any) -> gr.components.Component:
    """The control for one setting: the component an extension declared, with its arguments; else a dropdown
    for choices (several for a list), a checkbox for a flag, a slider for a bounded number, else a number or
    text box. `extra` goes to the control (scale...). An extension's HTML comment shows under the label."""
    kwargs: dict[str, Any] = {"label": info.shown_label, "value": value, "elem_id": f"setting_{key}", **extra}
    if info.comment:
        kwargs["info"] = info.comment
    if info.component is not None:
        return declared_component(key, info, kwargs)
    choices = info.choice_list()
    if isinstance(info.default, list):
        return gr.Dropdown(
            choices=choices or list(value), multiselect=True, allow_custom_value=choices is None, **kwargs
        )
    if choices is not None:
        return gr.Dropdown(choices=choices, **kwargs)
    if isinstance(info.default, bool):
        return gr.Checkbox(**kwargs)
    if isinstance(info.default, (int, float)):
        if info.minimum is not None and info.maximum is not None:
            return gr.Slider(minimum=info.minimum, maximum=info.maximum, step=info.step or 1, **kwargs)
        return gr.Number(precision=0 if isinstance(info.default, int) else None, **kwargs)
    return gr.Textbox(**kwargs)


def declared_component(key: str, info: OptionInfo, kwargs: dict[str, Any]) -> gr.components.Component:
    """The component an extension named for its setting, built with its component_args (a function is called
    now) over `kwargs`. Arguments the component doesn't take (Gradio 3's, or `info` for gr.HTML) are left out
    and logged."""
    args = info.component_args() if callable(info.component_args) else dict(info.component_args or {})
    wanted = {**kwargs, **args}
    if "choices" in wanted:  # A1111's lists may be tuples or change later; give the control its own list
        wanted["choices"] = list(wanted["choices"])
        if info.component is gr.Dropdown and wanted.get("value") not in info.choice_list():
            wanted.setdefault("allow_custom_value", True)  # a value from before the choices changed stays shown
    accepted = gradio_compat.accepted_keywords(info.component)
    if accepted is not None:
        dropped = sorted(set(wanted) - accepted)
        if set(dropped) - {"info"}:
            log.info(
                "Setting %s: %s doesn't take %s; left out",
                key,
                getattr(info.component, "__name__", "it"),
                ", ".join(dropped),
            )
        wanted = {name: value for name, value in wanted.items() if name in accepted}
    return info.component(**wanted)


def refreshed(opts: Options, key: str) -> dict:
    """Run a setting's refresh function (it scans again) and update its control: the choices it has now."""
    info = opts.info(key)
    info.refresh()
    choices = info.choice_list()
    return (
        gr.update(value=getattr(opts, key)) if choices is None else gr.update(choices=choices, value=getattr(opts, key))
    )


def _control_with_refresh(opts: Options, key: str, info: OptionInfo) -> gr.components.Component:
    """The setting's control, with a 🔄 beside it when the setting has a refresh function (A1111's)."""
    if info.refresh is None:
        return setting_control(key, info, getattr(opts, key))
    with gr.Row():
        control = setting_control(key, info, getattr(opts, key), scale=4)
        button = gr.Button("🔄", elem_id=f"refresh_{key}", size="sm", scale=0, min_width=40)
    button.click(lambda: refreshed(opts, key), outputs=control, api_visibility="private")
    return control


def apply_settings(
    opts: Options, keys: list[str], values: list[Any], change: Callable[[dict[str, Any]], None] | None = None
) -> str:
    """Apply the changed values together, through `change(values)` when given (UserSettings.change,
    which also swaps the VAE and checks what a page user may change), else saved with opts.set_many. They are
    all checked first: when any is wrong (or can't be applied or saved), each problem is named and nothing is
    changed. Returns what happened, naming the changes that wait for a Reload UI or a restart."""
    wanted = {key: value for key, value in zip(keys, values) if value != getattr(opts, key)}
    problems = []
    for key, value in wanted.items():
        try:
            opts.validated(key, value)
        except ValueError as exc:
            problems.append(str(exc))
    if not problems:
        try:
            (change or opts.set_many)(wanted)
        except (ValueError, UserError) as exc:
            problems.append(str(exc))
    if problems:
        return _html(["Nothing was saved; fix these first:", *problems])
    labels = [opts.info(key).label for key in wanted]
    lines = [f"{len(wanted)} settings changed" + (f": {', '.join(labels)}." if wanted else ".")]
    for when, what in ((RELOAD_UI, "press Reload UI"), (RESTART, "restart the program")):
        waiting = [opts.info(key).label for key in wanted if opts.info(key).applies == when]
        if waiting:
            lines.append(f"To use {', '.join(waiting)}, {what}.")
    return _html(lines)


def _html(lines: list[str]) -> str:
    return "<br>".join(html.escape(line) for line in lines)


def reload_ui() -> str:
    """Ask for the in-process restart; the page reloads itself once the new one answers."""
    if restart.request_restart():
        return f'<p class="{RESTARTING}">Reloading the UI…</p>'
    return _html(["This app was started in a way that can't reload the UI in place; restart it instead."])


def build_tab(
    opts: Options, change: Callable[[dict[str, Any]], None] | None = None, hide_folders: bool = False
) -> None:
    """Lay out the tab (call inside a gr.Tab context); `change` as for apply_settings. The quicksettings
    row's settings live there instead; `hide_folders` (--hide-ui-dir-config) leaves out the output folders."""
    on_top = {"sd_model_checkpoint", *opts.quicksettings_list}
    declared = {
        key: info
        for key, info in opts.declared().items()
        if key not in on_top
        and info.section is not None  # None: a hidden setting
        and not (hide_folders and info.server_folder)
    }
    sections: dict[str, list[str]] = {}
    for key, info in declared.items():
        sections.setdefault(info.section, []).append(key)
    with gr.Row():
        submit = gr.Button("Apply settings", variant="primary", elem_id="settings_submit")
        reload = gr.Button("Reload UI", elem_id="settings_restart_gradio")
    result = gr.HTML(elem_id="settings_result")
    # A1111's search box; javascript/settings_search.js filters the settings in the page as one types
    gr.Textbox(elem_id="settings_search", placeholder="Search...", show_label=False, max_lines=1, container=False)
    keys, controls = [], []
    with gr.Tabs(elem_id="settings"):
        for section, section_keys in sections.items():
            with gr.Tab(section, elem_id=f"settings_{section.lower().replace(' ', '_')}"):
                for key in section_keys:
                    keys.append(key)
                    controls.append(_control_with_refresh(opts, key, declared[key]))
    submit.click(
        lambda *values: apply_settings(opts, keys, list(values), change),
        inputs=controls,
        outputs=result,
        api_name="settings_apply",
    )
    reload.click(reload_ui, outputs=result, api_name="settings_reload_ui").then(
        None, inputs=result, js=RELOAD_AFTER_RESTART_JS
    )
