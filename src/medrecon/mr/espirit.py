"""ESPIRiT coil sensitivity calibration (Uecker et al., MRM 71:990-1001, 2014).

From the fully sampled centre of k-space (the calibration or ACS region):

1. build the calibration matrix whose rows are all ``kernel x kernel`` patches of the region
   (all coils), and keep the right singular vectors whose singular values exceed ``threshold``
   times the largest (the signal subspace ``V``);
2. every k-space point is predicted by the ``K = kernel**2`` patches that contain it through the
   projection ``V V^H``; averaged over the patches this is a convolution with a small kernel
   ``h_{cc'}[m]`` (``m`` in ``(-(kernel - 1), kernel - 1)`` per axis), i.e. a ``coils x coils``
   matrix ``G(r) = (1/K) W(r) W(r)^H`` per pixel in the image domain, ``W`` holding the image-domain
   kernels. ``h`` is computed exactly with small FFTs and evaluated on the image grid as a
   trigonometric polynomial (no kernel is ever zero-padded to the full image: the cost does not
   grow with the number of kept kernels);
3. per pixel, the eigenvector of ``G`` with eigenvalue ~1 is the vector of coil sensitivities
   (batched :func:`numpy.linalg.eigh`); pixels whose eigenvalue is at most ``crop`` are set to 0.

The eigenvalues of ``G`` lie in ``[0, 1]``; maps are unit-norm per pixel,
``sum_c |S_c|^2 = 1`` where not cropped.

Phase: eigenvectors are defined up to a phase per pixel. With ``phase="pca"`` (default, what
BART's ``ecalib`` does unless ``-P``) each pixel is rotated so that the projection of the maps on
the first principal component ``v`` of the calibration data, ``sum_c conj(v_c) S_c``, is real and
positive. ``"first_coil"`` makes coil 0 real and positive (undefined where coil 0 vanishes);
``"none"`` leaves LAPACK's phase.

Relation to BART (``bart ecalib``) and SigPy (``sigpy.mri.app.EspiritCalib``): ``threshold`` is
relative to the largest *singular value*, as SigPy's ``thresh``; BART's ``-t t`` keeps singular
values above ``sqrt(t)`` times the largest, so ``threshold=0.02`` is ``bart ecalib -t 0.0004``.
``crop`` is BART's ``-c`` (hard crop on the eigenvalue), ``calib`` BART's ``-r`` and ``kernel``
its ``-k``. BART's ``.cfl`` files are Fortran-ordered ``[x, y, z, coils, maps]``; read as a
C-ordered array with the dimensions reversed they are ``(maps, coils, z, y, x)``, i.e. medrecon's
``(coils, ky, kx)`` with BART's first (readout) dimension as our last axis.
"""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from medrecon._array import check_finite, like, to_numpy
from medrecon._enum import parse_enum
from medrecon.errors import DtypeError, ShapeError
from medrecon.mr.fft import ifft2c

__all__ = ["PhaseReference", "auto_calib_size", "calibration_region", "espirit"]

# a calibration region with too few kernel positions (see _calib_problem) raises when the maps
# are cropped over more than this fraction of the signal energy, else it warns
_MAX_CROPPED = 0.5


class PhaseReference(enum.StrEnum):
    """How the per-pixel phase of the ESPIRiT maps is fixed (see the module docstring)."""

    PCA = "pca"
    FIRST_COIL = "first_coil"
    NONE = "none"


def _pair(value: Any, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each ``>= minimum``, as a pair."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected an integer or a pair of integers, got {value!r}")
    if isinstance(value, int | np.integer):
        vals: tuple[Any, ...] = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        vals = tuple(value)
    else:
        raise ValueError(f"{name}: expected an integer or a pair of integers, got {value!r}")
    if len(vals) != 2 or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in vals
    ):
        raise ValueError(f"{name}: expected an integer or a pair of integers, got {value!r}")
    out = (int(vals[0]), int(vals[1]))
    if min(out) < minimum:
        raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
    return out


def _kspace(kspace: Any, name: str = "kspace") -> np.ndarray:
    """Validate multi-coil k-space ``(..., coils, ky, kx)`` and return it as a numpy array."""
    k = to_numpy(kspace)
    if k.ndim < 3 or any(n < 1 for n in k.shape):
        raise ShapeError(
            f"{name}: expected multi-coil k-space (coils, ky, kx) or (slices, coils, ky, kx), "
            f"got shape {tuple(k.shape)}"
        )
    if k.dtype.kind not in "fc" or k.dtype.itemsize < 4:
        raise DtypeError(f"{name}: expected a complex (or real float) array, got {k.dtype}")
    check_finite(k, name)
    return k


def _sampled(k: np.ndarray) -> np.ndarray:
    """Boolean ``(ky, kx)``: where any coil (or slice) holds a non-zero sample."""
    return np.any(k != 0, axis=tuple(range(k.ndim - 2)))


def _centre_slices(shape: tuple[int, int], size: tuple[int, int]) -> tuple[slice, slice]:
    """The centred block of ``size`` in a grid of ``shape`` (DC at ``n // 2``)."""
    return tuple(  # type: ignore[return-value]
        slice(n // 2 - c // 2, n // 2 - c // 2 + c) for n, c in zip(shape, size, strict=True)
    )


def auto_calib_size(kspace: Any, max_size: int | Sequence[int] | None = None) -> tuple[int, int]:
    """Size ``(cy, cx)`` of the largest centred, fully sampled block of k-space.

    A k-space location counts as sampled when any coil (or slice) holds a non-zero value there.
    The block is centred on DC (index ``n // 2``) and grown one row or column at a time, the
    axis with the smaller relative size first, while it stays fully sampled.

    Parameters
    ----------
    kspace : ndarray or Tensor of shape (..., coils, ky, kx), or a boolean (ky, kx) mask
        Undersampled k-space with zeros where nothing was acquired (or the sampling pattern).
    max_size : int or (int, int), optional
        Upper limit per axis (e.g. ESPIRiT's ``calib``).

    Returns
    -------
    (int, int)
        ``(0, 0)`` when the DC sample itself is missing.

    Examples
    --------
    >>> import numpy as np
    >>> k = np.zeros((2, 32, 32), complex)
    >>> k[:, :, 12:20] = 1.0  # 8 fully sampled central columns
    >>> k[:, :, 1::4] = 1.0
    >>> auto_calib_size(k)
    (32, 8)
    >>> auto_calib_size(k, max_size=24)
    (24, 8)
    """
    arr = to_numpy(kspace)
    is_mask = arr.ndim == 2 and arr.dtype == bool
    sampled = np.asarray(arr) if is_mask else _sampled(_kspace(arr))
    ny, nx = sampled.shape
    lim = (ny, nx) if max_size is None else _pair(max_size, "max_size")
    lim = (min(lim[0], ny), min(lim[1], nx))
    # summed-area table: O(1) test of any centred block
    sat = np.zeros((ny + 1, nx + 1), np.int64)
    sat[1:, 1:] = np.cumsum(np.cumsum(sampled, axis=0), axis=1)

    def full(cy: int, cx: int) -> bool:
        sy, sx = _centre_slices((ny, nx), (cy, cx))
        total = (
            sat[sy.stop, sx.stop]
            - sat[sy.start, sx.stop]
            - sat[sy.stop, sx.start]
            + sat[sy.start, sx.start]
        )
        return bool(total == cy * cx)

    if not full(1, 1):
        return (0, 0)
    cy = cx = 1
    grow_y = grow_x = True
    while grow_y or grow_x:
        order = ("y", "x") if cy / ny <= cx / nx else ("x", "y")
        for axis in order:
            if axis == "y" and grow_y:
                grow_y = cy < lim[0] and full(cy + 1, cx)
                cy += int(grow_y)
            elif axis == "x" and grow_x:
                grow_x = cx < lim[1] and full(cy, cx + 1)
                cx += int(grow_x)
    return (cy, cx)


def calibration_region(kspace: Any, size: int | Sequence[int]) -> Any:
    """The centred ``(cy, cx)`` block of k-space around DC (index ``n // 2`` on each axis).

    Parameters
    ----------
    kspace : ndarray or Tensor of shape (..., ky, kx)
    size : int or (int, int)
        Block size per axis (at most the grid size).

    Returns
    -------
    ndarray or Tensor of shape (..., cy, cx)
        A view (numpy) of ``kspace``; same kind as the input.

    Examples
    --------
    >>> import numpy as np
    >>> k = np.arange(36).reshape(6, 6)
    >>> calibration_region(k, 2).tolist()
    [[14, 15], [20, 21]]
    """
    k = to_numpy(kspace)
    if k.ndim < 2:
        raise ShapeError(f"kspace: expected shape (..., ky, kx), got {tuple(k.shape)}")
    cy, cx = _pair(size, "size")
    ny, nx = k.shape[-2:]
    if cy > ny or cx > nx:
        raise ShapeError(f"size: ({cy}, {cx}) exceeds the k-space grid ({ny}, {nx})")
    sy, sx = _centre_slices((ny, nx), (cy, cx))
    return like(k[..., sy, sx], kspace)


def _patches(region: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """Calibration matrix: one row per kernel position, columns ``(coils, ky, kx)`` flattened."""
    win = np.lib.stride_tricks.sliding_window_view(region, kernel, axis=(-2, -1))
    coils = region.shape[0]
    # (coils, py, px, ky, kx) -> (py, px, coils, ky, kx)
    win = np.moveaxis(win, 0, 2)
    return win.reshape(-1, coils * kernel[0] * kernel[1])


def _trig_matrix(n: int, k: int) -> np.ndarray:
    """``exp(2 pi i m (p - n//2) / n)`` for pixels ``p`` and lags ``m`` in ``-(k-1)..k-1``."""
    m = np.arange(-(k - 1), k)
    p = np.arange(n) - n // 2
    return np.exp(2j * np.pi * np.outer(p, m) / n)


def _enough_positions(size: tuple[int, int], kernel: tuple[int, int]) -> bool:
    """Whether a calibration block of ``size`` holds enough kernel positions (see
    :func:`_calib_problem`)."""
    py, px = size[0] - kernel[0] + 1, size[1] - kernel[1] + 1
    return (
        5 * py >= 4 * kernel[0]
        and 5 * px >= 4 * kernel[1]
        and py * px >= (kernel[0] + 1) * (kernel[1] + 1)
    )


def _calib_problem(size: tuple[int, int], kernel: tuple[int, int]) -> str | None:
    """Why a calibration block of ``size`` holds too few positions of ``kernel``, or None.

    The rows of the calibration matrix are the ``py x px`` kernel positions in the block. The
    signal subspace has a dimension of about ``(ky + 1) * (kx + 1)`` (the kernel widened by the
    bandwidth of smooth sensitivities), whatever the number of coils, and the rows must span it.
    With too few rows in all, or too few positions along one axis, it is truncated: the
    eigenvectors (the maps' directions) stay close to right, but the eigenvalues fall well
    below 1 over the object, so ``crop`` zeroes the maps there. Measured on simulated birdcage
    coils and BART's phantom (kernels 4 to 8, 4 to 16 coils, ``crop=0.95``): a block with fewer
    than ``(ky + 1) * (kx + 1)`` positions, or fewer than ``0.8 * k`` along an axis, cropped
    5 % to 100 % of the object; with enough positions, under 2 %, even where the matrix has far
    fewer rows than its ``coils * ky * kx`` columns.
    """
    if _enough_positions(size, kernel):
        return None
    py, px = size[0] - kernel[0] + 1, size[1] - kernel[1] + 1
    need_py, need_px = -(-4 * kernel[0] // 5), -(-4 * kernel[1] // 5)  # ceil(0.8 k)
    need_rows = (kernel[0] + 1) * (kernel[1] + 1)
    # the smallest region (not smaller than this one) that is enough: grow the axis with
    # fewer positions first
    cy = max(size[0], kernel[0] + need_py - 1)
    cx = max(size[1], kernel[1] + need_px - 1)
    while not _enough_positions((cy, cx), kernel):
        if cy - kernel[0] <= cx - kernel[1]:
            cy += 1
        else:
            cx += 1
    kmax = max((k for k in range(1, min(kernel)) if _enough_positions(size, (k, k))), default=0)
    smaller = f", use a kernel of at most {kmax} x {kmax}" if kmax >= 2 else ""
    return (
        f"it holds {py} x {px} = {py * px} kernel positions (rows of the calibration matrix), "
        f"but ESPIRiT needs at least {need_rows} = ({kernel[0]} + 1) * ({kernel[1]} + 1) and at "
        f"least {need_py} x {need_px} along the axes (0.8 * kernel); with fewer, the signal "
        f"subspace is truncated and the eigenvalues fall below 1 over the object, where crop "
        f"then zeroes the maps. Acquire a fully sampled centre of at least {(cy, cx)}{smaller}, "
        f"or lower crop"
    )


def _too_few_positions(
    region: np.ndarray,
    size: tuple[int, int],
    calib: tuple[int, int],
    kernel: tuple[int, int],
    crop: float,
    evals: np.ndarray,
    problem: str,
) -> None:
    """Raise (most of the signal cropped) or warn about a calibration region with too few
    kernel positions. The signal is the low-resolution image of the calibration region."""
    ny, nx = evals.shape
    sy, sx = _centre_slices((ny, nx), size)
    padded = np.zeros((region.shape[0], ny, nx), np.complex128)
    padded[:, sy, sx] = region
    energy = np.sum(np.abs(np.asarray(ifft2c(padded))) ** 2, axis=0)
    lost = float(energy[evals <= crop].sum() / energy.sum())
    msg = (
        f"kspace: the fully sampled calibration region {size} (the largest block centred on DC, "
        f"at most calib={calib}) is too small for the {kernel[0]} x {kernel[1]} kernel: "
        f"{problem}. With crop={crop:g} the maps are zero over {lost:.0%} of the signal energy"
    )
    if lost > _MAX_CROPPED:
        raise ShapeError(msg)
    warnings.warn(msg, UserWarning, stacklevel=4)


def _one_slice(
    k: np.ndarray,
    calib: tuple[int, int],
    kernel: tuple[int, int],
    threshold: float,
    crop: float,
    n_maps: int,
    phase: PhaseReference,
) -> tuple[np.ndarray, np.ndarray]:
    coils, ny, nx = k.shape
    avail = auto_calib_size(k, max_size=calib)
    if avail == (0, 0):
        raise ValueError(
            "kspace: no calibration region: the DC sample (index n // 2 on both axes) is missing"
        )
    if avail[0] < kernel[0] or avail[1] < kernel[1]:
        raise ShapeError(
            f"kspace: the fully sampled calibration region {avail} is smaller than the kernel "
            f"{kernel}; acquire more central lines or use a smaller kernel"
        )
    problem = _calib_problem(avail, kernel)
    region = np.asarray(calibration_region(k, avail), dtype=np.complex128)
    a = _patches(region, kernel)
    # right singular vectors and squared singular values from the (smaller) Gram matrix, as
    # BART does: the rows of the calibration matrix lie in the span of conj(V[:, :rank]).T
    gram = a.conj().T @ a
    sq, vecs = np.linalg.eigh(gram)
    sq, vecs = sq[::-1], vecs[:, ::-1]
    if sq[0] <= 0:
        raise ValueError("kspace: the calibration region holds no signal (all zeros)")
    rank = int(np.count_nonzero(sq > threshold**2 * sq[0]))
    v = np.conj(vecs[:, :rank].T).reshape(rank, coils, kernel[0], kernel[1])
    # h_{cc'}[m] = (1/K) sum_r sum_{j - j' = m} v_r(c, j) conj(v_r(c', j')) by FFT correlation
    ly, lx = 2 * kernel[0] - 1, 2 * kernel[1] - 1
    vf = np.fft.fft2(v, s=(ly, lx))
    hf = np.einsum("rcyx,rdyx->cdyx", vf, np.conj(vf), optimize=True)
    h = np.fft.ifft2(hf) / (kernel[0] * kernel[1])
    # lags -(k-1)..k-1 in increasing order (they wrap around in the FFT output)
    h = np.fft.fftshift(h, axes=(-2, -1))
    # G(p) = sum_m h[m] exp(2 pi i m . p / n): Hermitian per pixel; evaluated separably
    ey = _trig_matrix(ny, kernel[0])
    ex = _trig_matrix(nx, kernel[1])
    iu = np.triu_indices(coils)
    gu = np.einsum("ya,tab,xb->yxt", ey, h[iu[0], iu[1]], ex, optimize=True)
    g = np.zeros((ny, nx, coils, coils), np.complex128)
    g[..., iu[0], iu[1]] = gu
    g[..., iu[1], iu[0]] = np.conj(gu)
    w, vecs = np.linalg.eigh(g)  # ascending eigenvalues
    evals = w[..., ::-1][..., :n_maps]  # (ny, nx, maps)
    maps = np.moveaxis(vecs[..., ::-1][..., :n_maps], -1, 0)  # (maps, ny, nx, coils)
    if phase is PhaseReference.PCA:
        cov = region.reshape(coils, -1)
        _, u = np.linalg.eigh(cov @ cov.conj().T)
        ref = np.einsum("c,myxc->myx", np.conj(u[:, -1]), maps)
    elif phase is PhaseReference.FIRST_COIL:
        ref = maps[..., 0]
    else:
        ref = np.ones(maps.shape[:-1], np.complex128)
    mag = np.abs(ref)
    rot = np.where(mag > 0, np.conj(ref) / np.where(mag > 0, mag, 1.0), 1.0)
    maps = maps * rot[..., None]
    evals = np.moveaxis(evals, -1, 0)  # (maps, ny, nx)
    if problem is not None:
        _too_few_positions(region, avail, calib, kernel, crop, evals[0], problem)
    maps = maps * (evals > crop)[..., None]
    return np.moveaxis(maps, -1, 1), np.clip(evals, 0.0, None)  # (maps, coils, ny, nx)


def espirit(
    kspace: Any,
    *,
    calib: int | Sequence[int] = 24,
    kernel: int | Sequence[int] = 6,
    threshold: float = 0.02,
    crop: float = 0.95,
    n_maps: int = 1,
    phase: PhaseReference | str = PhaseReference.PCA,
    return_eigenvalues: bool = False,
) -> Any:
    """ESPIRiT coil sensitivity maps from the fully sampled centre of k-space.

    Parameters
    ----------
    kspace : ndarray or Tensor of shape (coils, ky, kx) or (slices, coils, ky, kx)
        Multi-coil k-space, DC at index ``n // 2``, zeros where nothing was acquired; a fully
        sampled centred block of at least ``kernel`` per axis is required. Leading dimensions
        are calibrated one slice at a time.
    calib : int or (int, int)
        Largest calibration region ``(cy, cx)`` (BART's ``-r``); the region used is the largest
        centred fully sampled block up to this size (:func:`auto_calib_size`). It should hold
        enough kernel positions: at least ``(ky + 1) * (kx + 1)`` in all and ``0.8 * k`` along
        each axis (``(2 * ky, 2 * kx)`` always suffices; for the default kernel 6, e.g.
        ``(24, 10)`` or ``(12, 12)``). With fewer, the eigenvalues fall below 1 over the object
        and ``crop`` zeroes the maps there: a :class:`UserWarning`, or a
        :class:`~medrecon.errors.ShapeError` where that removes more than half of the signal
        energy (of the calibration region's low-resolution image). The number of coils does
        not enter: fewer rows than columns in the calibration matrix is fine.
    kernel : int or (int, int)
        Kernel size per axis (BART's ``-k``).
    threshold : float
        Keep the singular vectors whose singular value exceeds ``threshold`` times the largest
        (in ``(0, 1)``; BART's ``-t`` is the square of this, see the module docstring).
    crop : float
        Maps are set to zero where the eigenvalue is at most ``crop`` (in ``[0, 1)``; BART's
        ``-c``). 0 keeps every pixel.
    n_maps : int
        Number of eigenvector maps per pixel (1 to ``coils``), in decreasing eigenvalue order.
    phase : {"pca", "first_coil", "none"}
        Phase reference of each pixel (see :class:`PhaseReference`).
    return_eigenvalues : bool
        Also return the eigenvalue maps.

    Returns
    -------
    maps : ndarray or Tensor of shape (..., coils, ny, nx), or (..., n_maps, coils, ny, nx)
        Complex sensitivities with ``sum_c |S_c|^2`` equal to 1 (or 0 where cropped); complex64
        for single-precision input, else complex128; same kind as ``kspace``. The ``n_maps``
        axis is present only when ``n_maps > 1``.
    eigenvalues : ndarray or Tensor of shape (..., ny, nx) or (..., n_maps, ny, nx)
        Only with ``return_eigenvalues``; real, in ``[0, 1]``.

    Raises
    ------
    ShapeError
        ``kspace`` is not ``(..., coils, ky, kx)``, the kernel exceeds the grid, or the fully
        sampled calibration region is smaller than the kernel, or holds so few kernel
        positions that ``crop`` zeroes the maps over most of the signal (see ``calib``; the
        message says which size is needed).
    DtypeError
        ``kspace`` is not complex or real float.
    ValueError
        Parameters out of range, no fully sampled centre, or no signal.

    Warns
    -----
    UserWarning
        The calibration region holds too few kernel positions (see ``calib``), but ``crop``
        zeroes the maps over at most half of the signal energy.

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.mr.fft import fft2c
    >>> from medrecon.mr.simulate import birdcage_maps, brain_phantom
    >>> k = fft2c(birdcage_maps(48, 4) * brain_phantom(48))
    >>> maps, ev = espirit(k, calib=16, kernel=5, crop=0.8, return_eigenvalues=True)
    >>> maps.shape, maps.dtype, ev.shape
    ((4, 48, 48), dtype('complex64'), (48, 48))
    >>> round(float((abs(maps[:, 24, 24]) ** 2).sum()), 4)
    1.0
    """
    k = _kspace(kspace)
    coils, ny, nx = (int(n) for n in k.shape[-3:])
    calib_size = _pair(calib, "calib")
    ksize = _pair(kernel, "kernel")
    if ksize[0] > ny or ksize[1] > nx:
        raise ShapeError(f"kernel: {ksize} exceeds the k-space grid ({ny}, {nx})")
    if not (math.isfinite(threshold) and 0.0 < threshold < 1.0):
        raise ValueError(f"threshold: expected a number in (0, 1), got {threshold!r}")
    if not (math.isfinite(crop) and 0.0 <= crop < 1.0):
        raise ValueError(f"crop: expected a number in [0, 1), got {crop!r}")
    if isinstance(n_maps, bool) or not isinstance(n_maps, int | np.integer):
        raise ValueError(f"n_maps: expected an integer, got {n_maps!r}")
    if not 1 <= n_maps <= coils:
        raise ValueError(f"n_maps: expected 1 to {coils} (the number of coils), got {n_maps}")
    ref = parse_enum(PhaseReference, phase, "phase")
    single = k.dtype in (np.complex64, np.float32)
    cdt = np.complex64 if single else np.complex128
    rdt = np.float32 if single else np.float64
    batch = k.shape[:-3]
    flat = k.reshape(-1, coils, ny, nx)
    out_maps = np.empty((flat.shape[0], n_maps, coils, ny, nx), cdt)
    out_ev = np.empty((flat.shape[0], n_maps, ny, nx), rdt)
    for i, sl in enumerate(flat):
        out_maps[i], out_ev[i] = _one_slice(sl, calib_size, ksize, threshold, crop, n_maps, ref)
    if n_maps == 1:
        maps_arr: npt.NDArray[Any] = out_maps[:, 0].reshape(*batch, coils, ny, nx)
        ev_arr: npt.NDArray[Any] = out_ev[:, 0].reshape(*batch, ny, nx)
    else:
        maps_arr = out_maps.reshape(*batch, n_maps, coils, ny, nx)
        ev_arr = out_ev.reshape(*batch, n_maps, ny, nx)
    if return_eigenvalues:
        return like(maps_arr, kspace), like(ev_arr, kspace)
    return like(maps_arr, kspace)
