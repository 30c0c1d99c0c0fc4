"""Stable Diffusion 1.x: OpenAI's CLIP ViT-L/14 text encoder, ε-prediction."""

from modules.models.model_families.base import CLIP, LatentFormat, ModelFamily, TextEncoderSlot

# The latent space of the SD 1.x VAE, which SD 2.x keeps.
SD_LATENTS = LatentFormat(
    name="sd",
    label="SD1/SD2",
    scaling_factor=0.18215,
    preview_rgb=(
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    ),
    approx_nn_file="model.pt",
)

FAMILY = ModelFamily(
    name="sd1",
    label="SD 1.x",
    config_folder="sd1",
    text_encoders=(TextEncoderSlot("text_encoder", "cond_stage_model.", CLIP, "<|endoftext|>", 768),),
    latent_format=SD_LATENTS,
)
