"""The extra networks of a generation tab, as A1111 ≥ 1.6 shows them: one tab per kind beside Generation, each a
gallery of cards with search and sort. Clicking an embedding, LoRA or hypernetwork card adds its text to the prompt
(a second click takes it out); clicking a checkpoint card picks that checkpoint in the quicksettings row."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
from PIL import Image, ImageDraw, ImageFont

from modules.prompting.extra_network_cards import (
    KINDS,
    PROMPT_KINDS,
    SORTS,
    Card,
    add_to_prompt,
    cards,
    folder_of,
    shown,
)

if TYPE_CHECKING:
    from modules.ui.generation_tab import GenerationTab
    from modules.ui.page_load import PageLoad

CARD_SIZE = (160, 200)
TAB_ORDER = ("Textual Inversion", "Hypernetworks", "Checkpoints", "Lora")  # A1111's order


def placeholder(name: str) -> Image.Image:
    """A plain card with the name on it, for files without a preview image."""
    image = Image.new("RGB", CARD_SIZE, (72, 76, 88))
    draw = ImageDraw.Draw(image)
    draw.text(
        (CARD_SIZE[0] // 2, CARD_SIZE[1] // 2),
        name[:18],
        fill="white",
        anchor="mm",
        font=ImageFont.load_default(size=16),
    )
    return image


def gallery_items(found: list[Card]) -> list[tuple]:
    return [(str(card.preview) if card.preview else placeholder(card.name), card.name) for card in found]


def slug(kind: str) -> str:
    return kind.lower().replace(" ", "_")


class ExtraNetworksPanel:
    """One tab per kind (made where the panel is created: inside the tab strip, after Generation), each with a
    search box, a sort order, 🔄, a line naming the folder to fill while it is empty, and its gallery of cards."""

    def __init__(self, tab: GenerationTab) -> None:
        services = tab.services
        self.tab = tab
        self.galleries: dict[str, gr.Gallery] = {}
        self.inserts: dict[str, gr.State] = {}
        self.fills: list[tuple] = []  # (fill function, its inputs, its outputs) per kind: parts of the page's load
        for kind in TAB_ORDER:
            folder = folder_of(kind, services.networks, services.models)
            found = cards(kind, services.networks, services.models)
            name = f"{tab.tab}_{slug(kind)}"
            with gr.Tab(kind, id=name, elem_id=name):
                with gr.Row(elem_id=f"{name}_controls"):
                    search = gr.Textbox(
                        placeholder="Search...",
                        show_label=False,
                        container=False,
                        scale=4,
                        elem_id=f"{name}_extra_search",
                    )
                    sort = gr.Dropdown(
                        list(SORTS),
                        value=SORTS[0],
                        show_label=False,
                        container=False,
                        scale=1,
                        elem_id=f"{name}_extra_sort",
                    )
                    refresh = gr.Button("🔄 Refresh", size="sm", scale=0, elem_id=f"{name}_extra_refresh")
                empty = gr.Markdown(self._empty_hint(kind, folder), visible=not found, elem_id=f"{name}_empty")
                self.galleries[kind] = gr.Gallery(
                    gallery_items(found),
                    columns=6,
                    height=560,
                    allow_preview=False,
                    show_label=False,
                    elem_id=f"{name}_cards",
                    elem_classes="extra-network-cards",
                )
                self.inserts[kind] = gr.State([card.insert for card in found])

            def fill(text: str, order: str, kind: str = kind) -> tuple:
                picked = shown(cards(kind, services.networks, services.models), text, order)
                return gallery_items(picked), [card.insert for card in picked], gr.update(visible=not picked)

            outputs = [self.galleries[kind], self.inserts[kind], empty]
            gr.on(
                [search.change, sort.change, refresh.click],
                fill,
                inputs=[search, sort],
                outputs=outputs,
                api_visibility="private",
                show_progress="hidden",
                trigger_mode="always_last",
            )
            self.fills.append((fill, [search, sort], outputs))
        prompt = tab.controls["prompt"]
        for kind in PROMPT_KINDS:

            def toggle(text: str, inserts: list[str], event: gr.SelectData) -> str:
                return add_to_prompt(text, inserts[event.index])

            self.galleries[kind].select(
                toggle, inputs=[prompt, self.inserts[kind]], outputs=prompt, api_visibility="private"
            )

    @staticmethod
    def _empty_hint(kind: str, folder: Path) -> str:
        return f"No {kind.lower()} found. Put the files in `{folder}` and press 🔄 Refresh."

    def fill_on(self, load: PageLoad) -> None:
        """Fill every tab again when the page loads (the demo checkpoint may be written after the page was built)."""
        for fill, inputs, outputs in self.fills:
            load.add(fill, inputs, outputs)

    def connect_checkpoints(self, checkpoint: gr.Dropdown, switch, status: gr.Markdown) -> None:
        """Checkpoint cards pick the checkpoint, then `switch` (the dropdown's handler) loads it."""

        def pick(inserts: list[str], event: gr.SelectData) -> str:
            return inserts[event.index]

        self.galleries[KINDS[2]].select(
            pick, inputs=self.inserts[KINDS[2]], outputs=checkpoint, api_visibility="private"
        ).success(switch, inputs=checkpoint, outputs=[checkpoint, status], api_visibility="private")
