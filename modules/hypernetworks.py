"""A1111's hypernetworks (models/hypernetworks/*.pt): for each attention width they hold two small MLPs that
reshape what the UNet's attention key and value projections read, `x + mlp(x) * multiplier`. A
`<hypernet:name:multiplier>` tag hooks them into the UNet for one job; the hooks are taken out after it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modules.errors import UserError
from modules.models.safe_weights import UnreadableWeightsError, UnsafeWeightsError, read_weights
from modules.prompt_parser import ExtraNetwork

log = logging.getLogger(__name__)

SUFFIX = ".pt"
TAG = "hypernet"

# A1111's activation names: its own aliases, then every torch activation class by its lower-case name.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    name.lower(): cls
    for name, cls in vars(nn.modules.activation).items()
    if isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == nn.modules.activation.__name__
}
ACTIVATIONS.update(swish=nn.Hardswish)
NO_ACTIVATION = (None, "linear")


class HypernetworkError(UserError):
    """A hypernetwork file that can't be used: not one, or one this code can't build."""


@dataclass(frozen=True)
class Structure:
    """How each of a file's MLPs is built, read from the file with A1111's defaults for older files."""

    layers: tuple[float, ...]  # widths as multiples of the attention width, 1 first and last
    activation: str | None
    layer_norm: bool
    activate_output: bool
    dropout: tuple[float, ...]  # per layer; dropout is off at inference but numbers the layers

    @classmethod
    def from_file(cls, data: dict) -> Structure:
        layers = tuple(data.get("layer_structure") or (1, 2, 1))
        if (
            len(layers) < 2
            or layers[0] != 1
            or layers[-1] != 1
            or not all(isinstance(n, (int, float)) and n > 0 for n in layers)
        ):
            raise HypernetworkError(f"its layer structure {list(layers)} is not positive numbers from 1 to 1")
        activation = data.get("activation_func")
        if not (activation is None or isinstance(activation, str)) or (
            activation not in NO_ACTIVATION and activation not in ACTIVATIONS
        ):
            raise HypernetworkError(f"it uses an activation function this server doesn't know: {activation!r}")
        dropout = data.get("dropout_structure")
        if dropout is None:
            dropout = _dropout_from_flags(
                len(layers), data.get("use_dropout", False), data.get("last_layer_dropout", False)
            )
        return cls(
            layers,
            activation,
            bool(data.get("is_layer_norm", False)),
            bool(data.get("activate_output", True)),
            tuple(dropout),
        )

    def build(self, width: int) -> nn.Sequential:
        """The MLP for attention inputs of `width`, with the module numbering A1111's saved weights use."""
        modules: list[nn.Module] = []
        last = len(self.layers) - 2
        for i in range(len(self.layers) - 1):
            size_out = int(width * self.layers[i + 1])
            modules.append(nn.Linear(int(width * self.layers[i]), size_out))
            if self.activation not in NO_ACTIVATION and (i < last or self.activate_output):
                try:
                    modules.append(ACTIVATIONS[self.activation]())
                except TypeError:
                    raise HypernetworkError(
                        f"its activation function {self.activation!r} takes arguments this server can't know"
                    ) from None
            if self.layer_norm:
                modules.append(nn.LayerNorm(size_out))
            if i + 1 < len(self.dropout) and self.dropout[i + 1] > 0:
                modules.append(nn.Identity())  # a dropout layer: nothing at inference
        return nn.Sequential(*modules)


def _dropout_from_flags(count: int, use_dropout: bool, last_layer_dropout: bool) -> list[float]:
    """Older files say only whether dropout was used: 0.3 after each hidden layer, the last one optionally."""
    if not use_dropout:
        return [0.0] * count
    return [0.0, *[0.3] * (count - 3), 0.3 if last_layer_dropout else 0.0, 0.0]


@dataclass
class Hypernetwork:
    """One file's MLPs: attention width → (key MLP, value MLP), in eval mode, float32."""

    name: str
    layers: dict[int, tuple[nn.Sequential, nn.Sequential]]

    def to(self, device: torch.device) -> None:
        for pair in self.layers.values():
            for mlp in pair:
                mlp.to(device)


def read_hypernetwork(path: Path) -> Hypernetwork:
    """Build the hypernetwork in an A1111 `.pt` file, read without running code. Raises UnsafeWeightsError,
    UnreadableWeightsError or HypernetworkError with a message that names the file."""
    try:
        data = read_weights(path)
    except (RuntimeError, OSError, EOFError, ValueError) as exc:  # a damaged zip, a truncated safetensors file
        raise UnreadableWeightsError(
            f"{path.name} is unreadable, perhaps damaged or cut short: {_reason(exc)}"
        ) from None
    try:
        if not isinstance(data, dict):
            raise HypernetworkError("it holds no dictionary of layers")
        structure = Structure.from_file(data)
        layers = {
            width: (_mlp(structure, width, pair, 0), _mlp(structure, width, pair, 1))
            for width, pair in data.items()
            if isinstance(width, int)
        }
        if not layers:
            raise HypernetworkError("it has no layers (no attention widths)")
    except (HypernetworkError, TypeError, ValueError) as exc:  # TypeError, ValueError: values of other types
        raise HypernetworkError(f"{path.name} is not a usable hypernetwork: {exc}") from None
    return Hypernetwork(path.stem, layers)


def _mlp(structure: Structure, width: int, pair: Any, index: int) -> nn.Sequential:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[index], dict):
        raise HypernetworkError(f"its layers for width {width} are not a (key, value) pair of weights")
    state = {_new_key(key): value for key, value in pair[index].items()}
    mlp = structure.build(width)
    try:
        mlp.load_state_dict(state)
    except RuntimeError as exc:  # its first line only says "Error(s) in loading state_dict"
        raise HypernetworkError(
            f"its weights for width {width} don't match its layer structure ({_reason(exc, line=1)})"
        ) from None
    return mlp.float().eval().requires_grad_(False)


def _reason(exc: Exception, line: int = 0) -> str:
    """One line of an exception's message (the last there is when it has fewer), at most 200 characters."""
    lines = [text.strip() for text in str(exc).splitlines() if text.strip()] or [type(exc).__name__]
    return lines[min(line, len(lines) - 1)][:200]


def _new_key(key: str) -> str:
    """A state-dict key without its `linear.` prefix (the oldest files call their two layers linear1, linear2)."""
    key = str(key)
    for old, new in (("linear1.", "0."), ("linear2.", "1.")):
        if key.startswith(old):
            return new + key[len(old) :]
    return key.removeprefix("linear.")


@dataclass(frozen=True)
class HypernetRequest:
    """`<hypernet:name:multiplier>` (multiplier 1 when left out)."""

    name: str
    multiplier: float = 1.0

    @classmethod
    def from_tag(cls, tag: ExtraNetwork) -> HypernetRequest:
        if not tag.args:
            return cls(tag.name)
        try:
            return cls(tag.name, float(tag.args[0]))
        except ValueError:
            raise ValueError(f"Hypernetwork {tag.name}: multiplier {tag.args[0]!r} is not a number") from None


def attention_projections(unet: nn.Module) -> list[tuple[nn.Module, int]]:
    """The key (0) and value (1) projections of every attention module of a UNet."""
    from diffusers.models.attention_processor import Attention

    found = []
    for module in unet.modules():
        if isinstance(module, Attention):
            found.extend(
                (projection, kind)
                for kind, projection in enumerate((module.to_k, module.to_v))
                if projection is not None
            )
    return found


def input_width(projection: nn.Module) -> int | None:
    """What width of input a projection (a Linear, or a LoRA layer around one) reads."""
    width = getattr(projection, "in_features", None)
    return width if isinstance(width, int) else None


@dataclass
class _Active:
    """One hypernetwork at its multiplier in a job."""

    network: Hypernetwork
    multiplier: float


def _transform(chain: list[_Active], kind: int):
    """The forward pre-hook of a key (`kind` 0) or value (1) projection: each hypernetwork in turn, in float32
    and back to the input's dtype, for the widths it has layers for."""

    def hook(module: nn.Module, args: tuple) -> tuple | None:
        if not args:
            return None
        x = args[0]
        changed = x
        for active in chain:
            pair = active.network.layers.get(x.shape[-1])
            if pair is None:
                continue
            mlp = pair[kind]
            if mlp[0].weight.device != x.device:
                active.network.to(x.device)
            value = changed.float()
            changed = (value + mlp(value) * active.multiplier).to(x.dtype)
        return None if changed is x else (changed, *args[1:])

    return hook


@dataclass
class HypernetworkLibrary:
    """The hypernetwork files of a folder, and the hooks that apply them to a UNet for the job being run. As in
    A1111, the files of the latest call stay read (again when one changes) and others are let go."""

    folder: Path
    _read: dict[Path, tuple[float, Hypernetwork]] = field(default_factory=dict, repr=False)
    _hooks: dict[int, list] = field(default_factory=dict, repr=False)  # id(unet) → hook handles

    def available(self) -> dict[str, Path]:
        """Name (file stem) → path of every `.pt` file under the folder, as A1111 lists them: in path order
        ignoring case, a later file of the same name winning, none called "None"."""
        if not self.folder.is_dir():
            return {}
        files = sorted((p for p in self.folder.rglob(f"*{SUFFIX}") if p.is_file()), key=lambda p: str(p).lower())
        return {path.stem: path for path in files if path.stem != "None"}

    def load(self, path: Path) -> Hypernetwork:
        """The hypernetwork in `path`, kept while the file is unchanged."""
        mtime = path.stat().st_mtime
        cached = self._read.get(path)
        if cached is None or cached[0] != mtime:
            cached = self._read[path] = (mtime, read_hypernetwork(path))
        return cached[1]

    def apply(self, unet: nn.Module, tags: list[ExtraNetwork], model_kind: str) -> list[str]:
        """Hook exactly the hypernetworks these tags name into `unet` (replacing those of an earlier call), each
        at its multiplier; returns warnings for tags that name a missing, unreadable or ill-fitting file, which
        are left out. Multiplier 0 leaves a hypernetwork out: the image is as without it."""
        self.detach(unet)
        warnings: list[str] = []
        requests: dict[str, HypernetRequest] = {}
        for tag in tags:
            if tag.kind == TAG:
                try:
                    requests[tag.name] = HypernetRequest.from_tag(tag)
                except ValueError as exc:
                    warnings.append(str(exc))
        projections = attention_projections(unet)
        widths = {input_width(p) for p, _ in projections} - {None}
        files = self.available()
        chain, read = [], {}
        for request in requests.values():
            if request.multiplier == 0:
                continue
            path = files.get(request.name)
            if path is None:
                warnings.append(f"Hypernetwork not found: {request.name} (looked in {self.folder})")
                continue
            try:
                network = self.load(path)
            except (UnsafeWeightsError, UnreadableWeightsError, HypernetworkError) as exc:
                warnings.append(f"Hypernetwork {request.name} was skipped: {exc}")
                continue
            unused = sorted(set(network.layers) - widths)
            if len(unused) == len(network.layers):
                warnings.append(
                    f"Hypernetwork {request.name} does not fit this {model_kind} model and was skipped: "
                    f"its layers are for attention widths {_listed(unused)}, this model's attention "
                    f"reads widths {_listed(widths)}"
                )
                continue
            if unused:
                warnings.append(
                    f"Hypernetwork {request.name}: its layers for attention widths {_listed(unused)} "
                    f"fit nothing in this {model_kind} model and were left out"
                )
            chain.append(_Active(network, request.multiplier))
            read[path] = self._read[path]
        self._read = read
        for warning in warnings:
            log.warning(warning)
        if chain:
            used = set().union(*(a.network.layers for a in chain))
            self._hooks[id(unet)] = [
                p.register_forward_pre_hook(_transform(chain, kind))
                for p, kind in projections
                if input_width(p) in used
            ]
        return warnings

    def detach(self, unet: nn.Module) -> None:
        """Take this library's hooks out of `unet`."""
        for handle in self._hooks.pop(id(unet), []):
            handle.remove()

    def detach_all(self) -> None:
        """Take every hook out (at the end of a job)."""
        for handles in self._hooks.values():
            for handle in handles:
                handle.remove()
        self._hooks.clear()


def _listed(widths) -> str:
    return ", ".join(str(w) for w in sorted(widths))
