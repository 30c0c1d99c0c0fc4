"""Infotext into a generation tab, shared by the ↙️ button beside the prompt and PNG Info's send buttons.

The fields come from `params_from_infotext`, so every GenerationParams field that the text names and the
tab (or the quicksettings row) shows is filled. The checkpoint it names is picked in the quicksettings
dropdown and loaded through that dropdown's own handler. The settings it names (RNG, ENSD, Eta, the sigmas…:
those with an infotext key) with values other than those in force fill the tab's "Override settings", as
A1111's get_override_settings does; Generate applies them to its job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from modules import script_callbacks
from modules.errors import UserError
from modules.jobs.generation_params import GenerationParams
from modules.jobs.infotext import params_from_parsed, parse_infotext
from modules.models.model_manager import ModelManager
from modules.options import Options, override_entries, settings_from_infotext
from modules.ui.generation_tab import GenerationTab

log = logging.getLogger(__name__)

UNREADABLE = "Unreadable"  # the key params_from_infotext reports skipped values under


@dataclass
class Quicksettings:
    """The quicksettings row as pasted infotext sees it: the generation fields shown there (Clip skip),
    the checkpoint dropdown, the status line, and the dropdown's handler, which loads a checkpoint."""

    fields: dict[str, gr.components.Component]
    checkpoint: gr.Dropdown
    status: gr.Markdown
    models: ModelManager
    switch_checkpoint: Callable[..., tuple]


@dataclass
class Pasted:
    """What infotext says: typed GenerationParams values, the keys no field holds, the settings whose values
    differ from those in force (setting key → value), and what was skipped."""

    values: dict[str, Any]
    rest: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def read_fields(text: str, opts: Options | None = None) -> Pasted:
    """Parse infotext into field values (after extensions' on_infotext_pasted callbacks have seen and
    perhaps changed the parsed keys), and with `opts`, into the settings it sets for a job; a value that
    doesn't fit its field ("Steps: abc") or setting ("ENSD: x") is left out and becomes a warning."""
    parsed = parse_infotext(text)
    script_callbacks.infotext_pasted_callback(text, parsed)
    values, rest = params_from_parsed(parsed)
    skipped = rest.pop(UNREADABLE, None)
    warnings = [f"Skipped unreadable values: {skipped}"] if skipped else []
    settings: dict[str, Any] = {}
    if opts is not None:
        settings, unusable = settings_from_infotext(opts, rest)
        warnings += [f"Skipped a setting: {reason}" for reason in unusable]
    return Pasted(values, rest, warnings, settings)


def find_checkpoint(models: ModelManager, rest: dict[str, str]) -> tuple[str | None, str | None]:
    """(dropdown title to switch to, warning) for the checkpoint the infotext names by "Model hash" or
    "Model": no title when it is the loaded one or names none, a warning when it isn't one listed here."""
    wanted = [rest[key] for key in ("Model hash", "Model") if rest.get(key)]
    if not wanted:
        return None, None
    listed = {info.path for info in models.checkpoints}
    for name in wanted:
        try:
            info = models.find(name)
        except UserError:
            continue
        if info.path in listed:
            loaded = models.current is not None and models.current.checkpoint.path == info.path
            return (None if loaded else models.title(info)), None
    label = " ".join([rest.get("Model", ""), f"[{rest['Model hash']}]" if rest.get("Model hash") else ""]).strip()
    return None, f"Checkpoint {label} is not here; keeping {models.current_title or 'the current model'}"


def field_updates(pasted: Pasted, names: Sequence[str]) -> list[dict]:
    """One update per named control: the pasted value (a choice field shows its label), else no change."""
    return [
        gr.update(value=GenerationParams.display(name, pasted.values[name])) if name in pasted.values else gr.update()
        for name in names
    ]


def paste_controls(tab: GenerationTab, quick: Quicksettings) -> dict[str, gr.components.Component]:
    """Where pasted fields go: the tab's controls, and the quicksettings fields the tab doesn't have."""
    return {**quick.fields, **tab.controls}


def override_update(opts: Options, settings: dict[str, Any]) -> dict:
    """The "Override settings" dropdown holding `settings` as "Key: value" entries, shown only when there is one."""
    entries = override_entries(opts, settings)
    return gr.update(value=entries, choices=entries, visible=bool(entries))


def paste_updates(text: str, names: Sequence[str], models: ModelManager, opts: Options | None = None) -> list[dict]:
    """Updates for the named controls, then for the checkpoint dropdown, then (with `opts`) for the
    "Override settings" dropdown; warnings go to the page and the log."""
    pasted = read_fields(text, opts)
    title, missing = find_checkpoint(models, pasted.rest)
    for warning in [*pasted.warnings, *([missing] if missing else [])]:
        log.warning("Pasting infotext: %s", warning)
        gr.Warning(warning)
    overrides = [override_update(opts, pasted.settings)] if opts is not None else []
    return [*field_updates(pasted, names), gr.update(value=title) if title else gr.update(), *overrides]


def wire_paste(
    button: gr.Button,
    source: Callable[..., tuple[str | None, list]],
    inputs: list,
    tab: GenerationTab | None,
    quick: Quicksettings,
    extra_outputs: list,
    api_name: str,
) -> None:
    """On a click, `source(*inputs)` gives (infotext or None, values for `extra_outputs`); the infotext fills
    `tab`'s controls, its Override settings and the quicksettings, then a checkpoint it named and that differs
    is loaded."""
    controls = paste_controls(tab, quick) if tab else {}
    names = list(controls)
    overrides = [tab.override_settings] if tab else []
    opts = tab.services.opts if tab else None

    def run(*values: Any) -> tuple:
        text, extra = source(*values)
        updates = (
            paste_updates(text, names, quick.models, opts)
            if text
            else [gr.update()] * (len(names) + 1 + len(overrides))
        )
        return (*updates, *extra)

    outputs = [*controls.values(), quick.checkpoint, *overrides, *extra_outputs]
    button.click(run, inputs=inputs, outputs=outputs, api_name=api_name).success(
        quick.switch_checkpoint,
        inputs=quick.checkpoint,
        outputs=[quick.checkpoint, quick.status],
        api_visibility="private",
    )


def connect_paste_button(tab: GenerationTab, quick: Quicksettings) -> None:
    """The ↙️ button: infotext from the prompt box, or the last generation's when the box is empty."""
    services = tab.services

    def source(prompt: str | None) -> tuple[str | None, list]:
        text = (prompt or "").strip() or services.page.last_infotext
        if not text:
            gr.Warning("Nothing to read: the prompt is empty and nothing was generated yet")
        return text, []

    wire_paste(tab.paste, source, [tab.controls["prompt"]], tab, quick, [], api_name=f"{tab.tab}_paste")
