"""Separate VAE files, as A1111 has them: listing (models/VAE, and `<checkpoint>.vae.*` beside checkpoints),
what the `sd_vae` setting picks, and putting a file's weights into the loaded model's VAE and back."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import torch

from modules.errors import ModelLoadError, UserError
from modules.models import model_detection
from modules.models.checkpoints import CheckpointInfo, HashCache, read_state_dict
from modules.paths import DataPaths
from modules.sd_models import StableDiffusionModel

log = logging.getLogger(__name__)

VAE_SUFFIXES = (".safetensors", ".pt", ".ckpt")
AUTOMATIC = "Automatic"  # a VAE file named like the checkpoint, else the checkpoint's own
NONE = "None"  # the checkpoint's own VAE
_DIFFUSERS_KEYS = ("encoder.down_blocks.", "decoder.up_blocks.")
_TRAINING_KEYS = ("loss.", "model_ema.")  # what VAE training checkpoints carry besides the weights


def is_vae_sidecar(path: Path) -> bool:
    """`model.vae.safetensors` (or .pt/.ckpt): a VAE kept beside its checkpoint, not a checkpoint."""
    return path.suffix.lower() in VAE_SUFFIXES and Path(path.stem).suffix.lower() == ".vae"


def list_vae_files(vae_dir: Path, checkpoint_dirs: list[Path]) -> list[Path]:
    """Every VAE file, one per file name (models/VAE wins over a checkpoint folder's `*.vae.*`), in natural order."""
    found: dict[str, Path] = {}
    for folder in [vae_dir, *checkpoint_dirs]:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in VAE_SUFFIXES and (folder == vae_dir or is_vae_sidecar(path)):
                found.setdefault(path.name, path)
    return sorted(found.values(), key=lambda path: _natural_key(path.name))


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def matches_checkpoint(vae: Path, checkpoint: CheckpointInfo) -> bool:
    """Whether a VAE file is named for a checkpoint: `model.vae.safetensors` or `model.pt` for `model.safetensors`."""
    stem = vae.name[: -len(vae.suffix)]
    if stem.lower().endswith(".vae"):
        stem = stem[: -len(".vae")]
    return stem == checkpoint.model_name


def diffusers_vae_weights(state: dict[str, torch.Tensor], vae_config: dict) -> dict[str, torch.Tensor]:
    """A VAE file's weights in AutoencoderKL's key layout: the original (LDM) layout, with or without the
    `first_stage_model.` prefix, goes through diffusers' own converter; diffusers-layout keys are kept."""
    if any(key.startswith(_DIFFUSERS_KEYS) for key in state):
        return dict(state)
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    weights = {key: value for key, value in state.items() if not key.startswith(_TRAINING_KEYS)}
    return convert_ldm_vae_checkpoint(weights, vae_config)


def ldm_vae_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A VAE file's weights in the original (LDM) key layout, without the `first_stage_model.` prefix: the
    layout a single-file checkpoint holds them in (diffusers-layout files are converted)."""
    from modules.models.ldm_convert import VAE_PREFIX, vae_to_ldm

    if any(key.startswith(_DIFFUSERS_KEYS) for key in state):
        return vae_to_ldm(state)
    return {key.removeprefix(VAE_PREFIX): value for key, value in state.items() if not key.startswith(_TRAINING_KEYS)}


def check_fits(weights: dict[str, torch.Tensor], vae: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights `vae` takes from `weights`; ModelLoadError when one is missing or has another shape."""
    expected = vae.state_dict()
    missing = [key for key in expected if key not in weights]
    if missing:
        raise ModelLoadError(
            f"it is not a VAE this model can use: it has no weights for {len(missing)} of the "
            f"{len(expected)} VAE parameters (for example {missing[0]})."
        )
    for key, tensor in expected.items():
        if weights[key].shape != tensor.shape:
            raise ModelLoadError(
                f"it is a VAE of another shape: {key} is {tuple(weights[key].shape)} there, "
                f"{tuple(tensor.shape)} in this model's VAE."
            )
    return {key: weights[key] for key in expected}


class VaeLibrary:
    """The VAE files there are, and the swapping of their weights into a loaded model.

    `apply` changes the model, so call it only from the engine's worker thread."""

    def __init__(self, paths: DataPaths, hashes: HashCache) -> None:
        self.folder = paths.models / "VAE"
        self._checkpoint_dirs = paths.checkpoint_dirs()
        self._hashes = hashes
        self._lock = threading.Lock()
        self._files: list[Path] = []
        self._failed: dict[tuple[Path, float, int], str] = {}  # files that could not be used, by version
        self.refresh()

    def refresh(self) -> list[Path]:
        """Scan the folders again."""
        found = list_vae_files(self.folder, self._checkpoint_dirs)
        with self._lock:
            self._files = found
        return found

    @property
    def files(self) -> list[Path]:
        with self._lock:
            return list(self._files)

    def choices(self) -> list[str]:
        """The sd_vae setting's choices: Automatic, None, then each file name."""
        return [AUTOMATIC, NONE, *(path.name for path in self.files)]

    def find(self, name: str) -> Path:
        """The VAE file called `name` (its file name, as the dropdown lists it)."""
        for path in self.files:
            if name in (path.name, path.stem):
                return path
        raise UserError(f"No VAE named {name!r} in {self.folder}")

    def resolve(self, choice: str, checkpoint: CheckpointInfo) -> Path | None:
        """The file the sd_vae value `choice` means for `checkpoint`; None for the checkpoint's own VAE."""
        if choice in (NONE, "", None):
            return None
        if choice == AUTOMATIC:
            return next((path for path in self.files if matches_checkpoint(path, checkpoint)), None)
        return self.find(choice)

    def apply(self, model: StableDiffusionModel, choice: str) -> None:
        """Make `model` use the VAE `choice` names. A file that can't be used raises ModelLoadError and leaves
        the model's VAE as it was; going back to the checkpoint's own VAE reads nothing from disk."""
        wanted = self.resolve(choice, model.checkpoint)
        if wanted == model.vae_file:
            return
        if wanted is None:
            restore_own_vae(model)
            log.info("VAE: %s's own", model.checkpoint.name)
            return
        weights = self._read(wanted, model)
        if model.own_vae_state is None:
            model.own_vae_state = {
                key: value.detach().to("cpu", copy=True) for key, value in model.vae.state_dict().items()
            }
        with torch.no_grad():
            model.vae.load_state_dict(weights, strict=True)
        model.vae_file, model.vae_sha256 = wanted, self._hashes.sha256(wanted)
        log.info("VAE: %s", wanted)

    def _read(self, path: Path, model: StableDiffusionModel) -> dict[str, torch.Tensor]:
        try:
            stat = path.stat()
        except OSError as exc:
            raise ModelLoadError(f"Could not use the VAE {path.name}: {exc.strerror or exc}") from exc
        version = (path, stat.st_mtime, stat.st_size)
        if version in self._failed:
            raise ModelLoadError(self._failed[version])
        try:
            weights = diffusers_vae_weights(read_state_dict(path), dict(model_detection.diffusers_config(model.vae)))
            return check_fits(weights, model.vae)
        except ModelLoadError as exc:
            message = f"Could not use the VAE {path.name}: {exc}"
        except (KeyError, ValueError, RuntimeError, IndexError) as exc:  # the converter meeting odd keys
            message = f"Could not use the VAE {path.name}: its weights are not a VAE's ({exc})"
        self._failed[version] = message
        raise ModelLoadError(message)


def restore_own_vae(model: StableDiffusionModel) -> None:
    """Put the checkpoint's own VAE weights (kept when another VAE came in) back into `model`."""
    if model.own_vae_state is not None:
        with torch.no_grad():
            model.vae.load_state_dict(model.own_vae_state, strict=True)
    model.own_vae_state = None
    model.vae_file = model.vae_sha256 = None
