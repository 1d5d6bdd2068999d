"""Dot tests: ``Projector.adjoint`` is the transpose of ``Projector.forward``.

For random non-negative ``x`` and ``y`` the check is

    |<A x, y> - <x, A^T y>| / |<A x, y>|  <  1e-10 (float64), 1e-4 (float32)

on every geometry kind the CPU backend accepts, at odd and even volume and
detector sizes, with anisotropic voxels, an off-centre volume and batch
dimensions. A deliberately wrong adjoint must fail the same check, so the test
can fail. The 3D cases include vector geometries whose rays are dominated by z
(the third sampling path of the Joseph kernel); that z really dominates some
rays is checked independently of the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from medrecon import (
    ConeBeam3D,
    ConeBeamVec,
    FanBeam2D,
    FanBeamVec,
    ParallelBeam2D,
    ParallelBeam3D,
    ParallelVec,
    Projector,
    VolumeGeometry,
)

TOL = {np.float64: 1e-10, np.float32: 1e-4}

# -------------------------------------------------------------------- cases
# Each factory takes "odd" or "even" and returns (geometry, volume). Volumes
# are anisotropic and off-centre; detectors have odd or even sizes too.


def _vol2(parity: str) -> VolumeGeometry:
    shape = (15, 17) if parity == "odd" else (16, 12)
    return VolumeGeometry(shape=shape, voxel_size=(0.9, 1.2), center=(1.5, -2.0))


def _vol3(parity: str) -> VolumeGeometry:
    shape = (7, 9, 11) if parity == "odd" else (8, 6, 10)
    return VolumeGeometry(shape=shape, voxel_size=(1.1, 0.9, 1.3), center=(0.7, -1.2, 2.1))


def _n_det(parity: str) -> int:
    return 21 if parity == "odd" else 24


def _det3(parity: str) -> tuple[int, int]:
    return (9, 13) if parity == "odd" else (10, 12)


def _angles(n: int, span: float = 2 * np.pi) -> np.ndarray:
    return np.linspace(0.1, 0.1 + span, n, endpoint=False)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _par2d(p: str) -> tuple[Any, VolumeGeometry]:
    g = ParallelBeam2D(
        angles=_angles(11, np.pi), n_det=_n_det(p), det_spacing=1.1, det_offset_u=0.6
    )
    return g, _vol2(p)


def _fan2d(detector: str) -> Callable[[str], tuple[Any, VolumeGeometry]]:
    def make(p: str) -> tuple[Any, VolumeGeometry]:
        g = FanBeam2D(
            angles=_angles(12),
            n_det=_n_det(p),
            det_spacing=1.5,
            src_iso=40.0,
            iso_det=25.0,
            detector=detector,
            det_offset_u=1.3,
        )
        return g, _vol2(p)

    return make


def _parvec2d(p: str) -> tuple[Any, VolumeGeometry]:
    rng = np.random.default_rng(11)
    n = 9
    rays = rng.standard_normal((n, 2))
    perp = np.stack([rays[:, 1], -rays[:, 0]], axis=1)
    # detector axis not perpendicular to the rays, of varying length
    u = 1.2 * _unit(perp + 0.3 * rays) * rng.uniform(0.8, 1.2, (n, 1))
    g = ParallelVec(
        ray_dirs=rays, det_centers=rng.normal(0.0, 2.0, (n, 2)), det_u=u, det_shape=(_n_det(p),)
    )
    return g, _vol2(p)


def _fanvec(detector: str) -> Callable[[str], tuple[Any, VolumeGeometry]]:
    def make(p: str) -> tuple[Any, VolumeGeometry]:
        rng = np.random.default_rng(12)
        n = 9
        phi = rng.uniform(0, 2 * np.pi, n)
        direction = np.stack([np.cos(phi), np.sin(phi)], axis=1)
        sources = -rng.uniform(35, 50, (n, 1)) * direction + rng.normal(0, 1.5, (n, 2))
        centers = rng.uniform(20, 30, (n, 1)) * direction + rng.normal(0, 1.5, (n, 2))
        # tilted detector line
        perp = np.stack([direction[:, 1], -direction[:, 0]], axis=1)
        u = 1.6 * _unit(perp + 0.2 * rng.standard_normal((n, 2)))
        g = FanBeamVec(
            sources=sources, det_centers=centers, det_u=u, n_det=_n_det(p), detector=detector
        )
        return g, _vol2(p)

    return make


def _par3d(p: str) -> tuple[Any, VolumeGeometry]:
    g = ParallelBeam3D(
        angles=_angles(7, np.pi),
        det_shape=_det3(p),
        det_spacing=(1.2, 1.0),
        det_offset_u=0.7,
        det_offset_v=-0.4,
    )
    return g, _vol3(p)


def _cone3d(p: str) -> tuple[Any, VolumeGeometry]:
    g = ConeBeam3D(
        angles=_angles(8),
        det_shape=_det3(p),
        det_spacing=(1.6, 1.8),
        src_iso=40.0,
        iso_det=30.0,
        det_offset_u=1.5,
        det_offset_v=-2.0,
    )
    return g, _vol3(p)


def _parvec3d(p: str) -> tuple[Any, VolumeGeometry]:
    rng = np.random.default_rng(13)
    n = 8
    # directions spread over the sphere: every axis dominates some rays
    rays = _unit(rng.standard_normal((n, 3)))
    a = _unit(np.cross(rays, rng.standard_normal((n, 3))))
    b = np.cross(rays, a)
    g = ParallelVec(
        ray_dirs=rays,
        det_centers=rng.normal(0, 1.0, (n, 3)),
        det_u=1.3 * a,
        det_v=1.1 * b,
        det_shape=_det3(p),
    )
    return g, _vol3(p)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _conevec_tilted(p: str) -> tuple[Any, VolumeGeometry]:
    """Circular-ish cone whose detector is rotated out of plane and sheared."""
    rng = np.random.default_rng(14)
    n = 8
    theta = _angles(n)
    s, c = np.sin(theta), np.cos(theta)
    zeros = np.zeros(n)
    sources = 45.0 * np.stack([zeros, -c, s], 1) + np.stack([rng.normal(0, 2, n), zeros, zeros], 1)
    centers = 30.0 * np.stack([zeros, c, -s], 1)
    u = np.stack([zeros, s, c], 1)
    v = np.stack([np.ones(n), zeros, zeros], 1)
    tilt = np.stack([_rotation(np.random.default_rng(100 + i)) for i in range(n)])
    # a small random rotation of each detector: blend identity with a rotation
    mix = np.stack([np.eye(3) + 0.25 * (t - t.T) for t in tilt])
    u = 1.7 * _unit(np.einsum("nij,nj->ni", mix, u))
    v = 1.5 * _unit(np.einsum("nij,nj->ni", mix, v) + 0.3 * u)  # non-orthogonal u, v
    g = ConeBeamVec(sources=sources, det_centers=centers, det_u=u, det_v=v, det_shape=_det3(p))
    return g, _vol3(p)


def _parvec3d_zdom(p: str) -> tuple[Any, VolumeGeometry]:
    """Parallel rays running mostly along z (z dominates every ray)."""
    rng = np.random.default_rng(15)
    n = 6
    rays = _unit(np.column_stack([np.ones(n), rng.normal(0, 0.3, (n, 2))]))
    a = _unit(np.cross(rays, [0.0, 0.0, 1.0]))
    b = np.cross(rays, a)
    g = ParallelVec(
        ray_dirs=rays,
        det_centers=rng.normal(0, 1.0, (n, 3)),
        det_u=1.1 * a,
        det_v=1.2 * b,
        det_shape=_det3(p),
    )
    return g, _vol3(p)


def _conevec_wide(p: str) -> tuple[Any, VolumeGeometry]:
    """Cone with a source close above the volume: huge cone angle, z dominates."""
    rng = np.random.default_rng(16)
    n = 6
    sources = np.column_stack([np.full(n, 14.0), rng.normal(0, 3.0, (n, 2))])
    centers = np.column_stack([np.full(n, -12.0), rng.normal(0, 1.0, (n, 2))])
    phi = rng.uniform(0, 2 * np.pi, n)
    u = 2.5 * np.column_stack([np.zeros(n), np.cos(phi), np.sin(phi)])
    v = 2.2 * np.column_stack([np.zeros(n), -np.sin(phi), np.cos(phi)])
    g = ConeBeamVec(sources=sources, det_centers=centers, det_u=u, det_v=v, det_shape=_det3(p))
    return g, _vol3(p)


def _cone3d_wide(p: str) -> tuple[Any, VolumeGeometry]:
    """Circular cone whose outer rows are steep enough for z to dominate."""
    g = ConeBeam3D(
        angles=_angles(6),
        det_shape=(_det3(p)[0] + 4, _det3(p)[1]),
        det_spacing=(6.0, 2.0),
        src_iso=12.0,
        iso_det=10.0,
    )
    return g, _vol3(p)


CASES: dict[str, Callable[[str], tuple[Any, VolumeGeometry]]] = {
    "ParallelBeam2D": _par2d,
    "FanBeam2D-flat": _fan2d("flat"),
    "FanBeam2D-arc": _fan2d("arc"),
    "ParallelVec2D": _parvec2d,
    "FanBeamVec-flat": _fanvec("flat"),
    "FanBeamVec-arc": _fanvec("arc"),
    "ParallelBeam3D": _par3d,
    "ConeBeam3D-offsets": _cone3d,
    "ParallelVec3D": _parvec3d,
    "ConeBeamVec-tilted": _conevec_tilted,
    "ParallelVec3D-z-dominant": _parvec3d_zdom,
    "ConeBeamVec-wide-z-dominant": _conevec_wide,
    "ConeBeam3D-wide-cone": _cone3d_wide,
}
Z_DOMINANT = ["ParallelVec3D-z-dominant", "ConeBeamVec-wide-z-dominant", "ConeBeam3D-wide-cone"]


def _build(name: str, parity: str) -> tuple[Projector, Any, VolumeGeometry]:
    geom, vol = CASES[name](parity)
    return Projector(geom, vol), geom, vol


# ----------------------------------------------------------------- helpers


def dot_error(
    fwd: Callable[[np.ndarray], np.ndarray],
    adj: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
) -> float:
    """``|<A x, y> - <x, A^T y>| / |<A x, y>|`` with the inner products in float64."""
    ax = np.asarray(fwd(x), dtype=np.float64)
    aty = np.asarray(adj(y), dtype=np.float64)
    lhs = float(np.vdot(ax, y.astype(np.float64)))
    rhs = float(np.vdot(x.astype(np.float64), aty))
    return abs(lhs - rhs) / abs(lhs)


def _inputs(
    A: Projector, dtype: Any, batch: tuple[int, ...], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((*batch, *A.domain_shape)).astype(dtype)
    y = rng.random((*batch, *A.range_shape)).astype(dtype)
    return x, y


def _dominant_axes(geom: Any, vol: VolumeGeometry) -> np.ndarray:
    """Count, per array axis, the rays whose direction (in voxel units) it dominates.

    Written from the conventions, independently of the kernels.
    """
    vec = geom.to_vectors()
    n_rows, n_cols = vec.det_shape
    jj, ii = np.meshgrid(np.arange(n_cols) - (n_cols - 1) / 2, np.arange(n_rows) - (n_rows - 1) / 2)
    pix = (
        vec.det_centers[:, None, None, :]
        + jj[None, :, :, None] * vec.det_u[:, None, None, :]
        + ii[None, :, :, None] * vec.det_v[:, None, None, :]
    )
    if isinstance(vec, ParallelVec):
        d = np.broadcast_to(vec.ray_dirs[:, None, None, :], pix.shape)
    else:
        d = pix - vec.sources[:, None, None, :]
    d = np.abs(d) / np.asarray(vol.voxel_size)
    return np.bincount(np.argmax(d, axis=-1).ravel(), minlength=3)


# -------------------------------------------------------------------- tests


@pytest.mark.parametrize("parity", ["odd", "even"])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_dot_test_every_geometry(name: str, parity: str, dtype: Any) -> None:
    A, _, _ = _build(name, parity)
    x, y = _inputs(A, dtype, (), seed=1)
    ax = A(x)
    assert ax.dtype == dtype
    assert float(np.abs(ax).max()) > 0, "no ray hits the volume: the case tests nothing"
    err = dot_error(A.forward, A.adjoint, x, y)
    assert err < TOL[dtype], f"{name} {parity} {np.dtype(dtype).name}: dot-test error {err:.3e}"


@pytest.mark.parametrize("name", list(CASES))
def test_dot_test_with_batch_dimensions(name: str) -> None:
    A, _, _ = _build(name, "odd")
    x, y = _inputs(A, np.float64, (2, 3), seed=2)
    err = dot_error(A.forward, A.adjoint, x, y)
    assert err < TOL[np.float64], f"{name}: batched dot-test error {err:.3e}"
    # and each batch item on its own
    for idx in np.ndindex(2, 3):
        err_i = dot_error(A.forward, A.adjoint, x[idx], y[idx])
        assert err_i < TOL[np.float64]


@pytest.mark.parametrize("name", Z_DOMINANT)
def test_z_dominant_cases_exercise_the_z_path(name: str) -> None:
    _, geom, vol = _build(name, "odd")
    counts = _dominant_axes(geom, vol)
    assert counts[0] > 0, f"{name}: no ray is dominated by z ({counts})"


def test_random_3d_parallel_rays_exercise_every_axis() -> None:
    _, geom, vol = _build("ParallelVec3D", "odd")
    counts = _dominant_axes(geom, vol)
    assert np.all(counts > 0), counts


def _wrong_geometries() -> dict[str, tuple[str, Any]]:
    """Cases paired with a slightly different geometry, whose adjoint is wrong for them."""
    return {
        "fan-arc-rotated": (
            "FanBeam2D-arc",
            FanBeam2D(
                angles=_angles(12) + 0.05,
                n_det=_n_det("odd"),
                det_spacing=1.5,
                src_iso=40.0,
                iso_det=25.0,
                detector="arc",
                det_offset_u=1.3,
            ),
        ),
        "par2d-shifted": (
            "ParallelBeam2D",
            ParallelBeam2D(
                angles=_angles(11, np.pi), n_det=_n_det("odd"), det_spacing=1.1, det_offset_u=1.1
            ),
        ),
        "cone-rotated": (
            "ConeBeam3D-offsets",
            ConeBeam3D(
                angles=_angles(8) + 0.05,
                det_shape=_det3("odd"),
                det_spacing=(1.6, 1.8),
                src_iso=40.0,
                iso_det=30.0,
                det_offset_u=1.5,
                det_offset_v=-2.0,
            ),
        ),
        "par3d-shifted": (
            "ParallelBeam3D",
            ParallelBeam3D(
                angles=_angles(7, np.pi),
                det_shape=_det3("odd"),
                det_spacing=(1.2, 1.0),
                det_offset_u=0.7,
                det_offset_v=0.1,
            ),
        ),
    }


@pytest.mark.parametrize("wrong", list(_wrong_geometries()))
def test_dot_test_detects_a_wrong_adjoint(wrong: str) -> None:
    name, other = _wrong_geometries()[wrong]
    A, _, vol = _build(name, "odd")
    B = Projector(other, vol)
    x, y = _inputs(A, np.float64, (), seed=3)
    good = dot_error(A.forward, A.adjoint, x, y)
    bad = dot_error(A.forward, B.adjoint, x, y)
    assert good < TOL[np.float64]
    assert bad > 1e3 * TOL[np.float64], f"a wrong adjoint passed the dot test ({bad:.3e})"


def test_dot_test_detects_a_scaled_adjoint() -> None:
    A, _, _ = _build("ConeBeamVec-tilted", "even")
    x, y = _inputs(A, np.float64, (), seed=4)
    bad = dot_error(A.forward, lambda q: 1.000001 * A.adjoint(q), x, y)
    assert bad > TOL[np.float64]
