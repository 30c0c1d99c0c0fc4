"""A1111's OptionInfo, options_section and OptionHTML, which extensions use in on_ui_settings.

An OptionInfo here is mutable as A1111's is (`.info()`, `.html()`, `.link()`, `.needs_restart()` and
`.needs_reload_ui()` change it and return it; `section` may be set after it is made). `opts.add_option` turns it
into the app's own frozen setting (modules.options.OptionInfo) through as_setting()."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from modules import options


def _choice_components() -> tuple[type, ...]:
    """Components whose component_args may name the allowed values (a numeric range is read from any
    component_args). Gradio is imported when an extension's setting is added, not with modules.shared, which
    the Ray replicas import too."""
    import gradio as gr

    return (gr.Dropdown, gr.Radio, gr.CheckboxGroup)


class OptionInfo:
    """One setting as A1111 declares it: default, label, Gradio component and its arguments (a dict, or a
    function returning one), onchange callback, section ((id, title)), refresh function, HTML comments."""

    def __init__(
        self,
        default: Any = None,
        label: str = "",
        component: Any = None,
        component_args: Any = None,
        onchange: Callable[[], Any] | None = None,
        section: tuple | str | None = None,
        refresh: Callable[[], Any] | None = None,
        comment_before: str = "",
        comment_after: str = "",
        infotext: str | None = None,
        restrict_api: bool = False,
        category_id: str | None = None,
    ) -> None:
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.refresh = refresh
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api
        self.category_id = category_id
        self.do_not_save = False
        self.applies: str | None = None

    def link(self, label: str, url: str) -> OptionInfo:
        """Add a link before the label."""
        self.comment_before += f'[<a href="{html.escape(url)}" target="_blank">{html.escape(label)}</a>]'
        return self

    def info(self, info: str) -> OptionInfo:
        """Add an explanation (HTML) after the label."""
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html_text: str) -> OptionInfo:
        """Add HTML after the label."""
        self.comment_after += html_text
        return self

    def needs_restart(self) -> OptionInfo:
        """A change takes effect when the program starts again (the Settings tab says so)."""
        self.applies = options.RESTART
        return self

    def needs_reload_ui(self) -> OptionInfo:
        """A change takes effect when the page is built again."""
        self.applies = options.RELOAD_UI
        return self

    @property
    def section_title(self) -> str:
        """The Settings tab's section: the title of A1111's (id, title) pair; "Other" when none was given."""
        if isinstance(self.section, (tuple, list)):
            return str(self.section[1] if len(self.section) > 1 else self.section[0])
        return self.section or "Other"

    def component_kwargs(self) -> dict[str, Any]:
        """component_args now (calling it when it is a function)."""
        args = self.component_args() if callable(self.component_args) else self.component_args
        return dict(args or {})

    def as_setting(self) -> options.OptionInfo:
        """The app's setting for this declaration: a Dropdown's or Radio's choices and a Slider's range become
        the values it accepts; the component and its arguments build its control on the Settings tab."""
        args = self.component_kwargs()
        choices = None
        component_class = self.component if isinstance(self.component, type) else None
        if component_class is not None and issubclass(component_class, _choice_components()) and "choices" in args:
            choices = self._choices
        numeric = isinstance(self.default, (int, float)) and not isinstance(self.default, bool)
        return options.OptionInfo(
            self.default,
            self.label,
            section=self.section_title,
            choices=choices,
            minimum=args.get("minimum") if numeric else None,
            maximum=args.get("maximum") if numeric else None,
            step=args.get("step") if numeric else None,
            refresh=self.refresh,
            applies=self.applies,
            infotext=self.infotext,
            component=self.component,
            component_args=self.component_args,
            comment=self.comment_before + self.comment_after,
            onchange=self.onchange,
        )

    def _choices(self) -> list:
        """The choices component_args gives now ((label, value) pairs count by value)."""
        return [
            choice[1] if isinstance(choice, (tuple, list)) else choice
            for choice in self.component_kwargs().get("choices", [])
        ]


class OptionHTML(OptionInfo):
    """Text shown among the settings, saving nothing."""

    def __init__(self, text: str) -> None:
        import gradio as gr

        super().__init__(str(text).strip(), label="", component=gr.HTML)
        self.do_not_save = True


def options_section(section_identifier: tuple, options_dict: dict[str, OptionInfo]) -> dict[str, OptionInfo]:
    """Put every option of `options_dict` in the section (id, title[, category id]); returns the dict."""
    for info in options_dict.values():
        info.section = tuple(section_identifier[:2])
        if len(section_identifier) > 2:
            info.category_id = section_identifier[2]
    return options_dict
