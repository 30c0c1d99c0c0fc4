"""A1111's `modules.infotext_utils` (also imported by its older name `modules.generation_parameters_copypaste`):
reading infotext, and extensions' buttons that paste it into a generation tab. The parsing is the app's
(modules/jobs/infotext.py) and the pasting is the ↙️ button's (modules/ui/infotext_paste.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from modules import shared
from modules.images import open_image, read_infotext
from modules.jobs.infotext import parse_infotext, quote, unquote  # noqa: F401 - quote, unquote: A1111's names
from modules.options import infotext_setting_keys, settings_from_entries, settings_from_infotext

paste_fields: dict[str, dict[str, Any]] = {}
"""Per tab: the fields an extension added with add_paste_fields (A1111's shape)."""


@dataclass
class ParamBinding:
    """A button that pastes infotext into tab `tabname`, from a text component or an image's parameters."""

    paste_button: Any
    tabname: str
    source_text_component: Any = None
    source_image_component: Any = None
    source_tabname: str | None = None
    override_settings_component: Any = None
    paste_field_names: list[str] = field(default_factory=list)


registered_param_bindings: list[ParamBinding] = []


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None) -> dict[str, Any]:
    """Infotext as a dict: Prompt, Negative prompt, each key's value, `Key-1`/`Key-2` for `AxB` values, and
    A1111's defaults for missing keys; the keys in `skip_fields` left out."""
    parsed: dict[str, Any] = parse_infotext(x)
    for key in skip_fields or ():
        parsed.pop(key, None)
    return parsed


def infotext_to_setting_name_mapping() -> list[tuple[str, str]]:
    """(infotext key, setting key) for every setting infotext can set."""
    return list(infotext_setting_keys(shared.opts).items())


def get_override_settings(params: dict[str, Any], *, skip_fields: list[str] | None = None) -> list[tuple]:
    """(infotext key, setting key, value) for the settings parsed infotext sets to other values than now."""
    by_setting = {key: name for name, key in infotext_setting_keys(shared.opts).items()}
    settings, _ = settings_from_infotext(shared.opts, {k: str(v) for k, v in params.items()}, skip_fields or ())
    return [(by_setting[key], key, value) for key, value in settings.items()]


def create_override_settings_dict(text_pairs: list[str]) -> dict[str, Any]:
    """ "Key: value" entries (the Override settings dropdown's) as {setting key: value}."""
    return settings_from_entries(shared.opts, text_pairs)


def add_paste_fields(tabname: str, init_img: Any, fields: Any, override_settings_component: Any = None) -> None:
    """Record a tab's paste fields, as A1111 extensions do for their own tabs."""
    paste_fields[tabname] = {
        "init_img": init_img,
        "fields": fields,
        "override_settings_component": override_settings_component,
    }


def register_paste_params_button(binding: ParamBinding) -> None:
    """Have `binding.paste_button` paste into its tab once the page connects the bindings."""
    registered_param_bindings.append(binding)


def create_buttons(tabs_list: list[str]) -> dict[str, gr.Button]:
    """A "Send to <tab>" button for each tab (create them inside the extension's layout)."""
    return {tab: gr.Button(f"Send to {tab}", elem_id=f"{tab}_tab") for tab in tabs_list}


def bind_buttons(buttons: dict[str, Any], send_image: Any, send_generate_info: Any) -> None:
    """Register each button to paste `send_generate_info` (text, or an image holding infotext) into its tab."""
    for tabname, button in buttons.items():
        text = send_generate_info if isinstance(send_generate_info, gr.components.Component) else None
        register_paste_params_button(
            ParamBinding(button, tabname, source_text_component=text, source_image_component=send_image)
        )


def connect_paste_params_buttons(tabs: dict[str, Any], quick: Any, tabs_component: gr.Tabs | None = None) -> None:
    """Wire every registered binding into the page (call inside its Blocks, once the generation tabs are built):
    `tabs` maps tab names ("txt2img", "img2img") to their GenerationTab, `quick` is the page's Quicksettings.
    Bindings for other tabs are not wired. The list is emptied after, as A1111 empties it for each page build,
    so a rebuilt page (Reload UI) gets only the buttons its own scripts register."""
    from modules.ui.infotext_paste import wire_paste

    for number, binding in enumerate(registered_param_bindings):
        tab = tabs.get(binding.tabname)
        source = binding.source_text_component or binding.source_image_component
        if tab is None or source is None:
            continue
        switch = [tabs_component] if tabs_component is not None else []
        wire_paste(
            binding.paste_button,
            _reader(binding, [gr.update(selected=binding.tabname)] * len(switch)),
            [source],
            tab,
            quick,
            switch,
            api_name=f"extension_paste_{number}",
        )
    registered_param_bindings.clear()


def _reader(binding: ParamBinding, extra: list) -> Any:
    def read(value: Any) -> tuple[str | None, list]:
        if binding.source_text_component is not None:
            return (value or None), extra
        if isinstance(value, (str, Path)):  # an image component that gives a file path
            value = open_image(value)
        return (read_infotext(value) if value is not None else None), extra

    return read
