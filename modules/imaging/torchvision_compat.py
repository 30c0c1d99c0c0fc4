"""The one shim for gfpgan/basicsr: they import `torchvision.transforms.functional_tensor`,
which newer torchvision removed. Import `ensure_functional_tensor()` before importing gfpgan."""

from __future__ import annotations

import sys
import types


def ensure_functional_tensor() -> None:
    """Register `torchvision.transforms.functional_tensor` as a view of `functional` if it is missing."""
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules:
        return
    try:
        __import__(name)
        return
    except ImportError:
        pass
    import torchvision.transforms.functional as functional

    shim = types.ModuleType(name)
    shim.__dict__.update({k: v for k, v in vars(functional).items() if not k.startswith("__")})
    sys.modules[name] = shim
