"""medrecon.testing: every check passes on a right operator and fails on a broken one."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from medrecon.linop import LinearOperator
from medrecon.testing import (
    DEFAULT_RTOL,
    MatrixOperator,
    adjoint_of_adjoint_test,
    agreement_test,
    autograd_gradient_test,
    dot_test,
    gradcheck,
    linearity_test,
    normal_operator_test,
)

M_SHAPE = (7, 6)  # range 7, domain (2, 3)


@pytest.fixture
def matrix(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(M_SHAPE)


def _op(matrix: np.ndarray, adjoint_matrix: Any = None) -> MatrixOperator:
    return MatrixOperator(
        matrix, domain_shape=(2, 3), range_shape=(7,), adjoint_matrix=adjoint_matrix
    )


def _wrong_adjoints(matrix: np.ndarray) -> dict[str, np.ndarray]:
    perturbed = matrix.T.copy()
    perturbed[1, 2] += 0.05
    return {
        "scaled": 1.01 * matrix.T,
        "one entry off": perturbed,
        "transposed axes": matrix.T.reshape(2, 3, 7).transpose(1, 0, 2).reshape(6, 7),
    }


WRONG = ["scaled", "one entry off", "transposed axes"]


# ------------------------------------------------------------ broken kinds
class Affine(MatrixOperator):
    """Not linear: adds a constant."""

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return super()._forward(x) + x.dtype.type(0.1)


class Uncached(MatrixOperator):
    """``.T`` builds a new object on every access."""

    @property
    def T(self) -> LinearOperator:  # noqa: N802
        return MatrixOperator(self.adjoint_matrix, domain_shape=(7,), range_shape=(2, 3))


class ForeignTranspose(MatrixOperator):
    """``.T`` is cached, but its own ``.T`` is a different object."""

    @property
    def T(self) -> LinearOperator:  # noqa: N802
        if self._adjoint_op is None:
            self._adjoint_op = MatrixOperator(
                self.adjoint_matrix, domain_shape=(7,), range_shape=(2, 3)
            )
        return self._adjoint_op


class Noisy(MatrixOperator):
    """Gives a different answer on every call."""

    calls = 0

    def _forward(self, x: np.ndarray) -> np.ndarray:
        Noisy.calls += 1
        return super()._forward(x) * x.dtype.type(1 + 1e-3 * Noisy.calls)


class Float32Only(MatrixOperator):
    """Fixed dtype, refuses anything else (like ``Projector(..., dtype=np.float32)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dtype = np.dtype(np.float32)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if x.dtype != self.dtype:
            raise TypeError(f"got {x.dtype}")
        return super()._forward(x)


# --------------------------------------------------------------- dot test
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_dot_test_passes_for_the_exact_adjoint(
    matrix: np.ndarray, dtype: Any, batch: tuple[int, ...]
) -> None:
    err = dot_test(_op(matrix), dtype=dtype, batch=batch)
    assert 0.0 <= err <= DEFAULT_RTOL[np.dtype(dtype)]


@pytest.mark.parametrize("kind", WRONG)
@pytest.mark.parametrize("nonnegative", [True, False])
def test_dot_test_catches_a_wrong_adjoint(matrix: np.ndarray, kind: str, nonnegative: bool) -> None:
    op = _op(matrix, _wrong_adjoints(matrix)[kind])
    with pytest.raises(AssertionError, match=r"dot test .*<Ax, y> = .*<x, A\^T y> = "):
        dot_test(op, nonnegative=nonnegative)


def test_dot_test_returns_the_error_without_asserting_for_infinite_rtol(
    matrix: np.ndarray,
) -> None:
    err = dot_test(_op(matrix, 1.01 * matrix.T), rtol=math.inf)
    assert err == pytest.approx(0.01, rel=1e-6)


def test_dot_test_respects_a_given_rtol(matrix: np.ndarray) -> None:
    op = _op(matrix, (1 + 1e-6) * matrix.T)
    assert dot_test(op, rtol=1e-5) == pytest.approx(1e-6, rel=1e-3)
    with pytest.raises(AssertionError, match=r"rtol 1\.0e-07"):
        dot_test(op, rtol=1e-7)


def test_dot_test_refuses_to_pass_on_a_zero_operator() -> None:
    with pytest.raises(AssertionError, match="inconclusive"):
        dot_test(MatrixOperator(np.zeros((3, 4))))
    with pytest.raises(AssertionError, match="<Ax, y> = 0 but"):
        dot_test(MatrixOperator(np.zeros((3, 4)), adjoint_matrix=np.ones((4, 3))))


def test_default_dtype_follows_the_operator(matrix: np.ndarray) -> None:
    op = Float32Only(matrix, domain_shape=(2, 3))
    assert dot_test(op) <= DEFAULT_RTOL[np.dtype(np.float32)]
    with pytest.raises(TypeError, match="float64"):
        dot_test(op, dtype=np.float64)


def test_unsupported_dtype_is_refused(matrix: np.ndarray) -> None:
    with pytest.raises(TypeError, match="float32 or float64"):
        dot_test(_op(matrix), dtype=np.int32)


# -------------------------------------------------------------- linearity
def test_linearity_test(matrix: np.ndarray) -> None:
    assert linearity_test(_op(matrix)) < 1e-12
    assert linearity_test(_op(matrix), dtype=np.float32) < 1e-4
    with pytest.raises(AssertionError, match="linearity of the forward"):
        linearity_test(Affine(matrix, domain_shape=(2, 3)))


# ---------------------------------------------------- adjoint of adjoint
def test_adjoint_of_adjoint_test(matrix: np.ndarray) -> None:
    assert adjoint_of_adjoint_test(_op(matrix)) == 0.0
    with pytest.raises(AssertionError, match="not cached"):
        adjoint_of_adjoint_test(Uncached(matrix, domain_shape=(2, 3)))
    with pytest.raises(AssertionError, match=r"\.T\.T is .* expected the operator itself"):
        adjoint_of_adjoint_test(ForeignTranspose(matrix, domain_shape=(2, 3)))
    with pytest.raises(AssertionError, match=r"op\.T\.T\(x\) and op\(x\)"):
        adjoint_of_adjoint_test(Noisy(matrix, domain_shape=(2, 3)))


# ------------------------------------------------------- normal operator
def test_normal_operator_test(matrix: np.ndarray) -> None:
    op = _op(matrix)
    assert normal_operator_test(op) < 1e-12
    explicit = MatrixOperator(matrix.T @ matrix, domain_shape=(2, 3), range_shape=(2, 3))
    assert normal_operator_test(op, explicit) < 1e-12


@pytest.mark.parametrize("kind", WRONG)
def test_normal_operator_test_catches_a_wrong_adjoint(matrix: np.ndarray, kind: str) -> None:
    with pytest.raises(AssertionError, match="normal operator"):
        normal_operator_test(_op(matrix, _wrong_adjoints(matrix)[kind]))


def test_normal_operator_test_catches_a_wrong_normal_operator(matrix: np.ndarray) -> None:
    wrong = MatrixOperator(
        matrix.T @ matrix + 1e-3 * np.eye(6), domain_shape=(2, 3), range_shape=(2, 3)
    )
    with pytest.raises(AssertionError, match="normal operator"):
        normal_operator_test(_op(matrix), wrong)
    with pytest.raises(AssertionError, match="normal operator maps"):
        normal_operator_test(_op(matrix), MatrixOperator(np.eye(6)))


# --------------------------------------------------------------- autograd
def test_autograd_gradient_test(matrix: np.ndarray) -> None:
    assert autograd_gradient_test(_op(matrix)) < 1e-12
    assert autograd_gradient_test(_op(matrix), batch=(2,)) < 1e-12


class Detaching(MatrixOperator):
    """Forgets the autograd bridge: tensors come back without a graph."""

    def forward(self, x: Any) -> Any:
        return super().forward(x.detach())


class _ScaledBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, op: MatrixOperator) -> torch.Tensor:  # type: ignore[override]
        ctx.op = op
        return torch.from_numpy(op._forward(x.detach().numpy()))

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return 1.01 * torch.from_numpy(ctx.op._adjoint(g.numpy())), None


class WrongBackward(MatrixOperator):
    """Its own torch path, whose backward is not the adjoint."""

    def forward(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.requires_grad:
            return _ScaledBackward.apply(x, self)
        return super().forward(x)


def test_autograd_gradient_test_catches_a_bypassed_bridge(matrix: np.ndarray) -> None:
    with pytest.raises(AssertionError, match="bridge was bypassed"):
        autograd_gradient_test(Detaching(matrix, domain_shape=(2, 3)))


def test_autograd_gradient_test_catches_a_wrong_backward(matrix: np.ndarray) -> None:
    op = WrongBackward(matrix, domain_shape=(2, 3))
    assert dot_test(op) < 1e-12  # the numpy adjoint is right, only autograd is wrong
    with pytest.raises(AssertionError, match="autograd gradient"):
        autograd_gradient_test(op)


def test_gradcheck(matrix: np.ndarray) -> None:
    assert gradcheck(_op(matrix))
    assert gradcheck(_op(matrix), (2, 2, 3), fast_mode=True)


@pytest.mark.parametrize("kind", WRONG)
def test_gradcheck_catches_a_wrong_adjoint(matrix: np.ndarray, kind: str) -> None:
    with pytest.raises(AssertionError, match="gradcheck failed for the forward"):
        gradcheck(_op(matrix, _wrong_adjoints(matrix)[kind]), adjoint=False)


def test_gradcheck_refuses_a_shape_without_the_domain(matrix: np.ndarray) -> None:
    with pytest.raises(AssertionError, match="does not end with the domain shape"):
        gradcheck(_op(matrix), (3, 2))


# -------------------------------------------------------------- agreement
def test_agreement_test(matrix: np.ndarray) -> None:
    op = _op(matrix)
    # the same map built differently: a composition with the identity matrix
    other = op @ MatrixOperator(np.eye(6), domain_shape=(2, 3), range_shape=(2, 3))
    assert agreement_test(other, op) < 1e-12


def _check_agreement(a: LinearOperator, b: LinearOperator) -> float:
    return agreement_test(a, b)


@pytest.mark.parametrize(
    ("make_other", "match"),
    [
        (lambda m: _op(m * (1 + 1e-3)), "forward agreement"),
        (lambda m: _op(m, 1.001 * m.T), "adjoint agreement"),
        (lambda m: MatrixOperator(m), "different shapes"),
    ],
    ids=["forward", "adjoint", "shapes"],
)
def test_agreement_test_catches_differences(
    matrix: np.ndarray, make_other: Callable[[np.ndarray], LinearOperator], match: str
) -> None:
    with pytest.raises(AssertionError, match=match):
        _check_agreement(make_other(matrix), _op(matrix))


def test_agreement_test_can_skip_the_adjoint(matrix: np.ndarray) -> None:
    assert agreement_test(_op(matrix, 1.001 * matrix.T), _op(matrix), check_adjoint=False) == 0.0


def test_matrix_operator_validates_its_matrices() -> None:
    with pytest.raises(ValueError, match="2D array"):
        MatrixOperator(np.ones(3))
    with pytest.raises(ValueError, match="does not map"):
        MatrixOperator(np.ones((3, 4)), domain_shape=(2, 3))
    with pytest.raises(ValueError, match="adjoint_matrix"):
        MatrixOperator(np.ones((3, 4)), adjoint_matrix=np.ones((3, 4)))
