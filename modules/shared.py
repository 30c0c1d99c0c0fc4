"""A1111's `modules.shared` for scripts and extensions: `opts`, `state`, `cmd_opts`, `sd_model`,
`prompt_styles`, `interrogator`, and the settings names `OptionInfo`, `OptionHTML` and `options_section`.

app.py's main() calls install() once; the names then read the running services. Nothing else
changes this module."""

from __future__ import annotations

import argparse
from typing import Any

from modules.core.engine import Engine
from modules.extensions.a1111.options import OptionHTML, OptionInfo, options_section  # noqa: F401 - A1111's names
from modules.paths import DataPaths

_services = None
_cmd_opts: argparse.Namespace | None = None


class State:
    """A1111's `shared.state`, read from (and, for the counters scripts set, written to) the engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def interrupted(self) -> bool:
        ctx = self._engine.context
        return bool(ctx and ctx.interrupted)

    @property
    def skipped(self) -> bool:
        ctx = self._engine.context
        return bool(ctx and ctx.skipped)

    @property
    def job(self) -> str:
        return self._engine.progress.job

    @property
    def job_no(self) -> int:
        return self._engine.progress.job_no

    @property
    def job_count(self) -> int:
        return self._engine.progress.job_count

    @job_count.setter
    def job_count(self, value: int) -> None:
        ctx = self._engine.context
        if ctx is not None:
            ctx.set_job_count(int(value))

    @property
    def sampling_step(self) -> int:
        return self._engine.progress.step

    @property
    def sampling_steps(self) -> int:
        return self._engine.progress.steps

    @property
    def textinfo(self) -> str:
        return self._engine.progress.textinfo

    def interrupt(self) -> None:
        self._engine.interrupt()

    def skip(self) -> None:
        self._engine.skip()


class SharedInterrogator:
    """A1111's `shared.interrogator`: interrogate(pil_image) gives what Interrogate CLIP writes for it, with the
    settings in force, run inside the calling job (a script's) or as a job of its own."""

    def __init__(self, services: Any) -> None:
        self._services = services

    def interrogate(self, pil_image: Any) -> str:
        from modules.interrogate import InterrogateSettings

        services = self._services
        settings = InterrogateSettings.from_options(services.opts)
        return services.engine.run_in_job(
            "interrogate", lambda ctx: services.interrogator.interrogate(pil_image, settings)
        )


def folder_flags(paths: DataPaths) -> dict[str, str]:
    """A1111's folder flags (`--embeddings-dir`...) with the folders this app uses for them."""
    models = paths.models
    return {
        "data_dir": str(paths.root),
        "models_dir": str(models),
        "ckpt_dir": str(paths.sd_models),
        "vae_dir": str(models / "VAE"),
        "lora_dir": str(models / "Lora"),
        "hypernetwork_dir": str(models / "hypernetworks"),
        "embeddings_dir": str(paths.embeddings),
        "esrgan_models_path": str(models / "ESRGAN"),
        "realesrgan_models_path": str(models / "RealESRGAN"),
        "gfpgan_models_path": str(models / "GFPGAN"),
        "codeformer_models_path": str(models / "Codeformer"),
    }


def install(services: Any) -> None:
    """Point the A1111 names at the running services."""
    global _services, _cmd_opts
    _services = services
    args, paths = getattr(services, "args", None), getattr(services, "paths", None)
    _cmd_opts = None
    if args is not None and paths is not None:  # the app's flags win where it has one (--ckpt-dir, --data-dir)
        given = {name: value for name, value in vars(args).items() if value is not None}
        _cmd_opts = argparse.Namespace(**{**folder_flags(paths), **given})


def running() -> Any:
    """The running app's services, or None before it has started."""
    return _services


def __getattr__(name: str) -> Any:
    if _services is None:
        raise AttributeError(f"modules.shared.{name} is not available before the app has started")
    values = {
        "opts": lambda: _services.opts,
        "cmd_opts": lambda: _cmd_opts if _cmd_opts is not None else _services.args,
        "state": lambda: State(_services.engine),
        "sd_model": lambda: _services.models.current,
        "prompt_styles": lambda: _services.styles,
        "styles_filename": lambda: str(_services.paths.styles_file),
        "config_filename": lambda: str(_services.paths.config_file),
        "services": lambda: _services,
        "interrogator": lambda: SharedInterrogator(_services),
    }
    if name not in values:
        raise AttributeError(f"module 'modules.shared' has no attribute {name!r}")
    return values[name]()
