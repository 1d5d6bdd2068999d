"""FISTA with a total-variation proximal step computed by FGP.

Outer iteration (Beck & Teboulle 2009, FISTA) for
``min_x 0.5 ||A x - y||^2 + lam * TV(x) + i_C(x)``::

    x_k     = prox_tv(z_k - t A^T (A z_k - y), t * lam)      t = 0.98 / ||A||^2
    t_(k+1) = (1 + sqrt(1 + 4 t_k^2)) / 2
    z_(k+1) = x_k + (t_k - 1) / t_(k+1) * (x_k - x_(k-1))

The proximal step is the constrained TV denoising problem
``min_(x in C) 0.5 ||x - b||^2 + mu TV(x)``, solved approximately by a fixed
number of FGP iterations (Beck & Teboulle 2009, "Fast gradient-based
algorithms for constrained total variation image denoising and deblurring"):
accelerated projected gradient ascent on its dual,

    max_(|q_j| <= mu)  h(q),   x(q) = clip(b - grad^T q, lo, hi),
    grad h(q) = grad x(q)      (Lipschitz constant ||grad||^2 <= sum 4 / h_i^2),

warm-started from the previous outer iteration's dual variable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from medrecon.ct.iterative._common import (
    Callback,
    Monitor,
    check_bounds,
    check_n_iter,
    check_nonnegative,
    check_problem,
    check_tol,
    clip,
    no_grad,
    norm,
    operator_norm,
    relative_change,
    total,
)
from medrecon.ct.iterative.gradient import (
    grad,
    grad_adjoint,
    gradient_norm_bound,
    pointwise_norm,
    project_ball,
)
from medrecon.linop import LinearOperator

__all__ = ["fista_tv", "prox_tv"]

#: t ||A||^2 (below 1 with a margin for the power-iteration estimate of ||A||)
_STEP_FACTOR = 0.98


def prox_tv(
    b: Any,
    mu: float,
    *,
    n_iter: int = 20,
    bounds: tuple[float | None, float | None] | None = None,
    voxel_size: float | Sequence[float] | None = None,
    q0: Any = None,
    return_dual: bool = False,
) -> Any:
    """Constrained isotropic TV denoising by FGP: ``argmin_(x in C) 0.5 ||x - b||^2 + mu TV(x)``.

    Parameters
    ----------
    b : ndarray or Tensor of shape (ny, nx) or (nz, ny, nx)
        Image to denoise; the result has its kind, dtype and device.
    mu : float
        TV weight (>= 0), units of ``b`` times mm (or voxels).
    n_iter : int
        Number of FGP iterations (>= 0).
    bounds : (lo, hi), optional
        Box constraint ``C``; None entries mean no bound.
    voxel_size : float or sequence of float, optional
        Finite-difference spacing in mm (default 1).
    q0 : array of shape (ndim, *b.shape), optional
        Starting dual variable (warm start), e.g. from a previous call.
    return_dual : bool
        Also return the final dual variable, to warm-start the next call.

    Returns
    -------
    x : array like ``b``
    q : array of shape (ndim, *b.shape)
        Only when ``return_dual`` is True.

    Examples
    --------
    >>> import numpy as np
    >>> b = np.array([[0.0, 1.0], [0.0, 1.0]])
    >>> np.round(prox_tv(b, 0.1, n_iter=100), 3).tolist()
    [[0.1, 0.9], [0.1, 0.9]]
    """
    n_iter = check_n_iter(n_iter)
    mu = check_nonnegative(mu, "mu")
    lo, hi = check_bounds(bounds, False)
    ndim = b.ndim
    step = 1.0 / gradient_norm_bound(ndim, voxel_size) ** 2
    q = grad(b, ndim, voxel_size) * 0.0 if q0 is None else project_ball(q0, mu, ndim)
    r = q  # extrapolated dual point
    t = 1.0
    for _ in range(n_iter):
        x_r = clip(b - grad_adjoint(r, ndim, voxel_size), lo, hi)
        q_new = project_ball(r + step * grad(x_r, ndim, voxel_size), mu, ndim)
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        r = q_new + ((t - 1.0) / t_new) * (q_new - q)
        q, t = q_new, t_new
    x = clip(b - grad_adjoint(q, ndim, voxel_size), lo, hi)
    return (x, q) if return_dual else x


def fista_tv(
    A: LinearOperator,
    y: Any,
    *,
    lam: float,
    x0: Any = None,
    n_iter: int = 100,
    n_inner: int = 10,
    tol: float | None = None,
    nonneg: bool = False,
    bounds: tuple[float | None, float | None] | None = None,
    voxel_size: float | Sequence[float] | None = None,
    callback: Callback | None = None,
    progress: bool = True,
    return_info: bool = False,
) -> Any:
    """TV-regularised reconstruction by FISTA with an inner FGP proximal step.

    Minimises ``0.5 ||A x - y||^2 + lam * TV(x)`` subject to
    ``lo <= x <= hi`` (isotropic TV); see the module docstring. The step is
    ``t = 0.98 / ||A||^2`` with ``||A||`` from :meth:`LinearOperator.norm`
    (power iteration, computed once and cached on the operator). One
    iteration costs one forward and one adjoint application of ``A`` plus
    ``n_inner`` gradient/divergence pairs. The proximal step is inexact
    (fixed ``n_inner``, warm-started), so the objective may not decrease
    monotonically; the accelerated scheme is not monotone either.

    Parameters
    ----------
    A : LinearOperator
        System operator; its domain is the image ``(ny, nx)`` or volume
        ``(nz, ny, nx)``.
    y : ndarray or Tensor of shape A.range_shape
        Measured data, float32 or float64; the result has the same kind,
        dtype and device.
    lam : float
        Regularisation weight λ >= 0 (as in :func:`pdhg_tv`).
    x0 : array of shape A.domain_shape, optional
        Starting point (default zeros); it is clipped to the bounds.
    n_iter : int
        Maximum number of outer iterations (>= 0).
    n_inner : int
        FGP iterations per proximal step (>= 0).
    tol : float, optional
        Stop when the relative change of the objective between two
        iterations falls below ``tol``.
    nonneg : bool
        Constrain ``x >= 0``.
    bounds : (lo, hi), optional
        Box constraint; None entries mean no bound.
    voxel_size : float or sequence of float, optional
        Spacing (mm) of the finite differences in TV; default 1 (per voxel).
    callback : callable, optional
        ``callback(k, x)`` after iteration ``k``; return True to stop.
    progress : bool
        Show a progress bar (default True).
    return_info : bool
        Also return a :class:`~medrecon.ct.iterative.SolverInfo` with
        ``residual`` and ``objective`` of ``x_0, x_1, ...`` and ``steps``
        (``step``, ``norm_A``, ``n_inner``).

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
        ``lam < 0``, ``n_iter < 0``, ``n_inner < 0``, ``tol < 0`` or
        ``lo > hi``.

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.testing import MatrixOperator
    >>> A = MatrixOperator(np.eye(4), domain_shape=(2, 2), range_shape=(2, 2))
    >>> y = np.array([[0.0, 1.0], [0.0, 1.0]])
    >>> x = fista_tv(A, y, lam=0.1, n_iter=100, progress=False)
    >>> np.round(x, 3).tolist()
    [[0.1, 0.9], [0.1, 0.9]]
    """
    n_iter = check_n_iter(n_iter)
    n_inner = check_n_iter(n_inner, "n_inner")
    tol = check_tol(tol)
    lam = check_nonnegative(lam, "lam")
    lo, hi = check_bounds(bounds, nonneg)
    y, x = check_problem(A, y, x0)
    ndim = len(A.domain_shape)
    mon = Monitor("fista_tv", n_iter, tol=tol, callback=callback, progress=progress)

    def objective(Ax: Any, x: Any) -> tuple[float, float]:
        res = norm(Ax - y)
        tv = total(pointwise_norm(grad(x, ndim, voxel_size), ndim))
        return res, 0.5 * res**2 + lam * tv

    with no_grad(y):
        norm_A = operator_norm(A, y)
        step = _STEP_FACTOR / norm_A**2 if norm_A > 0 else 1.0
        mon.info.steps.update(step=step, norm_A=norm_A, n_inner=n_inner)
        x = clip(x, lo, hi)
        Ax = A(x)
        res, obj = objective(Ax, x)
        mon.record(residual=res, objective=obj)
        z, Az = x, Ax
        q = None
        t = 1.0
        for k in range(1, n_iter + 1):
            b = z - step * A.T(Az - y)
            x_new, q = prox_tv(
                b,
                step * lam,
                n_iter=n_inner,
                bounds=(lo, hi),
                voxel_size=voxel_size,
                q0=q,
                return_dual=True,
            )
            Ax_new = A(x_new)
            t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_new
            z = x_new + beta * (x_new - x)
            Az = Ax_new + beta * (Ax_new - Ax)
            x, Ax, t = x_new, Ax_new, t_new
            res, obj_new = objective(Ax, x)
            measure = relative_change(obj, obj_new)
            obj = obj_new
            if mon.step(k, x, measure, objective=obj, residual=res):
                break
    return mon.finish(x, return_info)
