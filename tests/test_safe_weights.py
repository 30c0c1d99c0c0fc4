"""Every loader of weight files refuses a pickle that would run code: checkpoints, embeddings, LoRA,
hypernetworks, upscalers, GFPGAN, CodeFormer, facexlib's face detection and parsing, and TAESD (VAE) decoders. The
payload would create a marker file when unpickled; the marker must never appear."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from modules.errors import UserError
from modules.face_restoration import (
    CODEFORMER_WEIGHTS,
    DETECTION_WEIGHTS,
    GFPGAN_WEIGHTS,
    PARSING_WEIGHTS,
    create_face_restorer,
)
from modules.models.safe_weights import UnsafeWeightsError, read_weights


class Payload:
    """Unpickling this runs `open(marker, 'w')`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def write_evil(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(2, 2), "payload": Payload(marker)}, path)
    return path


def write_plain(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(2, 2)}, path)
    return path


def refusal(call: Callable[[], object]) -> str:
    with pytest.raises(UserError) as caught:
        call()
    return str(caught.value)


def load_checkpoint(root: Path, marker: Path) -> str:
    from modules.models.checkpoints import read_state_dict

    return refusal(lambda: read_state_dict(write_evil(root / "model.ckpt", marker)))


def load_embedding(root: Path, marker: Path) -> str:
    from modules.textual_inversion import EmbeddingDatabase

    write_evil(root / "embeddings" / "evil.pt", marker)
    database = EmbeddingDatabase(root / "embeddings")
    database.refresh()
    assert not database.embeddings
    return database.errors["evil.pt"]


def load_upscaler(root: Path, marker: Path) -> str:
    from modules.imaging.upscalers import load_image_model

    return refusal(lambda: load_image_model(write_evil(root / "ESRGAN" / "evil.pth", marker)))


def face_restore(name: str, evil: Path, marker: Path, models: Path) -> str:
    plain = [
        models / "GFPGAN" / GFPGAN_WEIGHTS.name,
        models / "Codeformer" / CODEFORMER_WEIGHTS.name,
        models / "GFPGAN" / DETECTION_WEIGHTS.name,
        models / "GFPGAN" / PARSING_WEIGHTS.name,
    ]
    for path in plain:
        write_evil(path, marker) if path == evil else write_plain(path)
    restorer = create_face_restorer(name, models)
    return refusal(lambda: restorer.restore(Image.new("RGB", (64, 64))))


def load_gfpgan(root: Path, marker: Path) -> str:
    return face_restore("GFPGAN", root / "models" / "GFPGAN" / GFPGAN_WEIGHTS.name, marker, root / "models")


def load_codeformer(root: Path, marker: Path) -> str:
    return face_restore("CodeFormer", root / "models" / "Codeformer" / CODEFORMER_WEIGHTS.name, marker, root / "models")


def load_face_detector(root: Path, marker: Path) -> str:
    return face_restore("GFPGAN", root / "models" / "GFPGAN" / DETECTION_WEIGHTS.name, marker, root / "models")


def load_face_parser(root: Path, marker: Path) -> str:
    return face_restore("CodeFormer", root / "models" / "GFPGAN" / PARSING_WEIGHTS.name, marker, root / "models")


def load_taesd(root: Path, marker: Path) -> str:
    from diffusers import AutoencoderTiny

    from modules.jobs.previews import TaesdDecoders

    folder = root / "VAE-taesd" / "taesd"
    AutoencoderTiny(
        encoder_block_out_channels=(8,),
        decoder_block_out_channels=(8,),
        num_encoder_blocks=(1,),
        num_decoder_blocks=(1,),
    ).save_pretrained(folder, safe_serialization=False)
    write_evil(folder / "diffusion_pytorch_model.bin", marker)
    return refusal(lambda: TaesdDecoders(root / "VAE-taesd").decode(torch.zeros(1, 4, 8, 8)))


def load_lora(root: Path, marker: Path, model) -> str:
    from modules.prompt_parser import ExtraNetwork
    from modules.prompting.lora import LoraLibrary

    write_evil(root / "Lora" / "evil.pt", marker)
    applied = LoraLibrary(root / "Lora").apply(model, [ExtraNetwork("lora", "evil", ("0.5",))])
    assert "evil" not in model.lora_adapters
    return "\n".join(applied.warnings)


def load_hypernetwork(root: Path, marker: Path) -> str:
    from modules.hypernetworks import HypernetworkLibrary
    from modules.prompt_parser import ExtraNetwork

    write_evil(root / "hypernetworks" / "evil.pt", marker)
    library = HypernetworkLibrary(root / "hypernetworks")
    return "\n".join(library.apply(torch.nn.Linear(2, 2), [ExtraNetwork("hypernet", "evil")], "test"))


LOADERS = {
    "checkpoint": load_checkpoint,
    "embedding": load_embedding,
    "upscaler": load_upscaler,
    "GFPGAN": load_gfpgan,
    "CodeFormer": load_codeformer,
    "face detector": load_face_detector,
    "face parser": load_face_parser,
    "TAESD VAE": load_taesd,
    "LoRA": load_lora,
    "hypernetwork": load_hypernetwork,
}
EVIL_NAMES = {
    "checkpoint": "model.ckpt",
    "embedding": "evil.pt",
    "upscaler": "evil.pth",
    "GFPGAN": GFPGAN_WEIGHTS.name,
    "CodeFormer": CODEFORMER_WEIGHTS.name,
    "face detector": DETECTION_WEIGHTS.name,
    "face parser": PARSING_WEIGHTS.name,
    "TAESD VAE": "diffusion_pytorch_model.bin",
    "LoRA": "evil.pt",
    "hypernetwork": "evil.pt",
}


def test_the_payload_runs_when_unpickled_unsafely(tmp_path):
    marker = tmp_path / "ran"
    torch.load(write_evil(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()  # so the refusals below stop real code


@pytest.mark.parametrize("kind", LOADERS)
def test_every_loader_refuses_a_pickle_that_runs_code(kind, tmp_path, request):
    marker = tmp_path / "payload-ran"
    load = LOADERS[kind]
    args = (request.getfixturevalue("demo_model"),) if kind == "LoRA" else ()
    message = load(tmp_path, marker, *args)
    assert f"Refused to load {EVIL_NAMES[kind]}" in message and "could run code" in message, message
    assert not marker.exists()


def test_plain_tensor_files_still_load(tmp_path):
    assert torch.equal(read_weights(write_plain(tmp_path / "plain.pt"))["weight"], torch.zeros(2, 2))
    with pytest.raises(UnsafeWeightsError):
        read_weights(write_evil(tmp_path / "evil.bin", tmp_path / "marker"))
    assert not (tmp_path / "marker").exists()
