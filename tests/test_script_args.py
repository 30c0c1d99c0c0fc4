"""Script arguments from the API (modules/api/scripts.py) are checked against the controls the script declares:
slider and number ranges, dropdown, radio and checkbox-group choices (index-typed ones too), checkbox booleans.
A value a control could not hold is a RequestError (422) naming the argument and the control's label."""

from __future__ import annotations

import gradio as gr
import pytest

from modules import scripts
from modules.api.errors import RequestError
from modules.api.scripts import ScriptControls


class Everything(scripts.Script):
    def title(self):
        return "Everything"

    def ui(self, is_img2img):
        return [
            gr.Slider(label="Loops", minimum=1, maximum=32, step=1, value=4),
            gr.Number(label="Anything", value=0),
            gr.Number(label="Positive", minimum=0, value=1),
            gr.Dropdown(label="Axis", choices=["Nothing", "Seed"], value="Nothing", type="index"),
            gr.Dropdown(label="Pair", choices=[("Shown", "sent")], value="sent"),
            gr.Dropdown(label="Many", choices=["a", "b"], value=["a"], multiselect=True),
            gr.Dropdown(label="Free", choices=["a"], value="a", allow_custom_value=True),
            gr.Radio(["start", "end"], label="Where", value="start"),
            gr.CheckboxGroup(["left", "right"], label="Sides", value=["left"]),
            gr.Checkbox(label="On", value=False),
            gr.Textbox(label="Text"),
            gr.HTML("<p>no value</p>"),
        ]


class Switch(scripts.Script):
    def title(self):
        return "Switch"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Slider(label="Level", minimum=0, maximum=9, value=3)]


@pytest.fixture(scope="module")
def runner():
    return scripts.ScriptRunner(scripts.LoadedScripts(classes=[(Everything, "e.py"), (Switch, "s.py")]), False)


@pytest.fixture(scope="module")
def controls():
    return ScriptControls()


def test_values_within_their_controls_are_passed_as_the_page_sends_them(runner, controls):
    everything, switch = runner.selectable[0], runner.alwayson[0]
    given = [32, -1e9, 0, "Seed", "Shown", ["b", "a"], "custom", "end", ["right"], True, "words", None]
    args = controls.args_for(runner, "everything", given, {"switch": {"args": [9]}})
    assert args[everything.args_from : everything.args_to] == [
        32,
        -1e9,
        0,
        1,
        "sent",
        ["b", "a"],
        "custom",
        "end",
        ["right"],
        True,
        "words",
        None,
    ]
    assert args[switch.args_from] == 9
    args = controls.args_for(runner, "everything", [1, 0, 0, 0, "sent"], {})
    assert args[everything.args_from : everything.args_from + 5] == [1, 0, 0, 0, "sent"]


@pytest.mark.parametrize(
    "index,value,message",
    [
        (0, 100000, "'Loops' must be from 1 to 32, got 100000"),
        (0, 0, "'Loops' must be from 1 to 32, got 0"),
        (0, "4", "'Loops' must be a number, got '4'"),
        (0, True, "'Loops' must be a number, got True"),
        (1, float("nan"), "'Anything' must be a number"),
        (2, -1, "'Positive' must be at least 0, got -1"),
        (3, 2, "'Axis' must be one of 'Nothing', 'Seed', got 2"),
        (3, "Sed", "'Axis' must be one of 'Nothing', 'Seed', got 'Sed'"),
        (4, "other", "'Pair' must be one of 'Shown', got 'other'"),
        (5, "a", "'Many' must be a list of choices"),
        (5, ["a", "z"], "'Many' must be one of 'a', 'b', got 'z'"),
        (7, "middle", "'Where' must be one of 'start', 'end', got 'middle'"),
        (8, ["up"], "'Sides' must be one of 'left', 'right', got 'up'"),
        (9, 1, "'On' must be true or false, got 1"),
        (10, 5, "'Text' must be text, got 5"),
    ],
)
def test_a_value_its_control_could_not_hold_is_refused_with_the_argument_named(runner, controls, index, value, message):
    given = [4, 0, 0, 0, "sent", [], "a", "start", [], False, "", None]
    given[index] = value
    with pytest.raises(RequestError, match=f"Everything's {message}") as caught:
        controls.args_for(runner, "everything", given, {})
    assert caught.value.field == f"script_args[{index}]"


def test_always_on_arguments_are_checked_too(runner, controls):
    with pytest.raises(RequestError, match="Switch's 'Level' must be from 0 to 9, got 10") as caught:
        controls.args_for(runner, None, [], {"Switch": {"args": [10]}})
    assert caught.value.field == "alwayson_scripts.Switch.args[0]"
