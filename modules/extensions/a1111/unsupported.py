"""The one error for A1111 names this app keeps but can't honour (they patch an LDM model it doesn't have)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import NoReturn

_MODULES_DIR = Path(__file__).resolve().parent.parent


def calling_extension() -> str:
    """The extension whose code is calling: the folder under the extensions dir, or for a script folder
    elsewhere the folder that holds `scripts/`; the file itself when it is neither."""
    from modules import paths

    extensions = Path(paths.extensions_dir).resolve()
    for frame in inspect.stack()[1:]:
        file = Path(frame.filename).resolve()
        if file.is_relative_to(_MODULES_DIR) or not file.is_file():
            continue
        if file.is_relative_to(extensions) and file != extensions:
            return file.relative_to(extensions).parts[0]
        return file.parent.parent.name if file.parent.name == "scripts" else str(file)
    return "an unknown caller"


def unsupported(name: str, why: str = "this app runs diffusers models and never patches an LDM model") -> NoReturn:
    """Raise NotImplementedError naming the calling extension and the A1111 name it used."""
    raise NotImplementedError(f"Extension {calling_extension()!r} called {name}, which this app can't honour: {why}.")
