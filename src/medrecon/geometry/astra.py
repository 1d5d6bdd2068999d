"""Conversion to and from ASTRA Toolbox geometries (every ASTRA axis flip lives here).

The dicts built here have the layout of ``astra.create_proj_geom`` and
``astra.create_vol_geom``, so this module works without ASTRA installed.

How the frames relate (see ``docs/conventions.md`` for the derivation):

* **2D.** ASTRA's 2D image rows run along -y (pixel row ``r`` lies at
  ``y = WindowMaxY - (r + 1/2) * pixel_height``), ours along +y. On the same
  image array, ASTRA ``(x, y)`` = medrecon ``(x, -y)``: vectors are written as
  ``(x, -y)`` and the y window is mirrored. ASTRA ``'parallel'`` at angle
  ``theta`` is exactly our :class:`ParallelBeam2D` at ``-theta``; ASTRA
  ``'fanflat'`` is a mirrored fan with no circular equivalent here, so it
  becomes a :class:`FanBeamVec`.
* **3D.** No flip: ASTRA's CUDA kernels put voxel ``(slice, row, col)`` at
  ``WindowMin + (index + 1/2) * voxel_size`` on every axis, so only the
  component order changes, ``(z, y, x)`` <-> ``(x, y, z)``. ASTRA
  ``'parallel3d'`` and ``'cone'`` at angle ``theta`` equal our
  :class:`ParallelBeam3D` / :class:`ConeBeam3D` at ``theta``.
* **Data.** 2D sinograms are ``(views, det)`` in both; ASTRA 3D projection
  data is ``(rows, views, cols)``, ours ``(views, rows, cols)``: use
  :func:`proj_to_astra` / :func:`proj_from_astra`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, cast

import numpy as np

from medrecon._array import split_batch
from medrecon.errors import GeometryError
from medrecon.geometry._base import DetectorShape, ProjectionGeometry, check_int
from medrecon.geometry.circular import ConeBeam3D, ParallelBeam2D, ParallelBeam3D
from medrecon.geometry.vectors import ConeBeamVec, FanBeamVec, ParallelVec
from medrecon.geometry.volume import VolumeGeometry

__all__ = [
    "from_astra",
    "proj_from_astra",
    "proj_to_astra",
    "to_astra",
    "volume_from_astra",
    "volume_to_astra",
]

_AXES_2D = ("Y", "X")  # our array axes (y, x) <-> ASTRA Grid{Row,Col}Count
_AXES_3D = ("Z", "Y", "X")
_COUNT_KEYS = {"X": "GridColCount", "Y": "GridRowCount", "Z": "GridSliceCount"}


# --------------------------------------------------------------------------
# component order and flips
# --------------------------------------------------------------------------


def _vec_to_astra(v: np.ndarray) -> np.ndarray:
    """medrecon ``(y, x)`` -> ASTRA 2D ``(x, -y)``; ``(z, y, x)`` -> ``(x, y, z)``."""
    if v.shape[1] == 2:
        return np.stack([v[:, 1], -v[:, 0]], axis=1)
    return np.asarray(v[:, ::-1])


def _vec_from_astra(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_vec_to_astra`."""
    if v.shape[1] == 2:
        return np.stack([-v[:, 1], v[:, 0]], axis=1)
    return np.asarray(v[:, ::-1])


# --------------------------------------------------------------------------
# volumes
# --------------------------------------------------------------------------


def volume_to_astra(volume: VolumeGeometry) -> dict[str, Any]:
    """ASTRA ``vol_geom`` dict for ``volume``, windows in mm.

    In 2D the y window is mirrored (``WindowMinY = -center_y - size_y / 2``)
    because ASTRA's 2D rows run along -y.
    """
    if not isinstance(volume, VolumeGeometry):
        raise TypeError(f"volume: expected a VolumeGeometry, got {type(volume).__name__}")
    axes = _AXES_2D if volume.ndim == 2 else _AXES_3D
    option: dict[str, float] = {}
    for name in ("X", "Y", "Z"):
        if name not in axes:
            continue
        a = axes.index(name)
        lo, hi = volume.extent[a]
        if name == "Y" and volume.ndim == 2:
            lo, hi = -hi, -lo
        option[f"WindowMin{name}"] = float(lo)
        option[f"WindowMax{name}"] = float(hi)
    out: dict[str, Any] = {"option": option}
    out["GridRowCount"] = volume.shape[axes.index("Y")]
    out["GridColCount"] = volume.shape[axes.index("X")]
    if volume.ndim == 3:
        out["GridSliceCount"] = volume.shape[0]
    return out


def _astra_int(d: Mapping[str, Any], key: str, where: str) -> int:
    if key not in d:
        raise GeometryError(f"{where}: expected the key {key!r}, it is missing")
    value = d[key]
    real_not_int = isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
    if real_not_int and float(value).is_integer():
        value = int(value)
    return check_int(f"{where}[{key!r}]", value)


def _astra_float(d: Mapping[str, Any], key: str, where: str) -> float:
    if key not in d:
        raise GeometryError(f"{where}: expected the key {key!r}, it is missing")
    try:
        out = float(d[key])
    except (TypeError, ValueError) as exc:
        raise GeometryError(f"{where}[{key!r}]: expected a number, got {d[key]!r}") from exc
    if not np.isfinite(out):
        raise GeometryError(f"{where}[{key!r}]: expected a finite number, got {out}")
    return out


def volume_from_astra(vol_geom: Mapping[str, Any]) -> VolumeGeometry:
    """:class:`VolumeGeometry` for an ASTRA ``vol_geom`` dict (2D or 3D).

    Missing windows take ASTRA's defaults (``-n/2 .. n/2``, unit voxels).
    """
    if not isinstance(vol_geom, Mapping):
        raise GeometryError(f"vol_geom: expected a dict, got {type(vol_geom).__name__}")
    ndim = 3 if "GridSliceCount" in vol_geom else 2
    axes = _AXES_2D if ndim == 2 else _AXES_3D
    option = vol_geom.get("option") or {}
    shape, voxel, center = [], [], []
    for name in axes:
        n = _astra_int(vol_geom, _COUNT_KEYS[name], "vol_geom")
        lo_key, hi_key = f"WindowMin{name}", f"WindowMax{name}"
        if lo_key in option or hi_key in option:
            lo = _astra_float(option, lo_key, "vol_geom['option']")
            hi = _astra_float(option, hi_key, "vol_geom['option']")
        else:
            lo, hi = -0.5 * n, 0.5 * n
        if not hi > lo:
            raise GeometryError(
                f"vol_geom: expected {hi_key} > {lo_key}, got {hi_key}={hi}, {lo_key}={lo}"
            )
        c = 0.5 * (lo + hi)
        shape.append(n)
        voxel.append((hi - lo) / n)
        center.append(-c if (name == "Y" and ndim == 2) else c)
    return VolumeGeometry(shape=tuple(shape), voxel_size=tuple(voxel), center=tuple(center))


# --------------------------------------------------------------------------
# projection geometries
# --------------------------------------------------------------------------


def to_astra(
    geometry: ProjectionGeometry, volume: VolumeGeometry
) -> tuple[dict[str, Any], dict[str, Any]]:
    """ASTRA ``(proj_geom, vol_geom)`` dicts for a medrecon geometry and volume.

    Always uses ASTRA's vector forms (``parallel_vec``, ``fanflat_vec``,
    ``parallel3d_vec``, ``cone_vec``) with lengths in mm.

    Raises
    ------
    GeometryError
        If the dimensions differ, or for an arc fan detector (ASTRA has none).

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.geometry import ParallelBeam2D, VolumeGeometry
    >>> proj, vol = to_astra(ParallelBeam2D(angles=[0.0], n_det=4), VolumeGeometry(shape=(2, 2)))
    >>> proj["type"], proj["Vectors"].shape
    ('parallel_vec', (1, 6))
    """
    if not isinstance(geometry, ProjectionGeometry):
        raise TypeError(
            f"geometry: expected a medrecon projection geometry, got {type(geometry).__name__}"
        )
    vol_geom = volume_to_astra(volume)
    if geometry.ndim != volume.ndim:
        raise GeometryError(
            f"volume: expected a {geometry.ndim}D volume for a {geometry.ndim}D geometry, "
            f"got a {volume.ndim}D volume of shape {volume.shape}"
        )
    vec = geometry.to_vectors()
    proj: dict[str, Any]
    if isinstance(vec, FanBeamVec):
        if vec.detector is not DetectorShape.FLAT:
            raise GeometryError(
                "detector: ASTRA has no arc (curved) fan-beam detector; expected "
                f"detector='flat', got {vec.detector.value!r}"
            )
        parts = [vec.sources, vec.det_centers, vec.det_u]
        proj = {"type": "fanflat_vec", "DetectorCount": vec.n_det}
    elif isinstance(vec, ParallelVec) and vec.ndim == 2:
        parts = [vec.ray_dirs, vec.det_centers, vec.det_u]
        proj = {"type": "parallel_vec", "DetectorCount": vec.det_shape[0]}
    elif isinstance(vec, ParallelVec):
        # a 3D ParallelVec always has det_v
        parts = [vec.ray_dirs, vec.det_centers, vec.det_u, cast(np.ndarray, vec.det_v)]
        proj = {"type": "parallel3d_vec"}
    elif isinstance(vec, ConeBeamVec):
        parts = [vec.sources, vec.det_centers, vec.det_u, vec.det_v]
        proj = {"type": "cone_vec"}
    else:
        raise TypeError(f"geometry: no ASTRA form for {type(vec).__name__}")
    if vec.ndim == 3:
        proj["DetectorRowCount"], proj["DetectorColCount"] = vec.det_shape
    proj["Vectors"] = np.concatenate([_vec_to_astra(p) for p in parts], axis=1)
    return proj, vol_geom


def _split_vectors(proj_geom: Mapping[str, Any], width: int) -> list[np.ndarray]:
    kind = proj_geom["type"]
    if "Vectors" not in proj_geom:
        raise GeometryError(f"proj_geom: expected the key 'Vectors' for {kind!r}, it is missing")
    try:
        vectors = np.array(proj_geom["Vectors"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GeometryError(f"proj_geom['Vectors']: expected a numeric array for {kind!r}") from exc
    if vectors.ndim != 2 or vectors.shape[1] != width:
        raise GeometryError(
            f"proj_geom['Vectors']: expected shape (n_views, {width}) for {kind!r}, "
            f"got {vectors.shape}"
        )
    step = width // (4 if width == 12 else 3)
    return [_vec_from_astra(vectors[:, i : i + step]) for i in range(0, width, step)]


def _astra_angles(proj_geom: Mapping[str, Any]) -> np.ndarray:
    if "ProjectionAngles" not in proj_geom:
        raise GeometryError("proj_geom: expected the key 'ProjectionAngles', it is missing")
    try:
        return np.array(proj_geom["ProjectionAngles"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise GeometryError("proj_geom['ProjectionAngles']: expected numbers") from exc


def _det_shape_3d(proj_geom: Mapping[str, Any]) -> tuple[int, int]:
    return (
        _astra_int(proj_geom, "DetectorRowCount", "proj_geom"),
        _astra_int(proj_geom, "DetectorColCount", "proj_geom"),
    )


def _fanflat_to_vec(proj_geom: Mapping[str, Any]) -> FanBeamVec:
    """ASTRA 'fanflat' (ASTRA's own circular formulas), written in our frame."""
    theta = _astra_angles(proj_geom)
    width = _astra_float(proj_geom, "DetectorWidth", "proj_geom")
    r_src = _astra_float(proj_geom, "DistanceOriginSource", "proj_geom")
    r_det = _astra_float(proj_geom, "DistanceOriginDetector", "proj_geom")
    s, c = np.sin(theta), np.cos(theta)
    # ASTRA (x, y): source r_src*(s, -c), detector r_det*(-s, c), u width*(c, s)
    astra_vectors = np.stack(
        [r_src * s, -r_src * c, -r_det * s, r_det * c, width * c, width * s], axis=1
    )
    src, det, u = (_vec_from_astra(astra_vectors[:, i : i + 2]) for i in (0, 2, 4))
    return FanBeamVec(
        sources=src,
        det_centers=det,
        det_u=u,
        n_det=_astra_int(proj_geom, "DetectorCount", "proj_geom"),
    )


_NDIM = {
    "parallel": 2,
    "parallel_vec": 2,
    "fanflat": 2,
    "fanflat_vec": 2,
    "parallel3d": 3,
    "parallel3d_vec": 3,
    "cone": 3,
    "cone_vec": 3,
}


def from_astra(
    proj_geom: Mapping[str, Any], vol_geom: Mapping[str, Any]
) -> tuple[ProjectionGeometry, VolumeGeometry]:
    """medrecon ``(geometry, volume)`` for ASTRA ``proj_geom`` and ``vol_geom`` dicts.

    Returns the most specific exact equivalent: ``'parallel'`` ->
    :class:`ParallelBeam2D` (angles negated), ``'parallel3d'`` ->
    :class:`ParallelBeam3D`, ``'cone'`` -> :class:`ConeBeam3D`,
    ``'fanflat'`` -> :class:`FanBeamVec`, and each ``*_vec`` type -> the
    matching vector class. ``from_astra(*to_astra(g, v))`` gives back
    ``(g.to_vectors(), v)``.
    """
    if not isinstance(proj_geom, Mapping) or "type" not in proj_geom:
        raise GeometryError("proj_geom: expected an ASTRA projection geometry dict with a 'type'")
    kind = proj_geom["type"]
    if kind not in _NDIM:
        raise GeometryError(
            f"proj_geom['type']: expected one of {', '.join(map(repr, _NDIM))}, got {kind!r}"
        )
    if proj_geom.get("option"):
        raise GeometryError(
            f"proj_geom['option']: expected no options, got {sorted(proj_geom['option'])}; "
            "convert with astra.geom_postalignment or to a *_vec geometry first"
        )
    volume = volume_from_astra(vol_geom)
    if volume.ndim != _NDIM[kind]:
        raise GeometryError(
            f"vol_geom: expected a {_NDIM[kind]}D volume for {kind!r}, got {volume.ndim}D"
        )
    geometry: ProjectionGeometry
    if kind == "parallel":
        geometry = ParallelBeam2D(
            angles=-_astra_angles(proj_geom),
            n_det=_astra_int(proj_geom, "DetectorCount", "proj_geom"),
            det_spacing=_astra_float(proj_geom, "DetectorWidth", "proj_geom"),
        )
    elif kind == "fanflat":
        geometry = _fanflat_to_vec(proj_geom)
    elif kind == "parallel3d":
        geometry = ParallelBeam3D(
            angles=_astra_angles(proj_geom),
            det_shape=_det_shape_3d(proj_geom),
            det_spacing=(
                _astra_float(proj_geom, "DetectorSpacingY", "proj_geom"),
                _astra_float(proj_geom, "DetectorSpacingX", "proj_geom"),
            ),
        )
    elif kind == "cone":
        geometry = ConeBeam3D(
            angles=_astra_angles(proj_geom),
            det_shape=_det_shape_3d(proj_geom),
            det_spacing=(
                _astra_float(proj_geom, "DetectorSpacingY", "proj_geom"),
                _astra_float(proj_geom, "DetectorSpacingX", "proj_geom"),
            ),
            src_iso=_astra_float(proj_geom, "DistanceOriginSource", "proj_geom"),
            iso_det=_astra_float(proj_geom, "DistanceOriginDetector", "proj_geom"),
        )
    elif kind == "parallel_vec":
        ray, det, u = _split_vectors(proj_geom, 6)
        n_det = _astra_int(proj_geom, "DetectorCount", "proj_geom")
        geometry = ParallelVec(ray_dirs=ray, det_centers=det, det_u=u, det_shape=(n_det,))
    elif kind == "fanflat_vec":
        src, det, u = _split_vectors(proj_geom, 6)
        n_det = _astra_int(proj_geom, "DetectorCount", "proj_geom")
        geometry = FanBeamVec(sources=src, det_centers=det, det_u=u, n_det=n_det)
    elif kind == "parallel3d_vec":
        ray, det, u, v = _split_vectors(proj_geom, 12)
        geometry = ParallelVec(
            ray_dirs=ray, det_centers=det, det_u=u, det_v=v, det_shape=_det_shape_3d(proj_geom)
        )
    else:  # cone_vec
        src, det, u, v = _split_vectors(proj_geom, 12)
        geometry = ConeBeamVec(
            sources=src, det_centers=det, det_u=u, det_v=v, det_shape=_det_shape_3d(proj_geom)
        )
    return geometry, volume


# --------------------------------------------------------------------------
# data layout
# --------------------------------------------------------------------------


def proj_to_astra(data: Any, geometry: ProjectionGeometry) -> np.ndarray:
    """Reorder projections ``(..., views, *det_shape)`` into ASTRA's layout.

    2D: unchanged ``(..., views, det)``. 3D: ``(..., rows, views, cols)``.
    Returns a C-contiguous numpy array (dtype unchanged).
    """
    arr = np.asarray(data)
    split_batch(arr.shape, geometry.proj_shape, "projections")
    if geometry.ndim == 3:
        arr = np.swapaxes(arr, -3, -2)
    return np.ascontiguousarray(arr)


def proj_from_astra(data: Any, geometry: ProjectionGeometry) -> np.ndarray:
    """Inverse of :func:`proj_to_astra`: ASTRA layout -> ``(..., views, *det_shape)``."""
    arr = np.asarray(data)
    if geometry.ndim == 3:
        n_rows, n_cols = geometry.det_shape
        split_batch(arr.shape, (n_rows, geometry.n_views, n_cols), "ASTRA projections")
        arr = np.swapaxes(arr, -3, -2)
    else:
        split_batch(arr.shape, geometry.proj_shape, "ASTRA sinogram")
    return np.ascontiguousarray(arr)
