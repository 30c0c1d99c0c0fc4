"""The top row of a generation tab, laid out as A1111 1.10's: the prompt and negative prompt (with their token
counters) on the left; on the right Generate, with Interrupt and Skip taking its place while a job runs, the tool
buttons (↙️ 🗑️ 📋) and the Styles dropdown with 🖌️, which opens the Edit styles dialog."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from modules.errors import UserError
from modules.ui.styles_editor import StylesEditor
from modules.ui.user_errors import page_error

if TYPE_CHECKING:
    from modules.ui.generation_tab import GenerationTab

CONFIRM_CLEAR = "(prompt, negative) => confirm('Delete prompt?') ? ['', ''] : [prompt, negative]"
PROMPTS = (("prompt", "prompt", "Prompt"), ("negative_prompt", "neg_prompt", "Negative prompt"))  # field, A1111 id
# Interrupt and Skip show in Generate's place from the click until the job's events are over (style.css).
SHOW_BUSY = "() => document.getElementById('{box}')?.classList.add('busy')"
SHOW_IDLE = "() => document.getElementById('{box}')?.classList.remove('busy')"


def tool_button(text: str, elem_id: str) -> gr.Button:
    """A small emoji button (its hover hint and aria-label come from javascript/tool_hints.js)."""
    return gr.Button(text, elem_id=elem_id, size="sm", scale=0, min_width=40, elem_classes="tool")


def build(tab: GenerationTab) -> None:
    """Lay out the top row into `tab` (its prompt controls, counters and buttons)."""
    name = tab.tab
    with gr.Row(elem_id=f"{name}_toprow", equal_height=False):
        with gr.Column(scale=6, elem_id=f"{name}_prompt_container"):
            for field, elem_id, hint in PROMPTS:
                with gr.Column(elem_id=f"{name}_{elem_id}_row", elem_classes="prompt-row"):
                    tab.control(
                        field,
                        lines=3,
                        show_label=False,
                        elem_classes="prompt",
                        elem_id=f"{name}_{elem_id}",
                        placeholder=f"{hint}\n(Press Ctrl+Enter to generate)",
                    )
                    tab.counters[field] = gr.HTML(
                        "0/75", elem_id=f"{name}_{field}_token_counter", elem_classes="token-counter"
                    )
        with gr.Column(scale=1, min_width=240, elem_id=f"{name}_actions_column"):
            with gr.Row(elem_id=f"{name}_generate_box", elem_classes="generate-box"):
                tab.interrupt = gr.Button(
                    "Interrupt", elem_id=f"{name}_interrupt", elem_classes="generate-box-interrupt"
                )
                tab.skip = gr.Button("Skip", elem_id=f"{name}_skip", elem_classes="generate-box-skip")
                tab.generate = gr.Button("Generate", variant="primary", elem_id=f"{name}_generate")
                # first among Generate's listeners: the page runs a button's listeners one after the other
                tab.generate.click(
                    None, js=SHOW_BUSY.format(box=f"{name}_generate_box"), queue=False, api_visibility="private"
                )
            with gr.Row(elem_id=f"{name}_tools"):
                # ↙️ is wired by infotext_paste.connect_paste_button, which also needs the quicksettings row.
                tab.paste = tool_button("↙️", f"{name}_paste")
                tab.clear_prompt = tool_button("🗑️", f"{name}_clear_prompt")
                tab.apply_styles = tool_button("📋", f"{name}_style_apply")
            with gr.Row(elem_id=f"{name}_styles_row"):
                tab.control(
                    "styles",
                    choices=tab.services.styles.names(),
                    multiselect=True,
                    show_label=False,
                    container=False,
                    placeholder="Styles",
                )
                edit = tool_button("🖌️", f"{name}_styles_edit_button")
    tab.styles_editor = StylesEditor(name, tab.services.styles)
    tab.styles_editor.open_with(edit)


def idle_after(tab: GenerationTab, event: gr.events.Dependency) -> None:
    """Generate comes back once `event` (its click's job) is over, failed or not."""
    event.then(None, js=SHOW_IDLE.format(box=f"{tab.tab}_generate_box"), queue=False, api_visibility="private")


def wire_tools(tab: GenerationTab) -> None:
    """🗑️ clears both prompts once the user confirms (in the browser); 📋 writes the chosen styles into the
    prompts and unselects them; the styles dialog saves and deletes styles."""
    styles = tab.services.styles
    prompt, negative, chosen = (tab.controls[n] for n in ("prompt", "negative_prompt", "styles"))
    tab.clear_prompt.click(
        None,
        inputs=[prompt, negative],
        outputs=[prompt, negative],
        queue=False,
        js=CONFIRM_CLEAR,
        api_visibility="private",
    )

    def apply(text: str, negative_text: str, names: list[str]) -> tuple:
        try:
            return styles.apply_to_prompt(text, names), styles.apply_to_negative_prompt(negative_text, names), []
        except UserError as exc:
            raise page_error(exc) from exc

    tab.apply_styles.click(
        apply, inputs=[prompt, negative, chosen], outputs=[prompt, negative, chosen], api_visibility="private"
    )
    tab.styles_editor.wire(prompt, negative, chosen)
