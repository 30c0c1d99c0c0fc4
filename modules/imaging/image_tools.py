"""The pixel tools a job may use beside the diffusion model: upscalers, face restorers, preview decoders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from modules.face_restoration import FaceRestorers
from modules.imaging.upscalers import UpscalerLibrary
from modules.jobs.previews import ApproxNNDecoders, TaesdDecoders


@dataclass
class ImageTools:
    """Upscaler models (models/ESRGAN, …), face restorers (models/GFPGAN, models/Codeformer) and live preview
    decoders (models/VAE-taesd, models/VAE-approx)."""

    upscalers: UpscalerLibrary
    face_restorers: FaceRestorers
    taesd: TaesdDecoders
    approx_nn: ApproxNNDecoders

    @classmethod
    def create(cls, models_dir: Path, device: torch.device | str = "cpu") -> ImageTools:
        return cls(
            UpscalerLibrary(models_dir, device),
            FaceRestorers(models_dir, device),
            TaesdDecoders(models_dir / "VAE-taesd"),
            ApproxNNDecoders(models_dir / "VAE-approx"),
        )
