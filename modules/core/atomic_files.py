"""Write files so a crash leaves either the old or the new content, never a torn file."""

from __future__ import annotations

import errno
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from modules.errors import DiskFull


def process_umask() -> int:
    """The process's file creation mask, read without changing it where the system shows it (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def _saving(target: Path) -> Iterator[None]:
    """Turn a full disk (or quota) into DiskFull naming `target`."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"No space left on device while saving {target}") from exc
        raise


def _temp_file(directory: Path, prefix: str) -> tuple[int, str]:
    """A new temporary file in `directory`, with the permissions a plain open() would give it (mkstemp's are
    0600), so saved files follow the process umask."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    os.fchmod(fd, 0o666 & ~process_umask())
    return fd, tmp


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Call `write` on a temporary file beside `path`, fsync it, then rename it over `path`. A full disk
    raises DiskFull and leaves `path` as it was."""
    target = Path(path)
    with _saving(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temp_file(target.parent, f".{target.name}.")
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
    it exclusively and renaming over that placeholder. Returns the new path; a full disk raises DiskFull
    naming the first name."""
    directory = Path(folder)
    names = iter(names)
    first = next(names, None)
    if first is None:
        raise FileExistsError(f"No name was offered for the new file in {directory}")
    with _saving(directory / first):
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temp_file(directory, ".saving-")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            for name in itertools.chain([first], names):
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
