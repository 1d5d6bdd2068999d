"""Reusable checks for linear operators: adjointness, linearity, autograd, agreement.

Every check draws seeded random inputs, measures one number, raises
:class:`AssertionError` with a message that states what was measured and
what was allowed when the number is too large, and otherwise returns it. The
checks work on any :class:`~medrecon.linop.LinearOperator` (a projector, a
composition, an MR encoding operator) and on every backend, so a new
operator or backend is tested by calling them, for example in a
parametrized pytest test::

    from medrecon.testing import adjoint_of_adjoint_test, dot_test

    def test_projector_is_adjoint(projector):
        dot_test(projector, dtype=np.float32)
        adjoint_of_adjoint_test(projector)

Inner products are accumulated in float64 whatever the operator's dtype.
When ``rtol`` is not given, a default for the dtype is used (see
:data:`DEFAULT_RTOL`); pass ``rtol=math.inf`` to measure without asserting.

>>> import numpy as np
>>> from medrecon.linop import Identity
>>> dot_test(Identity((4, 3)))
0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from medrecon._array import to_numpy
from medrecon.linop import LinearOperator

__all__ = [
    "DEFAULT_RTOL",
    "MatrixOperator",
    "adjoint_of_adjoint_test",
    "agreement_test",
    "autograd_gradient_test",
    "dot_test",
    "gradcheck",
    "linearity_test",
    "normal_operator_test",
]

#: Relative tolerance used by the checks when ``rtol`` is not given, by dtype.
DEFAULT_RTOL: dict[np.dtype, float] = {
    np.dtype(np.float32): 1e-4,
    np.dtype(np.float64): 1e-9,
}


class MatrixOperator(LinearOperator):
    """A dense matrix as a :class:`~medrecon.linop.LinearOperator`, for tests.

    Small and obviously right, it is the reference against which the checks
    in this module, solvers and bridges are tested. Giving a wrong
    ``adjoint_matrix`` builds a deliberately broken operator, to show that a
    check can fail.

    Parameters
    ----------
    matrix : array_like of shape (m, n)
        The matrix; ``m = prod(range_shape)``, ``n = prod(domain_shape)``.
    domain_shape, range_shape : tuple of int, optional
        Default ``(n,)`` and ``(m,)``.
    adjoint_matrix : array_like of shape (n, m), optional
        The matrix applied by :meth:`adjoint`; default ``matrix.T`` (the exact
        adjoint).

    Examples
    --------
    >>> import numpy as np
    >>> A = MatrixOperator(np.arange(6.0).reshape(3, 2), domain_shape=(1, 2))
    >>> A(np.ones((4, 1, 2))).shape
    (4, 3)
    >>> A.T(np.ones(3)).tolist()
    [[6.0, 9.0]]
    """

    def __init__(
        self,
        matrix: Any,
        *,
        domain_shape: tuple[int, ...] | None = None,
        range_shape: tuple[int, ...] | None = None,
        adjoint_matrix: Any = None,
    ) -> None:
        mat = np.array(matrix, dtype=np.float64)
        if mat.ndim != 2:
            raise ValueError(f"matrix: expected a 2D array, got shape {mat.shape}")
        m, n = mat.shape
        domain_shape = (n,) if domain_shape is None else tuple(domain_shape)
        range_shape = (m,) if range_shape is None else tuple(range_shape)
        if math.prod(domain_shape) != n or math.prod(range_shape) != m:
            raise ValueError(
                f"matrix of shape {mat.shape} does not map {domain_shape} to {range_shape}"
            )
        adj = mat.T.copy() if adjoint_matrix is None else np.array(adjoint_matrix, np.float64)
        if adj.shape != (n, m):
            raise ValueError(f"adjoint_matrix: expected shape {(n, m)}, got {adj.shape}")
        super().__init__(domain_shape=domain_shape, range_shape=range_shape)
        self.matrix = mat
        self.adjoint_matrix = adj

    def _apply(
        self, mat: np.ndarray, x: np.ndarray, core: tuple[int, ...], out: tuple[int, ...]
    ) -> np.ndarray:
        batch = x.shape[: x.ndim - len(core)]
        flat = x.reshape(-1, mat.shape[1])
        result: np.ndarray = flat @ mat.T.astype(x.dtype)
        return result.reshape(batch + out)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return self._apply(self.matrix, x, self.domain_shape, self.range_shape)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        return self._apply(self.adjoint_matrix, y, self.range_shape, self.domain_shape)


# ---------------------------------------------------------------- helpers
def _resolve_dtype(op: LinearOperator, dtype: DTypeLike | None) -> np.dtype:
    """``dtype`` if given, else the operator's fixed dtype if it has one, else float64."""
    if dtype is None:
        dtype = getattr(op, "dtype", None)
        if dtype is None:
            dtype = np.float64
    dt = np.dtype(dtype)
    if dt not in DEFAULT_RTOL:
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def _resolve_rtol(rtol: float | None, dtype: np.dtype) -> float:
    return DEFAULT_RTOL[dtype] if rtol is None else float(rtol)


def _random(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, nonnegative: bool
) -> np.ndarray:
    arr = rng.random(shape) if nonnegative else rng.standard_normal(shape)
    return arr.astype(dtype)


def _inner(a: Any, b: Any) -> float:
    """Real inner product accumulated in float64."""
    a64 = np.asarray(to_numpy(a), dtype=np.float64).ravel()
    b64 = np.asarray(to_numpy(b), dtype=np.float64).ravel()
    return float(np.dot(a64, b64))


def _rel_diff(a: Any, b: Any) -> float:
    """``||a - b|| / ||b||`` in float64 (0 when both are zero, inf when only ``b`` is)."""
    a64 = np.asarray(to_numpy(a), dtype=np.float64)
    b64 = np.asarray(to_numpy(b), dtype=np.float64)
    num = float(np.linalg.norm((a64 - b64).ravel()))
    den = float(np.linalg.norm(b64.ravel()))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def _name(op: LinearOperator) -> str:
    return repr(op)


def _check(value: float, rtol: float, what: str, op: LinearOperator, details: str = "") -> float:
    if not value <= rtol:  # also catches NaN
        extra = f"; {details}" if details else ""
        raise AssertionError(
            f"{what} for {_name(op)}: measured {value:.3e} > rtol {rtol:.1e}{extra}"
        )
    return value


# ----------------------------------------------------------------- checks
def dot_test(
    op: LinearOperator,
    *,
    dtype: DTypeLike | None = None,
    seed: int = 0,
    batch: tuple[int, ...] = (),
    nonnegative: bool = True,
    rtol: float | None = None,
) -> float:
    """Check ``<A x, y> == <x, A^T y>`` on random inputs.

    Parameters
    ----------
    op : LinearOperator
        The operator to test.
    dtype : {None, numpy.float32, numpy.float64}
        dtype of the inputs. By default the operator's fixed ``dtype``
        attribute if it has one, else float64.
    seed : int
        Seed of the random inputs.
    batch : tuple of int
        Leading batch dimensions of the inputs; the inner products run over
        the whole batch.
    nonnegative : bool
        Draw inputs uniformly from [0, 1) (default; images and projections
        are non-negative, and the inner products cannot cancel) instead of
        from a standard normal distribution.
    rtol : float, optional
        Largest accepted relative error; :data:`DEFAULT_RTOL` for ``dtype``
        if not given.

    Returns
    -------
    float
        The relative error ``|<Ax, y> - <x, A^T y>| / |<Ax, y>|``, both inner
        products accumulated in float64.

    Raises
    ------
    AssertionError
        If the relative error exceeds ``rtol``, or if ``<Ax, y>`` is zero (the
        test could not tell a right adjoint from a wrong one).

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.linop import Identity
    >>> dot_test(Identity((5,)), dtype=np.float32, batch=(2,))
    0.0
    """
    dt = _resolve_dtype(op, dtype)
    tol = _resolve_rtol(rtol, dt)
    rng = np.random.default_rng(seed)
    x = _random(rng, tuple(batch) + op.domain_shape, dt, nonnegative)
    y = _random(rng, tuple(batch) + op.range_shape, dt, nonnegative)
    lhs = _inner(op.forward(x), y)
    rhs = _inner(x, op.adjoint(y))
    if lhs == 0.0:
        if rhs == 0.0:
            raise AssertionError(
                f"dot test for {_name(op)} is inconclusive: <Ax, y> = <x, A^T y> = 0 "
                "(the operator maps the random input to zero)"
            )
        raise AssertionError(
            f"dot test failed for {_name(op)}: <Ax, y> = 0 but <x, A^T y> = {rhs:.6e}"
        )
    err = abs(lhs - rhs) / abs(lhs)
    return _check(
        err,
        tol,
        "dot test |<Ax,y> - <x,A^T y>| / |<Ax,y>|",
        op,
        f"<Ax, y> = {lhs:.10e}, <x, A^T y> = {rhs:.10e}, dtype {dt}",
    )


def linearity_test(
    op: LinearOperator,
    *,
    dtype: DTypeLike | None = None,
    seed: int = 0,
    rtol: float | None = None,
) -> float:
    """Check ``A(a x + b z) == a A x + b A z`` for the operator and its adjoint.

    Parameters
    ----------
    op : LinearOperator
        The operator to test.
    dtype : {None, numpy.float32, numpy.float64}
        dtype of the inputs (default: the operator's fixed dtype, else float64).
    seed : int
        Seed of the random inputs and coefficients.
    rtol : float, optional
        Largest accepted relative L2 error (default :data:`DEFAULT_RTOL`).

    Returns
    -------
    float
        The larger relative L2 error of the forward and the adjoint.

    Raises
    ------
    AssertionError
        If either relative error exceeds ``rtol``.
    """
    dt = _resolve_dtype(op, dtype)
    tol = _resolve_rtol(rtol, dt)
    rng = np.random.default_rng(seed)
    a, b = (float(c) for c in rng.uniform(0.5, 2.0, size=2) * np.array([1.0, -1.0]))
    worst = 0.0
    for name, apply, shape in (
        ("forward", op.forward, op.domain_shape),
        ("adjoint", op.adjoint, op.range_shape),
    ):
        x = _random(rng, shape, dt, nonnegative=False)
        z = _random(rng, shape, dt, nonnegative=False)
        combined = apply((a * x.astype(np.float64) + b * z.astype(np.float64)).astype(dt))
        expected = a * np.asarray(apply(x), np.float64) + b * np.asarray(apply(z), np.float64)
        err = _rel_diff(combined, expected)
        _check(err, tol, f"linearity of the {name} (a={a:.3f}, b={b:.3f})", op)
        worst = max(worst, err)
    return worst


def adjoint_of_adjoint_test(
    op: LinearOperator,
    *,
    dtype: DTypeLike | None = None,
    seed: int = 0,
    rtol: float | None = None,
) -> float:
    """Check that the adjoint's adjoint is the operator itself.

    ``op.T.T`` must be ``op`` (the cached object, not a copy) and applying
    it must give the same result as applying ``op``; ``op.T`` must also be
    cached (``op.T is op.T``).

    Parameters
    ----------
    op : LinearOperator
        The operator to test.
    dtype : {None, numpy.float32, numpy.float64}
        dtype of the input (default: the operator's fixed dtype, else float64).
    seed : int
        Seed of the random input.
    rtol : float, optional
        Largest accepted relative L2 difference between ``op.T.T(x)`` and
        ``op(x)`` (default :data:`DEFAULT_RTOL`).

    Returns
    -------
    float
        The relative L2 difference between ``op.T.T(x)`` and ``op(x)``.

    Raises
    ------
    AssertionError
        If ``op.T.T is not op``, ``op.T`` is not cached, or the outputs differ.
    """
    adj = op.T
    if op.T is not adj:
        raise AssertionError(f"{_name(op)}.T is not cached: two accesses gave two objects")
    if adj.domain_shape != op.range_shape or adj.range_shape != op.domain_shape:
        raise AssertionError(
            f"{_name(op)}.T maps {adj.domain_shape} -> {adj.range_shape}, expected "
            f"{op.range_shape} -> {op.domain_shape}"
        )
    adj_adj = adj.T
    if adj_adj is not op:
        raise AssertionError(f"{_name(op)}.T.T is {adj_adj!r}, expected the operator itself")
    dt = _resolve_dtype(op, dtype)
    x = _random(np.random.default_rng(seed), op.domain_shape, dt, nonnegative=False)
    err = _rel_diff(adj_adj(x), op(x))
    return _check(err, _resolve_rtol(rtol, dt), "difference between op.T.T(x) and op(x)", op)


def normal_operator_test(
    op: LinearOperator,
    normal: LinearOperator | None = None,
    *,
    dtype: DTypeLike | None = None,
    seed: int = 0,
    rtol: float | None = None,
) -> float:
    """Check the normal operator ``N = A^T A``: symmetric, non-negative, consistent.

    Checks ``<x, N x> == ||A x||^2`` (so ``N`` is positive semi-definite),
    ``<N x, z> == <x, N z>`` (so ``N`` is symmetric) and, when ``normal`` is
    given (for example a Toeplitz-embedded MR normal operator), that it
    agrees with ``A^T(A x)``.

    Parameters
    ----------
    op : LinearOperator
        The operator ``A``.
    normal : LinearOperator, optional
        A separately implemented normal operator to check against ``A^T A``;
        by default ``op.T @ op`` is used.
    dtype : {None, numpy.float32, numpy.float64}
        dtype of the inputs (default: the operator's fixed dtype, else float64).
    seed : int
        Seed of the random inputs.
    rtol : float, optional
        Largest accepted relative error (default :data:`DEFAULT_RTOL`).

    Returns
    -------
    float
        The largest of the measured relative errors.

    Raises
    ------
    AssertionError
        If a relative error exceeds ``rtol``, shapes do not match, or ``A x``
        is zero for the random input (nothing would be tested).
    """
    if normal is None:
        normal = op.T @ op
    expected_shape = (op.domain_shape, op.domain_shape)
    if (normal.domain_shape, normal.range_shape) != expected_shape:
        raise AssertionError(
            f"normal operator maps {normal.domain_shape} -> {normal.range_shape}, "
            f"expected {op.domain_shape} -> {op.domain_shape}"
        )
    dt = _resolve_dtype(op, dtype)
    tol = _resolve_rtol(rtol, dt)
    rng = np.random.default_rng(seed)
    x = _random(rng, op.domain_shape, dt, nonnegative=True)
    z = _random(rng, op.domain_shape, dt, nonnegative=True)
    ax = op(x)
    sq_norm = _inner(ax, ax)
    if sq_norm == 0.0:
        raise AssertionError(f"normal operator test for {_name(op)} is inconclusive: A x = 0")
    nx = normal(x)
    nz = normal(z)
    errs = {
        "<x, N x> vs ||A x||^2": abs(_inner(x, nx) - sq_norm) / sq_norm,
        "symmetry <N x, z> vs <x, N z>": abs(_inner(nx, z) - _inner(x, nz))
        / max(abs(_inner(nx, z)), np.finfo(np.float64).tiny),
        "N x vs A^T(A x)": _rel_diff(nx, op.adjoint(ax)),
    }
    for what, err in errs.items():
        _check(err, tol, f"normal operator: {what}", op)
    return max(errs.values())


def autograd_gradient_test(
    op: LinearOperator,
    *,
    seed: int = 0,
    batch: tuple[int, ...] = (),
    rtol: float | None = None,
) -> float:
    """Check that torch autograd through ``op`` gives the gradient ``A^T(A x - y)``.

    The loss ``1/2 ||A x - y||^2`` is computed in float64 on torch tensors
    that require gradients, so ``op`` is applied through the autograd bridge
    (:mod:`medrecon.torch`); its gradient with respect to ``x`` must equal
    ``A^T(A x - y)`` computed with numpy.

    Parameters
    ----------
    op : LinearOperator
        The operator ``A``.
    seed : int
        Seed of ``x`` and ``y``.
    batch : tuple of int
        Leading batch dimensions of ``x`` and ``y``.
    rtol : float, optional
        Largest accepted relative L2 error (default: float64 :data:`DEFAULT_RTOL`).

    Returns
    -------
    float
        The relative L2 error of the autograd gradient.

    Raises
    ------
    AssertionError
        If the output carries no gradient graph, the gradient is missing or
        has the wrong shape, or it differs by more than ``rtol``.
    """
    import torch

    rng = np.random.default_rng(seed)
    f64 = np.dtype(np.float64)
    x_np = _random(rng, tuple(batch) + op.domain_shape, f64, nonnegative=True)
    y_np = _random(rng, tuple(batch) + op.range_shape, f64, nonnegative=True)
    x = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(y_np, dtype=torch.float64)
    with torch.enable_grad():
        ax = op(x)
        if not isinstance(ax, torch.Tensor) or not ax.requires_grad:
            raise AssertionError(
                f"{_name(op)} applied to a tensor that requires grad returned "
                f"{type(ax).__name__} without a gradient graph (the autograd bridge was bypassed)"
            )
        loss = 0.5 * ((ax - y) ** 2).sum()
        loss.backward()
    if x.grad is None:
        raise AssertionError(f"autograd gave no gradient for {_name(op)}")
    grad = x.grad.detach().numpy()
    if grad.shape != x_np.shape:
        raise AssertionError(f"gradient has shape {grad.shape}, expected {x_np.shape}")
    expected = op.adjoint(op.forward(x_np) - y_np)
    err = _rel_diff(grad, expected)
    return _check(
        err, _resolve_rtol(rtol, f64), "autograd gradient of 1/2||Ax-y||^2 vs A^T(Ax-y)", op
    )


def gradcheck(
    op: LinearOperator,
    shape: tuple[int, ...] | None = None,
    *,
    seed: int = 0,
    adjoint: bool = True,
    double_backward: bool = False,
    fast_mode: bool = False,
) -> bool:
    """Run :func:`torch.autograd.gradcheck` on ``op`` (and its adjoint) in float64.

    Finite differences cost two evaluations per input entry (``fast_mode``
    uses random projections instead), so use an operator with a small
    domain.

    Parameters
    ----------
    op : LinearOperator
        The operator to check.
    shape : tuple of int, optional
        Shape of the input, ``(*batch, *op.domain_shape)``; default
        ``op.domain_shape``. The adjoint is checked on
        ``(*batch, *op.range_shape)``.
    seed : int
        Seed of the random inputs.
    adjoint : bool
        Also check ``op.T`` (default True).
    double_backward : bool
        Also run :func:`torch.autograd.gradgradcheck` (gradients of gradients).
    fast_mode : bool
        Passed to torch's checks.

    Returns
    -------
    bool
        True (every check passed).

    Raises
    ------
    AssertionError
        With torch's report, if a check fails.
    """
    import torch
    from torch.autograd.gradcheck import GradcheckError

    if shape is None:
        shape = op.domain_shape
    shape = tuple(int(s) for s in shape)
    k = len(op.domain_shape)
    if shape[len(shape) - k :] != op.domain_shape:
        raise AssertionError(f"shape {shape} does not end with the domain shape {op.domain_shape}")
    batch = shape[: len(shape) - k]
    rng = np.random.default_rng(seed)
    cases: list[tuple[str, LinearOperator, tuple[int, ...]]] = [("forward", op, shape)]
    if adjoint:
        cases.append(("adjoint", op.T, batch + op.range_shape))
    for name, operator, in_shape in cases:
        x = torch.tensor(rng.standard_normal(in_shape), dtype=torch.float64, requires_grad=True)
        checks: list[Callable[..., bool]] = [torch.autograd.gradcheck]
        if double_backward:
            checks.append(torch.autograd.gradgradcheck)
        for check in checks:
            try:
                check(operator, (x,), fast_mode=fast_mode)
            except GradcheckError as exc:
                raise AssertionError(
                    f"torch.autograd.{check.__name__} failed for the {name} of {_name(op)}: {exc}"
                ) from exc
    return True


def agreement_test(
    op_a: LinearOperator,
    op_b: LinearOperator,
    *,
    dtype: DTypeLike | None = None,
    seed: int = 0,
    rtol: float | None = None,
    check_adjoint: bool = True,
    nonnegative: bool = True,
) -> float:
    """Check that two operators (for example two backends) give the same results.

    Parameters
    ----------
    op_a, op_b : LinearOperator
        Operators with the same domain and range shapes; ``op_b`` is the
        reference (the denominator of the relative error), typically the CPU
        backend.
    dtype : {None, numpy.float32, numpy.float64}
        dtype of the inputs (default: ``op_a``'s fixed dtype, else float64).
    seed : int
        Seed of the random inputs.
    rtol : float, optional
        Largest accepted relative L2 difference (default :data:`DEFAULT_RTOL`;
        backends with different discretisations need a looser one).
    check_adjoint : bool
        Also compare the adjoints (default True).
    nonnegative : bool
        Draw inputs from [0, 1) (default) instead of a standard normal.

    Returns
    -------
    float
        The larger relative L2 difference ``||A x - B x|| / ||B x||`` of the
        forward and (if checked) adjoint outputs.

    Raises
    ------
    AssertionError
        If the shapes differ or a relative difference exceeds ``rtol``.
    """
    if (op_a.domain_shape, op_a.range_shape) != (op_b.domain_shape, op_b.range_shape):
        raise AssertionError(
            f"operators have different shapes: {op_a.domain_shape} -> {op_a.range_shape} "
            f"vs {op_b.domain_shape} -> {op_b.range_shape}"
        )
    dt = _resolve_dtype(op_a, dtype)
    tol = _resolve_rtol(rtol, dt)
    rng = np.random.default_rng(seed)
    x = _random(rng, op_a.domain_shape, dt, nonnegative)
    worst = _rel_diff(op_a.forward(x), op_b.forward(x))
    _check(worst, tol, f"forward agreement with {_name(op_b)}", op_a)
    if check_adjoint:
        y = _random(rng, op_a.range_shape, dt, nonnegative)
        err = _rel_diff(op_a.adjoint(y), op_b.adjoint(y))
        _check(err, tol, f"adjoint agreement with {_name(op_b)}", op_a)
        worst = max(worst, err)
    return worst
