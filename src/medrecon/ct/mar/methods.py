"""Sinogram-domain metal artifact reduction: LI-MAR, NMAR and a frequency-split option.

Every method follows the same path:

1. reconstruct the measured sinogram (FBP for 2D parallel/fan and 3D parallel, FDK for
   circular cone beam, or a ``reconstruct`` callable of the caller's) - the *uncorrected* image;
2. segment the metal in it (:func:`~medrecon.ct.mar.segment_metal`) unless a mask is given;
3. forward project the mask to the metal trace (:func:`~medrecon.ct.mar.metal_trace`);
4. replace the traced samples: linearly (:func:`li_mar`), or linearly after dividing by the
   forward projection of a tissue-classified prior image and multiplying back (:func:`nmar`,
   Meyer, Raupach, Lell, Schmidt, Kachelriess, *Med. Phys.* 37(10), 2010);
5. reconstruct the corrected sinogram and put the metal back: the voxels of the metal mask take
   their values from the uncorrected image.

Rays outside the trace are never changed. Measured data are never modified in place.

:func:`mar_from_image` is the weaker path for PACS use when no raw data exists: it reprojects a
reconstructed image into a synthetic sinogram of a virtual scan, corrects that, and
reconstructs. The synthetic sinogram is consistent with the artifacts already baked into the
image (it is no measurement), so the correction can only remove what the reprojection of the
streaks puts into the trace; it helps, but less than correcting the scanner's own data.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from medrecon._array import check_dtype, check_finite, is_torch, like, to_numpy
from medrecon._enum import parse_enum
from medrecon.ct.analytic import fbp, fdk
from medrecon.ct.mar.trace import (
    DEFAULT_METAL_THRESHOLD_HU,
    _check_mask,
    interpolate_trace,
    metal_trace,
    segment_metal,
)
from medrecon.ct.simulate.units import MU_WATER, from_hu, to_hu
from medrecon.errors import GeometryError, NotDifferentiableError, ShapeError
from medrecon.geometry import ConeBeam3D, FanBeam2D, ParallelBeam2D, ParallelBeam3D
from medrecon.geometry import VolumeGeometry as _Volume
from medrecon.projectors import Projector

__all__ = [
    "MARMethod",
    "MARResult",
    "frequency_split",
    "li_mar",
    "mar",
    "mar_from_image",
    "nmar",
    "nmar_prior",
    "normalized_interpolation",
]

Reconstruct = Callable[[np.ndarray], Any]


class MARMethod(enum.StrEnum):
    """Sinogram inpainting method: linear (``"li"``) or normalised (``"nmar"``)."""

    LI = "li"
    NMAR = "nmar"


def _parse_method(value: Any) -> MARMethod:
    return parse_enum(MARMethod, value, "method")


@dataclasses.dataclass(frozen=True)
class MARResult:
    """What a MAR run produced, with its intermediate steps for inspection.

    Attributes
    ----------
    image : ndarray or torch.Tensor, the volume's shape
        Corrected image with the metal put back (1/mm, or HU where ``units == "hu"``).
    uncorrected : ndarray or torch.Tensor
        Reconstruction of the input sinogram (same units).
    sinogram : ndarray or torch.Tensor
        The corrected sinogram (line integrals; equal to the input outside ``trace``).
    metal_mask : ndarray of bool
        Metal voxels (segmented, or as given).
    trace : ndarray of bool
        Corrected rays.
    prior : ndarray or None
        NMAR's tissue-classified prior image (same units as ``image``), None for LI.
    method : str
        ``"li"``, ``"nmar"``, with ``"+fs"`` when the frequency split was applied.
    units : str
        ``"mu"`` (1/mm) or ``"hu"``.
    """

    image: Any
    uncorrected: Any
    sinogram: Any
    metal_mask: np.ndarray
    trace: np.ndarray
    prior: Any
    method: str
    units: str


# --------------------------------------------------------------------------- helpers


def _reconstructor(
    geometry: Any,
    volume: _Volume,
    reconstruct: Reconstruct | None,
    recon_options: Mapping[str, Any] | None,
    backend: str,
) -> Reconstruct:
    options = dict(recon_options or {})
    if reconstruct is not None:
        if options:
            raise TypeError("recon_options: not used with a custom reconstruct callable")
        if not callable(reconstruct):
            raise TypeError(f"reconstruct: expected a callable, got {type(reconstruct).__name__}")
        return reconstruct
    if isinstance(geometry, ConeBeam3D):
        return lambda s: fdk(s, geometry, volume, backend=backend, **options)
    if isinstance(geometry, ParallelBeam2D | FanBeam2D | ParallelBeam3D):
        return lambda s: fbp(s, geometry, volume, backend=backend, **options)
    raise GeometryError(
        f"no analytic reconstruction for {type(geometry).__name__}: pass reconstruct=... "
        "(for example an iterative solver on the projector)"
    )


def _check_sino(sino: Any, geometry: Any) -> np.ndarray:
    if is_torch(sino) and sino.requires_grad:
        raise NotDifferentiableError(
            "sino: metal artifact reduction is not differentiable (the trace is a hard "
            "decision); detach the tensor first"
        )
    arr = to_numpy(sino)
    check_dtype(arr, "sino")
    check_finite(arr, "sino")
    if arr.shape != tuple(geometry.proj_shape):
        raise ShapeError(
            f"sino: expected the geometry's projection shape {tuple(geometry.proj_shape)}, "
            f"got {arr.shape}"
        )
    return arr


def _check_volume(volume: Any, geometry: Any) -> _Volume:
    if not isinstance(volume, _Volume):
        raise GeometryError(f"volume: expected a VolumeGeometry, got {type(volume).__name__}")
    if not hasattr(geometry, "proj_shape"):
        raise GeometryError(f"geometry: expected a projection geometry, got {type(geometry)}")
    if geometry.ndim != volume.ndim:
        raise GeometryError(
            f"geometry and volume dimensions differ: {geometry.ndim}D geometry, "
            f"{volume.ndim}D volume {volume.shape}"
        )
    return volume


def _numpy(x: Any) -> np.ndarray:
    return np.asarray(to_numpy(x))


def _threshold_mu(hu: float, mu_water: float) -> float:
    return float(from_hu(float(hu), mu_water=mu_water))


# --------------------------------------------------------------------------- building blocks


def nmar_prior(
    image: Any,
    metal_mask: Any,
    *,
    air_threshold_hu: float = -500.0,
    bone_threshold_hu: float = 200.0,
    sigma_voxels: float = 1.0,
    mu_water: float = MU_WATER,
    tissue_value: float | None = None,
) -> np.ndarray:
    """NMAR's prior image: air, soft tissue and bone classes of a (pre-corrected) image.

    The image is smoothed (Gaussian, ``sigma_voxels``), then classified: below
    ``air_threshold_hu`` -> air (0), up to ``bone_threshold_hu`` -> soft tissue (one constant,
    ``tissue_value`` or ``mu_water``), above -> bone (its smoothed value kept). Metal voxels
    become soft tissue. The prior's forward projection carries the object's edges and bones, so
    dividing the sinogram by it leaves a flat signal that interpolates well.

    Parameters
    ----------
    image : ndarray of shape (ny, nx) or (nz, ny, nx)
        Attenuation in 1/mm (typically the LI-corrected image).
    metal_mask : ndarray of bool, the image's shape
    air_threshold_hu, bone_threshold_hu : float
        Class boundaries in HU. Meyer et al. find them by clustering; fixed values are used
        here. The bone boundary (200 HU) sits below cancellous bone (~250 HU), which fills the
        femoral heads and vertebrae where implants sit: classifying it as soft tissue would
        put a 250 HU error into the prior right next to the metal. Raise it for contrast-
        enhanced scans where vessels exceed 200 HU.
    sigma_voxels : float
        Smoothing before classification (0 turns it off).
    mu_water : float
        Water attenuation in 1/mm (HU scale and default tissue value).
    tissue_value : float, optional
        Soft tissue value in 1/mm (default ``mu_water``).

    Returns
    -------
    ndarray
        The prior in 1/mm, float64.

    Examples
    --------
    >>> img = np.array([[0.0, 0.0193, 0.04, 0.5]])
    >>> mask = np.array([[False, False, False, True]])
    >>> nmar_prior(img, mask, sigma_voxels=0).round(4).tolist()
    [[0.0, 0.0193, 0.04, 0.0193]]
    """
    arr = _numpy(image).astype(np.float64)
    check_finite(arr, "image")
    mask = _check_mask(metal_mask, arr.shape, "metal_mask")
    if not bone_threshold_hu > air_threshold_hu:
        raise ValueError(
            f"expected air_threshold_hu < bone_threshold_hu, got {air_threshold_hu} and "
            f"{bone_threshold_hu}"
        )
    if not sigma_voxels >= 0:
        raise ValueError(f"sigma_voxels: expected a value >= 0, got {sigma_voxels!r}")
    tissue = mu_water if tissue_value is None else float(tissue_value)
    work = arr.copy()
    work[mask] = tissue
    if sigma_voxels > 0:
        work = ndimage.gaussian_filter(work, sigma_voxels, mode="nearest")
    air = _threshold_mu(air_threshold_hu, mu_water)
    bone = _threshold_mu(bone_threshold_hu, mu_water)
    prior = np.where(work < air, 0.0, np.where(work <= bone, tissue, work))
    prior[mask] = tissue
    return prior


def normalized_interpolation(
    sino: Any, trace: Any, prior_sino: Any, *, eps: float | None = None
) -> np.ndarray:
    """NMAR's inpainting: divide by the prior's sinogram, interpolate, multiply back.

    Parameters
    ----------
    sino, prior_sino : ndarray of the same shape (..., n_det)
        Measured line integrals and the forward projection of the prior image.
    trace : ndarray of bool
        Samples to replace.
    eps : float, optional
        Floor of the divisor (default ``1e-3 * max(prior_sino)``), so rays that miss the
        object do not divide by zero.

    Returns
    -------
    ndarray
        Corrected sinogram of ``sino``'s dtype; samples outside the trace are unchanged.

    Examples
    --------
    >>> s = np.array([[2.0, 4.0, 99.0, 8.0]])
    >>> p = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> normalized_interpolation(s, np.array([[False, False, True, False]]), p).tolist()
    [[2.0, 4.0, 6.0, 8.0]]
    """
    arr = to_numpy(sino)
    check_dtype(arr, "sino")
    tr = _check_mask(trace, arr.shape, "trace")
    prior = _numpy(prior_sino).astype(np.float64)
    if prior.shape != arr.shape:
        raise ShapeError(f"prior_sino: expected shape {arr.shape}, got {prior.shape}")
    check_finite(prior, "prior_sino")
    floor = 1e-3 * max(float(prior.max()), 0.0) if eps is None else float(eps)
    if not floor > 0:
        floor = 1e-12
    denom = np.maximum(prior, floor)
    normed = arr.astype(np.float64) / denom
    filled = interpolate_trace(normed, tr) * denom
    out = np.where(tr, filled.astype(arr.dtype), arr)
    return out


def frequency_split(
    uncorrected: Any,
    corrected: Any,
    metal_mask: Any,
    *,
    sigma_voxels: float = 1.5,
    decay_voxels: float = 4.0,
) -> np.ndarray:
    """FSMAR-style frequency split (after Meyer et al., *Med. Phys.* 39(4), 2012), in the image.

    ``low(corrected) + w * high(uncorrected) + (1 - w) * high(corrected)`` with ``low`` a
    Gaussian of ``sigma_voxels``, ``high = image - low``, and ``w = exp(-d / decay_voxels)``
    falling with the distance ``d`` (voxels) from the metal. Close to the implant the sharp
    detail that inpainting blurs comes back from the uncorrected image; far from it the
    corrected image is kept as it is. The uncorrected image's metal voxels take the corrected
    image's values before the split, so that the metal's own edge does not pass into the high
    frequencies as a dark halo. Metal voxels keep the corrected image's values (the metal is
    reinserted afterwards).

    Examples
    --------
    >>> u = np.zeros((9, 9)); m = np.zeros((9, 9), bool); m[4, 4] = True
    >>> float(abs(frequency_split(u, u, m)).max())
    0.0
    """
    unc = _numpy(uncorrected).astype(np.float64)
    cor = _numpy(corrected).astype(np.float64)
    if unc.shape != cor.shape:
        raise ShapeError(f"corrected: expected shape {unc.shape}, got {cor.shape}")
    mask = _check_mask(metal_mask, unc.shape, "metal_mask")
    if not sigma_voxels > 0 or not decay_voxels > 0:
        raise ValueError(
            f"sigma_voxels and decay_voxels: expected values > 0, got {sigma_voxels!r} and "
            f"{decay_voxels!r}"
        )
    # the metal leaves the uncorrected image before the split: its edge (thousands of HU) would
    # otherwise be high frequency next to the metal and print a dark halo around it
    unc = np.where(mask, cor, unc)
    low_c = ndimage.gaussian_filter(cor, sigma_voxels, mode="nearest")
    low_u = ndimage.gaussian_filter(unc, sigma_voxels, mode="nearest")
    d = ndimage.distance_transform_edt(~mask) if mask.any() else np.full(unc.shape, np.inf)
    w = np.exp(-np.asarray(d) / decay_voxels)
    out = low_c + w * (unc - low_u) + (1.0 - w) * (cor - low_c)
    out[mask] = cor[mask]
    return out


# --------------------------------------------------------------------------- methods


def mar(
    sino: Any,
    geometry: Any,
    volume: _Volume,
    *,
    method: str | MARMethod = MARMethod.NMAR,
    metal_mask: Any = None,
    threshold_hu: float = DEFAULT_METAL_THRESHOLD_HU,
    margin: int = 1,
    det_margin: int = 1,
    reinsert_metal: bool = True,
    frequency_split_sigma: float | None = None,
    prior_options: Mapping[str, Any] | None = None,
    recon_options: Mapping[str, Any] | None = None,
    reconstruct: Reconstruct | None = None,
    mu_water: float = MU_WATER,
    backend: str = "cpu",
) -> MARResult:
    """Metal artifact reduction of a measured sinogram (the common entry point).

    Parameters
    ----------
    sino : ndarray or torch.Tensor of ``geometry.proj_shape``
        Post-log line integrals (beam-hardening precorrected, as scanners deliver them),
        float32 or float64; from medrecon or from anywhere else, given its geometry.
    geometry : ParallelBeam2D, FanBeam2D, ParallelBeam3D, ConeBeam3D, or any projection
        geometry together with ``reconstruct``.
    volume : VolumeGeometry
        Reconstruction grid (mm).
    method : {"nmar", "li"}
        Normalised MAR (default) or linear interpolation.
    metal_mask : ndarray of bool, ``volume.shape``, optional
        Metal voxels; segmented from the uncorrected image with ``threshold_hu`` if omitted.
    threshold_hu : float
        Metal threshold for the segmentation (HU).
    margin, det_margin : int
        Dilation of the mask (voxels) and of the trace (detector pixels); see
        :func:`~medrecon.ct.mar.metal_trace`.
    reinsert_metal : bool
        Put the uncorrected image's values back into the metal voxels (default True).
    frequency_split_sigma : float, optional
        Apply :func:`frequency_split` with this Gaussian width (voxels) after the correction.
    prior_options : mapping, optional
        Keyword arguments of :func:`nmar_prior` (thresholds, smoothing).
    recon_options : mapping, optional
        Keyword arguments of :func:`~medrecon.ct.fbp` / :func:`~medrecon.ct.fdk` (``filter``,
        ``cutoff``, ``short_scan``, ``oversample``).
    reconstruct : callable, optional
        ``reconstruct(sino) -> image`` replacing FBP/FDK (for geometries without an analytic
        reconstruction, or to use an iterative solver).
    mu_water : float
        Water attenuation (1/mm) defining the HU scale of the thresholds.
    backend : str
        Projector backend for the trace, the prior's projection and the reconstruction.

    Returns
    -------
    MARResult
        ``image`` and ``uncorrected`` in 1/mm, of ``sino``'s kind (numpy or torch) and dtype.

    Raises
    ------
    ShapeError
        ``sino`` does not have the geometry's projection shape, or the mask the volume's shape.
    GeometryError
        Geometry and volume dimensions differ, or no analytic reconstruction exists for the
        geometry and no ``reconstruct`` was given.
    MetalTraceError
        No metal found (empty mask or trace), or a trace covering whole detector lines.
    """
    meth = _parse_method(method)
    volume = _check_volume(volume, geometry)
    arr = _check_sino(sino, geometry)
    recon = _reconstructor(geometry, volume, reconstruct, recon_options, backend)
    A = Projector(geometry, volume, backend=backend)

    uncorrected = _numpy(recon(arr))
    if metal_mask is None:
        mask = segment_metal(uncorrected, threshold_hu=threshold_hu, mu_water=mu_water)
    else:
        mask = _check_mask(metal_mask, volume.shape, "metal_mask").copy()
    trace = metal_trace(mask, A, margin=margin, det_margin=det_margin)

    li_sino = interpolate_trace(arr, trace)
    prior = None
    if meth is MARMethod.LI:
        corrected_sino = li_sino
    else:
        li_image = _numpy(recon(li_sino))
        opts = dict(prior_options or {})
        opts.setdefault("mu_water", mu_water)
        prior = nmar_prior(li_image, mask, **opts)
        prior_sino = _numpy(A(prior.astype(arr.dtype)))
        corrected_sino = normalized_interpolation(arr, trace, prior_sino)

    image = _numpy(recon(corrected_sino)).astype(np.float64)
    label = meth.value
    if frequency_split_sigma is not None:
        image = frequency_split(uncorrected, image, mask, sigma_voxels=frequency_split_sigma)
        label += "+fs"
    if reinsert_metal:
        image[mask] = uncorrected[mask]
    dtype = arr.dtype
    return MARResult(
        image=like(image.astype(dtype), sino),
        uncorrected=like(uncorrected.astype(dtype), sino),
        sinogram=like(np.ascontiguousarray(corrected_sino, dtype=dtype), sino),
        metal_mask=mask,
        trace=trace,
        prior=None if prior is None else prior.astype(dtype),
        method=label,
        units="mu",
    )


def li_mar(sino: Any, geometry: Any, volume: _Volume, **kwargs: Any) -> MARResult:
    """Linear-interpolation MAR (LI-MAR): :func:`mar` with ``method="li"``.

    Each view's (each detector row's, in 3D) traced samples are replaced by the straight line
    between the untraced samples on either side of the trace. Simple and robust; it removes the
    metal's streaks but bends the data of any bone or edge crossing the trace, which leaves
    secondary streaks tangent to the metal.

    Examples
    --------
    >>> from medrecon import ParallelBeam2D, Projector, VolumeGeometry
    >>> vol = VolumeGeometry(shape=(64, 64), voxel_size=1.0)
    >>> geom = ParallelBeam2D(angles=np.linspace(0, np.pi, 90, endpoint=False), n_det=96)
    >>> yy, xx = np.mgrid[-32:32, -32:32] + 0.5
    >>> img = np.where(xx**2 + yy**2 < 28**2, 0.02, 0.0)
    >>> img[(xx - 8) ** 2 + yy**2 < 9] = 0.5       # a small metal rod
    >>> res = li_mar(Projector(geom, vol)(img), geom, vol)
    >>> int(res.metal_mask.sum()) > 0, bool(res.trace.any())
    (True, True)
    """
    if "method" in kwargs:
        raise TypeError("li_mar() got an unexpected keyword argument 'method'")
    return mar(sino, geometry, volume, method=MARMethod.LI, **kwargs)


def nmar(sino: Any, geometry: Any, volume: _Volume, **kwargs: Any) -> MARResult:
    """Normalised MAR (Meyer et al. 2010): :func:`mar` with ``method="nmar"``.

    The LI-corrected image is classified into air, soft tissue and bone
    (:func:`nmar_prior`); the sinogram is divided by the prior's forward projection, linearly
    interpolated across the trace, and multiplied back (:func:`normalized_interpolation`).
    Edges and bones that cross the trace are then carried through by the prior instead of being
    flattened, which avoids most of LI's secondary streaks. Pass
    ``frequency_split_sigma=...`` for the FSMAR-style frequency split.
    """
    if "method" in kwargs:
        raise TypeError("nmar() got an unexpected keyword argument 'method'")
    return mar(sino, geometry, volume, method=MARMethod.NMAR, **kwargs)


def mar_from_image(
    image_hu: Any,
    geometry: Any,
    volume: _Volume,
    *,
    method: str | MARMethod = MARMethod.NMAR,
    mu_water: float = MU_WATER,
    **kwargs: Any,
) -> MARResult:
    """MAR for an already reconstructed image (no raw data): reproject, correct, reconstruct.

    This is the weaker path, for PACS-side use when only DICOM images exist: the image is
    forward projected in a virtual scan (``geometry``), the metal trace is corrected in that
    synthetic sinogram, and the result is reconstructed. Because the synthetic sinogram is the
    projection of an image that already contains the streaks, the correction removes only what
    the streaks put into the trace and typically recovers less than :func:`mar` on measured data.
    Choose a virtual scan at least as finely sampled as the image (views >= ~1.5 x the image
    width, detector pixels no larger than a voxel) so the round trip itself does not blur.

    Parameters
    ----------
    image_hu : ndarray or torch.Tensor of ``volume.shape``
        Reconstructed image in HU.
    geometry : projection geometry of the virtual scan
    volume : VolumeGeometry
        Grid of ``image_hu`` (pixel spacing and position in mm).
    method : {"nmar", "li"}
    mu_water : float
        Water attenuation (1/mm) of the HU scale.
    **kwargs
        As for :func:`mar` (``metal_mask``, ``threshold_hu``, ``recon_options``, ...).

    Returns
    -------
    MARResult
        With ``units == "hu"``: ``image``, ``uncorrected`` (the round trip without correction)
        and ``prior`` in HU; ``sinogram`` is the corrected synthetic sinogram.
    """
    volume = _check_volume(volume, geometry)
    arr = to_numpy(image_hu)
    check_dtype(arr, "image_hu")
    check_finite(arr, "image_hu")
    if arr.shape != tuple(volume.shape):
        raise ShapeError(f"image_hu: expected the volume's shape {volume.shape}, got {arr.shape}")
    mu = np.asarray(from_hu(arr, mu_water=mu_water), dtype=arr.dtype)
    if kwargs.get("metal_mask") is None:
        kwargs["metal_mask"] = segment_metal(
            arr,
            threshold_hu=kwargs.pop("threshold_hu", DEFAULT_METAL_THRESHOLD_HU),
            units="hu",
        )
    backend = kwargs.get("backend", "cpu")
    sino = Projector(geometry, volume, backend=backend)(mu)
    res = mar(sino, geometry, volume, method=method, mu_water=mu_water, **kwargs)
    dtype = arr.dtype

    def hu(x: Any) -> Any:
        return (
            None
            if x is None
            else like(np.asarray(to_hu(_numpy(x), mu_water=mu_water), dtype=dtype), image_hu)
        )

    return dataclasses.replace(
        res,
        image=hu(res.image),
        uncorrected=hu(res.uncorrected),
        prior=None if res.prior is None else np.asarray(to_hu(res.prior, mu_water=mu_water)),
        sinogram=like(_numpy(res.sinogram), image_hu),
        units="hu",
    )
