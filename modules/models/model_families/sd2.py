"""Stable Diffusion 2.x: OpenCLIP ViT-H/14's penultimate layer, 64-wide attention heads; ε- or v-prediction
(the 768-v models), told by a sidecar .yaml or by probing the UNet."""

from modules.models.model_families.base import OPEN_CLIP, ModelFamily, TextEncoderSlot
from modules.models.model_families.sd1 import SD_LATENTS

FAMILY = ModelFamily(
    name="sd2",
    label="SD 2.x",
    config_folder="sd2",
    # diffusers drops OpenCLIP's last layer, so the penultimate one comes out with the final norm applied.
    text_encoders=(TextEncoderSlot("text_encoder", "cond_stage_model.", OPEN_CLIP, "!", 1024, max_layers=23),),
    latent_format=SD_LATENTS,
    attention_head_dim=64,
    probes_v_prediction=True,
)
