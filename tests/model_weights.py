"""Real model architectures with random weights, written for tests (face restoration, upscalers).

Face restoration with the real architectures and random weights, written to a temporary models folder.

Random detector weights give random detections, so the detector's three 1x1 output heads (class,
box, landmarks) are set by hand; every other weight stays random. One detector answers "no face"
everywhere; the other reports faces at the 512-pixel anchors of its coarsest level with a fixed
five-point landmark layout, so on a 128-pixel photo exactly one face survives NMS and the whole
path runs: detection -> alignment -> GFPGAN -> ParseNet mask -> paste back. ParseNet's output head
is set to "skin" so the mask is not empty. This checks the plumbing, not restoration quality.

GFPGAN and ParseNet are narrower than the official networks (TEST_WIDTHS; the app reads a file's widths from its
tensors), so a restore costs about 0.5 CPU s instead of 15; their layers and their order are the official ones.

The face files are built once a run, into a folder all test processes share, and linked from there."""

from __future__ import annotations

import os
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from spandrel.architectures.ESRGAN import ESRGAN

from modules.core.atomic_files import write_atomic
from modules.face_restoration import DETECTION_WEIGHTS, GFPGAN_WEIGHTS, PARSING_WEIGHTS
from modules.imaging.face_networks import gfpgan_network, parsenet

FACE_DETECTOR = "detector-face.pth"
NO_FACE_DETECTOR = "detector-noface.pth"
TEST_WIDTHS = {"gfpgan": {"narrow": 0.125, "num_style_feat": 64}, "parsenet": {"base_ch": 8, "ch_range": [8, 32]}}

# Five landmarks (eyes, nose, mouth corners) relative to a face centre, in pixels: FFHQ's template at 0.2 scale.
LANDMARKS = (
    np.array([[192.98, 239.95], [318.90, 240.19], [256.63, 314.02], [201.26, 371.41], [313.09, 371.15]])
    - [256.0, 300.0]
) * 0.2


def face_detector(faces: bool) -> dict[str, torch.Tensor]:
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    with warnings.catch_warnings():  # torchvision's note on resnet50(pretrained=False)
        warnings.simplefilter("ignore", UserWarning)
        state = RetinaFace(network_name="resnet50", device=torch.device("cpu")).state_dict()
    for key in state:
        if key.split(".")[0] in ("ClassHead", "BboxHead", "LandmarkHead"):
            state[key] = torch.zeros_like(state[key])
    # Class logits per position: (anchor 0: background, face), (anchor 1: background, face).
    for level in range(3):
        state[f"ClassHead.{level}.conv1x1.bias"] = torch.tensor([10.0, -10.0, 10.0, -10.0])
    if faces:  # level 2, anchor 1 = the 512-pixel prior box
        state["ClassHead.2.conv1x1.bias"] = torch.tensor([10.0, -10.0, -10.0, 10.0])
        # Landmarks decode as centre + value * 0.1 * 512.
        state["LandmarkHead.2.conv1x1.bias"][10:] = torch.from_numpy(LANDMARKS.reshape(-1) / 51.2).float()
    return state


def face_parser() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    state = parsenet(**TEST_WIDTHS["parsenet"]).state_dict()
    state["out_mask_conv.conv2d.weight"].zero_()
    state["out_mask_conv.conv2d.bias"].copy_(torch.nn.functional.one_hot(torch.tensor(1), 19).float() * 10)
    return state


def gfpgan_weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(2)
    return {"params_ema": gfpgan_network(**TEST_WIDTHS["gfpgan"]).state_dict()}


def codeformer_weights() -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():  # spandrel_extra_arches calls the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    torch.manual_seed(3)
    return {"params_ema": CodeFormer().state_dict()}


def tiny_esrgan(scale: int = 4) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    net = ESRGAN(num_filters=8, num_blocks=1, scale=scale)
    return {k: v.contiguous() for k, v in net.state_dict().items()}


# The face restoration files the tests share, by their names in the shared folder (the `weights_store` fixture).
SHARED_FACE_FILES = {
    GFPGAN_WEIGHTS.name: gfpgan_weights,
    PARSING_WEIGHTS.name: face_parser,
    FACE_DETECTOR: partial(face_detector, True),
    NO_FACE_DETECTOR: partial(face_detector, False),
}


def shared_face_file(store: Path, name: str) -> Path:
    """store/name, holding SHARED_FACE_FILES[name]'s weights: the first test process to ask builds it, the others
    (pytest-xdist's workers share `store`) wait on a lock and then read it. Link it, never write to it."""
    path = store / name
    with FileLock(store / f"{name}.lock"):
        if not path.exists():
            write_atomic(path, partial(torch.save, SHARED_FACE_FILES[name]()))
    return path


def gfpgan_files(store: Path, finds_faces: bool) -> dict[str, Path]:
    """The three files GFPGAN needs, by their real names, as the shared files in `store`; the detector finds one
    face on the 128-pixel photo when `finds_faces`, else none."""
    return {
        GFPGAN_WEIGHTS.name: shared_face_file(store, GFPGAN_WEIGHTS.name),
        PARSING_WEIGHTS.name: shared_face_file(store, PARSING_WEIGHTS.name),
        DETECTION_WEIGHTS.name: shared_face_file(store, FACE_DETECTOR if finds_faces else NO_FACE_DETECTOR),
    }


def link_gfpgan_files(store: Path, folder: Path, finds_faces: bool) -> Path:
    """`folder` (a models folder's GFPGAN) with gfpgan_files' files under their real names, as hard links."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, shared in gfpgan_files(store, finds_faces).items():
        os.link(shared, folder / name)
    return folder


def face_model_folders(store: Path, folder: Path) -> dict[str, Path]:
    """Two models folders under `folder` that differ only in the detector (keys face_models and noface_models),
    linked to the shared files in `store`, plus each shared file (gfpgan, parse, face, noface)."""
    files = {
        "gfpgan": shared_face_file(store, GFPGAN_WEIGHTS.name),
        "parse": shared_face_file(store, PARSING_WEIGHTS.name),
        "face": shared_face_file(store, FACE_DETECTOR),
        "noface": shared_face_file(store, NO_FACE_DETECTOR),
    }
    for kind in ("face", "noface"):
        link_gfpgan_files(store, folder / kind / "GFPGAN", finds_faces=kind == "face")
        files[f"{kind}_models"] = folder / kind
    return files
