"""The Edit styles dialog of a generation tab, opened by 🖌️ beside Styles: load a style, change it, save or
delete it (A1111's element ids)."""

from __future__ import annotations

import gradio as gr

from modules.errors import UserError
from modules.styles import PromptStyle, StyleDatabase
from modules.ui.user_errors import page_error

# Asks before deleting; a "no" sends null, which deletes nothing. Without a name the server says what's missing.
CONFIRM_DELETE = "(name) => !name || confirm(`Delete the style \"${name}\"?`) ? (name || '') : null"
STYLE_HELP = (
    "Use {prompt} in a style's text where the prompt goes; otherwise the style's text is added to the end "
    "of the prompt."
)


class StylesEditor:
    """Name (pick one or type a new one), prompt and negative prompt, with Save, Delete and Close."""

    def __init__(self, tab: str, styles: StyleDatabase) -> None:
        self.styles = styles
        with gr.Column(visible=False, elem_id=f"{tab}_styles_dialog", elem_classes="popup-dialog") as self.dialog:
            gr.Markdown("### Edit styles")
            with gr.Row():
                self.name = gr.Dropdown(
                    label="Style",
                    choices=styles.names(),
                    allow_custom_value=True,
                    value=None,
                    elem_id=f"{tab}_styles_edit_select",
                    info=STYLE_HELP,
                )
                self.copy = gr.Button("Copy the prompts in", size="sm", scale=0, elem_id=f"{tab}_style_copy")
            self.prompt = gr.Textbox(label="Style prompt", lines=3, elem_id=f"{tab}_edit_style_prompt")
            self.negative = gr.Textbox(label="Style negative prompt", lines=3, elem_id=f"{tab}_edit_style_neg_prompt")
            with gr.Row():
                self.save = gr.Button("Save", size="sm", variant="primary", elem_id=f"{tab}_edit_style_save")
                self.delete = gr.Button("Delete", size="sm", variant="stop", elem_id=f"{tab}_edit_style_delete")
                self.close = gr.Button("Close", size="sm", elem_id=f"{tab}_edit_style_close")

    def open_with(self, button: gr.Button) -> None:
        """`button` shows the dialog; its Close button hides it."""
        for trigger, shown in ((button, True), (self.close, False)):
            trigger.click(
                lambda s=shown: gr.Column(visible=s),
                outputs=self.dialog,
                queue=False,
                show_progress="hidden",
                api_visibility="private",
            )

    def wire(self, prompt: gr.Textbox, negative: gr.Textbox, chosen: gr.Dropdown) -> None:
        """Connect the buttons; saving or deleting refreshes the tab's Styles list."""
        styles = self.styles

        def load(name: str | None) -> tuple:
            style = styles.styles.get(name or "")
            return (style.prompt, style.negative_prompt) if style else (gr.skip(), gr.skip())

        def changed(message: str) -> tuple:
            gr.Info(message)
            names = styles.names()
            return gr.Dropdown(choices=names), gr.Dropdown(choices=names)

        def save(name: str | None, text: str, negative_text: str) -> tuple:
            try:
                styles.save_style(PromptStyle((name or "").strip(), text, negative_text))
            except UserError as exc:
                raise page_error(exc) from exc
            return changed(f"Saved the style {name.strip()!r}")

        def delete(name: str | None) -> tuple:
            if name is None:  # the user said no to the page's question
                return gr.skip(), gr.skip()
            try:
                styles.delete_style(name or "")
            except UserError as exc:
                raise page_error(exc) from exc
            return changed(f"Deleted the style {name!r}")

        self.name.change(load, inputs=self.name, outputs=[self.prompt, self.negative], api_visibility="private")
        self.copy.click(
            lambda a, b: (a, b),
            inputs=[prompt, negative],
            outputs=[self.prompt, self.negative],
            api_visibility="private",
        )
        self.save.click(
            save,
            inputs=[self.name, self.prompt, self.negative],
            outputs=[self.name, chosen],
            api_name=f"{chosen.elem_id}_save",
        )
        self.delete.click(
            delete,
            inputs=self.name,
            outputs=[self.name, chosen],
            api_name=f"{chosen.elem_id}_delete",
            js=CONFIRM_DELETE,
        )
