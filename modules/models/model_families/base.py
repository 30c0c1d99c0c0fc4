"""What a model family is: how a checkpoint of it is recognised, its text encoders, its latent space and its
training noise schedule. A family is data plus a few rules; the code that loads, encodes, previews and samples
reads these instead of branching on a family's name."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import yaml

from modules.models import model_detection
from modules.paths import MODEL_CONFIGS_DIR
from modules.sampling.denoiser import EPSILON, V_PREDICTION

log = logging.getLogger(__name__)

UNET_KEY = "model.diffusion_model.input_blocks.0.0.weight"  # the first layer of an LDM UNet
CLIP, OPEN_CLIP = "clip", "open_clip"


@dataclass(frozen=True)
class TextEncoderSlot:
    """One CLIP text encoder of a family, where its checkpoint keeps it, and how its output is used."""

    folder: str  # diffusers' folder and pipeline argument: "text_encoder", "text_encoder_2"
    embedder: str  # its module prefix in an original checkpoint, e.g. "cond_stage_model."
    layout: str  # CLIP: transformers' names kept; OPEN_CLIP: OpenCLIP's (fused in_proj, resblocks)
    pad_token: str  # the pad token of its tokenizer, as the official tokenizer config sets it
    hidden_size: int  # its width in the full-size model
    penultimate: bool = False  # conditions on the layer before the last, without the final norm (SDXL)
    pooled: bool = False  # its projected pooled output conditions the UNet too (SDXL's OpenCLIP bigG)
    max_layers: int | None = None  # diffusers keeps only this many layers (SD 2.x: 23 of OpenCLIP's 24)
    embedding_key: str | None = None  # the key of its vectors in a textual-inversion file holding several

    @property
    def weights_prefix(self) -> str:
        """The prefix of its weights' keys in an original checkpoint."""
        return self.embedder + ("transformer.text_model." if self.layout == CLIP else "model.")

    @property
    def token_embedding_key(self) -> str:
        return self.weights_prefix + (
            "embeddings.token_embedding.weight" if self.layout == CLIP else "token_embedding.weight"
        )

    @property
    def tokenizer_folder(self) -> str:
        """diffusers' name for its tokenizer: "tokenizer", "tokenizer_2"."""
        return self.folder.replace("text_encoder", "tokenizer")

    @property
    def diffusers_activation(self) -> str:
        """The activation transformers' CLIPTextModel config names for it: OpenAI's CLIP uses quick GELU,
        OpenCLIP exact GELU; this tells SD 1.x and SD 2.x diffusers folders apart."""
        return "quick_gelu" if self.layout == CLIP else "gelu"


@dataclass(frozen=True)
class LatentFormat:
    """A VAE's latent space: its shape, its scaling, and what the live previews need to show it. Families with
    the same VAE share one (SD 1.x and SD 2.x) and so share preview decoders."""

    name: str  # "sd", "sdxl": keys the preview decoders
    label: str  # for messages: "SD 1.x/2.x"
    scaling_factor: float  # latents the sampler sees = (VAE latents - shift_factor) × scaling_factor
    preview_rgb: tuple[tuple[float, float, float], ...]  # Approx cheap: each latent channel's (R, G, B) weights
    preview_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)  # Approx cheap: the RGB offset
    approx_nn_file: str | None = None  # A1111's VAEApprox weights for it, in models/VAE-approx
    taesd_marker: str = ""  # TAESD folders in models/VAE-taesd whose name contains this fit ("" : none other's)
    channels: int = 4
    vae_scale_factor: int = 8  # pixels per latent, each way
    shift_factor: float = 0.0


@dataclass(frozen=True)
class BetaSchedule:
    """The training noise schedule, as diffusers' scheduler configs give it."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"

    def config(self) -> dict[str, Any]:
        """As a scheduler config (what `modules.sampling.denoiser.alphas_cumprod_of` reads)."""
        return asdict(self)


@dataclass(frozen=True, eq=False)
class ModelFamily:
    """One kind of Stable Diffusion model. Families are singletons: compare them with `is` or `==`."""

    name: str  # "sd1": stable, for configs, logs and anything written out
    label: str  # "SD 1.x": for people
    config_folder: str  # its shipped diffusers configs, in modules/model_configs
    text_encoders: tuple[TextEncoderSlot, ...]
    latent_format: LatentFormat
    beta_schedule: BetaSchedule = BetaSchedule()
    attention_head_dim: int | None = None  # UNet attention heads this wide; None: the config's head counts
    time_ids: int = 0  # SDXL's size conditioning: original size, crop offset and target size, each (h, w)
    probes_v_prediction: bool = False  # without a sidecar .yaml, probe the UNet for v-prediction (SD 2.x)

    @property
    def needs_size_conditioning(self) -> bool:
        """Whether the UNet takes the pooled text embedding and the size time ids (SDXL)."""
        return self.time_ids > 0

    @property
    def pooled_slot(self) -> TextEncoderSlot | None:
        return next((slot for slot in self.text_encoders if slot.pooled), None)

    def detect(self, state: dict[str, torch.Tensor]) -> bool:
        """Whether an original-layout state dict is a checkpoint of this family: an LDM UNet and each of the
        family's text encoders where the family keeps them."""
        return UNET_KEY in state and all(slot.token_embedding_key in state for slot in self.text_encoders)

    def detect_diffusers(self, index: dict[str, Any], text_configs: dict[str, dict[str, Any]]) -> bool:
        """Whether a diffusers folder (its model_index.json and text encoder configs) is of this family."""
        folders = {
            name for name, value in index.items() if name.startswith("text_encoder") and value and value[0] is not None
        }
        return folders == {slot.folder for slot in self.text_encoders} and all(
            text_configs.get(slot.folder, {}).get("hidden_act", "quick_gelu") == slot.diffusers_activation
            for slot in self.text_encoders
        )

    def load_configs(self) -> dict[str, dict[str, Any]]:
        """Its shipped component configs, keyed by folder name ("model_index" for the pipeline's)."""
        return model_detection.load_family_configs(self.config_folder)

    @cached_property
    def pipeline_class_name(self) -> str:
        """The diffusers pipeline class of the family, from its shipped model_index.json."""
        return json.loads((MODEL_CONFIGS_DIR / self.config_folder / "model_index.json").read_text())["_class_name"]

    def prediction_type(self, checkpoint: Path | None, unet: torch.nn.Module) -> str:
        """EPSILON or V_PREDICTION: a sidecar .yaml beside the checkpoint with `parameterization: "v"` decides,
        as in A1111; without one, families that may be either (SD 2.x) probe the UNet."""
        sidecar = checkpoint.with_suffix(".yaml") if checkpoint is not None else None
        if sidecar is not None and sidecar.is_file():
            try:
                config = yaml.safe_load(sidecar.read_text(errors="replace")) or {}
                v = config.get("model", {}).get("params", {}).get("parameterization") == "v"
                return V_PREDICTION if v else EPSILON
            except (yaml.YAMLError, AttributeError) as exc:
                log.warning("Ignoring unreadable %s: %s", sidecar.name, exc)
        if self.probes_v_prediction and model_detection.predicts_v(
            unet, model_detection.diffusers_config(unet).cross_attention_dim
        ):
            return V_PREDICTION
        return EPSILON

    def pipeline(
        self, unet: torch.nn.Module, vae: torch.nn.Module, text_encoders: list, tokenizers: list, scheduler: Any
    ) -> Any:
        """A diffusers pipeline of the family's class over these components (for its LoRA loader methods)."""
        import inspect

        import diffusers

        cls = getattr(diffusers, self.pipeline_class_name)
        parts: dict[str, Any] = {"unet": unet, "vae": vae, "scheduler": scheduler}
        for slot, encoder, tokenizer in zip(self.text_encoders, text_encoders, tokenizers):
            parts[slot.folder], parts[slot.tokenizer_folder] = encoder, tokenizer
        accepted = inspect.signature(cls).parameters
        parts.update({name: None for name in cls._optional_components if name in accepted and name not in parts})
        if "requires_safety_checker" in accepted:
            parts["requires_safety_checker"] = False
        return cls(**parts)

    def __repr__(self) -> str:
        return f"<ModelFamily {self.name}>"
