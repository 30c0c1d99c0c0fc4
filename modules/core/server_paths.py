"""Which server folders page and API users may name (img2img Batch folders, Extras "Batch from Directory",
the output-folder settings, a script's output paths).

On a server only this computer can reach, any folder. With --listen or --share, none, unless the operator
starts with --allow-server-paths, and then only folders inside the data dir or the --ckpt-dir folder. With
--hide-ui-dir-config (A1111's flag), none, and the page hides the fields. The operator's own choices (flags,
a hand-edited config.json) are not checked here."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from modules.errors import UserError
from modules.paths import DataPaths


@dataclass(frozen=True)
class ServerPaths:
    """The policy for user-named folders; relative names are read from the data dir."""

    root: Path
    others: tuple[Path, ...] = ()  # listed folders outside the data dir (--ckpt-dir)
    reachable: bool = False  # --listen or --share: other machines can connect
    allowed: bool = False  # --allow-server-paths
    hidden: bool = False  # --hide-ui-dir-config: the page shows no folder fields, and none are taken

    @classmethod
    def from_args(cls, args: argparse.Namespace, paths: DataPaths) -> ServerPaths:
        """The policy the flags set."""
        others = (paths.extra_ckpt_dir,) if paths.extra_ckpt_dir is not None else ()
        return cls(
            paths.root,
            others,
            bool(args.listen or args.share),
            bool(args.allow_server_paths),
            bool(args.hide_ui_dir_config),
        )

    def folder(self, value: str, what: str) -> Path:
        """The folder `value` names (relative to the data dir unless absolute); UserError, naming `what`, when
        a user may not name it."""
        if self.hidden:
            raise UserError(f"{what}: server folders are turned off (--hide-ui-dir-config)")
        if self.reachable and not self.allowed:
            raise UserError(
                f"{what}: server folders can't be named from the page or the API while other machines "
                "can connect (--listen or --share); the operator may start with --allow-server-paths "
                "to allow folders inside the data dir"
            )
        folder = self.root / Path(value.strip()).expanduser()
        if self.reachable and not any(
            folder.resolve().is_relative_to(base.resolve()) for base in (self.root, *self.others)
        ):
            raise UserError(
                f"{what}: {value.strip()!r} is outside the data dir ({self.root}); while other machines "
                "can connect, only folders inside it may be named"
            )
        return folder
