"""Voxel-driven backprojection (``Projector.backproject``) against analytic results.

The backprojector reads each projection at the point where the ray through the
voxel centre meets the detector, with linear (2D) or bilinear (3D)
interpolation. Interpolating a linear function is exact, so backprojecting a
ramp ``p[view, j] = j`` gives, at every voxel, the sum over views of the
voxel's fractional detector index, which is computed here from the conventions
(docs/conventions.md) with a different method (a linear solve per voxel).
"""

from __future__ import annotations

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
    Projector,
    VolumeGeometry,
)

VOL2 = VolumeGeometry(shape=(21, 25), voxel_size=(0.9, 1.1), center=(1.0, -1.5))
VOL3 = VolumeGeometry(shape=(9, 11, 10), voxel_size=(1.0, 0.9, 1.1), center=(0.5, -0.5, 1.0))
ANGLES = np.linspace(0.2, 0.2 + 2 * np.pi, 7, endpoint=False)


def _voxels(vol: VolumeGeometry) -> np.ndarray:
    """Voxel centres, shape ``(*vol.shape, ndim)``, components in array order."""
    grids = np.meshgrid(*(vol.coords(a) for a in range(vol.ndim)), indexing="ij")
    return np.stack(grids, axis=-1)


def detector_coords(geom: Any, points: np.ndarray) -> np.ndarray:
    """Fractional detector index (2D) or (col, row) indices (3D) of ``points`` per view.

    Returns shape ``(n_views, *points.shape[:-1])`` in 2D and
    ``(n_views, *points.shape[:-1], 2)`` in 3D.
    """
    vec = geom.to_vectors()
    pts = points.reshape(-1, points.shape[-1])
    out = []
    for k in range(vec.n_views):
        c = vec.det_centers[k]
        u = vec.det_u[k]
        if vec.ndim == 2:
            half = (vec.det_shape[0] - 1) / 2
            if hasattr(vec, "ray_dirs"):
                d = np.broadcast_to(vec.ray_dirs[k], pts.shape)
                start = pts
            else:
                s = vec.sources[k]
                if vec.detector.value == "arc":
                    central = c - s
                    r = pts - s
                    cross = central[0] * r[:, 1] - central[1] * r[:, 0]
                    gamma = np.arctan2(cross, r @ central)
                    side = np.sign(central[0] * u[1] - central[1] * u[0])
                    radius = np.linalg.norm(central)
                    out.append(side * gamma * radius / np.linalg.norm(u) + half)
                    continue
                d = pts - s
                start = np.broadcast_to(s, pts.shape)
            # start + lam d = c + t u  for each point
            t = np.array(
                [
                    np.linalg.solve(np.column_stack([dd, -u]), c - st)[1]
                    for dd, st in zip(d, start, strict=True)
                ]
            )
            out.append(t + half)
        else:
            v = vec.det_v[k]
            n_rows, n_cols = vec.det_shape
            if hasattr(vec, "ray_dirs"):
                d = np.broadcast_to(vec.ray_dirs[k], pts.shape)
                start = pts
            else:
                d = pts - vec.sources[k]
                start = np.broadcast_to(vec.sources[k], pts.shape)
            # start + lam d = c + a u + b v
            sol = np.array(
                [
                    np.linalg.solve(np.column_stack([dd, -u, -v]), c - st)
                    for dd, st in zip(d, start, strict=True)
                ]
            )
            out.append(np.stack([sol[:, 1] + (n_cols - 1) / 2, sol[:, 2] + (n_rows - 1) / 2], -1))
    shape = points.shape[:-1]
    return np.stack([o.reshape(*shape, *o.shape[1:]) for o in out])


def _cases_2d() -> dict[str, Any]:
    return {
        "parallel": ParallelBeam2D(angles=ANGLES, n_det=61, det_spacing=0.8, det_offset_u=0.9),
        "fan-flat": FanBeam2D(
            angles=ANGLES, n_det=61, det_spacing=1.2, src_iso=40.0, iso_det=30.0, det_offset_u=1.1
        ),
        "fan-arc": FanBeam2D(
            angles=ANGLES,
            n_det=61,
            det_spacing=1.2,
            src_iso=40.0,
            iso_det=30.0,
            detector="arc",
            det_offset_u=1.1,
        ),
        "fanvec-flat-tilted": FanBeamVec(
            sources=[[-40.0, 3.0], [5.0, 42.0], [30.0, -28.0]],
            det_centers=[[30.0, -2.0], [-4.0, -31.0], [-22.0, 20.0]],
            det_u=[[0.3, 1.2], [-1.2, 0.4], [0.9, 0.9]],
            n_det=61,
        ),
    }


def _cases_3d() -> dict[str, Any]:
    return {
        "parallel3d": ParallelBeam3D(
            angles=ANGLES, det_shape=(21, 31), det_spacing=(0.9, 0.8), det_offset_v=0.4
        ),
        "cone3d": ConeBeam3D(
            angles=ANGLES,
            det_shape=(25, 35),
            det_spacing=(1.1, 1.2),
            src_iso=40.0,
            iso_det=30.0,
            det_offset_u=1.2,
            det_offset_v=-0.8,
        ),
        "conevec-tilted-sheared": ConeBeamVec(
            sources=[[3.0, -40.0, 2.0], [-2.0, 5.0, 41.0]],
            det_centers=[[-1.0, 30.0, -1.0], [0.5, -3.0, -32.0]],
            det_u=[[0.1, 0.2, 1.2], [0.2, 1.1, 0.1]],
            det_v=[[1.1, 0.1, 0.4], [1.2, -0.1, 0.3]],  # not orthogonal to u
            det_shape=(25, 35),
        ),
    }


# ----------------------------------------------------------------- geometry


@pytest.mark.parametrize("name", list(_cases_2d()))
def test_backprojected_ramp_2d_is_the_sum_of_detector_coordinates(name: str) -> None:
    geom = _cases_2d()[name]
    A = Projector(geom, VOL2)
    idx = detector_coords(geom, _voxels(VOL2))
    n_det = geom.det_shape[0]
    assert idx.min() > 0 and idx.max() < n_det - 1  # every voxel lands on the detector
    ramp = np.broadcast_to(np.arange(n_det, dtype=np.float64), geom.proj_shape)
    np.testing.assert_allclose(A.backproject(ramp), idx.sum(axis=0), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("name", list(_cases_3d()))
def test_backprojected_ramps_3d_are_the_sums_of_detector_coordinates(name: str) -> None:
    geom = _cases_3d()[name]
    A = Projector(geom, VOL3)
    idx = detector_coords(geom, _voxels(VOL3))
    n_rows, n_cols = geom.det_shape
    assert idx[..., 0].min() > 0 and idx[..., 0].max() < n_cols - 1
    assert idx[..., 1].min() > 0 and idx[..., 1].max() < n_rows - 1
    cols = np.broadcast_to(np.arange(n_cols, dtype=np.float64), geom.proj_shape)
    rows = np.broadcast_to(np.arange(n_rows, dtype=np.float64)[:, None], geom.proj_shape)
    np.testing.assert_allclose(A.backproject(cols), idx[..., 0].sum(0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(A.backproject(rows), idx[..., 1].sum(0), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("theta", [0.0, 0.4, np.pi / 2, 2.2])
def test_parallel_delta_backprojects_to_a_line_through_the_point(theta: float) -> None:
    vol = VolumeGeometry(shape=(41, 41), voxel_size=1.0)
    iy, ix = 12, 30
    y, x = vol.coords(0)[iy], vol.coords(1)[ix]
    t_point = x * np.cos(theta) + y * np.sin(theta)
    n_det, h = 81, 0.7
    j0 = 55
    # shift the detector so that element j0 is centred exactly on the point
    geom = ParallelBeam2D(
        angles=[theta], n_det=n_det, det_spacing=h, det_offset_u=t_point - (j0 - 40) * h
    )
    sino = np.zeros(geom.proj_shape)
    sino[0, j0] = 1.0
    bp = Projector(geom, vol).backproject(sino)
    yy, xx = np.meshgrid(vol.coords(0), vol.coords(1), indexing="ij")
    dist = (xx * np.cos(theta) + yy * np.sin(theta)) - t_point  # signed distance to the line
    np.testing.assert_allclose(bp, np.clip(1 - np.abs(dist) / h, 0, None), atol=1e-12)
    assert bp[iy, ix] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.abs(dist[bp > 0]) < h)
    assert np.count_nonzero(bp) >= 41  # a line across the image, not a dot


def test_constant_sinogram_backprojects_to_a_constant_disc() -> None:
    n = 41
    vol = VolumeGeometry(shape=(n, n), voxel_size=1.0)
    n_views = 60
    geom = ParallelBeam2D(angles=np.linspace(0, np.pi, n_views, endpoint=False), n_det=n)
    bp = Projector(geom, vol).backproject(np.ones(geom.proj_shape))
    yy, xx = np.meshgrid(vol.coords(0), vol.coords(1), indexing="ij")
    inside = yy**2 + xx**2 <= ((n - 1) / 2) ** 2
    np.testing.assert_allclose(bp[inside], n_views, rtol=1e-12)
    assert np.all(bp <= n_views + 1e-9)
    assert bp[0, 0] < n_views  # the corners fall off the detector in some views


# ------------------------------------------------------- isocentre readings


@pytest.mark.parametrize(
    "geom",
    [
        ParallelBeam2D(angles=ANGLES, n_det=31),
        FanBeam2D(angles=ANGLES, n_det=31, det_spacing=1.3, src_iso=40.0, iso_det=30.0),
        FanBeam2D(
            angles=ANGLES, n_det=31, det_spacing=1.3, src_iso=40.0, iso_det=30.0, detector="arc"
        ),
    ],
    ids=["parallel", "fan-flat", "fan-arc"],
)
def test_isocentre_pixel_reads_the_central_element(geom: Any) -> None:
    vol = VolumeGeometry(shape=(15, 15), voxel_size=1.0)  # pixel (7, 7) sits at 0
    y = np.random.default_rng(60).random(geom.proj_shape)
    bp = Projector(geom, vol).backproject(y)
    assert bp[7, 7] == pytest.approx(y[:, 15].sum(), rel=1e-12)


def test_isocentre_voxel_reads_the_detector_centre_cone() -> None:
    vol = VolumeGeometry(shape=(9, 9, 9), voxel_size=1.0)  # voxel (4, 4, 4) sits at 0
    geom = ConeBeam3D(
        angles=ANGLES, det_shape=(11, 13), det_spacing=1.5, src_iso=40.0, iso_det=30.0
    )
    proj = np.random.default_rng(61).random(geom.proj_shape)
    A = Projector(geom, vol)
    assert A.backproject(proj)[4, 4, 4] == pytest.approx(proj[:, 5, 6].sum(), rel=1e-12)
    fdk = A.backproject(proj, weighting="fdk")[4, 4, 4]
    assert fdk == pytest.approx((geom.src_det / geom.src_iso) ** 2 * proj[:, 5, 6].sum(), rel=1e-12)


# ---------------------------------------------------------------- weighting


def _fdk_weight(geom: Any, points: np.ndarray) -> np.ndarray:
    """The documented FDK weight per view and point (flat: (D_sd / L)^2, arc: (R / |X - S|)^2)."""
    vec = geom.to_vectors()
    out = []
    for k in range(vec.n_views):
        s, c = vec.sources[k], vec.det_centers[k]
        if getattr(vec, "detector", None) is not None and vec.detector.value == "arc":
            radius = np.linalg.norm(c - s)
            out.append((radius / np.linalg.norm(points - s, axis=-1)) ** 2)
            continue
        if vec.ndim == 2:
            normal = np.array([-vec.det_u[k][1], vec.det_u[k][0]])
        else:
            normal = np.cross(vec.det_u[k], vec.det_v[k])
        normal = normal / np.linalg.norm(normal)
        d_sd = abs((c - s) @ normal)  # source to detector plane
        depth = np.abs((points - s) @ normal)  # voxel depth along the normal
        out.append((d_sd / depth) ** 2)
    return np.stack(out)


FDK_CASES = {
    "fan-flat": (_cases_2d()["fan-flat"], VOL2),
    "fan-arc": (_cases_2d()["fan-arc"], VOL2),
    "fanvec-flat-tilted": (_cases_2d()["fanvec-flat-tilted"], VOL2),
    "cone3d": (_cases_3d()["cone3d"], VOL3),
    "conevec-tilted-sheared": (_cases_3d()["conevec-tilted-sheared"], VOL3),
}


@pytest.mark.parametrize("name", list(FDK_CASES))
def test_fdk_weight_matches_the_formula_per_view(name: str) -> None:
    geom, vol = FDK_CASES[name]
    A = Projector(geom, vol)
    weights = _fdk_weight(geom, _voxels(vol))
    rng = np.random.default_rng(62)
    for k in range(geom.n_views):
        # one view at a time: a random sinogram that is zero in every other view
        y = np.zeros(geom.proj_shape)
        y[k] = rng.random(geom.proj_shape[1:])
        plain = A.backproject(y)
        fdk = A.backproject(y, weighting="fdk")
        assert np.count_nonzero(plain) == plain.size
        np.testing.assert_allclose(fdk, weights[k] * plain, rtol=1e-10)
        assert np.ptp(weights[k]) > 0.05  # the weight varies over the volume


def test_fdk_weight_of_a_single_voxel_circular_geometries() -> None:
    """Written out for one voxel with the circular parameters, as in the docs."""
    vol = VolumeGeometry(shape=(5, 5), voxel_size=2.0, center=(1.0, 3.0))
    iy, ix = 4, 1
    X = np.array([vol.coords(0)[iy], vol.coords(1)[ix]])  # (y, x)
    theta = 0.7
    kw = {"angles": [theta], "n_det": 41, "det_spacing": 1.5, "src_iso": 30.0, "iso_det": 20.0}
    s = 30.0 * np.array([-np.cos(theta), np.sin(theta)])  # (y, x) of src_iso (sin, -cos)
    central = -s / 30.0
    y = np.ones((1, 41))
    for detector, expected in [
        ("flat", ((30.0 + 20.0) / ((X - s) @ central)) ** 2),
        ("arc", ((30.0 + 20.0) / np.linalg.norm(X - s)) ** 2),
    ]:
        A = Projector(FanBeam2D(detector=detector, **kw), vol)
        ratio = A.backproject(y, weighting="fdk")[iy, ix] / A.backproject(y)[iy, ix]
        assert ratio == pytest.approx(expected, rel=1e-12), detector


@pytest.mark.parametrize("name", list(FDK_CASES))
def test_fdk_changes_divergent_beam_results(name: str) -> None:
    geom, vol = FDK_CASES[name]
    A = Projector(geom, vol)
    y = np.random.default_rng(63).random(geom.proj_shape)
    assert not np.allclose(A.backproject(y, weighting="fdk"), A.backproject(y), rtol=1e-3)


@pytest.mark.parametrize(
    ("geom", "vol"),
    [(_cases_2d()["parallel"], VOL2), (_cases_3d()["parallel3d"], VOL3)],
    ids=["parallel2d", "parallel3d"],
)
def test_fdk_weight_is_one_for_parallel_beams(geom: Any, vol: VolumeGeometry) -> None:
    A = Projector(geom, vol)
    y = np.random.default_rng(64).random(geom.proj_shape)
    np.testing.assert_array_equal(A.backproject(y, weighting="fdk"), A.backproject(y))


def test_backproject_is_not_the_adjoint_but_close_in_shape() -> None:
    """Voxel-driven backprojection is a different operator from the exact adjoint."""
    geom = _cases_2d()["parallel"]
    A = Projector(geom, VOL2)
    y = np.random.default_rng(65).random(geom.proj_shape)
    bp, adj = A.backproject(y), A.T(y)
    assert not np.allclose(bp, adj)
    # both smear the same data along the same lines: strongly correlated
    assert np.corrcoef(bp.ravel(), adj.ravel())[0, 1] > 0.9
