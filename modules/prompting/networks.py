"""Extra networks of a job: `<lora:…>` and `<hypernet:…>` tags and textual inversion embeddings, made ready on
the model."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modules import prompt_parser
from modules.hypernetworks import HypernetworkLibrary
from modules.prompting.lora import AppliedLoras, LoraLibrary
from modules.sd_models import StableDiffusionModel
from modules.textual_inversion import EmbeddingDatabase

log = logging.getLogger(__name__)


@dataclass
class Networks:
    """The embeddings folder and the LoRA and hypernetwork folders of the data dir (without `hypernetworks`,
    `<hypernet:…>` tags are ignored with a warning)."""

    embeddings: EmbeddingDatabase
    loras: LoraLibrary
    hypernetworks: HypernetworkLibrary | None = None

    def prepare(self, model: StableDiffusionModel, prompts: list[str], use_tags: bool = True) -> AppliedLoras:
        """Make the current embeddings usable and activate the LoRAs and hypernetworks the prompts name (with
        `use_tags` false, A1111's disable_extra_networks, none: the tags are only taken out of the prompts).
        Hypernetworks stay hooked into the UNet until the next call for this model or the end of `job()`."""
        self.embeddings.refresh()
        encoder = model.prompt_encoder
        usable = self.embeddings.compatible(encoder.widths)
        encoder.set_embeddings(usable, version=self.embeddings.version)
        tags = (
            [tag for prompt in dict.fromkeys(prompts) for tag in prompt_parser.extract_extra_networks(prompt)[1]]
            if use_tags
            else []
        )
        applied = self.loras.apply(model, tags)
        handled = {"lora"}
        if self.hypernetworks is not None:
            applied.warnings.extend(self.hypernetworks.apply(model.unet, tags, model.family.label))
            handled.add("hypernet")
        applied.warnings.extend(self._unusable_embeddings(prompts, usable, model.family.label))
        for kind in sorted({tag.kind for tag in tags} - handled):
            message = f"Extra networks of type {kind!r} are not supported here; their tags were ignored."
            log.warning(message)
            applied.warnings.append(message)
        return applied

    @contextlib.contextmanager
    def job(self) -> Iterator[None]:
        """One job: the hypernetwork hooks `prepare` puts into its models are taken out when it ends."""
        try:
            yield
        finally:
            if self.hypernetworks is not None:
                self.hypernetworks.detach_all()

    def _unusable_embeddings(self, prompts: list[str], usable: dict, model_kind: str) -> list[str]:
        """Warnings for embeddings a prompt names that failed to load or don't fit this model, a `model_kind`
        model ("SD 1.x", …)."""
        problems = {
            name: f"Embedding {name} does not fit this {model_kind} model and was ignored."
            for name in self.embeddings.embeddings
            if name not in usable
        }
        problems.update({Path(file).stem: message for file, message in self.embeddings.errors.items()})
        found = {m.name for prompt in prompts for m in prompt_parser.find_embeddings(prompt, problems)}
        for name in sorted(found):
            log.warning(problems[name])
        return [problems[name] for name in sorted(found)]

    def ti_hashes(self, names: list[str]) -> dict[str, str]:
        """The "TI hashes" infotext entry for the embeddings a job used."""
        found = [self.embeddings.embeddings[n] for n in names if n in self.embeddings.embeddings]
        return {"TI hashes": ", ".join(f"{e.name}: {e.short_hash}" for e in found)} if found else {}
