"""Geometry cases shared by the projector tests, and the arc-detector rays of the references.

:class:`CaseFactory` builds one case of every geometry kind the CPU backend accepts as a factory
``parity -> (geometry, volume)``: ``"odd"`` and ``"even"`` pick the volume and detector sizes,
volumes are anisotropic and off-centre, detectors are offset. A test file gives the sizes and the
numbers of each kind (views, distances); the seeded vector geometries draw the same random numbers
in every file. :func:`arc_ray_dirs` is the conventions' formula for the rays of a 2D arc detector,
written independently of the kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medrecon import (
    ConeBeam3D,
    FanBeam2D,
    FanBeamVec,
    ParallelBeam2D,
    ParallelBeam3D,
    ParallelVec,
    VolumeGeometry,
)

Case = Callable[[str], tuple[Any, VolumeGeometry]]


def angles(n: int, span: float = 2 * np.pi) -> np.ndarray:
    """``n`` angles from 0.1 over ``span`` (end point excluded)."""
    return np.linspace(0.1, 0.1 + span, n, endpoint=False)


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit length along its last axis."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@dataclass(frozen=True)
class CaseFactory:
    """The sizes of the ``"odd"`` and ``"even"`` variants, and a builder per geometry kind."""

    vol2: Mapping[str, tuple[int, int]]
    vol3: Mapping[str, tuple[int, int, int]]
    n_det: Mapping[str, int]
    det3: Mapping[str, tuple[int, int]]

    def volume2(self, p: str) -> VolumeGeometry:
        return VolumeGeometry(shape=self.vol2[p], voxel_size=(0.9, 1.2), center=(1.5, -2.0))

    def volume3(self, p: str) -> VolumeGeometry:
        return VolumeGeometry(
            shape=self.vol3[p], voxel_size=(1.1, 0.9, 1.3), center=(0.7, -1.2, 2.1)
        )

    def parallel_2d(self, n_views: int) -> Case:
        def make(p: str) -> tuple[Any, VolumeGeometry]:
            g = ParallelBeam2D(
                angles=angles(n_views, np.pi),
                n_det=self.n_det[p],
                det_spacing=1.1,
                det_offset_u=0.6,
            )
            return g, self.volume2(p)

        return make

    def fan_2d(
        self, detector: str, *, n_views: int, det_spacing: float, src_iso: float, iso_det: float
    ) -> Case:
        def make(p: str) -> tuple[Any, VolumeGeometry]:
            g = FanBeam2D(
                angles=angles(n_views),
                n_det=self.n_det[p],
                det_spacing=det_spacing,
                src_iso=src_iso,
                iso_det=iso_det,
                detector=detector,
                det_offset_u=1.3,
            )
            return g, self.volume2(p)

        return make

    def parallel_vec_2d(self, n_views: int) -> Case:
        """Random rays; the detector axis is not perpendicular to them and varies in length."""

        def make(p: str) -> tuple[Any, VolumeGeometry]:
            rng = np.random.default_rng(11)
            n = n_views
            rays = rng.standard_normal((n, 2))
            perp = np.stack([rays[:, 1], -rays[:, 0]], axis=1)
            u = 1.2 * unit(perp + 0.3 * rays) * rng.uniform(0.8, 1.2, (n, 1))
            g = ParallelVec(
                ray_dirs=rays,
                det_centers=rng.normal(0.0, 2.0, (n, 2)),
                det_u=u,
                det_shape=(self.n_det[p],),
            )
            return g, self.volume2(p)

        return make

    def fan_vec(
        self,
        detector: str,
        *,
        n_views: int,
        src_dist: tuple[float, float],
        det_dist: tuple[float, float],
        pitch: float,
    ) -> Case:
        """Random source and detector distances (uniform in the ranges), tilted detector lines."""

        def make(p: str) -> tuple[Any, VolumeGeometry]:
            rng = np.random.default_rng(12)
            n = n_views
            phi = rng.uniform(0, 2 * np.pi, n)
            direction = np.stack([np.cos(phi), np.sin(phi)], axis=1)
            sources = -rng.uniform(*src_dist, (n, 1)) * direction + rng.normal(0, 1.5, (n, 2))
            centers = rng.uniform(*det_dist, (n, 1)) * direction + rng.normal(0, 1.5, (n, 2))
            perp = np.stack([direction[:, 1], -direction[:, 0]], axis=1)
            u = pitch * unit(perp + 0.2 * rng.standard_normal((n, 2)))
            g = FanBeamVec(
                sources=sources,
                det_centers=centers,
                det_u=u,
                n_det=self.n_det[p],
                detector=detector,
            )
            return g, self.volume2(p)

        return make

    def parallel_3d(self, n_views: int) -> Case:
        def make(p: str) -> tuple[Any, VolumeGeometry]:
            g = ParallelBeam3D(
                angles=angles(n_views, np.pi),
                det_shape=self.det3[p],
                det_spacing=(1.2, 1.0),
                det_offset_u=0.7,
                det_offset_v=-0.4,
            )
            return g, self.volume3(p)

        return make

    def cone_3d(self, *, n_views: int, src_iso: float) -> Case:
        def make(p: str) -> tuple[Any, VolumeGeometry]:
            g = ConeBeam3D(
                angles=angles(n_views),
                det_shape=self.det3[p],
                det_spacing=(1.6, 1.8),
                src_iso=src_iso,
                iso_det=30.0,
                det_offset_u=1.5,
                det_offset_v=-2.0,
            )
            return g, self.volume3(p)

        return make

    def cone_3d_wide(
        self, *, n_views: int, row_spacing: float, src_iso: float, iso_det: float
    ) -> Case:
        """Circular cone whose outer rows are steep enough for z to dominate."""

        def make(p: str) -> tuple[Any, VolumeGeometry]:
            g = ConeBeam3D(
                angles=angles(n_views),
                det_shape=(self.det3[p][0] + 4, self.det3[p][1]),
                det_spacing=(row_spacing, 2.0),
                src_iso=src_iso,
                iso_det=iso_det,
            )
            return g, self.volume3(p)

        return make

    def parallel_vec_3d(self, n_views: int) -> Case:
        """Directions spread over the sphere: every axis dominates some rays."""

        def make(p: str) -> tuple[Any, VolumeGeometry]:
            rng = np.random.default_rng(13)
            n = n_views
            rays = unit(rng.standard_normal((n, 3)))
            a = unit(np.cross(rays, rng.standard_normal((n, 3))))
            b = np.cross(rays, a)
            g = ParallelVec(
                ray_dirs=rays,
                det_centers=rng.normal(0, 1.0, (n, 3)),
                det_u=1.3 * a,
                det_v=1.1 * b,
                det_shape=self.det3[p],
            )
            return g, self.volume3(p)

        return make


def arc_ray_dirs(vec: Any, j: np.ndarray) -> np.ndarray:
    """Directions ``(views, len(j), 2)`` of the rays to the elements ``j`` of a 2D arc detector.

    ``j`` counts elements from the detector centre; the central ray (source to detector centre)
    turns by ``gamma_j = j |u| / |c - s|`` towards ``u``.
    """
    central = vec.det_centers - vec.sources
    radius = np.linalg.norm(central, axis=1)
    e1 = central / radius[:, None]
    e2 = np.stack([-e1[:, 1], e1[:, 0]], axis=1)
    e2 *= np.sign(np.sum(e2 * vec.det_u, axis=1))[:, None]
    gamma = j[None, :] * (np.linalg.norm(vec.det_u, axis=1) / radius)[:, None]
    return np.cos(gamma)[..., None] * e1[:, None] + np.sin(gamma)[..., None] * e2[:, None]
