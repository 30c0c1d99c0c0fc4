"""The pixel tools a job may use beside the diffusion model: upscalers and face restorers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from modules.face_restoration import FaceRestorers
from modules.upscalers import UpscalerLibrary


@dataclass
class ImageTools:
    """Upscaler models (models/ESRGAN, …) and face restorers (models/GFPGAN, models/Codeformer)."""

    upscalers: UpscalerLibrary
    face_restorers: FaceRestorers

    @classmethod
    def create(cls, models_dir: Path, device: torch.device | str = "cpu") -> "ImageTools":
        return cls(UpscalerLibrary(models_dir, device), FaceRestorers(models_dir, device))
