"""Attenuation units: water and air at 70 keV, and conversion to and from Hounsfield units.

medrecon images hold linear attenuation coefficients in 1/mm (``docs/conventions.md``).
Simulated images are monochromatic at an effective energy of :data:`EFFECTIVE_ENERGY_KEV`
(70 keV, a typical effective energy of a 120 kVp CT spectrum).

Sources
-------
* Water: mass attenuation coefficient (total, with coherent scattering) ``0.1929 cm^2/g``
  at 70 keV from NIST XCOM (Berger et al., *XCOM: Photon Cross Sections Database*, NIST
  Standard Reference Database 8), density ``1.0 g/cm^3``: ``mu = 0.1929 /cm = 0.01929 /mm``.
* Dry air (near sea level): NIST X-ray mass attenuation tables (Hubbell & Seltzer, NIST
  Standard Reference Database 126, Table 4) list ``0.1875 cm^2/g`` at 60 keV and
  ``0.1662 cm^2/g`` at 80 keV; log-log interpolation gives ``0.1757 cm^2/g`` at 70 keV.
  With the density ``1.205e-3 g/cm^3`` of the same tables: ``mu = 2.117e-5 /mm``.

Hounsfield units
----------------
``HU = 1000 (mu - mu_water) / (mu_water - mu_air)``. By default ``mu_air = 0`` (vacuum): the
empty background of simulated images is then exactly -1000 HU and
``HU = 1000 (mu / mu_water - 1)``. Pass ``mu_air=MU_AIR`` for the scale of a scanner
calibrated on real air; the two scales differ by 0.11 %.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from medrecon._array import is_torch

__all__ = [
    "AIR_DENSITY_G_CM3",
    "AIR_MASS_ATTENUATION_CM2_G",
    "EFFECTIVE_ENERGY_KEV",
    "MU_AIR",
    "MU_WATER",
    "WATER_MASS_ATTENUATION_CM2_G",
    "from_hu",
    "to_hu",
]

#: effective photon energy (keV) at which the constants below hold
EFFECTIVE_ENERGY_KEV = 70.0
#: mass attenuation coefficient of liquid water at 70 keV (cm^2/g), NIST XCOM, with coherent
#: scattering
WATER_MASS_ATTENUATION_CM2_G = 0.1929
#: linear attenuation coefficient of water at 70 keV (1/mm): 0.1929 cm^2/g * 1.0 g/cm^3 / 10
MU_WATER = WATER_MASS_ATTENUATION_CM2_G * 1.0 / 10.0
#: mass attenuation coefficient of dry air at 70 keV (cm^2/g): log-log interpolation of the
#: NIST table values at 60 keV (0.1875) and 80 keV (0.1662)
AIR_MASS_ATTENUATION_CM2_G = 0.1757
#: density of dry air near sea level (g/cm^3), NIST
AIR_DENSITY_G_CM3 = 1.205e-3
#: linear attenuation coefficient of dry air at 70 keV (1/mm), about 2.117e-5
MU_AIR = AIR_MASS_ATTENUATION_CM2_G * AIR_DENSITY_G_CM3 / 10.0


def _check_scale(mu_water: Any, mu_air: Any) -> tuple[float, float]:
    """Validate the two reference attenuations; return them as floats."""
    out = []
    for name, value in (("mu_water", mu_water), ("mu_air", mu_air)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}: expected a real number in 1/mm, got {value!r}")
        v = float(value)
        if not math.isfinite(v) or v < 0.0:
            raise ValueError(f"{name}: expected a finite attenuation >= 0 in 1/mm, got {v}")
        out.append(v)
    w, a = out
    if not w > a:
        raise ValueError(f"mu_water: expected a value > mu_air = {a} /mm, got {w} /mm")
    return w, a


def _as_float(x: Any, name: str) -> Any:
    """``x`` as a floating-point array (numpy or torch) or a Python float.

    Floating arrays keep their dtype; integer and boolean arrays become float64.
    """
    if is_torch(x):
        if x.is_floating_point():
            return x
        import torch

        return x.to(dtype=torch.float64)
    if isinstance(x, numbers.Real) and not isinstance(x, np.ndarray | np.generic):
        return float(x)
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        return arr
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    raise TypeError(
        f"{name}: expected real numbers (numpy, torch or a float), got dtype {arr.dtype}"
    )


def to_hu(mu: Any, *, mu_water: float = MU_WATER, mu_air: float = 0.0) -> Any:
    """Convert linear attenuation coefficients (1/mm) to Hounsfield units.

    ``HU = 1000 (mu - mu_water) / (mu_water - mu_air)``.

    Parameters
    ----------
    mu : float, ndarray or torch.Tensor
        Attenuation in 1/mm, any shape.
    mu_water : float, optional
        Attenuation of water (1/mm), mapped to 0 HU. Default :data:`MU_WATER` (70 keV).
    mu_air : float, optional
        Attenuation mapped to -1000 HU (1/mm). Default 0 (vacuum, so an empty background is
        exactly -1000 HU); :data:`MU_AIR` gives the real-air scale.

    Returns
    -------
    float, ndarray or torch.Tensor
        HU, same kind and shape as ``mu``. Floating dtypes are kept; integer input gives
        float64.

    Examples
    --------
    >>> to_hu(np.array([0.0, MU_WATER, 2 * MU_WATER])).round(6).tolist()
    [-1000.0, 0.0, 1000.0]
    """
    w, a = _check_scale(mu_water, mu_air)
    x = _as_float(mu, "mu")
    return (x - w) * (1000.0 / (w - a))


def from_hu(hu: Any, *, mu_water: float = MU_WATER, mu_air: float = 0.0) -> Any:
    """Convert Hounsfield units to linear attenuation coefficients (1/mm).

    The inverse of :func:`to_hu`: ``mu = mu_water + hu (mu_water - mu_air) / 1000``.

    Parameters
    ----------
    hu : float, ndarray or torch.Tensor
        Values in HU, any shape (integer arrays, as stored in DICOM, are accepted).
    mu_water, mu_air : float, optional
        The reference attenuations (1/mm), as in :func:`to_hu`.

    Returns
    -------
    float, ndarray or torch.Tensor
        Attenuation in 1/mm, same kind and shape as ``hu``. Floating dtypes are kept;
        integer input gives float64.

    Examples
    --------
    >>> float(from_hu(0.0)) == MU_WATER
    True
    >>> (from_hu(np.array([-1000, 1000])) / MU_WATER).round(6).tolist()
    [0.0, 2.0]
    """
    w, a = _check_scale(mu_water, mu_air)
    x = _as_float(hu, "hu")
    return x * ((w - a) / 1000.0) + w
