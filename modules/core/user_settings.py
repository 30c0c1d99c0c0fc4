"""A page or API user's changes to the settings: what this server lets them change, and applying them
(sd_vae and sd_model_checkpoint through model switching)."""

from __future__ import annotations

import argparse
from typing import Any

from modules.core.model_switching import ModelSwitching
from modules.core.server_paths import ServerPaths
from modules.errors import UserError
from modules.extensions import access_refusal
from modules.options import Options


class UserSettings:
    """Checks and applies users' settings changes."""

    def __init__(
        self, args: argparse.Namespace, opts: Options, server_paths: ServerPaths, switching: ModelSwitching
    ) -> None:
        self.args, self.opts, self.server_paths, self.switching = args, opts, server_paths, switching

    def change(self, values: dict[str, Any]) -> None:
        """Apply a page or API user's changes to the settings. All are checked first (KeyError, ValueError or
        UserError, and nothing changes). sd_vae then swaps the loaded model's VAE (a file that can't be used
        changes nothing more), the others are saved together and only then in force, and sd_model_checkpoint
        loads that model, which must be a listed one."""
        checked = {key: self.opts.validated(key, value) for key, value in values.items()}
        self.check(checked)
        checkpoint = checked.pop("sd_model_checkpoint", None)
        if checkpoint:
            self.switching.models.find_listed(checkpoint)
        if "sd_vae" in checked:
            self.switching.set_vae(checked.pop("sd_vae")).result()
        if checked:
            self.opts.set_many(checked)
        if checkpoint:
            self.switching.load_checkpoint(checkpoint).result()

    def check(self, values: dict[str, Any]) -> None:
        """Refuse (UserError) settings a page or API user may not change on this server: extension state
        while extension access is off, and output folders the server paths policy refuses."""
        opts, declared = self.opts, self.opts.declared()
        for key, value in values.items():
            info = declared.get(key)
            if info is None:
                continue
            if info.extension_state:
                refusal = access_refusal(self.args)
                if refusal:
                    raise UserError(f"{info.label} can't be changed: {refusal}")
            if info.server_folder and isinstance(value, str) and value != getattr(opts, key):
                self.server_paths.folder(value, info.label)
