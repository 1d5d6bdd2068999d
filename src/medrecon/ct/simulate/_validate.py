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
import numpy.typing as npt

from medrecon._array import SUPPORTED_DTYPES
from medrecon.errors import DtypeError, GeometryError, NonFiniteError
from medrecon.geometry import VolumeGeometry


def check_volume(volume: Any, ndims: tuple[int, ...], name: str = "volume") -> VolumeGeometry:
    """Check that ``volume`` is a :class:`VolumeGeometry` with one of ``ndims`` axes."""
    if not isinstance(volume, VolumeGeometry):
        raise TypeError(f"{name}: expected a VolumeGeometry, got {type(volume).__name__}")
    if volume.ndim not in ndims:
        want = " or ".join(f"{d}D" for d in ndims)
        raise GeometryError(
            f"{name}: expected a {want} VolumeGeometry, got a {volume.ndim}D one of shape "
            f"{volume.shape}"
        )
    return volume


def check_oversample(oversample: Any) -> int:
    """Sub-samples per voxel and axis: an integer >= 1."""
    if isinstance(oversample, bool) or not isinstance(oversample, numbers.Integral):
        raise TypeError(f"oversample: expected an integer >= 1, got {oversample!r}")
    if oversample < 1:
        raise ValueError(f"oversample: expected an integer >= 1, got {oversample}")
    return int(oversample)


def check_out_dtype(dtype: npt.DTypeLike) -> np.dtype:
    """The output dtype: float32 or float64 (:class:`DtypeError` otherwise)."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise DtypeError(f"dtype: expected float32 or float64, got {dtype!r}") from exc
    if dt not in SUPPORTED_DTYPES:
        raise DtypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


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
