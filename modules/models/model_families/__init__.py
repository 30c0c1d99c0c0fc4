"""The model families this app knows. Each module of this package (but base) defines one as `FAMILY`, and the
registry finds them by looking: a new family is one new file here, plus its shipped configs in
modules/model_configs. Nothing else lists the families."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import torch

from modules.errors import ModelLoadError
from modules.models.model_families.base import UNET_KEY, LatentFormat, ModelFamily


def discover(package: str) -> dict[str, ModelFamily]:
    """Every `FAMILY` that a module of `package` defines, by name, in the modules' name order."""
    found: dict[str, ModelFamily] = {}
    for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__), key=lambda i: i.name):
        family = getattr(importlib.import_module(f"{package}.{info.name}"), "FAMILY", None)
        if isinstance(family, ModelFamily):
            if family.name in found:
                raise ValueError(f"Two model families are named {family.name!r}")
            found[family.name] = family
    return found


FAMILIES: dict[str, ModelFamily] = discover(__name__)


def get(name: str) -> ModelFamily:
    """The family of this name ("sd1", "sd2", "sdxl", …)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"Unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


def _labels() -> str:
    labels = [family.label for family in FAMILIES.values()]
    return " or ".join([", ".join(labels[:-1]), labels[-1]]) if len(labels) > 1 else labels[0]


def detect(state: dict[str, torch.Tensor]) -> ModelFamily:
    """The family of an original-layout checkpoint's state dict; ModelLoadError when it is none or several."""
    matches = [family for family in FAMILIES.values() if family.detect(state)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ModelLoadError(
            f"This checkpoint looks like several kinds of model at once "
            f"({', '.join(f.label for f in matches)}); it can't be loaded."
        )
    if UNET_KEY not in state:
        raise ModelLoadError(
            f"This file has no Stable Diffusion UNet (model.diffusion_model.*): it is not an {_labels()} checkpoint."
        )
    raise ModelLoadError(f"This checkpoint has a UNet but no text encoder this app recognises ({_labels()}).")


def detect_diffusers(folder: Path) -> ModelFamily:
    """The family of a diffusers folder, from its model_index.json and its text encoders' configs."""
    index = json.loads((folder / "model_index.json").read_text())
    text_configs = {
        name: json.loads((folder / name / "config.json").read_text())
        for name in index
        if name.startswith("text_encoder") and (folder / name / "config.json").is_file()
    }
    for family in FAMILIES.values():
        if family.detect_diffusers(index, text_configs):
            return family
    raise ModelLoadError(f"{folder.name} is a diffusers folder of no kind this app knows ({_labels()}).")


def latent_formats() -> list[LatentFormat]:
    """The latent formats of the known families, each once."""
    return list(dict.fromkeys(family.latent_format for family in FAMILIES.values()))


def embedding_key_sets() -> list[tuple[str, ...]]:
    """For textual-inversion files holding one tensor per text encoder: the keys of each family that names
    them (SDXL: clip_l, clip_g), in its encoders' order."""
    key_sets = [tuple(slot.embedding_key for slot in family.text_encoders) for family in FAMILIES.values()]
    return list(dict.fromkeys(tuple(key for key in keys if key) for keys in key_sets if all(keys)))
