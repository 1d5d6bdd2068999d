"""CGLS: conjugate gradients on the normal equations ``A^T A x = A^T y``."""

from __future__ import annotations

from typing import Any

import numpy as np

from medrecon.ct.iterative._common import (
    Callback,
    Monitor,
    check_n_iter,
    check_problem,
    check_tol,
    no_grad,
    norm,
    relative_change,
    vdot,
)
from medrecon.linop import LinearOperator

__all__ = ["cgls"]


def cgls(
    A: LinearOperator,
    y: Any,
    *,
    x0: Any = None,
    n_iter: int = 100,
    tol: float | None = None,
    callback: Callback | None = None,
    progress: bool = True,
    return_info: bool = False,
) -> Any:
    """Least-squares reconstruction ``min_x 0.5 ||A x - y||^2`` by CGLS.

    Conjugate gradients applied to the normal equations without forming
    ``A^T A`` (Hestenes–Stiefel), one forward and one adjoint application per
    iteration. In exact arithmetic the residual norm ``||A x_k - y||``
    decreases monotonically and the iterates converge to the least-squares
    solution nearest to ``x0`` (the minimum-norm one for ``x0 = 0``). CGLS is
    a Krylov method: there is no non-negativity option, because clipping
    would break the conjugacy (use :func:`~medrecon.ct.iterative.sirt` or
    :func:`~medrecon.ct.iterative.pdhg_tv` for constraints). Early stopping
    regularises noisy problems.

    Parameters
    ----------
    A : LinearOperator
        System operator (any :class:`~medrecon.linop.LinearOperator`).
    y : ndarray or Tensor of shape A.range_shape
        Measured data, float32 or float64; the result has the same kind,
        dtype and device.
    x0 : array of shape A.domain_shape, optional
        Starting point (default zeros).
    n_iter : int
        Maximum number of iterations (>= 0).
    tol : float, optional
        Stop when the relative change of the residual norm ``||A x - y||``
        between two iterations falls below ``tol``. The solver also stops
        (``stop_reason="exact"``) when ``A^T (y - A x)`` vanishes to rounding
        (its squared norm drops below ``eps**2`` times its initial value,
        ``eps`` the machine epsilon of the dtype).
    callback : callable, optional
        ``callback(k, x)`` after iteration ``k``; return True to stop.
    progress : bool
        Show a progress bar (default True).
    return_info : bool
        Also return a :class:`~medrecon.ct.iterative.SolverInfo`. ``residual``
        holds ``||A x_k - y||`` as updated by the recursion (it drifts from
        the directly computed value by rounding only); ``steps`` holds the
        step lengths ``alpha`` and the conjugation coefficients ``beta`` of
        every iteration.

    Returns
    -------
    x : array of shape A.domain_shape
    info : SolverInfo
        Only when ``return_info`` is True.

    Raises
    ------
    ShapeError
        ``y`` or ``x0`` does not match the operator.
    ValueError
        ``n_iter < 0`` or ``tol < 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.testing import MatrixOperator
    >>> A = MatrixOperator([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    >>> x = cgls(A, np.array([1.0, 2.0, 2.0]), n_iter=2, progress=False)
    >>> np.round(x, 6).tolist()
    [1.166667, 0.5]
    """
    n_iter = check_n_iter(n_iter)
    tol = check_tol(tol)
    y, x = check_problem(A, y, x0)
    mon = Monitor("cgls", n_iter, tol=tol, callback=callback, progress=progress)
    alphas: list[float] = []
    betas: list[float] = []
    mon.info.steps.update(alpha=alphas, beta=betas)
    with no_grad(y):
        r = y - A(x)  # data residual
        s = A.T(r)  # minus the gradient of 0.5 ||Ax - y||^2
        p = s
        gamma = vdot(s, s)
        # below this, A^T r is zero to rounding: further steps only amplify noise
        gamma_floor = gamma * float(np.finfo(str(y.dtype).removeprefix("torch.")).eps) ** 2
        res = norm(r)
        mon.record(residual=res)
        for k in range(1, n_iter + 1):
            if gamma <= gamma_floor:
                mon.stop_exact()
                break
            q = A(p)
            qq = vdot(q, q)
            if qq == 0.0:  # p lies in the null space of A: nothing left to fit
                mon.stop_exact()
                break
            alpha = gamma / qq
            x = x + alpha * p
            r = r - alpha * q
            s = A.T(r)
            gamma_new = vdot(s, s)
            beta = gamma_new / gamma
            p = s + beta * p
            gamma = gamma_new
            alphas.append(alpha)
            betas.append(beta)
            res_new = norm(r)
            measure = relative_change(res, res_new)
            res = res_new
            if mon.step(k, x, measure, residual=res):
                break
    return mon.finish(x, return_info)
