"""The pixel tools a job may use beside the diffusion model: upscalers, face restorers, TAESD."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from modules.face_restoration import FaceRestorers
from modules.previews import TaesdDecoders
from modules.upscalers import UpscalerLibrary


@dataclass
class ImageTools:
    """Upscaler models (models/ESRGAN, …) and face restorers (models/GFPGAN, models/Codeformer)."""

    upscalers: UpscalerLibrary
    face_restorers: FaceRestorers
    taesd: TaesdDecoders

    @classmethod
    def create(cls, models_dir: Path, device: torch.device | str = "cpu") -> "ImageTools":
        return cls(UpscalerLibrary(models_dir, device), FaceRestorers(models_dir, device),
                   TaesdDecoders(models_dir / "VAE-taesd"))
