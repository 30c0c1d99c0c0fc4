"""Download model files the user asked for: streamed to a temporary file beside the target,
checked, then renamed into place. Nothing else in the program downloads. The check is against the
sha256 pinned for the file where one is recorded, else against the hash the server announces with
the file (`RemoteFile.announced`: modules/models/hub_file_hashes for the Hugging Face Hub)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import requests

from modules.core.atomic_files import write_atomic
from modules.errors import UserError

Progress = Callable[[int, int | None], None]
"""Called as progress(bytes_done, bytes_total); the total is None when the server does not say."""

CHUNK_SIZE = 1 << 20


class DownloadError(UserError):
    """A download failed (HTTP error, broken connection, short file, checksum mismatch)."""


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True)
class Checksum:
    """What a download must hash to: `kind` names the hash in messages, `new` makes a fresh hasher."""

    kind: str
    expected: str
    new: Callable[[], Hasher] = hashlib.sha256


AnnouncedChecksum = Callable[[requests.Response], Checksum | None]
"""Reads the checksum a server announces in its response for the file it sends; None where it announces none."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its name on disk, where it comes from, and what it must hash to: the pinned
    `sha256`, else what `announced` reads from the server's response (a download it can't read one from
    fails). With neither, no check is made."""

    name: str
    url: str
    sha256: str | None = None
    announced: AnnouncedChecksum | None = None


def download_file(
    url: str,
    dest: Path,
    sha256: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
    announced: AnnouncedChecksum | None = None,
) -> Path:
    """Fetch `url` to `dest` through a temporary file in the same folder, checked against `sha256` or,
    where that is None, the checksum `announced` reads from the response. On any failure (HTTP
    status, lost connection, fewer bytes than announced, no announced checksum, checksum mismatch)
    the partial file is removed, `dest` is left as it was and DownloadError says what happened."""
    dest = Path(dest)
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise DownloadError(
                    f"Could not download {dest.name} from {url}: HTTP {response.status_code} {response.reason}"
                )
            total = _content_length(response)
            checksum = Checksum("sha256", sha256.lower()) if sha256 else None
            if checksum is None and announced and (checksum := announced(response)) is None:
                raise DownloadError(
                    f"Could not check {dest.name} from {url}: the server announced no hash for it. Nothing was kept."
                )
            write_atomic(dest, lambda handle: _stream(response, handle, url, dest.name, total, checksum, progress))
    except requests.RequestException as exc:
        raise DownloadError(f"Could not download {dest.name} from {url}: the connection failed ({exc})") from exc
    return dest


def download_files(
    files: Iterable[RemoteFile],
    folder: Path,
    progress: Callable[[RemoteFile, int, int | None], None] | None = None,
    timeout: float = 30.0,
) -> list[Path]:
    """Download each file into `folder` unless a file of that name is already there.
    Returns the paths of all the files, downloaded or already present."""
    paths = []
    for remote in files:
        target = Path(folder) / remote.name
        if not target.exists():
            report = (lambda done, total, r=remote: progress(r, done, total)) if progress else None
            download_file(remote.url, target, remote.sha256, report, timeout, remote.announced)
        paths.append(target)
    return paths


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    # A compressed transfer announces the compressed length, not what iter_content yields.
    if value is None or not value.isdigit() or response.headers.get("Content-Encoding"):
        return None
    return int(value)


def _stream(
    response: requests.Response,
    handle,
    url: str,
    name: str,
    total: int | None,
    checksum: Checksum | None,
    progress: Progress | None,
) -> None:
    digest = checksum.new() if checksum else None
    done = 0
    if progress:
        progress(0, total)
    for chunk in response.iter_content(CHUNK_SIZE):
        handle.write(chunk)
        if digest is not None:
            digest.update(chunk)
        done += len(chunk)
        if progress:
            progress(done, total)
    if total is not None and done != total:
        raise DownloadError(f"The download of {name} from {url} was cut short: got {done} of {total} bytes. Try again.")
    if checksum is not None and digest is not None and digest.hexdigest() != checksum.expected:
        raise DownloadError(
            f"{name} from {url} failed its checksum: expected {checksum.kind} {checksum.expected}, "
            f"got {digest.hexdigest()}. The file was not kept."
        )
