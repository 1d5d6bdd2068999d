"""LinearOperator: shapes, batches, torch in/out, typed errors, arithmetic, norm."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from medrecon.errors import (
    DeviceError,
    DtypeError,
    MedreconError,
    NonFiniteError,
    ShapeError,
)
from medrecon.linop import Composition, Identity, LinearOperator, Scaled, Sum
from medrecon.testing import MatrixOperator, dot_test


def _matrix_op(
    rng: np.random.Generator,
    domain_shape: tuple[int, ...] = (2, 3),
    range_shape: tuple[int, ...] = (5,),
) -> MatrixOperator:
    m, n = int(np.prod(range_shape)), int(np.prod(domain_shape))
    return MatrixOperator(
        rng.standard_normal((m, n)), domain_shape=domain_shape, range_shape=range_shape
    )


class Recorder(LinearOperator):
    """The identity on (3,), remembering the arrays it received and returned."""

    def __init__(self) -> None:
        super().__init__(domain_shape=(3,), range_shape=(3,))
        self.seen: list[np.ndarray] = []
        self.returned: list[np.ndarray] = []

    def _forward(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(x)
        out = 2.0 * x
        self.returned.append(out)
        return out

    _adjoint = _forward


# ------------------------------------------------------------------ shapes
def test_forward_and_adjoint_shapes(rng: np.random.Generator) -> None:
    A = _matrix_op(rng, (2, 3), (5, 1))
    assert A.domain_shape == (2, 3) and A.range_shape == (5, 1)
    assert A(rng.random((2, 3))).shape == (5, 1)
    assert A.adjoint(rng.random((5, 1))).shape == (2, 3)
    assert A.T.domain_shape == (5, 1) and A.T.range_shape == (2, 3)


@pytest.mark.parametrize("batch", [(1,), (4,), (2, 3)])
def test_batch_dimensions_match_a_loop(rng: np.random.Generator, batch: tuple[int, ...]) -> None:
    A = _matrix_op(rng)
    x = rng.random((*batch, 2, 3))
    y = rng.random((*batch, 5))
    fx, aty = A(x), A.T(y)
    assert fx.shape == (*batch, 5) and aty.shape == (*batch, 2, 3)
    for idx in np.ndindex(*batch):
        np.testing.assert_allclose(fx[idx], A(x[idx]), rtol=1e-13)
        np.testing.assert_allclose(aty[idx], A.T(y[idx]), rtol=1e-13)


@pytest.mark.parametrize(
    "bad_shape", [(3, 2), (2,), (2, 3, 1), (6,)], ids=["swapped", "short", "extra", "flat"]
)
def test_wrong_shape_raises_shape_error(
    rng: np.random.Generator, bad_shape: tuple[int, ...]
) -> None:
    A = _matrix_op(rng)
    with pytest.raises(ShapeError, match=r"expected shape \(\.\.\., 2, 3\)"):
        A(np.zeros(bad_shape))
    with pytest.raises(ShapeError, match=r"adjoint input"):
        A.adjoint(np.zeros((4,)))


def test_scalar_input_raises_shape_error() -> None:
    with pytest.raises(ShapeError, match="scalar"):
        Identity((1,))(1.0)


def test_non_contiguous_input_is_accepted(rng: np.random.Generator) -> None:
    A = _matrix_op(rng, (3, 2), (5,))
    x = rng.random((2, 3))
    np.testing.assert_allclose(A(x.T), A(np.ascontiguousarray(x.T)), rtol=1e-14)


def test_list_input_is_converted() -> None:
    np.testing.assert_array_equal(Identity((2,))([1.0, 2.0]), [1.0, 2.0])


# ------------------------------------------------------------ dtypes, NaN
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_keeps_the_input_dtype(rng: np.random.Generator, dtype: Any) -> None:
    A = _matrix_op(rng)
    assert A(rng.random((2, 3)).astype(dtype)).dtype == dtype
    assert A.T(rng.random(5).astype(dtype)).dtype == dtype


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex128, np.bool_])
def test_unsupported_dtype_raises_dtype_error(dtype: Any) -> None:
    with pytest.raises(DtypeError, match=r"expected dtype float32 or float64"):
        Identity((3,))(np.zeros(3, dtype=dtype))
    with pytest.raises(TypeError):  # DtypeError is also a TypeError
        Identity((3,)).adjoint(np.zeros(3, dtype=dtype))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises(bad: float) -> None:
    x = np.array([1.0, bad, 0.0])
    with pytest.raises(NonFiniteError, match="expected finite values") as info:
        Identity((3,))(x)
    assert isinstance(info.value, ValueError) and isinstance(info.value, MedreconError)
    with pytest.raises(NonFiniteError):
        Identity((3,)).T(x)


def test_check_finite_false_lets_nan_through() -> None:
    op = Recorder()
    op.check_finite = False
    out = op(np.array([np.nan, 1.0, 2.0]))
    assert np.isnan(out[0]) and out[1] == 2.0


# ------------------------------------------------------------------ torch
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_in_gives_torch_out(dtype: torch.dtype) -> None:
    x = torch.arange(6, dtype=dtype).reshape(2, 3)
    out = Recorder()(x)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == dtype and out.shape == (2, 3)
    assert not out.requires_grad
    torch.testing.assert_close(out, 2 * x)


def test_torch_cpu_round_trip_is_zero_copy() -> None:
    op = Recorder()
    x = torch.arange(3, dtype=torch.float64)
    out = op(x)
    # the kernel saw the tensor's own memory, and the result tensor shares
    # memory with the array the kernel returned
    assert np.shares_memory(op.seen[0], x.numpy())
    assert np.shares_memory(out.numpy(), op.returned[0])


def test_numpy_in_gives_numpy_out() -> None:
    out = Recorder()(np.ones(3))
    assert type(out) is np.ndarray


def test_tensor_on_another_device_raises_device_error() -> None:
    x = torch.empty(3, device="meta")
    with pytest.raises(DeviceError, match="expected a CPU tensor"):
        Identity((3,))(x)


def test_tensor_requiring_grad_goes_through_the_bridge(rng: np.random.Generator) -> None:
    A = _matrix_op(rng)
    x = torch.tensor(rng.random((2, 3)), requires_grad=True)
    out = A(x)
    assert out.requires_grad and out.grad_fn is not None
    with torch.no_grad():
        plain = A(x)
    assert not plain.requires_grad
    torch.testing.assert_close(out.detach(), plain)


# ------------------------------------------------------- adjoint, caching
def test_adjoint_is_cached_and_involutive(rng: np.random.Generator) -> None:
    A = _matrix_op(rng)
    assert A.T is A.T
    assert A.T.T is A
    assert A.H is A.T
    assert "MatrixOperator" in repr(A.T) and repr(A.T).endswith(".T")


def test_identity(rng: np.random.Generator) -> None:
    eye = Identity((2, 2))
    x = rng.random((3, 2, 2))
    out = eye(x)
    np.testing.assert_array_equal(out, x)
    assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(eye.T(x), x)


# ------------------------------------------------------------- arithmetic
def test_composition_matches_matrix_product(rng: np.random.Generator) -> None:
    B = _matrix_op(rng, (2, 3), (5,))
    A = _matrix_op(rng, (5,), (4,))
    AB = A @ B
    assert isinstance(AB, Composition)
    assert AB.domain_shape == (2, 3) and AB.range_shape == (4,)
    x, y = rng.random((2, 3)), rng.random(4)
    product = A.matrix @ B.matrix
    np.testing.assert_allclose(AB(x), product @ x.ravel(), rtol=1e-12)
    np.testing.assert_allclose(AB.T(y).ravel(), product.T @ y, rtol=1e-12)
    assert dot_test(AB) < 1e-12


def test_matmul_with_an_array_applies_the_operator(rng: np.random.Generator) -> None:
    A = _matrix_op(rng)
    x = rng.random((2, 3))
    np.testing.assert_array_equal(A @ x, A(x))


def test_composition_checks_shapes_when_built(rng: np.random.Generator) -> None:
    A = _matrix_op(rng, (2, 3), (5,))
    with pytest.raises(ShapeError, match=r"left operator expects input \(2, 3\)"):
        A @ A


def test_sum_difference_and_negation(rng: np.random.Generator) -> None:
    A, B = _matrix_op(rng), _matrix_op(rng)
    x, y = rng.random((2, 3)), rng.random(5)
    for op, mat in ((A + B, A.matrix + B.matrix), (A - B, A.matrix - B.matrix), (-A, -A.matrix)):
        np.testing.assert_allclose(op(x), mat @ x.ravel(), rtol=1e-12)
        np.testing.assert_allclose(op.T(y).ravel(), mat.T @ y, rtol=1e-12)
        assert dot_test(op, nonnegative=False) < 1e-12
    assert isinstance(A + B, Sum)


def test_sum_checks_shapes_when_built(rng: np.random.Generator) -> None:
    with pytest.raises(ShapeError, match="cannot add"):
        _matrix_op(rng, (2, 3), (5,)) + _matrix_op(rng, (2, 3), (4,))
    with pytest.raises(TypeError):
        _matrix_op(rng) + 1.0  # type: ignore[operator]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaling(rng: np.random.Generator, dtype: Any) -> None:
    A = _matrix_op(rng)
    x = rng.random((2, 3)).astype(dtype)
    for op in (2.5 * A, A * 2.5):
        assert isinstance(op, Scaled)
        out = op(x)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, 2.5 * A(x), rtol=1e-6)
        assert dot_test(op, dtype=dtype) < 1e-4


def test_scale_must_be_finite(rng: np.random.Generator) -> None:
    with pytest.raises(DtypeError, match="finite real"):
        Scaled(_matrix_op(rng), float("nan"))


# ------------------------------------------------------------------- norm
def test_norm_matches_the_largest_singular_value(rng: np.random.Generator) -> None:
    # well separated top singular value, so power iteration converges fast
    u, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    v, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    s = np.array([3.0, 1.5, 1.0, 0.7, 0.2, 0.1])
    mat = u[:, :6] @ np.diag(s) @ v.T
    A = MatrixOperator(mat, domain_shape=(2, 3))
    expected = np.linalg.svd(mat, compute_uv=False)[0]
    assert A.norm() == pytest.approx(expected, rel=1e-6)
    assert A.T.norm() == pytest.approx(expected, rel=1e-6)
    assert (2.0 * A).norm() == pytest.approx(2 * expected, rel=1e-6)


def test_norm_is_cached(rng: np.random.Generator) -> None:
    op = Recorder()
    first = op.norm()
    calls = len(op.seen)
    assert first == pytest.approx(2.0)
    assert op.norm() == first
    assert len(op.seen) == calls  # no new evaluations


def test_norm_of_the_zero_operator_is_zero() -> None:
    assert MatrixOperator(np.zeros((3, 2))).norm() == 0.0


def test_norm_works_for_operators_with_a_fixed_float32_dtype() -> None:
    import medrecon
    from medrecon.geometry import ParallelBeam2D, VolumeGeometry

    geom = ParallelBeam2D(angles=np.linspace(0, np.pi, 20, endpoint=False), n_det=40)
    vol = VolumeGeometry(shape=(32, 32))
    a32 = medrecon.Projector(geom, vol, dtype=np.float32)
    a64 = medrecon.Projector(geom, vol)
    assert a32.norm(rtol=1e-9) == pytest.approx(a64.norm(rtol=1e-9), rel=1e-5)
