"""Use any medrecon :class:`~medrecon.linop.LinearOperator` as an ``odl.Operator``.

ODL (https://odlgroup.github.io/odl/) brings solvers, functionals and
diagnostics that work on ``odl.Operator`` objects. :func:`as_odl_operator`
wraps a medrecon operator without copying its work: evaluation calls
:meth:`~medrecon.linop.LinearOperator.forward`, the ODL adjoint calls
:meth:`~medrecon.linop.LinearOperator.adjoint`.

Inner products and the adjoint
------------------------------
ODL's adjoint is defined by the inner products of the domain and range
spaces: ``<A x, y>_Y = <x, A* y>_X``. medrecon's adjoint is the plain
transpose ``A^T``, the adjoint for unweighted sums ``<a, b> = sum(a * b)``.
So by default both spaces are unweighted tensor spaces
(``odl.tensor_space(shape, dtype)``), and ``A* = A^T``.

A space may also carry a constant weight ``w`` (``<a, b> = w * sum(a * b)``),
as ODL's discretised spaces do with their cell volume (see
:func:`volume_space`). Then the wrapped adjoint is ``A* = (w_Y / w_X) A^T``,
which satisfies ODL's definition. Spaces with non-constant weights or
without an inner product (exponent other than 2) are refused.

ODL is imported when a bridge is built; without it,
:class:`~medrecon.errors.BackendUnavailableError` says what to install.
Note that importing ODL 1.0 changes numpy's global print options
(``np.set_printoptions(legacy='1.13')``); medrecon itself never does.

>>> import numpy as np
>>> from medrecon.linop import Identity
>>> A = as_odl_operator(Identity((2, 3)))
>>> A.domain.shape, A.is_linear
((2, 3), True)
>>> A.adjoint.adjoint is A
True
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import DTypeLike

from medrecon.errors import BackendUnavailableError, DtypeError, ShapeError

if TYPE_CHECKING:
    from medrecon.linop import LinearOperator

__all__ = ["as_odl_operator", "volume_space"]

_INSTALL_HINT = "install it with: pip install odl (or pip install medrecon[odl])"


def _import_odl() -> Any:
    """Import ODL >= 1.0 or raise :class:`BackendUnavailableError`."""
    try:
        import odl
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the ODL bridge needs the package odl >= 1.0, which is not installed; {_INSTALL_HINT}"
        ) from exc
    version = str(getattr(odl, "__version__", "0"))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < 1:
        raise BackendUnavailableError(
            f"the ODL bridge needs odl >= 1.0, found odl {version}; "
            "upgrade it with: pip install 'odl>=1.0'"
        )
    return odl


def _float_dtype(dtype: DTypeLike, what: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise DtypeError(f"{what}: expected a float32 or float64 space, got dtype {dt}")
    return dt


def _space_weight(odl: Any, space: Any, shape: tuple[int, ...], what: str) -> float:
    """Check ``space`` against the operator and return its constant weight."""
    if not isinstance(space, odl.LinearSpace) or not hasattr(space, "shape"):
        raise TypeError(
            f"{what}: expected an ODL tensor or discretised space, got {type(space).__name__}"
        )
    if tuple(space.shape) != shape:
        raise ShapeError(f"{what}: expected a space of shape {shape}, got shape {space.shape}")
    _float_dtype(space.dtype, what)
    if float(getattr(space, "exponent", 2.0)) != 2.0:
        raise ValueError(
            f"{what}: the space has exponent {space.exponent} and so no inner product; "
            "expected exponent 2"
        )
    const = getattr(space.weighting, "const", None)
    if const is None:
        raise ValueError(
            f"{what}: expected an unweighted space or one with a constant weight, "
            f"got {space.weighting!r}"
        )
    return float(const)


@functools.cache
def _operator_class() -> type:
    """The ``odl.Operator`` subclass, built once ODL has been imported."""
    odl = _import_odl()

    class MedreconOperator(odl.Operator):  # type: ignore[name-defined]
        """``scale * op`` between two ODL spaces (see :func:`as_odl_operator`)."""

        def __init__(
            self,
            op: LinearOperator,
            domain: Any,
            range: Any,
            *,
            scale: float,
            adjoint_of: Any = None,
        ) -> None:
            w_domain = _space_weight(odl, domain, op.domain_shape, "domain")
            w_range = _space_weight(odl, range, op.range_shape, "range")
            super().__init__(domain, range, linear=True)
            self.op = op
            self.scale = float(scale)
            self._weight_ratio = w_range / w_domain
            self._adjoint_op = adjoint_of

        def _call(self, x: Any) -> Any:
            out = self.op.forward(x.asarray())
            if self.scale != 1.0:
                out = out * self.scale
            return out

        @property
        def adjoint(self) -> Any:
            """``(w_range / w_domain) * scale * op.T``, cached (``A.adjoint.adjoint is A``)."""
            if self._adjoint_op is None:
                self._adjoint_op = MedreconOperator(
                    self.op.T,
                    self.range,
                    self.domain,
                    scale=self.scale * self._weight_ratio,
                    adjoint_of=self,
                )
            return self._adjoint_op

        def norm(self, estimate: bool = False, **kwargs: Any) -> float:
            """Operator norm between the weighted spaces.

            Without ``estimate`` it is computed from the medrecon operator's
            own :meth:`~medrecon.linop.LinearOperator.norm` (power iteration,
            cached there); with ``estimate=True`` ODL's power method runs.
            """
            if estimate:
                return float(super().norm(estimate=True, **kwargs))
            return abs(self.scale) * math.sqrt(self._weight_ratio) * self.op.norm()

        def __repr__(self) -> str:
            factor = "" if self.scale == 1.0 else f"{self.scale!r} * "
            return f"as_odl_operator({factor}{self.op!r})"

    return MedreconOperator


def as_odl_operator(
    op: LinearOperator,
    *,
    domain: Any = None,
    range: Any = None,
    dtype: DTypeLike | None = None,
) -> Any:
    """Wrap a medrecon linear operator as a linear ``odl.Operator``.

    Parameters
    ----------
    op : LinearOperator
        Any medrecon operator, for example a
        :class:`~medrecon.projectors.Projector`. Batch dimensions are not
        used: ODL elements have exactly ``op.domain_shape`` / ``op.range_shape``.
    domain, range : odl space, optional
        Spaces of shape ``op.domain_shape`` and ``op.range_shape`` with float32
        or float64 dtype and a constant weight. Default: unweighted
        ``odl.tensor_space(shape, dtype)``, so that ODL's adjoint is exactly
        ``op.adjoint``. For a weighted space the adjoint is rescaled by the
        ratio of the weights (see the module notes); :func:`volume_space`
        builds a domain with the physical extent of a volume.
    dtype : {None, numpy.float32, numpy.float64}
        dtype of the default spaces: the operator's fixed ``dtype`` if it has
        one, else float64. Ignored for spaces that are given.

    Returns
    -------
    odl.Operator
        A linear operator with ``.adjoint`` (cached, so
        ``A.adjoint.adjoint is A``) and ``.norm()``. The medrecon operator is
        its ``.op`` attribute.

    Raises
    ------
    BackendUnavailableError
        If ODL >= 1.0 is not installed.
    ShapeError, DtypeError, TypeError, ValueError
        If a given space has the wrong shape, a non-float dtype, is not an
        ODL space, or has a non-constant weight or no inner product.

    Examples
    --------
    Solve a least-squares problem with ODL's conjugate gradient on the
    normal equations:

    >>> import numpy as np
    >>> import odl
    >>> from medrecon.linop import Identity
    >>> A = as_odl_operator(2.0 * Identity((3,)))
    >>> x = A.domain.zero()
    >>> odl.solvers.conjugate_gradient_normal(A, x, A.range.element([2.0, 4.0, 6.0]), niter=3)
    >>> np.round(x.asarray(), 6).tolist()
    [1.0, 2.0, 3.0]
    """
    odl = _import_odl()
    if dtype is None:
        dtype = getattr(op, "dtype", None)
        if dtype is None:
            dtype = np.float64
    dt = _float_dtype(dtype, "dtype")
    if domain is None:
        domain = odl.tensor_space(op.domain_shape, dtype=dt)
    if range is None:
        range = odl.tensor_space(op.range_shape, dtype=dt)
    cls = _operator_class()
    return cls(op, domain, range, scale=1.0)


def volume_space(volume: Any, *, dtype: DTypeLike = np.float64) -> Any:
    """An ``odl.uniform_discr`` space over a volume's physical extent.

    Parameters
    ----------
    volume : VolumeGeometry
        Anything with ``shape`` (voxels per axis) and ``extent`` (the
        ``(min_edge, max_edge)`` per axis, in mm) in array-axis order, such
        as :class:`~medrecon.geometry.VolumeGeometry` or ``projector.volume``.
    dtype : {numpy.float32, numpy.float64}
        dtype of the space.

    Returns
    -------
    odl.DiscretizedSpace
        Axes in the same order as the volume's array axes; its inner product
        is weighted by the voxel volume (mm^2 or mm^3). Used as ``domain`` of
        :func:`as_odl_operator`, the ODL adjoint becomes
        ``A^T / voxel_volume`` against an unweighted range.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> vol = SimpleNamespace(shape=(2, 4), extent=((-1.0, 1.0), (-4.0, 4.0)))
    >>> space = volume_space(vol)
    >>> space.shape, space.cell_volume
    ((2, 4), 2.0)
    """
    odl = _import_odl()
    dt = _float_dtype(dtype, "dtype")
    shape = tuple(int(n) for n in volume.shape)
    extent = tuple(volume.extent)
    if len(extent) != len(shape):
        raise ShapeError(
            f"volume: extent has {len(extent)} axes but shape {shape} has {len(shape)}"
        )
    min_pt = [float(lo) for lo, _ in extent]
    max_pt = [float(hi) for _, hi in extent]
    return odl.uniform_discr(min_pt, max_pt, shape, dtype=dt)
