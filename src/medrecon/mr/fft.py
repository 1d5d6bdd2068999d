"""Centred, orthonormal FFTs and the root-sum-of-squares coil combination.

MR k-space in medrecon is stored with the DC sample at the array centre
(index ``n // 2`` on every transformed axis), the same layout as fastMRI,
SigPy and BART. A centred transform is
``fftshift(fft(ifftshift(x), norm="ortho"))`` over the transformed axes, so
an image whose object sits in the middle of the grid maps to k-space whose
low frequencies sit in the middle, and both transforms are unitary
(Parseval: ``||fft2c(x)|| == ||x||``).

Layouts (batch dimensions first, transformed axes last):

=====================  ==================================
multi-coil k-space     ``(coils, ky, kx)``
multi-slice k-space    ``(slices, coils, ky, kx)``
coil images            ``(coils, y, x)`` / ``(slices, coils, y, x)``
=====================  ==================================

Every function accepts a numpy array or a torch tensor and returns the same
kind (torch in, torch out through :mod:`torch.fft`, on the tensor's device,
differentiable by torch's own autograd).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medrecon._array import is_torch
from medrecon.errors import ShapeError

__all__ = ["fft2c", "fftnc", "ifft2c", "ifftnc", "rss"]


def _axes(x: Any, axes: int | Sequence[int] | None, default: int) -> tuple[int, ...]:
    ndim = int(x.ndim)
    if axes is None:
        if ndim < default:
            raise ShapeError(
                f"expected an array with at least {default} dimensions, got shape {tuple(x.shape)}"
            )
        return tuple(range(ndim - default, ndim))
    seq = (axes,) if isinstance(axes, int | np.integer) else tuple(axes)
    out = []
    for a in seq:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} is out of range for an array of shape {tuple(x.shape)}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"axes: repeated axis in {tuple(seq)}")
    return tuple(out)


def _centred(x: Any, axes: tuple[int, ...], inverse: bool) -> Any:
    if is_torch(x):
        import torch

        if not (x.is_complex() or x.is_floating_point()):
            x = x.to(torch.get_default_dtype())
        shifted = torch.fft.ifftshift(x, dim=axes)
        fn = torch.fft.ifftn if inverse else torch.fft.fftn
        return torch.fft.fftshift(fn(shifted, dim=axes, norm="ortho"), dim=axes)
    arr = np.asarray(x)
    # numpy.fft computes in complex128 and would promote complex64 inputs
    out_dtype = np.complex64 if arr.dtype in (np.float32, np.complex64) else np.complex128
    shifted = np.fft.ifftshift(arr, axes=axes)
    fn = np.fft.ifftn if inverse else np.fft.fftn
    out = np.fft.fftshift(fn(shifted, axes=axes, norm="ortho"), axes=axes)
    return out.astype(out_dtype, copy=False)


def fftnc(x: Any, axes: int | Sequence[int] | None = None) -> Any:
    """Centred orthonormal n-dimensional FFT.

    Parameters
    ----------
    x : ndarray or Tensor
        Image data, real or complex; e.g. ``(coils, z, y, x)`` for 3D.
    axes : int or sequence of int, optional
        Axes to transform (default: all axes).

    Returns
    -------
    ndarray or Tensor, complex, same shape
        complex64 for float32/complex64 input, else complex128 (numpy); torch
        keeps its own complex counterpart of the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> k = fftnc(np.ones((2, 4, 4)))
    >>> round(float(abs(k[1, 2, 2])), 6), round(float(np.linalg.norm(k)), 6)
    (5.656854, 5.656854)
    """
    return _centred(x, _axes(x, axes, int(x.ndim)), inverse=False)


def ifftnc(x: Any, axes: int | Sequence[int] | None = None) -> Any:
    """Centred orthonormal n-dimensional inverse FFT, the inverse (and adjoint) of :func:`fftnc`.

    Parameters and return value as in :func:`fftnc` (``x`` is k-space).
    """
    return _centred(x, _axes(x, axes, int(x.ndim)), inverse=True)


def fft2c(x: Any, axes: Sequence[int] | None = None) -> Any:
    """Centred orthonormal 2D FFT over the last two axes (or ``axes``).

    Parameters
    ----------
    x : ndarray or Tensor of shape (..., y, x)
        Image(s), e.g. coil images ``(coils, y, x)`` or ``(slices, coils, y, x)``.
    axes : pair of int, optional
        The two axes to transform (default ``(-2, -1)``).

    Returns
    -------
    ndarray or Tensor of shape (..., ky, kx)
        Complex k-space with DC at index ``(ny // 2, nx // 2)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((4, 4)); x[2, 2] = 1.0
    >>> np.allclose(fft2c(x), 0.25)
    True
    """
    ax = _axes(x, axes, 2)
    if len(ax) != 2:
        raise ShapeError(f"fft2c: expected two axes, got {len(ax)}")
    return _centred(x, ax, inverse=False)


def ifft2c(x: Any, axes: Sequence[int] | None = None) -> Any:
    """Centred orthonormal 2D inverse FFT, the inverse (and adjoint) of :func:`fft2c`.

    Parameters
    ----------
    x : ndarray or Tensor of shape (..., ky, kx)
        k-space, e.g. ``(coils, ky, kx)`` or ``(slices, coils, ky, kx)``.
    axes : pair of int, optional
        The two axes to transform (default ``(-2, -1)``).

    Returns
    -------
    ndarray or Tensor of shape (..., y, x)
        Complex image(s).
    """
    ax = _axes(x, axes, 2)
    if len(ax) != 2:
        raise ShapeError(f"ifft2c: expected two axes, got {len(ax)}")
    return _centred(x, ax, inverse=True)


def rss(coil_images: Any, axis: int = -3) -> Any:
    """Root sum of squares ``sqrt(sum_c |x_c|^2)`` over the coil axis.

    Parameters
    ----------
    coil_images : ndarray or Tensor of shape (..., coils, y, x)
        Coil images (real or complex); ``axis`` selects the coil axis.
    axis : int
        The coil axis (default -3, i.e. ``(..., coils, y, x)``).

    Returns
    -------
    ndarray or Tensor of shape (..., y, x)
        Real magnitude image (float32 for single-precision input).

    Examples
    --------
    >>> import numpy as np
    >>> rss(np.array([[[3.0]], [[4.0j]]])).tolist()
    [[5.0]]
    """
    x = coil_images
    ndim = int(x.ndim)
    if not -ndim <= axis < ndim:
        raise ShapeError(f"rss: axis {axis} is out of range for shape {tuple(x.shape)}")
    if is_torch(x):
        import torch

        return torch.sqrt(torch.sum(torch.abs(x) ** 2, dim=axis))
    arr = np.asarray(x)
    mag = np.abs(arr)
    return np.sqrt(np.sum(mag * mag, axis=axis))
