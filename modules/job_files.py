"""The files a generation job needs besides its own checkpoint, named by their hashes: the hires fix's and the
refiner's checkpoints, the VAE, the LoRAs, hypernetworks and embeddings its prompts name. The front end lists them with
`job_files`; a worker elsewhere checks with `check_job_files` that its own files are the same ones."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from modules import prompt_parser
from modules.checkpoints import HashCache
from modules.errors import ModelLoadError, UserError

if TYPE_CHECKING:
    from modules.job_spec import GenerationJob
    from modules.services import Services

CHECKPOINT, VAE, LORA, HYPERNETWORK, EMBEDDING = "Checkpoint", "VAE", "LoRA", "Hypernetwork", "Embedding"


@dataclass(frozen=True)
class JobFile:
    """One file by kind, name (as the job names it) and hash (as A1111 writes it for that kind)."""

    kind: str
    name: str
    hash: str


def job_files(job: GenerationJob, services: Services) -> tuple[JobFile, ...]:
    """The files `job` reads besides its checkpoint, with the hashes of this machine's copies (one it names
    but this machine lacks is left out: the job warns or fails over it wherever it runs, as it does here)."""
    named = ((kind, name, file_hash(kind, name, services)) for kind, name in dict.fromkeys(_named(job, services)))
    return tuple(JobFile(kind, name, digest) for kind, name, digest in named if digest is not None)


def check_job_files(files: tuple[JobFile, ...], services: Services, where: str) -> None:
    """Refuse to run a job whose files are missing `where` (a worker on a node) or differ from the front end's."""
    for file in files:
        digest = file_hash(file.kind, file.name, services)
        if digest is None:
            raise UserError(f"{file.kind} {file.name} is missing on {where}")
        if digest != file.hash:
            raise UserError(f"{file.kind} {file.name} on {where} is another file (hash {digest}) than the front "
                            f"end's (hash {file.hash})")


def file_hash(kind: str, name: str, services: Services) -> str | None:
    """The hash of this machine's file of `kind` called `name`, or None where there is none."""
    try:
        if kind == CHECKPOINT:
            return HashCache.short(services.models.hashes.sha256(services.models.find_listed(name).path))
        if kind == VAE:
            return HashCache.short(services.models.hashes.sha256(services.vaes.find(name)))
    except (ModelLoadError, UserError):
        return None
    if kind == LORA:
        path = services.networks.loras.available().get(name)
        return None if path is None else services.networks.loras.file_hash(path)
    if kind == HYPERNETWORK:
        path = services.networks.hypernetworks.available().get(name)
        return None if path is None else HashCache.short(services.models.hashes.sha256(path))
    services.networks.embeddings.refresh()
    embedding = services.networks.embeddings.embeddings.get(name)
    return None if embedding is None else embedding.short_hash


def _named(job: GenerationJob, services: Services) -> Iterator[tuple[str, str]]:
    """(kind, name) of each file the job names."""
    params = job.params
    for name in (params.hires_checkpoint if job.kind == "txt2img" else None, params.refiner):
        if name:
            yield CHECKPOINT, name
    if job.vae:
        checkpoint = services.models.find(job.checkpoint or job.checkpoint_name)
        vae = services.vaes.resolve(job.vae, checkpoint)
        if vae is not None:
            yield VAE, vae.name
    prompts = [*job.plan.prompts, *job.plan.negative_prompts, params.hr_prompt, params.hr_negative_prompt,
               *([job.blend.prompt] if job.blend else [])]
    if job.use_extra_network_tags:
        for prompt in dict.fromkeys(prompts):
            for tag in prompt_parser.extract_extra_networks(prompt)[1]:
                if tag.kind == "lora":
                    yield LORA, tag.name
                elif tag.kind == "hypernet":
                    yield HYPERNETWORK, tag.name
    services.networks.embeddings.refresh()
    names = list(services.networks.embeddings.embeddings)
    for prompt in dict.fromkeys(prompts):
        for match in prompt_parser.find_embeddings(prompt, names):
            yield EMBEDDING, match.name
