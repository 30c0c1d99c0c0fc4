"""A1111's `modules.shared` for scripts and extensions: `opts`, `state`, `cmd_opts`, `sd_model`.

app.py's main() calls install() once; the names then read the running services. Nothing else
changes this module."""
from __future__ import annotations

from typing import Any

from modules.engine import Engine
from modules.options import OptionInfo as _OptionInfo

_services = None


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


def OptionInfo(default: Any = None, label: str = "", component: Any = None, component_args: Any = None,  # noqa: N802
               onchange: Any = None, section: Any = None, refresh: Any = None, **_: Any) -> _OptionInfo:
    """A1111's OptionInfo signature, for extensions that declare settings in on_ui_settings."""
    args = component_args() if callable(component_args) else (component_args or {})
    choices = args.get("choices")
    title = section[-1] if isinstance(section, tuple) else section
    return _OptionInfo(default, label, section=title or "Other", choices=tuple(choices) if choices else None,
                       minimum=args.get("minimum"), maximum=args.get("maximum"), step=args.get("step"))


def install(services: Any) -> None:
    """Point the A1111 names at the running services."""
    global _services
    _services = services


def __getattr__(name: str) -> Any:
    if _services is None:
        raise AttributeError(f"modules.shared.{name} is not available before the app has started")
    values = {
        "opts": lambda: _services.opts,
        "cmd_opts": lambda: _services.args,
        "state": lambda: State(_services.engine),
        "sd_model": lambda: _services.models.current,
        "services": lambda: _services,
    }
    if name not in values:
        raise AttributeError(f"module 'modules.shared' has no attribute {name!r}")
    return values[name]()
