"""Write files so a crash leaves either the old or the new content, never a torn file."""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, IO, Iterable


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


def write_new(folder: str | os.PathLike, names: Iterable[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file to a temporary name in `folder`, fsync it, then give it the first of `names` that is
    free, never replacing an existing file (even one another thread or process creates meanwhile): the
    name is taken by a hard link, which fails when it exists, or where links aren't supported by creating
    it exclusively and renaming over that placeholder. Returns the new path."""
    directory = Path(folder)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".saving-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        for name in names:
            target = directory / name
            if _claim(tmp, target):
                return target
        raise FileExistsError(f"Every name offered for the new file in {directory} is taken")
    finally:
        Path(tmp).unlink(missing_ok=True)


def _claim(tmp: str, target: Path) -> bool:
    """Give `tmp`'s content the name `target` unless that name exists; False when it does."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here (FAT, some network shares): reserve the name, then fill it
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        os.replace(tmp, target)
        return True
