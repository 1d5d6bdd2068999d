"""Finite-difference gradient, its exact adjoint, and isotropic total variation.

The gradient of an image of shape ``(n_1, ..., n_d)`` (2D ``(y, x)``, 3D
``(z, y, x)``) is an array of shape ``(d, n_1, ..., n_d)`` whose component
``i`` holds forward differences along array axis ``i``, divided by the voxel
size along that axis:

``(grad x)_i[..., j, ...] = (x[..., j + 1, ...] - x[..., j, ...]) / h_i`` for
``j < n_i - 1`` and 0 on the last index (Neumann boundary).

Its adjoint is minus the matching divergence, implemented as the exact
transpose, so :class:`Gradient` passes :func:`medrecon.testing.dot_test`.
The functions :func:`grad`, :func:`grad_adjoint`, :func:`pointwise_norm`,
:func:`project_ball` and :func:`total_variation` work on numpy arrays and
torch tensors alike (the solvers call them directly); leading batch
dimensions are allowed everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medrecon.ct.iterative._common import expand_dims, maximum, sqrt, sum_axis, total, zeros_like
from medrecon.errors import ShapeError
from medrecon.linop import LinearOperator

__all__ = [
    "Gradient",
    "grad",
    "grad_adjoint",
    "gradient_norm_bound",
    "pointwise_norm",
    "project_ball",
    "total_variation",
]


def _spacing(voxel_size: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if voxel_size is None:
        return (1.0,) * ndim
    if np.ndim(voxel_size) == 0:
        h = (float(voxel_size),) * ndim  # type: ignore[arg-type]
    else:
        h = tuple(float(v) for v in voxel_size)  # type: ignore[union-attr]
    if len(h) != ndim:
        raise ShapeError(f"voxel_size: expected {ndim} entries (one per axis), got {len(h)}")
    if not all(math.isfinite(v) and v > 0 for v in h):
        raise ValueError(f"voxel_size: expected finite sizes > 0 in mm, got {voxel_size!r}")
    return h


def _shifted(n_axes: int, axis: int) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Index tuples selecting ``[1:]`` and ``[:-1]`` along ``axis`` of an ``n_axes``-D array."""
    before = (slice(None),) * axis
    after = (slice(None),) * (n_axes - axis - 1)
    return (*before, slice(1, None), *after), (*before, slice(None, -1), *after)


def _zeros(shape: tuple[int, ...], like: Any) -> Any:
    if hasattr(like, "new_zeros"):  # torch tensor
        return like.new_zeros(shape)
    return np.zeros(shape, dtype=like.dtype)


def grad(x: Any, ndim: int, voxel_size: float | Sequence[float] | None = None) -> Any:
    """Forward-difference gradient over the last ``ndim`` axes.

    Parameters
    ----------
    x : ndarray or Tensor of shape (*batch, n_1, ..., n_ndim)
        Image or volume (e.g. attenuation in 1/mm).
    ndim : int
        Number of trailing axes to differentiate (2 or 3 for images, volumes).
    voxel_size : float or sequence of float, optional
        Spacing per axis in mm (array-axis order); default 1 (differences per
        voxel).

    Returns
    -------
    ndarray or Tensor of shape (*batch, ndim, n_1, ..., n_ndim)
        Same kind, dtype and device as ``x``; units of ``x`` per mm.

    Examples
    --------
    >>> import numpy as np
    >>> g = grad(np.array([[0.0, 1.0, 3.0]]), 2)
    >>> g.shape
    (2, 1, 3)
    >>> g[1].tolist()
    [[1.0, 2.0, 0.0]]
    """
    h = _spacing(voxel_size, ndim)
    nb = x.ndim - ndim
    out = _zeros((*x.shape[:nb], ndim, *x.shape[nb:]), x)
    for i in range(ndim):
        hi, lo = _shifted(x.ndim, nb + i)
        dst = (*lo[:nb], i, *lo[nb:])
        out[dst] = (x[hi] - x[lo]) * (1.0 / h[i])
    return out


def grad_adjoint(g: Any, ndim: int, voxel_size: float | Sequence[float] | None = None) -> Any:
    """Exact adjoint of :func:`grad` (minus the divergence).

    Parameters
    ----------
    g : ndarray or Tensor of shape (*batch, ndim, n_1, ..., n_ndim)
        A vector field (the gradient layout).
    ndim, voxel_size
        As in :func:`grad`.

    Returns
    -------
    ndarray or Tensor of shape (*batch, n_1, ..., n_ndim)

    Examples
    --------
    >>> import numpy as np
    >>> g = np.zeros((2, 1, 3))
    >>> g[1, 0, 0] = 1.0
    >>> grad_adjoint(g, 2).tolist()
    [[-1.0, 1.0, 0.0]]
    """
    h = _spacing(voxel_size, ndim)
    nb = g.ndim - ndim - 1
    if nb < 0 or g.shape[nb] != ndim:
        raise ShapeError(
            f"grad_adjoint: expected shape (..., {ndim}, *image_shape), got {tuple(g.shape)}"
        )
    out = _zeros(tuple(g.shape[:nb]) + tuple(g.shape[nb + 1 :]), g)
    for i in range(ndim):
        hi, lo = _shifted(out.ndim, nb + i)
        gi = g[(*lo[:nb], i, *lo[nb:])] * (1.0 / h[i])
        out[lo] -= gi
        out[hi] += gi
    return out


def gradient_norm_bound(ndim: int, voxel_size: float | Sequence[float] | None = None) -> float:
    """Upper bound ``sqrt(sum_i 4 / h_i**2)`` of the operator norm of :func:`grad`.

    Each one-axis difference has norm below ``2 / h_i``; the bound is tight
    for large images (``sqrt(8)`` for a 2D image with unit spacing).

    >>> round(gradient_norm_bound(2) ** 2, 12)
    8.0
    """
    h = _spacing(voxel_size, ndim)
    return math.sqrt(sum(4.0 / v**2 for v in h))


def pointwise_norm(g: Any, ndim: int) -> Any:
    """Euclidean length of the gradient vector at every voxel.

    ``g`` has shape ``(*batch, ndim, *image)``; the result ``(*batch, *image)``.
    """
    return sqrt(sum_axis(g * g, g.ndim - ndim - 1))


def project_ball(q: Any, radius: float, ndim: int) -> Any:
    """Project every voxel's vector of ``q`` onto the ball ``|q_j| <= radius``.

    ``q`` has shape ``(*batch, ndim, *image)``; this is the projection onto
    the dual ball of the isotropic TV norm, used by PDHG and FGP.
    """
    if radius <= 0:
        return zeros_like(q)
    scale = maximum(pointwise_norm(q, ndim) * (1.0 / radius), 1.0)
    return q / expand_dims(scale, q.ndim - ndim - 1)


def total_variation(
    x: Any, ndim: int | None = None, voxel_size: float | Sequence[float] | None = None
) -> float:
    """Isotropic total variation ``sum_j |grad x|_j`` of one image, in float64.

    Parameters
    ----------
    x : ndarray or Tensor of shape (n_1, ..., n_ndim)
    ndim : int, optional
        Number of axes (default ``x.ndim``).
    voxel_size : float or sequence of float, optional
        As in :func:`grad`.

    Returns
    -------
    float
        Units of ``x`` per mm (summed over voxels, not integrated).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((4, 4))
    >>> x[:, 2:] = 1.0
    >>> total_variation(x)
    4.0
    """
    nd = x.ndim if ndim is None else int(ndim)
    return total(pointwise_norm(grad(x, nd, voxel_size), nd))


class Gradient(LinearOperator):
    """Forward-difference gradient as a :class:`~medrecon.linop.LinearOperator`.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)`` or volume shape ``(nz, ny, nx)``.
    voxel_size : float or tuple of float, optional
        Voxel size per axis in mm; default 1 (differences per voxel).

    Notes
    -----
    Maps ``(*batch, *shape)`` to ``(*batch, ndim, *shape)``; the adjoint is
    the exact transpose (minus the divergence), see the module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.testing import dot_test
    >>> D = Gradient((3, 4), voxel_size=(1.0, 0.5))
    >>> D.range_shape
    (2, 3, 4)
    >>> dot_test(D) < 1e-12
    True
    >>> D(np.arange(12.0).reshape(3, 4))[1, 0].tolist()
    [2.0, 2.0, 2.0, 0.0]
    """

    def __init__(
        self, shape: tuple[int, ...], *, voxel_size: float | Sequence[float] | None = None
    ) -> None:
        shape = tuple(int(s) for s in shape)
        if not shape or any(s < 1 for s in shape):
            raise ShapeError(f"shape: expected a non-empty tuple of sizes >= 1, got {shape}")
        self.ndim = len(shape)
        self.voxel_size = _spacing(voxel_size, self.ndim)
        super().__init__(domain_shape=shape, range_shape=(self.ndim, *shape))

    def _forward(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = grad(x, self.ndim, self.voxel_size)
        return out

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        out: np.ndarray = grad_adjoint(y, self.ndim, self.voxel_size)
        return out

    def norm_bound(self) -> float:
        """Upper bound of the operator norm, see :func:`gradient_norm_bound`."""
        return gradient_norm_bound(self.ndim, self.voxel_size)
