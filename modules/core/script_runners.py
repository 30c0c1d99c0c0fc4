"""The loaded A1111-style scripts: one ScriptRunner per generation tab, (re)loaded from script folders."""

from __future__ import annotations

from pathlib import Path

from modules import script_callbacks
from modules.scripts import ScriptRunner, load_scripts


class ScriptRunners:
    """Each tab's runner ("txt2img", "img2img"); a script file that fails to load becomes one of `notices`."""

    def __init__(self, notices: list[str]) -> None:
        self.notices = notices  # the page's notices (PageState.notices)
        self.runners: dict[str, ScriptRunner] = {}

    def load(self, folders: list[Path]) -> None:
        """(Re)load the script files of `folders`: callbacks, settings and each tab's runner."""
        script_callbacks.script_unloaded_callback()
        script_callbacks.clear()
        loaded = load_scripts(folders)
        self.notices.extend(error for error in loaded.errors if error not in self.notices)
        self.runners = {"txt2img": ScriptRunner(loaded, False), "img2img": ScriptRunner(loaded, True)}
        script_callbacks.ui_settings_callback()
