"""LoRA networks from models/Lora, applied through diffusers/peft adapters and removed without reloading."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from modules.core.file_hashes import addnet_sha256, sha256_of_stream
from modules.models.safe_weights import UnreadableWeightsError, UnsafeWeightsError, read_weights
from modules.prompt_parser import ExtraNetwork
from modules.sd_models import StableDiffusionModel

log = logging.getLogger(__name__)

SUFFIXES = (".safetensors", ".pt", ".ckpt")


@dataclass(frozen=True)
class LoraRequest:
    """`<lora:name:te_weight[:unet_weight]>`, as A1111 reads it (one weight sets both)."""

    name: str
    te_weight: float = 1.0
    unet_weight: float = 1.0

    @classmethod
    def from_tag(cls, tag: ExtraNetwork) -> LoraRequest:
        numbers = []
        for arg in tag.args[:2]:
            try:
                numbers.append(float(arg))
            except ValueError:
                raise ValueError(f"LoRA {tag.name}: weight {arg!r} is not a number") from None
        te = numbers[0] if numbers else 1.0
        return cls(tag.name, te, numbers[1] if len(numbers) > 1 else te)


def addnet_hash(path: Path) -> str:
    """The hash A1111 writes into "Lora hashes": sha256 of a .safetensors file's tensor data
    (everything after its header), or of the whole file for other formats; 12 hex digits."""
    with open(path, "rb") as handle:
        return (addnet_sha256(handle) if path.suffix == ".safetensors" else sha256_of_stream(handle))[:12]


@dataclass
class AppliedLoras:
    """What `LoraLibrary.apply` did: the cache variant for text encoding, infotext, warnings."""

    variant: tuple = ()
    hashes: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def infotext(self) -> dict[str, str]:
        if not self.hashes:
            return {}
        return {"Lora hashes": ", ".join(f"{name}: {h}" for name, h in self.hashes.items())}


class LoraLibrary:
    """The LoRA files of a folder, and their activation on a loaded model."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._hashes: dict[Path, tuple[float, str]] = {}

    def available(self) -> dict[str, Path]:
        """Name (file stem) → path, for every LoRA file under the folder."""
        if not self.folder.is_dir():
            return {}
        found: dict[str, Path] = {}
        for path in sorted(self.folder.rglob("*")):
            if path.suffix in SUFFIXES and path.is_file():
                found.setdefault(path.stem, path)
        return found

    def file_hash(self, path: Path) -> str:
        """The file's A1111 LoRA hash (addnet), remembered while the file is unchanged."""
        mtime = path.stat().st_mtime
        cached = self._hashes.get(path)
        if cached is None or cached[0] != mtime:
            cached = self._hashes[path] = (mtime, addnet_hash(path))
        return cached[1]

    def apply(self, model: StableDiffusionModel, tags: list[ExtraNetwork]) -> AppliedLoras:
        """Activate exactly the LoRAs these tags name, at their weights; others are switched off.

        Adapters stay loaded in the model once read, so removing a tag costs nothing. A missing
        or ill-fitting LoRA is reported in `warnings` and skipped.
        """
        result = AppliedLoras()
        requests: dict[str, LoraRequest] = {}
        for tag in tags:
            if tag.kind != "lora":
                continue
            try:
                requests[tag.name] = LoraRequest.from_tag(tag)
            except ValueError as exc:
                result.warnings.append(str(exc))
        files = self.available()
        host = model.lora_host()
        active = []
        for request in requests.values():
            path = files.get(request.name)
            if path is None:
                result.warnings.append(f"LoRA not found: {request.name} (looked in {self.folder})")
                continue
            if request.name not in model.lora_adapters:
                try:
                    source = str(path) if path.suffix == ".safetensors" else read_weights(path)
                    host.load_lora_weights(source, adapter_name=request.name)
                except (UnsafeWeightsError, UnreadableWeightsError) as exc:
                    result.warnings.append(f"LoRA {request.name} was skipped: {exc}")
                    continue
                except (ValueError, RuntimeError, KeyError, OSError, json.JSONDecodeError) as exc:
                    _forget(host, request.name)
                    result.warnings.append(
                        f"LoRA {request.name} does not fit this {model.family.label} "
                        f"model and was skipped: {str(exc)[:300]}"
                    )
                    continue
                model.lora_adapters.add(request.name)
            active.append(request)
            result.hashes[request.name] = self.file_hash(path)
        for warning in result.warnings:
            log.warning(warning)
        if not active:
            if model.lora_adapters:
                host.disable_lora()
            return result
        host.enable_lora()
        weights = [_component_weights(host, r) for r in active]
        host.set_adapters([r.name for r in active], adapter_weights=weights)
        result.variant = tuple((r.name, r.te_weight) for r in active)
        return result


def _component_weights(host, request: LoraRequest) -> dict[str, float]:
    weights = {"unet": request.unet_weight, "text_encoder": request.te_weight}
    if getattr(host, "text_encoder_2", None) is not None:
        weights["text_encoder_2"] = request.te_weight
    return weights


def _forget(host, name: str) -> None:
    """Drop whatever part of a failed adapter was loaded."""
    try:
        host.delete_adapters(name)
    except (ValueError, KeyError, AttributeError):
        pass
