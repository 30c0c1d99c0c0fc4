"""Download model files the user asked for: streamed to a temporary file beside the target,
checked against a sha256, then renamed into place. Nothing else in the program downloads."""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

from modules.atomic_files import write_atomic
from modules.checkpoints import file_sha256
from modules.errors import UserError

Progress = Callable[[int, int | None], None]
"""Called as progress(bytes_done, bytes_total); the total is None when the server does not say."""

CHUNK_SIZE = 1 << 20


class DownloadError(UserError):
    """A download failed (HTTP error, broken connection, short file, checksum mismatch)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its name on disk, where it comes from, and what it must hash to.
    `sha256` may be None where no trusted value is known; then no check is made."""

    name: str
    url: str
    sha256: str | None = None


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file on disk."""
    with open(path, "rb") as handle:
        return file_sha256(handle)


def download_file(url: str, dest: Path, sha256: str | None = None, progress: Progress | None = None,
                  timeout: float = 30.0) -> Path:
    """Fetch `url` to `dest` through a temporary file in the same folder. On any failure
    (HTTP status, lost connection, fewer bytes than announced, sha256 mismatch) the partial
    file is removed, `dest` is left as it was and DownloadError says what happened."""
    dest = Path(dest)
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise DownloadError(f"Could not download {dest.name} from {url}: "
                                    f"HTTP {response.status_code} {response.reason}")
            total = _content_length(response)
            write_atomic(dest, lambda handle: _stream(response, handle, url, dest.name, total, sha256, progress))
    except requests.RequestException as exc:
        raise DownloadError(f"Could not download {dest.name} from {url}: the connection failed ({exc})") from exc
    return dest


def download_files(files: Iterable[RemoteFile], folder: Path,
                   progress: Callable[[RemoteFile, int, int | None], None] | None = None,
                   timeout: float = 30.0) -> list[Path]:
    """Download each file into `folder` unless a file of that name is already there.
    Returns the paths of all the files, downloaded or already present."""
    paths = []
    for remote in files:
        target = Path(folder) / remote.name
        if not target.exists():
            report = (lambda done, total, r=remote: progress(r, done, total)) if progress else None
            download_file(remote.url, target, remote.sha256, report, timeout)
        paths.append(target)
    return paths


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    # A compressed transfer announces the compressed length, not what iter_content yields.
    if value is None or not value.isdigit() or response.headers.get("Content-Encoding"):
        return None
    return int(value)


def _stream(response: requests.Response, handle, url: str, name: str, total: int | None,
            sha256: str | None, progress: Progress | None) -> None:
    digest = hashlib.sha256()
    done = 0
    if progress:
        progress(0, total)
    for chunk in response.iter_content(CHUNK_SIZE):
        handle.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        if progress:
            progress(done, total)
    if total is not None and done != total:
        raise DownloadError(f"The download of {name} from {url} was cut short: "
                            f"got {done} of {total} bytes. Try again.")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        raise DownloadError(f"{name} from {url} failed its checksum: expected sha256 {sha256.lower()}, "
                            f"got {digest.hexdigest()}. The file was not kept.")
