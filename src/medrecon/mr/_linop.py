"""Complex-valued linear operators for MR and a conjugate-gradient solver.

:class:`~medrecon.linop.LinearOperator` validates inputs as real float32/float64
(the CT layers are real). MR operators act on complex data, so
:class:`ComplexOperator` replaces the input handling (``_dispatch``), the
adjoint (conjugate transpose, also reachable as ``.H``) and :meth:`norm` with
complex-aware versions; the rest of the interface is shared. Subclasses set
``self.dtype`` to complex64/complex128 and implement ``_forward``/``_adjoint``
on contiguous numpy arrays of that dtype with any leading batch dimensions.
Compositions, sums and scalings built with ``@``, ``+`` and ``*`` still go
through the real-only base class and refuse complex inputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medrecon._array import check_finite as _check_finite
from medrecon._array import is_torch, like, split_batch, to_numpy
from medrecon.errors import DtypeError, NotDifferentiableError, ShapeError
from medrecon.linop import LinearOperator, _Adjoint

__all__ = ["ComplexOperator", "check_solver_args", "conjugate_gradient"]

_COMPLEX: dict[np.dtype, np.dtype] = {
    np.dtype(np.float32): np.dtype(np.complex64),
    np.dtype(np.float64): np.dtype(np.complex128),
    np.dtype(np.complex64): np.dtype(np.complex64),
    np.dtype(np.complex128): np.dtype(np.complex128),
}


class ComplexOperator(LinearOperator):
    """Input handling for operators on complex data (replaces the real-only base checks)."""

    @property
    def _cdtype(self) -> np.dtype:
        """The complex dtype of the operator (complex128 if none was set)."""
        return self.dtype if self.dtype is not None else np.dtype(np.complex128)

    def _dispatch(self, x: Any, *, adjoint: bool) -> Any:
        name = "adjoint input" if adjoint else "forward input"
        if is_torch(x) and x.requires_grad:
            import torch

            if torch.is_grad_enabled():
                raise NotDifferentiableError(
                    f"{type(self).__name__}: the autograd bridge of medrecon.torch supports real "
                    "operators only; compose medrecon.mr.fft2c/ifft2c on tensors instead, or "
                    "pass a tensor that does not require grad"
                )
        core = self.range_shape if adjoint else self.domain_shape
        arr = to_numpy(x)
        batch = split_batch(arr.shape, core, name)
        dt = np.dtype(arr.dtype)
        if dt not in _COMPLEX or (dt.kind == "c" and dt != self._cdtype):
            raise DtypeError(
                f"{name}: expected dtype {self._cdtype} (or real float32/float64, taken as "
                f"complex with zero imaginary part), got {dt}"
            )
        if self.check_finite:
            _check_finite(arr, name)
        arr = np.ascontiguousarray(arr, dtype=self._cdtype)
        out = self._adjoint(arr) if adjoint else self._forward(arr)
        out_core = self.domain_shape if adjoint else self.range_shape
        if out.shape != batch + out_core:  # pragma: no cover - internal consistency
            raise ShapeError(f"internal: {type(self).__name__} returned {out.shape}")
        return like(out, x)

    @property
    def T(self) -> LinearOperator:  # noqa: N802
        """The adjoint (conjugate transpose), cached so that ``A.T.T is A``."""
        if self._adjoint_op is None:
            self._adjoint_op = _ComplexAdjoint(self)
        return self._adjoint_op

    @property
    def H(self) -> LinearOperator:  # noqa: N802
        """The conjugate transpose; the same object as :attr:`T`."""
        return self.T

    def norm(self, *, n_iter: int = 50, rtol: float = 1e-6, seed: int = 0) -> float:
        """Operator 2-norm by power iteration on ``A^H A`` from a seeded complex start.

        Same contract and caching as :meth:`medrecon.linop.LinearOperator.norm`.
        """
        key = f"{n_iter}:{rtol}:{seed}"
        if key in self._norm_cache:
            return self._norm_cache[key]
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.domain_shape) + 1j * rng.standard_normal(self.domain_shape)
        x = (x / np.linalg.norm(x)).astype(self._cdtype)
        s_old = s = 0.0
        for _ in range(int(n_iter)):
            z = self._adjoint(np.ascontiguousarray(self._forward(x)))
            nz = float(np.linalg.norm(z))
            if nz == 0.0:
                s = 0.0
                break
            s = math.sqrt(nz)
            x = (z / nz).astype(self._cdtype, copy=False)
            if s_old > 0 and abs(s - s_old) <= rtol * s:
                break
            s_old = s
        self._norm_cache[key] = s
        return s


class _ComplexAdjoint(ComplexOperator, _Adjoint):
    """The adjoint of a complex operator, with complex input handling."""

    def __init__(self, op: ComplexOperator) -> None:
        _Adjoint.__init__(self, op)
        self.dtype = op.dtype


def conjugate_gradient(
    normal: Any, b: np.ndarray, n_iter: int, tol: float, progress: bool, desc: str = "cg"
) -> np.ndarray:
    """Conjugate gradients for a Hermitian positive semi-definite ``normal`` from ``x = 0``."""
    from tqdm import tqdm

    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rs = float(np.vdot(r, r).real)
    stop = (tol * math.sqrt(rs)) ** 2
    with tqdm(total=n_iter, desc=desc, disable=not progress, leave=False) as bar:
        for _ in range(n_iter):
            if rs <= stop or rs == 0.0:
                break
            q = normal(p)
            pq = float(np.vdot(p, q).real)
            if pq <= 0.0:  # p in the null space of the normal operator
                break
            alpha = rs / pq
            x += alpha * p
            r -= alpha * q
            rs_new = float(np.vdot(r, r).real)
            p = r + (rs_new / rs) * p
            rs = rs_new
            bar.update(1)
    return x


def check_solver_args(lam: Any, n_iter: Any, tol: Any) -> tuple[float, int, float]:
    """Validate the common solver arguments: ``lam >= 0``, integer ``n_iter >= 0``, ``tol >= 0``.

    Returns ``(lam, n_iter, tol)`` as ``(float, int, float)``; raises ``ValueError`` naming the
    argument otherwise.
    """
    if isinstance(n_iter, bool) or not isinstance(n_iter, int | np.integer) or n_iter < 0:
        raise ValueError(f"n_iter: expected an integer >= 0, got {n_iter!r}")
    try:
        lam_f, tol_f = float(lam), float(tol)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"lam, tol: expected real numbers, got {lam!r}, {tol!r}") from exc
    if not (math.isfinite(lam_f) and lam_f >= 0):
        raise ValueError(f"lam: expected a finite number >= 0, got {lam!r}")
    if not (math.isfinite(tol_f) and tol_f >= 0):
        raise ValueError(f"tol: expected a finite number >= 0, got {tol!r}")
    return lam_f, int(n_iter), tol_f
