"""Circular (single rotation axis) projection geometries.

The rotation axis is the world z axis; at angle ``theta`` (radians), in
physical ``(x, y, z)`` components:

* source            ``src_iso * (sin t, -cos t, 0)``
* detector centre   ``iso_det * (-sin t, cos t, 0) + det_offset_u * u_hat + det_offset_v * v_hat``
* detector u        ``det_spacing_col * (cos t, sin t, 0)`` (column index grows along u)
* detector v        ``det_spacing_row * (0, 0, 1)`` (row index grows along +z; 3D only)
* parallel rays     ``(-sin t, cos t, 0)``, detector centre at the offsets only.

:meth:`to_vectors` stores these in array-axis order, ``(y, x)`` or
``(z, y, x)``. See ``docs/conventions.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medrecon.geometry._base import (
    DetectorShape,
    FloatsLike,
    IntsLike,
    ProjectionGeometry,
    check_angles,
    check_detector_shape,
    check_float,
    check_int,
    check_per_axis,
    check_shape,
)
from medrecon.geometry.vectors import ConeBeamVec, FanBeamVec, ParallelVec

__all__ = ["ConeBeam3D", "FanBeam2D", "ParallelBeam2D", "ParallelBeam3D"]


def _trig(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.sin(angles), np.cos(angles)


def _stack(n: int, *components: Any) -> np.ndarray:
    """Stack per-view components (arrays or scalars) into shape ``(n, len(components))``."""
    return np.stack([np.broadcast_to(np.asarray(c, dtype=np.float64), (n,)) for c in components], 1)


def _yx(y: Any, x: Any, n: int) -> np.ndarray:
    return _stack(n, y, x)


def _zyx(z: Any, y: Any, x: Any, n: int) -> np.ndarray:
    return _stack(n, z, y, x)


class _Circular(ProjectionGeometry):
    __slots__ = ()
    _per_view = ("angles",)
    _angles: np.ndarray

    @property
    def angles(self) -> np.ndarray:
        """Rotation angle of each view (radians), read-only, shape ``(n_views,)``."""
        return self._angles


class _Divergent(_Circular):
    """Source and detector distances shared by the fan- and cone-beam geometries."""

    __slots__ = ()
    _src_iso: float
    _iso_det: float

    def _set_distances(self, src_iso: float, iso_det: float) -> None:
        self._set("src_iso", check_float("src_iso", src_iso, positive=True, unit="mm"))
        self._set("iso_det", check_float("iso_det", iso_det, positive=True, unit="mm"))

    @property
    def src_iso(self) -> float:
        """Source to rotation axis distance (mm)."""
        return self._src_iso

    @property
    def iso_det(self) -> float:
        """Rotation axis to detector distance (mm)."""
        return self._iso_det

    @property
    def src_det(self) -> float:
        """Source to detector distance, ``src_iso + iso_det`` (mm)."""
        return self._src_iso + self._iso_det


class _Detector3D(_Circular):
    """The flat ``(row, col)`` detector shared by the 3D circular geometries."""

    __slots__ = ()
    _det_shape: tuple[int, int]
    _det_spacing: tuple[float, float]
    _det_offset_u: float
    _det_offset_v: float

    def _set_detector(
        self, det_shape: IntsLike, det_spacing: FloatsLike, det_offset_u: float, det_offset_v: float
    ) -> None:
        self._set("det_shape", check_shape("det_shape", det_shape, (2,)))
        self._set(
            "det_spacing", check_per_axis("det_spacing", det_spacing, 2, positive=True, unit="mm")
        )
        self._set("det_offset_u", check_float("det_offset_u", det_offset_u, unit="mm"))
        self._set("det_offset_v", check_float("det_offset_v", det_offset_v, unit="mm"))

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions: 3."""
        return 3

    @property
    def det_shape(self) -> tuple[int, ...]:
        """``(n_rows, n_cols)``."""
        return self._det_shape

    @property
    def det_spacing(self) -> tuple[float, float]:
        """Pixel pitch ``(row, col)`` (mm)."""
        return self._det_spacing

    @property
    def det_offset_u(self) -> float:
        """Detector shift along u (mm)."""
        return self._det_offset_u

    @property
    def det_offset_v(self) -> float:
        """Detector shift along v, i.e. +z (mm)."""
        return self._det_offset_v

    def _frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per view: ``sin``, ``cos``, unit u, unit v and the offset of the detector centre."""
        s, c = _trig(self._angles)
        n = s.size
        u_hat = _zyx(0.0, s, c, n)
        v_hat = _zyx(1.0, 0.0, 0.0, n)
        offset = self._det_offset_u * u_hat + self._det_offset_v * v_hat
        return s, c, u_hat, v_hat, offset


class ParallelBeam2D(_Circular):
    """2D parallel-beam geometry rotating about the origin.

    Parameters
    ----------
    angles : array_like of shape (n_views,)
        Rotation angles in radians. At ``theta = 0`` rays run along +y and
        the detector axis u points along +x; ``theta`` turns +y towards -x.
    n_det : int
        Number of detector elements.
    det_spacing : float, optional
        Distance between detector element centres (mm).
    det_offset_u : float, optional
        Shift of the detector centre along u (mm).

    Examples
    --------
    >>> import numpy as np
    >>> g = ParallelBeam2D(angles=np.linspace(0, np.pi, 4, endpoint=False), n_det=8)
    >>> g.proj_shape
    (4, 8)
    >>> g[1:3].angles.round(4).tolist()
    [0.7854, 1.5708]
    """

    __slots__ = ("_angles", "_det_offset_u", "_det_spacing", "_n_det")
    _params = ("angles", "n_det", "det_spacing", "det_offset_u")
    _n_det: int
    _det_spacing: float
    _det_offset_u: float

    def __init__(
        self,
        *,
        angles: Any,
        n_det: int,
        det_spacing: float = 1.0,
        det_offset_u: float = 0.0,
    ) -> None:
        self._set("angles", check_angles(angles))
        self._set("n_det", check_int("n_det", n_det))
        self._set("det_spacing", check_float("det_spacing", det_spacing, positive=True, unit="mm"))
        self._set("det_offset_u", check_float("det_offset_u", det_offset_u, unit="mm"))

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions: 2."""
        return 2

    @property
    def n_det(self) -> int:
        """Number of detector elements."""
        return self._n_det

    @property
    def det_shape(self) -> tuple[int, ...]:
        """``(n_det,)``."""
        return (self._n_det,)

    @property
    def det_spacing(self) -> float:
        """Detector element pitch (mm)."""
        return self._det_spacing

    @property
    def det_offset_u(self) -> float:
        """Detector shift along u (mm)."""
        return self._det_offset_u

    def to_vectors(self) -> ParallelVec:
        """The equivalent :class:`ParallelVec`."""
        s, c = _trig(self._angles)
        n = s.size
        u_hat = _yx(s, c, n)
        return ParallelVec(
            ray_dirs=_yx(c, -s, n),
            det_centers=self._det_offset_u * u_hat,
            det_u=self._det_spacing * u_hat,
            det_shape=(self._n_det,),
        )


class FanBeam2D(_Divergent):
    """2D fan-beam geometry with a point source on a circle.

    Parameters
    ----------
    angles : array_like of shape (n_views,)
        Rotation angles in radians. At ``theta = 0`` the source is at
        ``(y, x) = (-src_iso, 0)`` and the detector at ``y = +iso_det``.
    n_det : int
        Number of detector elements.
    det_spacing : float
        Element pitch (mm): distance along the line for a flat detector, arc
        length at radius ``src_iso + iso_det`` for an arc detector.
    src_iso : float
        Distance source to rotation centre (mm).
    iso_det : float
        Distance rotation centre to detector centre (mm).
    detector : {"flat", "arc"} or DetectorShape, optional
        Flat detector line, or a circular arc centred on the source.
    det_offset_u : float, optional
        Shift of the detector centre along u (mm). For an arc detector this is
        an arc length: the detector turns about the source by
        ``det_offset_u / (src_iso + iso_det)`` radians.
    """

    __slots__ = (
        "_angles",
        "_det_offset_u",
        "_det_spacing",
        "_detector",
        "_iso_det",
        "_n_det",
        "_src_iso",
    )
    _params = ("angles", "n_det", "det_spacing", "src_iso", "iso_det", "detector", "det_offset_u")
    _n_det: int
    _det_spacing: float
    _src_iso: float
    _iso_det: float
    _detector: DetectorShape
    _det_offset_u: float

    def __init__(
        self,
        *,
        angles: Any,
        n_det: int,
        det_spacing: float,
        src_iso: float,
        iso_det: float,
        detector: str | DetectorShape = DetectorShape.FLAT,
        det_offset_u: float = 0.0,
    ) -> None:
        self._set("angles", check_angles(angles))
        self._set("n_det", check_int("n_det", n_det))
        self._set("det_spacing", check_float("det_spacing", det_spacing, positive=True, unit="mm"))
        self._set_distances(src_iso, iso_det)
        self._set("detector", check_detector_shape(detector))
        self._set("det_offset_u", check_float("det_offset_u", det_offset_u, unit="mm"))

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions: 2."""
        return 2

    @property
    def n_det(self) -> int:
        """Number of detector elements."""
        return self._n_det

    @property
    def det_shape(self) -> tuple[int, ...]:
        """``(n_det,)``."""
        return (self._n_det,)

    @property
    def det_spacing(self) -> float:
        """Detector element pitch (mm; arc length for an arc detector)."""
        return self._det_spacing

    @property
    def detector(self) -> DetectorShape:
        """Detector shape, flat or arc."""
        return self._detector

    @property
    def det_offset_u(self) -> float:
        """Detector shift along u (mm; arc length for an arc detector)."""
        return self._det_offset_u

    def to_vectors(self) -> FanBeamVec:
        """The equivalent :class:`FanBeamVec`."""
        s, c = _trig(self._angles)
        n = s.size
        u_hat = _yx(s, c, n)
        sources = self._src_iso * _yx(-c, s, n)
        if self._detector is DetectorShape.FLAT:
            centers = self._iso_det * _yx(c, -s, n) + self._det_offset_u * u_hat
            det_u = self._det_spacing * u_hat
        else:
            # rotate the central ray about the source by the offset angle
            central = _yx(c, -s, n)  # unit vector source -> rotation centre
            gamma0 = self._det_offset_u / self.src_det
            cg, sg = np.cos(gamma0), np.sin(gamma0)
            centers = sources + self.src_det * (cg * central + sg * u_hat)
            det_u = self._det_spacing * (cg * u_hat - sg * central)
        return FanBeamVec(
            sources=sources,
            det_centers=centers,
            det_u=det_u,
            n_det=self._n_det,
            detector=self._detector,
        )


class ParallelBeam3D(_Detector3D):
    """3D parallel-beam geometry rotating about the z axis.

    Parameters
    ----------
    angles : array_like of shape (n_views,)
        Rotation angles in radians (same convention as :class:`ParallelBeam2D`).
    det_shape : tuple of int
        ``(n_rows, n_cols)``; rows run along +z, columns along u.
    det_spacing : float or (float, float), optional
        Pixel pitch ``(row, col)`` in mm (a scalar is used for both).
    det_offset_u, det_offset_v : float, optional
        Shift of the detector centre along u (columns) and v (rows, +z), mm.
    """

    __slots__ = ("_angles", "_det_offset_u", "_det_offset_v", "_det_shape", "_det_spacing")
    _params = ("angles", "det_shape", "det_spacing", "det_offset_u", "det_offset_v")
    _det_shape: tuple[int, int]
    _det_spacing: tuple[float, float]
    _det_offset_u: float
    _det_offset_v: float

    def __init__(
        self,
        *,
        angles: Any,
        det_shape: IntsLike,
        det_spacing: FloatsLike = 1.0,
        det_offset_u: float = 0.0,
        det_offset_v: float = 0.0,
    ) -> None:
        self._set("angles", check_angles(angles))
        self._set_detector(det_shape, det_spacing, det_offset_u, det_offset_v)

    def to_vectors(self) -> ParallelVec:
        """The equivalent 3D :class:`ParallelVec`."""
        s, c, u_hat, v_hat, offset = self._frame()
        return ParallelVec(
            ray_dirs=_zyx(0.0, c, -s, s.size),
            det_centers=offset,
            det_u=self._det_spacing[1] * u_hat,
            det_v=self._det_spacing[0] * v_hat,
            det_shape=self._det_shape,
        )


class ConeBeam3D(_Detector3D, _Divergent):
    """3D circular cone-beam geometry with a flat detector.

    Parameters
    ----------
    angles : array_like of shape (n_views,)
        Rotation angles in radians (same convention as :class:`FanBeam2D`).
    det_shape : tuple of int
        ``(n_rows, n_cols)``; rows run along +z, columns along u.
    det_spacing : float or (float, float)
        Pixel pitch ``(row, col)`` in mm (a scalar is used for both).
    src_iso : float
        Distance source to rotation axis (mm).
    iso_det : float
        Distance rotation axis to detector centre (mm).
    det_offset_u, det_offset_v : float, optional
        Shift of the detector centre along u (columns) and v (rows, +z), mm.
    """

    __slots__ = (
        "_angles",
        "_det_offset_u",
        "_det_offset_v",
        "_det_shape",
        "_det_spacing",
        "_iso_det",
        "_src_iso",
    )
    _params = (
        "angles",
        "det_shape",
        "det_spacing",
        "src_iso",
        "iso_det",
        "det_offset_u",
        "det_offset_v",
    )
    _det_shape: tuple[int, int]
    _det_spacing: tuple[float, float]
    _src_iso: float
    _iso_det: float
    _det_offset_u: float
    _det_offset_v: float

    def __init__(
        self,
        *,
        angles: Any,
        det_shape: IntsLike,
        det_spacing: FloatsLike,
        src_iso: float,
        iso_det: float,
        det_offset_u: float = 0.0,
        det_offset_v: float = 0.0,
    ) -> None:
        self._set("angles", check_angles(angles))
        self._set_detector(det_shape, det_spacing, det_offset_u, det_offset_v)
        self._set_distances(src_iso, iso_det)

    def to_vectors(self) -> ConeBeamVec:
        """The equivalent :class:`ConeBeamVec`."""
        s, c, u_hat, v_hat, offset = self._frame()
        n = s.size
        return ConeBeamVec(
            sources=self._src_iso * _zyx(0.0, -c, s, n),
            det_centers=self._iso_det * _zyx(0.0, c, -s, n) + offset,
            det_u=self._det_spacing[1] * u_hat,
            det_v=self._det_spacing[0] * v_hat,
            det_shape=self._det_shape,
        )
