"""Adapter around astra-toolbox (optional, GPL, installed separately).

Used as a reference in tests and benchmarks and by users porting ASTRA
code. 2D geometries run on ASTRA's CPU projectors (``linear``, ``line``
or ``strip`` for parallel beams; ``line_fanflat`` for flat fan beams), whose
backprojection is the exact transpose of their forward projection. 3D
geometries need ASTRA's CUDA build (``cuda3d``), whose backprojector is not
the exact adjoint of its forward projector; this backend then reports
``exact_adjoint = False``. ASTRA computes in float32: float64 inputs are
projected in float32 and returned as float64.

All conversions of axes and flips come from :mod:`medrecon.geometry.astra`.
"""

from __future__ import annotations

from typing import Any

import astra
import numpy as np

from medrecon.errors import BackendUnavailableError, GeometryError
from medrecon.geometry import ConeBeamVec, FanBeamVec, ParallelVec, VolumeGeometry
from medrecon.geometry.astra import proj_from_astra, proj_to_astra, to_astra
from medrecon.projectors.base import ProjectorBackend, VecGeometry, Weighting

__all__ = ["AstraBackend"]

_PARALLEL_TYPES = ("linear", "line", "strip")


class AstraBackend(ProjectorBackend):
    """``backend="astra"``: astra-toolbox behind medrecon's projector interface.

    Options
    -------
    projector_type : str
        2D parallel beam: ``"linear"`` (default; Joseph, like medrecon's CPU
        backend), ``"line"`` or ``"strip"``. 2D fan beam: ``"line_fanflat"``
        (the only CPU fan projector ASTRA offers for vector geometries).
    """

    name = "astra"
    exact_adjoint = True

    def __init__(
        self,
        geometry: VecGeometry,
        volume: VolumeGeometry,
        *,
        projector_type: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(geometry, volume, **options)
        self._proj_geom, self._vol_geom = to_astra(geometry, volume)
        if volume.ndim == 2:
            if isinstance(geometry, ParallelVec):
                ptype = projector_type or "linear"
                allowed: tuple[str, ...] = _PARALLEL_TYPES
            elif isinstance(geometry, FanBeamVec):
                ptype = projector_type or "line_fanflat"
                allowed = ("line_fanflat",)
            else:  # pragma: no cover - guarded by Projector
                raise GeometryError(f"no ASTRA 2D projector for {type(geometry).__name__}")
            if ptype not in allowed:
                raise ValueError(
                    f"projector_type: expected one of {list(allowed)} for this geometry, "
                    f"got {ptype!r}"
                )
            dy, dx = volume.voxel_size
            if ptype != "strip" and dy != dx:
                # ASTRA's CPU line/linear/line_fanflat kernels assume square pixels
                # and check this on one side only: (1.0, 0.8) gave a silently wrong
                # projection (23% off), (0.8, 1.0) an AstraError.
                raise GeometryError(
                    f"volume: ASTRA's CPU {ptype!r} projector needs square pixels, got "
                    f"voxel_size={volume.voxel_size}; use projector_type='strip' or "
                    "backend='cpu'"
                )
            self.projector_type = ptype
        else:
            if not astra.use_cuda():
                raise BackendUnavailableError(
                    "ASTRA has no CPU projector for 3D geometries; it needs a CUDA GPU and "
                    "ASTRA's CUDA build (use backend='cpu' instead)"
                )
            if projector_type not in (None, "cuda3d"):
                raise ValueError(
                    f"projector_type: expected 'cuda3d' for 3D, got {projector_type!r}"
                )
            if not isinstance(geometry, (ParallelVec, ConeBeamVec)):  # pragma: no cover
                raise GeometryError(f"no ASTRA 3D projector for {type(geometry).__name__}")
            self.projector_type = "cuda3d"
            self.exact_adjoint = False  # type: ignore[misc]

    # ---------------------------------------------------------------- 2D
    def _run_2d(self, data: np.ndarray, *, forward: bool) -> np.ndarray:
        pid = astra.create_projector(self.projector_type, self._proj_geom, self._vol_geom)
        try:
            outs = []
            for item in data:
                item32 = np.ascontiguousarray(item, dtype=np.float32)
                if forward:
                    did, res = astra.create_sino(item32, pid)
                else:
                    did, res = astra.create_backprojection(item32, pid)
                astra.data2d.delete(did)
                outs.append(res)
        finally:
            astra.projector.delete(pid)
        return np.stack(outs).astype(data.dtype, copy=False)

    # ---------------------------------------------------------------- 3D
    def _run_3d(self, data: np.ndarray, *, forward: bool) -> np.ndarray:
        outs = []
        for item in data:
            item32 = np.ascontiguousarray(item, dtype=np.float32)
            if forward:
                did, res = astra.create_sino3d_gpu(item32, self._proj_geom, self._vol_geom)
                res = proj_from_astra(res, self.geometry)
            else:
                did, res = astra.create_backprojection3d_gpu(
                    proj_to_astra(item32, self.geometry), self._proj_geom, self._vol_geom
                )
            astra.data3d.delete(did)
            outs.append(res)
        return np.stack(outs).astype(data.dtype, copy=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.volume.ndim == 2:
            return self._run_2d(x, forward=True)
        return self._run_3d(x, forward=True)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        if self.volume.ndim == 2:
            return self._run_2d(y, forward=False)
        return self._run_3d(y, forward=False)

    def backproject(self, y: np.ndarray, weighting: Weighting) -> np.ndarray:
        raise NotImplementedError(
            "the astra backend has no voxel-driven backprojector; use backend='cpu' for "
            "Projector.backproject (FBP/FDK)"
        )
