"""Stable Diffusion XL: CLIP ViT-L and OpenCLIP bigG side by side (penultimate layers), the pooled bigG
embedding and the image size as extra conditioning, its own VAE."""

from modules.models.model_families.base import CLIP, OPEN_CLIP, LatentFormat, ModelFamily, TextEncoderSlot

SDXL_LATENTS = LatentFormat(
    name="sdxl",
    label="SDXL",
    scaling_factor=0.13025,
    preview_rgb=(
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    ),
    preview_bias=(0.1084, -0.0175, -0.0011),
    approx_nn_file="vaeapprox-sdxl.pt",
    taesd_marker="xl",
)

FAMILY = ModelFamily(
    name="sdxl",
    label="SDXL",
    config_folder="sdxl",
    text_encoders=(
        TextEncoderSlot(
            "text_encoder",
            "conditioner.embedders.0.",
            CLIP,
            "<|endoftext|>",
            768,
            penultimate=True,
            embedding_key="clip_l",
        ),
        TextEncoderSlot(
            "text_encoder_2",
            "conditioner.embedders.1.",
            OPEN_CLIP,
            "!",
            1280,
            penultimate=True,
            pooled=True,
            embedding_key="clip_g",
        ),
    ),
    latent_format=SDXL_LATENTS,
    attention_head_dim=64,
    time_ids=6,
)
