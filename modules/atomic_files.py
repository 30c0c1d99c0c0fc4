"""Write files so a crash leaves either the old or the new content, never a torn file."""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, IO


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write` on a temporary file beside `path`, fsync it, then rename it over `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Atomically write UTF-8 text."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Atomically write pretty-printed JSON."""
    write_text_atomic(path, json.dumps(data, indent=4, ensure_ascii=False) + "\n")


def read_json_object(path: str | os.PathLike) -> tuple[dict[str, Any], str | None]:
    """Read a JSON object file. A missing file gives {}; a broken one is moved aside to
    `<name>.bad-<time>` and gives {} plus a notice saying so."""
    target = Path(path)
    if not target.exists():
        return {}, None
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("the top level is not an object")
        return data, None
    except (OSError, ValueError) as exc:
        aside = move_aside(target)
        return {}, f"{target.name} could not be read ({exc}); it was moved to {aside.name} and defaults are used."


def move_aside(path: str | os.PathLike) -> Path:
    """Rename a broken file to `<name>.bad-<time>` (never over an earlier one) and return the new path."""
    target = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = target.with_name(f"{target.name}.bad-{stamp}")
    number = 1
    while aside.exists():
        number += 1
        aside = target.with_name(f"{target.name}.bad-{stamp}-{number}")
    target.replace(aside)
    return aside
