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

from _geometries import Case, CaseFactory, angles, unit
from medrecon import (
    ConeBeam3D,
    ConeBeamVec,
    FanBeam2D,
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

KIT = CaseFactory(
    vol2={"odd": (15, 17), "even": (16, 12)},
    vol3={"odd": (7, 9, 11), "even": (8, 6, 10)},
    n_det={"odd": 21, "even": 24},
    det3={"odd": (9, 13), "even": (10, 12)},
)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _conevec_tilted(p: str) -> tuple[Any, VolumeGeometry]:
    """Circular-ish cone whose detector is rotated out of plane and sheared."""
    rng = np.random.default_rng(14)
    n = 8
    theta = angles(n)
    s, c = np.sin(theta), np.cos(theta)
    zeros = np.zeros(n)
    sources = 45.0 * np.stack([zeros, -c, s], 1) + np.stack([rng.normal(0, 2, n), zeros, zeros], 1)
    centers = 30.0 * np.stack([zeros, c, -s], 1)
    u = np.stack([zeros, s, c], 1)
    v = np.stack([np.ones(n), zeros, zeros], 1)
    tilt = np.stack([_rotation(np.random.default_rng(100 + i)) for i in range(n)])
    # a small random rotation of each detector: blend identity with a rotation
    mix = np.stack([np.eye(3) + 0.25 * (t - t.T) for t in tilt])
    u = 1.7 * unit(np.einsum("nij,nj->ni", mix, u))
    v = 1.5 * unit(np.einsum("nij,nj->ni", mix, v) + 0.3 * u)  # non-orthogonal u, v
    g = ConeBeamVec(sources=sources, det_centers=centers, det_u=u, det_v=v, det_shape=KIT.det3[p])
    return g, KIT.volume3(p)


def _parvec3d_zdom(p: str) -> tuple[Any, VolumeGeometry]:
    """Parallel rays running mostly along z (z dominates every ray)."""
    rng = np.random.default_rng(15)
    n = 6
    rays = unit(np.column_stack([np.ones(n), rng.normal(0, 0.3, (n, 2))]))
    a = unit(np.cross(rays, [0.0, 0.0, 1.0]))
    b = np.cross(rays, a)
    g = ParallelVec(
        ray_dirs=rays,
        det_centers=rng.normal(0, 1.0, (n, 3)),
        det_u=1.1 * a,
        det_v=1.2 * b,
        det_shape=KIT.det3[p],
    )
    return g, KIT.volume3(p)


def _conevec_wide(p: str) -> tuple[Any, VolumeGeometry]:
    """Cone with a source close above the volume: huge cone angle, z dominates."""
    rng = np.random.default_rng(16)
    n = 6
    sources = np.column_stack([np.full(n, 14.0), rng.normal(0, 3.0, (n, 2))])
    centers = np.column_stack([np.full(n, -12.0), rng.normal(0, 1.0, (n, 2))])
    phi = rng.uniform(0, 2 * np.pi, n)
    u = 2.5 * np.column_stack([np.zeros(n), np.cos(phi), np.sin(phi)])
    v = 2.2 * np.column_stack([np.zeros(n), -np.sin(phi), np.cos(phi)])
    g = ConeBeamVec(sources=sources, det_centers=centers, det_u=u, det_v=v, det_shape=KIT.det3[p])
    return g, KIT.volume3(p)


FAN: dict[str, Any] = {"n_views": 12, "det_spacing": 1.5, "src_iso": 40.0, "iso_det": 25.0}
FAN_VEC: dict[str, Any] = {"n_views": 9, "src_dist": (35, 50), "det_dist": (20, 30), "pitch": 1.6}
CASES: dict[str, Case] = {
    "ParallelBeam2D": KIT.parallel_2d(n_views=11),
    "FanBeam2D-flat": KIT.fan_2d("flat", **FAN),
    "FanBeam2D-arc": KIT.fan_2d("arc", **FAN),
    "ParallelVec2D": KIT.parallel_vec_2d(n_views=9),
    "FanBeamVec-flat": KIT.fan_vec("flat", **FAN_VEC),
    "FanBeamVec-arc": KIT.fan_vec("arc", **FAN_VEC),
    "ParallelBeam3D": KIT.parallel_3d(n_views=7),
    "ConeBeam3D-offsets": KIT.cone_3d(n_views=8, src_iso=40.0),
    "ParallelVec3D": KIT.parallel_vec_3d(n_views=8),
    "ConeBeamVec-tilted": _conevec_tilted,
    "ParallelVec3D-z-dominant": _parvec3d_zdom,
    "ConeBeamVec-wide-z-dominant": _conevec_wide,
    "ConeBeam3D-wide-cone": KIT.cone_3d_wide(
        n_views=6, row_spacing=6.0, src_iso=12.0, iso_det=10.0
    ),
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
                angles=angles(12) + 0.05,
                n_det=KIT.n_det["odd"],
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
                angles=angles(11, np.pi), n_det=KIT.n_det["odd"], det_spacing=1.1, det_offset_u=1.1
            ),
        ),
        "cone-rotated": (
            "ConeBeam3D-offsets",
            ConeBeam3D(
                angles=angles(8) + 0.05,
                det_shape=KIT.det3["odd"],
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
                angles=angles(7, np.pi),
                det_shape=KIT.det3["odd"],
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
