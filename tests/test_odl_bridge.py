"""medrecon.interop.odl: operators in ODL, adjoints under ODL's (weighted) inner products."""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Any

import numpy as np
import odl
import pytest

from medrecon.errors import BackendUnavailableError, DtypeError, ShapeError
from medrecon.interop import as_odl_operator, volume_space
from medrecon.interop import odl as odl_bridge
from medrecon.testing import MatrixOperator


@pytest.fixture
def matrix(rng: np.random.Generator) -> np.ndarray:
    # well conditioned (singular values in [1, 2]) so that Landweber converges fast
    u, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    v, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    return u[:, :6] @ np.diag(np.linspace(1.0, 2.0, 6)) @ v.T


@pytest.fixture
def op(matrix: np.ndarray) -> MatrixOperator:
    return MatrixOperator(matrix, domain_shape=(2, 3), range_shape=(3, 4))


def _odl_dot_error(A: Any, rng: np.random.Generator) -> float:
    """|<A x, y>_Y - <x, A* y>_X| / |<A x, y>_Y| with ODL's own (weighted) inner products."""
    x = A.domain.element(rng.random(A.domain.shape))
    y = A.range.element(rng.random(A.range.shape))
    lhs = A(x).inner(y)
    rhs = x.inner(A.adjoint(y))
    return float(abs(lhs - rhs) / abs(lhs))


def _operator_test_report(A: Any) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        test = odl.diagnostics.OperatorTest(A, verbose=True, tol=1e-10)
        test.linear()
        test.adjoint()
    return out.getvalue()


# ---------------------------------------------------------------- wrapping
def test_default_spaces_are_unweighted_tensor_spaces(op: MatrixOperator) -> None:
    A = as_odl_operator(op)
    assert isinstance(A, odl.Operator) and A.is_linear
    assert A.domain == odl.tensor_space((2, 3), dtype=np.float64)
    assert A.range == odl.tensor_space((3, 4), dtype=np.float64)
    assert A.op is op
    assert A.adjoint.domain == A.range and A.adjoint.range == A.domain
    assert A.adjoint is A.adjoint and A.adjoint.adjoint is A
    assert "MatrixOperator" in repr(A)


def test_evaluation_matches_the_medrecon_operator(
    op: MatrixOperator, rng: np.random.Generator
) -> None:
    A = as_odl_operator(op)
    x, y = rng.random((2, 3)), rng.random((3, 4))
    np.testing.assert_allclose(A(x).asarray(), op(x), rtol=1e-14)
    np.testing.assert_allclose(A.adjoint(y).asarray(), op.T(y), rtol=1e-14)
    out = A.range.element()
    A(x, out=out)
    np.testing.assert_allclose(out.asarray(), op(x), rtol=1e-14)


def test_odl_operator_test_passes(op: MatrixOperator) -> None:
    report = _operator_test_report(as_odl_operator(op))
    assert "Verifying the identity <Ax, y> = <x, A^T y>" in report  # the test really ran
    assert "FAILED" not in report, report


def test_odl_operator_test_catches_a_wrong_adjoint(matrix: np.ndarray) -> None:
    broken = MatrixOperator(matrix, domain_shape=(2, 3), adjoint_matrix=1.01 * matrix.T)
    report = _operator_test_report(as_odl_operator(broken))
    assert "FAILED" in report


def test_float32_spaces(op: MatrixOperator, rng: np.random.Generator) -> None:
    A = as_odl_operator(op, dtype=np.float32)
    assert A.domain.dtype == np.float32 and A.range.dtype == np.float32
    out = A(rng.random((2, 3)))
    assert out.asarray().dtype == np.float32
    assert _odl_dot_error(A, rng) < 1e-5


def test_norm(op: MatrixOperator, matrix: np.ndarray) -> None:
    A = as_odl_operator(op)
    # LinearOperator.norm stops its power iteration at a relative change of 1e-6
    assert A.norm() == pytest.approx(2.0, rel=1e-4)
    assert A.adjoint.norm() == pytest.approx(2.0, rel=1e-4)
    assert A.norm(estimate=True) == pytest.approx(2.0, rel=1e-3)


# ----------------------------------------------------------------- solvers
def test_odl_solvers_match_numpy_least_squares(
    op: MatrixOperator, matrix: np.ndarray, rng: np.random.Generator
) -> None:
    A = as_odl_operator(op)
    b = rng.standard_normal((3, 4))
    expected = np.linalg.lstsq(matrix, b.ravel(), rcond=None)[0].reshape(2, 3)

    x_cg = A.domain.zero()
    odl.solvers.conjugate_gradient_normal(A, x_cg, A.range.element(b), niter=12)
    np.testing.assert_allclose(x_cg.asarray(), expected, rtol=1e-8, atol=1e-10)

    x_lw = A.domain.zero()
    odl.solvers.landweber(A, x_lw, A.range.element(b), niter=200, omega=1.0 / A.norm() ** 2)
    np.testing.assert_allclose(x_lw.asarray(), expected, rtol=1e-8, atol=1e-10)


def test_odl_solver_on_a_weighted_domain_gives_the_same_solution(
    op: MatrixOperator, matrix: np.ndarray, rng: np.random.Generator
) -> None:
    # the least-squares solution does not depend on the domain's weighting
    domain = odl.uniform_discr([0.0, 0.0], [5.0, 6.0], (2, 3))  # cell volume 5
    A = as_odl_operator(op, domain=domain)
    b = rng.standard_normal((3, 4))
    x = A.domain.zero()
    odl.solvers.conjugate_gradient_normal(A, x, A.range.element(b), niter=12)
    expected = np.linalg.lstsq(matrix, b.ravel(), rcond=None)[0].reshape(2, 3)
    np.testing.assert_allclose(x.asarray(), expected, rtol=1e-8, atol=1e-10)


# -------------------------------------------------------- weighted spaces
def test_weighted_spaces_rescale_the_adjoint(op: MatrixOperator, rng: np.random.Generator) -> None:
    domain = odl.uniform_discr([0.0, 0.0], [1.0, 0.75], (2, 3))  # cell volume 0.125
    range_ = odl.tensor_space((3, 4), weighting=3.0)
    A = as_odl_operator(op, domain=domain, range=range_)
    y = rng.random((3, 4))
    np.testing.assert_allclose(A.adjoint(y).asarray(), 24.0 * op.T(y), rtol=1e-13)
    assert _odl_dot_error(A, rng) < 1e-12
    assert "FAILED" not in _operator_test_report(A)
    # the plain transpose is not the adjoint for these inner products
    x = A.domain.element(rng.random((2, 3)))
    yy = A.range.element(y)
    plain = x.inner(A.domain.element(op.T(y)))
    assert abs(A(x).inner(yy) - plain) > 0.5 * abs(plain)
    # operator norm between the weighted spaces: sqrt(w_Y / w_X) * ||A||
    assert A.norm() == pytest.approx(np.sqrt(24.0) * 2.0, rel=1e-4)
    assert A.norm(estimate=True) == pytest.approx(A.norm(), rel=1e-3)


def test_volume_space_follows_the_volume_geometry(rng: np.random.Generator) -> None:
    from medrecon.geometry import VolumeGeometry

    vol = VolumeGeometry(shape=(2, 3), voxel_size=(0.5, 2.0), center=(1.0, -3.0))
    space = volume_space(vol)
    assert space.shape == (2, 3)
    assert space.cell_volume == pytest.approx(1.0)
    np.testing.assert_allclose(space.min_pt, [0.5, -6.0])
    np.testing.assert_allclose(space.max_pt, [1.5, 0.0])
    np.testing.assert_allclose(space.cell_sides, [0.5, 2.0])
    # the cell centres are the voxel centres
    np.testing.assert_allclose(space.grid.coord_vectors[1], vol.coords(1))

    vol3 = VolumeGeometry(shape=(2, 3, 4), voxel_size=(0.5, 0.25, 2.0))
    space3 = volume_space(vol3, dtype=np.float32)
    assert space3.dtype == np.float32 and space3.cell_volume == pytest.approx(0.25)
    op3 = MatrixOperator(rng.standard_normal((5, 24)), domain_shape=(2, 3, 4))
    A = as_odl_operator(op3, domain=volume_space(vol3))
    assert _odl_dot_error(A, rng) < 1e-12


def test_volume_space_checks_the_extent() -> None:
    from types import SimpleNamespace

    with pytest.raises(ShapeError, match="extent has 1 axes"):
        volume_space(SimpleNamespace(shape=(2, 3), extent=((0.0, 1.0),)))


def test_with_a_projector(rng: np.random.Generator) -> None:
    from medrecon.geometry import ParallelBeam2D, VolumeGeometry
    from medrecon.projectors import Projector

    vol = VolumeGeometry(shape=(12, 12), voxel_size=0.8)
    geom = ParallelBeam2D(angles=np.linspace(0, np.pi, 9, endpoint=False), n_det=17)
    P = Projector(geom, vol)
    A = as_odl_operator(P, domain=volume_space(P.volume))
    assert A.range.shape == (9, 17)
    assert _odl_dot_error(A, rng) < 1e-12
    assert "FAILED" not in _operator_test_report(A)


# ------------------------------------------------------------------ errors
def test_space_of_the_wrong_shape(op: MatrixOperator) -> None:
    with pytest.raises(ShapeError, match=r"domain: expected a space of shape \(2, 3\)"):
        as_odl_operator(op, domain=odl.rn((3, 2)))
    with pytest.raises(ShapeError, match=r"range: expected a space of shape \(3, 4\)"):
        as_odl_operator(op, range=odl.rn(12))


def test_non_float_spaces_and_dtypes_are_refused(op: MatrixOperator) -> None:
    with pytest.raises(DtypeError, match="complex128"):
        as_odl_operator(op, domain=odl.cn((2, 3)))
    with pytest.raises(DtypeError, match="int32"):
        as_odl_operator(op, dtype=np.int32)


def test_unsupported_weightings_are_refused(op: MatrixOperator) -> None:
    with pytest.raises(ValueError, match="constant weight"):
        as_odl_operator(op, domain=odl.tensor_space((2, 3), weighting=np.ones((2, 3))))
    with pytest.raises(ValueError, match="exponent 1"):
        as_odl_operator(op, domain=odl.tensor_space((2, 3), exponent=1.0))


def test_non_spaces_are_refused(op: MatrixOperator) -> None:
    with pytest.raises(TypeError, match="expected an ODL tensor or discretised space"):
        as_odl_operator(op, domain=np.zeros((2, 3)))


def test_missing_odl_names_the_package(op: MatrixOperator, monkeypatch: pytest.MonkeyPatch) -> None:
    odl_bridge._operator_class.cache_clear()
    monkeypatch.setitem(sys.modules, "odl", None)  # makes "import odl" fail
    try:
        with pytest.raises(BackendUnavailableError, match="pip install odl") as info:
            as_odl_operator(op)
        assert isinstance(info.value, ImportError)
        with pytest.raises(BackendUnavailableError):
            volume_space(object())
    finally:
        odl_bridge._operator_class.cache_clear()


def test_old_odl_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(odl, "__version__", "0.7.0")
    with pytest.raises(BackendUnavailableError, match=r"odl >= 1\.0, found odl 0\.7\.0"):
        odl_bridge._import_odl()
