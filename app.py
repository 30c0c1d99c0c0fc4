"""Entry point: flags → settings → engine and model → page → serve."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a model hub
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from modules.cmd_args import parse_args, parse_credentials  # noqa: E402
from modules.paths import REPO_ROOT, DataPaths  # noqa: E402

log = logging.getLogger("webui")


def create_services(args):
    """Build settings, engine and model manager, and start loading the first checkpoint."""
    from modules import shared
    from modules.demo_model import ensure_demo_checkpoint
    from modules.engine import Engine
    from modules.image_tools import ImageTools
    from modules.lora import LoraLibrary
    from modules.model_manager import ModelManager
    from modules.networks import Networks
    from modules.options import Options
    from modules.sd_models import pick_device, pick_dtype
    from modules.services import Services
    from modules.styles import StyleDatabase
    from modules.textual_inversion import EmbeddingDatabase
    from modules.torchvision_compat import ensure_functional_tensor

    ensure_functional_tensor()  # before anything (an extension, face restoration) imports gfpgan

    paths = DataPaths.create(args.data_dir, args.ckpt_dir)
    opts = Options(paths.config_file)
    opts.load()
    device = pick_device(args.device)
    models = ModelManager(paths, device, pick_dtype(device, args.no_half))
    if ensure_demo_checkpoint(paths.sd_models, bool(models.checkpoints)):
        models.refresh()
    networks = Networks(EmbeddingDatabase(paths.embeddings), LoraLibrary(paths.models / "Lora"))
    services = Services(args=args, paths=paths, opts=opts, engine=Engine(), models=models, networks=networks,
                        tools=ImageTools.create(paths.models, device), styles=StyleDatabase(paths.styles_file))
    services.notices += [notice for notice in (opts.load_notice, services.styles.notice) if notice]
    shared.install(services)
    services.load_scripts([REPO_ROOT / "scripts"])
    first = args.ckpt or opts.sd_model_checkpoint or models.checkpoints[0].name
    services.load_checkpoint(first).add_done_callback(lambda f: _report_load(services, f))
    return services


def _report_load(services, future) -> None:
    exc = future.exception()
    if exc is not None:
        services.load_error = f"Could not load the checkpoint: {exc}"


def download_face_models_at_start(models_dir: Path) -> None:
    """--download-face-models: fetch what face restoration needs, logging progress. A failure is
    logged and the app starts anyway."""
    from modules.errors import UserError
    from modules.face_restoration import download_face_models

    logged: dict[str, int] = {}

    def report(remote, done: int, total: int | None) -> None:
        quarter = 4 * done // total if total else 0
        if logged.get(remote.name) != quarter:
            logged[remote.name] = quarter
            size = f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            log.info("Downloading %s from %s: %s", remote.name, remote.url, size)

    try:
        paths = download_face_models(models_dir, codeformer=True, progress=report)
    except (UserError, OSError) as exc:
        log.error("Could not download the face restoration models: %s", exc)
        return
    log.info("Face restoration models ready: %s", ", ".join(str(p) for p in paths))


def _quiet_library_logs() -> None:
    """diffusers and transformers log advice meant for library users; keep the console for ours."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        gradio_auth = parse_credentials(args.gradio_auth)
        parse_credentials(args.api_auth)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    if args.api or args.nowebui:
        log.warning("The /sdapi/v1 REST API is not part of this version yet; --api and --nowebui are ignored.")
    _quiet_library_logs()
    services = create_services(args)
    if args.download_face_models:
        download_face_models_at_start(services.paths.models)

    from modules.ui.page import CSS, build_page, head_scripts
    from modules.ui.ui_config import UiConfig

    ui_config = UiConfig(services.paths.ui_config_file)
    if ui_config.notice:
        services.notices.append(ui_config.notice)
    page = build_page(services, ui_config)
    page.queue()
    page.launch(
        server_name="0.0.0.0" if args.listen else "127.0.0.1",
        server_port=args.port,
        auth=gradio_auth or None,
        allowed_paths=[str(services.paths.outputs)],
        css=CSS,
        head=head_scripts(),
        show_error=True,
    )


if __name__ == "__main__":
    main()
