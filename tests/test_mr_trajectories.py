"""Trajectories, Poisson-disc masks and density compensation (medrecon.mr.trajectories)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medrecon.errors import GeometryError, ShapeError
from medrecon.mr.nufft import NufftOperator
from medrecon.mr.trajectories import (
    GOLDEN_ANGLE,
    pipe_dcf,
    poisson_disc_mask,
    radial,
    ramp_dcf,
    spiral,
)


def spoke_angles(k: np.ndarray) -> np.ndarray:
    """Angle of each spoke from the kx axis, from its first sample (radius -pi)."""
    first = -k[:, 0]  # r = -pi: flip to the positive half
    return np.mod(np.arctan2(first[:, 0], first[:, 1]), np.pi)


# ------------------------------------------------------------------------------ radial
def test_radial_golden_angle_increments() -> None:
    assert math.degrees(GOLDEN_ANGLE) == pytest.approx(111.246117975, abs=1e-8)
    k = radial(40, 32)
    assert k.shape == (40, 32, 2) and k.dtype == np.float64
    assert k.min() >= -np.pi and k.max() < np.pi
    theta = spoke_angles(k)
    steps = np.mod(np.diff(theta), np.pi)
    np.testing.assert_allclose(steps, math.radians(111.246117975), atol=1e-9)
    # the centre sample is DC and the readout spacing is 2 pi / n_readout
    np.testing.assert_array_equal(k[:, 16], 0.0)
    np.testing.assert_allclose(np.linalg.norm(np.diff(k, axis=1), axis=-1), 2 * np.pi / 32)
    # column 0 is ky: spoke 0 lies along kx
    np.testing.assert_allclose(k[0, :, 0], 0.0, atol=1e-15)
    np.testing.assert_allclose(k[0, :, 1], -np.pi + 2 * np.pi * np.arange(32) / 32)


def test_radial_uniform() -> None:
    k = radial(8, 16, golden=False)
    np.testing.assert_allclose(spoke_angles(k), np.arange(8) * np.pi / 8, atol=1e-12)
    # spoke 4 of 8 is at 90 degrees: along ky
    np.testing.assert_allclose(k[4, :, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(k[4, :, 0], -np.pi + 2 * np.pi * np.arange(16) / 16)
    assert k.min() >= -np.pi and k.max() < np.pi
    with pytest.raises(ValueError, match="n_spokes"):
        radial(0, 16)
    with pytest.raises(ValueError, match="n_readout"):
        radial(4, 2.5)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ spiral
def test_spiral_geometry() -> None:
    n_int, n_samp, fov, res = 4, 2000, 240.0, 3.75  # a 64 x 64 grid
    k = spiral(n_int, n_samp, fov=fov, resolution=res)
    assert k.shape == (n_int, n_samp, 2)
    r = np.linalg.norm(k, axis=-1)
    assert np.all(np.diff(r, axis=1) > 0) and r.max() < np.pi and r.max() > 0.99 * np.pi
    np.testing.assert_array_equal(k[:, 0], 0.0)
    # interleaves are rotations by 2 pi / L (kx + i ky)
    z = k[..., 1] + 1j * k[..., 0]
    np.testing.assert_allclose(z[1], z[0] * np.exp(2j * np.pi / n_int), atol=1e-12)
    # Nyquist at the edge: neighbouring arms 2 pi / n apart (n = fov / res = 64)
    turns = 64 / (2 * n_int)
    assert np.unwrap(np.angle(z[0]))[-1] == pytest.approx(2 * np.pi * turns * (1 - 1 / n_samp))
    per_turn = int(n_samp / turns)
    gap = (r[0, -1] - r[0, -1 - per_turn]) / n_int
    assert gap == pytest.approx(2 * np.pi / 64, rel=0.01)


def test_spiral_variable_density_and_errors() -> None:
    const = spiral(2, 500, fov=200.0, resolution=5.0)
    vd = spiral(2, 500, fov=200.0, resolution=5.0, alpha=2.0)
    # half way the variable-density spiral is still in the inner quarter of k-space
    assert np.linalg.norm(vd[0, 250]) == pytest.approx(np.pi / 4, rel=1e-9)
    assert np.linalg.norm(const[0, 250]) == pytest.approx(np.pi / 2, rel=1e-9)
    assert vd.min() >= -np.pi and vd.max() < np.pi
    with pytest.raises(ValueError, match="fov"):
        spiral(2, 100, fov=0.0, resolution=1.0)
    with pytest.raises(ValueError, match="resolution"):
        spiral(2, 100, fov=10.0, resolution=20.0)
    with pytest.raises(ValueError, match="alpha"):
        spiral(2, 100, fov=10.0, resolution=1.0, alpha=0.5)
    with pytest.raises(ValueError, match="n_interleaves"):
        spiral(0, 100, fov=10.0, resolution=1.0)


# ------------------------------------------------------------------------ Poisson disc
@pytest.mark.parametrize(
    ("shape", "acceleration", "calib"),
    [((96, 80), 4.0, (16, 16)), ((128, 128), 8.0, (24, 24)), ((64, 48), 2.5, (12, 8))],
)
def test_poisson_disc_acceleration_and_calibration(
    shape: tuple[int, int], acceleration: float, calib: tuple[int, int]
) -> None:
    m = poisson_disc_mask(shape, acceleration, calib=calib, seed=3)
    assert m.shape == shape and m.dtype == np.bool_
    assert m.size / m.sum() == pytest.approx(acceleration, rel=0.02)
    sl = tuple(
        slice(n // 2 - c // 2, n // 2 - c // 2 + c) for n, c in zip(shape, calib, strict=True)
    )
    assert m[sl].all()
    # the calibration block is exactly the fully sampled centre: just outside it is sparse
    ring = np.zeros(shape, bool)
    big = tuple(
        slice(n // 2 - c // 2 - 3, n // 2 - c // 2 + c + 3)
        for n, c in zip(shape, calib, strict=True)
    )
    ring[big] = True
    ring[sl] = False
    if acceleration >= 4:  # at low acceleration the variable-density centre is dense anyway
        assert m[ring].mean() < 0.6
    # deterministic per seed, different across seeds
    np.testing.assert_array_equal(m, poisson_disc_mask(shape, acceleration, calib=calib, seed=3))
    assert not np.array_equal(m, poisson_disc_mask(shape, acceleration, calib=calib, seed=4))


def test_poisson_disc_spacing_and_variable_density() -> None:
    shape = (96, 80)
    m = poisson_disc_mask(shape, 8.0, calib=(0, 0), radius_ratio=1.0, seed=1)
    pts = np.argwhere(m)
    d2 = np.sum((pts[:, None, :] - pts[None, :, :]) ** 2, axis=-1)
    np.fill_diagonal(d2, 10**6)
    assert d2.min() >= 4  # Poisson disc: no two samples within 2 pixels
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rho = np.hypot((yy - 48) / 48, (xx - 40) / 40)
    centre, edge = (rho > 0.2) & (rho < 0.4), (rho > 0.75) & (rho < 1.0)
    assert abs(m[centre].mean() - m[edge].mean()) < 0.3 * m.mean()  # uniform density
    vd = poisson_disc_mask(shape, 8.0, calib=(0, 0), radius_ratio=3.0, seed=1)
    assert vd[centre].mean() > 2.0 * vd[edge].mean()


def test_poisson_disc_errors() -> None:
    with pytest.raises(ValueError, match="acceleration"):
        poisson_disc_mask((32, 32), 0.5)
    with pytest.raises(ValueError, match="calibration"):
        poisson_disc_mask((32, 32), 4.0, calib=(24, 24))
    with pytest.raises(ShapeError):
        poisson_disc_mask((32, 32, 4), 4.0)
    with pytest.raises(ShapeError):
        poisson_disc_mask((16, 16), 2.0, calib=(24, 24))
    with pytest.raises(ValueError, match="radius_ratio"):
        poisson_disc_mask((32, 32), 2.0, calib=(4, 4), radius_ratio=0.5)


# ------------------------------------------------------------------ density compensation
def test_pipe_dcf_cartesian_is_one() -> None:
    k = 2 * np.pi * (np.arange(16) - 8) / 16
    cart = np.stack(np.meshgrid(k, k, indexing="ij"), axis=-1)
    w = pipe_dcf(cart, (16, 16))
    assert w.shape == (16, 16)
    np.testing.assert_allclose(w, 1.0, rtol=1e-3)


def test_pipe_dcf_matches_ramp_for_uniform_radial() -> None:
    n = 48
    k = radial(76, 2 * n, golden=False)
    w = pipe_dcf(k, (n, n))
    ramp = ramp_dcf(k, (n, n))
    assert w.shape == ramp.shape == (76, 2 * n) and np.all(w > 0)
    r = np.linalg.norm(k, axis=-1)
    mid = (r > 0.2) & (r < 2.8)  # away from the centre and the rim
    ratio = w[mid] / ramp[mid]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)
    assert np.percentile(np.abs(ratio - 1.0), 95) < 0.05


@pytest.mark.parametrize("golden", [True, False])
def test_pipe_dcf_gridding_of_constant_and_disc(golden: bool) -> None:
    n = 48
    k = radial(80, 2 * n, golden=golden)
    w = pipe_dcf(k, (n, n))
    op = NufftOperator(k, (n, n), eps=1e-8, dtype=np.complex128)
    yy, xx = np.mgrid[:n, :n] - n // 2
    interior = yy**2 + xx**2 < (0.25 * n) ** 2
    const = np.ones((n, n), np.complex128)
    rec = op.T(w * op(const))
    assert np.max(np.abs(rec - 1.0)[interior]) < 0.03
    disc = (yy**2 + xx**2 < (0.35 * n) ** 2).astype(np.complex128)
    rec = op.T(w * op(disc))
    assert abs(rec.real[interior].mean() - 1.0) < 0.02
    assert np.max(np.abs(rec - disc)[interior]) < 0.1
    # without density compensation the scale is far off: the test can fail
    raw = op.T(op(disc))
    assert abs(raw.real[interior].mean() - 1.0) > 0.5


def test_pipe_dcf_spiral_and_3d() -> None:
    k = spiral(8, 400, fov=32.0, resolution=1.0)
    w = pipe_dcf(k, (32, 32), n_iter=20)
    assert w.shape == (8, 400) and np.all(w > 0)
    r = np.linalg.norm(k, axis=-1)
    # samples are denser near the centre (uniform in tau): smaller weights there
    assert np.median(w[r < 0.5]) < 0.5 * np.median(w[r > 2.0])
    k3 = 2 * np.pi * (np.arange(8) - 4) / 8
    cart3 = np.stack(np.meshgrid(k3, k3, k3, indexing="ij"), axis=-1)
    np.testing.assert_allclose(pipe_dcf(cart3, (8, 8, 8), n_iter=10), 1.0, rtol=1e-3)


def test_ramp_dcf_values_and_errors() -> None:
    k = radial(50, 64, golden=False)
    w = ramp_dcf(k, (64, 64))
    dr = 2 * np.pi / 64
    r = np.linalg.norm(k, axis=-1)
    expected = np.pi * dr * np.maximum(r, dr / 4) / 50 * 64 * 64 / (2 * np.pi) ** 2
    np.testing.assert_allclose(w, expected)
    # total area: the disc of radius pi (plus a little), times N / (2 pi)^2
    assert w.sum() == pytest.approx(np.pi**3 * 64 * 64 / (2 * np.pi) ** 2, rel=0.02)
    with pytest.raises(ShapeError):
        ramp_dcf(k.reshape(-1, 2), (64, 64))
    with pytest.raises(ShapeError):
        ramp_dcf(k, (64, 64, 64))
    with pytest.raises(GeometryError):
        pipe_dcf(k * 1.1, (64, 64))
    with pytest.raises(ShapeError):
        pipe_dcf(k, (64,))
    with pytest.raises(ValueError, match="n_iter"):
        pipe_dcf(k, (64, 64), n_iter=0)
