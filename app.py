"""Entry point: flags → settings → engine and model → page → serve."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a model hub
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import launch
from modules.cmd_args import parse_args, parse_credentials, read_credentials_file
from modules.core import cpu_threads
from modules.paths import REPO_ROOT, DataPaths

if TYPE_CHECKING:
    from modules.extensions import Extension

log = logging.getLogger("webui")


def create_services(args, extensions: list[Extension] | None = None):
    """Build settings, engine and model manager, and start loading the first checkpoint. `extensions`: the
    extension folders found before the flags were parsed (preload_extensions); None looks for them now."""
    from modules import shared
    from modules.core.services import Services
    from modules.extensions import a1111, requirement_problems, run_install_scripts
    from modules.imaging.torchvision_compat import ensure_functional_tensor
    from modules.models.demo_model import DEMO_FILE_NAME, add_demo_checkpoint

    ensure_functional_tensor()  # before anything (an extension, face restoration) imports gfpgan

    services = Services.create(args, model_device="cpu" if args.ray_address else None)  # replicas use the GPUs
    paths, opts, models = services.paths, services.opts, services.models
    services.page.notices += [notice for notice in (opts.load_notice, services.styles.notice) if notice]
    if args.ray_address:
        from modules.ray_backend.backend import RayBackend

        services.backend = RayBackend(
            services, args.ray_address, args.ray_replicas, args.ray_models_per_replica, opts.ray_replica_num_cpus
        )
    shared.install(services)
    a1111.install(paths)  # A1111's module names for extensions (modules.devices...), before any script loads
    if extensions is None:
        extensions = find_extensions(services)
    if not args.skip_install:
        services.page.notices += run_install_scripts(enabled(extensions), opts)  # may disable one
    services.page.notices += requirement_problems(extensions)
    load_scripts(services, extensions)
    if not models.checkpoints:

        def add_demo(ctx) -> None:  # on the worker, queued before the load below: the page need not wait
            add_demo_checkpoint(paths.sd_models)
            models.refresh()

        services.checkpoints_listed = services.engine.submit("write the demo model", add_demo)
    first = (
        args.ckpt or opts.sd_model_checkpoint or (models.checkpoints[0].name if models.checkpoints else DEMO_FILE_NAME)
    )
    services.switching.load_checkpoint(first, listed_only=False).add_done_callback(lambda f: _report_load(services, f))
    return services


def find_extensions(services) -> list[Extension]:
    """The extension folders, each marked enabled or not by the disabled_extensions setting."""
    from modules.extensions import disabled_names, list_extensions

    return list_extensions(services.paths.extensions, disabled_names(services.opts))


def enabled(extensions: list[Extension]) -> list[Extension]:
    return [ext for ext in extensions if ext.enabled]


def load_scripts(services, extensions: list[Extension]) -> None:
    """(Re)load the built-in scripts and those of the enabled extensions (extensions/<name>/scripts)."""
    services.scripts.load([REPO_ROOT / "scripts", *(ext.path / "scripts" for ext in enabled(extensions))])


def preload_extensions(parser, data_dir: str | None) -> list[Extension]:
    """Before the flags are parsed: look for the extensions (the one look at start), and let each enabled
    one's preload.py add flags. Returns the extensions found."""
    from modules.extensions import list_extensions, load_preload, read_disabled

    paths = DataPaths(Path(data_dir).expanduser().resolve() if data_dir else REPO_ROOT)
    extensions = list_extensions(paths.extensions, read_disabled(paths.config_file))
    load_preload(parser, extensions)
    return extensions


def _report_load(services, future) -> None:
    exc = future.exception()
    if exc is not None:
        services.switching.load_error = f"Could not load the checkpoint: {exc}"


def download_models_at_start(what: str, fetch) -> None:
    """--download-face-models, --download-interrogate-models: `fetch(progress=...)` the files of `what` (e.g.
    "the face restoration models"), logging progress. A failure is logged and the app starts anyway."""
    from modules.errors import UserError

    logged: dict[str, int] = {}

    def report(remote, done: int, total: int | None) -> None:
        quarter = 4 * done // total if total else 0
        if logged.get(remote.name) != quarter:
            logged[remote.name] = quarter
            size = f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            log.info("Downloading %s from %s: %s", remote.name, remote.url, size)

    try:
        paths = fetch(progress=report)
    except (UserError, OSError) as exc:
        log.error("Could not download %s: %s", what, exc)
        return
    log.info("%s ready: %s", what[0].upper() + what[1:], ", ".join(str(p) for p in paths))


def quiet_library_logs() -> None:
    """diffusers and transformers log advice meant for library users; keep the console for ours."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def build_ui(services, gradio_auth: list[tuple[str, str]], extensions: list[Extension]):
    """The page and its serving options (with the enabled extensions' javascript and style.css)."""
    from modules.api.login_throttle import LOGIN_PAGE_NOTE
    from modules.ui.page import build_page, page_assets
    from modules.ui.quiet_queue import quiet_queue
    from modules.ui.ui_config import UiConfig

    ui_config = UiConfig(services.paths.ui_config_file)
    if ui_config.notice and ui_config.notice not in services.page.notices:
        services.page.notices.append(ui_config.notice)
    page = build_page(services, ui_config, extensions)
    quiet_queue(page)  # the queue Gradio gave the page as it was made (another page.queue() would rebuild it)
    options = {
        "auth": gradio_auth or None,
        "auth_message": LOGIN_PAGE_NOTE,
        # outputs/, and the Save button's folder, so its files can be downloaded
        "allowed_paths": [str(services.paths.outputs), str(services.jobs.output_dir("outdir_save"))],
        "show_error": True,
        "max_file_size": services.opts.max_upload_bytes,  # Gradio refuses larger uploads with a message
        **page_assets(enabled(extensions)),
    }
    return page, options


def serve_restartable(services, extensions: list[Extension], start) -> None:
    """Serve with `start(extensions)`, which returns the function that stops serving, until Ctrl+C. A restart
    request (Extensions → "Apply and restart UI", Settings → "Reload UI") stops it, looks for the extensions
    again, reloads the scripts, and starts again on the same port, so the page is built with the extensions
    enabled now."""
    from modules import restart

    with restart.accepting_restarts():
        while True:
            stop = start(extensions)
            try:
                restart.wait_for_restart()
                time.sleep(1)  # let the reply to the click reach the browser before the server goes
            except KeyboardInterrupt:
                return
            finally:
                stop()
            log.info("Restarting the page: reloading scripts and extensions")
            extensions = find_extensions(services)
            load_scripts(services, extensions)


def start_page(
    services, args, gradio_auth: list[tuple[str, str]], api_auth: list[tuple[str, str]], extensions: list[Extension]
):
    """Serve the page (and the API beside it with --api); returns the function that stops serving."""
    from modules.api import web_server

    return web_server.start(services, args, api_auth, *build_ui(services, gradio_auth, extensions))


def warn_if_open(args, gradio_auth: list[tuple[str, str]], api_auth: list[tuple[str, str]]) -> None:
    """Log a warning when other machines can reach a page or API that asks for no login."""
    if not (args.listen or args.share):
        return
    open_parts = []
    if not args.nowebui and not gradio_auth:
        open_parts.append("the page (--gradio-auth, --gradio-auth-path)")
    if (args.api or args.nowebui) and not api_auth:
        open_parts.append("the API (--api-auth)")
    if open_parts:
        log.warning(
            "Other machines can connect (--listen/--share) and no login protects %s: anyone on the "
            "network can generate images and change settings.",
            " or ".join(open_parts),
        )


def main(argv: list[str] | None = None) -> None:
    extensions: list[Extension] = []
    args = parse_args(argv, preload=lambda parser, data_dir: extensions.extend(preload_extensions(parser, data_dir)))
    launch.args = args  # A1111's name: extensions read flags such as skip_install from it
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        gradio_auth = parse_credentials(args.gradio_auth) + read_credentials_file(args.gradio_auth_path)
        api_auth = parse_credentials(args.api_auth)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    warn_if_open(args, gradio_auth, api_auth)
    quiet_library_logs()
    cpu_threads.single_threaded()  # multi-threaded torch work belongs to the engine's worker
    services = create_services(args, extensions)
    if args.download_face_models:
        from modules.face_restoration import download_face_models

        download_models_at_start(
            "the face restoration models", partial(download_face_models, services.paths.models, codeformer=True)
        )
    if args.download_interrogate_models:
        from modules.models.interrogate_models import download_interrogate_models

        download_models_at_start("the interrogate models", partial(download_interrogate_models, services.paths.models))
    from modules.api import web_server

    if args.share:
        web_server.open_share_tunnel(args.port)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a stop request ends serving as Ctrl+C does
    try:
        if args.nowebui:
            web_server.serve(services, args, api_auth)
        else:
            serve_restartable(
                services, extensions, lambda found: start_page(services, args, gradio_auth, api_auth, found)
            )
    finally:
        services.backend.close()  # on a joined cluster, the Serve app goes with the head
        gc.freeze()  # all that is left lives to the exit: garbage-collecting it there took seconds (tens, loaded)


if __name__ == "__main__":
    main()
