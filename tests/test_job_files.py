"""A job's other files by hash: what the front end lists, and a worker's check of its own copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from network_files import safetensors_embedding
from safetensors.torch import save_file

from modules.cmd_args import parse_args
from modules.core.services import Services
from modules.errors import UserError
from modules.jobs.generation import ImagePlan, RunSettings
from modules.jobs.generation_params import GenerationParams
from modules.jobs.job_files import JobFile, check_job_files, job_files
from modules.jobs.job_spec import GenerationJob
from modules.models.checkpoints import HashCache
from modules.prompting.lora import addnet_hash


def a_data_dir(root: Path, demo_checkpoint: Path, lora_value: float = 1.0) -> Path:
    """Checkpoints a and b, a VAE, a LoRA file, a hypernetwork file and an embedding."""
    checkpoints = root / "models" / "Stable-diffusion"
    checkpoints.mkdir(parents=True)
    shutil.copy(demo_checkpoint, checkpoints / "a.safetensors")
    shutil.copy(demo_checkpoint, checkpoints / "b.safetensors")
    (root / "models" / "VAE").mkdir()
    save_file({"decoder.conv_in.weight": torch.ones(2)}, str(root / "models" / "VAE" / "soft.safetensors"))
    (root / "models" / "Lora").mkdir()
    save_file(
        {"lora_unet_x.lora_up.weight": torch.full((2, 2), lora_value)},
        str(root / "models" / "Lora" / "shiny.safetensors"),
    )
    (root / "models" / "hypernetworks").mkdir()
    (root / "models" / "hypernetworks" / "ink.pt").write_bytes(b"hashed, not read")
    (root / "embeddings").mkdir()
    safetensors_embedding(root / "embeddings" / "fluffy.safetensors", torch.ones(1, 32))
    return root


def services_for(data: Path) -> Services:
    services = Services.create(parse_args(["--data-dir", str(data)]))
    services.models.refresh()
    services.vaes.refresh()
    return services


def a_job(prompt: str, **params) -> GenerationJob:
    p = GenerationParams(prompt=prompt, **params)
    return GenerationJob("txt2img", p, ImagePlan.repeated(p, 1), RunSettings(), "", "a.safetensors", "soft.safetensors")


def test_a_job_names_its_other_files_by_the_hashes_a1111_writes(tmp_path, demo_checkpoint):
    data = a_data_dir(tmp_path / "head", demo_checkpoint)
    services = services_for(data)
    job = a_job(
        "a fluffy cat <lora:shiny:0.5> <lora:gone:1> <hypernet:ink:0.5>",
        enable_hr=True,
        hr_checkpoint_name="b.safetensors",
    )
    files = job_files(job, services)

    def short(*parts: str) -> str:
        return HashCache.short(services.models.hashes.sha256(data.joinpath(*parts)))

    assert files == (
        JobFile("Checkpoint", "b.safetensors", short("models", "Stable-diffusion", "b.safetensors")),
        JobFile("VAE", "soft.safetensors", short("models", "VAE", "soft.safetensors")),
        JobFile("LoRA", "shiny", addnet_hash(data / "models" / "Lora" / "shiny.safetensors")),
        JobFile("Hypernetwork", "ink", short("models", "hypernetworks", "ink.pt")),
        JobFile("Embedding", "fluffy", services.networks.embeddings.embeddings["fluffy"].short_hash),
    )
    check_job_files(files, services, "worker w (node n)")  # the same machine has the same files


def test_a_worker_refuses_a_job_whose_files_it_lacks_or_holds_other_contents_of(tmp_path, demo_checkpoint):
    head = services_for(a_data_dir(tmp_path / "head", demo_checkpoint))
    files = job_files(a_job("a fluffy cat <lora:shiny>"), head)
    other = a_data_dir(tmp_path / "node", demo_checkpoint, lora_value=2.0)
    with pytest.raises(UserError, match=r"LoRA shiny on worker w \(node n\) is another file \(hash [0-9a-f]{12}\)"):
        check_job_files(files, services_for(other), "worker w (node n)")
    (other / "models" / "Lora" / "shiny.safetensors").unlink()
    (other / "embeddings" / "fluffy.safetensors").unlink()
    with pytest.raises(UserError, match=r"LoRA shiny is missing on worker w \(node n\)"):
        check_job_files(files, services_for(other), "worker w (node n)")


def test_extra_network_tags_switched_off_name_no_lora(tmp_path, demo_checkpoint):
    services = services_for(a_data_dir(tmp_path / "head", demo_checkpoint))
    job = a_job("a cat <lora:shiny>")
    job.use_extra_network_tags = False
    assert [file.kind for file in job_files(job, services)] == ["VAE"]
