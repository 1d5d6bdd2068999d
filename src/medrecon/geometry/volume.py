"""Axis-aligned voxel grids: :class:`VolumeGeometry`."""

from __future__ import annotations

import math
import numbers

import numpy as np

from medrecon.errors import GeometryError
from medrecon.geometry._base import (
    FloatsLike,
    Frozen,
    IntsLike,
    check_per_axis,
    check_shape,
)

__all__ = ["VolumeGeometry"]


class VolumeGeometry(Frozen):
    """A regular voxel grid placed in the world frame.

    Axes are in array order: ``(y, x)`` in 2D, ``(z, y, x)`` in 3D. Index ``i``
    along an axis lies at ``center + (i - (n - 1) / 2) * voxel_size`` (mm): the
    world coordinate grows with the index on every axis.

    Parameters
    ----------
    shape : tuple of int
        Number of voxels, ``(ny, nx)`` or ``(nz, ny, nx)``.
    voxel_size : float or tuple of float, optional
        Voxel edge lengths in mm, one per axis (a scalar is used for all).
    center : float or tuple of float, optional
        World position of the grid centre in mm, one per axis (a scalar is
        used for all).

    Examples
    --------
    >>> vol = VolumeGeometry(shape=(4, 6), voxel_size=(2.0, 1.0))
    >>> vol.size
    (8.0, 6.0)
    >>> vol.coords(1).tolist()
    [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]
    >>> vol.extent
    ((-4.0, 4.0), (-3.0, 3.0))
    """

    __slots__ = ("_center", "_shape", "_voxel_size")
    _params = ("shape", "voxel_size", "center")
    _shape: tuple[int, ...]
    _voxel_size: tuple[float, ...]
    _center: tuple[float, ...]

    def __init__(
        self,
        *,
        shape: IntsLike,
        voxel_size: FloatsLike = 1.0,
        center: FloatsLike = 0.0,
    ) -> None:
        shp = check_shape("shape", shape, (2, 3))
        ndim = len(shp)
        self._set("shape", shp)
        self._set("voxel_size", check_per_axis("voxel_size", voxel_size, ndim, positive=True))
        self._set("center", check_per_axis("center", center, ndim))

    @property
    def ndim(self) -> int:
        """Number of axes: 2 or 3."""
        return len(self._shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of voxels per axis, ``(ny, nx)`` or ``(nz, ny, nx)``."""
        return self._shape

    @property
    def voxel_size(self) -> tuple[float, ...]:
        """Voxel edge length per axis (mm)."""
        return self._voxel_size

    @property
    def center(self) -> tuple[float, ...]:
        """World position of the grid centre per axis (mm)."""
        return self._center

    @property
    def size(self) -> tuple[float, ...]:
        """Physical extent per axis, ``shape * voxel_size`` (mm)."""
        return tuple(n * d for n, d in zip(self.shape, self.voxel_size, strict=True))

    @property
    def origin(self) -> tuple[float, ...]:
        """World coordinate of the centre of voxel index 0 on each axis (mm)."""
        return tuple(
            c - 0.5 * (n - 1) * d
            for n, d, c in zip(self.shape, self.voxel_size, self.center, strict=True)
        )

    @property
    def extent(self) -> tuple[tuple[float, float], ...]:
        """``(min_edge, max_edge)`` per axis: the outer faces of the grid (mm)."""
        return tuple(
            (c - 0.5 * s, c + 0.5 * s) for s, c in zip(self.size, self.center, strict=True)
        )

    @property
    def n_voxels(self) -> int:
        """Total number of voxels."""
        return math.prod(self.shape)

    def coords(self, axis: int) -> np.ndarray:
        """Voxel-centre coordinates along ``axis`` (mm), shape ``(shape[axis],)``."""
        if not isinstance(axis, numbers.Integral) or not -self.ndim <= int(axis) < self.ndim:
            raise GeometryError(
                f"axis: expected an integer in [{-self.ndim}, {self.ndim}), got {axis!r}"
            )
        a = int(axis) % self.ndim
        n = self.shape[a]
        return self.center[a] + (np.arange(n) - 0.5 * (n - 1)) * self.voxel_size[a]
