"""Test-only oracles the sampling tests share: k-diffusion (PyPI k-diffusion 0.1.1.post1, the sampling code
A1111 1.10 pins) imported without its package __init__, and a plain-Python Philox4x32-10 + Box-Muller, a
second, scalar implementation of the algorithm behind A1111's NV noise source (modules/rng_philox.py)."""

from __future__ import annotations

import importlib
import importlib.util
import math
import struct
import sys
import types
from collections.abc import Sequence

import numpy as np

_MASK = 0xFFFFFFFF
_PACKAGE = "_kd_oracle"


def k_diffusion_module(name: str) -> types.ModuleType:
    """A module of the installed k-diffusion ("sampling", "external"), imported without the package's
    __init__ (which needs training dependencies), under a private package name."""
    if _PACKAGE not in sys.modules:
        spec = importlib.util.find_spec("k_diffusion")
        if spec is None:
            raise ImportError("k-diffusion (the `test` extra) is needed as the oracle")
        package = types.ModuleType(_PACKAGE)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules[_PACKAGE] = package
    return importlib.import_module(f"{_PACKAGE}.{name}")


def philox_words(seed: int, offset: int, index: int) -> tuple[int, int]:
    """The first two words of Philox4x32-10 at counter (offset, 0, index, 0) under the seed's two 32-bit halves
    (A1111's layout: the call count in the first word, the element's index in the third)."""
    c = [offset, 0, index, 0]
    k = [seed & _MASK, (seed >> 32) & _MASK]
    for done in range(10):
        if done:
            k = [(k[0] + 0x9E3779B9) & _MASK, (k[1] + 0xBB67AE85) & _MASK]
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & _MASK, (p0 >> 32) ^ c[3] ^ k[1], p0 & _MASK]
    return c[0], c[1]


def f32(value: float) -> float:
    """`value` rounded to float32."""
    return struct.unpack("f", struct.pack("f", value))[0]


# A1111's constants: 2⁻³² and 2π·2⁻³², each rounded to float32 before use.
UNIT, UNIT_2PI = f32(2.3283064e-10), f32(2.3283064e-10 * 6.2831855)


def philox_randn(seed: int, offset: int, shape: Sequence[int]) -> np.ndarray:
    """The `offset`-th randn(shape) of A1111's NV generator for `seed`: per element, Box-Muller's first value
    of its two Philox words, with A1111's float32 constants, in double precision, rounded to float32."""
    count = math.prod(shape)
    values = []
    for index in range(count):
        x, y = philox_words(seed, offset, index)
        radius = math.sqrt(-2.0 * math.log(x * UNIT + UNIT / 2))
        values.append(radius * math.sin(y * UNIT_2PI + UNIT_2PI / 2))
    return np.array(values, dtype=np.float32).reshape(tuple(shape))
