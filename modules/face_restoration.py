"""Face restoration: GFPGAN (the gfpgan package's network) or CodeFormer (loaded by spandrel), with
facexlib's RetinaFace to find and align faces and ParseNet to mask them when pasting back.

Weights are read only from the models folder; nothing is downloaded unless the user asks
(`download_face_models`). facexlib would fetch missing weights itself, so every file is checked
before facexlib is touched, and facexlib is pointed at models/GFPGAN.

GFPGAN and ParseNet are built with the widths their weight files have (modules.imaging.face_networks)."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules.core.setting_values import FACE_RESTORERS
from modules.errors import UserError
from modules.imaging.face_networks import (
    FACE_SIZE,
    gfpgan_network,
    gfpgan_widths,
    load_network,
    parsenet,
    parsenet_widths,
)
from modules.imaging.upscalers import read_state_dict
from modules.models.model_download import RemoteFile, download_files
from modules.models.safe_weights import check_pickled_files

# The official release files. Their publishers post no checksums: each sha256 here is the hash of
# that release asset as recorded, identically, by many independent projects. None would skip the check.
GFPGAN_WEIGHTS = RemoteFile(
    "GFPGANv1.4.pth",
    "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
    "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
)
DETECTION_WEIGHTS = RemoteFile(
    "detection_Resnet50_Final.pth",
    "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
    "6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
)
PARSING_WEIGHTS = RemoteFile(
    "parsing_parsenet.pth",
    "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
    "3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
)
CODEFORMER_WEIGHTS = RemoteFile(
    "codeformer-v0.1.0.pth",
    "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth",
    "1009e537e0c2a07d4cabce6355f53cb66767cd4b4297ec7a4a64ca4b8a5684b7",
)
FACE_MODEL_FILES = (GFPGAN_WEIGHTS, DETECTION_WEIGHTS, PARSING_WEIGHTS)
"""What "Download" fetches into models/GFPGAN."""

NO_FACE_NOTE = "No face was found in the image, so it was left unchanged."
_DETECT_SIZE = 640  # images with a shorter side above this are shrunk for detection only
_FACEXLIB_PARSER = threading.Lock()  # held while a FaceRestoreHelper is built with a parser given to it


class MissingWeightsError(UserError):
    """Weights a face restorer needs are not on disk; the message says what to fetch and where."""


def missing_weights_message(model: str, missing: list[tuple[RemoteFile, Path]]) -> str:
    """Name each missing file, its official URL and the folder it belongs in."""
    lines = [f"{model} needs model files that are not on disk:"]
    for remote, folder in missing:
        lines.append(f"- {remote.name}: download {remote.url} and put it in {folder}")
    lines.append("Or let the program fetch them: the Download button, or start with --download-face-models.")
    return "\n".join(lines)


def download_face_models(
    models_dir: Path, codeformer: bool = False, progress: Callable[[RemoteFile, int, int | None], None] | None = None
) -> list[Path]:
    """Fetch the GFPGAN and facexlib files into models/GFPGAN (and CodeFormer's into
    models/Codeformer when asked), checking each sha256. Files already there are kept."""
    models_dir = Path(models_dir)
    paths = download_files(FACE_MODEL_FILES, models_dir / "GFPGAN", progress)
    if codeformer:
        paths += download_files([CODEFORMER_WEIGHTS], models_dir / "Codeformer", progress)
    return paths


class FaceRestorer:
    """Finds faces, restores each aligned 512x512 crop with a network, pastes them back."""

    name = ""
    weights = GFPGAN_WEIGHTS
    folder_name = "GFPGAN"
    name_hint = "gfpgan"

    def __init__(self, models_dir: Path, device: torch.device | str = "cpu"):
        self.models_dir = Path(models_dir)
        self.device = torch.device(device)
        self._lock = threading.Lock()
        self._net: Callable[[torch.Tensor, float], torch.Tensor] | None = None
        self._helper = None
        self._last: tuple[tuple, tuple[np.ndarray, int]] | None = None  # (image and weight, restored and faces)

    @property
    def facexlib_dir(self) -> Path:
        """Where the detection and parsing weights live (shared by both restorers)."""
        return self.models_dir / "GFPGAN"

    def model_path(self) -> Path | None:
        """The restorer's weights: the official file name if present, else another file whose
        name contains the model's name, or None."""
        folder = self.models_dir / self.folder_name
        official = folder / self.weights.name
        if official.is_file():
            return official
        others = sorted(
            p
            for p in folder.glob("*")
            if p.is_file() and self.name_hint in p.name.lower() and p.suffix.lower() in (".pth", ".safetensors")
        )
        return others[0] if others else None

    def missing_files(self) -> list[tuple[RemoteFile, Path]]:
        """(file, folder) for every needed file that is not on disk."""
        missing = []
        if self.model_path() is None:
            missing.append((self.weights, self.models_dir / self.folder_name))
        for remote in (DETECTION_WEIGHTS, PARSING_WEIGHTS):
            if not (self.facexlib_dir / remote.name).is_file():
                missing.append((remote, self.facexlib_dir))
        return missing

    def available(self) -> bool:
        """True when every needed file is on disk."""
        return not self.missing_files()

    def restore(self, image: Image.Image, visibility: float = 1.0) -> tuple[Image.Image, str | None]:
        """Restore every face in `image`, blended with the original by `visibility` (0 keeps the
        original, 1 is fully restored). An image without faces comes back unchanged with a note. The last
        image's restoration is kept: the same image again at another visibility (a slider moved in Extras)
        runs no network."""
        return self._restore(image, visibility, 0.5)

    def unload(self) -> None:
        """Free the networks; the next restore loads them again."""
        with self._lock:
            self._net = self._helper = self._last = None

    def _restore(self, image: Image.Image, visibility: float, weight: float) -> tuple[Image.Image, str | None]:
        visibility = min(max(float(visibility), 0.0), 1.0)
        if visibility == 0.0:
            return image, None
        rgb = image.convert("RGB")
        array = np.asarray(rgb)
        key = (hashlib.sha1(array.tobytes()).digest(), array.shape, weight)
        with self._lock:
            self._ensure_loaded()
            if self._last is None or self._last[0] != key:
                self._last = (key, self._restore_array(array, weight))
            restored, faces = self._last[1]
        if faces == 0:
            return image, NO_FACE_NOTE
        result = Image.fromarray(restored, "RGB")
        if visibility < 1.0:
            result = Image.blend(rgb, result, visibility)
        if "A" in image.getbands():
            result.putalpha(image.getchannel("A"))
        return result, None

    def _ensure_loaded(self) -> None:
        missing = self.missing_files()
        if missing:
            raise MissingWeightsError(missing_weights_message(self.name, missing))
        if self._helper is None:  # refused before any network loads; facexlib unpickles the detector itself
            check_pickled_files(self.facexlib_dir / remote.name for remote in (DETECTION_WEIGHTS, PARSING_WEIGHTS))
        if self._net is None:
            self._net = self._load_net(self.model_path())
        if self._helper is None:
            self._helper = self._create_helper()

    def _load_net(self, path: Path) -> Callable[[torch.Tensor, float], torch.Tensor]:
        raise NotImplementedError

    def _create_helper(self):
        from modules.imaging.torchvision_compat import ensure_functional_tensor

        ensure_functional_tensor()
        from facexlib.utils.face_restoration_helper import FaceRestoreHelper

        path = self.facexlib_dir / PARSING_WEIGHTS.name
        parser = load_network(parsenet, parsenet_widths, path, "ParseNet", PARSING_WEIGHTS).to(self.device)
        self._channels_last_on_cpu(parser)  # ParseNet runs at 512x512 on each pasted face
        try:
            with warnings.catch_warnings(), _given_parser(parser):  # torchvision's note on resnet50(pretrained=False)
                warnings.simplefilter("ignore", UserWarning)
                return FaceRestoreHelper(
                    1,
                    face_size=FACE_SIZE,
                    crop_ratio=(1, 1),
                    det_model="retinaface_resnet50",
                    save_ext="png",
                    use_parse=True,
                    device=self.device,
                    model_rootpath=str(self.facexlib_dir),
                )
        except Exception as exc:
            raise UserError(
                f"The face detection weights in {self.facexlib_dir} could not be loaded ({exc}). "
                f"Replace {DETECTION_WEIGHTS.name} with the official file."
            ) from exc

    def _channels_last_on_cpu(self, network: torch.nn.Module) -> None:
        """On a CPU, keep `network`'s weights channels-last: the 512x512 convolutions of ParseNet and CodeFormer run
        about 18% faster (GFPGAN's features are reshaped with `view`, which channels-last tensors refuse)."""
        if self.device.type == "cpu":
            network.to(memory_format=torch.channels_last)

    def _restore_array(self, rgb: np.ndarray, weight: float) -> tuple[np.ndarray, int]:
        helper = self._helper
        helper.clean_all()
        helper.read_image(np.ascontiguousarray(rgb[:, :, ::-1]))  # facexlib works in BGR
        shrink = _DETECT_SIZE if min(rgb.shape[:2]) > _DETECT_SIZE else None
        helper.get_face_landmarks_5(only_center_face=False, resize=shrink, eye_dist_threshold=5)
        helper.align_warp_face()
        if not helper.cropped_faces:
            return rgb, 0
        for face in helper.cropped_faces:
            helper.add_restored_face(self._restore_face(face, weight))
        helper.get_inverse_affine(None)
        bgr = helper.paste_faces_to_input_image()
        return np.ascontiguousarray(bgr[:, :, ::-1]), len(helper.cropped_faces)

    def _restore_face(self, bgr_face: np.ndarray, weight: float) -> np.ndarray:
        """One aligned 512x512 BGR crop through the network, as a BGR uint8 crop."""
        rgb = torch.from_numpy(np.ascontiguousarray(bgr_face[:, :, ::-1])).permute(2, 0, 1).float()
        tensor = (rgb / 127.5 - 1.0).unsqueeze(0).to(self.device)
        with torch.inference_mode():
            out = self._net(tensor, weight)
        array = ((out[0].float().clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        return np.ascontiguousarray(array[:, :, ::-1])


class GFPGANRestorer(FaceRestorer):
    """GFPGAN v1.2-v1.4 ("clean" architecture) from models/GFPGAN."""

    name = "GFPGAN"

    def _load_net(self, path: Path) -> Callable[[torch.Tensor, float], torch.Tensor]:
        net = load_network(gfpgan_network, gfpgan_widths, path, "GFPGAN v1.2-v1.4", GFPGAN_WEIGHTS).to(self.device)
        # The stored noise maps, not fresh ones, so a restore is reproducible.
        return lambda face, _weight: net(face, return_rgb=False, randomize_noise=False)[0]


class CodeFormerRestorer(FaceRestorer):
    """CodeFormer from models/Codeformer, loaded by spandrel (its extra architectures)."""

    name = "CodeFormer"
    weights = CODEFORMER_WEIGHTS
    folder_name = "Codeformer"
    name_hint = "codeformer"

    def restore(
        self, image: Image.Image, visibility: float = 1.0, weight: float = 0.5
    ) -> tuple[Image.Image, str | None]:
        """As FaceRestorer.restore; `weight` is CodeFormer's fidelity: 0 restores most strongly,
        1 stays closest to the input face."""
        return self._restore(image, visibility, min(max(float(weight), 0.0), 1.0))

    def _load_net(self, path: Path) -> Callable[[torch.Tensor, float], torch.Tensor]:
        import spandrel

        with warnings.catch_warnings():  # one of its architectures calls the deprecated torch.jit.script
            warnings.simplefilter("ignore", FutureWarning)
            from spandrel_extra_arches import EXTRA_REGISTRY

        registry = spandrel.MAIN_REGISTRY.copy()
        registry.add(*EXTRA_REGISTRY, ignore_duplicates=True)
        state = spandrel.canonicalize_state_dict(read_state_dict(path))
        try:
            model = spandrel.ModelLoader("cpu", registry=registry).load_from_state_dict(state)
        except Exception as exc:
            raise UserError(f"{path.name} could not be loaded as a CodeFormer model ({exc}).") from exc
        if model.architecture.id != "CodeFormer":
            raise UserError(f"{path.name} is a {model.architecture.name} model, not CodeFormer.")
        net = model.model.eval().to(self.device)
        self._channels_last_on_cpu(net)
        return lambda face, weight: net(face, weight=weight)[0]


@contextlib.contextmanager
def _given_parser(parser: torch.nn.Module) -> Iterator[None]:
    """While a FaceRestoreHelper is built, it takes `parser` as its ParseNet: facexlib's helper would always build
    the official-size network and unpickle models/GFPGAN's file into it itself."""
    from facexlib.utils import face_restoration_helper

    with _FACEXLIB_PARSER:
        build_parser = face_restoration_helper.init_parsing_model
        face_restoration_helper.init_parsing_model = lambda **_: parser
        try:
            yield
        finally:
            face_restoration_helper.init_parsing_model = build_parser


def create_face_restorer(name: str, models_dir: Path, device: torch.device | str = "cpu") -> FaceRestorer:
    """The restorer called `name` (one of FACE_RESTORERS)."""
    classes = {"GFPGAN": GFPGANRestorer, "CodeFormer": CodeFormerRestorer}
    if name not in classes:
        raise UserError(f"Unknown face restoration model {name!r}; choose one of {', '.join(FACE_RESTORERS)}.")
    return classes[name](models_dir, device)


class FaceRestorers:
    """One restorer per name, created on first use and kept (with its loaded networks)."""

    def __init__(self, models_dir: Path, device: torch.device | str = "cpu"):
        self.models_dir = Path(models_dir)
        self.device = device
        self._restorers: dict[str, FaceRestorer] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> FaceRestorer:
        """The restorer called `name` (one of FACE_RESTORERS)."""
        with self._lock:
            if name not in self._restorers:
                self._restorers[name] = create_face_restorer(name, self.models_dir, self.device)
            return self._restorers[name]

    def unload(self) -> None:
        """Free every loaded network."""
        with self._lock:
            for restorer in self._restorers.values():
                restorer.unload()
