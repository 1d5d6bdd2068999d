"""Metal in the image, its trace in the sinogram, and interpolation across the trace.

The three steps every sinogram-domain MAR method shares:

1. :func:`segment_metal` - threshold a reconstructed image (in 1/mm or HU) and keep the metal.
2. :func:`metal_trace` - forward project the (slightly dilated) metal mask with the scan's
   projector; every ray with a positive path length through the mask is in the trace, and the
   trace is widened by ``margin`` detector pixels so that rays grazing a voxel corner are caught
   whatever the projector's interpolation model.
3. :func:`interpolate_trace` - replace the traced samples of every detector line (a view of a 2D
   sinogram, a detector row of a view in 3D) by linear interpolation between the nearest
   untraced samples on either side; at the detector's ends the nearest untraced value is held.

Samples outside the trace are returned bit for bit unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from medrecon._array import check_dtype, check_finite, to_numpy
from medrecon.ct.simulate.units import MU_WATER, from_hu
from medrecon.errors import DtypeError, MetalTraceError, ShapeError

__all__ = [
    "DEFAULT_METAL_THRESHOLD_HU",
    "dilate",
    "interpolate_trace",
    "metal_trace",
    "segment_metal",
]

#: Default metal threshold. Cortical bone reaches about 1,500-2,000 HU at 70 keV; titanium is
#: near 11,000 HU and steel far above, and even their beam-hardened, streaked reconstructions
#: stay well above 2,500 HU inside the implant.
DEFAULT_METAL_THRESHOLD_HU = 2500.0


def _check_image(image: Any, name: str) -> np.ndarray:
    arr = to_numpy(image)
    check_dtype(arr, name)
    check_finite(arr, name)
    if arr.ndim not in (2, 3):
        raise ShapeError(f"{name}: expected a 2D or 3D image, got shape {arr.shape}")
    return arr


def _check_mask(mask: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = to_numpy(mask)
    if arr.dtype != np.bool_:
        raise DtypeError(f"{name}: expected a boolean mask, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ShapeError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    return arr


def _check_margin(margin: Any, name: str = "margin") -> int:
    if isinstance(margin, bool) or not isinstance(margin, int | np.integer) or margin < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {margin!r}")
    return int(margin)


def dilate(mask: np.ndarray, margin: int) -> np.ndarray:
    """Grow a boolean mask by ``margin`` voxels (city-block steps of a cross element).

    Examples
    --------
    >>> m = np.zeros((5, 5), bool); m[2, 2] = True
    >>> int(dilate(m, 1).sum()), int(dilate(m, 2).sum())
    (5, 13)
    """
    margin = _check_margin(margin)
    if margin == 0:
        return mask.copy()
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    out: np.ndarray = ndimage.binary_dilation(mask, structure=structure, iterations=margin)
    return out


def segment_metal(
    image: Any,
    *,
    threshold_hu: float = DEFAULT_METAL_THRESHOLD_HU,
    units: str = "mu",
    mu_water: float = MU_WATER,
    min_voxels: int = 1,
) -> np.ndarray:
    """Metal voxels of a reconstructed image, by threshold.

    Parameters
    ----------
    image : ndarray or torch.Tensor of shape (ny, nx) or (nz, ny, nx)
        Reconstructed attenuation, in 1/mm (``units="mu"``) or HU (``units="hu"``).
    threshold_hu : float
        Voxels above this value (in HU, whatever ``units`` is) are metal.
    units : {"mu", "hu"}
        Units of ``image``.
    mu_water : float
        Attenuation of water in 1/mm used to turn ``threshold_hu`` into 1/mm.
    min_voxels : int
        Connected components (face connectivity) smaller than this are dropped, which removes
        isolated noise spikes above the threshold.

    Returns
    -------
    ndarray of bool, the image's shape
        The metal mask (no margin; :func:`metal_trace` adds one).

    Examples
    --------
    >>> img = np.zeros((8, 8)); img[3:5, 3:5] = 10000.0; img[0, 0] = 3000.0
    >>> int(segment_metal(img, units="hu").sum())
    5
    >>> int(segment_metal(img, units="hu", min_voxels=2).sum())
    4
    """
    arr = _check_image(image, "image")
    if units not in ("mu", "hu"):
        raise ValueError(f"units: expected 'mu' or 'hu', got {units!r}")
    if not np.isfinite(threshold_hu):
        raise ValueError(f"threshold_hu: expected a finite value, got {threshold_hu!r}")
    if isinstance(min_voxels, bool) or not isinstance(min_voxels, int) or min_voxels < 1:
        raise ValueError(f"min_voxels: expected an integer >= 1, got {min_voxels!r}")
    thr = threshold_hu if units == "hu" else float(from_hu(float(threshold_hu), mu_water=mu_water))
    mask: np.ndarray = arr > thr
    if min_voxels > 1 and mask.any():
        labels, n = ndimage.label(mask)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        keep = sizes >= min_voxels
        keep[0] = False
        mask = keep[labels]
    return mask


def metal_trace(
    metal_mask: Any,
    projector: Any,
    *,
    margin: int = 1,
    det_margin: int = 1,
) -> np.ndarray:
    """Rays of a scan that cross the metal: the metal trace.

    Parameters
    ----------
    metal_mask : ndarray or torch.Tensor of bool, ``projector.domain_shape``
        Metal voxels.
    projector : Projector or LinearOperator
        The scan's forward projector (non-negative weights, as every X-ray projector has).
    margin : int
        The mask is dilated by this many voxels before it is projected.
    det_margin : int
        The trace is then widened by this many detector pixels on each side, along the detector
        rows (the last axis).

    Returns
    -------
    ndarray of bool, ``projector.range_shape``
        True for rays whose path through the (dilated) metal is positive.

    Raises
    ------
    ShapeError, DtypeError
        The mask does not have the projector's volume shape, or is not boolean.
    MetalTraceError
        The mask is empty, or no ray crosses it (nothing to correct).
    """
    mask = _check_mask(metal_mask, tuple(projector.domain_shape), "metal_mask")
    margin = _check_margin(margin)
    det_margin = _check_margin(det_margin, "det_margin")
    if not mask.any():
        raise MetalTraceError("metal_mask is empty: no metal to correct")
    grown = dilate(mask, margin)
    lengths = to_numpy(projector(grown.astype(np.float32)))
    # a ray crossing a voxel gets at least ~1e-3 of a voxel's weight; float32 round-off of
    # zero-weight sums stays far below that
    trace: np.ndarray = lengths > 1e-6 * max(float(lengths.max()), 1e-30)
    if det_margin:
        shape = [1] * trace.ndim
        shape[-1] = 2 * det_margin + 1
        trace = ndimage.binary_dilation(trace, structure=np.ones(shape, bool))
    if not trace.any():
        raise MetalTraceError("no ray of this scan crosses the metal mask (empty metal trace)")
    return trace


def interpolate_trace(sino: Any, trace: Any) -> np.ndarray:
    """Linear interpolation across the trace, along every detector line.

    Parameters
    ----------
    sino : ndarray or torch.Tensor of shape (..., n_det)
        Sinogram or projections; every line along the last axis is treated on its own.
    trace : ndarray of bool, the shape of ``sino``
        Samples to replace.

    Returns
    -------
    ndarray
        A new array of ``sino``'s dtype: untraced samples copied unchanged, traced samples
        interpolated linearly between the nearest untraced neighbours on the same line (held
        constant beyond the last untraced one at a detector edge).

    Raises
    ------
    MetalTraceError
        A detector line is traced from end to end (nothing to interpolate from).

    Examples
    --------
    >>> s = np.array([[0.0, 1.0, 9.0, 9.0, 4.0, 5.0]])
    >>> t = np.array([[False, False, True, True, False, False]])
    >>> interpolate_trace(s, t).tolist()
    [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]
    """
    arr = to_numpy(sino)
    check_dtype(arr, "sino")
    tr = _check_mask(trace, arr.shape, "trace")
    if arr.ndim < 1 or arr.shape[-1] < 2:
        raise ShapeError(f"sino: expected at least 2 detector pixels, got shape {arr.shape}")
    n = arr.shape[-1]
    lines = arr.reshape(-1, n)
    t = tr.reshape(-1, n)
    full = t.all(axis=1)
    if full.any():
        bad = int(np.flatnonzero(full)[0])
        raise MetalTraceError(
            f"the metal trace covers a whole detector line ({int(full.sum())} lines, the first "
            f"is line {bad} of {lines.shape[0]}): nothing to interpolate from"
        )
    out = lines.copy()
    rows = np.flatnonzero(t.any(axis=1))
    if rows.size == 0:
        return out.reshape(arr.shape)
    sub = lines[rows].astype(np.float64)
    ts = t[rows]
    idx = np.broadcast_to(np.arange(n), ts.shape)
    known = ~ts
    # index of the nearest known sample to the left / right (-1 / n when there is none)
    left = np.maximum.accumulate(np.where(known, idx, -1), axis=1)
    right = np.minimum.accumulate(np.where(known, idx, n)[:, ::-1], axis=1)[:, ::-1]
    has_left = left >= 0
    has_right = right < n
    li = np.clip(left, 0, n - 1)
    ri = np.clip(right, 0, n - 1)
    vl = np.take_along_axis(sub, li, axis=1)
    vr = np.take_along_axis(sub, ri, axis=1)
    width = np.maximum(right - left, 1)
    w = np.where(has_left & has_right, (idx - left) / width, 0.0)
    vals = np.where(has_left & has_right, (1.0 - w) * vl + w * vr, np.where(has_left, vl, vr))
    filled = np.where(ts, vals, sub)
    out[rows] = filled.astype(arr.dtype)
    # untraced samples must be bit-exact copies, whatever the float64 round trip did
    out[rows] = np.where(ts, out[rows], lines[rows])
    return out.reshape(arr.shape)
