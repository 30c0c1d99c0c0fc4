"""The GET routes that list what this server has: samplers, schedulers, upscalers, Real-ESRGAN models,
checkpoints, face restorers, hypernetworks, styles, embeddings, LoRAs, scripts, extensions and memory, in
A1111's shapes."""

from __future__ import annotations

import os
import re

import psutil
import torch

from modules.api.models import (
    EmbeddingItem,
    EmbeddingsResponse,
    ExtensionItem,
    FaceRestorerItem,
    HypernetworkItem,
    LoraItem,
    MemoryResponse,
    NameItem,
    PromptStyleItem,
    RealesrganItem,
    SamplerItem,
    SchedulerItem,
    ScriptsList,
    SDModelItem,
    SDVaeItem,
    UpscalerItem,
)
from modules.core.services import Services
from modules.extensions import disabled_names, list_extensions
from modules.face_restoration import FACE_RESTORERS
from modules.imaging.upscalers import LATENT_MODES
from modules.models.checkpoints import HashCache
from modules.sampling import registry
from modules.sampling.schedules import SCHEDULES


def sampler_items() -> list[SamplerItem]:
    """Each sampler with its aliases and A1111's options for it (default schedule, second_order, …)."""
    items = []
    for s in registry.SAMPLERS:
        options: dict = {"scheduler": s.default_schedule} if s.default_schedule else {}
        options.update(
            {
                flag: True
                for flag in ("second_order", "uses_ensd", "brownian_noise", "discard_next_to_last_sigma")
                if getattr(s, flag)
            }
        )
        items.append(SamplerItem(name=s.label, aliases=list(s.aliases), options={**options, **s.fixed}))
    return items


def scheduler_items() -> list[SchedulerItem]:
    """Every schedule type with A1111's name and label (Automatic first)."""
    return [
        SchedulerItem(name="automatic", label=registry.AUTOMATIC),
        *(SchedulerItem(name=s.name, label=s.label, aliases=list(s.aliases) or None) for s in SCHEDULES),
    ]


def upscaler_items(services: Services) -> list[UpscalerItem]:
    library = services.tools.upscalers
    files = library.model_files()
    return [
        UpscalerItem(
            name=name,
            model_name=name if name in files else None,
            model_path=str(files[name]) if name in files else None,
        )
        for name in library.names()
    ]


# "4x-UltraSharp", "RealESRGAN_x2plus", "DAT_x3": a scale the file's name states
_NAMED_SCALE = re.compile(r"(?<![a-z0-9])(?:x(\d)|(\d)x)(?![0-9])", re.IGNORECASE)


def realesrgan_items(services: Services) -> list[RealesrganItem]:
    """The upscaler model files in models/RealESRGAN, each with the scale its file name states (None when it
    states none: reading the scale from the weights would mean loading each model)."""
    folder = services.tools.upscalers.models_dir / "RealESRGAN"
    items = []
    for name, path in services.tools.upscalers.model_files().items():
        if path.is_relative_to(folder):
            scale = _NAMED_SCALE.search(name)
            items.append(RealesrganItem(name=name, path=str(path), scale=int(scale[1] or scale[2]) if scale else None))
    return items


def hypernetwork_items(services: Services) -> list[HypernetworkItem]:
    """The hypernetwork files (`*.pt`) in models/hypernetworks, as A1111 lists them."""
    library = services.networks.hypernetworks
    files = library.available() if library is not None else {}
    return [HypernetworkItem(name=name, path=str(path)) for name, path in files.items()]


def latent_mode_items() -> list[NameItem]:
    return [NameItem(name=name) for name in LATENT_MODES]


def sd_model_items(services: Services) -> list[SDModelItem]:
    models = services.models
    items = []
    for info in models.checkpoints:
        sha = models.hashes.cached(info.path) if info.path.is_file() else None
        items.append(
            SDModelItem(
                title=models.title(info),
                model_name=info.model_name,
                hash=HashCache.short(sha),
                sha256=sha,
                filename=str(info.path),
            )
        )
    return items


def sd_vae_items(services: Services) -> list[SDVaeItem]:
    """The VAE files (models/VAE, and `*.vae.*` beside checkpoints): file name and path."""
    return [SDVaeItem(model_name=path.name, filename=str(path)) for path in services.vaes.files]


def face_restorer_items(services: Services) -> list[FaceRestorerItem]:
    restorers = services.tools.face_restorers
    return [
        FaceRestorerItem(name=name, cmd_dir=str(restorers.models_dir / restorers.get(name).folder_name))
        for name in FACE_RESTORERS
    ]


def style_items(services: Services) -> list[PromptStyleItem]:
    return [
        PromptStyleItem(name=s.name, prompt=s.prompt, negative_prompt=s.negative_prompt)
        for s in services.styles.styles.values()
    ]


def embeddings(services: Services) -> EmbeddingsResponse:
    """Embeddings the loaded model can use ("loaded") and the others ("skipped")."""
    database = services.networks.embeddings
    database.refresh()
    model = services.models.current
    widths = model.prompt_encoder.widths if model is not None else []
    loaded, skipped = {}, {}
    for name, embedding in database.embeddings.items():
        fitting = embedding.vectors_for(widths) if widths else None
        vectors = fitting[0] if fitting else next(iter(embedding.vectors.values()))
        item = EmbeddingItem(shape=vectors.shape[-1], vectors=vectors.shape[0])
        (loaded if fitting else skipped)[name] = item
    return EmbeddingsResponse(loaded=loaded, skipped=skipped)


def lora_items(services: Services) -> list[LoraItem]:
    return [
        LoraItem(name=name, alias=name, path=str(path)) for name, path in services.networks.loras.available().items()
    ]


def script_names(services: Services) -> ScriptsList:
    """Every script's title, lowercased as A1111 lists them, per tab."""

    def titles(tab: str) -> list[str]:
        runner = services.scripts.runners.get(tab)
        return [s.title().lower() for s in [*runner.selectable, *runner.alwayson]] if runner else []

    return ScriptsList(txt2img=titles("txt2img"), img2img=titles("img2img"))


def extension_items(services: Services) -> list[ExtensionItem]:
    """Every folder in extensions/, enabled or not, with its git state."""
    items = []
    for extension in list_extensions(services.paths.extensions, disabled_names(services.opts)):
        extension.read_git_info()
        items.append(
            ExtensionItem(
                name=extension.name,
                remote=extension.remote,
                branch=extension.branch,
                commit_hash=extension.commit_hash or None,
                version=extension.version or None,
                commit_date=extension.commit_date,
                enabled=extension.enabled,
            )
        )
    return items


def memory() -> MemoryResponse:
    """This process's RAM use and the machine's, and torch's CUDA figures when there is a GPU."""
    process = psutil.Process(os.getpid())
    system = psutil.virtual_memory()
    ram = {"free": system.available, "used": process.memory_info().rss, "total": system.total}
    if not torch.cuda.is_available():
        return MemoryResponse(ram=ram, cuda={"error": "unavailable"})
    free, total = torch.cuda.mem_get_info()
    stats = torch.cuda.memory_stats()

    def pair(key: str) -> dict[str, int]:
        return {"current": stats.get(f"{key}.all.current", 0), "peak": stats.get(f"{key}.all.peak", 0)}

    cuda = {
        "system": {"free": free, "used": total - free, "total": total},
        "active": pair("active_bytes"),
        "allocated": pair("allocated_bytes"),
        "reserved": pair("reserved_bytes"),
        "inactive": pair("inactive_split_bytes"),
        "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)},
    }
    return MemoryResponse(ram=ram, cuda=cuda)
