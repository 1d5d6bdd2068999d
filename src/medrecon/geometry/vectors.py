"""Vector projection geometries: arbitrary per-view source and detector placement.

Every array has shape ``(n_views, ndim)`` with components in array-axis order,
``(y, x)`` in 2D and ``(z, y, x)`` in 3D, in mm. Detector pixel ``(row i,
col j)`` has its centre at ``det_centers + (j - (n_cols - 1) / 2) * det_u +
(i - (n_rows - 1) / 2) * det_v`` (2D: ``det_centers + (j - (n_det - 1) / 2) *
det_u``). These are the arrays the projector kernels consume.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medrecon.errors import GeometryError
from medrecon.geometry._base import (
    DetectorShape,
    IntsLike,
    ProjectionGeometry,
    check_detector_shape,
    check_int,
    check_nonzero_rows,
    check_shape,
    check_vectors,
    cross2,
    first_degenerate,
    float_array,
)

__all__ = ["ConeBeamVec", "FanBeamVec", "ParallelVec"]


def _raise_degenerate(what: str, views: np.ndarray) -> None:
    if views.size:
        raise GeometryError(f"{what} in views {views[:5].tolist()}")


class ParallelVec(ProjectionGeometry):
    """Parallel-beam geometry given by per-view vectors (2D or 3D).

    Parameters
    ----------
    ray_dirs : array_like of shape (n_views, ndim)
        Ray direction per view (any non-zero length; the sign does not matter).
    det_centers : array_like of shape (n_views, ndim)
        Detector centre per view (mm).
    det_u : array_like of shape (n_views, ndim)
        Vector from one detector column to the next (mm).
    det_v : array_like of shape (n_views, 3), optional
        Vector from one detector row to the next (mm); required in 3D, must be
        omitted in 2D.
    det_shape : int or tuple of int
        ``(n_det,)`` in 2D, ``(n_rows, n_cols)`` in 3D.

    Notes
    -----
    ``ndim`` is taken from the width of ``ray_dirs``.
    """

    __slots__ = ("_det_centers", "_det_shape", "_det_u", "_det_v", "_ray_dirs")
    _params = ("ray_dirs", "det_centers", "det_u", "det_v", "det_shape")
    _per_view = ("ray_dirs", "det_centers", "det_u", "det_v")
    _ray_dirs: np.ndarray
    _det_centers: np.ndarray
    _det_u: np.ndarray
    _det_v: np.ndarray | None
    _det_shape: tuple[int, ...]

    def __init__(
        self,
        *,
        ray_dirs: Any,
        det_centers: Any,
        det_u: Any,
        det_v: Any = None,
        det_shape: int | IntsLike,
    ) -> None:
        probe = float_array("ray_dirs", ray_dirs)
        if probe.ndim != 2 or probe.shape[1] not in (2, 3):
            raise GeometryError(
                f"ray_dirs: expected shape (n_views, 2) or (n_views, 3), got shape {probe.shape}"
            )
        ndim = probe.shape[1]
        ray = check_vectors("ray_dirs", probe, ndim)
        n = ray.shape[0]
        centers = check_vectors("det_centers", det_centers, ndim, n)
        u = check_vectors("det_u", det_u, ndim, n)
        ray_len = check_nonzero_rows("ray_dirs", ray)
        u_len = check_nonzero_rows("det_u", u)
        v: np.ndarray | None
        if ndim == 2:
            if det_v is not None:
                raise GeometryError(
                    f"det_v: expected None for a 2D geometry, got {np.shape(det_v)}-shaped input"
                )
            v = None
            shape = check_shape("det_shape", det_shape, (1,))
            _raise_degenerate(
                "ray_dirs: expected rays not parallel to the detector line, got parallel rays",
                first_degenerate(cross2(ray, u), ray_len * u_len),
            )
        else:
            if det_v is None:
                raise GeometryError("det_v: expected an array of shape (n_views, 3), got None")
            v = check_vectors("det_v", det_v, 3, n)
            v_len = check_nonzero_rows("det_v", v)
            shape = check_shape("det_shape", det_shape, (2,))
            normal = np.cross(u, v)
            n_len = np.linalg.norm(normal, axis=1)
            _raise_degenerate(
                "det_u, det_v: expected non-parallel detector axes, got parallel ones",
                first_degenerate(n_len, u_len * v_len),
            )
            _raise_degenerate(
                "ray_dirs: expected rays crossing the detector plane, got rays parallel to it",
                first_degenerate(np.sum(ray * normal, axis=1), ray_len * n_len),
            )
        self._set("ray_dirs", ray)
        self._set("det_centers", centers)
        self._set("det_u", u)
        self._set("det_v", v)
        self._set("det_shape", shape)

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions: 2 or 3."""
        return int(self._ray_dirs.shape[1])

    @property
    def det_shape(self) -> tuple[int, ...]:
        """``(n_det,)`` in 2D, ``(n_rows, n_cols)`` in 3D."""
        return self._det_shape

    @property
    def ray_dirs(self) -> np.ndarray:
        """Ray direction per view, read-only, shape ``(n_views, ndim)``."""
        return self._ray_dirs

    @property
    def det_centers(self) -> np.ndarray:
        """Detector centre per view (mm), read-only, shape ``(n_views, ndim)``."""
        return self._det_centers

    @property
    def det_u(self) -> np.ndarray:
        """Column step per view (mm), read-only, shape ``(n_views, ndim)``."""
        return self._det_u

    @property
    def det_v(self) -> np.ndarray | None:
        """Row step per view (mm), read-only, shape ``(n_views, 3)``; None in 2D."""
        return self._det_v

    def to_vectors(self) -> ParallelVec:
        """Return ``self``."""
        return self


class FanBeamVec(ProjectionGeometry):
    """2D fan-beam geometry given by per-view vectors.

    Parameters
    ----------
    sources : array_like of shape (n_views, 2)
        Source position per view (mm), ``(y, x)``.
    det_centers : array_like of shape (n_views, 2)
        Detector centre per view (mm).
    det_u : array_like of shape (n_views, 2)
        Flat detector: vector from one element to the next (mm). Arc detector:
        tangent at the detector centre; its length is the arc length between
        elements and its direction says which way the element index grows.
    n_det : int
        Number of detector elements.
    detector : {"flat", "arc"} or DetectorShape, optional
        Arc: element ``j`` lies on the circle about the source through the
        detector centre, at angle ``(j - (n_det - 1) / 2) * |det_u| /
        |det_centers - sources|`` from the central ray, turning towards
        ``det_u``.
    """

    __slots__ = ("_det_centers", "_det_u", "_detector", "_n_det", "_sources")
    _params = ("sources", "det_centers", "det_u", "n_det", "detector")
    _per_view = ("sources", "det_centers", "det_u")
    _sources: np.ndarray
    _det_centers: np.ndarray
    _det_u: np.ndarray
    _n_det: int
    _detector: DetectorShape

    def __init__(
        self,
        *,
        sources: Any,
        det_centers: Any,
        det_u: Any,
        n_det: int,
        detector: str | DetectorShape = DetectorShape.FLAT,
    ) -> None:
        src = check_vectors("sources", sources, 2)
        n = src.shape[0]
        centers = check_vectors("det_centers", det_centers, 2, n)
        u = check_vectors("det_u", det_u, 2, n)
        u_len = check_nonzero_rows("det_u", u)
        shape = check_detector_shape(detector)
        central = centers - src
        dist = np.linalg.norm(central, axis=1)
        _raise_degenerate(
            "sources, det_centers: expected a non-zero source-detector distance, "
            "got the source on the detector",
            np.flatnonzero(dist == 0.0),
        )
        _raise_degenerate(
            "sources: expected the source off the detector line, got a source-detector "
            "distance of 0 (det_u parallel to the central ray)",
            first_degenerate(cross2(central, u), dist * u_len),
        )
        self._set("sources", src)
        self._set("det_centers", centers)
        self._set("det_u", u)
        self._set("n_det", check_int("n_det", n_det))
        self._set("detector", shape)

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
    def detector(self) -> DetectorShape:
        """Detector shape, flat or arc."""
        return self._detector

    @property
    def sources(self) -> np.ndarray:
        """Source position per view (mm), read-only, shape ``(n_views, 2)``."""
        return self._sources

    @property
    def det_centers(self) -> np.ndarray:
        """Detector centre per view (mm), read-only, shape ``(n_views, 2)``."""
        return self._det_centers

    @property
    def det_u(self) -> np.ndarray:
        """Element step (flat) or tangent step (arc) per view (mm), shape ``(n_views, 2)``."""
        return self._det_u

    def to_vectors(self) -> FanBeamVec:
        """Return ``self``."""
        return self


class ConeBeamVec(ProjectionGeometry):
    """3D cone-beam geometry with a flat detector, given by per-view vectors.

    Parameters
    ----------
    sources : array_like of shape (n_views, 3)
        Source position per view (mm), ``(z, y, x)``.
    det_centers : array_like of shape (n_views, 3)
        Detector centre per view (mm).
    det_u : array_like of shape (n_views, 3)
        Vector from one detector column to the next (mm).
    det_v : array_like of shape (n_views, 3)
        Vector from one detector row to the next (mm).
    det_shape : tuple of int
        ``(n_rows, n_cols)``.
    """

    __slots__ = ("_det_centers", "_det_shape", "_det_u", "_det_v", "_sources")
    _params = ("sources", "det_centers", "det_u", "det_v", "det_shape")
    _per_view = ("sources", "det_centers", "det_u", "det_v")
    _sources: np.ndarray
    _det_centers: np.ndarray
    _det_u: np.ndarray
    _det_v: np.ndarray
    _det_shape: tuple[int, ...]

    def __init__(
        self,
        *,
        sources: Any,
        det_centers: Any,
        det_u: Any,
        det_v: Any,
        det_shape: IntsLike,
    ) -> None:
        src = check_vectors("sources", sources, 3)
        n = src.shape[0]
        centers = check_vectors("det_centers", det_centers, 3, n)
        u = check_vectors("det_u", det_u, 3, n)
        v = check_vectors("det_v", det_v, 3, n)
        u_len = check_nonzero_rows("det_u", u)
        v_len = check_nonzero_rows("det_v", v)
        normal = np.cross(u, v)
        n_len = np.linalg.norm(normal, axis=1)
        _raise_degenerate(
            "det_u, det_v: expected non-parallel detector axes, got parallel ones",
            first_degenerate(n_len, u_len * v_len),
        )
        central = centers - src
        _raise_degenerate(
            "sources: expected the source off the detector plane, got a source-detector "
            "distance of 0",
            first_degenerate(
                np.sum(central * normal, axis=1), np.linalg.norm(central, axis=1) * n_len
            ),
        )
        self._set("sources", src)
        self._set("det_centers", centers)
        self._set("det_u", u)
        self._set("det_v", v)
        self._set("det_shape", check_shape("det_shape", det_shape, (2,)))

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions: 3."""
        return 3

    @property
    def det_shape(self) -> tuple[int, ...]:
        """``(n_rows, n_cols)``."""
        return self._det_shape

    @property
    def sources(self) -> np.ndarray:
        """Source position per view (mm), read-only, shape ``(n_views, 3)``."""
        return self._sources

    @property
    def det_centers(self) -> np.ndarray:
        """Detector centre per view (mm), read-only, shape ``(n_views, 3)``."""
        return self._det_centers

    @property
    def det_u(self) -> np.ndarray:
        """Column step per view (mm), read-only, shape ``(n_views, 3)``."""
        return self._det_u

    @property
    def det_v(self) -> np.ndarray:
        """Row step per view (mm), read-only, shape ``(n_views, 3)``."""
        return self._det_v

    def to_vectors(self) -> ConeBeamVec:
        """Return ``self``."""
        return self
