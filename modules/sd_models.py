"""Load, hold, switch and free Stable Diffusion checkpoints (single-file and diffusers folders)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from modules.core.memory_release import release_freed_memory
from modules.errors import ModelLoadError
from modules.models import model_detection, model_families
from modules.models.checkpoints import CheckpointInfo, HashCache, read_state_dict
from modules.models.model_families.base import ModelFamily
from modules.prompting.clip_tokenizer import load_clip_tokenizer
from modules.prompting.conditioning import EncoderSlot, PromptEncoder
from modules.sampling.denoiser import Denoiser, alphas_cumprod_of

log = logging.getLogger(__name__)


@dataclass
class StableDiffusionModel:
    """A loaded checkpoint: its components on one device, plus what describes it."""

    checkpoint: CheckpointInfo
    family: ModelFamily
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoders: list[torch.nn.Module]
    tokenizers: list
    scheduler_config: dict
    device: torch.device
    dtype: torch.dtype
    sha256: str | None = None
    prompt_encoder: PromptEncoder = field(init=False)
    lora_adapters: set[str] = field(default_factory=set)
    vae_file: Path | None = None  # a separate VAE file whose weights are in `vae`; None: the checkpoint's own
    vae_sha256: str | None = None
    own_vae_state: dict | None = field(default=None, repr=False)  # the checkpoint's VAE weights (CPU) meanwhile
    _lora_host: object = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for module in (self.unet, self.vae):  # convolutions on channels-last weights run ~10% faster
            module.to(memory_format=torch.channels_last)
        slots = [
            EncoderSlot(tok, enc, penultimate=slot.penultimate, pooled=slot.pooled)
            for slot, tok, enc in zip(self.family.text_encoders, self.tokenizers, self.text_encoders)
        ]
        self.prompt_encoder = PromptEncoder(slots, self.device, self.dtype)

    def lora_host(self):
        """A diffusers pipeline over this model's own components, used for its LoRA adapter methods."""
        if self._lora_host is None:
            from diffusers import EulerDiscreteScheduler

            scheduler = EulerDiscreteScheduler.from_config(self.scheduler_config)
            self._lora_host = self.family.pipeline(self.unet, self.vae, self.text_encoders, self.tokenizers, scheduler)
        return self._lora_host

    @property
    def is_inpainting(self) -> bool:
        """An inpainting UNet: it takes the mask and the masked image's latents as 5 extra channels."""
        unet, vae = model_detection.diffusers_config(self.unet), model_detection.diffusers_config(self.vae)
        return unet.in_channels == vae.latent_channels * 2 + 1

    @property
    def short_hash(self) -> str | None:
        return HashCache.short(self.sha256)

    @property
    def sd_checkpoint_info(self):
        """A1111's description of the checkpoint (filename, title, model_name, hash, sha256, shorthash), which
        extensions read from `shared.sd_model`."""
        from modules.extensions.a1111.checkpoint_info import CheckpointInfo as A1111CheckpointInfo

        return A1111CheckpointInfo.of(self.checkpoint, self.sha256)

    @property
    def sd_model_hash(self) -> str | None:
        """A1111's name for the short hash."""
        return self.short_hash

    @property
    def sd_model_checkpoint(self) -> str:
        """A1111's name for the checkpoint's file."""
        return str(self.checkpoint.path)

    @property
    def short_title(self) -> str:
        """`name [hash]`, as infotext names a checkpoint other than the first pass's ("Hires checkpoint")."""
        name = self.checkpoint.model_name
        return f"{name} [{self.short_hash}]" if self.short_hash else name

    @property
    def vae_short_hash(self) -> str | None:
        return HashCache.short(self.vae_sha256)

    @property
    def vae_name(self) -> str | None:
        """The `VAE:` infotext value: the separate VAE's file name, None for the checkpoint's own."""
        return self.vae_file.name if self.vae_file else None

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(model_detection.diffusers_config(self.vae).block_out_channels) - 1)

    @property
    def latent_dtype(self) -> torch.dtype:
        """Latents and the sampler's arithmetic stay in fp32, whatever the weights' precision."""
        return torch.float32

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config.get("prediction_type", "epsilon")

    @cached_property
    def denoiser(self) -> Denoiser:
        """The sampling core's view of the model: its family's training sigmas, predicting ε or v."""
        return self.make_denoiser()

    def make_denoiser(self, zero_terminal_snr: bool = False, quantize: bool = False) -> Denoiser:
        """A Denoiser over the family's beta schedule, with A1111's "Zero Terminal SNR" noise schedule and its
        enable_quantization setting when asked."""
        alphas_cumprod = alphas_cumprod_of(self.family.beta_schedule.config(), zero_terminal_snr)
        return Denoiser(alphas_cumprod, self.prediction_type, quantize)


def pick_device(requested: str = "auto") -> torch.device:
    """auto → CUDA, then MPS, then CPU."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for, but no CUDA GPU is available")
    return torch.device(requested)


def pick_dtype(device: torch.device, no_half: bool) -> torch.dtype:
    """fp16 on GPUs; bf16 on CPUs with AMX or AVX512-BF16; otherwise, or with --no-half, fp32."""
    if no_half:
        return torch.float32
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    return torch.float16


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles or AVX512-BF16)."""
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


# Below this many UNet parameters (the demo model has a few million), bf16 on the CPU costs more in
# conversions than its faster matrix units save; an SD1.5 UNet has 860 million.
BF16_MIN_UNET_PARAMS = 100_000_000


def dtype_for(prepared: PreparedCheckpoint, device: torch.device, preferred: torch.dtype) -> torch.dtype:
    """The precision to build a checkpoint in: `preferred`, except bf16 on the CPU for a small UNet."""
    if device.type != "cpu" or preferred != torch.bfloat16 or not prepared.state:
        return preferred
    unet_params = sum(v.numel() for k, v in prepared.state.items() if k.startswith("model.diffusion_model."))
    return preferred if unet_params >= BF16_MIN_UNET_PARAMS else torch.float32


@dataclass
class PreparedCheckpoint:
    """A checkpoint read and recognised, ready to be built into a model."""

    info: CheckpointInfo
    family: ModelFamily | None = None  # None for a diffusers folder, recognised when it is built
    state: dict = field(default_factory=dict, repr=False)
    configs: dict = field(default_factory=dict, repr=False)


def prepare_checkpoint(info: CheckpointInfo) -> PreparedCheckpoint:
    """Read and recognise a checkpoint; raises ModelLoadError before anything is freed or built."""
    if info.is_diffusers_folder:
        if not (info.path / "model_index.json").is_file():
            raise ModelLoadError(f"No diffusers model at {info.path}")
        return PreparedCheckpoint(info)
    state = read_state_dict(info.path)
    family = model_families.detect(state)
    return PreparedCheckpoint(info, family, state, model_detection.fit_configs(family, state))


def build_model(
    prepared: PreparedCheckpoint,
    device: torch.device,
    dtype: torch.dtype,
    cache_dir: Path,
    hashes: HashCache | None = None,
) -> StableDiffusionModel:
    """Turn a prepared checkpoint into a model on `device`, fully offline."""
    info = prepared.info
    if info.is_diffusers_folder:
        return _load_diffusers_folder(info, device, dtype)
    family = prepared.family
    assert family is not None, "a single-file checkpoint's family is known once it is prepared"
    folder = model_detection.write_config_folder(prepared.configs, cache_dir / "model_configs")
    try:
        unet, vae, encoders = components_from_state(prepared.state, family, str(folder), dtype)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"{info.name} looks like an {family.label} checkpoint, but its weights do not fit that architecture: {exc}"
        ) from exc
    finally:
        prepared.state = {}
    missing = [name for module in (unet, vae, *encoders) for name, p in module.named_parameters() if p.is_meta]
    if missing:
        raise ModelLoadError(
            f"{info.name} is incomplete: it has no weights for {len(missing)} parameters (for example {missing[0]})."
        )
    prediction = family.prediction_type(info.path, unet)
    scheduler_config = {**prepared.configs["scheduler"], "prediction_type": prediction}
    model = StableDiffusionModel(
        checkpoint=info,
        family=family,
        unet=_to(unet, device),
        vae=_to(vae, device),
        text_encoders=[_to(e, device) for e in encoders],
        tokenizers=_tokenizers(family),
        scheduler_config=scheduler_config,
        device=device,
        dtype=dtype,
        sha256=hashes.sha256(info.path) if hashes else None,
    )
    log.info("Loaded %s (%s, %s, %s on %s)", info.name, model.family.name, model.prediction_type, dtype, device)
    return model


def load_model(
    info: CheckpointInfo, device: torch.device, dtype: torch.dtype, cache_dir: Path, hashes: HashCache | None = None
) -> StableDiffusionModel:
    """Read, recognise and build a checkpoint in one go."""
    return build_model(prepare_checkpoint(info), device, dtype, cache_dir, hashes)


def components_from_state(state: dict, family: ModelFamily, config: str, dtype: torch.dtype):
    """The UNet, VAE and text encoders of a checkpoint's state dict, as diffusers loads them from one file."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    common = {"config": config, "torch_dtype": dtype, "local_files_only": True}
    unet = UNet2DConditionModel.from_single_file(state, subfolder="unet", **common)
    vae = AutoencoderKL.from_single_file(state, subfolder="vae", **common)
    encoders = []
    for slot in family.text_encoders:
        cls = CLIPTextModelWithProjection if slot.pooled else CLIPTextModel
        encoders.append(
            create_diffusers_clip_model_from_ldm(
                cls, state, subfolder=slot.folder, config=config, torch_dtype=dtype, local_files_only=True
            )
        )
    return unet, vae, encoders


def _tokenizers(family: ModelFamily) -> list:
    """One CLIP tokenizer per text encoder of the family, with its pad token."""
    return [load_clip_tokenizer(slot.pad_token) for slot in family.text_encoders]


def _load_diffusers_folder(info: CheckpointInfo, device: torch.device, dtype: torch.dtype) -> StableDiffusionModel:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    root = info.path
    try:
        family = model_families.detect_diffusers(root)
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=dtype, local_files_only=True)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=dtype, local_files_only=True)
        encoders = [
            (CLIPTextModelWithProjection if slot.pooled else CLIPTextModel).from_pretrained(
                root / slot.folder, torch_dtype=dtype, local_files_only=True
            )
            for slot in family.text_encoders
        ]
        scheduler = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"Could not load the diffusers folder {info.name}: {exc}") from exc
    return StableDiffusionModel(
        checkpoint=info,
        family=family,
        unet=_to(unet, device),
        vae=_to(vae, device),
        text_encoders=[_to(e, device) for e in encoders],
        tokenizers=_tokenizers(family),
        scheduler_config=scheduler,
        device=device,
        dtype=dtype,
    )


def _to(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a freshly loaded (CPU) module to `device`, leaving CPU modules untouched."""
    return module if device.type == "cpu" else module.to(device)


def model_bytes(model: StableDiffusionModel | None) -> int:
    """The memory a model's weights take (UNet, VAE and text encoders)."""
    if model is None:
        return 0
    return sum(
        tensor.numel() * tensor.element_size()
        for module in [model.unet, model.vae, *model.text_encoders]
        for tensor in [*module.parameters(), *module.buffers()]
    )


def free_model(model: StableDiffusionModel | None) -> None:
    """Drop a model's tensors so its memory goes back to the system."""
    if model is None:
        return
    for module in [model.unet, model.vae, *model.text_encoders]:
        module.to("meta")
    release_freed_memory()
