"""The linear-operator interface shared by projectors, solvers and bridges.

An operator maps arrays of shape ``(*batch, *domain_shape)`` to arrays of
shape ``(*batch, *range_shape)``. Subclasses implement :meth:`_forward` and
:meth:`_adjoint` on contiguous float32/float64 numpy arrays; the base class
checks shapes, dtypes and finiteness, converts torch tensors (zero copy on
the CPU) and routes tensors that require gradients through the autograd
bridge in :mod:`medrecon.torch`, whose backward is the adjoint.

Iteration logic (solvers) takes any :class:`LinearOperator` and never needs
to know which projector or backend stands behind it.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from medrecon._array import check_dtype, check_finite, is_torch, like, split_batch, to_numpy
from medrecon.errors import DtypeError, ShapeError

__all__ = ["Composition", "Identity", "LinearOperator", "Scaled", "Sum"]


class LinearOperator:
    """A linear map with an adjoint, applied to batched numpy arrays or torch tensors.

    Parameters
    ----------
    domain_shape : tuple of int
        Shape of one input (without batch dimensions).
    range_shape : tuple of int
        Shape of one output (without batch dimensions).
    check_finite : bool
        If True (default), inputs with NaN or infinity raise
        :class:`~medrecon.errors.NonFiniteError`.
    """

    def __init__(
        self,
        *,
        domain_shape: tuple[int, ...],
        range_shape: tuple[int, ...],
        check_finite: bool = True,
    ) -> None:
        self.domain_shape = tuple(int(s) for s in domain_shape)
        self.range_shape = tuple(int(s) for s in range_shape)
        self.check_finite = bool(check_finite)
        #: required input dtype, or None when float32 and float64 are both accepted
        self.dtype: np.dtype | None = None
        self._adjoint_op: LinearOperator | None = None
        self._norm_cache: dict[str, float] = {}

    # ------------------------------------------------------------------ hooks
    def _forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adjoint(self, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _is_device_input(self, x: Any) -> bool:
        """True when ``x`` is a device array that this operator computes on itself.

        Such inputs (a torch CUDA tensor, a CuPy array) skip the numpy conversion and go to
        :meth:`_device_apply`. The default is False: every input is converted to numpy.
        """
        return False

    def _device_apply(self, x: Any, *, adjoint: bool) -> Any:  # pragma: no cover - abstract
        """Apply the operator (or its adjoint) to a device array, returning the same kind."""
        raise NotImplementedError

    # ------------------------------------------------------------- public API
    def forward(self, x: Any) -> Any:
        """Apply the operator to ``x`` of shape ``(*batch, *domain_shape)``."""
        return self._dispatch(x, adjoint=False)

    def adjoint(self, y: Any) -> Any:
        """Apply the adjoint (exact transpose) to ``y`` of shape ``(*batch, *range_shape)``."""
        return self._dispatch(y, adjoint=True)

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    @property
    def T(self) -> LinearOperator:  # noqa: N802 - mathematical notation
        """The adjoint operator, cached so that ``A.T.T is A``."""
        if self._adjoint_op is None:
            self._adjoint_op = _Adjoint(self)
        return self._adjoint_op

    @property
    def H(self) -> LinearOperator:  # noqa: N802
        """Alias of :attr:`T` (all medrecon operators are real)."""
        return self.T

    def norm(self, *, n_iter: int = 50, rtol: float = 1e-6, seed: int = 0) -> float:
        """Operator 2-norm (largest singular value) by power iteration on ``A^T A``.

        Computed in float64 (in the operator's ``dtype`` if it requires one)
        from a seeded random start and cached on the operator per
        ``(n_iter, rtol, seed)``. Iteration stops when the
        estimate changes by less than ``rtol`` (relative) between two
        iterations, or after ``n_iter`` iterations. The estimate approaches
        the true norm from below; its error can exceed ``rtol`` when the two
        largest singular values are close, so pass a smaller ``rtol`` when
        more accuracy is needed (step sizes of iterative solvers need ~1e-3).
        """
        key = f"{n_iter}:{rtol}:{seed}"
        if key in self._norm_cache:
            return self._norm_cache[key]
        rng = np.random.default_rng(seed)
        # float64 unless the operator insists on another dtype
        work = self.dtype if self.dtype is not None else np.dtype(np.float64)
        x = rng.random(self.domain_shape).astype(work)
        x /= np.linalg.norm(x)
        s_old = 0.0
        s = 0.0
        for _ in range(int(n_iter)):
            z = self._adjoint(np.ascontiguousarray(self._forward(x)))
            nz = float(np.linalg.norm(z.astype(np.float64, copy=False)))
            if nz == 0.0:
                s = 0.0
                break
            s = float(np.sqrt(nz))
            x = (z / nz).astype(work, copy=False)
            if s_old > 0 and abs(s - s_old) <= rtol * s:
                break
            s_old = s
        self._norm_cache[key] = s
        return s

    # ------------------------------------------------------------ arithmetic
    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, LinearOperator):
            return Composition(self, other)
        return self.forward(other)

    def __add__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Sum(self, other)

    def __sub__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Sum(self, Scaled(other, -1.0))

    def __mul__(self, scalar: Any) -> LinearOperator:
        if isinstance(scalar, numbers.Real):
            return Scaled(self, float(scalar))
        return NotImplemented

    __rmul__ = __mul__

    def __neg__(self) -> LinearOperator:
        return Scaled(self, -1.0)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(domain_shape={self.domain_shape}, range_shape={self.range_shape})"

    # -------------------------------------------------------------- internals
    def _dispatch(self, x: Any, *, adjoint: bool) -> Any:
        if is_torch(x) and x.requires_grad:
            import torch

            if torch.is_grad_enabled():
                from medrecon.torch import apply_linear

                return apply_linear(self.T if adjoint else self, x)
        if self._is_device_input(x):
            return self._device_apply(x, adjoint=adjoint)
        core = self.range_shape if adjoint else self.domain_shape
        name = "adjoint input" if adjoint else "forward input"
        arr = to_numpy(x)
        batch = split_batch(arr.shape, core, name)
        check_dtype(arr, name)
        if self.check_finite:
            check_finite(arr, name)
        arr = np.ascontiguousarray(arr)
        out = self._adjoint(arr) if adjoint else self._forward(arr)
        out_core = self.domain_shape if adjoint else self.range_shape
        if out.shape != batch + out_core:  # pragma: no cover - internal consistency
            raise ShapeError(f"internal: {type(self).__name__} returned {out.shape}")
        return like(out, x)


class _Adjoint(LinearOperator):
    """The adjoint of an operator; its own adjoint is the original."""

    def __init__(self, op: LinearOperator) -> None:
        super().__init__(
            domain_shape=op.range_shape, range_shape=op.domain_shape, check_finite=op.check_finite
        )
        self.op = op
        self._adjoint_op = op

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return self.op._adjoint(x)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        return self.op._forward(y)

    def _is_device_input(self, x: Any) -> bool:
        return self.op._is_device_input(x)

    def _device_apply(self, x: Any, *, adjoint: bool) -> Any:
        return self.op._device_apply(x, adjoint=not adjoint)

    def __repr__(self) -> str:
        return f"{self.op!r}.T"


class Identity(LinearOperator):
    """The identity on arrays of a given shape."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__(domain_shape=shape, range_shape=shape)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return x.copy()

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        return y.copy()


class Composition(LinearOperator):
    """``A @ B``: apply ``B`` then ``A``; shapes are checked when built."""

    def __init__(self, a: LinearOperator, b: LinearOperator) -> None:
        if a.domain_shape != b.range_shape:
            raise ShapeError(
                f"cannot compose: left operator expects input {a.domain_shape}, "
                f"right operator produces {b.range_shape}"
            )
        super().__init__(
            domain_shape=b.domain_shape,
            range_shape=a.range_shape,
            check_finite=a.check_finite or b.check_finite,
        )
        self.a, self.b = a, b

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return self.a._forward(np.ascontiguousarray(self.b._forward(x)))

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        return self.b._adjoint(np.ascontiguousarray(self.a._adjoint(y)))


class Sum(LinearOperator):
    """``A + B`` for operators of equal domain and range shapes."""

    def __init__(self, a: LinearOperator, b: LinearOperator) -> None:
        if a.domain_shape != b.domain_shape or a.range_shape != b.range_shape:
            raise ShapeError(
                f"cannot add operators {a.domain_shape}->{a.range_shape} and "
                f"{b.domain_shape}->{b.range_shape}"
            )
        super().__init__(domain_shape=a.domain_shape, range_shape=a.range_shape)
        self.a, self.b = a, b

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return self.a._forward(x) + self.b._forward(x)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        return self.a._adjoint(y) + self.b._adjoint(y)


class Scaled(LinearOperator):
    """``c * A`` for a real scalar ``c``."""

    def __init__(self, op: LinearOperator, scale: float) -> None:
        if not np.isfinite(scale):
            raise DtypeError(f"scale must be a finite real number, got {scale!r}")
        super().__init__(
            domain_shape=op.domain_shape, range_shape=op.range_shape, check_finite=op.check_finite
        )
        self.op, self.scale = op, float(scale)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        out = self.op._forward(x)
        return out * out.dtype.type(self.scale)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        out = self.op._adjoint(y)
        return out * out.dtype.type(self.scale)
