"""Pieces shared by the iterative solvers: array helpers, validation, bookkeeping.

The solvers run the same code on numpy arrays and torch tensors (on the CPU
now, on CUDA once a backend returns device tensors). Everything that differs
between the two lives here, behind small functions that take either kind and
give back the same kind, dtype and device:

* arithmetic helpers: :func:`zeros_like`, :func:`full_like`, :func:`as_like`,
  :func:`sqrt`, :func:`maximum`, :func:`clip`, :func:`sum_axis`,
  :func:`expand_dims`;
* reductions that accumulate in float64 and return Python floats:
  :func:`vdot`, :func:`norm`, :func:`total`;
* :func:`safe_reciprocal`, used for the SIRT/SART row and column weights.

Bookkeeping shared by every solver: input validation (:func:`check_problem`,
:func:`check_n_iter`, ...), the result record :class:`SolverInfo`, and
:class:`Monitor`, which records the history, drives the tqdm progress bar,
calls the user's callback and applies the stopping rule.

None of this knows about projectors: the solvers take any
:class:`~medrecon.linop.LinearOperator`.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medrecon._array import check_dtype, is_torch
from medrecon._monitor import Monitor as _Monitor
from medrecon.errors import DtypeError, ShapeError
from medrecon.linop import LinearOperator

__all__ = [
    "Callback",
    "Monitor",
    "SolverInfo",
    "as_like",
    "check_bounds",
    "check_n_iter",
    "check_nonnegative",
    "check_problem",
    "clip",
    "expand_dims",
    "full_like",
    "maximum",
    "no_grad",
    "norm",
    "operator_norm",
    "relative_change",
    "safe_reciprocal",
    "sqrt",
    "sum_axis",
    "total",
    "vdot",
    "zeros_like",
]

#: ``callback(k, x)``: called after iteration ``k`` (1, 2, ...) with the current
#: iterate; returning True stops the solver.
Callback = Callable[[int, Any], Any]


# ------------------------------------------------------------ array helpers
def zeros_like(x: Any) -> Any:
    """Zeros of the shape, dtype, kind and device of ``x``."""
    if is_torch(x):
        import torch

        return torch.zeros_like(x)
    return np.zeros_like(x)


def full_like(x: Any, value: float) -> Any:
    """An array of the shape, dtype, kind and device of ``x`` filled with ``value``."""
    if is_torch(x):
        import torch

        return torch.full_like(x, value)
    return np.full_like(x, value)


def as_like(a: Any, template: Any) -> Any:
    """``a`` (numpy array, torch tensor or array-like) as the kind, dtype, device of ``template``.

    No copy is made when ``a`` already matches.
    """
    if is_torch(template):
        import torch

        if is_torch(a):
            return a.to(dtype=template.dtype, device=template.device)
        return torch.as_tensor(np.asarray(a), dtype=template.dtype, device=template.device)
    if is_torch(a):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=template.dtype)


def sqrt(x: Any) -> Any:
    """Element-wise square root."""
    if is_torch(x):
        import torch

        return torch.sqrt(x)
    return np.sqrt(x)


def maximum(x: Any, value: float) -> Any:
    """Element-wise ``max(x, value)`` for a scalar ``value``; keeps the dtype of ``x``."""
    if is_torch(x):
        return x.clamp(min=value)
    return np.maximum(x, x.dtype.type(value))


def clip(x: Any, lo: float | None, hi: float | None) -> Any:
    """Clip ``x`` to ``[lo, hi]``; a bound that is None (or infinite) is not applied."""
    lo = None if lo is None or math.isinf(lo) else lo
    hi = None if hi is None or math.isinf(hi) else hi
    if lo is None and hi is None:
        return x
    if is_torch(x):
        return x.clamp(min=lo, max=hi)
    dt = x.dtype.type
    return np.clip(x, None if lo is None else dt(lo), None if hi is None else dt(hi))


def sum_axis(x: Any, axis: int) -> Any:
    """Sum over one axis (same dtype as ``x``)."""
    if is_torch(x):
        return x.sum(dim=axis)
    return x.sum(axis=axis)


def expand_dims(x: Any, axis: int) -> Any:
    """Insert an axis of length one at position ``axis``."""
    if is_torch(x):
        return x.unsqueeze(axis)
    return np.expand_dims(x, axis)


def vdot(a: Any, b: Any) -> float:
    """Inner product ``<a, b>`` of two real arrays, accumulated in float64."""
    if is_torch(a):
        import torch

        return float(torch.dot(a.reshape(-1).double(), b.reshape(-1).double()).item())
    return float(np.dot(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)))


def norm(a: Any) -> float:
    """Euclidean norm of all entries, accumulated in float64."""
    return math.sqrt(max(vdot(a, a), 0.0))


def total(a: Any) -> float:
    """Sum of all entries, accumulated in float64."""
    if is_torch(a):
        import torch

        return float(torch.sum(a, dtype=torch.float64).item())
    return float(np.sum(a, dtype=np.float64))


def safe_reciprocal(s: Any, *, rel_eps: float = 1e-6) -> Any:
    """``1 / s`` where ``|s| > rel_eps * max|s|``, and 0 elsewhere.

    Used for the SIRT/SART weights ``1 / (A 1)`` and ``1 / (A^T 1)``: rays
    that miss the volume and voxels that no ray sees get weight 0 instead of
    infinity.
    """
    if is_torch(s):
        import torch

        big = float(s.abs().max().item()) if s.numel() else 0.0
        keep = s.abs() > rel_eps * big
        return torch.where(keep, 1.0 / torch.where(keep, s, torch.ones_like(s)), 0.0).to(s.dtype)
    big = float(np.max(np.abs(s))) if s.size else 0.0
    keep = np.abs(s) > rel_eps * big
    out = np.zeros_like(s)
    np.divide(1.0, s, out=out, where=keep)
    return out


@contextlib.contextmanager
def no_grad(x: Any) -> Iterator[None]:
    """``torch.no_grad()`` when ``x`` is a tensor, nothing otherwise.

    The solvers do not build autograd graphs: hundreds of unrolled iterations
    would keep every intermediate alive. Unroll a solver yourself (calling the
    operator, which is differentiable) when gradients are wanted.
    """
    if is_torch(x):
        import torch

        with torch.no_grad():
            yield
    else:
        yield


# ------------------------------------------------------------- validation
def check_n_iter(n_iter: Any, name: str = "n_iter") -> int:
    """An iteration count: an integer >= 0 (ValueError otherwise)."""
    if isinstance(n_iter, bool) or not isinstance(n_iter, int | np.integer):
        raise TypeError(f"{name}: expected an integer >= 0, got {n_iter!r}")
    if n_iter < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {n_iter}")
    return int(n_iter)


def check_nonnegative(value: Any, name: str, *, positive: bool = False) -> float:
    """A finite real number >= 0 (> 0 when ``positive``); ValueError otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a real number, got {value!r}") from exc
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        what = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}: expected a finite number {what}, got {value!r}")
    return v


def check_tol(tol: Any) -> float | None:
    """``tol``: None or a finite number >= 0."""
    return None if tol is None else check_nonnegative(tol, "tol")


def check_bounds(
    bounds: tuple[float | None, float | None] | None, nonneg: bool
) -> tuple[float, float]:
    """Resolve ``bounds=(lo, hi)`` and ``nonneg`` to a pair of floats (±inf = no bound).

    ``nonneg=True`` raises the lower bound to 0. Raises ValueError when
    ``lo > hi`` or a bound is NaN.
    """
    if bounds is None:
        bounds = (None, None)
    try:
        lo_in, hi_in = bounds
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bounds: expected (lo, hi), got {bounds!r}") from exc
    lo = -math.inf if lo_in is None else float(lo_in)
    hi = math.inf if hi_in is None else float(hi_in)
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"bounds: expected numbers or None, got {bounds!r}")
    if nonneg:
        lo = max(lo, 0.0)
    if lo > hi:
        extra = " (nonneg=True raised lo to 0)" if nonneg and lo == 0.0 else ""
        raise ValueError(f"bounds: expected lo <= hi, got lo={lo}, hi={hi}{extra}")
    return lo, hi


def check_problem(A: LinearOperator, y: Any, x0: Any) -> tuple[Any, Any]:
    """Validate ``y`` against ``A`` and build the starting point.

    Returns ``(y, x)``: ``y`` unchanged (numpy array or tensor, float32 or
    float64, shape ``A.range_shape``) and ``x`` = a copy of ``x0`` converted
    to the kind, dtype and device of ``y``, or zeros of shape
    ``A.domain_shape``.

    Raises
    ------
    ShapeError
        If ``y`` or ``x0`` has the wrong shape (batches are not supported:
        solve one problem per call).
    DtypeError
        If ``y`` is not float32 or float64.
    """
    if not (is_torch(y) or isinstance(y, np.ndarray)):
        raise TypeError(f"y: expected a numpy array or a torch tensor, got {type(y).__name__}")
    if is_torch(y):
        import torch

        if y.dtype not in (torch.float32, torch.float64):
            raise DtypeError(f"y: expected dtype float32 or float64, got {y.dtype}")
    else:
        check_dtype(y, "y")
    range_shape = tuple(A.range_shape)
    domain_shape = tuple(A.domain_shape)
    if tuple(y.shape) != range_shape:
        raise ShapeError(
            f"y: expected shape {range_shape} (the operator's range_shape; solvers take one "
            f"problem at a time), got {tuple(y.shape)}"
        )
    x: Any
    if x0 is None:
        if is_torch(y):
            import torch

            x = torch.zeros(domain_shape, dtype=y.dtype, device=y.device)
        else:
            x = np.zeros(domain_shape, dtype=y.dtype)
    else:
        if tuple(x0.shape) != domain_shape:
            raise ShapeError(
                f"x0: expected shape {domain_shape} (the operator's domain_shape), "
                f"got {tuple(x0.shape)}"
            )
        x = as_like(x0, y)
        x = x.clone() if is_torch(x) else x.copy()
    return y, x


# ---------------------------------------------------------- operator norm
_NORM_CACHE: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def operator_norm(A: LinearOperator, like: Any) -> float:
    """Largest singular value of ``A``, computed once and cached.

    Uses :meth:`LinearOperator.norm` (power iteration in float64, cached on
    the operator). Operators restricted to one dtype (``Projector(...,
    dtype=np.float32)``) refuse float64 inputs; for them the power iteration
    runs here in that dtype through ``A`` and ``A.T`` on arrays like
    ``like``, and the result is cached in a weak dictionary keyed on ``A``.
    """
    try:
        return float(A.norm())
    except (DtypeError, AttributeError):
        pass
    try:
        return _NORM_CACHE[A]
    except (KeyError, TypeError):
        pass
    rng = np.random.default_rng(0)
    x = as_like(rng.random(tuple(A.domain_shape)), like)
    x = x / norm(x)
    s_old = s = 0.0
    for _ in range(50):
        z = A.T(A(x))
        nz = norm(z)
        if nz == 0.0:
            s = 0.0
            break
        s = math.sqrt(nz)
        x = z / nz
        if s_old > 0 and abs(s - s_old) <= 1e-6 * s:
            break
        s_old = s
    with contextlib.suppress(TypeError):
        _NORM_CACHE[A] = s
    return s


# ------------------------------------------------------------ bookkeeping
def relative_change(previous: float, current: float) -> float:
    """``|previous - current| / |previous|`` (0 when both are 0, inf when only ``previous`` is)."""
    if previous == current:
        return 0.0
    if previous == 0.0:
        return math.inf
    return abs(previous - current) / abs(previous)


@dataclass
class SolverInfo:
    """What a solver did, returned as the second item when ``return_info=True``.

    ``residual`` and ``objective`` are indexed by iteration: entry ``k``
    belongs to the iterate after ``k`` iterations, entry 0 to the starting
    point. ``gap``, ``dual_objective`` and ``infeasibility`` need the dual
    variables and start with the first iteration (entry ``k - 1`` belongs to
    iteration ``k``).

    Attributes
    ----------
    algorithm : str
        ``"sirt"``, ``"cgls"``, ``"os_sart"``, ``"pdhg_tv"`` or ``"fista_tv"``.
    n_iter : int
        Number of iterations performed.
    converged : bool
        True when the solver stopped because the ``tol`` criterion was met
        (or, for CGLS, because the normal-equation residual vanished).
    stop_reason : str
        ``"n_iter"`` (ran all iterations), ``"tol"``, ``"callback"`` or
        ``"exact"`` (CGLS: the gradient of the least-squares objective is
        zero).
    residual : list of float
        Data residual norms ``||A x_k - y||`` (units of ``y``).
    objective : list of float
        The objective the algorithm minimises (see each solver; empty for CGLS
        and OS-SART, whose objective is ``0.5 * residual**2``).
    gap, dual_objective, infeasibility : list of float
        PDHG only: primal-dual gap, dual objective, and the dual
        infeasibility that the gap leaves out for unbounded constraints.
    steps : dict
        Step sizes and other constants used (per solver).
    """

    algorithm: str
    n_iter: int = 0
    converged: bool = False
    stop_reason: str = "n_iter"
    residual: list[float] = field(default_factory=list)
    objective: list[float] = field(default_factory=list)
    gap: list[float] = field(default_factory=list)
    dual_objective: list[float] = field(default_factory=list)
    infeasibility: list[float] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)


class Monitor(_Monitor):
    """History, progress bar, callback and stopping rule of one CT solver run.

    :class:`medrecon._monitor.Monitor` with a :class:`SolverInfo` record named
    ``algorithm`` (also shown by the bar); ``n_iter``, ``tol``, ``callback`` and
    ``progress`` as there.
    """

    def __init__(
        self,
        algorithm: str,
        n_iter: int,
        *,
        tol: float | None,
        callback: Callback | None,
        progress: bool,
    ) -> None:
        super().__init__(
            SolverInfo(algorithm=algorithm), n_iter, tol=tol, callback=callback, progress=progress
        )
