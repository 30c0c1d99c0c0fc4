"""Where things live: the repository (code, shipped configs) and the data dir (what a user owns).

A1111's module-level names (script_path, data_path, models_path, extensions_dir, extensions_builtin_dir)
read the data dir the app runs on, set by activate() at start, and the repository root before that."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_CONFIGS_DIR = Path(__file__).resolve().parent / "model_configs"

# models/ sub-folders, named as in A1111.
MODEL_FOLDERS = ("Stable-diffusion", "VAE", "Lora", "hypernetworks", "ESRGAN", "RealESRGAN", "GFPGAN", "Codeformer")


@dataclass(frozen=True)
class DataPaths:
    """Every user-owned path, all below one data dir (default: the repository root)."""

    root: Path
    extra_ckpt_dir: Path | None = None

    @classmethod
    def create(cls, data_dir: str | None = None, ckpt_dir: str | None = None) -> DataPaths:
        """Resolve the folders and create the ones a user drops files into."""
        root = Path(data_dir).expanduser().resolve() if data_dir else REPO_ROOT
        extra = Path(ckpt_dir).expanduser().resolve() if ckpt_dir else None
        paths = cls(root=root, extra_ckpt_dir=extra)
        for folder in MODEL_FOLDERS:
            (paths.models / folder).mkdir(parents=True, exist_ok=True)
        for directory in (paths.outputs, paths.embeddings, paths.extensions, paths.cache):
            directory.mkdir(parents=True, exist_ok=True)
        return paths

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def sd_models(self) -> Path:
        return self.models / "Stable-diffusion"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def extensions(self) -> Path:
        return self.root / "extensions"

    @property
    def cache(self) -> Path:
        """Derived data that can be rebuilt (tokenizer files, ...)."""
        return self.root / "cache"

    @property
    def config_file(self) -> Path:
        return self.root / "config.json"

    @property
    def ui_config_file(self) -> Path:
        return self.root / "ui-config.json"

    @property
    def styles_file(self) -> Path:
        return self.root / "styles.csv"

    @property
    def hash_cache_file(self) -> Path:
        return self.root / "cache.json"

    def checkpoint_dirs(self) -> list[Path]:
        """Folders searched for checkpoints, models/Stable-diffusion first."""
        dirs = [self.sd_models]
        if self.extra_ckpt_dir is not None:
            dirs.append(self.extra_ckpt_dir)
        return dirs


_active: DataPaths = DataPaths(REPO_ROOT)
_A1111_NAMES = {
    "script_path": lambda paths: REPO_ROOT,
    "data_path": lambda paths: paths.root,
    "models_path": lambda paths: paths.models,
    "extensions_dir": lambda paths: paths.extensions,
    "extensions_builtin_dir": lambda paths: REPO_ROOT / "extensions-builtin",
}


def activate(paths: DataPaths) -> None:
    """Make A1111's module-level names point into `paths` (the running app's data dir)."""
    global _active
    _active = paths


def __getattr__(name: str) -> str:
    if name in _A1111_NAMES:
        return str(_A1111_NAMES[name](_active))
    raise AttributeError(f"module 'modules.paths' has no attribute {name!r}")
