"""A1111 module names that extensions import and this app has no module of its own for.

Each shim lives here under its A1111 name; install() registers it as `modules.<name>` in sys.modules and
as an attribute of the `modules` package, so `import modules.devices`, `from modules import devices` and
`from modules.devices import device` all work in extension scripts. `modules.generation_parameters_copypaste`
(A1111's older name) is the same module object as `modules.infotext_utils`. A1111 names this app already has
a module for (modules.shared, processing, scripts, images, paths, img2img...) are not aliased."""

from __future__ import annotations

import importlib
import sys

import modules
from modules import paths as paths_module

# A1111 name → shim module in this package.
ALIASES = {
    "devices": "devices",
    "hashes": "hashes",
    "safe": "safe",
    "sd_hijack": "sd_hijack",
    "sd_samplers": "sd_samplers",
    "sd_schedulers": "sd_schedulers",
    "infotext_utils": "infotext_utils",
    "generation_parameters_copypaste": "infotext_utils",
}


def install(paths: paths_module.DataPaths) -> None:
    """At start: A1111's module-level names in modules.paths read `paths`, and every shim answers to its A1111
    name (registered again when called again)."""
    paths_module.activate(paths)
    for a1111_name, shim in ALIASES.items():
        module = importlib.import_module(f"{__name__}.{shim}")
        sys.modules[f"modules.{a1111_name}"] = module
        setattr(modules, a1111_name, module)
