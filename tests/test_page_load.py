"""modules/ui/page_load.py: the parts of the page's load run as one event, and a part that fails leaves only its
own outputs unchanged."""

from __future__ import annotations

import logging

import gradio as gr
import pytest

from modules.ui.page_load import PageLoad


def load_events(page: gr.Blocks) -> list:
    return [fn for fn in page.fns.values() if any(event == "load" for _, event in fn.targets)]


def test_the_parts_run_in_one_event_and_a_failing_part_leaves_its_outputs(caplog: pytest.LogCaptureFixture):
    def broken() -> tuple:
        raise OSError("the folder went away")

    with gr.Blocks() as page:
        name, greeting, left, right = gr.Textbox("Ada"), gr.Textbox(), gr.Textbox("kept"), gr.Textbox("kept too")
        total = gr.Number()
        load = PageLoad()
        load.add(lambda text: (f"Hello {text}",), [name], [greeting])
        load.add(broken, [], [left, right])
        load.add(lambda text, count: (count + len(text),), [name, total], [total])
        load.connect(page, api_visibility="private")
    (event,) = load_events(page)
    assert [block._id for block in event.inputs] == [name._id, name._id, total._id]
    assert [block._id for block in event.outputs] == [greeting._id, left._id, right._id, total._id]
    with caplog.at_level(logging.ERROR, logger="modules.ui.page_load"):
        updates = event.fn("Ada", "Ada", 2)
    assert updates == ["Hello Ada", gr.update(), gr.update(), 5]
    assert "the folder went away" in caplog.text and "broken" in caplog.text
