"""Iterative CT solvers: convergence properties, references, numpy/torch agreement, errors.

The CT problems are small 2D parallel-beam scans of an inline ellipse
phantom (attenuation in 1/mm, 1 mm pixels) so that the whole file runs in
seconds on two cores.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from medrecon import ParallelBeam2D, Projector, VolumeGeometry
from medrecon.ct.iterative import (
    Gradient,
    SolverInfo,
    cgls,
    fista_tv,
    os_sart,
    pdhg_tv,
    prox_tv,
    sirt,
    sirt_weights,
    total_variation,
)
from medrecon.ct.iterative.gradient import grad, grad_adjoint, gradient_norm_bound
from medrecon.ct.iterative.os_sart import bit_reversal_order, projector_subsets
from medrecon.ct.iterative.pdhg import support_function_box
from medrecon.errors import DtypeError, ShapeError
from medrecon.testing import MatrixOperator, dot_test

N = 64


# ---------------------------------------------------------------- problems
def phantom(n: int = N) -> np.ndarray:
    """Ellipses in a water-like disc: attenuation in 1/mm (water ~0.02)."""
    yy, xx = (np.mgrid[:n, :n] - (n - 1) / 2) / (n / 2)
    img = np.zeros((n, n))
    for cy, cx, ay, ax, value, theta in [
        (0.0, 0.0, 0.9, 0.7, 0.02, 0.0),
        (-0.1, 0.25, 0.3, 0.15, 0.01, 0.3),
        (0.2, -0.25, 0.25, 0.2, -0.008, 0.0),
        (0.5, 0.1, 0.08, 0.08, 0.015, 0.0),
    ]:
        c, s = math.cos(theta), math.sin(theta)
        u = ((xx - cx) * c + (yy - cy) * s) / ax
        v = (-(xx - cx) * s + (yy - cy) * c) / ay
        img[u**2 + v**2 <= 1.0] += value
    return img


def scan(n_views: int, n: int = N, backend: str = "cpu") -> tuple[Projector, Any, VolumeGeometry]:
    vol = VolumeGeometry(shape=(n, n), voxel_size=1.0)
    geom = ParallelBeam2D(
        angles=np.linspace(0.0, np.pi, n_views, endpoint=False), n_det=int(1.5 * n)
    )
    return Projector(geom, vol, backend=backend), geom, vol


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(ref.max() ** 2 / np.mean((x - ref) ** 2)))


def rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def ct90() -> tuple[Projector, np.ndarray, np.ndarray]:
    """Noiseless 90-view scan: (A, x_true, y) in float64."""
    A, _, _ = scan(90)
    x = phantom()
    return A, x, A(x)


@pytest.fixture(scope="module")
def low_dose() -> dict[str, Any]:
    """Sparse-view (30 views), low-dose (I0 = 1000 photons) scan with Poisson noise."""
    A, geom, vol = scan(30)
    x = phantom()
    p = A(x)
    i0 = 1e3
    counts = np.random.default_rng(7).poisson(i0 * np.exp(-p))
    y = -np.log(np.maximum(counts, 0.5) / i0)
    return {"A": A, "geom": geom, "vol": vol, "x": x, "y": y.astype(np.float32)}


def non_increasing(values: list[float], rtol: float) -> bool:
    v = np.asarray(values)
    return bool(np.all(v[1:] <= v[:-1] * (1 + rtol)))


# ------------------------------------------------------------------ gradient
@pytest.mark.parametrize(
    ("shape", "voxel_size"),
    [((7, 9), None), ((7, 9), (0.5, 2.0)), ((4, 5, 6), 0.8), ((1, 5), None)],
)
def test_gradient_is_adjoint(shape: tuple[int, ...], voxel_size: Any) -> None:
    D = Gradient(shape, voxel_size=voxel_size)
    assert D.range_shape == (len(shape), *shape)
    dot_test(D)
    dot_test(D, dtype=np.float32, batch=(2,))


def test_gradient_values_and_norm_bound() -> None:
    x = np.add.outer(3.0 * np.arange(5), 2.0 * np.arange(6))  # slope 3 along y, 2 along x
    g = Gradient((5, 6), voxel_size=(0.5, 2.0))(x)
    np.testing.assert_allclose(g[0, :-1], 6.0)
    np.testing.assert_allclose(g[1, :, :-1], 1.0)
    assert np.all(g[0, -1] == 0) and np.all(g[1, :, -1] == 0)  # Neumann boundary
    # adjoint = minus divergence: the interior of grad^T grad x is minus the Laplacian (0 here)
    assert np.allclose(grad_adjoint(grad(x, 2), 2)[1:-1, 1:-1], 0.0)
    # the cheap bound holds and is nearly tight on a 32 x 32 image
    D = Gradient((32, 32))
    est = D.norm(n_iter=500, rtol=1e-9)
    assert est <= D.norm_bound() <= 1.01 * est
    assert gradient_norm_bound(3, (1.0, 2.0, 2.0)) == pytest.approx(math.sqrt(4 + 1 + 1))
    # TV of a unit step across a 4-pixel edge, per voxel and per mm
    step = np.zeros((4, 4))
    step[:, 2:] = 1.0
    assert total_variation(step) == 4.0
    assert total_variation(step, voxel_size=0.5) == 8.0


def test_gradient_works_on_torch() -> None:
    x = np.random.default_rng(0).random((2, 6, 7))
    g_np = grad(x, 2, (1.0, 0.5))
    g_t = grad(torch.from_numpy(x), 2, (1.0, 0.5))
    np.testing.assert_allclose(g_t.numpy(), g_np)
    np.testing.assert_allclose(
        grad_adjoint(torch.from_numpy(g_np), 2).numpy(), grad_adjoint(g_np, 2)
    )


# ---------------------------------------------------------- SIRT and CGLS
def test_sirt_residual_decreases(ct90: Any) -> None:
    A, x_true, y = ct90
    x, info = sirt(A, y, n_iter=40, progress=False, return_info=True)
    assert isinstance(info, SolverInfo)
    assert info.n_iter == 40 and len(info.residual) == 41 and info.stop_reason == "n_iter"
    # SIRT is gradient descent on the weighted objective: monotone by theory ...
    assert non_increasing(info.objective, 1e-12)
    # ... and the plain residual ||Ax - y|| decreases on this problem too
    assert non_increasing(info.residual, 1e-12)
    assert info.residual[-1] < 0.02 * info.residual[0]
    assert rel(x, x_true) < 0.15


def test_sirt_nonneg_and_weights_cached(ct90: Any) -> None:
    A, _, y = ct90
    y_neg = y - 0.3  # inconsistent data that pulls values below zero
    x_free = sirt(A, y_neg, n_iter=10, progress=False)
    x, info = sirt(A, y_neg, n_iter=10, nonneg=True, progress=False, return_info=True)
    assert x_free.min() < 0 and x.min() >= 0
    assert non_increasing(info.objective, 1e-12)
    R1, C1 = sirt_weights(A, y)
    R2, C2 = sirt_weights(A, y)
    assert R1 is R2 and C1 is C2  # computed once per operator and dtype
    assert sirt_weights(A, y.astype(np.float32))[0].dtype == np.float32


def test_cgls_residual_decreases(ct90: Any) -> None:
    A, x_true, y = ct90
    x, info = cgls(A, y, n_iter=30, progress=False, return_info=True)
    assert non_increasing(info.residual, 1e-12)
    assert info.residual[-1] < 1e-3 * info.residual[0]
    assert len(info.steps["alpha"]) == 30 and all(a > 0 for a in info.steps["alpha"])
    # the recursively updated residual is the true one
    assert abs(info.residual[-1] - np.linalg.norm(A(x) - y)) < 1e-6 * info.residual[0]
    assert rel(x, x_true) < 0.05


@pytest.mark.parametrize(("m", "n"), [(30, 12), (8, 20)])
def test_cgls_converges_to_least_squares(m: int, n: int, rng: np.random.Generator) -> None:
    """Overdetermined: the LS solution; underdetermined: the minimum-norm one (x0 = 0)."""
    M = rng.standard_normal((m, n))
    y = rng.standard_normal(m)
    x, info = cgls(MatrixOperator(M), y, n_iter=3 * n, progress=False, return_info=True)
    x_ls = np.linalg.lstsq(M, y, rcond=None)[0]
    assert rel(x, x_ls) < 1e-8
    assert info.converged and info.stop_reason == "exact"
    assert non_increasing(info.residual, 1e-12)


def test_sirt_solves_consistent_dense_system(rng: np.random.Generator) -> None:
    M = rng.random((40, 10))  # non-negative entries, as SIRT assumes
    x_true = rng.random(10)
    x = sirt(MatrixOperator(M), M @ x_true, n_iter=3000, progress=False)
    assert rel(x, x_true) < 1e-6


def _astra_run(algorithm: str, geom: Any, vol: Any, y: np.ndarray, n_iter: int) -> np.ndarray:
    astra = pytest.importorskip("astra")
    from medrecon.geometry import to_astra

    proj_geom, vol_geom = to_astra(geom, vol)
    pid = astra.create_projector("linear", proj_geom, vol_geom)
    sid = astra.data2d.create("-sino", proj_geom, np.asarray(y, np.float32))
    rid = astra.data2d.create("-vol", vol_geom, 0.0)
    cfg = astra.astra_dict(algorithm)
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    aid = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(aid, n_iter)
        return np.asarray(astra.data2d.get(rid))
    finally:
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
        astra.projector.delete(pid)


@pytest.mark.astra
@pytest.mark.parametrize(("solver", "n_iter", "rtol"), [(sirt, 30, 1e-5), (cgls, 20, 0.02)])
def test_matches_astra(solver: Callable[..., Any], n_iter: int, rtol: float) -> None:
    """Same projector (ASTRA's 'linear', through backend='astra') and iteration count.

    SIRT agrees to float32 rounding (measured 1e-7); CGLS, whose Krylov path
    amplifies float32 rounding, to a fraction of a percent (measured 0.4%).
    Our CPU Joseph projector gives the same numbers within 1e-5 (SIRT).
    """
    A_astra, geom, vol = scan(90, backend="astra")
    A_cpu, _, _ = scan(90)
    y = A_cpu(phantom()).astype(np.float32)
    ref = _astra_run(solver.__name__.upper(), geom, vol, y, n_iter)
    assert rel(solver(A_astra, y, n_iter=n_iter, progress=False), ref) < rtol
    assert rel(solver(A_cpu, y, n_iter=n_iter, progress=False), ref) < max(rtol, 2e-5)


# ------------------------------------------------------------------ OS-SART
def test_os_sart_subsets_and_convergence(ct90: Any) -> None:
    A, x_true, y = ct90
    assert bit_reversal_order(10).tolist() == [0, 8, 4, 2, 6, 1, 9, 5, 3, 7]
    subsets = projector_subsets(A, 10)
    assert subsets is projector_subsets(A, 10)  # cached on the projector
    views = np.sort(np.concatenate([idx for _, idx in subsets]))
    assert views.tolist() == list(range(90))  # a partition of the views
    assert subsets[0][1].tolist() == list(range(0, 90, 10))  # interleaved
    x, info = os_sart(A, y, n_subsets=10, n_iter=4, progress=False, return_info=True)
    x_sirt, info_sirt = sirt(A, y, n_iter=4, progress=False, return_info=True)
    # ten subset updates per pass: far ahead of SIRT after the same number of passes
    assert info.residual[-1] < 0.25 * info_sirt.residual[-1]
    assert rel(x, x_true) < rel(x_sirt, x_true)
    # one subset is SIRT
    np.testing.assert_allclose(
        os_sart(A, y, n_subsets=1, n_iter=3, progress=False),
        sirt(A, y, n_iter=3, progress=False),
        rtol=1e-10,
        atol=1e-12,
    )


def test_os_sart_explicit_pairs_match_projector_path(ct90: Any) -> None:
    A, _, y = ct90
    pairs = [(op, idx) for op, idx in projector_subsets(A, 5)]
    x_pairs = os_sart(pairs, y, n_iter=2, nonneg=True, relaxation=0.8, progress=False)
    x_proj = os_sart(A, y, n_subsets=5, n_iter=2, nonneg=True, relaxation=0.8, progress=False)
    np.testing.assert_array_equal(x_pairs, x_proj)
    assert x_proj.min() >= 0


# --------------------------------------------------------------------- PDHG
def test_pdhg_gap_below_1e3(low_dose: dict[str, Any]) -> None:
    """Box constraints [0, 0.05]: the reported gap is the exact duality gap.

    Measured: 346 iterations with sigma=0.3 (543 with the default 0.1).
    """
    A, y = low_dose["A"], low_dose["y"]
    x, info = pdhg_tv(
        A,
        y,
        lam=0.4,
        bounds=(0.0, 0.05),
        sigma=0.3,
        n_iter=600,
        tol=1e-3,
        progress=False,
        return_info=True,
    )
    rel_gap = np.asarray(info.gap) / np.asarray(info.objective[1:])
    assert info.converged and info.stop_reason == "tol"
    assert rel_gap[-1] < 1e-3
    assert info.n_iter <= 400
    # a duality gap bounds the suboptimality: never negative beyond rounding
    assert rel_gap.min() > -1e-9
    assert all(v == 0.0 for v in info.infeasibility)
    assert x.min() >= 0.0 and x.max() <= 0.05
    assert info.steps["sigma"] * info.steps["tau"] * info.steps["norm_K"] ** 2 < 1


def test_pdhg_unconstrained_conditional_gap(low_dose: dict[str, Any]) -> None:
    """No constraints: the gap leaves out s_C (infinite); infeasibility is reported apart."""
    A, y = low_dose["A"], low_dose["y"]
    _, info = pdhg_tv(A, y, lam=0.4, sigma=0.3, n_iter=200, progress=False, return_info=True)
    rel_gap = abs(info.gap[-1]) / info.objective[-1]
    assert rel_gap < 1e-3
    assert info.infeasibility[-1] < 0.02 * info.infeasibility[0]


def test_tv_beats_fbp_low_dose_sparse_view(low_dose: dict[str, Any]) -> None:
    from medrecon.ct.analytic import fbp

    A, geom, vol, x_true, y = (low_dose[k] for k in ("A", "geom", "vol", "x", "y"))
    best_fbp = max(
        psnr(fbp(y, geom, vol, filter=f, cutoff=c), x_true)
        for f in ("ram-lak", "hann", "hamming")
        for c in (1.0, 0.6)
    )
    x_tv = pdhg_tv(A, y, lam=0.4, nonneg=True, n_iter=200, progress=False)
    assert x_tv.dtype == np.float32
    assert psnr(x_tv, x_true) > best_fbp + 3.0


def test_fista_reaches_pdhg_objective(low_dose: dict[str, Any]) -> None:
    A, y = low_dose["A"], low_dose["y"]
    _, info_p = pdhg_tv(A, y, lam=0.4, nonneg=True, n_iter=400, progress=False, return_info=True)
    x, info_f = fista_tv(A, y, lam=0.4, nonneg=True, n_iter=150, progress=False, return_info=True)
    assert x.min() >= 0
    assert abs(info_f.objective[-1] - info_p.objective[-1]) < 1e-3 * info_p.objective[-1]
    assert info_f.objective[-1] < 0.2 * info_f.objective[0]


def test_operator_with_fixed_dtype_gets_its_norm(low_dose: dict[str, Any]) -> None:
    """Projector(dtype=float32).norm() refuses its float64 probe; the solvers fall back."""
    A32 = Projector(low_dose["geom"], low_dose["vol"], dtype=np.float32)
    _, info = fista_tv(A32, low_dose["y"], lam=0.4, n_iter=1, progress=False, return_info=True)
    assert info.steps["norm_A"] == pytest.approx(low_dose["A"].norm(), rel=1e-5)


def test_prox_tv_and_support_function() -> None:
    b = np.zeros((6, 6))
    b[:, 3:] = 1.0
    x = prox_tv(b, 0.3, n_iter=200)  # piecewise constant: the edge shrinks by mu / width
    np.testing.assert_allclose(x[:, :3], 0.1, atol=1e-6)
    np.testing.assert_allclose(x[:, 3:], 0.9, atol=1e-6)
    x_box = prox_tv(b, 0.3, n_iter=200, bounds=(0.2, None))
    assert x_box.min() >= 0.2
    v = np.array([2.0, -1.0, 0.5])
    assert support_function_box(v, -1.0, 3.0) == (7.5 + 1.0, 0.0)
    finite, infeas = support_function_box(v, -math.inf, 0.0)
    assert finite == 0.0 and infeas == 1.0


# ------------------------------------------------------------ numpy / torch
SOLVERS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("sirt", sirt, {"n_iter": 10, "nonneg": True}),
    ("cgls", cgls, {"n_iter": 5}),
    ("os_sart", os_sart, {"n_iter": 2, "n_subsets": 6}),
    ("pdhg_tv", pdhg_tv, {"n_iter": 20, "lam": 0.4, "bounds": (0.0, 0.05)}),
    ("fista_tv", fista_tv, {"n_iter": 10, "lam": 0.4, "nonneg": True}),
]


@pytest.mark.parametrize(("name", "solver", "kwargs"), SOLVERS, ids=[s[0] for s in SOLVERS])
def test_torch_matches_numpy(
    name: str, solver: Callable[..., Any], kwargs: dict[str, Any], low_dose: dict[str, Any]
) -> None:
    A, y = low_dose["A"], low_dose["y"]
    x0 = np.full(A.domain_shape, 0.01, np.float32)
    x_np = solver(A, y, x0=x0, progress=False, **kwargs)
    x_t = solver(A, torch.from_numpy(y), x0=torch.from_numpy(x0), progress=False, **kwargs)
    assert isinstance(x_np, np.ndarray) and x_np.dtype == np.float32
    assert isinstance(x_t, torch.Tensor) and x_t.dtype == torch.float32
    assert rel(x_t.numpy(), x_np) < 1e-5
    # float64 data give float64 results; x0 is converted, not modified
    x64 = solver(A, y.astype(np.float64), x0=x0, progress=False, **kwargs)
    assert x64.dtype == np.float64 and np.all(x0 == np.float32(0.01))


def test_tensor_requiring_grad_is_accepted(low_dose: dict[str, Any]) -> None:
    A, y = low_dose["A"], low_dose["y"]
    y_t = torch.from_numpy(y.copy()).requires_grad_(True)
    x = sirt(A, y_t, n_iter=2, progress=False)
    assert not x.requires_grad  # solvers do not build autograd graphs
    np.testing.assert_allclose(x.numpy(), sirt(A, y, n_iter=2, progress=False), rtol=1e-6)


# ------------------------------------------------------- stopping, progress
def test_callback_stops_early_and_sees_every_iteration(ct90: Any) -> None:
    A, _, y = ct90
    seen: list[int] = []

    def callback(k: int, x: np.ndarray) -> bool:
        seen.append(k)
        assert x.shape == A.domain_shape
        return k == 3

    for solver in (sirt, cgls):
        seen.clear()
        _, info = solver(A, y, n_iter=50, callback=callback, progress=False, return_info=True)
        assert seen == [1, 2, 3]
        assert info.n_iter == 3 and info.stop_reason == "callback" and not info.converged
        assert len(info.residual) == 4


def test_tol_stops_early(ct90: Any) -> None:
    A, _, y = ct90
    _, info = sirt(A, y, n_iter=500, tol=1e-2, progress=False, return_info=True)
    assert info.converged and info.stop_reason == "tol" and info.n_iter < 500
    change = abs(info.residual[-1] - info.residual[-2]) / info.residual[-2]
    assert change < 1e-2


def test_n_iter_zero_returns_start(ct90: Any) -> None:
    A, _, y = ct90
    x0 = np.ones(A.domain_shape)
    for solver in (sirt, cgls):
        x = solver(A, y, x0=x0, n_iter=0, progress=False)
        np.testing.assert_array_equal(x, x0)
        assert x is not x0


def test_progress_bar_can_be_switched_off(ct90: Any, capsys: pytest.CaptureFixture[str]) -> None:
    A, _, y = ct90
    sirt(A, y, n_iter=2, progress=False)
    assert capsys.readouterr().err == ""
    sirt(A, y, n_iter=2, progress=True)
    assert "sirt" in capsys.readouterr().err


# ------------------------------------------------------------------- errors
def test_bad_inputs_raise_typed_errors(ct90: Any) -> None:
    A, _, y = ct90
    with pytest.raises(ShapeError, match=r"expected shape \(90, 96\)"):
        sirt(A, y[:-1], progress=False)
    with pytest.raises(ShapeError, match="x0"):
        cgls(A, y, x0=np.zeros((3, 3)), progress=False)
    with pytest.raises(ShapeError):
        pdhg_tv(A, y[None], lam=1.0, progress=False)  # batches are not supported
    with pytest.raises(DtypeError):
        sirt(A, y.astype(np.int64), progress=False)
    with pytest.raises(ValueError, match="n_iter"):
        cgls(A, y, n_iter=-1, progress=False)
    with pytest.raises(ValueError, match="lam"):
        pdhg_tv(A, y, lam=-0.1, progress=False)
    with pytest.raises(ValueError, match="lam"):
        fista_tv(A, y, lam=-0.1, progress=False)
    with pytest.raises(ValueError, match="lo <= hi"):
        pdhg_tv(A, y, lam=0.1, bounds=(1.0, 0.0), progress=False)
    with pytest.raises(ValueError, match="lo <= hi"):
        fista_tv(A, y, lam=0.1, bounds=(None, -1.0), nonneg=True, progress=False)
    with pytest.raises(ValueError, match="tol"):
        sirt(A, y, tol=-1.0, progress=False)
    with pytest.raises(ValueError, match="relaxation"):
        sirt(A, y, relaxation=2.5, progress=False)
    with pytest.raises(ValueError, match="n_subsets"):
        os_sart(A, y, n_subsets=91, progress=False)
    with pytest.raises(TypeError, match="Projector"):
        os_sart(MatrixOperator(np.eye(3)), np.zeros(3), progress=False)
    with pytest.raises(ShapeError, match="range_shape"):
        os_sart([(MatrixOperator(np.eye(3)), np.array([0, 1]))], np.zeros(3), progress=False)
    with pytest.raises(TypeError, match="unexpected keyword"):
        cgls(A, y, nonneg=True)
    with pytest.raises(TypeError, match="callback"):
        sirt(A, y, callback=5, progress=False)
