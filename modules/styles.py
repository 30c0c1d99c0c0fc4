"""Prompt styles from styles.csv (A1111's columns: name, prompt, negative_prompt), applied at
generation time. A style's text holds `{prompt}` where the prompt goes; without it the style is
appended after a comma. Writes are atomic; an unreadable file is reported and treated as empty."""

from __future__ import annotations

import csv
import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from modules.core.atomic_files import move_aside, write_atomic
from modules.errors import UserError

log = logging.getLogger(__name__)

COLUMNS = ("name", "prompt", "negative_prompt")


@dataclass(frozen=True)
class PromptStyle:
    name: str
    prompt: str = ""
    negative_prompt: str = ""


def merge(style_text: str, prompt: str) -> str:
    """The prompt with one style's text applied."""
    if "{prompt}" in style_text:
        return style_text.replace("{prompt}", prompt)
    if not style_text.strip():
        return prompt
    return f"{prompt}, {style_text}" if prompt.strip() else style_text


def _read(path: Path) -> dict[str, PromptStyle]:
    """The styles in a styles.csv; ValueError when it has rows but no `name` column."""
    styles: dict[str, PromptStyle] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        if reader.fieldnames is not None and "name" not in reader.fieldnames:
            raise ValueError("its first line has no 'name' column")
        for row in reader:
            name = (row.get("name") or "").strip()
            if name:
                styles[name] = PromptStyle(name, row.get("prompt") or "", row.get("negative_prompt") or "")
    return styles


class StyleDatabase:
    """The styles of one styles.csv, kept in memory in file order."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.styles: dict[str, PromptStyle] = {}
        self.notice: str | None = None
        self.reload()

    def reload(self) -> None:
        """Read the file again (a missing file is no styles)."""
        styles: dict[str, PromptStyle] = {}
        self.notice = None
        if self.path.is_file():
            try:
                styles = _read(self.path)
            except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
                aside = move_aside(self.path)
                self.notice = (
                    f"Could not read {self.path.name} ({exc}); it was moved to {aside.name} and no styles are loaded."
                )
                log.error(self.notice)
        with self._lock:
            self.styles = styles

    def names(self) -> list[str]:
        return list(self.styles)

    def _chosen(self, names: list[str] | tuple[str, ...]) -> list[PromptStyle]:
        missing = [name for name in names if name not in self.styles]
        if missing:
            raise UserError(f"No style named {', '.join(map(repr, missing))} in {self.path.name}")
        return [self.styles[name] for name in names]

    def apply_to_prompt(self, prompt: str, names: list[str] | tuple[str, ...]) -> str:
        for style in self._chosen(names):
            prompt = merge(style.prompt, prompt)
        return prompt

    def apply_to_negative_prompt(self, prompt: str, names: list[str] | tuple[str, ...]) -> str:
        for style in self._chosen(names):
            prompt = merge(style.negative_prompt, prompt)
        return prompt

    def save_style(self, style: PromptStyle) -> None:
        """Add a style, or replace the one of the same name, and write the file."""
        if not style.name.strip():
            raise UserError("A style needs a name")
        with self._lock:
            self.styles = {
                **self.styles,
                style.name.strip(): PromptStyle(style.name.strip(), style.prompt, style.negative_prompt),
            }
            self._write()

    def delete_style(self, name: str) -> None:
        with self._lock:
            if name not in self.styles:
                raise UserError(f"No style named {name!r}")
            self.styles = {key: value for key, value in self.styles.items() if key != name}
            self._write()

    def _write(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for style in self.styles.values():
            writer.writerow({"name": style.name, "prompt": style.prompt, "negative_prompt": style.negative_prompt})
        data = buffer.getvalue().encode("utf-8")
        write_atomic(self.path, lambda handle: handle.write(data))
