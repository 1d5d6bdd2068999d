"""Argument checks shared by the simulation modules (not public API).

Each check raises a typed error whose message states what was expected and what was received:
``TypeError`` for the wrong kind of argument, ``ValueError`` (or a medrecon subclass) for a
wrong value.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from medrecon.errors import NonFiniteError
from medrecon.geometry.shapes import check_out_dtype, check_oversample, check_volume

__all__ = [
    "check_out_dtype",
    "check_oversample",
    "check_rng",
    "check_scalar",
    "check_volume",
]


def check_scalar(value: Any, name: str, *, positive: bool = True, unit: str = "") -> float:
    """A finite real number, > 0 (``positive``) or >= 0.

    ``TypeError`` for a non-number, :class:`NonFiniteError` for NaN or infinity,
    ``ValueError`` for a number out of range.
    """
    what = ("> 0" if positive else ">= 0") + unit
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a finite number {what}, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise NonFiniteError(f"{name}: expected a finite number {what}, got {v}")
    if v < 0.0 or (positive and v == 0.0):
        raise ValueError(f"{name}: expected a finite number {what}, got {v}")
    return v


def check_rng(rng: Any) -> np.random.Generator:
    """A numpy Generator, or an integer seed for one (``np.random.default_rng(seed)``)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)) or an integer "
        f"seed, got {type(rng).__name__}"
    )
