"""Energy-resolved (polychromatic) CT simulation: beam hardening, metal, scatter, noise.

An object is a list of :class:`MaterialMap`: one material each, with a density map in g/cm^3
(partial densities where materials mix). A polychromatic scan sees, behind each ray,

``S = sum_E w(E) exp(-sum_m (mu/rho)_m(E) L_m / 10)``,   ``L_m = A rho_m``,

with ``A`` the projector (so ``L_m`` is in mm * g/cm^3 and ``(mu/rho)_m`` in cm^2/g, hence the
``/ 10``) and ``w`` the detector-weighted spectrum (:meth:`Spectrum.detector_weights`). The
post-log data ``p = -log(S)`` are no longer linear in the object: a reconstruction shows
cupping in water and dark streaks between metal objects, the artifacts metal artifact
reduction (MAR) works against. :func:`monochromatic_image` gives the ground truth at one
energy, :func:`water_precorrection` the usual first-order correction.

:func:`material_maps_from_image` splits an attenuation image into water, bone and metal maps
with the threshold-based hybrid rule common in MAR simulation studies (water-equivalent below a
threshold, bone above another, a linear mix in between), so that any phantom or CT slice can be
re-simulated polychromatically.

Examples
--------
>>> import numpy as np
>>> from medrecon.ct.simulate.materials import WATER
>>> from medrecon.ct.simulate.spectra import tube_spectrum
>>> water = MaterialMap(WATER, np.ones(3))
>>> slab = lambda rho: rho * np.array([0.0, 100.0, 300.0])  # 0, 100, 300 mm of water
>>> p = polychromatic_sinogram([water], slab, tube_spectrum(120.0))
>>> [round(float(p[1]) / 100.0, 4), round(float(p[2]) / 300.0, 4)]  # per mm: hardening
[0.0213, 0.0201]
>>> corr = water_precorrection(tube_spectrum(120.0))
>>> (corr(p) / 0.01929).round(0).tolist()  # mm of water at 70 keV
[0.0, 100.0, 300.0]
"""

from __future__ import annotations

import dataclasses
import enum
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from medrecon._array import check_dtype, check_finite, like, to_numpy
from medrecon._enum import parse_enum
from medrecon.ct.simulate._validate import check_out_dtype, check_rng, check_scalar
from medrecon.ct.simulate.materials import (
    CORTICAL_BONE,
    TITANIUM,
    WATER,
    Material,
    check_energies,
)
from medrecon.ct.simulate.noise import (
    ZeroCounts,
    log_transform,
    parse_zero_counts,
    transmission_counts,
)
from medrecon.ct.simulate.spectra import Detector, Spectrum, parse_detector
from medrecon.ct.simulate.units import EFFECTIVE_ENERGY_KEV, MU_WATER, from_hu, to_hu
from medrecon.errors import DtypeError, ShapeError

__all__ = [
    "ImageUnits",
    "MaterialMap",
    "WaterCorrection",
    "material_maps_from_image",
    "monochromatic_image",
    "polychromatic_sinogram",
    "water_precorrection",
]

# float64 elements per (energy bin x ray) block in polychromatic_sinogram: 2**22 = 32 MiB
_BLOCK_ELEMENTS = 1 << 22
# relative signals below this are recomputed in the log domain (thick metal)
_TINY = 1e-280


class ImageUnits(enum.StrEnum):
    """Units of an image given to :func:`material_maps_from_image`."""

    MU = "mu"  #: linear attenuation in 1/mm
    HU = "hu"  #: Hounsfield units


def _parse_units(value: Any) -> ImageUnits:
    return parse_enum(ImageUnits, value, "units")


@dataclasses.dataclass(frozen=True, eq=False)
class MaterialMap:
    """One material of an object and its density in every voxel.

    Parameters
    ----------
    material : Material
        The material (its composition sets the energy dependence; its nominal density is not
        used here).
    density : ndarray or torch.Tensor
        Mass density of this material in each voxel, g/cm^3 (>= 0, finite), float32 or
        float64, the shape of the volume (``(ny, nx)`` or ``(nz, ny, nx)``). Kept as given
        (not copied).

    Raises
    ------
    TypeError
        ``material`` is not a :class:`Material`.
    DtypeError
        ``density`` is not float32/float64.
    NonFiniteError, ValueError
        NaN/infinite or negative densities.

    Examples
    --------
    >>> MaterialMap(WATER, np.ones((2, 2))).shape
    (2, 2)
    """

    material: Material
    density: Any

    def __post_init__(self) -> None:
        if not isinstance(self.material, Material):
            raise TypeError(f"material: expected a Material, got {type(self.material).__name__}")
        d = to_numpy(self.density)
        check_dtype(d, "density")
        check_finite(d, "density")
        if d.size and float(d.min()) < 0.0:
            raise ValueError(
                f"density: expected densities >= 0 g/cm^3, got a minimum of {float(d.min())} "
                f"for {self.material.name}"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the density map."""
        return tuple(int(s) for s in self.density.shape)


def _check_maps(maps: Any) -> list[MaterialMap]:
    """A non-empty list of MaterialMaps of one shape."""
    if isinstance(maps, MaterialMap):
        return [maps]
    if not isinstance(maps, Sequence) or not maps:
        raise TypeError(f"maps: expected a non-empty sequence of MaterialMap, got {maps!r}")
    out = list(maps)
    for m in out:
        if not isinstance(m, MaterialMap):
            raise TypeError(f"maps: expected MaterialMap entries, got {type(m).__name__}")
    shapes = {m.shape for m in out}
    if len(shapes) != 1:
        raise ShapeError(f"maps: expected density maps of one shape, got {sorted(shapes)}")
    return out


def _result_dtype(maps: list[MaterialMap]) -> np.dtype:
    return np.result_type(*(to_numpy(m.density).dtype for m in maps))


def material_maps_from_image(
    image: Any,
    *,
    units: ImageUnits | str = ImageUnits.MU,
    metal_mask: Any = None,
    metal: Material = TITANIUM,
    water_threshold_hu: float = 100.0,
    bone_threshold_hu: float = 1500.0,
    water: Material = WATER,
    bone: Material = CORTICAL_BONE,
    reference_energy_kev: float = EFFECTIVE_ENERGY_KEV,
    mu_water: float = MU_WATER,
) -> list[MaterialMap]:
    """Split an attenuation image into water, bone (and metal) density maps.

    The hybrid rule of MAR simulation studies. With ``HU`` the image in Hounsfield units and
    ``f = clip((HU - water_threshold_hu) / (bone_threshold_hu - water_threshold_hu), 0, 1)``
    the bone fraction:

    * below ``water_threshold_hu`` (``f = 0``) a voxel is water-equivalent, above
      ``bone_threshold_hu`` (``f = 1``) pure bone, in between the attenuation is split
      linearly, ``(1 - f)`` to water and ``f`` to bone;
    * each part gets the density that reproduces its share of the image's attenuation at
      ``reference_energy_kev``: ``rho_water = (1 - f) mu / mu_water_mat(E_ref)`` (with water at
      1 g/cm^3 this is ``(HU + 1000) / 1000`` g/cm^3 below the water threshold) and
      ``rho_bone = f mu / mu_bone_mat(E_ref)``, ``mu_mat`` the mass attenuation / 10 of the
      material. Negative attenuation is clipped to 0;
    * voxels in ``metal_mask`` become ``metal`` at its nominal density and nothing else.

    So :func:`monochromatic_image` of the maps at ``reference_energy_kev`` gives back the image
    (in 1/mm) outside the metal.

    Parameters
    ----------
    image : ndarray or torch.Tensor
        Attenuation image, any shape (``(ny, nx)``, ``(nz, ny, nx)``): 1/mm at
        ``reference_energy_kev`` for ``units="mu"`` (float32/float64), HU for ``units="hu"``
        (integers accepted).
    units : {"mu", "hu"} or ImageUnits, optional
        Units of ``image``. HU and 1/mm are converted with
        :func:`~medrecon.ct.simulate.units.to_hu` / ``from_hu`` and ``mu_water``.
    metal_mask : ndarray or torch.Tensor of bool, optional
        Same shape as ``image``; True where there is metal. No metal map without it.
    metal : Material, optional
        The metal (default titanium).
    water_threshold_hu, bone_threshold_hu : float, optional
        The two thresholds in HU (``water_threshold_hu < bone_threshold_hu``).
    water, bone : Material, optional
        The water-equivalent and bone materials (defaults: water, ICRP cortical bone).
    reference_energy_kev : float, optional
        The energy at which ``image`` holds attenuation (default 70 keV, the energy of
        :data:`~medrecon.ct.simulate.units.MU_WATER`).
    mu_water : float, optional
        Attenuation of water (1/mm) for the HU scale.

    Returns
    -------
    list of MaterialMap
        ``[water map, bone map]``, plus ``metal map`` when ``metal_mask`` is given; densities
        in g/cm^3, same kind (numpy/torch) and shape as ``image``, dtype of ``image`` (float64
        for integer HU).

    Raises
    ------
    ShapeError
        ``metal_mask`` of another shape.
    DtypeError
        ``metal_mask`` not boolean; a ``"mu"`` image not float32/float64.
    ValueError
        Unknown ``units``; thresholds not increasing.
    NonFiniteError
        NaN or infinity in ``image``.

    Examples
    --------
    >>> mu = np.array([0.0, MU_WATER, 2.0 * MU_WATER, 4.0 * MU_WATER])  # -1000..3000 HU
    >>> maps = material_maps_from_image(mu, metal_mask=np.array([0, 0, 0, 1], bool))
    >>> [m.material.name for m in maps]
    ['water', 'cortical_bone', 'titanium']
    >>> maps[0].density.round(3).tolist(), maps[2].density.tolist()
    ([0.0, 1.0, 0.714, 0.0], [0.0, 0.0, 0.0, 4.506])
    >>> bool(np.allclose(monochromatic_image(maps)[:3], mu[:3], rtol=1e-3))
    True
    """
    mode = _parse_units(units)
    arr = to_numpy(image)
    if mode is ImageUnits.HU and arr.dtype.kind in "iu":
        arr = arr.astype(np.float64)
    dt = check_dtype(arr, "image")
    check_finite(arr, "image")
    for name, m in (("metal", metal), ("water", water), ("bone", bone)):
        if not isinstance(m, Material):
            raise TypeError(f"{name}: expected a Material, got {type(m).__name__}")
    t_w = _real(water_threshold_hu, "water_threshold_hu")
    t_b = _real(bone_threshold_hu, "bone_threshold_hu")
    if not t_w < t_b:
        raise ValueError(
            f"bone_threshold_hu: expected a value > water_threshold_hu = {t_w:g} HU, got {t_b:g}"
        )
    e_ref = float(check_energies(reference_energy_kev, "reference_energy_kev"))
    a64 = arr.astype(np.float64)
    if mode is ImageUnits.HU:
        hu = a64
        mu = np.asarray(from_hu(a64, mu_water=mu_water))
    else:
        mu = a64
        hu = np.asarray(to_hu(a64, mu_water=mu_water))
    mu = np.maximum(mu, 0.0)
    f_bone = np.clip((hu - t_w) / (t_b - t_w), 0.0, 1.0)
    rho_w = (1.0 - f_bone) * mu / (float(water.mass_attenuation(e_ref)) / 10.0)
    rho_b = f_bone * mu / (float(bone.mass_attenuation(e_ref)) / 10.0)
    maps_np = [(water, rho_w), (bone, rho_b)]
    if metal_mask is not None:
        mask = to_numpy(metal_mask)
        if mask.shape != arr.shape:
            raise ShapeError(f"metal_mask: expected the image shape {arr.shape}, got {mask.shape}")
        if mask.dtype != np.bool_:
            raise DtypeError(f"metal_mask: expected a boolean mask, got dtype {mask.dtype}")
        rho_w[mask] = 0.0
        rho_b[mask] = 0.0
        maps_np.append((metal, np.where(mask, metal.density, 0.0)))
    return [MaterialMap(m, like(rho.astype(dt), image)) for m, rho in maps_np]


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return v


def monochromatic_image(maps: Sequence[MaterialMap], energy_kev: float = 70.0) -> Any:
    """Linear attenuation at one energy: ``sum_m rho_m (mu/rho)_m(E) / 10``, in 1/mm.

    The ground truth that a reconstruction of monochromatic (or perfectly corrected) data at
    ``energy_kev`` approaches.

    Parameters
    ----------
    maps : sequence of MaterialMap
        The object (density maps of one shape).
    energy_kev : float, optional
        Photon energy in keV (default 70, where
        :data:`~medrecon.ct.simulate.units.MU_WATER` holds).

    Returns
    -------
    ndarray or torch.Tensor
        Attenuation in 1/mm, the maps' shape; same kind as the first map's density, dtype of
        the densities (float64 if they differ).

    Examples
    --------
    >>> round(float(monochromatic_image([MaterialMap(WATER, np.ones(1))])[0]), 5)
    0.01929
    """
    ms = _check_maps(maps)
    e = check_energies(energy_kev, "energy_kev")
    if e.ndim != 0:
        raise TypeError(f"energy_kev: expected one energy, got shape {e.shape}")
    out = np.zeros(ms[0].shape)
    for m in ms:
        out += to_numpy(m.density).astype(np.float64) * (
            float(m.material.mass_attenuation(e)) / 10.0
        )
    return like(out.astype(_result_dtype(ms)), ms[0].density)


def _blocks(n_bins: int, n_rays: int) -> list[slice]:
    """Slices of energy bins, each block at most ``_BLOCK_ELEMENTS`` (bins x rays)."""
    step = max(1, min(n_bins, _BLOCK_ELEMENTS // max(n_rays, 1)))
    return [slice(a, a + step) for a in range(0, n_bins, step)]


def _log_transmissions(
    lines: np.ndarray, mass_att: np.ndarray, weights: list[np.ndarray]
) -> list[np.ndarray]:
    """``log(sum_E w_E exp(-sum_m a_mE L_m / 10))`` per ray, for each weight vector.

    ``lines``: ``(n_materials, n_rays)`` in mm g/cm^3; ``mass_att``: ``(n_materials, n_bins)``
    in cm^2/g; ``weights``: ``(n_bins,)`` each, > 0. Computed in blocks of energy bins (at most
    ``_BLOCK_ELEMENTS`` values per temporary). Rays whose sum comes out below ``_TINY`` (thick
    metal: each ``exp`` may underflow double precision) are summed again with a running
    log-sum-exp, so the result stays finite and accurate.
    """
    n_rays = lines.shape[1]
    coef = mass_att.T / 10.0  # (n_bins, n_materials)
    sums = [np.zeros(n_rays) for _ in weights]
    for sl in _blocks(coef.shape[0], n_rays):
        tau = coef[sl] @ lines  # (block, n_rays) optical depths
        np.negative(tau, out=tau)
        np.exp(tau, out=tau)
        for total, w in zip(sums, weights, strict=True):
            total += w[sl] @ tau
    out = []
    for total, w in zip(sums, weights, strict=True):
        deep = total < _TINY
        logs = np.log(np.maximum(total, _TINY))
        if np.any(deep):
            logs[deep] = _log_sum_exp(lines[:, deep], coef, np.log(w))
        out.append(logs)
    return out


def _log_sum_exp(lines: np.ndarray, coef: np.ndarray, log_w: np.ndarray) -> np.ndarray:
    """``log sum_E exp(log_w_E - coef_E . L)`` per ray, blockwise with a running maximum."""
    top = np.full(lines.shape[1], -np.inf)
    acc = np.zeros(lines.shape[1])
    for sl in _blocks(coef.shape[0], lines.shape[1]):
        terms = log_w[sl, None] - coef[sl] @ lines
        new = np.maximum(top, terms.max(axis=0))
        acc = acc * np.exp(top - new) + np.exp(terms - new).sum(axis=0)
        top = new
    out: np.ndarray = top + np.log(acc)
    return out


def _view_scatter(signal: np.ndarray, fraction: float) -> np.ndarray:
    """``fraction`` times the mean of ``signal`` over each view (all axes but the first)."""
    if signal.ndim <= 1:
        return fraction * signal
    axes = tuple(range(1, signal.ndim))
    return fraction * signal.mean(axis=axes, keepdims=True)


def polychromatic_sinogram(
    maps: Sequence[MaterialMap],
    projector: Callable[[Any], Any],
    spectrum: Spectrum,
    *,
    i0: float | None = None,
    rng: np.random.Generator | int | None = None,
    detector: Detector | str = Detector.ENERGY_INTEGRATING,
    scatter_fraction: float = 0.0,
    electronic_std: float = 0.0,
    zero_counts: ZeroCounts | str = ZeroCounts.CLIP,
    count_floor: float = 0.5,
    dtype: npt.DTypeLike = np.float32,
) -> Any:
    """Post-log projections of a polychromatic scan: ``p = -log(I / I0)``.

    1. Per material, the density line integrals ``L_m = projector(rho_m)`` (mm * g/cm^3).
    2. The expected detector signal relative to the unattenuated beam,
       ``S = sum_E w(E) exp(-sum_m (mu/rho)_m(E) L_m / 10)``, with the detector weights ``w`` of
       ``spectrum`` (:meth:`Spectrum.detector_weights`: ``fluence * E`` energy integrating,
       ``fluence`` photon counting). Computed in float64, in blocks of energy bins (bounded
       memory: about 32 MiB per temporary, whatever the number of rays and bins); rays whose
       signal falls below 1e-280 (thick metal) are summed again in the log domain, so that
       ``p`` stays finite and exact even where every ``exp`` underflows.
    3. Scatter (``scatter_fraction > 0``): a constant per view, ``K = scatter_fraction *
       mean(S over that view)``, added to ``S`` (the mean runs over all axes but the first, the
       view axis). The flat field ``I0`` is scatter-free, so scatter lowers ``p``, most where
       the primary is weak (streaks and cupping).
    4. Noise (``i0`` given): ``N ~ Poisson(i0 T)`` photons, ``T = sum_E fluence(E) exp(...)``
       the photon transmission (plus scatter, ``scatter_fraction * mean of T over the view``),
       ``i0`` the unattenuated photons per detector element. Energy-integrating detectors use
       the usual compound-Poisson approximation: the reading is the expected energy signal
       scaled by the photon fluctuation, ``C = i0 S N / (i0 T)`` (in units of unattenuated
       mean photons; the extra Swank noise from the spread of photon energies is left out, so
       ``Var(p) ~ 1 / (i0 T)``). Photon counting reads ``C = N``. Then Gaussian electronic
       noise of ``electronic_std`` counts is added, and
       :func:`~medrecon.ct.simulate.noise.log_transform` gives ``p = -log(C / i0)`` with its
       ``zero_counts`` handling.

    Without ``i0`` the result is the noise-free ``-log(S (+ K))``.

    Parameters
    ----------
    maps : sequence of MaterialMap (or one MaterialMap)
        The object; densities of one shape, the projector's domain shape.
    projector : callable
        Maps a density volume (float64 numpy array) to line integrals: a
        :class:`~medrecon.projectors.Projector` or any
        :class:`~medrecon.linop.LinearOperator`, or a plain function. Its output shape sets
        the output shape; the first axis is taken as the view axis (for scatter).
    spectrum : Spectrum
        The incident spectrum (before the object).
    i0 : float, optional
        Unattenuated photons per detector element and reading (> 0). None: no noise.
    rng : numpy.random.Generator or int, optional
        Random generator or seed; required with ``i0``.
    detector : {"energy_integrating", "photon_counting"} or Detector, optional
        Detector type.
    scatter_fraction : float, optional
        Scatter level as a fraction of the mean primary signal of each view (>= 0).
    electronic_std : float, optional
        Gaussian electronic noise, standard deviation in counts (>= 0); needs ``i0``.
    zero_counts : {"clip", "raise"} or ZeroCounts, optional
        Handling of readings below ``count_floor`` in the log (with ``i0``).
    count_floor : float, optional
        Floor of ``"clip"`` in counts (> 0).
    dtype : float32 or float64, optional
        Output dtype (default float32; the computation is float64).

    Returns
    -------
    ndarray or torch.Tensor
        Post-log line integrals (dimensionless), the projector's output shape. A torch tensor
        when the first map's density is one.

    Raises
    ------
    TypeError
        Wrong argument types; ``i0`` without ``rng``.
    ValueError
        Bad ``detector``, ``zero_counts``, negative ``scatter_fraction``, ``electronic_std``
        without ``i0``, or (``zero_counts="raise"``) readings <= 0.
    ShapeError
        Maps of different shapes, or not the projector's domain shape.

    Examples
    --------
    Photon counting sees a softer effective spectrum than energy integrating:

    >>> from medrecon.ct.simulate.spectra import tube_spectrum
    >>> water = [MaterialMap(WATER, np.full(1, 200.0))]  # 200 mm of water
    >>> ei = polychromatic_sinogram(water, lambda r: r, tube_spectrum(120.0))
    >>> pc = polychromatic_sinogram(water, lambda r: r, tube_spectrum(120.0),
    ...                             detector="photon_counting")
    >>> bool(pc[0] > ei[0])
    True
    """
    ms = _check_maps(maps)
    if not callable(projector):
        raise TypeError(f"projector: expected a callable, got {type(projector).__name__}")
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum: expected a Spectrum, got {type(spectrum).__name__}")
    det = parse_detector(detector)
    sf = check_scalar(scatter_fraction, "scatter_fraction", positive=False)
    sigma = check_scalar(electronic_std, "electronic_std", positive=False, unit=" counts")
    mode = parse_zero_counts(zero_counts)
    floor = check_scalar(count_floor, "count_floor", positive=True, unit=" counts")
    out_dt = check_out_dtype(dtype)
    if i0 is None:
        if sigma > 0.0:
            raise ValueError("electronic_std: electronic noise needs i0 (counts); got i0=None")
        i0_v = None
        gen = None
    else:
        i0_v = check_scalar(i0, "i0", unit=" photons")
        if rng is None:
            raise TypeError("rng: expected a numpy.random.Generator or an integer seed with i0")
        gen = check_rng(rng)

    # line integrals of density, one material at a time (empty maps cost nothing)
    proj_dtype = getattr(projector, "dtype", None)
    work = proj_dtype if proj_dtype is not None else np.float64
    used: list[Material] = []
    lines: list[np.ndarray] = []
    shape: tuple[int, ...] | None = None
    for m in ms:
        rho = to_numpy(m.density)
        if not np.any(rho):
            continue
        line = np.asarray(to_numpy(projector(rho.astype(work))), dtype=np.float64)
        shape = line.shape
        used.append(m.material)
        lines.append(line.reshape(-1))
    if shape is None:  # nothing in the object: project zeros once for the output shape
        shape = np.asarray(to_numpy(projector(np.zeros(ms[0].shape, dtype=work)))).shape
    e = spectrum.energies
    if used:
        lmat = np.stack(lines)
        mass_att = np.stack([mat.mass_attenuation(e) for mat in used])
    else:
        lmat = np.zeros((1, int(np.prod(shape))))
        mass_att = np.zeros((1, e.size))

    # only bins with photons take part
    keep = spectrum.fluence > 0.0
    w = spectrum.detector_weights(det)[keep]
    f = spectrum.fluence[keep]
    mass_att = mass_att[:, keep]
    need_photons = i0_v is not None and det is Detector.ENERGY_INTEGRATING
    logs = _log_transmissions(lmat, mass_att, [w, f] if need_photons else [w])
    log_s = logs[0].reshape(shape)
    log_t = logs[1].reshape(shape) if need_photons else log_s

    if sf > 0.0:
        s = np.exp(log_s)
        log_s_tot = np.log(s + _view_scatter(s, sf))
        if need_photons:
            t = np.exp(log_t)
            log_t_tot = np.log(t + _view_scatter(t, sf))
        else:
            log_t_tot = log_s_tot
    else:
        log_s_tot, log_t_tot = log_s, log_t

    if i0_v is None:
        p = 0.0 - log_s_tot  # (not -x: no -0.0 for unattenuated rays)
    else:
        assert gen is not None
        n = transmission_counts(-log_t_tot, i0=i0_v, rng=gen)
        reading = n * np.exp(log_s_tot - log_t_tot) if need_photons else n
        if sigma > 0.0:
            reading = reading + gen.normal(0.0, sigma, size=reading.shape)
        p = log_transform(reading, i0_v, zero_counts=mode, count_floor=floor)
    return like(np.asarray(p, dtype=out_dt), ms[0].density)


@dataclasses.dataclass(frozen=True)
class WaterCorrection:
    """Water beam-hardening precorrection: a polynomial through the origin.

    ``q(p) = sum_k coefficients[k - 1] * p**k`` maps polychromatic post-log data ``p`` to the
    line integral that water of the same thickness would give at ``reference_energy_kev``;
    FBP of corrected data then gives water-equivalent attenuation at that energy. Made by
    :func:`water_precorrection`.

    Parameters
    ----------
    coefficients : tuple of float
        Polynomial coefficients of ``p, p^2, ...`` (at least one, finite).
    reference_energy_kev : float
        Energy of the target attenuation, keV.
    max_length_mm : float
        Water lengths the fit covered: ``[0, max_length_mm]`` mm. Data beyond (and negative
        data, from noise) are extrapolated by the same polynomial.
    max_fit_error : float
        Largest absolute error of the fit over that range, in line-integral units
        (divide by ``mu_water`` for mm of water).
    """

    coefficients: tuple[float, ...]
    reference_energy_kev: float
    max_length_mm: float
    max_fit_error: float

    def __post_init__(self) -> None:
        c = tuple(float(v) for v in self.coefficients)
        if not c or not all(np.isfinite(c)):
            raise ValueError(f"coefficients: expected finite numbers, got {self.coefficients}")
        object.__setattr__(self, "coefficients", c)

    @property
    def degree(self) -> int:
        """Degree of the polynomial."""
        return len(self.coefficients)

    def __call__(self, p: Any) -> Any:
        """Correct post-log data.

        Parameters
        ----------
        p : ndarray or torch.Tensor
            Polychromatic line integrals, any shape, float32/float64.

        Returns
        -------
        ndarray or torch.Tensor
            Water-equivalent line integrals at :attr:`reference_energy_kev`; same shape, kind
            and dtype as ``p`` (evaluated in float64).
        """
        arr = to_numpy(p)
        dt = check_dtype(arr, "p")
        check_finite(arr, "p")
        x = arr.astype(np.float64)
        acc = np.zeros_like(x)
        for c in reversed(self.coefficients):
            acc = (acc + c) * x
        return like(acc.astype(dt), p)


def water_precorrection(
    spectrum: Spectrum,
    *,
    detector: Detector | str = Detector.ENERGY_INTEGRATING,
    max_length_mm: float = 500.0,
    degree: int = 4,
    reference_energy_kev: float = EFFECTIVE_ENERGY_KEV,
) -> WaterCorrection:
    """Fit the water beam-hardening correction for a spectrum and detector.

    For water lengths ``L`` on a grid over ``[0, max_length_mm]`` (1001 points), the noise-free
    polychromatic signal ``p(L) = -log sum_E w(E) exp(-mu_water(E) L)`` is computed and a
    polynomial through the origin ``q(p) = sum_{k=1..degree} c_k p^k`` is fitted by least
    squares to ``mu_water(E_ref) L``.

    Parameters
    ----------
    spectrum : Spectrum
        The incident spectrum.
    detector : {"energy_integrating", "photon_counting"} or Detector, optional
        Detector type (the same as for the data).
    max_length_mm : float, optional
        Longest water path to fit, mm (> 0).
    degree : int, optional
        Polynomial degree, 1 to 10.
    reference_energy_kev : float, optional
        Target energy, keV (default 70: FBP of corrected water data gives
        :data:`~medrecon.ct.simulate.units.MU_WATER`, and ``to_hu`` applies).

    Returns
    -------
    WaterCorrection

    Examples
    --------
    >>> from medrecon.ct.simulate.spectra import tube_spectrum
    >>> corr = water_precorrection(tube_spectrum(120.0))
    >>> corr.max_fit_error / 0.01929 < 0.5  # in mm of water
    True
    """
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum: expected a Spectrum, got {type(spectrum).__name__}")
    det = parse_detector(detector)
    length = check_scalar(max_length_mm, "max_length_mm", unit=" mm")
    if isinstance(degree, bool) or not isinstance(degree, numbers.Integral):
        raise TypeError(f"degree: expected an integer in [1, 10], got {degree!r}")
    if not 1 <= int(degree) <= 10:
        raise ValueError(f"degree: expected an integer in [1, 10], got {degree}")
    deg = int(degree)
    e_ref = float(check_energies(reference_energy_kev, "reference_energy_kev"))
    lengths = np.linspace(0.0, length, 1001)
    keep = spectrum.fluence > 0.0
    w = spectrum.detector_weights(det)[keep]
    mass_att = WATER.mass_attenuation(spectrum.energies[keep])[None, :] * WATER.density
    (log_s,) = _log_transmissions(lengths[None, :], mass_att, [w])
    p = -log_s
    target = float(WATER.mu(e_ref)) * lengths
    scale = float(p.max()) if float(p.max()) > 0.0 else 1.0
    design = np.stack([(p / scale) ** k for k in range(1, deg + 1)], axis=1)
    b, *_ = np.linalg.lstsq(design, target, rcond=None)
    coef = tuple(float(b[k - 1]) / scale**k for k in range(1, deg + 1))
    fit = design @ b
    err = float(np.max(np.abs(fit - target)))
    return WaterCorrection(
        coefficients=coef,
        reference_energy_kev=e_ref,
        max_length_mm=length,
        max_fit_error=err,
    )
