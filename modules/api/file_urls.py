"""A1111's `/file=<path>` URLs: the files extensions point their page scripts at.

A path is absolute or relative to the data dir. It is served only when it is a regular file inside an
extension's own folder (extensions/<name>/…), inside the data dir's `outputs/` or `tmp/`, inside `tmp/` of
A1111's webui folder (modules.paths.script_path: Tag Autocomplete writes tmp/tagAutocompletePath.txt there),
or an image in any other folder of the data dir (previews beside models). Never: `..`, names starting with
`.` (.git, .venv, .env), files directly in the data dir (config.json, ui-config.json, styles.csv, cache.json,
login files), model files, or a symlink whose target is outside the folder that allows it."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import quote

from modules.paths import REPO_ROOT

SERVED_FOLDERS = ("outputs", "tmp")  # every file inside these folders of the data dir
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})  # anywhere else in the data dir


def file_url(path: Path) -> str:
    """The page-relative URL of `path` (absolute), with its modification time, so that browsers fetch a
    changed file again."""
    return f"file={quote(path.absolute().as_posix())}?{int(path.stat().st_mtime)}"


class FileUrls:
    """Which file a `/file=` URL names, if it may be served. `webui_dir` is A1111's script_path (this
    repository), whose `tmp/` is served too: extensions write their temporary files there."""

    def __init__(self, data_dir: Path, webui_dir: Path = REPO_ROOT) -> None:
        self.data_dir = data_dir.resolve()
        self.webui_tmp = webui_dir.resolve() / "tmp"

    def resolve(self, name: str) -> Path | None:
        """The file `name` (the text after `file=`, already URL-decoded) names, or None when it may not be
        served or does not exist. A relative name is looked for in the data dir, then in the webui folder."""
        if not name or "\x00" in name or "\\" in name:
            return None
        parts = PurePosixPath(name).parts
        if ".." in parts or any(part.startswith(".") for part in parts if part != "/"):
            return None
        candidates = [self.data_dir / name, self.webui_tmp.parent / name]  # an absolute name replaces both
        return next((path for path in map(self._served, candidates) if path is not None), None)

    def _served(self, path: Path) -> Path | None:
        root = self._root(path)
        if root is None:
            return None
        try:
            real, real_root = path.resolve(strict=True), root.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_file() or not real.is_relative_to(real_root):
            return None
        if root == self.data_dir and (real.suffix.lower() not in IMAGE_SUFFIXES or real.parent == real_root):
            return None
        return real

    def _root(self, path: Path) -> Path | None:
        """The folder that allows `path`: its extension's folder, outputs/ or tmp/, or the data dir itself
        (images only); None when none does."""
        if path.is_relative_to(self.webui_tmp):
            return self.webui_tmp
        if not path.is_relative_to(self.data_dir):
            return None
        parts = path.relative_to(self.data_dir).parts
        if len(parts) >= 3 and parts[0] == "extensions":
            return self.data_dir / "extensions" / parts[1]
        if len(parts) >= 2 and parts[0] in SERVED_FOLDERS:
            return self.data_dir / parts[0]
        if len(parts) >= 2 and parts[0] != "extensions":
            return self.data_dir
        return None
