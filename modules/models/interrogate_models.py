"""The two models behind Interrogate CLIP: a BLIP captioner (a transformers folder in models/BLIP) and a CLIP
(a transformers or an OpenCLIP folder in models/clip). They are read only from those folders; nothing is
downloaded unless the user asks (`download_interrogate_models`: the Download button or
--download-interrogate-models). Each downloaded file is checked: CLIP's against the sha256 pinned below, BLIP's
(no trusted value is recorded) against the hash the Hugging Face Hub announces as it serves the file — the sha256
of model.safetensors (an LFS file), the git blob sha1 of each small file (modules/models/hub_file_hashes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from modules.errors import UserError
from modules.models.hub_file_hashes import hub_checksum
from modules.models.model_download import RemoteFile, download_files

# clip-interrogator's default captioner ("blip-large"); its repo holds a model.safetensors (the -base repo is listed
# with PyTorch and TF weights only, and only safetensors are loaded here).
BLIP_REPO = "https://huggingface.co/Salesforce/blip-image-captioning-large/resolve/main"
CLIP_REPO = "https://huggingface.co/openai/clip-vit-large-patch14/resolve/32bd64288804d66eefd0ccbe215aa642df71cc41"
# file name → sha256 (None: no trusted value is recorded, so the download is checked against the hash the Hub
# announces for it; a pinned value wins).
# CLIP's are the files of the pinned revision, as recorded identically by several independent projects.
BLIP_SHA256: dict[str, str | None] = {
    "config.json": None,
    "model.safetensors": None,
    "preprocessor_config.json": None,
    "special_tokens_map.json": None,
    "tokenizer.json": None,
    "tokenizer_config.json": None,
    "vocab.txt": None,
}
CLIP_SHA256: dict[str, str | None] = {
    "config.json": "8a09b467700c58138c29d53c605b34ebc69beaadd13274a8a2af8ad2c2f4032a",
    "merges.txt": "9fd691f7c8039210e0fced15865466c65820d09b63988b0174bfe25de299051a",
    "model.safetensors": "a2bf730a0c7debf160f7a6b50b3aaf3703e7e88ac73de7a314903141db026dcb",
    "preprocessor_config.json": "910e70b3956ac9879ebc90b22fb3bc8a75b6a0677814500101a4c072bd7857bd",
    "special_tokens_map.json": "f8c0d6c39aee3f8431078ef6646567b0aba7f2246e9c54b8b99d55c22b707cbf",
    "tokenizer.json": "a83e0809aa4c3af7208b2df632a7a69668c6d48775b3c3fe4e1b1199d1f8b8f4",
    "tokenizer_config.json": "deef455e52fa5e8151e339add0582e4235f066009601360999d3a9cda83b1129",
    "vocab.json": "3f0c4f7d2086b61b38487075278ea9ed04edb53a03cbb045b86c27190fa8fb69",
}
WEIGHTS = "model.safetensors"
# What a folder needs to load (alternatives as a tuple: the tokenizer as its fast or its slow files; the image
# processor as transformers 4 or 5 saves it).
PROCESSOR = ("preprocessor_config.json", "processor_config.json")
BLIP_NEEDS = ("config.json", WEIGHTS, PROCESSOR, ("tokenizer.json", "vocab.txt"))
CLIP_NEEDS = ("config.json", WEIGHTS, PROCESSOR, ("tokenizer.json", "vocab.json"))
# An OpenCLIP model as its Hugging Face folders hold it (the weights as safetensors only: a pickle could run code).
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"
OPEN_CLIP_NEEDS = (OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS)


def official_files(repo: str, hashes: dict[str, str | None]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(name, f"{repo}/{name}", sha256, hub_checksum) for name, sha256 in hashes.items())


BLIP_FILES = official_files(BLIP_REPO, BLIP_SHA256)
CLIP_FILES = official_files(CLIP_REPO, CLIP_SHA256)


class MissingInterrogateModel(UserError):
    """The BLIP or CLIP folder lacks files; the message names the folder and the files."""


class InterrogateModelError(UserError):
    """A BLIP or CLIP folder's files could not be loaded (damaged, or not the model they should be)."""


@dataclass(frozen=True)
class ModelFolder:
    """Where one of the two models is read from: `root` (models/BLIP or models/clip) itself, or the first of its
    subfolders (by name) that holds a config.json (or, where `open_clip` allows it, an open_clip_config.json)."""

    root: Path
    what: str  # "BLIP captioner"
    needs: tuple
    official: tuple[RemoteFile, ...]
    open_clip: bool = False

    def _configs(self) -> tuple[str, ...]:
        return ("config.json", OPEN_CLIP_CONFIG) if self.open_clip else ("config.json",)

    def folder(self) -> Path:
        def holds_model(folder: Path) -> bool:
            return any((folder / name).is_file() for name in self._configs())

        if holds_model(self.root) or not self.root.is_dir():
            return self.root
        found = sorted(p for p in self.root.iterdir() if holds_model(p))
        return found[0] if found else self.root

    def is_open_clip(self) -> bool:
        return self.open_clip and (self.folder() / OPEN_CLIP_CONFIG).is_file()

    def missing(self) -> list[str]:
        """The needed files not in the folder (an alternative pair as "a or b")."""
        folder = self.folder()
        gaps = []
        for need in OPEN_CLIP_NEEDS if self.is_open_clip() else self.needs:
            names = need if isinstance(need, tuple) else (need,)
            if not any((folder / name).is_file() for name in names):
                gaps.append(" or ".join(names))
        return gaps

    def describe_gap(self) -> str | None:
        gaps = self.missing()
        if not gaps:
            return None
        repo = self.official[0].url.rsplit("/", 3)[0]
        kind = (
            f"an OpenCLIP folder: {', '.join(OPEN_CLIP_NEEDS)}"
            if self.is_open_clip()
            else f"a transformers folder such as {repo}: {', '.join(f.name for f in self.official)}"
        )
        return f"- the {self.what} in {self.folder()}/ lacks {', '.join(gaps)} ({kind})"


def model_folders(models_dir: Path) -> tuple[ModelFolder, ModelFolder]:
    """(BLIP, CLIP) as found under the data dir's models folder."""
    return (
        ModelFolder(Path(models_dir) / "BLIP", "BLIP captioner", BLIP_NEEDS, BLIP_FILES),
        ModelFolder(Path(models_dir) / "clip", "CLIP", CLIP_NEEDS, CLIP_FILES, open_clip=True),
    )


def check_models(models_dir: Path) -> None:
    """MissingInterrogateModel naming each folder that lacks files, and which."""
    gaps = [gap for folder in model_folders(models_dir) if (gap := folder.describe_gap())]
    if gaps:
        raise MissingInterrogateModel(
            "CLIP interrogation needs model files that are not on disk:\n"
            + "\n".join(gaps)
            + "\nPut them there, or let the program fetch them: the Download button beside "
            "Interrogate CLIP, or start with --download-interrogate-models."
        )


def download_interrogate_models(
    models_dir: Path, progress: Callable[[RemoteFile, int, int | None], None] | None = None
) -> list[Path]:
    """Fetch the official BLIP and CLIP files into models/BLIP and models/clip, each checked against its pinned
    sha256 or the hash the Hub announces for it. Files already there are kept."""
    return download_files(BLIP_FILES, Path(models_dir) / "BLIP", progress) + download_files(
        CLIP_FILES, Path(models_dir) / "clip", progress
    )


class BlipCaptioner:
    """transformers' BlipForConditionalGeneration and its processor, read from a folder."""

    def __init__(self, folder: Path, device: torch.device, dtype: torch.dtype) -> None:
        from transformers import BlipForConditionalGeneration, BlipProcessor

        self.folder = folder
        self.processor = BlipProcessor.from_pretrained(folder, local_files_only=True)
        self.model = (
            BlipForConditionalGeneration.from_pretrained(
                folder, local_files_only=True, use_safetensors=True, dtype=dtype
            )
            .to(device)  # type: ignore[arg-type]  # transformers wraps .to, and its stub loses the binding
            .eval()
        )

    @torch.inference_mode()
    def caption(self, image: Image.Image, num_beams: int, min_length: int, max_length: int) -> str:
        """The caption found by greedy (or beam) search, as A1111 asks BLIP for it."""
        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.model.device, self.model.dtype)
        tokens = self.model.generate(
            pixel_values=pixels,
            do_sample=False,
            num_beams=num_beams,
            min_length=min_length,
            max_length=max(max_length, min_length),
        )
        return self.processor.decode(tokens[0], skip_special_tokens=True).strip()

    def to(self, device: torch.device) -> None:
        self.model.to(device)


class ClipRanker:
    """transformers' CLIPModel and its processor, read from a folder: normalised image and text features."""

    def __init__(self, folder: Path, device: torch.device, dtype: torch.dtype) -> None:
        from transformers import CLIPModel, CLIPProcessor

        self.weights = folder / WEIGHTS
        self.processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)
        self.model = (
            CLIPModel.from_pretrained(folder, local_files_only=True, use_safetensors=True, dtype=dtype)
            .to(device)  # type: ignore[arg-type]  # transformers wraps .to, and its stub loses the binding
            .eval()
        )

    @torch.inference_mode()
    def image_features(self, image: Image.Image) -> torch.Tensor:
        pixels = self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
        features = self.model.get_image_features(pixel_values=pixels.to(self.model.device, self.model.dtype))
        return _normalised(features)

    @torch.inference_mode()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        tokens = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        features = self.model.get_text_features(
            input_ids=tokens["input_ids"].to(self.model.device),
            attention_mask=tokens["attention_mask"].to(self.model.device),
        )
        return _normalised(features)

    def to(self, device: torch.device) -> None:
        self.model.to(device)


class OpenClipRanker:
    """An OpenCLIP model (open_clip's local-dir loading) with its image transform and tokenizer."""

    def __init__(self, folder: Path, device: torch.device, dtype: torch.dtype) -> None:
        import open_clip

        self.weights = folder / OPEN_CLIP_WEIGHTS
        name = f"local-dir:{folder}"
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(name, precision=precision, device=device)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(name)
        self.dtype = dtype

    @torch.inference_mode()
    def image_features(self, image: Image.Image) -> torch.Tensor:
        pixels = self.preprocess(image.convert("RGB")).unsqueeze(0)
        return _normalised(self.model.encode_image(pixels.to(self._device(), self.dtype)))

    @torch.inference_mode()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        return _normalised(self.model.encode_text(self.tokenizer(texts).to(self._device())))

    def to(self, device: torch.device) -> None:
        self.model.to(device)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device


Ranker = ClipRanker | OpenClipRanker


def load_clip(folder: ModelFolder, device: torch.device, dtype: torch.dtype) -> Ranker:
    """The CLIP of `folder`: OpenCLIP where it holds an open_clip_config.json, else transformers'."""
    ranker = OpenClipRanker if folder.is_open_clip() else ClipRanker
    return ranker(folder.folder(), device, dtype)


def _normalised(features) -> torch.Tensor:
    if not isinstance(features, torch.Tensor):  # transformers 5 may answer with a model output
        features = features.pooler_output
    features = features.float()
    return features / features.norm(dim=-1, keepdim=True)
