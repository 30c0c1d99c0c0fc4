"""Extra networks of a job: `<lora:…>` tags and textual inversion embeddings, made ready on the model."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from modules import prompt_parser
from modules.lora import AppliedLoras, LoraLibrary
from modules.sd_models import StableDiffusionModel
from modules.textual_inversion import EmbeddingDatabase

log = logging.getLogger(__name__)

HANDLED_KINDS = ("lora",)


@dataclass
class Networks:
    """The embeddings folder and the LoRA folder of the data dir."""

    embeddings: EmbeddingDatabase
    loras: LoraLibrary

    def prepare(self, model: StableDiffusionModel, prompts: list[str]) -> AppliedLoras:
        """Make the current embeddings usable and activate the LoRAs the prompts name."""
        self.embeddings.refresh()
        encoder = model.prompt_encoder
        encoder.set_embeddings(self.embeddings.compatible(encoder.widths), version=id(self.embeddings.embeddings))
        tags = [tag for prompt in dict.fromkeys(prompts)
                for tag in prompt_parser.extract_extra_networks(prompt)[1]]
        applied = self.loras.apply(model, tags)
        for kind in sorted({tag.kind for tag in tags} - set(HANDLED_KINDS)):
            message = f"Extra networks of type {kind!r} are not supported here; their tags were ignored."
            log.warning(message)
            applied.warnings.append(message)
        return applied

    def ti_hashes(self, names: list[str]) -> dict[str, str]:
        """The "TI hashes" infotext entry for the embeddings a job used."""
        found = [self.embeddings.embeddings[n] for n in names if n in self.embeddings.embeddings]
        return {"TI hashes": ", ".join(f"{e.name}: {e.short_hash}" for e in found)} if found else {}
