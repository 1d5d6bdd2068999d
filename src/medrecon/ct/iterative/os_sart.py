"""OS-SART: ordered-subsets simultaneous algebraic reconstruction."""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from medrecon._array import is_torch
from medrecon.ct.iterative._common import (
    Callback,
    Monitor,
    check_n_iter,
    check_nonnegative,
    check_problem,
    check_tol,
    clip,
    no_grad,
    relative_change,
    vdot,
)
from medrecon.ct.iterative.sirt import sirt_weights
from medrecon.errors import ShapeError
from medrecon.linop import LinearOperator

__all__ = ["bit_reversal_order", "os_sart", "projector_subsets"]

Subsets = list[tuple[LinearOperator, np.ndarray]]

# projector -> {n_subsets: subsets}; entries vanish with the projector
_SUBSETS: weakref.WeakKeyDictionary[Any, dict[int, Subsets]] = weakref.WeakKeyDictionary()


def bit_reversal_order(n: int) -> np.ndarray:
    """The numbers ``0 .. n-1`` in bit-reversed order.

    Consecutive entries are far apart (``0, n/2, n/4, 3n/4, ...``), so
    interleaved view subsets visited in this order cover the angular range
    evenly early on. For ``n`` not a power of two, the bit-reversal
    permutation of the next power of two is used with the entries ``>= n``
    dropped.

    >>> bit_reversal_order(8).tolist()
    [0, 4, 2, 6, 1, 5, 3, 7]
    >>> bit_reversal_order(5).tolist()
    [0, 4, 2, 1, 3]
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n}")
    bits = max(1, math.ceil(math.log2(n)))
    rev = [int(format(i, f"0{bits}b")[::-1], 2) for i in range(2**bits)]
    return np.array([r for r in rev if r < n], dtype=np.int64)


def projector_subsets(A: Any, n_subsets: int) -> Subsets:
    """Split a projector into ``n_subsets`` interleaved view subsets.

    Subset ``j`` holds the views ``j, j + n_subsets, j + 2 n_subsets, ...``;
    the subsets are returned in bit-reversal order (:func:`bit_reversal_order`).
    Each subset operator is ``type(A)(A.geometry[idx], A.volume,
    backend=A.backend.name)``. The result is cached on ``A`` (weakly).

    Parameters
    ----------
    A : Projector
        Any operator with ``geometry`` (sliceable by view), ``volume`` and
        ``backend`` attributes, i.e. a :class:`~medrecon.projectors.Projector`.
    n_subsets : int
        Number of subsets, ``1 <= n_subsets <= n_views``.

    Returns
    -------
    list of (LinearOperator, ndarray of int)
        ``(operator, view indices)`` pairs, in the order OS-SART visits them.
    """
    n_views = int(A.geometry.n_views)
    if not 1 <= n_subsets <= n_views:
        raise ValueError(f"n_subsets: expected an integer in [1, {n_views}], got {n_subsets}")
    try:
        cached = _SUBSETS.setdefault(A, {})
    except TypeError:
        cached = {}
    if n_subsets not in cached:
        subsets: Subsets = []
        for j in bit_reversal_order(n_subsets):
            idx = np.arange(j, n_views, n_subsets)
            op = type(A)(A.geometry[idx], A.volume, backend=A.backend.name)
            subsets.append((op, idx))
        cached[n_subsets] = subsets
    return cached[n_subsets]


def _check_subsets(subsets: Sequence[Any], range_shape: tuple[int, ...] | None) -> Subsets:
    """Validate explicit ``(operator, view indices)`` pairs."""
    out: Subsets = []
    domain: tuple[int, ...] | None = None
    for i, pair in enumerate(subsets):
        try:
            op, idx = pair
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"A[{i}]: expected an (operator, view indices) pair, got {type(pair).__name__}"
            ) from exc
        idx = np.asarray(idx)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"A[{i}]: view indices must be a 1D integer array, got {idx!r}")
        if domain is None:
            domain = tuple(op.domain_shape)
        elif tuple(op.domain_shape) != domain:
            raise ShapeError(
                f"A[{i}]: every subset operator must have domain_shape {domain}, "
                f"got {tuple(op.domain_shape)}"
            )
        if range_shape is not None:
            n_views = range_shape[0]
            if idx.size and (idx.min() < 0 or idx.max() >= n_views):
                raise ValueError(
                    f"A[{i}]: view indices must lie in [0, {n_views}), got "
                    f"[{idx.min()}, {idx.max()}]"
                )
            expected = (idx.size, *range_shape[1:])
            if tuple(op.range_shape) != expected:
                raise ShapeError(
                    f"A[{i}]: operator range_shape {tuple(op.range_shape)} does not match the "
                    f"{idx.size} selected views of y, {expected}"
                )
        out.append((op, idx))
    if not out:
        raise ValueError("A: expected at least one (operator, view indices) pair, got none")
    return out


class _Stacked:
    """Minimal stand-in for the full operator when subsets were given explicitly."""

    def __init__(self, domain_shape: tuple[int, ...], range_shape: tuple[int, ...]) -> None:
        self.domain_shape = domain_shape
        self.range_shape = range_shape


def _take(y: Any, idx: np.ndarray) -> Any:
    if is_torch(y):
        import torch

        return y[torch.as_tensor(idx, device=y.device)]
    return y[idx]


def os_sart(
    A: Any,
    y: Any,
    *,
    n_subsets: int = 10,
    x0: Any = None,
    n_iter: int = 10,
    tol: float | None = None,
    nonneg: bool = False,
    relaxation: float = 1.0,
    callback: Callback | None = None,
    progress: bool = True,
    return_info: bool = False,
) -> Any:
    """Reconstruct with OS-SART (ordered-subsets SART).

    For each subset ``s`` of views in turn::

        x <- x + relaxation * C_s A_s^T R_s (y_s - A_s x)

    with the SART weights ``R_s = 1 / (A_s 1)``, ``C_s = 1 / (A_s^T 1)``
    (cached per subset operator, see
    :func:`~medrecon.ct.iterative.sirt.sirt_weights`), followed by clipping
    when ``nonneg``. One iteration is one pass over all subsets. With one
    subset this is SIRT. With noisy data and many subsets the iterates do
    not converge but cycle; lower ``relaxation`` or stop early.

    Parameters
    ----------
    A : Projector or sequence of (LinearOperator, ndarray of int)
        Either a projector (any operator with ``geometry``, ``volume`` and
        ``backend`` attributes): it is split into ``n_subsets`` interleaved
        subsets (:func:`projector_subsets`), visited in bit-reversal order.
        Or explicit ``(operator, view indices)`` pairs, visited in the order
        given: operator ``s`` maps the image to ``y[indices_s]``.
    y : ndarray or Tensor of shape (n_views, ...)
        Measured projections, float32 or float64, views first. With a
        projector, the shape is ``A.range_shape``. The result has the same
        kind, dtype and device.
    n_subsets : int
        Number of subsets when ``A`` is a projector (ignored otherwise).
    x0 : array, optional
        Starting point (default zeros).
    n_iter : int
        Maximum number of passes over all subsets (>= 0).
    tol : float, optional
        Stop when the relative change of the residual norm ``||A x - y||``
        (over the views the subsets cover) between two passes falls below
        ``tol``. Costs one extra forward projection per pass, as does
        ``return_info``.
    nonneg : bool
        Clip negative values after every subset update.
    relaxation : float
        Relaxation parameter λ in ``(0, 2)``.
    callback : callable, optional
        ``callback(k, x)`` after pass ``k``; return True to stop.
    progress : bool
        Show a progress bar (default True).
    return_info : bool
        Also return a :class:`~medrecon.ct.iterative.SolverInfo` with
        ``residual`` after every pass and ``steps`` (relaxation, number of
        subsets, subset order as lists of view indices).

    Returns
    -------
    x : array of shape A.domain_shape
    info : SolverInfo
        Only when ``return_info`` is True.

    Raises
    ------
    ShapeError
        ``y``, ``x0`` or a subset operator has the wrong shape.
    ValueError
        ``n_iter < 0``, ``tol < 0``, ``relaxation`` outside ``(0, 2)``,
        ``n_subsets`` outside ``[1, n_views]``, or bad view indices.
    TypeError
        ``A`` is neither a projector nor a sequence of pairs.

    Examples
    --------
    Two subsets given explicitly (rows 0, 2 and row 1 of a small matrix):

    >>> import numpy as np
    >>> from medrecon.testing import MatrixOperator
    >>> M = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    >>> subsets = [(MatrixOperator(M[[0, 2]]), np.array([0, 2])),
    ...            (MatrixOperator(M[[1]]), np.array([1]))]
    >>> x = os_sart(subsets, np.array([3.0, 2.0, 1.0]), n_iter=100, progress=False)
    >>> np.round(x, 4).tolist()
    [1.0, 2.0]
    """
    n_iter = check_n_iter(n_iter)
    tol = check_tol(tol)
    relaxation = check_nonnegative(relaxation, "relaxation", positive=True)
    if relaxation >= 2.0:
        raise ValueError(f"relaxation: expected a value in (0, 2), got {relaxation}")
    if isinstance(n_subsets, bool) or not isinstance(n_subsets, int | np.integer):
        raise TypeError(f"n_subsets: expected an integer, got {n_subsets!r}")
    if all(hasattr(A, name) for name in ("geometry", "volume", "backend", "range_shape")):
        full: Any = A
        subsets = projector_subsets(A, int(n_subsets))
    elif isinstance(A, Sequence) and not isinstance(A, str):
        shape = tuple(y.shape) if hasattr(y, "shape") else None
        subsets = _check_subsets(A, shape)
        full = _Stacked(tuple(subsets[0][0].domain_shape), shape or ())
    else:
        raise TypeError(
            "A: expected a Projector (with geometry, volume and backend) or a sequence of "
            f"(operator, view indices) pairs, got {type(A).__name__}"
        )
    y, x = check_problem(full, y, x0)
    mon = Monitor("os_sart", n_iter, tol=tol, callback=callback, progress=progress)
    mon.info.steps.update(
        relaxation=relaxation,
        n_subsets=len(subsets),
        order=[idx.tolist() for _, idx in subsets],
    )
    lo = 0.0 if nonneg else None
    track = return_info or tol is not None

    def residual() -> float:
        sq = 0.0
        for (op, _), ys in zip(subsets, ys_list, strict=True):
            r = ys - op(x)
            sq += vdot(r, r)
        return math.sqrt(sq)

    with no_grad(y):
        ys_list = [_take(y, idx) for _, idx in subsets]
        weights = [sirt_weights(op, ys) for (op, _), ys in zip(subsets, ys_list, strict=True)]
        res = residual() if track else math.nan
        if track:
            mon.record(residual=res)
        for k in range(1, n_iter + 1):
            for (op, _), ys, (R, C) in zip(subsets, ys_list, weights, strict=True):
                x = clip(x + (C * relaxation) * op.T(R * (ys - op(x))), lo, None)
            if track:
                res_new = residual()
                measure = relative_change(res, res_new)
                res = res_new
                stop = mon.step(k, x, measure, residual=res)
            else:
                stop = mon.step(k, x)
            if stop:
                break
    return mon.finish(x, return_info)
