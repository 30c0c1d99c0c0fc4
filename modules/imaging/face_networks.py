"""The face networks whose widths are read from their weight files: GFPGAN v1.2-v1.4 ("clean" architecture) and
facexlib's ParseNet. The official files give the official networks; a narrower file of the same architecture (a
test's random weights, say) gives its own narrower network."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from modules.errors import UserError
from modules.imaging.upscalers import read_state_dict
from modules.models.model_download import RemoteFile

FACE_SIZE = 512  # the aligned crop each network restores, and the size ParseNet masks it at
_PARSE_CLASSES = 19  # facexlib's paste-back maps each of ParseNet's 19 classes to face or not
GFPGAN_WIDTHS = {"narrow": 1.0, "channel_multiplier": 2, "num_style_feat": 512, "num_mlp": 8}
"""GFPGAN v1.2-v1.4's widths (the official files')."""
PARSENET_WIDTHS = {"base_ch": 64, "ch_range": [32, 256], "res_depth": 10}
"""facexlib's ParseNet's widths (the official file's)."""


def gfpgan_network(**widths) -> torch.nn.Module:
    """An untrained GFPGAN v1.2-v1.4 ("clean" architecture) network at 512 pixels, with GFPGAN_WIDTHS where
    `widths` leaves them out."""
    from modules.imaging.torchvision_compat import ensure_functional_tensor

    ensure_functional_tensor()
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    return GFPGANv1Clean(
        out_size=FACE_SIZE,
        decoder_load_path=None,
        fix_decoder=False,
        input_is_latent=True,
        different_w=True,
        sft_half=True,
        **{**GFPGAN_WIDTHS, **widths},
    )


def gfpgan_widths(state: Mapping[str, torch.Tensor]) -> dict:
    """The widths (as GFPGAN_WIDTHS) a GFPGAN state dict was made with, read from its tensors' shapes. A missing
    tensor raises KeyError."""
    unet_4x4 = state["final_conv.weight"].shape[0]  # 512 * narrow / 2 channels
    unet_512 = state["conv_body_first.weight"].shape[0]  # 32 * channel_multiplier * narrow / 2
    mlp = [key for key in state if key.startswith("stylegan_decoder.style_mlp.") and key.endswith(".weight")]
    return {
        "narrow": unet_4x4 / 256,
        "channel_multiplier": round(16 * unet_512 / unet_4x4),
        "num_style_feat": state["stylegan_decoder.style_mlp.1.weight"].shape[0],
        "num_mlp": len(mlp),
    }


def parsenet(**widths) -> torch.nn.Module:
    """An untrained ParseNet as facexlib's face helper uses it (512 pixels, 19 classes), with PARSENET_WIDTHS where
    `widths` leaves them out."""
    from facexlib.parsing.parsenet import ParseNet

    return ParseNet(in_size=FACE_SIZE, out_size=FACE_SIZE, parsing_ch=_PARSE_CLASSES, **{**PARSENET_WIDTHS, **widths})


def parsenet_widths(state: Mapping[str, torch.Tensor]) -> dict:
    """The widths (as PARSENET_WIDTHS) a ParseNet state dict was made with. A missing tensor raises KeyError."""
    base = state["encoder.0.conv2d.weight"].shape[0]
    widest = state["body.0.conv1.conv2d.weight"].shape[0]
    blocks = {key.split(".")[1] for key in state if key.startswith("body.")}
    # No layer is narrower than the first (base_ch), so any floor up to it builds the same network.
    return {"base_ch": base, "ch_range": [min(base, PARSENET_WIDTHS["ch_range"][0]), widest], "res_depth": len(blocks)}


def load_network(
    build: Callable[..., torch.nn.Module], widths: Callable, path: Path, kind: str, official: RemoteFile
) -> torch.nn.Module:
    """The network `build(**widths(state))` with the weights of the file at `path` (read as plain tensors), in eval
    mode. A file whose tensors are not that network's is refused with a UserError that names `kind` and where the
    `official` file is."""
    state = read_state_dict(path)
    state = state.get("params_ema", state.get("params", state))
    try:
        net = build(**widths(state))
        net.load_state_dict(state, strict=True)
    except (KeyError, IndexError, AttributeError, ValueError, ZeroDivisionError, RuntimeError, TypeError) as exc:
        raise UserError(
            f"{path.name} is not a {kind} model ({str(exc)[:200]}). Use {official.name} from {official.url}"
        ) from None
    return net.eval()
