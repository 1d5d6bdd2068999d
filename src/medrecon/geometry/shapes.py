"""Rasterise ellipses and ellipsoids given in mm onto a :class:`~medrecon.geometry.VolumeGeometry`.

Every phantom in :mod:`medrecon.ct.simulate` and :mod:`medrecon.mr.simulate` is a list of
ellipses (2D) or ellipsoids (3D) in physical coordinates (this module sits in the geometry layer
so that both can use it; :mod:`medrecon.ct.simulate.shapes` re-exports it).
:func:`ellipses` and :func:`ellipsoids` turn such a list into an image:
each voxel is split into ``oversample`` sub-samples per axis (``k x k`` in 2D, ``k x k x k`` in
3D) on a regular grid, the shapes are evaluated at the sub-sample positions, and the voxel value
is their mean. Values are therefore area (volume) weighted to within ``1 / k`` of a voxel at the
edges, and the image integrates to the phantom's integral as ``k`` grows.

Coordinates follow ``docs/conventions.md``: array-axis order ``(y, x)`` / ``(z, y, x)``, mm,
radians, the world frame right-handed. An ellipse with angle ``phi`` has its first body axis
(the one of ``semi_axis_x``) along ``(x, y) = (cos phi, sin phi)``: a positive angle turns +x
towards +y, which is clockwise on an axial slice displayed with rows (+y) downwards.

Shapes are combined in list order, either by adding their values (``combine="add"``, the
Shepp-Logan convention) or by painting over what earlier shapes left (``combine="replace"``);
with ``"replace"`` the painting happens per sub-sample, so partial-volume voxels come out right.

The work is vectorised over voxels and chunked along the first array axis; each shape is
evaluated only inside its axis-aligned bounding box.
"""

from __future__ import annotations

import enum
import math
import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from medrecon._array import SUPPORTED_DTYPES, check_finite
from medrecon._enum import parse_enum
from medrecon.errors import DtypeError, GeometryError, ShapeError
from medrecon.geometry.volume import VolumeGeometry

__all__ = [
    "ELLIPSE_COLUMNS",
    "ELLIPSOID_COLUMNS",
    "Combine",
    "ellipses",
    "ellipsoids",
]

#: column meaning of an ellipse parameter row (mm, radians, value in image units)
ELLIPSE_COLUMNS = ("value", "semi_axis_y", "semi_axis_x", "center_y", "center_x", "angle")
#: column meaning of an ellipsoid parameter row (mm, radians, value in image units)
ELLIPSOID_COLUMNS = (
    "value",
    "semi_axis_z",
    "semi_axis_y",
    "semi_axis_x",
    "center_z",
    "center_y",
    "center_x",
    "phi",
    "theta",
    "psi",
)

# sub-samples held in memory at once (float64): 2**22 = 32 MiB
_CHUNK_SUBSAMPLES = 1 << 22


class Combine(enum.StrEnum):
    """How a shape's value meets what earlier shapes left.

    ``ADD``: values add up (Shepp-Logan). ``REPLACE``: the shape paints its value over
    everything drawn before it (later shapes win).
    """

    ADD = "add"
    REPLACE = "replace"


def parse_combine(value: Any) -> Combine:
    """Return ``value`` as a :class:`Combine` (names are case-insensitive).

    Examples
    --------
    >>> parse_combine("Replace") is Combine.REPLACE
    True
    """
    return parse_enum(Combine, value, "combine")


# --------------------------------------------------------------------------- validation


def _check_params(params: Any, columns: tuple[str, ...], n_axes: int) -> np.ndarray:
    """``params`` as a float64 array of shape ``(n, len(columns))``, finite, semi-axes > 0."""
    try:
        arr = np.array(params, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"params: expected an array of real numbers, got {params!r}") from exc
    width = len(columns)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ShapeError(
            f"params: expected shape (n, {width}) with columns ({', '.join(columns)}), "
            f"got shape {arr.shape}"
        )
    check_finite(arr, "params")
    axes = arr[:, 1 : 1 + n_axes]
    if np.any(axes <= 0.0):
        row = int(np.nonzero(np.any(axes <= 0.0, axis=1))[0][0])
        raise ValueError(
            f"params: expected semi-axes > 0 mm, got {axes[row].tolist()} in row {row}"
        )
    return arr


# --------------------------------------------------------------------------- rotations


def _rot_z(a: float) -> np.ndarray:
    """Right-handed rotation about +z, as a matrix on (x, y, z) components."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_y(a: float) -> np.ndarray:
    """Right-handed rotation about +y, as a matrix on (x, y, z) components."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _frames_2d(arr: np.ndarray) -> np.ndarray:
    """Per ellipse, the matrix ``A`` (array-axis order) mapping the unit disc onto it."""
    out = np.empty((arr.shape[0], 2, 2))
    for i, (_, ay, ax, _, _, phi) in enumerate(arr):
        c, s = math.cos(phi), math.sin(phi)
        # columns: the body x axis (cos, sin) * ax and body y axis (-sin, cos) * ay,
        # written with (y, x) components and in (y-axis, x-axis) column order
        out[i] = np.array([[c * ay, s * ax], [-s * ay, c * ax]])
    return out


def _frames_3d(arr: np.ndarray) -> np.ndarray:
    """Per ellipsoid, the matrix ``A`` (array-axis order) mapping the unit ball onto it."""
    rev = np.eye(3)[::-1]  # (x, y, z) <-> (z, y, x)
    out = np.empty((arr.shape[0], 3, 3))
    for i, row in enumerate(arr):
        az, ay, ax = row[1:4]
        phi, theta, psi = row[7:10]
        rot = _rot_z(phi) @ _rot_y(theta) @ _rot_z(psi)
        a_xyz = rot @ np.diag([ax, ay, az])
        out[i] = rev @ a_xyz @ rev
    return out


# --------------------------------------------------------------------------- the rasteriser


def _subsample_coords(volume: VolumeGeometry, axis: int, k: int) -> np.ndarray:
    """Sub-sample positions (mm) along ``axis``, shape ``(n * k,)``.

    Index ``i * k + s`` is sub-sample ``s`` of voxel ``i``; sub-samples sit at the centres of a
    regular ``k``-split of each voxel.
    """
    n, d, c = volume.shape[axis], volume.voxel_size[axis], volume.center[axis]
    first_edge = c - 0.5 * n * d
    return first_edge + (np.arange(n * k) + 0.5) * (d / k)


def rasterise(
    volume: VolumeGeometry,
    values: np.ndarray,
    centers: np.ndarray,
    frames: np.ndarray,
    *,
    combine: Combine,
    oversample: int,
) -> np.ndarray:
    """Voxel means of a list of quadrics ``|A^-1 (p - c)| <= 1`` (float64, ``volume.shape``).

    ``values`` has shape ``(n,)``; ``centers`` ``(n, d)`` and ``frames`` (the matrices ``A``)
    ``(n, d, d)`` are in array-axis order and mm. Inputs are trusted (validated by callers).
    """
    d = volume.ndim
    k = oversample
    coords = [_subsample_coords(volume, a, k) for a in range(d)]
    inv = np.linalg.inv(frames) if len(frames) else frames
    half = np.linalg.norm(frames, axis=2) if len(frames) else np.zeros((0, d))
    # sub-sample index range [lo, hi) of each shape's bounding box along each axis
    lo = np.empty((len(values), d), dtype=np.int64)
    hi = np.empty((len(values), d), dtype=np.int64)
    for a in range(d):
        lo[:, a] = np.searchsorted(coords[a], centers[:, a] - half[:, a], side="left")
        hi[:, a] = np.searchsorted(coords[a], centers[:, a] + half[:, a], side="right")

    shape = volume.shape
    out = np.zeros(shape)
    per_row = k ** (d - 1) * math.prod(shape[1:]) * k
    rows_per_chunk = max(1, _CHUNK_SUBSAMPLES // per_row)
    sub_shape_rest = tuple(n * k for n in shape[1:])
    for r0 in range(0, shape[0], rows_per_chunk):
        r1 = min(shape[0], r0 + rows_per_chunk)
        s0, s1 = r0 * k, r1 * k
        acc = np.zeros((s1 - s0, *sub_shape_rest))
        for i in range(len(values)):
            b0, b1 = max(lo[i, 0], s0), min(hi[i, 0], s1)
            if b0 >= b1 or np.any(lo[i, 1:] >= hi[i, 1:]):
                continue
            ranges = [(b0, b1)] + [(int(lo[i, a]), int(hi[i, a])) for a in range(1, d)]
            # offsets from the centre along each axis, shaped to broadcast
            offsets = []
            for a, (u0, u1) in enumerate(ranges):
                view = [1] * d
                view[a] = u1 - u0
                offsets.append((coords[a][u0:u1] - centers[i, a]).reshape(view))
            r2 = np.zeros(tuple(u1 - u0 for u0, u1 in ranges))
            for j in range(d):
                q = sum(inv[i, j, a] * offsets[a] for a in range(d))
                r2 += q * q
            inside = r2 <= 1.0
            block = acc[(slice(b0 - s0, b1 - s0), *(slice(u0, u1) for u0, u1 in ranges[1:]))]
            if combine is Combine.ADD:
                block[inside] += values[i]
            else:
                block[inside] = values[i]
        split = [r1 - r0, k]
        for n in shape[1:]:
            split += [n, k]
        out[r0:r1] = acc.reshape(split).mean(axis=tuple(range(1, 2 * d, 2)))
    return out


# --------------------------------------------------------------------------- public API


def ellipses(
    volume: VolumeGeometry,
    params: npt.ArrayLike,
    *,
    combine: Combine | str = Combine.ADD,
    oversample: int = 4,
    dtype: npt.DTypeLike = np.float64,
) -> np.ndarray:
    """Rasterise ellipses given in mm onto a 2D grid, with sub-sample averaging.

    Parameters
    ----------
    volume : VolumeGeometry
        A 2D grid ``(ny, nx)``.
    params : array_like of shape (n, 6)
        One row per ellipse: ``(value, semi_axis_y, semi_axis_x, center_y, center_x, angle)``
        (:data:`ELLIPSE_COLUMNS`). Semi-axes (> 0) and centre in mm, angle in radians: the
        ``semi_axis_x`` axis points along ``(x, y) = (cos angle, sin angle)``, i.e. a
        positive angle turns +x towards +y (clockwise as displayed, rows downwards). At angle
        0 the semi-axes lie along y and x. ``value`` is in the image's unit (1/mm for
        attenuation). ``n = 0`` gives an image of zeros.
    combine : {"add", "replace"} or Combine, optional
        ``"add"`` sums overlapping values; ``"replace"`` lets later rows paint over earlier
        ones.
    oversample : int, optional
        Sub-samples per pixel along each axis (``k x k`` per pixel); 1 samples pixel centres.
    dtype : float32 or float64, optional
        Output dtype (the computation is float64).

    Returns
    -------
    ndarray of shape (ny, nx)
        The mean of the sub-sample values in each pixel.

    Raises
    ------
    GeometryError
        If ``volume`` is not 2D.
    ShapeError, NonFiniteError, ValueError
        If ``params`` is not ``(n, 6)``, not finite, or has a semi-axis <= 0.

    Examples
    --------
    A disc of radius 10 mm, value 1, on a 1 mm grid: its area comes out close to ``pi r^2``.

    >>> vol = VolumeGeometry(shape=(32, 32), voxel_size=1.0)
    >>> img = ellipses(vol, [[1.0, 10.0, 10.0, 0.0, 0.0, 0.0]], oversample=8)
    >>> round(float(img.sum()) / (np.pi * 100), 3)
    1.0
    """
    vol = check_volume(volume, (2,))
    arr = _check_params(params, ELLIPSE_COLUMNS, 2)
    mode = parse_combine(combine)
    k = check_oversample(oversample)
    dt = check_out_dtype(dtype)
    img = rasterise(vol, arr[:, 0], arr[:, 3:5], _frames_2d(arr), combine=mode, oversample=k)
    return img.astype(dt, copy=False)


def ellipsoids(
    volume: VolumeGeometry,
    params: npt.ArrayLike,
    *,
    combine: Combine | str = Combine.ADD,
    oversample: int = 2,
    dtype: npt.DTypeLike = np.float64,
) -> np.ndarray:
    """Rasterise ellipsoids given in mm onto a 3D grid, with sub-sample averaging.

    Parameters
    ----------
    volume : VolumeGeometry
        A 3D grid ``(nz, ny, nx)``.
    params : array_like of shape (n, 10)
        One row per ellipsoid (:data:`ELLIPSOID_COLUMNS`): ``(value, semi_axis_z,
        semi_axis_y, semi_axis_x, center_z, center_y, center_x, phi, theta, psi)``; lengths in
        mm, angles in radians. The ellipsoid is the unit ball scaled by the semi-axes along
        x, y, z and then rotated by ``R = Rz(phi) Ry(theta) Rz(psi)`` (z-y-z Euler angles,
        right-handed rotations about the world axes, applied right to left). With
        ``theta = psi = 0`` every axial slice is an ellipse with angle ``phi`` as in
        :func:`ellipses`.
    combine : {"add", "replace"} or Combine, optional
        ``"add"`` sums overlapping values; ``"replace"`` lets later rows paint over earlier
        ones.
    oversample : int, optional
        Sub-samples per voxel along each axis (``k^3`` per voxel).
    dtype : float32 or float64, optional
        Output dtype (the computation is float64).

    Returns
    -------
    ndarray of shape (nz, ny, nx)
        The mean of the sub-sample values in each voxel.

    Raises
    ------
    GeometryError
        If ``volume`` is not 3D.
    ShapeError, NonFiniteError, ValueError
        If ``params`` is not ``(n, 10)``, not finite, or has a semi-axis <= 0.

    Examples
    --------
    A ball of radius 6 mm on a 1 mm grid: its volume comes out close to ``4/3 pi r^3``.

    >>> vol = VolumeGeometry(shape=(16, 16, 16), voxel_size=1.0)
    >>> ball = [[1.0, 6.0, 6.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    >>> img = ellipsoids(vol, ball, oversample=4)
    >>> round(float(img.sum()) / (4 / 3 * np.pi * 6**3), 2)
    1.0
    """
    vol = check_volume(volume, (3,))
    arr = _check_params(params, ELLIPSOID_COLUMNS, 3)
    mode = parse_combine(combine)
    k = check_oversample(oversample)
    dt = check_out_dtype(dtype)
    img = rasterise(vol, arr[:, 0], arr[:, 4:7], _frames_3d(arr), combine=mode, oversample=k)
    return img.astype(dt, copy=False)


# argument checks shared with the phantom modules of ct.simulate and mr.simulate


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
