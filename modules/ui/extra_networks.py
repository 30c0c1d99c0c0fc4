"""The extra networks of a generation tab, as A1111 ≥ 1.6 shows them: one tab per kind beside Generation, each a
gallery of cards. Clicking an embedding or LoRA card adds its text to the prompt (a second click takes it out);
clicking a checkpoint card picks that checkpoint in the quicksettings row."""
from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr
from PIL import Image, ImageDraw, ImageFont

from modules.extra_network_cards import KINDS, PROMPT_KINDS, Card, add_to_prompt, cards

if TYPE_CHECKING:
    from modules.ui.generation_tab import GenerationTab

CARD_SIZE = (160, 200)
TAB_ORDER = ("Textual Inversion", "Hypernetworks", "Checkpoints", "Lora")  # A1111's order


def placeholder(name: str) -> Image.Image:
    """A plain card with the name on it, for files without a preview image."""
    image = Image.new("RGB", CARD_SIZE, (72, 76, 88))
    draw = ImageDraw.Draw(image)
    draw.text((CARD_SIZE[0] // 2, CARD_SIZE[1] // 2), name[:18], fill="white", anchor="mm",
              font=ImageFont.load_default(size=16))
    return image


def gallery_items(found: list[Card]) -> list[tuple]:
    return [(str(card.preview) if card.preview else placeholder(card.name), card.name) for card in found]


def slug(kind: str) -> str:
    return kind.lower().replace(" ", "_")


class ExtraNetworksPanel:
    """One tab per kind (made where the panel is created: inside the tab strip, after Generation), each with
    🔄 and its gallery of cards."""

    def __init__(self, tab: GenerationTab) -> None:
        services = tab.services
        self.tab = tab
        self.galleries: dict[str, gr.Gallery] = {}
        self.inserts: dict[str, gr.State] = {}
        refreshes = []
        for kind in TAB_ORDER:
            found = cards(kind, services.networks, services.models)
            with gr.Tab(kind, id=f"{tab.tab}_{slug(kind)}", elem_id=f"{tab.tab}_{slug(kind)}"):
                refreshes.append(gr.Button("🔄 Refresh", size="sm", elem_id=f"{tab.tab}_{slug(kind)}_extra_refresh"))
                self.galleries[kind] = gr.Gallery(gallery_items(found), columns=6, height=560,
                                                  allow_preview=False, show_label=False,
                                                  elem_id=f"{tab.tab}_{slug(kind)}_cards")
                self.inserts[kind] = gr.State([card.insert for card in found])

        def reload() -> list:
            updates, inserts = [], []
            for kind in TAB_ORDER:
                found = cards(kind, services.networks, services.models)
                updates.append(gallery_items(found))
                inserts.append([card.insert for card in found])
            return [*updates, *inserts]

        for refresh in refreshes:
            refresh.click(reload, outputs=[*self.galleries.values(), *self.inserts.values()], api_visibility="private")
        prompt = tab.controls["prompt"]
        for kind in PROMPT_KINDS:
            def toggle(text: str, inserts: list[str], event: gr.SelectData) -> str:
                return add_to_prompt(text, inserts[event.index])
            self.galleries[kind].select(toggle, inputs=[prompt, self.inserts[kind]], outputs=prompt,
                                        api_visibility="private")

    def connect_checkpoints(self, checkpoint: gr.Dropdown, switch, status: gr.Markdown) -> None:
        """Checkpoint cards pick the checkpoint, then `switch` (the dropdown's handler) loads it."""
        def pick(inserts: list[str], event: gr.SelectData) -> str:
            return inserts[event.index]

        self.galleries[KINDS[2]].select(pick, inputs=self.inserts[KINDS[2]], outputs=checkpoint,
                                        api_visibility="private").success(
            switch, inputs=checkpoint, outputs=[checkpoint, status], api_visibility="private")
