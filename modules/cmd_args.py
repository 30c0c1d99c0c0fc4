"""Command-line flags, spelled as in AUTOMATIC1111's webui."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple

DEFAULT_PORT = 7860
DEFAULT_API_PORT = 7861


class ReplicaRange(NamedTuple):
    """The autoscaling range of the Ray Serve generation deployment."""

    min: int
    max: int


def replica_range(text: str) -> ReplicaRange:
    """Parse --ray-replicas "MIN:MAX" (or "N" for N:N)."""
    low, sep, high = text.partition(":")
    try:
        pair = ReplicaRange(int(low), int(high if sep else low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN:MAX, for example 1:4") from None
    if pair.min < 0 or pair.max < 1 or pair.min > pair.max:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX and MAX >= 1")
    return pair


def ray_address(text: str) -> str:
    """Check --ray-address: "local", "auto" or the head's "host:port"."""
    if text in ("local", "auto"):
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not local, auto or host:port")
    return text


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for app.py."""
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Stable Diffusion web UI (A1111-compatible), built on diffusers and Gradio.",
    )
    add = parser.add_argument
    add("--listen", action="store_true", help="listen on 0.0.0.0 so other machines on the network can connect")
    add(
        "--port",
        type=int,
        default=None,
        help=f"port to serve on (default {DEFAULT_PORT}, or {DEFAULT_API_PORT} with --nowebui)",
    )
    add("--api", action="store_true", help="serve the /sdapi/v1 REST API beside the page")
    add("--nowebui", action="store_true", help="serve only the API, without the page")
    add("--ckpt", type=str, default=None, help="checkpoint to load at start")
    add("--ckpt-dir", type=str, default=None, help="extra folder to look for checkpoints in")
    add(
        "--data-dir",
        type=str,
        default=None,
        help="folder for models/, outputs/, extensions/, embeddings/ and settings (default: the repository root)",
    )
    add("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto", help="device to run the model on")
    add("--no-half", action="store_true", help="run the model in full precision (fp32) instead of fp16/bf16")
    add("--gradio-auth", type=str, default=None, help='page login as "user:password", several separated by commas')
    add(
        "--gradio-auth-path",
        type=str,
        default=None,
        help='file with page logins: "user:password" entries, one a line or separated by commas',
    )
    add("--api-auth", type=str, default=None, help='API login as "user:password", several separated by commas')
    add(
        "--api-server-stop",
        action="store_true",
        help="allow the API's server-kill, server-restart and server-stop routes (refused otherwise)",
    )
    add(
        "--download-face-models",
        action="store_true",
        help="before serving, download the GFPGAN, face detection and CodeFormer weights (sha256-checked) "
        "into models/GFPGAN and models/Codeformer",
    )
    add(
        "--download-interrogate-models",
        action="store_true",
        help="before serving, download the BLIP captioner (blip-image-captioning-large) and CLIP ViT-L/14 for "
        "Interrogate CLIP into models/BLIP and models/clip, checking each file's sha256 (or the hash the Hub "
        "announces for it)",
    )
    add(
        "--share",
        action="store_true",
        help="ask Gradio for a public gradio.live link (needs internet access, so it does nothing offline); "
        "like --listen, it turns extension installs off",
    )
    add(
        "--enable-insecure-extension-access",
        action="store_true",
        help="allow installing and switching extensions even with --listen or --share",
    )
    add(
        "--allow-server-paths",
        action="store_true",
        help="with --listen or --share, let page and API users name folders inside the data dir (img2img Batch, "
        "Extras batch from directory, output folder settings); refused otherwise",
    )
    add(
        "--hide-ui-dir-config",
        action="store_true",
        help="hide the server folder fields (img2img Batch, Extras batch from directory, output folders) from the page",
    )
    add("--skip-install", action="store_true", help="don't run the extensions' install.py at start")
    add(
        "--medvram",
        action="store_true",
        help="keep the model in CPU memory and move one whole component (text encoder, UNet, VAE) to the GPU at a time",
    )
    add(
        "--lowvram",
        action="store_true",
        help="keep the model in CPU memory and move one layer at a time to the GPU (slowest, least VRAM)",
    )
    add("--opt-sdp-attention", action="store_true", help="use PyTorch's scaled-dot-product attention (the default)")
    add("--xformers", action="store_true", help="use xformers' memory-efficient attention where it is installed")
    add(
        "--compile",
        action="store_true",
        help="torch.compile the UNet and VAE (slow first image at each new size, faster after)",
    )
    add(
        "--ray-address",
        type=ray_address,
        default=None,
        metavar="ADDRESS",
        help='run generations on Ray Serve replicas: "local" starts a Ray runtime on this machine, '
        '"auto" or host:port joins a cluster started with `ray start` (needs the .[ray] extra)',
    )
    add(
        "--ray-replicas",
        type=replica_range,
        default=None,
        metavar="MIN:MAX",
        help="autoscaling range of the generation replicas (default: one per GPU in the cluster, 1 without GPUs)",
    )
    add(
        "--ray-models-per-replica",
        type=positive_int,
        default=1,
        metavar="N",
        help="checkpoints each replica keeps loaded, least recently used dropped first (default 1)",
    )
    return parser


def parse_args(
    argv: list[str] | None = None, preload: Callable[[argparse.ArgumentParser, str | None], object] | None = None
) -> argparse.Namespace:
    """Parse flags; fills in the port default that depends on --nowebui. `preload(parser, data_dir)` is
    called first, with --data-dir's value, so extensions can add their flags (A1111's preload.py)."""
    parser = build_parser()
    if preload is not None:
        early = argparse.ArgumentParser(add_help=False)
        early.add_argument("--data-dir", type=str, default=None)
        preload(parser, early.parse_known_args(argv)[0].data_dir)
    args = parser.parse_args(argv)
    if args.ray_address is None and (args.ray_replicas is not None or args.ray_models_per_replica != 1):
        parser.error("--ray-replicas and --ray-models-per-replica need --ray-address")
    if args.port is None:
        args.port = DEFAULT_API_PORT if args.nowebui else DEFAULT_PORT
    return args


def parse_credentials(value: str | None) -> list[tuple[str, str]]:
    """Turn "user:pass,user2:pass2" into pairs; raises ValueError on a malformed entry."""
    if not value:
        return []
    pairs = []
    for number, entry in enumerate(value.split(","), 1):
        entry = entry.strip()
        if not entry:
            continue
        user, sep, password = entry.partition(":")
        if not sep or not user:  # the entry itself is not echoed: it may hold a password
            raise ValueError(f"Credentials must look like user:password (entry {number} does not)")
        pairs.append((user, password))
    return pairs


def read_credentials_file(path: str | None) -> list[tuple[str, str]]:
    """The logins in a --gradio-auth-path file: "user:password" entries, one a line or comma-separated;
    raises ValueError (naming the file, never a password) when it can't be read or an entry is malformed."""
    if not path:
        return []
    try:
        text = open(path, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"Could not read the login file {path}: {exc}") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            pairs += parse_credentials(line)
        except ValueError:
            raise ValueError(f"{path}, line {number}: entries must look like user:password") from None
    return pairs
