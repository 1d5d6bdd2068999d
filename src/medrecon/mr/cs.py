"""Compressed-sensing MR reconstruction: l1-wavelet and total-variation regularised SENSE.

Both reconstructions solve, for the image ``x`` of shape ``(ny, nx)`` (per slice),

    min_x  0.5 ||A x - y||^2 + lam R(x)

with ``A`` the multi-coil encoding operator (:class:`~medrecon.mr.sense.SenseOperator` built
from ``maps`` and ``mask``, or any :class:`~medrecon.mr._linop.ComplexOperator` passed as
``op=``, e.g. a non-Cartesian one) and

* :func:`cs_wavelet`: ``R(x) = ||W x||_1``, ``W`` an orthogonal 2D discrete wavelet
  transform (:class:`WaveletOperator`, periodic boundary so that ``W`` is unitary), the l1
  norm taken on the complex magnitude of each coefficient. Solved by FISTA (Beck & Teboulle
  2009) with step ``1 / ||A||^2`` or by ADMM (Boyd et al. 2011) with conjugate-gradient
  x-updates;
* :func:`cs_tv`: isotropic total variation ``R(x) = sum_j sqrt(|(D_y x)_j|^2 + |(D_x x)_j|^2)``
  with forward differences (:class:`GradientOperator`, zero difference at the last row and
  column), solved by the primal-dual hybrid gradient method (Chambolle & Pock 2011).

Units: ``lam`` is absolute, in the units of ``A^H y`` (it scales with the k-space amplitude).
With maps normalised to ``sum_c |S_c|^2 = 1`` (``||A|| <= 1``) a useful range is about
``1e-3`` to ``1e-2`` times ``max |A^H y|``.

Batches: k-space of shape ``(..., coils, ky, kx)`` gives images ``(..., ny, nx)``. The slices
are solved as one block-separable problem: FISTA and PDHG use step sizes and momentum
coefficients that do not depend on the data, so every slice follows exactly the iterates it
would follow alone, except that the stopping rule (relative change of the whole stack) and
the objective in the info record are taken over the whole stack. ADMM's inner CG shares its
coefficients across the stack (as :func:`~medrecon.mr.sense.sense_recon` does), so its
iterates differ slightly from per-slice solves. numpy in gives numpy out; torch in gives
torch out (computed in numpy on the CPU, not differentiable).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from medrecon._array import is_torch, like, split_batch, to_numpy
from medrecon._monitor import Monitor
from medrecon.errors import ShapeError
from medrecon.mr._linop import ComplexOperator, check_solver_args, conjugate_gradient
from medrecon.mr.sense import SenseOperator

__all__ = [
    "CSInfo",
    "GradientOperator",
    "WaveletOperator",
    "cs_tv",
    "cs_wavelet",
]

#: ``callback(k, x)``: called after iteration ``k`` (1, 2, ...) with the current image (same
#: kind as the k-space); a truthy return stops the solver.
Callback = Callable[[int, Any], Any]

#: default upper limit of the number of wavelet levels
_DEFAULT_MAX_LEVEL = 4

_COMPLEX_DTYPES = (np.dtype(np.complex64), np.dtype(np.complex128))


def _cdtype(dtype: npt.DTypeLike) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in _COMPLEX_DTYPES:
        raise TypeError(f"dtype: expected complex64 or complex128, got {dt}")
    return dt


def _shape2(shape: Any) -> tuple[int, int]:
    try:
        dims = tuple(int(n) for n in shape)
    except TypeError:
        dims = (int(shape), int(shape))
    if len(dims) != 2 or any(n < 1 for n in dims):
        raise ShapeError(f"shape: expected an image shape (ny, nx), got {shape!r}")
    return dims[0], dims[1]


# --------------------------------------------------------------------------- operators
class WaveletOperator(ComplexOperator):
    """Orthogonal 2D discrete wavelet transform of complex images (unitary).

    ``W x = wavedec2(Re x) + i wavedec2(Im x)`` (PyWavelets, ``mode="periodization"``) with
    the coefficients of every level packed into one array of the image's shape by
    :func:`pywt.coeffs_to_array` (approximation in the top-left corner). For an orthogonal
    wavelet and image sides divisible by ``2**level`` the transform is unitary:
    ``W^H W = W W^H = I`` and ``||W x|| = ||x||`` (Parseval).

    Parameters
    ----------
    shape : int or (ny, nx)
        Image shape.
    wavelet : str
        Name of an orthogonal PyWavelets wavelet (``"haar"``, ``"db1"``-``"db38"``,
        ``"sym2"``-``"sym20"``, ``"coif1"``-``"coif17"``); default ``"db4"``.
    level : int, optional
        Number of decomposition levels. Default: the largest level up to 4 that divides both
        sides and does not exceed :func:`pywt.dwt_max_level` for the shorter side.
    dtype : complex64 or complex128

    Raises
    ------
    ValueError
        Unknown or non-orthogonal wavelet, or ``level`` < 0 or not dividing the shape.

    Examples
    --------
    >>> import numpy as np
    >>> W = WaveletOperator((16, 16), "haar", level=2, dtype=np.complex128)
    >>> x = np.arange(256.0).reshape(16, 16) * (1 + 1j)
    >>> c = W(x)
    >>> c.shape, round(float(np.linalg.norm(c) / np.linalg.norm(x)), 6)
    ((16, 16), 1.0)
    >>> bool(np.allclose(W.T(c), x))
    True
    """

    def __init__(
        self,
        shape: int | tuple[int, int],
        wavelet: str = "db4",
        level: int | None = None,
        *,
        dtype: npt.DTypeLike = np.complex64,
    ) -> None:
        import pywt

        ny, nx = _shape2(shape)
        try:
            wav = pywt.Wavelet(wavelet)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"wavelet: unknown wavelet {wavelet!r}") from exc
        if not wav.orthogonal:
            raise ValueError(
                f"wavelet: {wavelet!r} is not orthogonal; W would not be unitary (use e.g. "
                "'haar', 'db4', 'sym4')"
            )
        max_level = pywt.dwt_max_level(min(ny, nx), wav.dec_len)
        if level is None:
            level = 0
            while (
                level < min(max_level, _DEFAULT_MAX_LEVEL)
                and ny % 2 ** (level + 1) == 0
                and nx % 2 ** (level + 1) == 0
            ):
                level += 1
        if isinstance(level, bool) or not isinstance(level, int | np.integer) or level < 0:
            raise ValueError(f"level: expected an integer >= 0, got {level!r}")
        level = int(level)
        if ny % 2**level or nx % 2**level:
            raise ValueError(
                f"level: {level} levels need both sides divisible by {2**level}, got shape "
                f"{(ny, nx)} (W would not be unitary)"
            )
        super().__init__(domain_shape=(ny, nx), range_shape=(ny, nx), check_finite=True)
        self.dtype = _cdtype(dtype)
        self.wavelet = wav.name
        self.level = level
        self._pywt = pywt
        self._wav = wav
        self._slices: Any = None
        #: True for detail coefficients, False for the approximation (coarsest) band
        self.detail_mask = np.ones((ny, nx), dtype=bool)
        if level > 0:
            probe = pywt.wavedec2(np.zeros((ny, nx)), wav, mode="periodization", level=level)
            _, self._slices = pywt.coeffs_to_array(probe)
            self.detail_mask[self._slices[0]] = False
        self.detail_mask.setflags(write=False)

    def _real_forward(self, x: np.ndarray) -> np.ndarray:
        pywt = self._pywt
        flat = x.reshape(-1, *self.domain_shape)
        out = np.empty_like(flat)
        for b, img in enumerate(flat):
            coeffs = pywt.wavedec2(img, self._wav, mode="periodization", level=self.level)
            out[b] = pywt.coeffs_to_array(coeffs)[0]
        return out.reshape(x.shape)

    def _real_adjoint(self, c: np.ndarray) -> np.ndarray:
        pywt = self._pywt
        flat = c.reshape(-1, *self.domain_shape)
        out = np.empty_like(flat)
        for b, arr in enumerate(flat):
            coeffs = pywt.array_to_coeffs(arr, self._slices, output_format="wavedec2")
            out[b] = pywt.waverec2(coeffs, self._wav, mode="periodization")
        return out.reshape(c.shape)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if self.level == 0:
            return x.copy()
        out = np.empty_like(x)
        out.real = self._real_forward(np.ascontiguousarray(x.real))
        out.imag = self._real_forward(np.ascontiguousarray(x.imag))
        return out

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        if self.level == 0:
            return y.copy()
        out = np.empty_like(y)
        out.real = self._real_adjoint(np.ascontiguousarray(y.real))
        out.imag = self._real_adjoint(np.ascontiguousarray(y.imag))
        return out

    def norm(self, *, n_iter: int = 50, rtol: float = 1e-6, seed: int = 0) -> float:
        """1.0: the transform is unitary."""
        return 1.0

    def __repr__(self) -> str:
        return (
            f"WaveletOperator(shape={self.domain_shape}, wavelet={self.wavelet!r}, "
            f"level={self.level}, dtype={self.dtype})"
        )


def _grad(x: np.ndarray) -> np.ndarray:
    g = np.zeros((*x.shape[:-2], 2, *x.shape[-2:]), dtype=x.dtype)
    g[..., 0, :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    g[..., 1, :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return g


def _grad_adjoint(g: np.ndarray) -> np.ndarray:
    gy, gx = g[..., 0, :, :], g[..., 1, :, :]
    out = np.zeros(g.shape[:-3] + g.shape[-2:], dtype=g.dtype)
    out[..., :-1, :] -= gy[..., :-1, :]
    out[..., 1:, :] += gy[..., :-1, :]
    out[..., :, :-1] -= gx[..., :, :-1]
    out[..., :, 1:] += gx[..., :, :-1]
    return out


class GradientOperator(ComplexOperator):
    """Forward finite differences of complex images: ``(ny, nx) -> (2, ny, nx)``.

    ``D x = (x[i+1, j] - x[i, j], x[i, j+1] - x[i, j])`` (y then x differences), 0 in the
    last row (y) and column (x); the adjoint ``D^H`` is the exact conjugate transpose
    (minus a divergence). ``||D||^2 < 8``.

    Parameters
    ----------
    shape : int or (ny, nx)
    dtype : complex64 or complex128

    Examples
    --------
    >>> import numpy as np
    >>> D = GradientOperator((2, 3), dtype=np.complex128)
    >>> g = D(np.array([[0.0, 1.0, 3.0], [1.0, 1.0, 1.0]]))
    >>> g.real.tolist()
    [[[1.0, 0.0, -2.0], [0.0, 0.0, 0.0]], [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]]]
    """

    def __init__(self, shape: int | tuple[int, int], *, dtype: npt.DTypeLike = np.complex64):
        ny, nx = _shape2(shape)
        super().__init__(domain_shape=(ny, nx), range_shape=(2, ny, nx), check_finite=True)
        self.dtype = _cdtype(dtype)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return _grad(x)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        return _grad_adjoint(y)


# ------------------------------------------------------------------------ bookkeeping
@dataclass
class CSInfo:
    """What a compressed-sensing solver did (second item when ``return_info=True``).

    Attributes
    ----------
    algorithm : str
        ``"fista"``, ``"admm"`` (:func:`cs_wavelet`) or ``"pdhg"`` (:func:`cs_tv`).
    n_iter : int
        Number of iterations performed.
    converged : bool
        True when the relative change ``||x_k - x_(k-1)|| / ||x_k||`` fell below ``tol``.
    stop_reason : str
        ``"tol"``, ``"n_iter"`` or ``"callback"``.
    objective : list of float
        ``0.5 ||A x_k - y||^2 + lam R(x_k)`` summed over the stack; entry 0 belongs to the
        starting point ``x_0 = 0``, entry ``k`` to iteration ``k``.
    change : list of float
        Relative change of the iterate per iteration (entry ``k - 1`` for iteration ``k``).
    steps : dict
        Constants used (``norm_A``, step sizes, ``rho``, wavelet and level, ...).
    """

    algorithm: str
    n_iter: int = 0
    converged: bool = False
    stop_reason: str = "n_iter"
    objective: list[float] = field(default_factory=list)
    change: list[float] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)


class _Monitor(Monitor):
    """:class:`medrecon._monitor.Monitor` with a :class:`CSInfo` record; the callback
    and the result see the iterate in the caller's array type."""

    def __init__(
        self,
        algorithm: str,
        n_iter: int,
        tol: float,
        callback: Callback | None,
        progress: bool,
        template: Any,
    ) -> None:
        super().__init__(
            CSInfo(algorithm=algorithm),
            n_iter,
            tol=tol,
            callback=callback,
            progress=progress,
            view=lambda x: like(x, template),
        )


def _relative_change(new: np.ndarray, old: np.ndarray) -> float:
    num = float(np.linalg.norm(new - old))
    den = float(np.linalg.norm(new))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def _problem(
    kspace: Any, maps: npt.ArrayLike | None, mask: npt.ArrayLike | None, op: Any
) -> tuple[ComplexOperator, np.ndarray, np.ndarray]:
    """The operator, the (masked) data as contiguous numpy and ``A^H y``."""
    if op is None:
        if maps is None:
            raise ValueError("maps: expected coil maps (coils, ny, nx), or an operator as op=")
        op = SenseOperator(maps, mask)
    else:
        if maps is not None or mask is not None:
            raise ValueError("op: pass either maps (and mask) or op=, not both")
        if not isinstance(op, ComplexOperator):
            raise TypeError(f"op: expected a medrecon.mr ComplexOperator, got {type(op).__name__}")
    if len(op.domain_shape) != 2:
        raise ShapeError(
            f"op: expected an operator on 2D images (ny, nx), got domain {op.domain_shape}"
        )
    if not (is_torch(kspace) or isinstance(kspace, np.ndarray)):
        kspace = np.asarray(kspace)
    aty = np.asarray(op.adjoint(kspace))  # validates shape, dtype and finiteness
    y = np.ascontiguousarray(to_numpy(kspace), dtype=op._cdtype)
    split_batch(y.shape, op.range_shape, "kspace")
    if isinstance(op, SenseOperator) and op.mask is not None:
        y = y * op.mask  # unsampled entries play no part (keeps the objective meaningful)
    return op, y, aty


def _soft(c: np.ndarray, t: float, where: np.ndarray | None = None) -> np.ndarray:
    """Complex soft thresholding ``c * max(0, 1 - t / |c|)`` (only ``where`` is True)."""
    if t <= 0:
        return c
    mag = np.abs(c)
    scale = np.maximum(mag - t, 0)
    np.divide(scale, mag, out=scale, where=mag > 0)
    if where is not None:
        scale[..., ~where] = 1
    return c * scale


def _l1(c: np.ndarray, where: np.ndarray | None = None) -> float:
    mag = np.abs(c)
    if where is not None:
        mag = mag[..., where]
    return float(np.sum(mag, dtype=np.float64))


def _half_sq(r: np.ndarray) -> float:
    return 0.5 * float(np.vdot(r, r).real)


# ------------------------------------------------------------------------ l1-wavelet
def cs_wavelet(
    kspace: Any,
    maps: npt.ArrayLike | None = None,
    mask: npt.ArrayLike | None = None,
    *,
    op: ComplexOperator | None = None,
    lam: float,
    wavelet: str = "db4",
    level: int | None = None,
    n_iter: int = 100,
    tol: float = 1e-5,
    solver: str = "fista",
    threshold_approx: bool = False,
    random_shift: bool = False,
    seed: int = 0,
    rho: float | None = None,
    n_inner: int = 10,
    callback: Callback | None = None,
    progress: bool = False,
    return_info: bool = False,
) -> Any:
    """l1-wavelet regularised SENSE: ``min 0.5 ||A x - y||^2 + lam ||W x||_1``.

    ``W`` is the unitary :class:`WaveletOperator`; the l1 norm is the sum of the complex
    magnitudes of the detail coefficients (and of the approximation band with
    ``threshold_approx=True``).

    Parameters
    ----------
    kspace : ndarray or Tensor of shape (..., coils, ky, kx)
        Measured k-space (or the range of ``op``), complex with the operator's precision
        (real float is taken as complex). Leading dimensions are slices, solved as a block
        (see the module docstring).
    maps : array_like of shape (coils, ny, nx), optional
        Coil sensitivities for :class:`~medrecon.mr.sense.SenseOperator`; give these (and
        ``mask``) or ``op``.
    mask : array_like, optional
        Sampling mask broadcasting to ``(coils, ky, kx)``; default fully sampled.
    op : ComplexOperator, optional
        Any encoding operator with 2D image domain ``(ny, nx)`` instead of ``maps``/``mask``.
    lam : float
        Regularisation weight (>= 0), absolute (units of ``A^H y``); 0 gives least squares.
    wavelet : str
        Orthogonal PyWavelets wavelet (default ``"db4"``; see :class:`WaveletOperator`).
    level : int, optional
        Decomposition levels (default: as many as the shape allows, see
        :class:`WaveletOperator`).
    n_iter : int
        Maximum number of iterations (>= 0).
    tol : float
        Stop when ``||x_k - x_(k-1)|| / ||x_k|| < tol``.
    solver : {"fista", "admm"}
        FISTA with step ``1 / ||A||^2`` (``||A||`` by power iteration, cached on the operator)
        or ADMM with ``n_inner`` warm-started CG steps for each x-update.
    threshold_approx : bool
        Also penalise the approximation (coarsest scaling) coefficients. Default False: only
        the detail coefficients enter ``||W x||_1``, as in BART's ``pics -R W``; penalising
        the coarse band shrinks the image's mean intensity and rarely helps.
    random_shift : bool
        FISTA only: apply the proximal step to the image cyclically shifted by a random
        offset in ``[0, 2**level)`` per axis and iteration (cycle spinning, as BART's
        ``pics`` does by default), which avoids blocky wavelet artefacts. The regulariser then
        changes from one iteration to the next, so the objective (evaluated unshifted) need
        not decrease monotonically.
    seed : int
        Seed of the random shifts.
    rho : float, optional
        ADMM penalty (> 0); default ``0.5 * ||A||^2``.
    n_inner : int
        ADMM: CG iterations per x-update (>= 1).
    callback : callable, optional
        ``callback(k, x)`` after iteration ``k``; a truthy return stops.
    progress : bool
        Show a tqdm progress bar.
    return_info : bool
        Also return a :class:`CSInfo`.

    Returns
    -------
    x : ndarray or Tensor of shape (..., ny, nx)
        Complex image of the operator's dtype; same kind as ``kspace``.
    info : CSInfo
        Only when ``return_info`` is True.

    Raises
    ------
    ShapeError, DtypeError
        k-space, maps, mask or operator do not fit together.
    ValueError
        Parameters out of range, an unknown solver or wavelet, or both ``maps`` and ``op``.

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.mr.fft import fft2c
    >>> maps = np.full((2, 16, 16), np.sqrt(0.5), np.complex128)
    >>> x = np.zeros((16, 16), np.complex128); x[4:12, 4:12] = 1.0
    >>> y = fft2c(maps * x)
    >>> rec, info = cs_wavelet(y, maps, lam=0.01, wavelet="haar", return_info=True)
    >>> rec.shape, info.converged, round(float(abs(rec[8, 8])), 2)
    ((16, 16), True, 1.0)
    """
    lam, n_iter, tol = check_solver_args(lam, n_iter, tol)
    if solver not in ("fista", "admm"):
        raise ValueError(f"solver: expected 'fista' or 'admm', got {solver!r}")
    A, y, aty = _problem(kspace, maps, mask, op)
    W = WaveletOperator(_shape2(A.domain_shape), wavelet, level, dtype=A._cdtype)
    norm_a = float(A.norm())
    if norm_a == 0.0:
        raise ValueError("op: the encoding operator is zero (empty mask?)")
    mon = _Monitor(solver, n_iter, tol, callback, progress, kspace)
    mon.info.steps.update(norm_A=norm_a, wavelet=W.wavelet, level=W.level, lam=lam)
    where = None if threshold_approx else W.detail_mask
    x = np.zeros_like(aty)
    mon.info.objective.append(_half_sq(y))
    if solver == "fista":
        x = _fista(A, W, y, x, lam, n_iter, norm_a, random_shift, seed, where, mon)
    else:
        if isinstance(n_inner, bool) or not isinstance(n_inner, int | np.integer) or n_inner < 1:
            raise ValueError(f"n_inner: expected an integer >= 1, got {n_inner!r}")
        rho_f = 0.5 * norm_a**2 if rho is None else float(rho)
        if not (math.isfinite(rho_f) and rho_f > 0):
            raise ValueError(f"rho: expected a finite number > 0, got {rho!r}")
        x = _admm(A, W, y, aty, x, lam, n_iter, rho_f, int(n_inner), where, mon)
    return mon.finish(x, return_info)


def _fista(
    A: ComplexOperator,
    W: WaveletOperator,
    y: np.ndarray,
    x: np.ndarray,
    lam: float,
    n_iter: int,
    norm_a: float,
    random_shift: bool,
    seed: int,
    where: np.ndarray | None,
    mon: _Monitor,
) -> np.ndarray:
    # 1 / L with a 1% margin: the power-iteration estimate of ||A|| approaches from below
    step = 1.0 / (1.01 * norm_a**2)
    mon.info.steps.update(step=step, random_shift=random_shift)
    rng = np.random.default_rng(seed)
    period = 2**W.level
    ax = np.zeros_like(y)  # A x_k, kept up to date so that A z_k costs nothing
    x_old, ax_old = x, ax
    t = 1.0
    for k in range(1, n_iter + 1):
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_new if k > 1 else 0.0
        z = x + beta * (x - x_old)
        az = ax + beta * (ax - ax_old)
        v = z - step * A._adjoint(np.ascontiguousarray(az - y))
        if random_shift and period > 1:
            shift = tuple(int(s) for s in rng.integers(0, period, size=2))
            v = np.roll(v, shift, axis=(-2, -1))
            x_new = np.roll(
                W._adjoint(_soft(W._forward(v), step * lam, where)),
                [-s for s in shift],
                axis=(-2, -1),
            )
        else:
            x_new = W._adjoint(_soft(W._forward(v), step * lam, where))
        x_new = np.ascontiguousarray(x_new)
        ax_new = np.asarray(A._forward(x_new))
        obj = _half_sq(ax_new - y) + lam * _l1(W._forward(x_new), where)
        change = _relative_change(x_new, x)
        x_old, ax_old, x, ax, t = x, ax, x_new, ax_new, t_new
        if mon.step(k, x, change, objective=obj, change=change):
            break
    return x


def _admm(
    A: ComplexOperator,
    W: WaveletOperator,
    y: np.ndarray,
    aty: np.ndarray,
    x: np.ndarray,
    lam: float,
    n_iter: int,
    rho: float,
    n_inner: int,
    where: np.ndarray | None,
    mon: _Monitor,
) -> np.ndarray:
    mon.info.steps.update(rho=rho, n_inner=n_inner)

    def normal(v: np.ndarray) -> np.ndarray:
        return np.asarray(A._adjoint(np.ascontiguousarray(A._forward(v)))) + rho * v

    z = W._forward(x)
    u = np.zeros_like(z)
    for k in range(1, n_iter + 1):
        # x-update: (A^H A + rho I) x = A^H y + rho W^H (z - u), warm-started at the last x
        b = aty + rho * W._adjoint(np.ascontiguousarray(z - u))
        x_new = x + conjugate_gradient(normal, b - normal(x), n_inner, 0.0, False, "admm-cg")
        wx = W._forward(x_new)
        z = _soft(wx + u, lam / rho, where)
        u = u + wx - z
        obj = _half_sq(np.asarray(A._forward(x_new)) - y) + lam * _l1(wx, where)
        change = _relative_change(x_new, x)
        x = x_new
        if mon.step(k, x, change, objective=obj, change=change):
            break
    return x


# ------------------------------------------------------------------------------- TV
def cs_tv(
    kspace: Any,
    maps: npt.ArrayLike | None = None,
    mask: npt.ArrayLike | None = None,
    *,
    op: ComplexOperator | None = None,
    lam: float,
    n_iter: int = 200,
    tol: float = 1e-5,
    callback: Callback | None = None,
    progress: bool = False,
    return_info: bool = False,
) -> Any:
    """Isotropic-TV regularised SENSE by PDHG: ``min 0.5 ||A x - y||^2 + lam TV(x)``.

    ``TV(x) = sum_j |(D x)_j|`` with the complex forward differences ``D`` of
    :class:`GradientOperator` and ``|.|`` the Euclidean norm over both directions and real
    and imaginary parts. Chambolle-Pock iteration on ``K = [A; D]`` with dual variables
    ``p`` (k-space) and ``q`` (gradients)::

        p     = (p + sigma (A xb - y)) / (1 + sigma)
        q     = proj_(|q_j| <= lam)(q + sigma D xb)
        x_new = x - tau (A^H p + D^H q),    xb = 2 x_new - x

    with ``sigma = tau = 0.99 / sqrt(||A||^2 + 8)`` (``||D||^2 < 8``).

    Parameters
    ----------
    kspace, maps, mask, op
        As in :func:`cs_wavelet`.
    lam : float
        TV weight (>= 0), absolute (units of ``A^H y``).
    n_iter : int
        Maximum number of iterations (>= 0).
    tol : float
        Stop when ``||x_k - x_(k-1)|| / ||x_k|| < tol``.
    callback, progress, return_info
        As in :func:`cs_wavelet`.

    Returns
    -------
    x : ndarray or Tensor of shape (..., ny, nx)
    info : CSInfo
        Only when ``return_info`` is True (``algorithm="pdhg"``).

    Raises
    ------
    ShapeError, DtypeError, ValueError
        As in :func:`cs_wavelet`.

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.mr.fft import fft2c
    >>> maps = np.full((2, 16, 16), np.sqrt(0.5), np.complex128)
    >>> x = np.zeros((16, 16), np.complex128); x[4:12, 4:12] = 1.0
    >>> rec = cs_tv(fft2c(maps * x), maps, lam=0.01, n_iter=300)
    >>> rec.shape, round(float(abs(rec[8, 8])), 2)
    ((16, 16), 1.0)
    """
    lam, n_iter, tol = check_solver_args(lam, n_iter, tol)
    A, y, aty = _problem(kspace, maps, mask, op)
    norm_a = float(A.norm())
    mon = _Monitor("pdhg", n_iter, tol, callback, progress, kspace)
    sigma = tau = 0.99 / math.sqrt(1.01 * norm_a**2 + 8.0)
    mon.info.steps.update(norm_A=norm_a, sigma=sigma, tau=tau, lam=lam)
    x = np.zeros_like(aty)
    mon.info.objective.append(_half_sq(y))
    ax = np.zeros_like(y)
    axb = ax
    xb = x
    p = np.zeros_like(y)
    q = _grad(x)
    for k in range(1, n_iter + 1):
        p = (p + sigma * (axb - y)) / (1.0 + sigma)
        q = q + sigma * _grad(xb)
        mag = np.sqrt(np.sum(np.abs(q) ** 2, axis=-3, keepdims=True))
        q = q / np.maximum(mag / lam, 1.0) if lam > 0 else np.zeros_like(q)
        x_new = x - tau * (np.asarray(A._adjoint(np.ascontiguousarray(p))) + _grad_adjoint(q))
        ax_new = np.asarray(A._forward(np.ascontiguousarray(x_new)))
        xb = 2.0 * x_new - x
        axb = 2.0 * ax_new - ax
        g = _grad(x_new)
        tv = float(np.sum(np.sqrt(np.sum(np.abs(g) ** 2, axis=-3)), dtype=np.float64))
        obj = _half_sq(ax_new - y) + lam * tv
        change = _relative_change(x_new, x)
        x, ax = x_new, ax_new
        if mon.step(k, x, change, objective=obj, change=change):
            break
    return mon.finish(x, return_info)
