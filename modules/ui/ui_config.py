"""ui-config.json: A1111-style `<tab>/<label>/<property>` defaults for the page's controls."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from modules.core.atomic_files import read_json_object, write_json_atomic
from modules.jobs.generation_params import GenerationParams

log = logging.getLogger(__name__)

PROPERTIES = ("value", "minimum", "maximum", "step")


def default_entries() -> dict[str, Any]:
    """Every key with its built-in default, derived from GenerationParams' field specs."""
    entries: dict[str, Any] = {}
    for f, spec in GenerationParams.fields():
        if spec.label is None:
            continue
        tab_values = dict(spec.tab_values)
        for tab in spec.tabs:
            base = f"{tab}/{spec.label}"
            entries[f"{base}/visible"] = True
            entries[f"{base}/value"] = GenerationParams.display(f.name, tab_values.get(tab, f.default))
            if spec.widget == "slider":
                entries[f"{base}/minimum"] = spec.minimum
                entries[f"{base}/maximum"] = spec.maximum
                entries[f"{base}/step"] = spec.step
    return entries


class UiConfig:
    """Reads ui-config.json at start, adds keys it lacks, and answers per-control overrides."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = default_entries()
        stored, self.notice = read_json_object(path)
        if self.notice:
            log.error(self.notice)
        merged = {**self.entries, **stored}
        if merged != stored:
            write_json_atomic(path, merged)
        self.entries = merged

    def control(self, tab: str, label: str) -> dict[str, Any]:
        """Gradio keyword arguments (value, minimum, maximum, step, visible) for one control."""
        found = {}
        for prop in (*PROPERTIES, "visible"):
            key = f"{tab}/{label}/{prop}"
            if key in self.entries:
                found[prop] = self.entries[key]
        return found
