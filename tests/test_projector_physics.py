"""Physics properties of the forward projection, checked against analytic formulas.

* A point at the isocentre projects to the same detector position in every
  view; a point elsewhere traces the curve the conventions predict
  (parallel: ``t = x cos(theta) + y sin(theta)``; fan and cone: the
  intersection of the line source -> point with the detector).
* A uniform disc (2D) or ball (3D) of attenuation ``mu`` and radius ``r``
  projects to ``mu * 2 * sqrt(r^2 - d^2)``, ``d`` the distance of the ray from
  the centre, to within 1% for ``d < 0.9 r`` (the phantom is built by
  supersampling, so its pixels carry the exact partial-volume fractions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from _geometries import arc_ray_dirs
from medrecon import (
    ConeBeam3D,
    FanBeam2D,
    ParallelBeam2D,
    Projector,
    VolumeGeometry,
)

ANGLES = np.linspace(0.0, 2 * np.pi, 24, endpoint=False) + 0.05


def centroid(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Centre of mass along ``axis`` in element index units."""
    idx = np.arange(p.shape[axis], dtype=np.float64)
    shape = [1] * p.ndim
    shape[axis] = -1
    return np.asarray((p * idx.reshape(shape)).sum(axis=axis) / p.sum(axis=axis))


# --------------------------------------------------------------------------
# detector coordinates of a point, from docs/conventions.md
# --------------------------------------------------------------------------


def detector_index_2d(geom: Any, point_yx: np.ndarray) -> np.ndarray:
    """Fractional detector index where the ray through ``point`` lands, per view."""
    vec = geom.to_vectors()
    c, u = vec.det_centers, vec.det_u
    half = (vec.det_shape[0] - 1) / 2
    p = np.asarray(point_yx, dtype=np.float64)
    if isinstance(geom, ParallelBeam2D):
        # move along the ray onto the detector line: (p - c) . u / |u|^2 for
        # rays perpendicular to u (true for ParallelBeam2D)
        return np.sum((p - c) * u, axis=1) / np.sum(u * u, axis=1) + half
    s = vec.sources
    if geom.detector.value == "flat":
        # s + lam (p - s) = c + t u  -> solve the 2x2 system per view
        out = np.empty(len(s))
        for k in range(len(s)):
            m = np.column_stack([p - s[k], -u[k]])
            _, t = np.linalg.solve(m, c[k] - s[k])
            out[k] = t
        return out + half
    central = c - s
    radius = np.linalg.norm(central, axis=1)
    d = p - s
    # signed angle from the central ray to (p - s), positive towards u
    cross = central[:, 0] * d[:, 1] - central[:, 1] * d[:, 0]
    dot = np.sum(central * d, axis=1)
    gamma = np.arctan2(cross, dot)
    sign = np.sign(central[:, 0] * u[:, 1] - central[:, 1] * u[:, 0])
    return sign * gamma * radius / np.linalg.norm(u, axis=1) + half


def _geometries_2d(n_det: int) -> dict[str, Any]:
    return {
        "parallel": ParallelBeam2D(angles=ANGLES, n_det=n_det, det_spacing=0.7),
        "fan-flat": FanBeam2D(
            angles=ANGLES, n_det=n_det, det_spacing=1.1, src_iso=60.0, iso_det=40.0
        ),
        "fan-arc": FanBeam2D(
            angles=ANGLES,
            n_det=n_det,
            det_spacing=1.1,
            src_iso=60.0,
            iso_det=40.0,
            detector="arc",
        ),
    }


GEOMS_2D = list(_geometries_2d(1))


@pytest.mark.parametrize("name", GEOMS_2D)
def test_centred_point_projects_to_the_detector_centre(name: str) -> None:
    vol = VolumeGeometry(shape=(33, 33), voxel_size=1.0)  # odd: pixel 16 sits at 0
    img = np.zeros(vol.shape)
    img[16, 16] = 1.0
    n_det = 61
    geom = _geometries_2d(n_det)[name]
    sino = Projector(geom, vol)(img)
    centre = (n_det - 1) / 2
    assert np.all(np.argmax(sino, axis=1) == centre)
    c = centroid(sino)
    # parallel: exactly symmetric footprint; fan: nearly (the grid is not
    # symmetric about an oblique central ray)
    assert np.max(np.abs(c - centre)) < (1e-9 if name == "parallel" else 0.02), c - centre


@pytest.mark.parametrize("name", GEOMS_2D)
def test_off_centre_point_follows_the_predicted_curve(name: str) -> None:
    vol = VolumeGeometry(shape=(33, 33), voxel_size=1.0, center=(0.3, -0.2))
    img = np.zeros(vol.shape)
    iy, ix = 7, 25
    img[iy, ix] = 1.0
    point = np.array([vol.coords(0)[iy], vol.coords(1)[ix]])
    n_det = 81
    geom = _geometries_2d(n_det)[name]
    sino = Projector(geom, vol)(img)
    expected = detector_index_2d(geom, point)
    got = centroid(sino)
    # the trace swings over tens of elements; it is followed to a tenth of a
    # voxel (measured: 0.05 voxel, the sampling error of a one-pixel footprint)
    assert np.ptp(expected) > 20
    pitch_at_iso = geom.det_spacing
    if name != "parallel":
        pitch_at_iso *= geom.src_iso / geom.src_det
    err = np.max(np.abs(got - expected)) * pitch_at_iso
    assert err < 0.1 * vol.voxel_size[0], f"{name}: centroid off the curve by {err:.3f} mm"
    # and a mirrored point (the wrong sign convention) would be far off
    mirrored = detector_index_2d(geom, point * np.array([-1.0, 1.0]))
    assert np.max(np.abs(got - mirrored)) > 5


def _cone(det_shape: tuple[int, int]) -> ConeBeam3D:
    return ConeBeam3D(
        angles=ANGLES, det_shape=det_shape, det_spacing=1.2, src_iso=60.0, iso_det=40.0
    )


def test_centred_point_cone() -> None:
    vol = VolumeGeometry(shape=(17, 17, 17), voxel_size=1.0)
    img = np.zeros(vol.shape)
    img[8, 8, 8] = 1.0
    n_rows, n_cols = 21, 31
    proj = Projector(_cone((n_rows, n_cols)), vol)(img)
    central_row = proj[:, (n_rows - 1) // 2, :]
    assert np.all(np.argmax(central_row, axis=1) == (n_cols - 1) // 2)
    assert np.max(np.abs(centroid(central_row) - (n_cols - 1) / 2)) < 0.02
    # rows: exactly symmetric about the mid-plane z = 0
    assert np.max(np.abs(centroid(proj.sum(axis=2)) - (n_rows - 1) / 2)) < 1e-9


def test_off_centre_point_cone() -> None:
    vol = VolumeGeometry(shape=(17, 17, 17), voxel_size=1.0)
    img = np.zeros(vol.shape)
    iz, iy, ix = 3, 12, 2
    img[iz, iy, ix] = 1.0
    z, y, x = vol.coords(0)[iz], vol.coords(1)[iy], vol.coords(2)[ix]
    n_rows, n_cols = 31, 41
    geom = _cone((n_rows, n_cols))
    proj = Projector(geom, vol)(img)
    # analytic: magnification D_sd / (src_iso + depth), depth along the central ray
    s, c = np.sin(ANGLES), np.cos(ANGLES)
    depth = -x * s + y * c  # (x, y) . (-sin, cos)
    lateral = x * c + y * s  # (x, y) . (cos, sin) = along u
    mag = geom.src_det / (geom.src_iso + depth)
    col = lateral * mag / geom.det_spacing[1] + (n_cols - 1) / 2
    row = z * mag / geom.det_spacing[0] + (n_rows - 1) / 2
    assert np.ptp(col) > 10
    assert np.max(np.abs(centroid(proj.sum(axis=1)) - col)) < 0.1
    assert np.max(np.abs(centroid(proj.sum(axis=2)) - row)) < 0.1


# --------------------------------------------------------------------------
# uniform disc and ball
# --------------------------------------------------------------------------


def supersampled_ball(
    vol: VolumeGeometry, center: np.ndarray, radius: float, sub: int
) -> np.ndarray:
    """Fraction of each voxel inside the ball, from ``sub`` samples per axis."""
    out = np.zeros(vol.shape)
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    grids = [vol.coords(a) - center[a] for a in range(vol.ndim)]
    for shift in np.ndindex(*(sub,) * vol.ndim):
        axes = [
            g + offsets[k] * vol.voxel_size[a]
            for a, (g, k) in enumerate(zip(grids, shift, strict=True))
        ]
        r2 = sum(
            (ax**2).reshape([-1 if i == a else 1 for i in range(vol.ndim)])
            for a, ax in enumerate(axes)
        )
        out += r2 <= radius**2
    return out / sub**vol.ndim


def _ray_distance(p0: np.ndarray, d: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Distance from ``center`` to the lines ``p0 + t d`` (``d`` any length)."""
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    r = center - p0
    along = np.sum(r * d, axis=-1, keepdims=True)
    return np.asarray(np.linalg.norm(r - along * d, axis=-1))


def _disc_rays(geom: Any) -> tuple[np.ndarray, np.ndarray]:
    vec = geom.to_vectors()
    j = np.arange(vec.det_shape[0]) - (vec.det_shape[0] - 1) / 2
    pix = vec.det_centers[:, None, :] + j[None, :, None] * vec.det_u[:, None, :]
    if isinstance(geom, ParallelBeam2D):
        return pix, np.broadcast_to(vec.ray_dirs[:, None, :], pix.shape)
    src = np.broadcast_to(vec.sources[:, None, :], pix.shape)
    if geom.detector.value == "flat":
        return src, pix - src
    return src, arc_ray_dirs(vec, j)


@pytest.mark.parametrize("name", GEOMS_2D)
def test_uniform_disc_projects_to_chord_lengths(name: str) -> None:
    vol = VolumeGeometry(shape=(256, 256), voxel_size=0.5)
    center = np.array([5.0, -8.0])  # (y, x) mm, off the rotation centre
    radius, mu = 40.0, 0.02
    img = mu * supersampled_ball(vol, center, radius, sub=8)
    angles = np.linspace(0.0, 2 * np.pi, 8, endpoint=False) + 0.1
    geom = {
        "parallel": ParallelBeam2D(angles=angles, n_det=200, det_spacing=0.5),
        "fan-flat": FanBeam2D(
            angles=angles, n_det=200, det_spacing=0.8, src_iso=150.0, iso_det=100.0
        ),
        "fan-arc": FanBeam2D(
            angles=angles,
            n_det=200,
            det_spacing=0.8,
            src_iso=150.0,
            iso_det=100.0,
            detector="arc",
        ),
    }[name]
    sino = Projector(geom, vol)(img)
    dist = _ray_distance(*_disc_rays(geom), center)
    inside = dist < 0.9 * radius
    assert inside.sum() > 0.3 * inside.size
    expected = 2 * mu * np.sqrt(radius**2 - dist[inside] ** 2)
    err = np.max(np.abs(sino[inside] - expected) / expected)
    assert err < 0.01, f"{name}: disc projection off by up to {err:.3%}"
    outside = dist > radius + 2 * max(vol.voxel_size) * 1.5
    assert np.all(sino[outside] == 0)


def test_uniform_ball_cone_projects_to_chord_lengths() -> None:
    # The voxelised ball's edge is blurred by about a voxel, which bends the
    # chord profile near the rim (relative error ~ 3.5 (voxel / r)^2 /
    # (1 - (d / r)^2)^2): r = 56 voxels keeps it under 1% for d < 0.9 r on every
    # row (24 voxels would give 2.4%).
    vol = VolumeGeometry(shape=(128, 128, 128), voxel_size=0.5, center=(0.5, 0.0, -0.5))
    center = np.array([1.0, -2.0, 1.5])  # (z, y, x) mm
    radius, mu = 28.0, 0.02
    img = mu * supersampled_ball(vol, center, radius, sub=3)
    geom = ConeBeam3D(
        angles=np.linspace(0.0, 2 * np.pi, 4, endpoint=False) + 0.1,
        det_shape=(41, 121),
        det_spacing=0.8,
        src_iso=100.0,
        iso_det=50.0,
    )
    proj = Projector(geom, vol)(img)
    vec = geom.to_vectors()
    n_rows, n_cols = geom.det_shape
    j = np.arange(n_cols) - (n_cols - 1) / 2
    i = np.arange(n_rows) - (n_rows - 1) / 2
    pix = (
        vec.det_centers[:, None, None, :]
        + j[None, None, :, None] * vec.det_u[:, None, None, :]
        + i[None, :, None, None] * vec.det_v[:, None, None, :]
    )
    src = np.broadcast_to(vec.sources[:, None, None, :], pix.shape)
    dist = _ray_distance(src, pix - src, center)
    inside = dist < 0.9 * radius
    expected = 2 * mu * np.sqrt(radius**2 - dist[inside] ** 2)
    err = np.abs(proj[inside] - expected) / expected
    central = inside[:, (n_rows - 1) // 2, :]
    assert central.sum() > 0.3 * central.size
    assert inside.sum() > 0.3 * inside.size  # rows above and below the mid-plane too
    assert np.max(err) < 0.01, f"ball projection off by up to {np.max(err):.3%}"
