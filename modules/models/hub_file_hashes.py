"""The hash the Hugging Face Hub publishes for a file it serves, read from its answer to a `resolve` URL, as
huggingface_hub reads it: the Hub follows its own redirects (a renamed repo, a small file's cache path) and
answers either with the file itself or with a redirect to a CDN; that answer carries

- `X-Linked-Etag: "<sha256>"` for a file kept in LFS (the weights): the sha256 of its content;
- `ETag: "<sha1>"` for a small file kept in git (configs, tokenizers): git's blob sha1 of its content,
  sha1(b"blob <size>\\0" + content).

The CDN's own headers are never read. model_download checks the downloaded bytes against the announced hash
where no sha256 is pinned."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urljoin, urlsplit

import requests

from modules.models.model_download import Checksum

_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class GitBlobSha1:
    """git's object name for a file's content. The size comes first in what is hashed, so the content is held
    until the end; the Hub keeps only small files (under 10 MB) outside LFS."""

    def __init__(self) -> None:
        self._content = bytearray()

    def update(self, data: bytes) -> None:
        self._content += data

    def hexdigest(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self._content) + self._content).hexdigest()


def hub_answer(response: requests.Response) -> requests.Response:
    """The Hub's own answer in a followed chain of redirects: the first response that is not a redirect within
    the requested URL's origin (scheme, host and port)."""
    chain = [*response.history, response]
    origin = _origin(chain[0].url)
    for step in chain:
        if not step.is_redirect or _origin(urljoin(step.url, step.headers["Location"])) != origin:
            return step
    return response


def hub_checksum(response: requests.Response) -> Checksum | None:
    """The checksum the Hub announces for the file in `response` (redirects followed), or None where it
    announces none that can be checked."""
    headers = hub_answer(response).headers
    linked = _unquoted(headers.get("X-Linked-Etag"))
    if linked is not None:
        return Checksum("sha256", linked) if len(linked) == 64 else None
    etag = _unquoted(headers.get("ETag"))
    if etag is None:
        return None
    return Checksum("git blob sha1", etag, GitBlobSha1) if len(etag) == 40 else Checksum("sha256", etag)


def _unquoted(value: str | None) -> str | None:
    """A hex hash from an ETag header (`"..."` or weak `W/"..."`), lower-cased; None if it holds no hash."""
    if value is None:
        return None
    value = value.removeprefix("W/").strip('"').lower()
    return value if _HEX.fullmatch(value) else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)
