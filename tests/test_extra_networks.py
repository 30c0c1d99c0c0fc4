"""Extra-network cards: listing with previews, and what a click puts into the prompt."""

from __future__ import annotations

import shutil

import torch
from network_files import a1111_embedding, kohya_lora
from PIL import Image
from tiny_models import tiny_modules

from modules.prompting.extra_network_cards import add_to_prompt, cards, preview_for
from modules.prompting.lora import LoraLibrary
from modules.prompting.networks import Networks
from modules.textual_inversion import EmbeddingDatabase


class Checkpoints:
    """The two things cards() reads from a model manager: the rescanned list and the titles."""

    def __init__(self, infos):
        self.checkpoints = infos

    def refresh(self):
        return self.checkpoints

    @staticmethod
    def title(info):
        return f"{info.name} [0123456789]"


def test_cards_list_names_tags_and_previews(tmp_path, demo_checkpoint):
    from modules.models.checkpoints import CheckpointInfo

    (tmp_path / "embeddings").mkdir()
    a1111_embedding(tmp_path / "embeddings" / "mystyle.pt", torch.randn(2, 64))
    Image.new("RGB", (8, 8)).save(tmp_path / "embeddings" / "mystyle.preview.png")
    (tmp_path / "Lora").mkdir()
    unet, _, (text_encoder,) = tiny_modules("sd1", seed=7)
    kohya_lora(tmp_path / "Lora" / "Tiny.safetensors", unet, text_encoder)
    networks = Networks(EmbeddingDatabase(tmp_path / "embeddings"), LoraLibrary(tmp_path / "Lora"))
    ckpt = shutil.copy(demo_checkpoint, tmp_path / "demo.safetensors")
    models = Checkpoints([CheckpointInfo(ckpt, "demo.safetensors")])

    (embedding,) = cards("Textual Inversion", networks, models)
    assert (embedding.name, embedding.insert) == ("mystyle", "mystyle")
    assert embedding.preview == tmp_path / "embeddings" / "mystyle.preview.png"
    (lora,) = cards("Lora", networks, models)
    assert lora.insert == "<lora:Tiny:1>" and lora.preview is None
    (checkpoint,) = cards("Checkpoints", networks, models)
    assert checkpoint.insert == "demo.safetensors [0123456789]"


def test_preview_file_names(tmp_path):
    model = tmp_path / "thing.safetensors"
    assert preview_for(model) is None
    (tmp_path / "thing.png").write_bytes(b"")
    assert preview_for(model) == tmp_path / "thing.png"
    (tmp_path / "thing.preview.png").write_bytes(b"")
    assert preview_for(model) == tmp_path / "thing.preview.png"


def test_a_click_adds_the_tag_and_a_second_click_removes_it():
    assert add_to_prompt("", "<lora:a:1>") == "<lora:a:1>"
    added = add_to_prompt("a castle", "<lora:a:1>")
    assert added == "a castle <lora:a:1>"
    assert add_to_prompt(added, "<lora:a:1>") == "a castle"


def test_cards_are_searched_by_name_or_path_and_sorted_by_name_date_or_path(tmp_path):
    import os

    from modules.prompting.extra_network_cards import Card, shown

    paths = [tmp_path / "b" / "zebra.pt", tmp_path / "a" / "apple.pt", tmp_path / "c" / "Mango.pt"]
    for age, path in enumerate(paths):
        path.parent.mkdir()
        path.write_bytes(b"x")
        os.utime(path, (1000 + age, 1000 + age))
    found = [Card(path.stem, path, path.stem, None) for path in sorted(paths, key=lambda p: p.stem.lower())]
    assert [card.name for card in shown(found)] == ["apple", "Mango", "zebra"]
    assert [card.name for card in shown(found, sort="Date modified")] == ["Mango", "apple", "zebra"]
    assert [card.name for card in shown(found, sort="Path")] == ["apple", "zebra", "Mango"]
    assert [card.name for card in shown(found, "MAN")] == ["Mango"]
    assert [card.name for card in shown(found, "/b/")] == ["zebra"]
    assert shown(found, "nothing") == []
