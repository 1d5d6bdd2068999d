"""Cartesian SENSE: the multi-coil MR encoding operator and its CG reconstruction.

The encoding operator maps an image ``x`` of shape ``(..., ny, nx)`` to
masked multi-coil k-space of shape ``(..., coils, ky, kx)``::

    A x     = M * fft2c(S * x)                        (per coil c: M F S_c x)
    A^H y   = sum_c conj(S_c) * ifft2c(M * y)

with coil sensitivity maps ``S`` of shape ``(coils, ny, nx)`` and a real mask
``M`` (``fft2c`` is the centred unitary FFT of :mod:`medrecon.mr.fft`).
:func:`sense_recon` solves ``(A^H A + lam I) x = A^H y`` by conjugate
gradients (Pruessmann et al. 2001, CG-SENSE).

Complex data and the operator interface
---------------------------------------
:class:`SenseOperator` is a :class:`medrecon.mr._linop.ComplexOperator`: the
shared operator interface with complex input handling, a conjugate-transpose
adjoint (``A.T`` is ``A.H``) and a complex power-iteration :meth:`norm`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from medrecon._array import check_finite as _check_finite
from medrecon._array import like, to_numpy
from medrecon.errors import DtypeError, ShapeError
from medrecon.mr._linop import _COMPLEX, ComplexOperator, check_solver_args, conjugate_gradient
from medrecon.mr.fft import fft2c, ifft2c

__all__ = ["SenseOperator", "sense_recon"]


class SenseOperator(ComplexOperator):
    """Cartesian multi-coil encoding ``A x = M * fft2c(S * x)``.

    Parameters
    ----------
    maps : array_like of shape (coils, ny, nx)
        Coil sensitivity maps, complex64 or complex128 (real float32/float64
        maps are taken as complex64/complex128). The operator's ``dtype`` is
        the complex dtype of the maps.
    mask : array_like, optional
        Real sampling mask (boolean, 0/1 or non-negative weights) that
        broadcasts to ``(coils, ky, kx)``, e.g. ``(ky, kx)`` or the
        ``(1, kx)`` lines of :func:`medrecon.mr.masks.random_mask`; default:
        fully sampled.
    check_finite : bool
        Refuse inputs with NaN or infinity (default True).

    Notes
    -----
    Maps ``(..., ny, nx)`` to ``(..., coils, ky, kx)``; leading dimensions
    (slices, batch) are carried through. Inputs must have the operator's
    complex dtype; real float32/float64 inputs are accepted and taken as
    complex with zero imaginary part (the output is always complex). Other
    dtypes raise :class:`~medrecon.errors.DtypeError`. numpy in gives numpy
    out, a CPU torch tensor gives a tensor; tensors that require gradients
    raise :class:`~medrecon.errors.NotDifferentiableError` (the autograd
    bridge is real-only). The adjoint ``A.T`` (= ``A.H``) is the conjugate
    transpose; with maps normalised so that ``sum_c |S_c|^2 = 1`` and full
    sampling, ``A^H A`` is the identity.

    Examples
    --------
    >>> import numpy as np
    >>> A = SenseOperator(np.ones((1, 4, 4), np.complex128))
    >>> y = A(np.ones((4, 4)))
    >>> y.shape, y.dtype
    ((1, 4, 4), dtype('complex128'))
    >>> np.allclose(A.T(y), 1.0)
    True
    """

    def __init__(
        self, maps: npt.ArrayLike, mask: npt.ArrayLike | None = None, *, check_finite: bool = True
    ) -> None:
        s = to_numpy(maps)
        if s.ndim != 3 or any(n < 1 for n in s.shape):
            raise ShapeError(f"maps: expected shape (coils, ny, nx), got {tuple(s.shape)}")
        dt = np.dtype(s.dtype)
        if dt not in _COMPLEX:
            raise DtypeError(f"maps: expected a complex or real float dtype, got {dt}")
        cdt = _COMPLEX[dt]
        _check_finite(s, "maps")
        coils, ny, nx = (int(n) for n in s.shape)
        super().__init__(
            domain_shape=(ny, nx), range_shape=(coils, ny, nx), check_finite=check_finite
        )
        self.dtype = cdt
        self.maps = np.ascontiguousarray(s, dtype=cdt)
        self.maps.setflags(write=False)
        self._maps_conj = np.conj(self.maps)
        self.mask: np.ndarray | None = None
        if mask is not None:
            m = to_numpy(mask)
            if m.dtype.kind not in "biuf":
                raise DtypeError(f"mask: expected a real (boolean or float) array, got {m.dtype}")
            try:
                fits = np.broadcast_shapes(m.shape, self.range_shape) == self.range_shape
            except ValueError:
                fits = False
            if not fits:
                raise ShapeError(
                    f"mask: expected a shape that broadcasts to (coils, ky, kx) = "
                    f"{self.range_shape}, got {tuple(m.shape)}"
                )
            _check_finite(m, "mask")
            real = np.float32 if cdt == np.complex64 else np.float64
            self.mask = np.ascontiguousarray(m, dtype=real)
            self.mask.setflags(write=False)

    @property
    def n_coils(self) -> int:
        """Number of coils."""
        return self.range_shape[0]

    def _forward(self, x: np.ndarray) -> np.ndarray:
        k = fft2c(self.maps * x[..., None, :, :])
        if self.mask is not None:
            k = k * self.mask
        return np.asarray(k, dtype=self.dtype)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        if self.mask is not None:
            y = y * self.mask
        img = ifft2c(y)
        return np.asarray(np.sum(self._maps_conj * img, axis=-3), dtype=self.dtype)

    def __repr__(self) -> str:
        sampled = "full" if self.mask is None else f"mask {self.mask.shape}"
        return (
            f"SenseOperator(coils={self.n_coils}, image_shape={self.domain_shape}, "
            f"{sampled}, dtype={self.dtype})"
        )


def sense_recon(
    kspace: Any,
    maps: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    *,
    lam: float = 0.0,
    n_iter: int = 30,
    tol: float = 1e-6,
    progress: bool = False,
) -> Any:
    """CG-SENSE: solve ``(A^H A + lam I) x = A^H y`` by conjugate gradients.

    Parameters
    ----------
    kspace : ndarray or Tensor of shape (..., coils, ky, kx)
        Measured k-space (centred, as :func:`~medrecon.mr.fft.fft2c` gives);
        unsampled entries are ignored through ``mask``. Complex, or real
        float (taken as complex), with the precision of ``maps``.
    maps : array_like of shape (coils, ny, nx)
        Coil sensitivity maps.
    mask : array_like, optional
        Sampling mask broadcasting to ``(coils, ky, kx)`` (see
        :class:`SenseOperator`); default fully sampled.
    lam : float
        Tikhonov weight (>= 0), in the units of ``A^H A`` (its eigenvalues
        lie in ``[0, 1]`` for maps with ``sum_c |S_c|^2 <= 1`` and a 0/1 mask).
    n_iter : int
        Maximum number of CG iterations (>= 0).
    tol : float
        Stop when ``||A^H y - (A^H A + lam I) x|| <= tol * ||A^H y||`` (>= 0).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    ndarray or Tensor of shape (..., ny, nx)
        Complex image, of the maps' complex dtype; same kind as ``kspace``.
        Leading batch dimensions are solved together as one block-diagonal
        system (one set of CG coefficients for the whole batch).

    Raises
    ------
    ShapeError
        ``kspace``, ``maps`` or ``mask`` shapes do not fit together.
    DtypeError
        Unsupported dtypes (see :class:`SenseOperator`).
    ValueError
        ``lam``, ``n_iter`` or ``tol`` out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.mr.fft import fft2c
    >>> maps = np.full((2, 8, 8), np.sqrt(0.5), np.complex128)
    >>> x = np.arange(64.0).reshape(8, 8) + 0j
    >>> y = fft2c(maps * x)
    >>> np.allclose(sense_recon(y, maps), x)
    True
    """
    lam, n_iter, tol = check_solver_args(lam, n_iter, tol)
    op = SenseOperator(maps, mask)
    b = np.asarray(op.adjoint(to_numpy(kspace)))
    x = conjugate_gradient(
        lambda v: op._adjoint(op._forward(v)) + lam * v, b, int(n_iter), tol, progress, "sense"
    )
    return like(x, kspace)
