"""Upscalers with A1111's names: latent modes for hires fix, PIL resizers, and model files
(ESRGAN, Real-ESRGAN, SwinIR, DAT, HAT, ...) that spandrel recognises, run in blended tiles."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from modules.errors import UserError
from modules.imaging.image_inputs import normalize_input
from modules.models.safe_weights import read_weights

# name -> (torch interpolate mode, antialias), as A1111 names the hires fix latent upscalers.
_LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
LATENT_MODES: list[str] = list(_LATENT_MODES)

_PIL_UPSCALERS = {
    "None": Image.Resampling.LANCZOS,
    "Lanczos": Image.Resampling.LANCZOS,
    "Nearest": Image.Resampling.NEAREST,
}
MODEL_FOLDERS = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT")
MODEL_EXTENSIONS = (".pth", ".pt", ".safetensors")
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
_MAX_MODEL_PASSES = 3

TileProgress = Callable[[int, int], None]
"""Called as progress(tiles_done, tiles_total) while a model runs; may raise to cancel."""


def upscale_latents(latents: torch.Tensor, mode: str, height: int, width: int) -> torch.Tensor:
    """Resize a (batch, channels, h, w) latent to (height, width) in latent units (pixels // 8
    for SD) with one of LATENT_MODES."""
    if mode not in _LATENT_MODES:
        raise UserError(f"Unknown latent upscale mode {mode!r}; choose one of {', '.join(LATENT_MODES)}.")
    interp, antialias = _LATENT_MODES[mode]
    # CPU half precision lacks some of these kernels: compute in float32, hand back the input's dtype.
    out = F.interpolate(latents.float(), size=(int(height), int(width)), mode=interp, antialias=antialias)
    return out.to(latents.dtype)


def is_latent_upscaler(name: str) -> bool:
    """True for the hires fix latent modes, which work on latents rather than images."""
    return name in _LATENT_MODES


class UpscalerLibrary:
    """The pixel upscalers: None, Lanczos, Nearest, then every model file under the model folders.
    Loaded models are cached until `unload()`; `refresh()` rescans the folders."""

    def __init__(
        self,
        models_dir: Path,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.models_dir = Path(models_dir)
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_pixels = max_pixels
        self._lock = threading.RLock()
        self._cache: dict[Path, object] = {}
        self._files: dict[str, Path] | None = None

    def refresh(self) -> None:
        """Forget the file list, so the next call rescans the folders."""
        with self._lock:
            self._files = None

    def model_files(self) -> dict[str, Path]:
        """Model name (the file stem) -> file, in folder order then by name; the first of equal stems wins."""
        with self._lock:
            if self._files is None:
                self._files = {}
                for folder in MODEL_FOLDERS:
                    root = self.models_dir / folder
                    found = [p for p in root.rglob("*") if p.suffix.lower() in MODEL_EXTENSIONS and p.is_file()]
                    for path in sorted(found, key=lambda p: (p.stem.lower(), str(p))):
                        self._files.setdefault(path.stem, path)
            return dict(self._files)

    def names(self) -> list[str]:
        """Every pixel upscaler name, as A1111 lists them: None, Lanczos, Nearest, then models by name."""
        return list(_PIL_UPSCALERS) + sorted(self.model_files(), key=str.lower)

    def upscale(
        self,
        image: Image.Image,
        scale: float,
        name: str,
        tile: int = 192,
        overlap: int = 8,
        progress: TileProgress | None = None,
    ) -> Image.Image:
        """Resize `image` by `scale` (the final size ratio) with upscaler `name`."""
        width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        return self.upscale_to(image, width, height, name, tile, overlap, progress)

    def upscale_to(
        self,
        image: Image.Image,
        width: int,
        height: int,
        name: str,
        tile: int = 192,
        overlap: int = 8,
        progress: TileProgress | None = None,
    ) -> Image.Image:
        """Resize `image` to exactly width x height with upscaler `name`. A model is run (up to three
        times, e.g. a 4x model twice for 8x) until the image is at least that big, then Lanczos
        brings it to the exact size. "None" and "Lanczos" are a plain Lanczos resize."""
        self._check_pixels(width, height, "the requested size")
        image = normalize_input(image)
        if name in _PIL_UPSCALERS:
            return image.resize((width, height), resample=_PIL_UPSCALERS[name])
        model = self.load(name)
        alpha = image.getchannel("A") if image.mode == "RGBA" else None
        result = image.convert("RGB")
        for _ in range(_MAX_MODEL_PASSES):
            if result.width >= width and result.height >= height:
                break
            self._check_pixels(
                result.width * model.scale, result.height * model.scale, f"a {model.scale}x pass of {name}"
            )
            result = self._run_model(model, result, tile, overlap, progress)
            if model.scale == 1:
                break
        if result.size != (width, height):
            result = result.resize((width, height), resample=Image.Resampling.LANCZOS)
        if alpha is not None:
            result.putalpha(alpha.resize((width, height), resample=Image.Resampling.LANCZOS))
        return result

    def load(self, name: str):
        """The spandrel model descriptor for model `name`, loaded once and cached."""
        files = self.model_files()
        if name not in files:
            raise UserError(
                f"Upscaler {name!r} not found. Put model files in "
                f"{', '.join(str(self.models_dir / f) for f in MODEL_FOLDERS)}."
            )
        path = files[name]
        with self._lock:
            if path not in self._cache:
                self._cache[path] = self._prepare(load_image_model(path), path)
            return self._cache[path]

    def unload(self) -> None:
        """Drop every cached model."""
        with self._lock:
            self._cache.clear()

    def _prepare(self, model, path: Path):
        if model.purpose not in ("SR", "Restoration"):
            raise UserError(f"{path.name} is a {model.architecture.name} {model.purpose} model, not an upscaler.")
        if model.input_channels != 3 or model.output_channels != 3:
            raise UserError(
                f"{path.name} works on {model.input_channels}-channel images; only RGB upscalers are supported."
            )
        dtype = self.dtype
        if (dtype == torch.float16 and not model.supports_half) or (
            dtype == torch.bfloat16 and not model.supports_bfloat16
        ):
            dtype = torch.float32
        return model.to(self.device).to(dtype).eval()

    def _check_pixels(self, width: int, height: int, what: str) -> None:
        if width * height > self.max_pixels:
            raise UserError(
                f"Upscaling refused: {what} would be {width}x{height} "
                f"({width * height / 1e6:.1f} megapixels), over the limit of "
                f"{self.max_pixels / 1e6:.1f} megapixels."
            )

    def _run_model(
        self, model, image: Image.Image, tile: int, overlap: int, progress: TileProgress | None
    ) -> Image.Image:
        array = np.asarray(image, dtype=np.float32) / 255.0
        pixels = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)
        out = tiled_apply(
            lambda t: model(t.to(model.device, model.dtype)).float().cpu(), pixels, model.scale, tile, overlap, progress
        )
        data = (out[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
        return Image.fromarray(data, "RGB")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a .safetensors, .pth, .pt or .ckpt file as plain tensors: torch.load runs weights-only,
    so no pickled code can run. Unreadable files give a UserError naming the file."""
    path = Path(path)
    try:
        state = read_weights(path)
    except UserError:
        raise
    except Exception as exc:  # pickle refusals, truncated files, TorchScript archives, ...
        raise UserError(
            f"Could not read {path.name} as model weights (only plain tensor files are loaded): {exc}"
        ) from exc
    if not isinstance(state, dict):
        raise UserError(f"{path.name} does not hold a state dict of tensors.")
    return state


def load_image_model(path: Path):
    """Load a model file with spandrel, the architecture detected from its tensors. A file
    spandrel does not know gives a UserError that says so."""
    import spandrel

    path = Path(path)
    state = read_state_dict(path)
    try:
        return spandrel.ModelLoader("cpu").load_from_state_dict(spandrel.canonicalize_state_dict(state))
    except spandrel.UnsupportedModelError:
        raise UserError(
            f"{path.name} is not an upscaler model: its tensors match no architecture spandrel "
            "knows (ESRGAN, Real-ESRGAN, SwinIR, DAT, HAT, ...)."
        ) from None
    except Exception as exc:
        raise UserError(f"{path.name} looks like an upscaler but could not be loaded: {exc}") from exc


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    pixels: torch.Tensor,
    scale: int,
    tile: int,
    overlap: int,
    progress: TileProgress | None = None,
) -> torch.Tensor:
    """Run `fn` (which scales a (1, C, h, w) tensor by `scale`) over `pixels` in tiles of `tile`
    pixels that overlap by `overlap`. Each tile's outer quarter of the overlap is dropped (edge
    effects live there) and the rest is cross-faded linearly, so there are no seams; a model whose
    receptive field reaches no further than overlap / 4 gives the untiled result exactly.
    `tile` 0 runs the whole image at once."""
    _, channels, height, width = pixels.shape
    if tile <= 0 or (height <= tile and width <= tile):
        if progress:
            progress(0, 1)
        out = fn(pixels)
        if progress:
            progress(1, 1)
        return out
    if not 0 <= overlap < tile:
        raise UserError(f"Tile overlap ({overlap}) must be at least 0 and smaller than the tile size ({tile}).")
    rows, cols = _tile_starts(height, tile, overlap), _tile_starts(width, tile, overlap)
    out = torch.zeros(1, channels, height * scale, width * scale)
    weight_sum = torch.zeros(1, 1, height * scale, width * scale)
    total = len(rows) * len(cols)
    for index, (y, x) in enumerate((y, x) for y in rows for x in cols):
        if progress:
            progress(index, total)
        th, tw = min(tile, height - y), min(tile, width - x)
        result = fn(pixels[:, :, y : y + th, x : x + tw])
        weight = (
            _ramp(th * scale, overlap * scale, y > 0, y + th < height)[:, None]
            * _ramp(tw * scale, overlap * scale, x > 0, x + tw < width)[None, :]
        )
        ys, xs = slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale)
        out[:, :, ys, xs] += result * weight
        weight_sum[:, :, ys, xs] += weight
    if progress:
        progress(total, total)
    return out / weight_sum


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile start offsets along one axis; the last tile ends at the edge."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return [*starts, length - tile]


def _ramp(length: int, overlap: int, fade_start: bool, fade_end: bool) -> torch.Tensor:
    """Per-pixel weights along one tile axis: 0 over the outer quarter of the overlap at an inner
    edge, rising linearly to 1 at three quarters of it. Two neighbours' ramps sum to 1."""
    weight = torch.ones(length)
    if overlap <= 0:
        return weight
    distance = torch.arange(length, dtype=torch.float32) + 0.5
    rise = ((distance - overlap / 4) / (overlap / 2)).clamp(0, 1)
    if fade_start:
        weight = torch.minimum(weight, rise)
    if fade_end:
        weight = torch.minimum(weight, rise.flip(0))
    return weight
