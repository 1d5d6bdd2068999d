"""CPU backend: numba kernels, the correctness oracle for every other backend.

* :mod:`.joseph2d` / :mod:`.joseph3d`: Joseph ray-driven forward projection
  and its exact transpose;
* :mod:`.backproject`: voxel-driven backprojection for FBP/FDK.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medrecon.errors import GeometryError
from medrecon.geometry import ConeBeamVec, FanBeamVec, ParallelVec, VolumeGeometry
from medrecon.projectors.base import ProjectorBackend, VecGeometry, Weighting
from medrecon.projectors.cpu.backproject import backproject_2d, backproject_3d
from medrecon.projectors.cpu.joseph2d import (
    adjoint_2d,
    forward_2d,
    plane_ranges_2d,
    ray_params_2d,
)
from medrecon.projectors.cpu.joseph3d import adjoint_3d, dominant_axes_3d, forward_3d

__all__ = ["CpuBackend"]


def _arr(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


class CpuBackend(ProjectorBackend):
    """numba backend (``backend="cpu"``): Joseph projector with its exact transpose.

    Threads: numba's thread pool (``NUMBA_NUM_THREADS``, or
    ``numba.set_num_threads``). Work is split over views (forward) and over
    blocks of voxel planes (adjoint), so no atomics are needed.
    """

    name = "cpu"
    exact_adjoint = True

    def __init__(self, geometry: VecGeometry, volume: VolumeGeometry, **options: Any) -> None:
        super().__init__(geometry, volume, **options)
        self._origin = _arr(np.asarray(volume.origin))
        self._spacing = _arr(np.asarray(volume.voxel_size))
        g = geometry
        if volume.ndim == 2:
            if isinstance(g, ParallelVec):
                self._mode = 0
                vecs = (g.ray_dirs, g.det_centers, g.det_u)
            elif isinstance(g, FanBeamVec):
                self._mode = 1 if str(getattr(g.detector, "value", g.detector)) == "flat" else 2
                vecs = (g.sources, g.det_centers, g.det_u)
            else:
                raise GeometryError(f"a 2D volume needs a 2D geometry, got {type(g).__name__}")
            self._vec2 = (_arr(vecs[0]), _arr(vecs[1]), _arr(vecs[2]))
            self._n_det = int(g.det_shape[-1])
            self._params: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        else:
            if isinstance(g, ParallelVec):
                self._mode = 0
                if g.det_v is None:  # pragma: no cover - 3D ParallelVec always has det_v
                    raise GeometryError("a 3D parallel geometry needs det_v")
                vecs3 = (g.ray_dirs, g.det_centers, g.det_u, g.det_v)
            elif isinstance(g, ConeBeamVec):
                self._mode = 1
                vecs3 = (g.sources, g.det_centers, g.det_u, g.det_v)
            else:
                raise GeometryError(f"a 3D volume needs a 3D geometry, got {type(g).__name__}")
            self._vec3 = (_arr(vecs3[0]), _arr(vecs3[1]), _arr(vecs3[2]), _arr(vecs3[3]))
            self._det_shape = (int(g.det_shape[0]), int(g.det_shape[1]))
            self._axes: np.ndarray | None = None

    # ------------------------------------------------------------------ 2D
    def _rays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-ray sampling parameters, dominant axes and plane ranges (cached)."""
        if self._params is None:
            a, c, u = self._vec2
            params, major = ray_params_2d(
                self._mode, a, c, u, self._origin, self._spacing, self._n_det
            )
            ny, nx = self.volume.shape
            self._params = (params, major, plane_ranges_2d(params, major, ny, nx))
        return self._params

    # ------------------------------------------------------------------ 3D
    def _dominant_axes(self) -> np.ndarray:
        if self._axes is None:
            a, c, u, w = self._vec3
            self._axes = dominant_axes_3d(
                self._mode, a, c, u, w, self._origin, self._spacing, self._det_shape
            )
        return self._axes

    # ------------------------------------------------------------- contract
    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.volume.ndim == 2:
            return forward_2d(x, *self._rays())
        return forward_3d(
            x,
            self._mode,
            self._vec3,
            self._origin,
            self._spacing,
            self._det_shape,
            self._dominant_axes(),
        )

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        shape = self.volume.shape
        if self.volume.ndim == 2:
            return adjoint_2d(y, *self._rays(), (shape[0], shape[1]))
        return adjoint_3d(
            y,
            self._mode,
            self._vec3,
            self._origin,
            self._spacing,
            (shape[0], shape[1], shape[2]),
            self._dominant_axes(),
        )

    def backproject(self, y: np.ndarray, weighting: Weighting) -> np.ndarray:
        w = 1 if weighting is Weighting.FDK else 0
        shape = self.volume.shape
        if self.volume.ndim == 2:
            return backproject_2d(
                y,
                self._mode,
                self._vec2,
                self._origin,
                self._spacing,
                (shape[0], shape[1]),
                w,
            )
        return backproject_3d(
            y,
            self._mode,
            self._vec3,
            self._origin,
            self._spacing,
            (shape[0], shape[1], shape[2]),
            w,
        )
