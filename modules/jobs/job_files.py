"""The files a generation job needs besides its own checkpoint, named by their hashes: the hires fix's and the
refiner's checkpoints, the VAE, the LoRAs, hypernetworks and embeddings its prompts name. The front end lists them with
`job_files`; a worker elsewhere checks with `check_job_files` that its own files are the same ones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modules import hypernetworks, prompt_parser
from modules.errors import ModelLoadError, UserError
from modules.models.checkpoints import HashCache

if TYPE_CHECKING:
    from modules.core.services import Services
    from modules.jobs.job_spec import GenerationJob

CHECKPOINT, VAE, LORA, HYPERNETWORK, EMBEDDING = "Checkpoint", "VAE", "LoRA", "Hypernetwork", "Embedding"
TAG_KINDS = {"lora": LORA, hypernetworks.TAG: HYPERNETWORK}  # prompt tag kind → file kind


@dataclass(frozen=True)
class JobFile:
    """One file by kind, name (as the job names it) and hash (as A1111 writes it for that kind)."""

    kind: str
    name: str
    hash: str


def job_files(job: GenerationJob, services: Services) -> tuple[JobFile, ...]:
    """The files `job` reads besides its checkpoint, with the hashes of this machine's copies (one it names
    but this machine lacks is left out: the job warns or fails over it wherever it runs, as it does here)."""
    here = LocalFiles(services)
    named = ((kind, name, here.hash(kind, name)) for kind, name in dict.fromkeys(_named(job, here)))
    return tuple(JobFile(kind, name, digest) for kind, name, digest in named if digest is not None)


def check_job_files(files: tuple[JobFile, ...], services: Services, where: str) -> None:
    """Refuse to run a job whose files are missing `where` (a worker on a node) or differ from the front end's."""
    here = LocalFiles(services)
    for file in files:
        digest = here.hash(file.kind, file.name)
        if digest is None:
            raise UserError(f"{file.kind} {file.name} is missing on {where}")
        if digest != file.hash:
            raise UserError(
                f"{file.kind} {file.name} on {where} is another file (hash {digest}) than the front "
                f"end's (hash {file.hash})"
            )


class LocalFiles:
    """This machine's LoRA, hypernetwork and embedding folders, each scanned once, and the hashes of its files."""

    def __init__(self, services: Services) -> None:
        self.services = services
        networks = services.networks
        self.loras = networks.loras.available()
        self.hypernetworks = networks.hypernetworks.available() if networks.hypernetworks else {}
        networks.embeddings.refresh()
        self.embeddings = networks.embeddings.embeddings

    def hash(self, kind: str, name: str) -> str | None:
        """The hash of the file of `kind` called `name`, or None where there is none."""
        models = self.services.models
        try:
            if kind == CHECKPOINT:
                return HashCache.short(models.hashes.sha256(models.find_listed(name).path))
            if kind == VAE:
                return HashCache.short(models.hashes.sha256(self.services.vaes.find(name)))
        except (ModelLoadError, UserError):
            return None
        if kind == LORA:
            path = self.loras.get(name)
            return None if path is None else self.services.networks.loras.file_hash(path)
        if kind == HYPERNETWORK:
            path = self.hypernetworks.get(name)
            return None if path is None else HashCache.short(models.hashes.sha256(path))
        embedding = self.embeddings.get(name)
        return None if embedding is None else embedding.short_hash


def _named(job: GenerationJob, here: LocalFiles) -> Iterator[tuple[str, str]]:
    """(kind, name) of each file the job names."""
    services, params = here.services, job.params
    for name in (params.hires_checkpoint if job.kind == "txt2img" else None, params.refiner):
        if name:
            yield CHECKPOINT, name
    if job.vae:
        checkpoint = services.models.find(job.checkpoint or job.checkpoint_name)
        vae = services.vaes.resolve(job.vae, checkpoint)
        if vae is not None:
            yield VAE, vae.name
    prompts = [
        *job.plan.prompts,
        *job.plan.negative_prompts,
        params.hr_prompt,
        params.hr_negative_prompt,
        *([job.blend.prompt] if job.blend else []),
    ]
    if job.use_extra_network_tags:
        for prompt in dict.fromkeys(prompts):
            for tag in prompt_parser.extract_extra_networks(prompt)[1]:
                if tag.kind in TAG_KINDS:
                    yield TAG_KINDS[tag.kind], tag.name
    names = list(here.embeddings)
    for prompt in dict.fromkeys(prompts):
        for match in prompt_parser.find_embeddings(prompt, names):
            yield EMBEDDING, match.name
