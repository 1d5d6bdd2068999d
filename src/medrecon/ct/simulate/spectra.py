"""X-ray spectra: binned photon fluence, detector weighting, filtration, half-value layers.

A :class:`Spectrum` is a list of energy bins (centres in keV) with the relative number of photons
in each, normalised to sum 1. :func:`tube_spectrum` computes the spectrum of a tungsten-anode
X-ray tube with SpekPy (Poludniowski et al., *Phys. Med. Biol.* 66 (2021) 075004; the
``casim`` model), :func:`monochromatic` gives a single line.

What a detector reads depends on its type (:class:`Detector`): an energy-integrating detector
(every clinical CT scanner) weighs each photon by its energy, a photon-counting detector
counts photons. :meth:`Spectrum.detector_weights` gives the resulting normalised weight of
each bin.

Examples
--------
>>> s = monochromatic(70.0)
>>> s.mean_energy
70.0
>>> round(s.half_value_layer("Al"), 2)  # mm of aluminium at 70 keV: ln 2 / mu
11.16
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq

from medrecon._array import to_numpy
from medrecon._enum import parse_enum
from medrecon.ct.simulate._validate import check_scalar
from medrecon.ct.simulate.materials import Material, check_energies, get_material
from medrecon.errors import NonFiniteError, ShapeError

__all__ = [
    "SPEKPY_KVP_RANGE",
    "Detector",
    "Spectrum",
    "monochromatic",
    "parse_detector",
    "tube_spectrum",
]

#: tube voltages (kV) SpekPy's default model supports for a tungsten anode
SPEKPY_KVP_RANGE = (10.0, 500.0)

# Mass energy-absorption coefficient of dry air (cm^2/g) for air-kerma half-value layers:
# NIST X-ray mass attenuation tables (Hubbell & Seltzer, NIST Standard Reference Database 126,
# Table 4, "Air, Dry (near sea level)"), keV. The argon K edge (3.2029 keV) is listed twice.
_AIR_MUEN_KEV = (
    1.0, 1.5, 2.0, 3.0, 3.2029, 3.2029, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 40.0,
    50.0, 60.0, 80.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 600.0, 800.0,
)  # fmt: skip
_AIR_MUEN_CM2_G = (
    3599.0, 1188.0, 526.2, 161.4, 133.0, 146.0, 76.36, 39.31, 22.70, 9.446, 4.742, 1.334,
    0.5389, 0.1537, 0.06833, 0.04098, 0.03041, 0.02407, 0.02325, 0.02496, 0.02672, 0.02872,
    0.02949, 0.02966, 0.02953, 0.02882,
)  # fmt: skip

# bins with less than this fraction of the peak fluence at the ends of a SpekPy spectrum are
# dropped (SpekPy returns values like 1e-101 photons below a few keV behind a filter)
_NEGLIGIBLE_FLUENCE = 1e-12


def _air_muen(energies: np.ndarray) -> np.ndarray:
    """Mass energy-absorption coefficient of air (cm^2/g), log-log interpolation of NIST."""
    e = np.asarray(energies, dtype=np.float64)
    lo, hi = _AIR_MUEN_KEV[0], _AIR_MUEN_KEV[-1]
    if float(e.min()) < lo or float(e.max()) > hi:
        raise ValueError(
            f"air kerma weighting: expected energies in [{lo}, {hi}] keV (the NIST table), got "
            f"{float(e.min()):g} to {float(e.max()):g} keV"
        )
    le = np.log(np.asarray(_AIR_MUEN_KEV))
    lm = np.log(np.asarray(_AIR_MUEN_CM2_G))
    below = e < _AIR_MUEN_KEV[4]  # below the argon K edge: the table part up to the edge
    out = np.empty_like(e)
    out[below] = np.exp(np.interp(np.log(e[below]), le[:5], lm[:5]))
    out[~below] = np.exp(np.interp(np.log(e[~below]), le[5:], lm[5:]))
    return out


class Detector(enum.StrEnum):
    """How a detector element turns photons into a signal.

    ``ENERGY_INTEGRATING``: the signal is the deposited energy, each photon weighted by its
    energy (scintillator detectors of clinical CT). ``PHOTON_COUNTING``: each photon counts
    once, whatever its energy (an ideal counting detector with one threshold).
    """

    ENERGY_INTEGRATING = "energy_integrating"
    PHOTON_COUNTING = "photon_counting"


def parse_detector(value: Any) -> Detector:
    """Return ``value`` as a :class:`Detector` (case-insensitive; ``-`` or space for ``_``).

    Raises
    ------
    ValueError
        Not one of the options (the message lists them).

    Examples
    --------
    >>> parse_detector("Photon-Counting") is Detector.PHOTON_COUNTING
    True
    """
    return parse_enum(Detector, value, "detector")


def _vector(x: Any, name: str) -> np.ndarray:
    """A finite 1D float64 array with at least one entry."""
    arr = np.asarray(to_numpy(x))
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ShapeError(f"{name}: expected a 1D array with at least one entry, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise NonFiniteError(f"{name}: expected finite values, got {arr}")
    return arr


@dataclasses.dataclass(frozen=True, eq=False, init=False)
class Spectrum:
    """A binned X-ray spectrum.

    Parameters
    ----------
    energies : array_like of shape (n_bins,)
        Bin centres in keV, > 0 and strictly increasing.
    fluence : array_like of shape (n_bins,)
        Relative number of photons in each bin (>= 0, not all 0). Stored normalised to sum 1.
    description : str, optional
        Where the spectrum comes from, for reports.

    Both arrays are stored as read-only float64 copies. Two spectra are equal when their
    arrays and descriptions are.

    Raises
    ------
    ShapeError
        Arrays that are not 1D, empty, or of different lengths.
    NonFiniteError
        NaN or infinity.
    ValueError
        Energies not > 0 or not increasing; negative fluence, or all zero.

    Examples
    --------
    >>> s = Spectrum([40.0, 80.0], [3.0, 1.0], "two lines")
    >>> s.fluence.tolist(), s.mean_energy
    ([0.75, 0.25], 50.0)
    >>> s.detector_weights("energy_integrating").round(3).tolist()
    [0.6, 0.4]
    """

    energies: np.ndarray
    fluence: np.ndarray
    description: str = ""

    def __init__(
        self, energies: npt.ArrayLike, fluence: npt.ArrayLike, description: str = ""
    ) -> None:
        e = _vector(energies, "energies")
        f = _vector(fluence, "fluence")
        if e.shape != f.shape:
            raise ShapeError(
                f"fluence: expected one value per energy bin, {e.shape}, got {f.shape}"
            )
        if float(e.min()) <= 0.0:
            raise ValueError(f"energies: expected energies > 0 keV, got a minimum of {e.min()}")
        if e.size > 1 and not np.all(np.diff(e) > 0.0):
            raise ValueError("energies: expected strictly increasing bin centres")
        if float(f.min()) < 0.0:
            raise ValueError(f"fluence: expected values >= 0, got a minimum of {f.min()}")
        total = float(f.sum())
        if not total > 0.0:
            raise ValueError("fluence: expected at least one bin with photons, got all zeros")
        if not isinstance(description, str):
            raise TypeError(f"description: expected a string, got {description!r}")
        f = f / total
        e.flags.writeable = False
        f.flags.writeable = False
        object.__setattr__(self, "energies", e)
        object.__setattr__(self, "fluence", f)
        object.__setattr__(self, "description", description)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spectrum):
            return NotImplemented
        return (
            self.description == other.description
            and np.array_equal(self.energies, other.energies)
            and np.array_equal(self.fluence, other.fluence)
        )

    def __hash__(self) -> int:
        return hash((self.description, self.energies.tobytes(), self.fluence.tobytes()))

    def __repr__(self) -> str:
        return (
            f"Spectrum({self.description!r}, {self.energies.size} bins, "
            f"{self.energies[0]:g}-{self.energies[-1]:g} keV, mean {self.mean_energy:.1f} keV)"
        )

    @property
    def n_bins(self) -> int:
        """Number of energy bins."""
        return int(self.energies.size)

    @property
    def mean_energy(self) -> float:
        """Fluence-weighted mean photon energy, keV."""
        return float(self.fluence @ self.energies)

    def detector_weights(
        self, detector: Detector | str = Detector.ENERGY_INTEGRATING
    ) -> np.ndarray:
        """Normalised weight of each bin in the detector signal.

        Parameters
        ----------
        detector : {"energy_integrating", "photon_counting"} or Detector, optional
            ``fluence * E`` (energy integrating) or ``fluence`` (photon counting).

        Returns
        -------
        ndarray of shape (n_bins,)
            Weights >= 0 summing to 1.
        """
        det = parse_detector(detector)
        w = self.fluence * self.energies if det is Detector.ENERGY_INTEGRATING else self.fluence
        out: np.ndarray = w / float(w.sum())
        return out

    def effective_mu(
        self, material: Material | str, *, detector: Detector | str = Detector.ENERGY_INTEGRATING
    ) -> float:
        """Thin-object effective attenuation of a material, 1/mm.

        The detector-weighted mean ``sum_E w(E) mu(E)`` at the material's nominal density: the
        slope of the post-log signal ``-log(I / I0)`` at zero thickness.

        Parameters
        ----------
        material : Material or str
            A material or a library name (:func:`~medrecon.ct.simulate.materials.get_material`).
        detector : {"energy_integrating", "photon_counting"} or Detector, optional
            The detector weighting.

        Returns
        -------
        float
            1/mm.

        Examples
        --------
        >>> round(monochromatic(70.0).effective_mu("water"), 5)
        0.01929
        """
        mat = get_material(material)
        return float(self.detector_weights(detector) @ mat.mu(self.energies))

    def filtered(self, material: Material | str, thickness_mm: float) -> Spectrum:
        """The spectrum behind an extra filter (Beer-Lambert).

        ``fluence(E) * exp(-mu(E) * thickness)`` with ``mu`` of the material at its nominal
        density (xraylib attenuation; :func:`tube_spectrum` filters with SpekPy's own data).

        Parameters
        ----------
        material : Material or str
            Filter material or library name (``"Al"``, ``"Ti"``, ``"water"``, ...).
        thickness_mm : float
            Filter thickness in mm (>= 0).

        Returns
        -------
        Spectrum
            Same bins, the transmitted fluence (renormalised), the filter added to the
            description.

        Raises
        ------
        ValueError
            Negative thickness, or a filter that stops every photon (in double precision).

        Examples
        --------
        >>> s = Spectrum([40.0, 80.0], [1.0, 1.0])
        >>> s.filtered("Al", 10.0).mean_energy > s.mean_energy  # beam hardening
        True
        """
        mat = get_material(material)
        t = check_scalar(thickness_mm, "thickness_mm", positive=False, unit=" mm")
        f = self.fluence * np.exp(-mat.mu(self.energies) * t)
        if not float(f.sum()) > 0.0:
            raise ValueError(
                f"thickness_mm: {t:g} mm of {mat.name} transmits no photons of this spectrum"
            )
        desc = f"{self.description}, + {t:g} mm {mat.name}".lstrip(", ")
        return Spectrum(self.energies, f, desc)

    def half_value_layer(
        self, material: Material | str = "Al", *, detector: Detector | str | None = None
    ) -> float:
        """First half-value layer: the filter thickness that halves the signal, mm.

        Parameters
        ----------
        material : Material or str, optional
            The filter material (default aluminium, at its nominal density).
        detector : None, "energy_integrating", "photon_counting" or Detector, optional
            What is halved. ``None`` (default): the air kerma, the standard definition of the
            HVL (IEC 60601, and SpekPy's ``get_hvl1``), i.e. bins weighted by
            ``fluence * E * (mu_en/rho)_air(E)`` with NIST's mass energy-absorption
            coefficients of dry air. A :class:`Detector`: that detector's signal
            (:meth:`detector_weights`), which is larger for a polychromatic beam (the
            low-energy photons that dominate air kerma are removed first).

        Returns
        -------
        float
            Thickness in mm. For a single line, ``ln 2 / mu``.

        Examples
        --------
        >>> s = Spectrum([40.0, 80.0], [1.0, 1.0])
        >>> hvl = s.half_value_layer("Al", detector="photon_counting")
        >>> w = s.fluence * np.exp(-get_material("Al").mu(s.energies) * hvl)
        >>> round(float(w.sum()), 6)
        0.5
        """
        mat = get_material(material)
        if detector is None:
            w = self.fluence * self.energies * _air_muen(self.energies)
            w = w / float(w.sum())
        else:
            w = self.detector_weights(detector)
        mu = mat.mu(self.energies)
        keep = w > 0.0
        w, mu = w[keep], mu[keep]
        ln2 = math.log(2.0)
        # Jensen: sum w exp(-mu t) >= exp(-mean(mu) t), and <= exp(-min(mu) t)
        lo = ln2 / float(w @ mu)
        hi = ln2 / float(mu.min())
        if hi - lo <= 1e-12 * hi:
            return hi

        def excess(t: float) -> float:
            return float(w @ np.exp(-mu * t)) - 0.5

        return float(brentq(excess, lo, hi, xtol=1e-10, rtol=1e-12))


def monochromatic(energy_kev: float) -> Spectrum:
    """A single spectral line.

    Parameters
    ----------
    energy_kev : float
        Photon energy in keV (within xraylib's range, 0.1-800 keV).

    Returns
    -------
    Spectrum
        One bin with all the photons.

    Examples
    --------
    >>> monochromatic(60).energies.tolist()
    [60.0]
    """
    e = float(check_energies(check_scalar(energy_kev, "energy_kev", unit=" keV"), "energy_kev"))
    return Spectrum(np.array([e]), np.array([1.0]), f"monochromatic {e:g} keV")


# --------------------------------------------------------------------------- SpekPy


def _check_filtration(filtration: Any) -> tuple[tuple[str, float], ...]:
    """Filtration as a hashable tuple of (SpekPy material name, thickness in mm)."""
    if isinstance(filtration, str) or not isinstance(filtration, Sequence):
        raise TypeError(
            f"filtration: expected a sequence of (material, thickness_mm) pairs such as "
            f"(('Al', 2.5), ('Cu', 0.1)), got {filtration!r}"
        )
    out = []
    for item in filtration:
        if (
            isinstance(item, str)
            or not isinstance(item, Sequence)
            or len(item) != 2
            or not isinstance(item[0], str)
        ):
            raise TypeError(
                f"filtration: expected (material name, thickness_mm) pairs, got {item!r}"
            )
        t = check_scalar(item[1], f"filtration thickness of {item[0]}", positive=False, unit=" mm")
        out.append((item[0], t))
    return tuple(out)


@functools.lru_cache(maxsize=32)
def _spekpy_spectrum(
    kvp: float, filtration: tuple[tuple[str, float], ...], anode_angle_deg: float, dk: float
) -> tuple[np.ndarray, np.ndarray]:
    """SpekPy bin centres (keV) and fluence per bin; cached, arrays read-only."""
    import spekpy  # slow to import (about 2 s): only when a spectrum is asked for

    spek = spekpy.Spek(kvp=kvp, th=anode_angle_deg, dk=dk)
    for name, t in filtration:
        if t == 0.0:
            continue
        try:
            spek.filter(name, t)
        except Exception as exc:  # SpekPy raises a bare Exception for unknown materials
            raise ValueError(
                f"filtration: SpekPy does not know the material {name!r} (its names are "
                f"element symbols such as 'Al', 'Cu', 'Sn', or compounds such as "
                f"'Water, Liquid'; see spekpy.Spek().show_matls())"
            ) from exc
    k, f = spek.get_spectrum()
    k = np.asarray(k, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64) * dk  # per keV -> per bin
    f = np.where(np.isfinite(f) & (f > 0.0), f, 0.0)
    if not float(f.max()) > 0.0:
        raise ValueError(
            f"SpekPy returned no photons for {kvp:g} kVp behind {filtration}; less filtration?"
        )
    big = np.flatnonzero(f > _NEGLIGIBLE_FLUENCE * float(f.max()))
    sl = slice(int(big[0]), int(big[-1]) + 1)
    k, f = k[sl].copy(), f[sl].copy()
    k.flags.writeable = False
    f.flags.writeable = False
    return k, f


def tube_spectrum(
    kvp: float = 120.0,
    *,
    filtration: Sequence[tuple[str, float]] = (("Al", 2.5),),
    anode_angle_deg: float = 12.0,
    bin_width_kev: float = 1.0,
) -> Spectrum:
    """Spectrum of a tungsten-anode X-ray tube, computed with SpekPy.

    SpekPy's default physics model (``casim``) for a thick tungsten target, on the central
    axis, filtered with SpekPy's attenuation data. Results are cached per argument set (SpekPy
    takes about a second per spectrum, and its import about two).

    Parameters
    ----------
    kvp : float, optional
        Tube voltage in kV, within :data:`SPEKPY_KVP_RANGE` (10-500 kV).
    filtration : sequence of (str, float), optional
        Filters as ``(material, thickness_mm)`` pairs, applied in order; materials are SpekPy
        names (element symbols such as ``"Al"``, ``"Cu"``, ``"Sn"``, or NIST compound names
        such as ``"Water, Liquid"``). Thicknesses in mm, >= 0. Default: 2.5 mm Al.
    anode_angle_deg : float, optional
        Anode (target) angle in degrees, in ``(0, 90)``.
    bin_width_kev : float, optional
        Energy bin width in keV, in ``(0, kvp / 4]``.

    Returns
    -------
    Spectrum
        Bin centres from SpekPy; negligible bins at both ends (fluence below ``1e-12`` of the
        peak) are dropped.

    Raises
    ------
    ValueError
        kVp out of range, unknown filter material, bad angle or bin width, negative
        thickness.
    TypeError
        Arguments of the wrong type.

    Examples
    --------
    >>> s = tube_spectrum(120.0)
    >>> s.description
    'spekpy 120 kVp W anode 12°, 2.5 mm Al'
    >>> bool(s.energies.max() < 120.0), 50 < s.mean_energy < 60
    (True, True)
    """
    v = check_scalar(kvp, "kvp", unit=" kV")
    lo, hi = SPEKPY_KVP_RANGE
    if not lo <= v <= hi:
        raise ValueError(f"kvp: expected a tube voltage in [{lo:g}, {hi:g}] kV, got {v:g}")
    th = check_scalar(anode_angle_deg, "anode_angle_deg", unit=" degrees")
    if not th < 90.0:
        raise ValueError(f"anode_angle_deg: expected an angle in (0, 90) degrees, got {th:g}")
    dk = check_scalar(bin_width_kev, "bin_width_kev", unit=" keV")
    if dk > v / 4.0:
        raise ValueError(
            f"bin_width_kev: expected a bin width in (0, kvp / 4] = (0, {v / 4.0:g}] keV, "
            f"got {dk:g}"
        )
    filt = _check_filtration(filtration)
    k, f = _spekpy_spectrum(v, filt, th, dk)
    filt_txt = ", ".join(f"{t:g} mm {name}" for name, t in filt) or "no filtration"
    return Spectrum(k, f, f"spekpy {v:g} kVp W anode {th:g}°, {filt_txt}")
