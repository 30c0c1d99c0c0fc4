"""A1111's `modules.ui_components`: the small Gradio components extensions import (ToolButton, FormRow,
InputAccordion, ...), made from Gradio 6's. They and their subclasses render as their Gradio base
(see modules.extensions.gradio_compat)."""

from __future__ import annotations

import itertools
from typing import Any

import gradio as gr

from modules.extensions import gradio_compat
from modules.ui import input_accordion

gradio_compat.install()  # before the classes below are made: Gradio must not write a .pyi file beside this one


class FormComponent:
    """A1111's marker for components that sit in a form; Gradio 6 needs nothing from it."""


class ToolButton(gr.Button, FormComponent):
    """A small button, usually with one emoji as its text."""

    def __init__(self, value: str = "", *args: Any, elem_classes: list[str] | str | None = None, **kwargs: Any) -> None:
        classes = [elem_classes] if isinstance(elem_classes, str) else list(elem_classes or [])
        kwargs = {"size": "sm", "scale": 0, "min_width": 40, **kwargs}
        super().__init__(value, *args, elem_classes=["tool", *classes], **kwargs)


class ResizeHandleRow(gr.Row):
    """A row (A1111 adds a handle to resize its columns; here it is a plain row)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.elem_classes = [*(self.elem_classes or []), "resize-handle-row"]


class FormRow(gr.Row, FormComponent):
    """A row inside a form."""


class FormColumn(gr.Column, FormComponent):
    """A column inside a form."""


class FormGroup(gr.Group, FormComponent):
    """A group inside a form."""


class FormHTML(gr.HTML, FormComponent):
    """HTML inside a form."""


class FormColorPicker(gr.ColorPicker, FormComponent):
    """A colour picker inside a form."""


class DropdownMulti(gr.Dropdown, FormComponent):
    """A dropdown that always allows several choices."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "multiselect": True})


class DropdownEditable(gr.Dropdown, FormComponent):
    """A dropdown that also takes typed values."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "allow_custom_value": True})


class InputAccordionImpl(gr.Checkbox):
    """An accordion whose state is an input: this component is the checkbox in the accordion's header, ticked by
    opening the accordion until the user clicks the box itself (see modules/ui/input_accordion.py). Use it as a
    context manager to fill the accordion."""

    _numbers = itertools.count()

    def __init__(self, value: bool | None = None, setup: bool = False, **kwargs: Any) -> None:
        if not setup:  # Gradio re-runs __init__ with the recorded arguments when it copies a component
            super().__init__(value=value, **kwargs)
            return
        self.accordion_id = kwargs.get("elem_id") or f"input-accordion-{next(self._numbers)}"
        with input_accordion.wrapper(self.accordion_id):
            super().__init__(
                value=bool(value),
                **{**kwargs, "elem_id": input_accordion.checkbox_id(self.accordion_id), "container": False},
            )
            self.accordion = input_accordion.link(
                self, kwargs.get("label", "Accordion"), self.accordion_id, visible=kwargs.get("visible", True)
            )

    def extra(self) -> gr.Column:
        """A column for things to show beside the accordion's content (A1111 puts them in its label)."""
        return gr.Column(elem_id=f"{self.accordion_id}-extra", elem_classes="input-accordion-extra", min_width=0)

    def __enter__(self) -> InputAccordionImpl:
        self.accordion.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.accordion.__exit__(*exc)


def InputAccordion(value: bool | None = None, **kwargs: Any) -> InputAccordionImpl:
    """An accordion that is also a checkbox input: open means True."""
    return InputAccordionImpl(value=value, setup=True, **kwargs)
