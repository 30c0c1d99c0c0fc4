"""The cards of the extra-networks panel: embeddings, LoRAs, hypernetworks and checkpoints, each with the text a
click puts into the prompt and the preview image found beside its file (`<name>.preview.png`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modules.models.model_manager import ModelManager
from modules.prompting.networks import Networks

KINDS = ("Textual Inversion", "Lora", "Checkpoints", "Hypernetworks")
PROMPT_KINDS = ("Textual Inversion", "Lora", "Hypernetworks")  # a click on their cards edits the prompt
PREVIEW_SUFFIXES = (".preview.png", ".preview.jpg", ".preview.webp", ".png", ".jpg", ".webp")


@dataclass(frozen=True)
class Card:
    name: str
    path: Path
    insert: str  # the prompt text (a checkpoint card's is its dropdown title)
    preview: Path | None


def preview_for(path: Path) -> Path | None:
    """`name.preview.png` (or .jpg/.webp, or plain `name.png`) beside a model file, if there is one."""
    for suffix in PREVIEW_SUFFIXES:
        candidate = path.with_name(path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def cards(kind: str, networks: Networks, models: ModelManager) -> list[Card]:
    """The cards of one kind (one of KINDS), by name, from the files there are now."""
    if kind == "Textual Inversion":
        networks.embeddings.refresh()
        found = [(e.name, e.path, e.name) for e in networks.embeddings.embeddings.values()]
    elif kind == "Lora":
        found = [(name, path, f"<lora:{name}:1>") for name, path in networks.loras.available().items()]
    elif kind == "Hypernetworks":
        files = networks.hypernetworks.available() if networks.hypernetworks else {}
        found = [(name, path, f"<hypernet:{name}:1>") for name, path in files.items()]
    else:
        found = [(info.name, info.path, models.title(info)) for info in models.refresh()]
    found.sort(key=lambda item: item[0].lower())
    return [Card(name, path, insert, preview_for(path)) for name, path, insert in found]


SORTS = ("Name", "Date modified", "Path")


def shown(found: list[Card], search: str = "", sort: str = SORTS[0]) -> list[Card]:
    """The cards whose name or path holds `search` (any case), by name, newest file first, or path."""
    wanted = (search or "").strip().lower()
    kept = [card for card in found if wanted in card.name.lower() or wanted in str(card.path).lower()]
    if sort == "Date modified":
        return sorted(kept, key=lambda card: card.path.stat().st_mtime if card.path.exists() else 0, reverse=True)
    if sort == "Path":
        return sorted(kept, key=lambda card: str(card.path).lower())
    return kept


def folder_of(kind: str, networks: Networks, models: ModelManager) -> Path:
    """Where the files of a kind go."""
    if kind == "Textual Inversion":
        return networks.embeddings.folder
    if kind == "Lora":
        return networks.loras.folder
    if kind == "Hypernetworks":
        return networks.hypernetworks.folder if networks.hypernetworks else models.paths.models / "hypernetworks"
    return models.paths.sd_models


def add_to_prompt(prompt: str, text: str) -> str:
    """Append a card's text to a prompt, or take it out again if the prompt already ends with it."""
    prompt = prompt or ""
    if prompt.rstrip().endswith(text):
        return prompt.rstrip()[: -len(text)].rstrip(" ,")
    return f"{prompt.rstrip()} {text}".strip() if prompt.strip() else text
