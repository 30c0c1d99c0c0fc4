"""Tiny random-weight BLIP captioner and CLIP of the real transformers architectures, saved as the folders a user
puts in models/BLIP and models/clip (weights, configs, image processors and tokenizers, all built offline), and
tiny term lists in clip-interrogator's layout."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = (
    "a",
    "photo",
    "painting",
    "of",
    "cat",
    "dog",
    "house",
    "tree",
    "red",
    "blue",
    "sky",
    "under",
    "the",
    "with",
    "man",
    "woman",
    "in",
    "on",
    "field",
    "night",
)
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")
TERMS = {
    "mediums": ("an oil painting", "a photograph", "a sketch"),
    "artists": ("by Alice Example", "by Bob Sample", "by Carol Test", "by Dan Specimen"),
    "movements": ("impressionism", "cubism"),
    "flavors": ("highly detailed", "trending on artstation", "soft light", "dark", "colorful"),
}
BLIP_IMAGE_SIZE = CLIP_IMAGE_SIZE = 32


def write_term_lists(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for category, terms in TERMS.items():
        (folder / f"{category}.txt").write_text("\n".join(terms) + "\n", encoding="utf-8")
    return folder


def write_tiny_blip(folder: Path, seed: int = 0) -> Path:
    """BlipForConditionalGeneration with one-layer vision and text transformers and a BERT tokenizer of WORDS."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor
    from transformers.models.blip.configuration_blip import BlipTextConfig, BlipVisionConfig

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + WORDS) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(vocab), bos_token="[DEC]")
    ids = {token: number for number, token in enumerate(SPECIAL)}
    text = BlipTextConfig(
        vocab_size=len(SPECIAL) + len(WORDS),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=64,
        bos_token_id=ids["[DEC]"],
        eos_token_id=ids["[SEP]"],
        sep_token_id=ids["[SEP]"],
        pad_token_id=ids["[PAD]"],
        encoder_hidden_size=32,
    )
    vision = BlipVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=BLIP_IMAGE_SIZE,
        patch_size=8,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(
        BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16)
    )
    model.save_pretrained(folder, safe_serialization=True)
    size = {"height": BLIP_IMAGE_SIZE, "width": BLIP_IMAGE_SIZE}
    BlipProcessor(BlipImageProcessor(size=size), tokenizer).save_pretrained(folder)
    return folder


def write_tiny_clip(folder: Path, seed: int = 1) -> Path:
    """CLIPModel with one-layer towers and the real CLIP BPE tokenizer (open_clip's vocabulary)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor
    from transformers.models.clip.configuration_clip import CLIPTextConfig, CLIPVisionConfig

    from modules.prompting.clip_tokenizer import load_clip_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = load_clip_tokenizer()
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=CLIP_IMAGE_SIZE,
        patch_size=8,
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16))
    model.save_pretrained(folder, safe_serialization=True)
    processor = CLIPImageProcessor(
        size={"shortest_edge": CLIP_IMAGE_SIZE}, crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE}
    )
    CLIPProcessor(processor, tokenizer).save_pretrained(folder)
    return folder


def write_tiny_interrogate_models(models_dir: Path) -> tuple[Path, Path]:
    """models/BLIP and models/clip filled as a user would."""
    return write_tiny_blip(models_dir / "BLIP"), write_tiny_clip(models_dir / "clip")


def write_tiny_open_clip(folder: Path, seed: int = 2) -> Path:
    """An OpenCLIP model folder as the Hugging Face hub holds one (open_clip_config.json and
    open_clip_model.safetensors): one-layer towers, OpenAI's BPE tokenizer."""
    import json

    import open_clip
    from safetensors.torch import save_file

    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": CLIP_IMAGE_SIZE, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    torch.manual_seed(seed)
    model = open_clip.CLIP(**config)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    save_file(
        {name: tensor.contiguous() for name, tensor in model.state_dict().items()},
        folder / "open_clip_model.safetensors",
    )
    return folder
