"""The Checkpoint Merger tab's job, as A1111 1.10 merges: A alone, (1 - M)·A + M·B, or A + (B - C)·M, over
every weight whose name holds "model"; optional float16, a baked-in VAE, a name regex that drops weights, a
copied .yaml config and the recipe in the safetensors metadata (`sd_merge_recipe`, `sd_merge_models`).

The inputs are read one tensor at a time (safetensors; a .ckpt input is read whole) and a .safetensors result
is written as it is computed: the header first, from the planned shapes and dtypes, then each tensor. A .ckpt
result is one torch.save of the whole state dict, so it is held in memory. Every check runs before the first
byte is written, and the file gets its name only when complete (atomic_files.write_new)."""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from modules.core.atomic_files import write_atomic, write_new
from modules.core.engine import JobContext
from modules.core.file_hashes import legacy_model_hash
from modules.errors import ModelLoadError, UserError
from modules.models import safetensors_stream
from modules.models.checkpoints import CheckpointInfo, read_state_dict
from modules.models.ldm_convert import VAE_PREFIX
from modules.models.model_manager import ModelManager
from modules.models.safe_weights import file_format
from modules.models.safetensors_stream import SafetensorsReader, TensorSpec
from modules.sd_vae import VaeLibrary, ldm_vae_weights

log = logging.getLogger(__name__)

INTERPOLATIONS = ("No interpolation", "Weighted sum", "Add difference")
NO_INTERPOLATION, WEIGHTED_SUM, ADD_DIFFERENCE = INTERPOLATIONS
CHECKPOINT_FORMATS = ("ckpt", "safetensors")
CONFIG_SOURCES = ("A, B or C", "B", "C", "Don't")
NO_VAE = "None"
KEPT_FROM_A = frozenset({"cond_stage_model.transformer.text_model.embeddings.position_ids"})  # never merged
# A UNet's first conv takes 4 latent channels; inpainting models add 5 (masked image, mask), instruct-pix2pix 4.
EXTRA_INPUTS = {9: "inpainting", 8: "instruct-pix2pix"}
LATENT_CHANNELS = 4


@dataclass(frozen=True)
class MergeSettings:
    """What the tab asks for; model names as the checkpoint dropdown shows them."""

    primary: str
    secondary: str = ""
    tertiary: str = ""
    interpolation: str = WEIGHTED_SUM
    multiplier: float = 0.3
    save_as_half: bool = False
    custom_name: str = ""
    checkpoint_format: str = "safetensors"
    config_source: str = CONFIG_SOURCES[0]
    bake_in_vae: str = NO_VAE
    discard_weights: str = ""
    save_metadata: bool = True

    def validate(self) -> None:
        """Refuse what no merge can do (UserError), before anything is read."""
        for value, allowed, label in (
            (self.interpolation, INTERPOLATIONS, "Interpolation Method"),
            (self.checkpoint_format, CHECKPOINT_FORMATS, "Checkpoint format"),
            (self.config_source, CONFIG_SOURCES, "Copy config from"),
        ):
            if value not in allowed:
                raise UserError(f"{label} must be one of {', '.join(allowed)}; got {value!r}")
        if not math.isfinite(self.multiplier):
            raise UserError(f"Multiplier (M) must be a number, got {self.multiplier}")
        name = self.custom_name.strip()
        if name and (any(sep in name for sep in "/\\") or name.startswith(".")):
            raise UserError(f"Custom Name {name!r} must be a plain file name (no folders, not starting with '.')")
        if not self.primary:
            raise UserError("Failed: Merging requires a primary model.")
        if self.interpolation != NO_INTERPOLATION and not self.secondary:
            raise UserError("Failed: Merging requires a secondary model.")
        if self.interpolation == ADD_DIFFERENCE and not self.tertiary:
            raise UserError(f"Failed: Interpolation method ({ADD_DIFFERENCE}) requires a tertiary model.")
        self.discard_pattern()

    def discard_pattern(self) -> re.Pattern | None:
        """The compiled "Discard weights with matching name" regex; None when empty."""
        if not self.discard_weights:
            return None
        try:
            return re.compile(self.discard_weights)
        except re.error as exc:
            raise UserError(
                f"Discard weights with matching name: {self.discard_weights!r} is not a valid "
                f"regular expression ({exc})"
            ) from None


@dataclass(frozen=True)
class MergeResult:
    path: Path
    title: str  # as the checkpoint dropdown lists it, with the short hash
    message: str


class WeightFile:
    """An input checkpoint's tensors by name: a .safetensors file is read one tensor at a time, a pickled
    .ckpt (weights-only unpickling) all at once."""

    def __init__(self, info: CheckpointInfo) -> None:
        self.info = info
        if info.is_diffusers_folder:
            raise ModelLoadError(f"{info.name} is a diffusers folder; the merger takes single-file checkpoints")
        self._file: SafetensorsReader | None = None
        self._state: dict[str, torch.Tensor] = {}
        self.metadata: dict[str, str] = {}
        if file_format(info.path) != "safetensors":
            self._state = read_state_dict(info.path)
            self.specs = {key: TensorSpec(key, tuple(t.shape), t.dtype) for key, t in self._state.items()}
            return
        try:
            self._file = SafetensorsReader(info.path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(
                f"Could not read {info.name}: the file is damaged or not a checkpoint ({exc})"
            ) from exc
        self.metadata, self.specs = self._file.metadata, self._file.specs

    def tensor(self, key: str) -> torch.Tensor:
        return self._file.tensor(key) if self._file is not None else self._state[key]


@dataclass(frozen=True)
class Planned:
    """One tensor of the result: its name, shape and dtype in the file, and where it comes from."""

    spec: TensorSpec
    source: str  # "A" (A's tensor as is), "merge", "latent channels" (only A's first 4 input channels), "vae"


class MergePlan:
    """The result's tensors, worked out from the inputs' shapes and dtypes before any weight is read; a
    combination that can't be merged raises UserError here."""

    def __init__(
        self,
        settings: MergeSettings,
        a: WeightFile,
        b: WeightFile | None,
        c: WeightFile | None,
        vae: dict[str, torch.Tensor],
    ) -> None:
        self.kind = ""  # "inpainting" or "instruct-pix2pix" when A is one and B is not
        self.entries: list[Planned] = []
        _check_vae(settings.bake_in_vae, vae, a)
        discard = settings.discard_pattern()
        for key, spec in sorted(a.specs.items()):
            if discard is not None and discard.search(key):
                continue
            source = "vae" if key in vae else self._merge_source(key, a, b, c)
            dtype = vae[key].dtype if source == "vae" else spec.dtype
            if source in ("merge", "latent channels"):
                dtype = functools.reduce(torch.promote_types, [f.specs[key].dtype for f in (b, c) if f], dtype)
            if settings.save_as_half and dtype == torch.float32:
                dtype = torch.float16
            self.entries.append(Planned(TensorSpec(key, spec.shape, dtype), source))
        if not self.entries:
            raise UserError(
                f"Discard weights with matching name: {settings.discard_weights!r} matches every "
                f"weight of {a.info.name}, so nothing would be left"
            )

    def _merge_source(self, key: str, a: WeightFile, b: WeightFile | None, c: WeightFile | None) -> str:
        spec = a.specs[key]
        if b is None or key not in b.specs or "model" not in key or key in KEPT_FROM_A:
            return "A"
        if not (spec.dtype.is_floating_point and b.specs[key].dtype.is_floating_point):
            return "A"
        b_shape = b.specs[key].shape
        if c is not None:
            if key not in c.specs:
                return "A"  # B - C counts as zero, as in A1111
            if c.specs[key].shape != b_shape:
                raise UserError(_mismatch(key, b, c, "B", "C"))
        if spec.shape == b_shape:
            return "merge"
        inputs_differ = (
            len(spec.shape) == len(b_shape) > 1 and spec.shape[0] == b_shape[0] and spec.shape[2:] == b_shape[2:]
        )
        if inputs_differ and spec.shape[1] == LATENT_CHANNELS and b_shape[1] in EXTRA_INPUTS:
            kind = EXTRA_INPUTS[b_shape[1]]
            raise UserError(
                f"When merging an {kind} model with a normal one, A must be the {kind} model: "
                f"{b.info.name} (B) takes {b_shape[1]} input channels, {a.info.name} (A) takes "
                f"{LATENT_CHANNELS} ({key})."
            )
        if inputs_differ and spec.shape[1] in EXTRA_INPUTS and b_shape[1] == LATENT_CHANNELS:
            self.kind = EXTRA_INPUTS[spec.shape[1]]
            return "latent channels"
        raise UserError(_mismatch(key, a, b, "A", "B"))


def _check_vae(name: str, vae: dict[str, torch.Tensor], a: WeightFile) -> None:
    """Refuse a VAE to bake in that has none of A's VAE weights, or one of another shape."""
    if not vae:
        return
    shared = [key for key in vae if key in a.specs]
    if not shared:
        raise UserError(f"Bake in VAE: {name} holds none of the VAE weights of {a.info.name}")
    for key in shared:
        if tuple(vae[key].shape) != a.specs[key].shape:
            raise UserError(
                f"Bake in VAE: {name} is a VAE of another shape: {key} is {list(vae[key].shape)} there, "
                f"{list(a.specs[key].shape)} in {a.info.name}"
            )


def _mismatch(key: str, first: WeightFile, second: WeightFile, first_label: str, second_label: str) -> str:
    return (
        f"Can't merge {first.info.name} ({first_label}) with {second.info.name} ({second_label}): {key} is "
        f"{list(first.specs[key].shape)} in {first_label} and {list(second.specs[key].shape)} in "
        f"{second_label}. They are checkpoints of different architectures."
    )


def read_vae(path: Path) -> dict[str, torch.Tensor]:
    """A VAE file's weights under the names a single-file checkpoint gives them (`first_stage_model.…`)."""
    state = read_state_dict(path)
    try:
        weights = ldm_vae_weights(state)
    except (KeyError, ValueError, IndexError) as exc:  # the layout converter meeting keys no VAE has
        raise UserError(f"Bake in VAE: {path.name} is not a VAE ({exc})") from exc
    return {VAE_PREFIX + key: value for key, value in weights.items()}


class Merger:
    """Computes the planned tensors one at a time from the open inputs."""

    def __init__(
        self,
        settings: MergeSettings,
        a: WeightFile,
        b: WeightFile | None,
        c: WeightFile | None,
        vae: dict[str, torch.Tensor],
    ) -> None:
        self.settings, self.a, self.b, self.c, self.vae = settings, a, b, c, vae

    def tensor(self, entry: Planned) -> torch.Tensor:
        key = entry.spec.key
        if entry.source == "vae":
            return self.vae[key].to(entry.spec.dtype)
        a = self.a.tensor(key)
        if entry.source == "A":
            return a.to(entry.spec.dtype)
        if entry.source == "merge":
            return self._combine(a, key).to(entry.spec.dtype)
        merged = a.float().clone()  # only the latent channels A shares with B are merged
        merged[:, :LATENT_CHANNELS] = self._combine(a[:, :LATENT_CHANNELS], key)
        return merged.to(entry.spec.dtype)

    def _combine(self, a: torch.Tensor, key: str) -> torch.Tensor:
        m = self.settings.multiplier
        if self.b is None:
            raise ValueError(f"{key} is planned as merged, but there is no model B")
        b = self.b.tensor(key).float()
        if self.settings.interpolation == WEIGHTED_SUM:
            return a.float() * (1 - m) + b * m
        if self.c is None:
            raise ValueError(f"{key} is planned as an added difference, but there is no model C")
        return a.float() + (b - self.c.tensor(key).float()) * m


def merge_checkpoints(
    settings: MergeSettings, models: ModelManager, vaes: VaeLibrary, ctx: JobContext | None = None
) -> MergeResult:
    """Merge as `settings` say into the checkpoint folder (an engine job: `ctx` gets the progress and the
    interrupt), list the new file and hash it. Raises UserError, with nothing written, for bad input."""
    settings.validate()
    needs = {NO_INTERPOLATION: 1, WEIGHTED_SUM: 2, ADD_DIFFERENCE: 3}[settings.interpolation]
    names = [settings.primary, settings.secondary, settings.tertiary][:needs]
    infos = [models.find_listed(name) for name in names]
    files = [WeightFile(info) for info in infos]
    padded: list[WeightFile | None] = [*files, None, None]
    a, b, c = files[0], padded[1], padded[2]
    vae = read_vae(vaes.find(settings.bake_in_vae)) if settings.bake_in_vae not in ("", NO_VAE) else {}
    plan = MergePlan(settings, a, b, c, vae)
    folder = models.paths.extra_ckpt_dir or models.paths.sd_models
    name = output_name(settings, infos, plan.kind)
    taken = UserError(f"{name} already exists in {folder}; give the merge another Custom Name")
    if (folder / name).exists():
        raise taken
    metadata = (
        merge_metadata(settings, infos, files, plan.kind, models)
        if settings.save_metadata and settings.checkpoint_format == "safetensors"
        else None
    )
    merger = Merger(settings, a, b, c, vae)
    if ctx is not None:
        ctx.set_job_count(1)
        ctx.begin_batch(0, len(plan.entries))

    def tensors() -> Iterator[tuple[Planned, torch.Tensor]]:
        for step, entry in enumerate(plan.entries, 1):
            if ctx is not None and ctx.interrupted:
                raise UserError("The merge was interrupted; nothing was written.")
            yield entry, merger.tensor(entry)
            if ctx is not None:
                ctx.report_step(step, "Merging")

    def write(handle: IO[bytes]) -> None:
        if settings.checkpoint_format == "ckpt":
            torch.save({entry.spec.key: tensor for entry, tensor in tensors()}, handle)
            return
        handle.write(safetensors_stream.header([entry.spec for entry in plan.entries], metadata))
        for entry, tensor in tensors():
            safetensors_stream.write_tensor(handle, entry.spec, tensor)

    log.info("Merging %s into %s", ", ".join(info.name for info in infos), folder / name)
    try:
        path = write_new(folder, [name], write)
    except FileExistsError:  # made by someone else meanwhile
        raise taken from None
    copy_config(settings.config_source, infos, path)
    models.refresh()
    info = next(info for info in models.checkpoints if info.path.resolve() == path.resolve())
    models.hashes.sha256(info.path)
    title = models.title(info)
    log.info("Checkpoint saved to %s", path)
    return MergeResult(path, title, f"Checkpoint saved to {path}")


def output_name(settings: MergeSettings, infos: list[CheckpointInfo], kind: str) -> str:
    """The result's file name: the Custom Name, else A1111's recipe name ("0.7(a) + 0.3(b)", "a + 0.3(b - c)"),
    then ".inpainting" or ".instruct-pix2pix" when the result is one, then the format."""
    stems = [info.model_name for info in infos]
    m = settings.multiplier
    recipe = {
        NO_INTERPOLATION: lambda: stems[0],
        WEIGHTED_SUM: lambda: f"{round(1 - m, 2)}({stems[0]}) + {round(m, 2)}({stems[1]})",
        ADD_DIFFERENCE: lambda: f"{stems[0]} + {round(m, 2)}({stems[1]} - {stems[2]})",
    }
    stem = settings.custom_name.strip() or recipe[settings.interpolation]()
    return f"{stem}{'.' + kind if kind else ''}.{settings.checkpoint_format}"


def merge_metadata(
    settings: MergeSettings, infos: list[CheckpointInfo], files: list[WeightFile], kind: str, models: ModelManager
) -> dict[str, str]:
    """The result's safetensors metadata as A1111 writes it: the inputs' own metadata, "format", the recipe
    (`sd_merge_recipe`) and each input model by sha256 (`sd_merge_models`), both as JSON."""
    metadata: dict[str, str] = {}
    for file in files:
        metadata.update(file.metadata)
    metadata["format"] = "pt"
    hashes = [models.hashes.sha256(info.path) for info in infos]
    by_role = dict(zip(("primary_model_hash", "secondary_model_hash", "tertiary_model_hash"), hashes + [None] * 2))
    recipe = {
        "type": "webui",
        **by_role,
        "interp_method": settings.interpolation,
        "multiplier": settings.multiplier,
        "save_as_half": settings.save_as_half,
        "custom_name": settings.custom_name,
        "config_source": CONFIG_SOURCES.index(settings.config_source),
        "bake_in_vae": settings.bake_in_vae,
        "discard_weights": settings.discard_weights,
        "is_inpainting": kind == "inpainting",
        "is_instruct_pix2pix": kind == "instruct-pix2pix",
    }
    merged_models: dict[str, Any] = {}
    for info, file, sha256 in zip(infos, files, hashes):
        merged_models[sha256] = {
            "name": info.name,
            "legacy_hash": legacy_model_hash(info.path),
            "sd_merge_recipe": _json_field(file.metadata, "sd_merge_recipe"),
        }
        merged_models.update(_json_field(file.metadata, "sd_merge_models") or {})
    metadata["sd_merge_recipe"] = json.dumps(recipe)
    metadata["sd_merge_models"] = json.dumps(merged_models)
    return metadata


def _json_field(metadata: dict[str, str], key: str) -> Any:
    """A metadata value that holds JSON, parsed; None when absent or not JSON."""
    try:
        return json.loads(metadata[key])
    except (KeyError, ValueError):
        return None


def copy_config(source: str, infos: list[CheckpointInfo], result: Path) -> Path | None:
    """Copy the `.yaml` config beside A (or B or C, the first that has one), B or C as "Copy config from"
    says, to one beside the result; returns the new file, or None when there is none to copy."""
    choices = {CONFIG_SOURCES[0]: infos, CONFIG_SOURCES[1]: infos[1:2], CONFIG_SOURCES[2]: infos[2:3]}
    found = next(
        (config for info in choices.get(source, []) if (config := info.path.with_suffix(".yaml")).is_file()), None
    )
    if found is None:
        return None
    target = result.with_suffix(".yaml")
    data = found.read_bytes()
    write_atomic(target, lambda handle: handle.write(data))
    return target
