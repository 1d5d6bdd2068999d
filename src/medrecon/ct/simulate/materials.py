"""Materials for energy-resolved X-ray simulation: composition, density, attenuation.

A :class:`Material` is a name, a nominal density (g/cm^3) and an elemental composition, given
as an xraylib chemical formula (``"H2O"``, ``"Ti"``), the name of a compound in xraylib's copy
of the NIST compound list (``"Water, Liquid"``, ``"Bone, Cortical (ICRP)"``; see
``xraylib.GetCompoundDataNISTList()``), or explicit element mass fractions
(``(("Fe", 0.66), ("Cr", 0.17), ...)``).

Attenuation comes from xraylib: the total mass attenuation coefficient **with** coherent
(Rayleigh) scattering, ``CS_Total``, summed over the elements with their mass fractions (the
mixture rule, as NIST XCOM does). Units follow the project conventions: energies in keV,
mass attenuation in cm^2/g, linear attenuation in 1/mm, so ``mu [1/mm] = density [g/cm^3] *
mass_attenuation [cm^2/g] / 10``. xraylib tabulates 0.1 keV to 800 keV; energies outside that
range are refused.

Checked against NIST (``tests/test_ct_polychromatic.py``): water 0.1929 cm^2/g at 70 keV
(XCOM, the value behind :data:`~medrecon.ct.simulate.units.MU_WATER`) and titanium from the
Hubbell & Seltzer tables (NISTIR 5632, Table 3) at 50-100 keV, each to better than 2 %.

The library of materials (module constants, also reachable by name through
:func:`get_material`): :data:`AIR`, :data:`WATER`, :data:`SOFT_TISSUE`, :data:`ADIPOSE`,
:data:`LUNG`, :data:`CORTICAL_BONE`, :data:`ALUMINIUM`, :data:`TITANIUM`, :data:`IRON`,
:data:`STEEL`, :data:`GOLD`, :data:`AMALGAM`.

Examples
--------
>>> round(float(WATER.mu(70.0)), 5)  # 1/mm, NIST XCOM: 0.01929
0.01929
>>> get_material("Ti") is TITANIUM
True
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import xraylib
import xraylib_np

from medrecon._array import to_numpy
from medrecon.errors import NonFiniteError, UnknownMaterialError

__all__ = [
    "ADIPOSE",
    "AIR",
    "ALUMINIUM",
    "AMALGAM",
    "CORTICAL_BONE",
    "ENERGY_RANGE_KEV",
    "GOLD",
    "IRON",
    "LUNG",
    "MATERIALS",
    "SOFT_TISSUE",
    "STEEL",
    "TITANIUM",
    "WATER",
    "Material",
    "UnknownMaterialError",
    "check_energies",
    "get_material",
]

#: photon energies (keV) for which xraylib has cross sections; others are refused
ENERGY_RANGE_KEV = (0.1, 800.0)

# relative tolerance on the sum of explicit mass fractions (they are renormalised to 1)
_FRACTION_SUM_RTOL = 1e-3


def check_energies(energies_kev: npt.ArrayLike, name: str = "energies_kev") -> np.ndarray:
    """Photon energies as a float64 array, finite and inside :data:`ENERGY_RANGE_KEV`.

    Parameters
    ----------
    energies_kev : float or array_like
        Energies in keV, any shape (numpy, lists or CPU torch tensors).
    name : str, optional
        The argument name used in error messages.

    Returns
    -------
    ndarray of float64
        The energies, same shape (0-d for a scalar).

    Raises
    ------
    TypeError
        Non-numeric input.
    NonFiniteError
        NaN or infinity.
    ValueError
        An energy outside :data:`ENERGY_RANGE_KEV`.

    Examples
    --------
    >>> check_energies([50, 60.5]).tolist()
    [50.0, 60.5]
    """
    if isinstance(energies_kev, numbers.Real) and not isinstance(energies_kev, bool):
        raw: Any = np.float64(energies_kev)
    else:
        raw = to_numpy(energies_kev)
    arr = np.asarray(raw)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected real numbers in keV, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise NonFiniteError(f"{name}: expected finite energies in keV, got {arr}")
    lo, hi = ENERGY_RANGE_KEV
    if arr.size and (float(arr.min()) < lo or float(arr.max()) > hi):
        raise ValueError(
            f"{name}: expected energies in [{lo}, {hi}] keV (xraylib's tables), got "
            f"{float(arr.min()):g} to {float(arr.max()):g} keV"
        )
    return arr


def _resolve_formula(composition: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Elements and mass fractions of a NIST compound name or a chemical formula."""
    try:
        data = xraylib.GetCompoundDataNISTByName(composition)
    except ValueError:
        pass
    else:
        return tuple(int(z) for z in data["Elements"]), tuple(
            float(w) for w in data["massFractions"]
        )
    try:
        data = xraylib.CompoundParser(composition)
    except ValueError as exc:
        raise ValueError(
            f"composition: expected a chemical formula (e.g. 'H2O', 'Ti') or a NIST compound "
            f"name known to xraylib (see xraylib.GetCompoundDataNISTList()), got "
            f"{composition!r}"
        ) from exc
    return tuple(int(z) for z in data["Elements"]), tuple(float(w) for w in data["massFractions"])


def _resolve_fractions(
    pairs: tuple[tuple[str, float], ...],
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Elements and renormalised mass fractions of explicit ``(symbol, fraction)`` pairs."""
    if not pairs:
        raise ValueError("composition: expected at least one (element, mass fraction) pair")
    zs: list[int] = []
    ws: list[float] = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise TypeError(
                f"composition: expected (element symbol, mass fraction) pairs, got {pair!r}"
            )
        symbol, frac = pair
        try:
            z = int(xraylib.SymbolToAtomicNumber(symbol))
        except ValueError as exc:
            raise ValueError(
                f"composition: expected element symbols such as 'Fe', got {symbol!r}"
            ) from exc
        if isinstance(frac, bool) or not isinstance(frac, numbers.Real):
            raise TypeError(
                f"composition: expected a number as mass fraction of {symbol}, got {frac!r}"
            )
        w = float(frac)
        if not math.isfinite(w) or w <= 0.0:
            raise ValueError(f"composition: expected mass fractions > 0, got {w} for {symbol}")
        if z in zs:
            raise ValueError(f"composition: element {symbol} is listed twice")
        zs.append(z)
        ws.append(w)
    total = sum(ws)
    if abs(total - 1.0) > _FRACTION_SUM_RTOL:
        raise ValueError(
            f"composition: expected mass fractions summing to 1 (within "
            f"{_FRACTION_SUM_RTOL:g}), got a sum of {total:.6g}"
        )
    return tuple(zs), tuple(w / total for w in ws)


@dataclasses.dataclass(frozen=True, init=False)
class Material:
    """A material: name, nominal density and elemental composition.

    Parameters
    ----------
    name : str
        A label (used in descriptions and by :func:`get_material` for library materials).
    density : float
        Nominal mass density in g/cm^3 (> 0).
    composition : str, mapping of str to float, or sequence of (str, float) pairs
        An xraylib chemical formula (``"H2O"``, ``"Ti"``, ``"CaCO3"``), a NIST compound name
        known to xraylib (``"Water, Liquid"``, ``"Tissue, Soft (ICRP)"``; the list is
        ``xraylib.GetCompoundDataNISTList()``), or explicit element mass fractions such as
        ``{"Fe": 0.7, "Cr": 0.3}`` or ``(("Fe", 0.7), ("Cr", 0.3))``, stored as a tuple of
        ``(symbol, fraction)`` pairs. Fractions must be > 0 and sum to 1 within 0.1 %; the
        attenuation uses them renormalised to sum exactly 1.

    Raises
    ------
    TypeError
        A name or composition of the wrong type.
    ValueError
        Non-positive or non-finite density; unknown formula, compound or element; bad mass
        fractions.

    Examples
    --------
    >>> ti = Material("titanium", 4.506, "Ti")
    >>> round(float(ti.mass_attenuation(100.0)), 3)  # cm^2/g, NIST: 0.2721
    0.272
    >>> mix = Material("mix", 5.0, {"Fe": 0.5, "Ni": 0.5})
    >>> mix.composition
    (('Fe', 0.5), ('Ni', 0.5))
    """

    name: str
    density: float
    composition: str | tuple[tuple[str, float], ...]
    _elements: tuple[int, ...] = dataclasses.field(init=False, repr=False, compare=False)
    _fractions: tuple[float, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __init__(
        self,
        name: str,
        density: float,
        composition: str | Mapping[str, float] | Sequence[tuple[str, float]],
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name: expected a non-empty string, got {name!r}")
        if isinstance(density, bool) or not isinstance(density, numbers.Real):
            raise TypeError(f"density: expected a number in g/cm^3, got {density!r}")
        d = float(density)
        if not math.isfinite(d) or d <= 0.0:
            raise ValueError(f"density: expected a finite density > 0 g/cm^3, got {d}")
        comp: Any = composition
        if isinstance(comp, str):
            zs, ws = _resolve_formula(comp)
        elif isinstance(comp, Mapping | Sequence):
            items = comp.items() if isinstance(comp, Mapping) else comp
            comp = tuple(tuple(p) if isinstance(p, list) else p for p in items)
            zs, ws = _resolve_fractions(comp)
            comp = tuple((sym, float(w)) for sym, w in comp)
        else:
            raise TypeError(
                f"composition: expected a formula, a NIST compound name or (element, mass "
                f"fraction) pairs, got {type(comp).__name__}"
            )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "density", d)
        object.__setattr__(self, "composition", comp)
        object.__setattr__(self, "_elements", zs)
        object.__setattr__(self, "_fractions", ws)

    @property
    def mass_fractions(self) -> dict[str, float]:
        """Element symbol -> mass fraction (summing to 1).

        Examples
        --------
        >>> {k: round(v, 3) for k, v in WATER.mass_fractions.items()}
        {'H': 0.112, 'O': 0.888}
        """
        return {
            xraylib.AtomicNumberToSymbol(z): w
            for z, w in zip(self._elements, self._fractions, strict=True)
        }

    def mass_attenuation(self, energies_kev: npt.ArrayLike) -> np.ndarray:
        """Total mass attenuation coefficient, with coherent scattering, in cm^2/g.

        ``sum_i w_i * CS_Total(Z_i, E)`` over the elements ``Z_i`` with mass fractions
        ``w_i`` (xraylib).

        Parameters
        ----------
        energies_kev : float or array_like
            Photon energies in keV, any shape, within :data:`ENERGY_RANGE_KEV`.

        Returns
        -------
        ndarray of float64
            cm^2/g, same shape as ``energies_kev`` (0-d for a scalar).

        Raises
        ------
        NonFiniteError, ValueError
            Energies that are not finite or out of range.

        Examples
        --------
        >>> WATER.mass_attenuation([60.0, 80.0]).round(4).tolist()  # NIST: 0.2059, 0.1837
        [0.2059, 0.1837]
        """
        e = check_energies(energies_kev)
        flat = np.ascontiguousarray(e.reshape(-1))
        if flat.size == 0:
            return np.zeros(e.shape)
        zs = np.asarray(self._elements, dtype=np.int64)
        cs = np.asarray(xraylib_np.CS_Total(zs, flat), dtype=np.float64)  # (n_elements, n_E)
        out = np.asarray(self._fractions, dtype=np.float64) @ cs
        return np.asarray(out.reshape(e.shape))

    def mu(self, energies_kev: npt.ArrayLike) -> np.ndarray:
        """Linear attenuation coefficient at the nominal density, in 1/mm.

        ``density * mass_attenuation(E) / 10``.

        Parameters
        ----------
        energies_kev : float or array_like
            Photon energies in keV, any shape.

        Returns
        -------
        ndarray of float64
            1/mm, same shape as ``energies_kev``.

        Examples
        --------
        >>> round(float(TITANIUM.mu(70.0)), 3)
        0.242
        """
        return self.density * self.mass_attenuation(energies_kev) / 10.0


# --------------------------------------------------------------------------- the library

#: dry air near sea level (NIST composition and density 1.205e-3 g/cm^3)
AIR = Material("air", 1.205e-3, "Air, Dry (near sea level)")
#: liquid water, 1.0 g/cm^3
WATER = Material("water", 1.0, "Water, Liquid")
#: soft tissue: ICRP composition (NIST list), density 1.03 g/cm^3 (ICRU Report 44)
SOFT_TISSUE = Material("soft_tissue", 1.03, "Tissue, Soft (ICRP)")
#: adipose tissue: ICRP composition and density 0.92 g/cm^3 (NIST list)
ADIPOSE = Material("adipose", 0.92, "Adipose Tissue (ICRP)")
#: inflated lung: ICRP lung composition at 0.26 g/cm^3 (about -740 HU at 70 keV; the NIST
#: list gives 1.05 g/cm^3, the density of the lung tissue itself)
LUNG = Material("lung", 0.26, "Lung (ICRP)")
#: cortical bone: ICRP composition and density 1.85 g/cm^3 (NIST list)
CORTICAL_BONE = Material("cortical_bone", 1.85, "Bone, Cortical (ICRP)")
#: aluminium, 2.699 g/cm^3 (NIST)
ALUMINIUM = Material("aluminium", 2.699, "Al")
#: titanium (implants), 4.506 g/cm^3
TITANIUM = Material("titanium", 4.506, "Ti")
#: iron, 7.874 g/cm^3
IRON = Material("iron", 7.874, "Fe")
#: stainless steel 316L (implants), 8.0 g/cm^3; nominal mass fractions Cr 17 %, Ni 12 %,
#: Mo 2.5 %, Mn 2 %, Si 0.75 %, Fe the balance (carbon, <= 0.03 %, left out)
STEEL = Material(
    "steel",
    8.0,
    (
        ("Fe", 0.6575),
        ("Cr", 0.17),
        ("Ni", 0.12),
        ("Mo", 0.025),
        ("Mn", 0.02),
        ("Si", 0.0075),
    ),
)
#: gold, 19.32 g/cm^3
GOLD = Material("gold", 19.32, "Au")
#: dental amalgam (set), 11.6 g/cm^3: 50 % mercury and a silver-tin-copper alloy (Ag 60 %,
#: Sn 27 %, Cu 13 % of the alloy), by mass
AMALGAM = Material(
    "amalgam",
    11.6,
    (("Hg", 0.50), ("Ag", 0.30), ("Sn", 0.135), ("Cu", 0.065)),
)

#: every library material by name (read-only)
MATERIALS: Mapping[str, Material] = types.MappingProxyType(
    {
        m.name: m
        for m in (
            AIR,
            WATER,
            SOFT_TISSUE,
            ADIPOSE,
            LUNG,
            CORTICAL_BONE,
            ALUMINIUM,
            TITANIUM,
            IRON,
            STEEL,
            GOLD,
            AMALGAM,
        )
    }
)

# other names get_material answers to (after lower-casing, spaces and dashes -> "_")
_ALIASES = {
    "al": "aluminium",
    "aluminum": "aluminium",
    "ti": "titanium",
    "fe": "iron",
    "au": "gold",
    "h2o": "water",
    "bone": "cortical_bone",
    "tissue": "soft_tissue",
    "stainless_steel": "steel",
    "fat": "adipose",
}


def _key(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def get_material(name: str | Material) -> Material:
    """Look up a library material by name (case-insensitive).

    Parameters
    ----------
    name : str or Material
        A name from :data:`MATERIALS` (``"water"``, ``"soft_tissue"``, ``"cortical_bone"``,
        ...), with any case, spaces or dashes for underscores, or an alias: ``"Al"``,
        ``"aluminum"``, ``"Ti"``, ``"Fe"``, ``"Au"``, ``"H2O"``, ``"bone"``, ``"tissue"``,
        ``"fat"``, ``"stainless steel"``. A :class:`Material` is returned unchanged.

    Returns
    -------
    Material

    Raises
    ------
    UnknownMaterialError
        An unknown name (the message lists the known ones).
    TypeError
        Neither a string nor a Material.

    Examples
    --------
    >>> get_material("Soft Tissue").density
    1.03
    """
    if isinstance(name, Material):
        return name
    if not isinstance(name, str):
        raise TypeError(f"material: expected a name or a Material, got {type(name).__name__}")
    key = _key(name)
    key = _ALIASES.get(key, key)
    try:
        return MATERIALS[key]
    except KeyError:
        known = ", ".join(repr(k) for k in MATERIALS)
        aliases = ", ".join(repr(k) for k in _ALIASES)
        raise UnknownMaterialError(
            f"material: expected one of {known} (or an alias: {aliases}), got {name!r}"
        ) from None
