"""SENSE encoding operator and CG-SENSE (medrecon.mr.sense)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _mr_data import nrmse, ring_coil_maps
from medrecon.ct.simulate import shepp_logan
from medrecon.errors import DtypeError, NotDifferentiableError, ShapeError
from medrecon.geometry import VolumeGeometry
from medrecon.mr.fft import fft2c, ifft2c, rss
from medrecon.mr.masks import equispaced_mask, random_mask
from medrecon.mr.sense import SenseOperator, sense_recon

N = 64
N_COILS = 8


def phantom(n: int = N) -> np.ndarray:
    img = shepp_logan(VolumeGeometry(shape=(n, n), voxel_size=4.0))
    return (img / img.max()).astype(np.float64)


def complex_dot_test(op: SenseOperator, dtype: type, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)

    def rand(shape: tuple[int, ...]) -> np.ndarray:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)

    x = rand((2, *op.domain_shape))
    y = rand((2, *op.range_shape))
    lhs = np.vdot(op(x).astype(np.complex128), y.astype(np.complex128))
    rhs = np.vdot(x.astype(np.complex128), op.T(y).astype(np.complex128))
    return float(abs(lhs - rhs) / abs(lhs))


@pytest.mark.parametrize(("dtype", "tol"), [(np.complex128, 1e-6), (np.complex64, 1e-4)])
@pytest.mark.parametrize("masked", [False, True])
def test_dot_test(dtype: type, tol: float, masked: bool) -> None:
    mask = random_mask((N, N), 0.08, 4, seed=1) if masked else None
    op = SenseOperator(ring_coil_maps(N, N_COILS, dtype), mask)
    assert op.dtype == np.dtype(dtype)
    err = complex_dot_test(op, dtype)
    assert err < tol
    if dtype == np.complex128:
        assert err < 1e-12


def test_forward_adjoint_definitions_and_shapes() -> None:
    maps = ring_coil_maps(N, N_COILS)
    mask = equispaced_mask((N_COILS, N, N), 0.08, 4, seed=0)
    op = SenseOperator(maps, mask)
    assert op.domain_shape == (N, N) and op.range_shape == (N_COILS, N, N)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, N, N)) + 1j * rng.standard_normal((3, N, N))
    y = op(x)
    assert y.shape == (3, N_COILS, N, N) and y.dtype == np.complex128
    np.testing.assert_allclose(y, mask * fft2c(maps * x[:, None]), atol=1e-12)
    back = op.T(y)
    np.testing.assert_allclose(back, np.sum(np.conj(maps) * ifft2c(mask * y), axis=1), atol=1e-12)
    assert op.T.T is op and op.H is op.T
    np.testing.assert_allclose(op.adjoint(y), back)
    # unsampled lines are zero
    assert np.all(y[..., ~mask[0, 0]] == 0)


def test_fully_sampled_normal_is_identity_and_norm() -> None:
    op = SenseOperator(ring_coil_maps(N, N_COILS))
    x = phantom().astype(np.complex128)
    np.testing.assert_allclose(op.T(op(x)), x, atol=1e-12)
    assert op.norm() == pytest.approx(1.0, rel=1e-6)
    undersampled = SenseOperator(
        ring_coil_maps(N, N_COILS), equispaced_mask((N, N), 0.08, 4, seed=0)
    )
    assert 0.0 < undersampled.norm() <= 1.0 + 1e-9


def test_real_input_is_taken_as_complex_and_torch_round_trip() -> None:
    op = SenseOperator(ring_coil_maps(N, N_COILS, np.complex64))
    x = phantom().astype(np.float32)
    y = op(x)
    assert y.dtype == np.complex64
    np.testing.assert_allclose(y, op(x.astype(np.complex64)))
    yt = op(torch.from_numpy(x))
    assert isinstance(yt, torch.Tensor) and yt.dtype == torch.complex64
    np.testing.assert_allclose(op.T(yt).numpy(), op.T(y), atol=1e-6)


def test_sense_recon_fully_sampled() -> None:
    maps = ring_coil_maps(N, N_COILS)
    x = phantom().astype(np.complex128)
    k = fft2c(maps * x)
    rec = sense_recon(k, maps)
    assert rec.shape == (N, N) and rec.dtype == np.complex128
    assert np.max(np.abs(rec - x)) < 1e-5


def test_sense_recon_4x_equispaced() -> None:
    maps = ring_coil_maps(N, N_COILS)
    x = phantom()
    mask = equispaced_mask((N_COILS, N, N), 0.08, 4, seed=0)
    assert mask.sum() <= N / 4 + 1
    k = mask * fft2c(maps * x)
    rec = sense_recon(k, maps, mask, n_iter=300, tol=1e-10)
    err = nrmse(np.abs(rec), x)
    zero_filled = rss(ifft2c(k))
    err_zf = nrmse(zero_filled, x)
    assert err < 0.1
    assert err < 0.35 * err_zf, (err, err_zf)


def test_sense_recon_batched_torch_and_tikhonov() -> None:
    maps = ring_coil_maps(32, 4)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 32, 32)) + 1j * rng.standard_normal((2, 32, 32))
    mask = random_mask((32, 32), 0.25, 2, seed=0)
    k = mask * fft2c(maps * x[:, None])
    rec = sense_recon(torch.from_numpy(k), maps, mask, lam=0.1, n_iter=200, tol=1e-10)
    assert isinstance(rec, torch.Tensor) and rec.shape == (2, 32, 32)
    op = SenseOperator(maps, mask)
    # the solution of the regularised normal equations
    residual = op.T(op(rec.numpy())) + 0.1 * rec.numpy() - op.T(k)
    assert np.linalg.norm(residual) < 1e-8 * np.linalg.norm(op.T(k))


def test_errors() -> None:
    maps = ring_coil_maps(16, 2)
    with pytest.raises(ShapeError):
        SenseOperator(maps[0])
    with pytest.raises(ShapeError):
        SenseOperator(maps, np.ones((16, 15)))
    with pytest.raises(DtypeError):
        SenseOperator(maps, np.ones((16, 16), np.complex64))
    with pytest.raises(DtypeError):
        SenseOperator(np.ones((2, 16, 16), np.int64))
    op = SenseOperator(maps)
    with pytest.raises(ShapeError):
        op(np.ones((16, 15), np.complex128))
    with pytest.raises(ShapeError):
        op.T(np.ones((3, 16, 16), np.complex128))
    with pytest.raises(DtypeError):
        op(np.ones((16, 16), np.complex64))  # precision must match the maps
    with pytest.raises(DtypeError):
        op(np.ones((16, 16), np.int32))
    with pytest.raises(NotDifferentiableError):
        op(torch.ones(16, 16, dtype=torch.complex128, requires_grad=True))
    with pytest.raises(ShapeError):
        sense_recon(np.ones((3, 16, 16), np.complex128), maps)
    with pytest.raises(ValueError, match="lam"):
        sense_recon(np.ones((2, 16, 16), np.complex128), maps, lam=-1.0)
    with pytest.raises(ValueError, match="n_iter"):
        sense_recon(np.ones((2, 16, 16), np.complex128), maps, n_iter=-1)
