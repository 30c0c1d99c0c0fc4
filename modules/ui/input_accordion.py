"""A1111's InputAccordion on Gradio 6: an accordion with a checkbox in its header that says whether what it
holds is on. Opening the accordion ticks the box and closing it clears the box, until the user clicks the box
itself; from then on the two are independent (enabled and closed is fine). A value set by a handler or a pasted
infotext opens or closes the accordion while they are still linked.

The checkbox is a real Gradio checkbox (so its value is an input and its label names its ui-config.json key),
laid over the accordion's header by CSS (`.input-accordion-wrap` in style.css); nothing is moved in the DOM."""

from __future__ import annotations

import gradio as gr

# Each snippet is self-contained (pages without this app's scripts use them too); ID is the accordion's id.
_BOX = "document.querySelector('#ID-checkbox input')"
_FOLLOW_ACCORDION = "() => {{ const box = {box}; return box && box.dataset.unlinked ? box.checked : {open}; }}"
_UNLINK = f"() => {{ const box = {_BOX}; if (box) box.dataset.unlinked = '1'; }}"
_FOLLOW_VALUE = (
    "(checked) => { const box = " + _BOX + "; const head = document.querySelector('#ID > .label-wrap');"
    " if (!head || (box && box.dataset.unlinked)) return;"
    " if (head.classList.contains('open') !== Boolean(checked)) head.click(); }"
)


def _js(template: str, accordion_id: str) -> str:
    return template.replace("ID", accordion_id)


def checkbox_id(accordion_id: str) -> str:
    """The checkbox's elem_id, as A1111 names it."""
    return f"{accordion_id}-checkbox"


def wrapper(accordion_id: str) -> gr.Column:
    """The column that holds the checkbox and the accordion (enter it before making the checkbox)."""
    return gr.Column(elem_id=f"{accordion_id}-wrap", elem_classes=["input-accordion-wrap"], min_width=0)


def link(checkbox: gr.Checkbox, label: str, accordion_id: str, visible: bool = True) -> gr.Accordion:
    """Make the accordion for `checkbox` (made just before it, with elem_id checkbox_id(accordion_id)) and link
    the two as described above. Call inside `wrapper(accordion_id)`."""
    checkbox.elem_classes = [*(checkbox.elem_classes or []), "input-accordion-checkbox"]
    accordion = gr.Accordion(
        label, open=bool(checkbox.value), elem_id=accordion_id, elem_classes=["input-accordion"], visible=visible
    )
    for event, opened in ((accordion.expand, "true"), (accordion.collapse, "false")):
        event(
            None,
            js=_js(_FOLLOW_ACCORDION.format(box=_BOX, open=opened), accordion_id),
            outputs=[checkbox],
            queue=False,
            api_visibility="private",
        )
    checkbox.input(None, js=_js(_UNLINK, accordion_id), queue=False, api_visibility="private")
    checkbox.change(
        None,
        inputs=[checkbox],
        js=_js(_FOLLOW_VALUE, accordion_id),
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
    return accordion
