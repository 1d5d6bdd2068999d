"""SIRT: the simultaneous iterative reconstruction technique."""

from __future__ import annotations

import weakref
from typing import Any

from medrecon._array import is_torch
from medrecon.ct.iterative._common import (
    Callback,
    Monitor,
    check_n_iter,
    check_nonnegative,
    check_problem,
    check_tol,
    clip,
    full_like,
    no_grad,
    norm,
    relative_change,
    safe_reciprocal,
    vdot,
)
from medrecon.linop import LinearOperator

__all__ = ["sirt", "sirt_weights"]

# operator -> {(kind, dtype, device): (R, C)}; entries vanish with the operator
_WEIGHTS: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, Any]]] = weakref.WeakKeyDictionary()


def _key(y: Any) -> str:
    if is_torch(y):
        return f"torch:{y.dtype}:{y.device}"
    return f"numpy:{y.dtype}"


def sirt_weights(A: LinearOperator, like: Any) -> tuple[Any, Any]:
    """Row and column weights ``R = 1 / (A 1)`` and ``C = 1 / (A^T 1)`` of SIRT/SART.

    Sums that vanish (rays missing the volume, voxels no ray sees) give
    weight 0 (see :func:`~medrecon.ct.iterative._common.safe_reciprocal`).
    The weights are computed once per operator and array kind/dtype/device
    and cached in a weak dictionary (they disappear with the operator).

    Parameters
    ----------
    A : LinearOperator
        The system operator (entries should be non-negative, as for
        projectors).
    like : ndarray or Tensor of shape A.range_shape
        Template for the kind, dtype and device of the weights.

    Returns
    -------
    R : array of shape A.range_shape
        Inverse row sums (for a projector: inverse ray lengths through the
        volume, 1/mm).
    C : array of shape A.domain_shape
        Inverse column sums.

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.testing import MatrixOperator
    >>> R, C = sirt_weights(MatrixOperator([[1.0, 1.0], [0.0, 2.0]]), np.zeros(2))
    >>> R.tolist(), C.tolist()
    ([0.5, 0.5], [1.0, 0.3333333333333333])
    """
    key = _key(like)
    try:
        per_op = _WEIGHTS.setdefault(A, {})
    except TypeError:  # not weak-referenceable or unhashable: no caching
        per_op = {}
    if key not in per_op:
        cols = A.T(full_like(like, 1.0))
        rows = A(full_like(cols, 1.0))
        per_op[key] = (safe_reciprocal(rows), safe_reciprocal(cols))
    return per_op[key]


def sirt(
    A: LinearOperator,
    y: Any,
    *,
    x0: Any = None,
    n_iter: int = 100,
    tol: float | None = None,
    nonneg: bool = False,
    relaxation: float = 1.0,
    callback: Callback | None = None,
    progress: bool = True,
    return_info: bool = False,
) -> Any:
    """Reconstruct with SIRT: ``x <- x + relaxation * C A^T R (y - A x)``.

    ``R = 1 / (A 1)`` and ``C = 1 / (A^T 1)`` are the inverse row and column
    sums (:func:`sirt_weights`, cached per operator), as in ASTRA's ``SIRT``.
    SIRT is preconditioned gradient descent on the weighted least-squares
    objective ``0.5 ||A x - y||_R^2``, which decreases monotonically for
    ``0 < relaxation < 2`` and operators with non-negative entries (with or
    without ``nonneg``).

    Parameters
    ----------
    A : LinearOperator
        System operator, ``A.domain_shape`` -> ``A.range_shape`` (any
        :class:`~medrecon.linop.LinearOperator`, e.g. a projector).
    y : ndarray or Tensor of shape A.range_shape
        Measured data (a sinogram: dimensionless line integrals), float32 or
        float64. The result has the same kind, dtype and device.
    x0 : array of shape A.domain_shape, optional
        Starting point (default zeros).
    n_iter : int
        Maximum number of iterations (>= 0).
    tol : float, optional
        Stop when the relative change of the residual norm ``||A x - y||``
        between two iterations falls below ``tol``.
    nonneg : bool
        Clip negative values after every update.
    relaxation : float
        Step length, in ``(0, 2)``; 1 is ASTRA's default.
    callback : callable, optional
        ``callback(k, x)`` after iteration ``k``; return True to stop.
    progress : bool
        Show a progress bar (default True).
    return_info : bool
        Also return a :class:`~medrecon.ct.iterative.SolverInfo`: ``residual``
        holds ``||A x_k - y||``, ``objective`` the weighted objective
        ``0.5 ||A x_k - y||_R^2``, ``steps`` the relaxation.

    Returns
    -------
    x : array of shape A.domain_shape
        The reconstruction (1/mm for a projector and line-integral data).
    info : SolverInfo
        Only when ``return_info`` is True.

    Raises
    ------
    ShapeError
        ``y`` or ``x0`` does not match the operator.
    ValueError
        ``n_iter < 0``, ``tol < 0`` or ``relaxation`` outside ``(0, 2)``.

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.testing import MatrixOperator
    >>> A = MatrixOperator([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    >>> x = sirt(A, np.array([3.0, 2.0, 1.0]), n_iter=200, progress=False)
    >>> np.round(x, 4).tolist()
    [1.0, 2.0]
    """
    n_iter = check_n_iter(n_iter)
    tol = check_tol(tol)
    relaxation = check_nonnegative(relaxation, "relaxation", positive=True)
    if relaxation >= 2.0:
        raise ValueError(f"relaxation: expected a value in (0, 2), got {relaxation}")
    y, x = check_problem(A, y, x0)
    mon = Monitor("sirt", n_iter, tol=tol, callback=callback, progress=progress)
    mon.info.steps["relaxation"] = relaxation
    lo = 0.0 if nonneg else None
    with no_grad(y):
        R, C = sirt_weights(A, y)
        CR = C * relaxation
        r = y - A(x)
        res = norm(r)
        mon.record(residual=res, objective=0.5 * vdot(r, R * r))
        for k in range(1, n_iter + 1):
            x = clip(x + CR * A.T(R * r), lo, None)
            r = y - A(x)
            res_new = norm(r)
            measure = relative_change(res, res_new)
            res = res_new
            if mon.step(k, x, measure, residual=res, objective=0.5 * vdot(r, R * r)):
                break
    return mon.finish(x, return_info)
