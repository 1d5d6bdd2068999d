"""NUFFT operator, Toeplitz normal operator, autograd and CG-SENSE (medrecon.mr.nufft)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from _mr_data import ring_coil_maps
from medrecon.errors import (
    BackendUnavailableError,
    DtypeError,
    GeometryError,
    NonFiniteError,
    NotDifferentiableError,
    ShapeError,
)
from medrecon.mr import nufft as nufft_module
from medrecon.mr.fft import fft2c, fftnc
from medrecon.mr.nufft import (
    NufftOperator,
    ToeplitzNormal,
    check_coords,
    nufft,
    nufft_adjoint,
    nufft_sense_recon,
)
from medrecon.mr.sense import SenseOperator
from medrecon.mr.trajectories import pipe_dcf, radial


def smooth_phantom(n: int) -> np.ndarray:
    """Two Gaussian blobs with a linear phase: band-limited enough for radial sampling."""
    yy, xx = (np.mgrid[0:n, 0:n] - n // 2) / (n / 2)
    img = np.exp(-2 * (yy**2 / 0.35 + xx**2 / 0.25))
    img = img + 0.5 * np.exp(-((yy - 0.2) ** 2 + (xx + 0.25) ** 2) / 0.02)
    return img * np.exp(0.5j * xx)


def crandn(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def cartesian_coords(shape: tuple[int, ...]) -> np.ndarray:
    axes = [2 * np.pi * (np.arange(n) - n // 2) / n for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def nudft(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Direct non-uniform DFT y_j = 1/sqrt(N) sum_r x[r] exp(-i k_j . (r - n // 2))."""
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in x.shape], indexing="ij")
    r = np.stack([g.ravel() for g in grids], axis=0)  # (d, N)
    phase = np.exp(-1j * (k.reshape(-1, x.ndim) @ r))  # (M, N)
    return phase @ x.ravel() / math.sqrt(x.size)


def nudft_adjoint(y: np.ndarray, k: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    r = np.stack([g.ravel() for g in grids], axis=0)
    phase = np.exp(1j * (r.T @ k.reshape(-1, len(shape)).T))  # (N, M)
    return (phase @ y.ravel()).reshape(shape) / math.sqrt(math.prod(shape))


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def dot_test(op: NufftOperator, rng: np.random.Generator, dtype: type) -> float:
    x = crandn(rng, (2, *op.domain_shape), dtype)
    y = crandn(rng, (2, *op.range_shape), dtype)
    lhs = np.vdot(op(x).astype(np.complex128), y.astype(np.complex128))
    rhs = np.vdot(x.astype(np.complex128), op.T(y).astype(np.complex128))
    return float(abs(lhs - rhs) / abs(lhs))


# ------------------------------------------------------------------------- correctness
@pytest.mark.parametrize(
    ("dtype", "eps", "tol"), [(np.complex128, 1e-12, 1e-6), (np.complex64, 1e-6, 1e-4)]
)
@pytest.mark.parametrize("shape", [(16, 12), (6, 8, 5)])
@pytest.mark.parametrize("with_maps", [False, True])
def test_dot_test(
    rng: np.random.Generator,
    dtype: type,
    eps: float,
    tol: float,
    shape: tuple[int, ...],
    with_maps: bool,
) -> None:
    k = rng.uniform(-np.pi, np.pi, (30, 7, len(shape)))
    maps = crandn(rng, (3, *shape), dtype) if with_maps else None
    op = NufftOperator(k, shape, maps=maps, eps=eps, dtype=dtype)
    assert op.domain_shape == shape
    assert op.range_shape == ((3,) if with_maps else ()) + (30, 7)
    err = dot_test(op, rng, dtype)
    assert err < tol
    if dtype == np.complex128:
        assert err < 1e-12  # type 1 and type 2 share the spreading kernel: exact adjoints


@pytest.mark.parametrize("shape", [(16, 16), (15, 12), (6, 5, 4), (21,)])
def test_matches_direct_nudft(rng: np.random.Generator, shape: tuple[int, ...]) -> None:
    k = rng.uniform(-np.pi, np.pi, (200, len(shape)))
    x = crandn(rng, shape)
    y = crandn(rng, (200,))
    op = NufftOperator(k, shape, eps=1e-9, dtype=np.complex128)
    assert rel(op(x), nudft(x, k)) < 1e-5
    assert rel(op.T(y), nudft_adjoint(y, k, shape)) < 1e-5
    single = NufftOperator(k, shape, eps=1e-6, dtype=np.complex64)
    assert rel(single(x.astype(np.complex64)), nudft(x, k)) < 1e-4


@pytest.mark.parametrize("shape", [(16, 16), (15, 12), (9, 8)])
def test_cartesian_coordinates_equal_fft2c(
    rng: np.random.Generator, shape: tuple[int, int]
) -> None:
    coords = cartesian_coords(shape)
    x = crandn(rng, (2, *shape))
    op = NufftOperator(coords, shape, eps=1e-12, dtype=np.complex128)
    assert op.range_shape == shape
    assert rel(op(x), fft2c(x)) < 1e-6
    assert rel(op.T(fft2c(x)), x) < 1e-6
    assert op.norm() == pytest.approx(1.0, rel=1e-6)
    op32 = NufftOperator(coords, shape)  # complex64, eps 1e-6
    assert rel(op32(x.astype(np.complex64)), fft2c(x)) < 1e-5
    # 3D and the n-dimensional centred FFT
    coords3 = cartesian_coords((4, *shape))
    x3 = crandn(rng, (4, *shape))
    assert (
        rel(NufftOperator(coords3, x3.shape, eps=1e-12, dtype=np.complex128)(x3), fftnc(x3)) < 1e-6
    )


def test_multicoil_cartesian_equals_sense(rng: np.random.Generator) -> None:
    n = 16
    maps = ring_coil_maps(n, 4)
    op = NufftOperator(cartesian_coords((n, n)), (n, n), maps=maps, eps=1e-12, dtype=np.complex128)
    ref = SenseOperator(maps)
    x = crandn(rng, (3, n, n))
    assert op.range_shape == ref.range_shape == (4, n, n)
    assert rel(op(x), ref(x)) < 1e-9
    y = crandn(rng, (3, 4, n, n))
    assert rel(op.T(y), ref.T(y)) < 1e-9
    assert op.n_coils == 4 and "coils=4" in repr(op)


def test_batches_torch_and_real_inputs(rng: np.random.Generator) -> None:
    n = 12
    k = radial(10, 2 * n)
    maps = ring_coil_maps(n, 3)
    op = NufftOperator(k, (n, n), maps=maps, eps=1e-10, dtype=np.complex128)
    x = crandn(rng, (2, 3, n, n))
    y = op(x)
    assert y.shape == (2, 3, 3, 10, 2 * n) and y.dtype == np.complex128
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(y[i, j], op(x[i, j]), atol=1e-12)
    back = op.T(y)
    assert back.shape == x.shape
    np.testing.assert_allclose(back[1, 2], op.T(y[1, 2]), atol=1e-12)
    yt = op(torch.from_numpy(x))
    assert isinstance(yt, torch.Tensor) and yt.dtype == torch.complex128
    np.testing.assert_allclose(yt.numpy(), y, atol=1e-12)
    np.testing.assert_allclose(op(x.real), op(x.real + 0j), atol=1e-12)
    assert op(np.zeros((0, n, n))).shape == (0, 3, 10, 2 * n)


def test_plans_are_cached(rng: np.random.Generator) -> None:
    k = rng.uniform(-np.pi, np.pi, (50, 2))
    op = NufftOperator(k, (8, 8))
    x = crandn(rng, (8, 8), np.complex64)
    op(x)
    plan = op._plans[(2, 1)]
    op(x)
    assert op._plans[(2, 1)] is plan and len(op._plans) == 1
    op.T(op(x))
    op(crandn(rng, (3, 8, 8), np.complex64))
    assert set(op._plans) == {(2, 1), (1, 1), (2, 3)}
    for b in range(2, 14):
        op(np.zeros((b, 8, 8), np.complex64))
    assert len(op._plans) == 8  # bounded cache


# ----------------------------------------------------------------- other implementations
def _random_problem(
    rng: np.random.Generator,
) -> tuple[tuple[int, int], np.ndarray, np.ndarray, np.ndarray, NufftOperator]:
    """``(shape, k, x, y, op)``: 300 random points, a random image and data, an accurate op."""
    shape = (20, 16)
    k = rng.uniform(-np.pi, np.pi, (300, 2))
    x = crandn(rng, shape)
    y = crandn(rng, (300,))
    return shape, k, x, y, NufftOperator(k, shape, eps=1e-10, dtype=np.complex128)


def test_agrees_with_sigpy(rng: np.random.Generator) -> None:
    sp = pytest.importorskip("sigpy")
    shape, k, x, y, op = _random_problem(rng)
    # SigPy: coordinates in cycles per FOV (k * n / 2 pi), same axis order, orthonormal scale
    coord = k * np.array(shape) / (2 * np.pi)
    err_fwd = rel(sp.nufft(x, coord), op(x))
    err_adj = rel(sp.nufft_adjoint(y, coord, oshape=shape), op.T(y))
    assert err_fwd < 2e-2 and err_adj < 2e-2, (err_fwd, err_adj)


def test_agrees_with_torchkbnufft(rng: np.random.Generator) -> None:
    tkbn = pytest.importorskip("torchkbnufft")
    shape, k, x, y, op = _random_problem(rng)
    # torchkbnufft: omega = coords.T in radians per sample; unscaled without norm (its
    # norm="ortho" divides by the oversampled grid size), images (batch, coil, *shape)
    omega = torch.from_numpy(np.ascontiguousarray(k.T))
    fwd = tkbn.KbNufft(im_size=shape, dtype=torch.complex128)
    adj = tkbn.KbNufftAdjoint(im_size=shape, dtype=torch.complex128)
    scale = math.sqrt(math.prod(shape))
    yk = fwd(torch.from_numpy(x)[None, None], omega).numpy().reshape(-1) / scale
    xk = adj(torch.from_numpy(y)[None, None], omega).numpy().reshape(shape) / scale
    err_fwd, err_adj = rel(yk, op(x)), rel(xk, op.T(y))
    assert err_fwd < 1e-2 and err_adj < 1e-2, (err_fwd, err_adj)


# ---------------------------------------------------------------------------- Toeplitz
@pytest.mark.parametrize(
    ("dtype", "eps", "tol"), [(np.complex64, 1e-6, 1e-4), (np.complex128, 1e-10, 1e-8)]
)
def test_toeplitz_equals_explicit_normal(
    rng: np.random.Generator, dtype: type, eps: float, tol: float
) -> None:
    n = 24
    k = radial(30, 2 * n)
    w = pipe_dcf(k, (n, n), n_iter=10).astype(np.float32 if dtype == np.complex64 else np.float64)
    op = NufftOperator(k, (n, n), maps=ring_coil_maps(n, 4, dtype), eps=eps, dtype=dtype)
    toep = op.normal(w)
    explicit = op.normal(w, toeplitz=False)
    assert isinstance(toep, ToeplitzNormal) and toep.dtype == np.dtype(dtype)
    x = crandn(rng, (2, n, n), dtype)
    ref = op.T(w * op(x))
    assert rel(explicit(x), ref) < 1e-12
    err = rel(toep(x), ref)
    assert err < tol, err
    # unweighted, single coil, 3D
    k3 = rng.uniform(-np.pi, np.pi, (400, 3))
    op3 = NufftOperator(k3, (6, 5, 4), eps=eps, dtype=dtype)
    x3 = crandn(rng, (6, 5, 4), dtype)
    assert rel(ToeplitzNormal(op3)(x3), op3.T(op3(x3))) < tol
    # Hermitian: the adjoint is the operator itself
    np.testing.assert_allclose(toep.T(x), toep(x))


# ---------------------------------------------------------------------------- autograd
def test_gradcheck_nufft_and_adjoint(rng: np.random.Generator) -> None:
    k = torch.from_numpy(rng.uniform(-np.pi, np.pi, (9, 2)))
    x = torch.from_numpy(crandn(rng, (5, 4))).requires_grad_(True)
    y = torch.from_numpy(crandn(rng, (9,))).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: nufft(v, k, eps=1e-13), (x,))
    assert torch.autograd.gradcheck(lambda v: nufft_adjoint(v, k, (5, 4), eps=1e-13), (y,))
    maps = ring_coil_maps(5, 2)[:, :, :4].copy()
    assert torch.autograd.gradcheck(lambda v: nufft(v, k, maps=maps, eps=1e-13), (x,))


def test_gradient_of_least_squares_is_adjoint_residual(rng: np.random.Generator) -> None:
    n = 10
    k = rng.uniform(-np.pi, np.pi, (60, 2))
    op = NufftOperator(k, (n, n), maps=ring_coil_maps(n, 2), eps=1e-12, dtype=np.complex128)
    x0 = crandn(rng, (n, n))
    y = crandn(rng, op.range_shape)
    x = torch.from_numpy(x0).requires_grad_(True)
    loss = 0.5 * torch.sum(torch.abs(op(x) - torch.from_numpy(y)) ** 2)
    loss.backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), op.T(op(x0) - y), atol=1e-10)
    # the adjoint operator is differentiable too, and real inputs get real gradients
    xr = torch.from_numpy(x0.real.copy()).requires_grad_(True)
    op(xr).abs().sum().backward()
    assert xr.grad is not None and not xr.grad.is_complex()
    yt = torch.from_numpy(y).requires_grad_(True)
    op.T(yt).real.sum().backward()
    assert yt.grad is not None
    np.testing.assert_allclose(yt.grad.numpy(), op(np.ones((n, n), np.complex128)), atol=1e-10)


# ------------------------------------------------------------------------- CG-NUFFT-SENSE
def test_nufft_sense_recon_beats_gridding() -> None:
    n = 48
    maps = ring_coil_maps(n, 8)
    x = smooth_phantom(n)
    k = radial(76, 2 * n)  # about pi / 2 * n spokes: fully sampled-ish
    w = pipe_dcf(k, (n, n))
    op = NufftOperator(k, (n, n), maps=maps, eps=1e-8, dtype=np.complex128)
    y = op(x)
    gridding = op.T(w * y)
    err_grid = rel(gridding, x)
    rec = nufft_sense_recon(y, k, maps, dcf=w, n_iter=30, tol=1e-8)
    assert rec.shape == (n, n) and rec.dtype == np.complex128
    err_cg = rel(rec, x)
    assert err_grid < 5e-3, err_grid  # the DCF-weighted adjoint already has the right scale
    assert err_cg < 1e-5 and err_cg < 0.01 * err_grid, (err_cg, err_grid)
    # 3x undersampled: streaks in the gridding, CG-SENSE unfolds them with the coils
    k_us = radial(25, 2 * n)
    w_us = pipe_dcf(k_us, (n, n))
    op_us = NufftOperator(k_us, (n, n), maps=maps, eps=1e-8, dtype=np.complex128)
    y_us = op_us(x)
    err_grid_us = rel(op_us.T(w_us * y_us), x)
    rec_us = nufft_sense_recon(y_us, k_us, maps, dcf=w_us, n_iter=60, tol=1e-10)
    err_cg_us = rel(rec_us, x)
    assert err_cg_us < 1e-2 and err_cg_us < 0.2 * err_grid_us, (err_cg_us, err_grid_us)


def test_nufft_sense_recon_options(rng: np.random.Generator) -> None:
    n = 16
    maps = ring_coil_maps(n, 3, np.complex64)
    k = radial(24, 2 * n)
    op = NufftOperator(k, (n, n), maps=maps)
    x = crandn(rng, (2, n, n), np.complex64)
    y = op(x)
    a = nufft_sense_recon(torch.from_numpy(y), k, maps, lam=0.05, n_iter=40, tol=1e-7)
    assert isinstance(a, torch.Tensor) and a.shape == (2, n, n) and a.dtype == torch.complex64
    b = nufft_sense_recon(y, k, maps, lam=0.05, n_iter=40, tol=1e-7, toeplitz=False)
    assert rel(a.numpy(), b) < 1e-3
    # the solution of the regularised normal equations
    res = op.T(op(b)) + 0.05 * b - op.T(y)
    assert np.linalg.norm(res) < 1e-3 * np.linalg.norm(op.T(y))
    # single coil without maps
    op1 = NufftOperator(k, (n, n), dtype=np.complex128, eps=1e-10)
    x1 = crandn(rng, (n, n))
    rec1 = nufft_sense_recon(op1(x1), k, None, image_shape=(n, n), n_iter=100, tol=1e-12)
    assert rec1.dtype == np.complex128
    assert rel(op1.T(op1(rec1)), op1.T(op1(x1))) < 1e-3  # unweighted radial: slow CG
    assert np.count_nonzero(nufft_sense_recon(y, k, maps, n_iter=0)) == 0


# ------------------------------------------------------------------------------ errors
def test_errors(rng: np.random.Generator) -> None:
    k = rng.uniform(-np.pi, np.pi, (20, 2))
    with pytest.raises(GeometryError, match=r"\[-pi, pi\]"):
        NufftOperator(k * 2, (8, 8))
    with pytest.raises(ValueError):  # GeometryError is a ValueError
        check_coords(np.array([[0.0, 3.2]]))
    with pytest.raises(ShapeError):
        NufftOperator(k, (8, 8, 8))  # 2 coordinate columns for a 3D image
    with pytest.raises(ShapeError):
        NufftOperator(k[:, :1].ravel(), (8,))  # no (..., d) axis
    with pytest.raises(ShapeError):
        NufftOperator(rng.uniform(-1, 1, (5, 4)), (2, 2, 2, 2))
    with pytest.raises(DtypeError):
        NufftOperator(k + 0j, (8, 8))
    with pytest.raises(NonFiniteError):
        NufftOperator(np.array([[0.0, np.nan]]), (8, 8))
    with pytest.raises(DtypeError):
        NufftOperator(k, (8, 8), dtype=np.float64)
    with pytest.raises(ShapeError):
        NufftOperator(k, (8, 8), maps=np.ones((2, 8, 7)))
    with pytest.raises(DtypeError):
        NufftOperator(k, (8, 8), maps=np.ones((2, 8, 8), np.int64))
    with pytest.raises(ValueError, match="eps"):
        NufftOperator(k, (8, 8), eps=0.0)
    op = NufftOperator(k, (8, 8), dtype=np.complex128)
    with pytest.raises(ShapeError):
        op(np.ones((8, 7), np.complex128))
    with pytest.raises(ShapeError):
        op.T(np.ones((21,), np.complex128))
    with pytest.raises(DtypeError):
        op(np.ones((8, 8), np.complex64))  # precision must match
    with pytest.raises(DtypeError):
        op(np.ones((8, 8), np.int32))
    with pytest.raises(NonFiniteError):
        op(np.full((8, 8), np.nan, np.complex128))
    with pytest.raises(ValueError, match="non-negative"):
        op.normal(-np.ones(20))
    with pytest.raises(ShapeError):
        op.normal(np.ones(19))
    with pytest.raises(DtypeError):
        op.normal(np.ones(20, np.complex128))
    with pytest.raises(NotDifferentiableError):
        op.normal()(torch.ones(8, 8, dtype=torch.complex128, requires_grad=True))
    with pytest.raises(DtypeError):
        nufft(torch.ones(8, 8, dtype=torch.int64), k)
    with pytest.raises(ValueError, match="lam"):
        nufft_sense_recon(np.ones(20, np.complex128), k, None, image_shape=(8, 8), lam=-1.0)
    with pytest.raises(ValueError, match="n_iter"):
        nufft_sense_recon(np.ones(20, np.complex128), k, None, image_shape=(8, 8), n_iter=-1)
    with pytest.raises(ShapeError, match="image_shape"):
        nufft_sense_recon(np.ones(20, np.complex128), k, None)
    with pytest.raises(ShapeError):
        nufft_sense_recon(np.ones((3, 20), np.complex128), k, np.ones((2, 8, 8)), dcf=np.ones(20))


def test_cuda_input_without_cufinufft_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU dispatch refuses CUDA data with an install hint when cuFINUFFT is missing."""
    monkeypatch.setitem(sys.modules, "cufinufft", None)  # import cufinufft -> ImportError
    monkeypatch.setattr(nufft_module, "_is_cuda", lambda x: True)
    op = NufftOperator(np.zeros((3, 2)), (4, 4))
    with pytest.raises(BackendUnavailableError, match="pip install cufinufft"):
        op(np.ones((4, 4), np.complex64))
    with pytest.raises(ImportError):
        op.T(np.ones(3, np.complex64))


# --------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_cufinufft_matches_cpu(rng: np.random.Generator, dtype: torch.dtype) -> None:
    pytest.importorskip("cufinufft")
    if not torch.cuda.is_available():
        pytest.skip("needs torch.cuda for this comparison")
    n = 24
    npdt = np.complex64 if dtype == torch.complex64 else np.complex128
    tol = 1e-4 if dtype == torch.complex64 else 1e-8
    eps = 1e-6 if dtype == torch.complex64 else 1e-10
    k = radial(20, 2 * n)
    op = NufftOperator(k, (n, n), maps=ring_coil_maps(n, 3, npdt), eps=eps, dtype=npdt)
    x = crandn(rng, (2, n, n), npdt)
    xg = torch.from_numpy(x).cuda()
    yg = op(xg)
    assert yg.is_cuda and yg.dtype == dtype
    assert rel(yg.cpu().numpy(), op(x)) < tol
    y = op(x)
    assert rel(op.T(torch.from_numpy(y).cuda()).cpu().numpy(), op.T(y)) < tol
    toep = op.normal()
    assert rel(toep(xg).cpu().numpy(), toep(x)) < tol
    xr = xg.clone().requires_grad_(True)
    op(xr).abs().sum().backward()
    assert xr.grad is not None and xr.grad.is_cuda


@pytest.mark.gpu
def test_cuda_without_cufinufft_raises() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs torch.cuda")
    try:
        import cufinufft  # noqa: F401
    except ImportError:
        op = NufftOperator(np.zeros((3, 2)), (4, 4))
        with pytest.raises(BackendUnavailableError, match="pip install cufinufft"):
            op(torch.ones(4, 4, dtype=torch.complex64, device="cuda"))
    else:
        pytest.skip("cufinufft is installed")
