"""Scripts for API requests: script_name, script_args and alwayson_scripts turned into the argument list
the page sends (the Script dropdown's index, then every script control's value), as A1111's API does."""

from __future__ import annotations

import math
import threading
from typing import Any

import gradio as gr

from modules.api.errors import RequestError
from modules.api.models import ScriptArg, ScriptInfo
from modules.scripts import Script, ScriptRunner
from modules.ui.script_controls import build_controls


def _choice_labels(control: Any) -> list[Any] | None:
    choices = getattr(control, "choices", None)
    if choices is None:
        return None
    return [choice[0] if isinstance(choice, (tuple, list)) else choice for choice in choices]


def _as_sent(control: Any, value: Any) -> Any:
    """A control's value as the page sends it: an index-typed dropdown or radio sends the choice's index."""
    labels = _choice_labels(control)
    if getattr(control, "type", None) == "index" and isinstance(value, str) and labels and value in labels:
        return labels.index(value)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _choice(control: Any, value: Any) -> Any:
    """One choice of a dropdown, radio or checkbox group as the page sends it (its value, or with type
    "index" its position), given as its label, its value or (index-typed) its position; ValueError if none."""
    choices = [choice if isinstance(choice, (tuple, list)) else (choice, choice) for choice in control.choices]
    labels, values = [label for label, _ in choices], [choice for _, choice in choices]
    if getattr(control, "type", None) == "index":
        if _is_number(value) and value == int(value) and 0 <= value < len(choices):
            return int(value)
        for known in (labels, values):
            if isinstance(value, str) and value in known:
                return known.index(value)
    else:
        if value in values:
            return value
        if isinstance(value, str) and value in labels:
            return values[labels.index(value)]
        if getattr(control, "allow_custom_value", False):
            return value
    raise ValueError(f"must be one of {', '.join(map(repr, labels))}, got {value!r}")


def checked_value(control: Any, value: Any) -> Any:
    """`value` for `control` as the page would send it; ValueError saying why the control could not hold it
    (a slider's or number's range, a dropdown's, radio's or checkbox group's choices, a checkbox's true/false)."""
    if isinstance(control, gr.Checkbox):
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value
    if isinstance(control, (gr.Slider, gr.Number)):
        if not _is_number(value):
            raise ValueError(f"must be a number, got {value!r}")
        low, high = getattr(control, "minimum", None), getattr(control, "maximum", None)
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (
                f"from {low:g} to {high:g}"
                if low is not None and high is not None
                else f"at least {low:g}"
                if low is not None
                else f"at most {high:g}"
            )
            raise ValueError(f"must be {bounds}, got {value!r}")
        return value
    if isinstance(control, (gr.Dropdown, gr.Radio, gr.CheckboxGroup)) and control.choices is not None:
        if isinstance(control, gr.CheckboxGroup) or getattr(control, "multiselect", False):
            if not isinstance(value, list):
                raise ValueError(f"must be a list of choices, got {value!r}")
            return [_choice(control, item) for item in value]
        return _choice(control, value)
    if isinstance(control, gr.Textbox) and value is not None and not isinstance(value, str):
        raise ValueError(f"must be text, got {value!r}")
    return value


class ScriptControls:
    """Each tab's script controls, made once in a Blocks of their own (A1111's API does the same) so
    that their layout and defaults are known with or without the page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[int, tuple[ScriptRunner, list]] = {}

    def controls(self, runner: ScriptRunner) -> list:
        """The runner's inputs: the Script dropdown, then every script's controls."""
        with self._lock:
            made = self._made.get(id(runner))
            if made is None or made[0] is not runner:
                with gr.Blocks():
                    made = self._made[id(runner)] = (runner, build_controls(runner))
            return made[1]

    def defaults(self, runner: ScriptRunner) -> list:
        """The argument list of a job with no script picked and every control at its default."""
        return [_as_sent(control, control.value) for control in self.controls(runner)]

    def args_for(
        self, runner: ScriptRunner | None, script_name: str | None, script_args: list, alwayson: dict[str, Any]
    ) -> list:
        """The job's script arguments; a RequestError names an unknown script, too many arguments, or one its
        control could not hold."""
        if runner is None:
            if script_name or alwayson:
                raise RequestError("script_name", "no scripts are loaded")
            return [0]
        controls = self.controls(runner)
        args = self.defaults(runner)
        if script_name:
            try:
                args[0] = runner.script_by_title(script_name)
            except ValueError as exc:
                raise RequestError("script_name", str(exc)) from None
            _place(args, controls, runner.selectable[args[0] - 1], script_args, "script_args")
        elif script_args:
            raise RequestError("script_args", "script_args needs a script_name")
        for title, entry in alwayson.items():
            script = _alwayson_script(runner, title)
            values = entry.get("args", []) if isinstance(entry, dict) else entry
            if not isinstance(values, list):
                raise RequestError(f"alwayson_scripts.{title}", 'give the arguments as {"args": [...]}')
            _place(args, controls, script, values, f"alwayson_scripts.{title}.args")
        return args

    def info(self, runner: ScriptRunner) -> list[ScriptInfo]:
        """Every script of the tab with its controls' labels, defaults, ranges and choices."""
        controls = self.controls(runner)
        return [
            ScriptInfo(
                name=script.title().lower(),
                is_alwayson=script.alwayson,
                is_img2img=runner.is_img2img,
                args=[_arg(control) for control in controls[script.args_from : script.args_to]],
            )
            for script in [*runner.selectable, *runner.alwayson]
        ]


def _arg(control: Any) -> ScriptArg:
    return ScriptArg(
        label=getattr(control, "label", None),
        value=control.value,
        minimum=getattr(control, "minimum", None),
        maximum=getattr(control, "maximum", None),
        step=getattr(control, "step", None),
        choices=_choice_labels(control),
    )


def _alwayson_script(runner: ScriptRunner, title: str) -> Script:
    for script in runner.alwayson:
        if script.title().lower() == title.lower():
            return script
    names = ", ".join(script.title() for script in runner.alwayson) or "none"
    raise RequestError(f"alwayson_scripts.{title}", f"There is no always-on script named {title!r}; there are: {names}")


def _place(args: list, controls: list, script: Script, values: list, field: str) -> None:
    """Put a script's given `values` into `args`, each checked against its control (a RequestError names
    `field`[i] and the control's label)."""
    room = script.args_to - script.args_from
    if len(values) > room:
        raise RequestError(field, f"{script.title()} takes {room} arguments, got {len(values)}")
    for number, value in enumerate(values):
        control = controls[script.args_from + number]
        try:
            args[script.args_from + number] = checked_value(control, value)
        except ValueError as exc:
            label = getattr(control, "label", None)
            raise RequestError(
                f"{field}[{number}]",
                f"{script.title()}'s {label!r} {exc}" if label else f"{script.title()}'s argument {number} {exc}",
            ) from None
