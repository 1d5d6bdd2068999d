"""Centred orthonormal FFTs and RSS (medrecon.mr.fft), numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medrecon.errors import ShapeError
from medrecon.mr.fft import fft2c, fftnc, ifft2c, ifftnc, rss


def _cplx(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@pytest.mark.parametrize("shape", [(8, 8), (3, 6, 5), (2, 4, 7, 6)])
def test_round_trip_and_parseval_numpy(shape: tuple[int, ...]) -> None:
    x = _cplx(np.random.default_rng(0), shape)
    k = fft2c(x)
    assert k.shape == x.shape and k.dtype == np.complex128
    np.testing.assert_allclose(ifft2c(k), x, atol=1e-12)
    assert np.linalg.norm(k) == pytest.approx(np.linalg.norm(x), rel=1e-12)


def test_centred_dc_and_matches_shift_definition() -> None:
    x = _cplx(np.random.default_rng(1), (4, 5, 6))
    ref = np.fft.fftshift(
        np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    np.testing.assert_allclose(fft2c(x), ref, atol=1e-12)
    ones = np.ones((5, 6))
    k = fft2c(ones)
    assert abs(k[5 // 2, 6 // 2]) == pytest.approx(np.sqrt(30.0))
    k[5 // 2, 6 // 2] = 0
    assert np.abs(k).max() < 1e-12


def test_explicit_axes_and_single_precision() -> None:
    x = _cplx(np.random.default_rng(2), (6, 3, 8)).astype(np.complex64)
    k = fft2c(x, axes=(0, 2))
    assert k.dtype == np.complex64
    ref = np.moveaxis(fft2c(np.moveaxis(x, 1, 0)), 0, 1)
    np.testing.assert_allclose(k, ref, atol=1e-5)
    np.testing.assert_allclose(ifft2c(k, axes=(0, 2)), x, atol=1e-5)
    assert fft2c(np.ones((4, 4), np.float32)).dtype == np.complex64


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_torch_matches_numpy(dtype: torch.dtype) -> None:
    x_np = _cplx(np.random.default_rng(3), (2, 3, 8, 6))
    x = torch.tensor(x_np, dtype=dtype)
    k = fft2c(x)
    assert isinstance(k, torch.Tensor) and k.dtype == dtype
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    np.testing.assert_allclose(k.numpy(), fft2c(x_np), atol=tol)
    back = ifft2c(k)
    np.testing.assert_allclose(back.numpy(), x_np, atol=tol)
    assert float(torch.linalg.vector_norm(k)) == pytest.approx(np.linalg.norm(x_np), rel=1e-5)
    r = rss(x)
    assert isinstance(r, torch.Tensor) and r.shape == (2, 8, 6)
    np.testing.assert_allclose(r.numpy(), rss(x_np), rtol=1e-5)


def test_torch_autograd_through_fft() -> None:
    x = torch.randn(4, 4, dtype=torch.complex128, requires_grad=True)
    loss = (fft2c(x).abs() ** 2).sum()  # = ||x||^2 by Parseval
    loss.backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy(), atol=1e-12)


def test_fftnc_3d() -> None:
    x = _cplx(np.random.default_rng(4), (2, 4, 6, 5))
    k = fftnc(x, axes=(-3, -2, -1))
    ref = np.fft.fftshift(
        np.fft.fftn(np.fft.ifftshift(x, axes=(1, 2, 3)), axes=(1, 2, 3), norm="ortho"),
        axes=(1, 2, 3),
    )
    np.testing.assert_allclose(k, ref, atol=1e-12)
    np.testing.assert_allclose(ifftnc(k, axes=(1, 2, 3)), x, atol=1e-12)
    assert np.linalg.norm(k) == pytest.approx(np.linalg.norm(x))
    full = fftnc(x)  # all axes by default
    np.testing.assert_allclose(ifftnc(full), x, atol=1e-12)
    kt = fftnc(torch.from_numpy(x), axes=(1, 2, 3))
    np.testing.assert_allclose(kt.numpy(), ref, atol=1e-12)


def test_rss_direct_formula() -> None:
    rng = np.random.default_rng(5)
    x = _cplx(rng, (3, 4, 5, 6))
    expected = np.sqrt(np.sum(x.real**2 + x.imag**2, axis=1))
    np.testing.assert_allclose(rss(x), expected, rtol=1e-12)
    np.testing.assert_allclose(rss(x, axis=0), np.sqrt(np.sum(np.abs(x) ** 2, axis=0)))


def test_shape_errors() -> None:
    with pytest.raises(ShapeError):
        fft2c(np.ones(4))
    with pytest.raises(ShapeError):
        fft2c(np.ones((4, 4, 4)), axes=(0, 1, 2))
    with pytest.raises(ShapeError):
        fftnc(np.ones((4, 4)), axes=(0, 5))
    with pytest.raises(ShapeError):
        fftnc(np.ones((4, 4)), axes=(1, -1))
    with pytest.raises(ShapeError):
        rss(np.ones((4, 4)), axis=-3)
