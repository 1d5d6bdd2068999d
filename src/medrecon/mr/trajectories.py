"""Non-Cartesian k-space trajectories, Poisson-disc masks and density compensation.

Coordinate convention (shared with :mod:`medrecon.mr.nufft`): k-space coordinates are float64
arrays of shape ``(..., d)`` in **radians per sample** of the image grid, in ``[-pi, pi)``
(FINUFFT's convention); ``k = pi`` is the Nyquist frequency of the pixel grid. The last axis
lists one frequency per image axis **in the image's axis order**: for images ``(ny, nx)``
``coords[..., 0]`` is ``ky`` (conjugate to the row index, axis ``-2``) and ``coords[..., 1]``
is ``kx`` (axis ``-1``). The DC sample ``k = 0`` corresponds to the centre pixel
``(ny // 2, nx // 2)`` being the phase origin, as in :func:`~medrecon.mr.fft.fft2c`. To convert
from SigPy's cycles-per-FOV coordinates multiply by ``2 pi / n`` per axis.

* :func:`radial` - 2D radial spokes through the centre, golden-angle or uniform;
* :func:`spiral` - Archimedean spiral interleaves, constant or variable density;
* :func:`poisson_disc_mask` - variable-density Poisson-disc Cartesian mask (2D phase encodes);
* :func:`pipe_dcf` - iterative density compensation (Pipe & Menon 1999) with the NUFFT;
* :func:`ramp_dcf` - the analytic ``|k|`` density compensation of full-diameter radial spokes.

Density compensation weights are normalised as the k-space area per sample times
``N / (2 pi)^d`` (``N`` = number of pixels): fully sampled Cartesian coordinates get weight 1,
and the gridding reconstruction ``A^H (w * y)`` of :class:`~medrecon.mr.nufft.NufftOperator`
data then reproduces the image scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba as nb
import numpy as np
import numpy.typing as npt

from medrecon.errors import ShapeError
from medrecon.mr.nufft import NufftOperator, check_coords

__all__ = ["GOLDEN_ANGLE", "pipe_dcf", "poisson_disc_mask", "radial", "ramp_dcf", "spiral"]

#: The golden angle for radial MRI in radians: ``pi / phi`` = 111.246... degrees
#: (Winkelmann et al. 2007), ``phi = (1 + sqrt(5)) / 2``.
GOLDEN_ANGLE = math.pi * 2.0 / (1.0 + math.sqrt(5.0))

_JIT = {"nogil": True, "cache": True, "error_model": "numpy"}
_BELOW_PI = math.nextafter(math.pi, 0.0)


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _positive(value: float, name: str) -> float:
    if not (isinstance(value, int | float | np.number) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def _wrap(k: np.ndarray) -> np.ndarray:
    """Clip rounding excursions so every coordinate lies in ``[-pi, pi)``."""
    return np.clip(k, -math.pi, _BELOW_PI)


def radial(n_spokes: int, n_readout: int, *, golden: bool = True) -> np.ndarray:
    """2D radial trajectory: full-diameter spokes through the k-space centre.

    Spoke ``i`` has angle ``theta_i = i * GOLDEN_ANGLE`` (111.246... degrees increments,
    taken modulo 180 degrees) when ``golden``, else ``theta_i = i * pi / n_spokes`` (uniform
    over 180 degrees). Along a spoke the signed radius is
    ``r_j = -pi + 2 pi j / n_readout`` for ``j = 0 .. n_readout - 1`` (``[-pi, pi)``; the
    sample ``j = n_readout // 2`` is the centre for even ``n_readout``), and the sample is
    ``(ky, kx) = (r_j sin theta_i, r_j cos theta_i)`` (angle measured from the ``kx`` axis).

    Parameters
    ----------
    n_spokes : int
        Number of spokes (Nyquist for an ``n x n`` image: about ``pi / 2 * n``).
    n_readout : int
        Samples per spoke; ``n_readout = n`` samples the readout at the image's Nyquist
        rate, ``2 n`` with 2x readout oversampling.
    golden : bool
        Golden-angle (default) or uniform angular ordering.

    Returns
    -------
    ndarray of shape (n_spokes, n_readout, 2), float64
        ``[..., 0] = ky``, ``[..., 1] = kx`` in radians per sample, in ``[-pi, pi)``.

    Examples
    --------
    >>> k = radial(3, 8, golden=False)
    >>> k.shape, k[0, 4].tolist(), round(float(k[0, 0, 1]), 6)
    ((3, 8, 2), [0.0, 0.0], -3.141593)
    """
    n_spokes = _positive_int(n_spokes, "n_spokes")
    n_readout = _positive_int(n_readout, "n_readout")
    i = np.arange(n_spokes, dtype=np.float64)
    theta = np.mod(i * GOLDEN_ANGLE, math.pi) if golden else i * math.pi / n_spokes
    r = -math.pi + 2.0 * math.pi * np.arange(n_readout, dtype=np.float64) / n_readout
    ky = r[None, :] * np.sin(theta)[:, None]
    kx = r[None, :] * np.cos(theta)[:, None]
    k = _wrap(np.stack([ky, kx], axis=-1))
    return k


def spiral(
    n_interleaves: int,
    n_samples: int,
    *,
    fov: float,
    resolution: float,
    alpha: float = 1.0,
    n_turns: float | None = None,
) -> np.ndarray:
    """2D Archimedean spiral interleaves, constant (``alpha = 1``) or variable density.

    Interleaf ``l`` is ``k(tau) = pi * tau**alpha * exp(i (2 pi n_turns tau + 2 pi l / L))``
    (``kx`` the real part, ``ky`` the imaginary part) for ``tau = j / n_samples``,
    ``j = 0 .. n_samples - 1``: the radius grows from the centre to ``pi`` (the Nyquist
    frequency of a ``fov / resolution`` pixel grid). ``alpha > 1`` packs the turns more
    densely in the centre (variable density, Kim et al. 2003); samples are uniform in
    ``tau``, not a gradient-limited time parametrisation.

    Parameters
    ----------
    n_interleaves : int
        Number of interleaves ``L``, rotated by ``2 pi / L`` from each other.
    n_samples : int
        Samples per interleaf.
    fov : float
        Field of view (mm, or any length unit shared with ``resolution``).
    resolution : float
        Pixel size (same unit). The image grid is ``n = fov / resolution`` pixels wide, and
        the coordinates are radians per sample of that grid.
    alpha : float
        Density exponent (>= 1; 1 = constant density).
    n_turns : float, optional
        Turns per interleaf. Default: Nyquist at the edge,
        ``alpha * n / (2 L)`` (the radial spacing between neighbouring arms at
        ``|k| = pi`` is then ``2 pi / n`` rad/sample, i.e. ``1 / fov``).

    Returns
    -------
    ndarray of shape (n_interleaves, n_samples, 2), float64
        ``[..., 0] = ky``, ``[..., 1] = kx``, radians per sample, in ``[-pi, pi)``.

    Examples
    --------
    >>> k = spiral(4, 100, fov=240.0, resolution=7.5)
    >>> k.shape, k[0, 0].tolist(), bool(np.abs(k).max() < np.pi)
    ((4, 100, 2), [0.0, 0.0], True)
    """
    n_interleaves = _positive_int(n_interleaves, "n_interleaves")
    n_samples = _positive_int(n_samples, "n_samples")
    fov = _positive(fov, "fov")
    resolution = _positive(resolution, "resolution")
    if resolution > fov:
        raise ValueError(f"resolution ({resolution}) must not exceed fov ({fov})")
    alpha = _positive(alpha, "alpha")
    if alpha < 1.0:
        raise ValueError(f"alpha: expected >= 1 (1 = constant density), got {alpha!r}")
    n = fov / resolution
    turns = alpha * n / (2.0 * n_interleaves) if n_turns is None else _positive(n_turns, "n_turns")
    tau = np.arange(n_samples, dtype=np.float64) / n_samples
    radius = math.pi * tau**alpha
    phase = (
        2.0 * math.pi * turns * tau[None, :]
        + 2.0 * math.pi * np.arange(n_interleaves)[:, None] / n_interleaves
    )
    k = np.stack([radius * np.sin(phase), radius * np.cos(phase)], axis=-1)
    return _wrap(k)


# ---------------------------------------------------------------------------- Poisson disc
@nb.njit(**_JIT)
def _dart_throw(
    order: np.ndarray, radius: np.ndarray, accepted: np.ndarray
) -> int:  # pragma: no cover - numba
    """Visit grid points in ``order``; accept one if no accepted point is closer than its radius."""
    ny, nx = accepted.shape
    count = 0
    for idx in order:
        i = idx // nx
        j = idx % nx
        if accepted[i, j]:
            continue
        r = radius[i, j]
        r2 = r * r
        w = math.ceil(r)
        ok = True
        for a in range(max(i - w, 0), min(i + w + 1, ny)):
            da2 = (a - i) * (a - i)
            if da2 >= r2:
                continue
            for b in range(max(j - w, 0), min(j + w + 1, nx)):
                if accepted[a, b] and da2 + (b - j) * (b - j) < r2:
                    ok = False
                    break
            if not ok:
                break
        if ok:
            accepted[i, j] = True
            count += 1
    return count


def poisson_disc_mask(
    shape: Sequence[int],
    acceleration: float,
    *,
    calib: Sequence[int] = (24, 24),
    seed: int = 0,
    radius_ratio: float = 2.0,
) -> np.ndarray:
    """Variable-density Poisson-disc sampling mask for two Cartesian phase-encode axes.

    Grid points are visited in a seeded random order and a point is kept when no kept
    point lies closer than ``r(p) = r0 * (1 + (radius_ratio - 1) * rho(p))`` pixels, with
    ``rho`` the normalised distance from the k-space centre (1 at the middle of each
    edge). The calibration region is fully sampled beforehand. ``r0`` is found by bisection
    as the largest radius that keeps at least ``mask.size / acceleration`` points; the few
    surplus points (distances on the grid are discrete, so the count jumps with ``r0``) are
    then dropped at random outside the calibration block, which keeps the minimum
    distances. ``mask.sum()`` is ``round(mask.size / acceleration)``.

    Parameters
    ----------
    shape : pair of int
        ``(n_ky, n_kz)``: the phase-encode plane of a 3D acquisition (the readout axis is
        always fully sampled; broadcast the mask along it), or ``(ky, kx)`` of a 2D
        compressed-sensing experiment.
    acceleration : float
        Target ``total points / sampled points`` (>= 1), calibration region included.
    calib : pair of int
        Size of the fully sampled centred calibration block (``(0, 0)`` for none); the block
        covers indices ``n // 2 - c // 2 <= i < n // 2 - c // 2 + c`` on each axis.
    seed : int
        Seed of the random visiting order (the mask is deterministic for a given seed).
    radius_ratio : float
        Ratio (>= 1) of the disc radius at the edge to that at the centre; 1 gives uniform
        Poisson-disc sampling, larger values a denser centre.

    Returns
    -------
    ndarray of shape ``shape``, bool
        True where a k-space point is sampled; DC at ``(n_ky // 2, n_kz // 2)``.

    Raises
    ------
    ShapeError
        ``shape`` or ``calib`` is not a pair of sizes, or ``calib`` exceeds ``shape``.
    ValueError
        ``acceleration`` < 1, or the calibration block alone exceeds ``1 / acceleration``
        of the points.

    Examples
    --------
    >>> m = poisson_disc_mask((64, 48), 4.0, calib=(12, 12), seed=1)
    >>> m.shape, bool(m[26:38, 18:30].all()), round(float(m.size / m.sum()), 1)
    ((64, 48), True, 4.0)
    """
    shp = tuple(int(n) for n in shape)
    cal = tuple(int(c) for c in calib)
    if len(shp) != 2 or any(n < 1 for n in shp):
        raise ShapeError(f"shape: expected two positive sizes, got {tuple(shape)}")
    if (
        len(cal) != 2
        or any(c < 0 for c in cal)
        or any(c > n for c, n in zip(cal, shp, strict=True))
    ):
        raise ShapeError(f"calib: expected two sizes within shape {shp}, got {tuple(calib)}")
    if not (math.isfinite(acceleration) and acceleration >= 1.0):
        raise ValueError(f"acceleration: expected a number >= 1, got {acceleration!r}")
    if not (math.isfinite(radius_ratio) and radius_ratio >= 1.0):
        raise ValueError(f"radius_ratio: expected a number >= 1, got {radius_ratio!r}")
    total = shp[0] * shp[1]
    target = total / float(acceleration)
    calib_mask = np.zeros(shp, dtype=np.bool_)
    sl = tuple(slice(n // 2 - c // 2, n // 2 - c // 2 + c) for n, c in zip(shp, cal, strict=True))
    calib_mask[sl] = True
    n_calib = int(calib_mask.sum())
    if n_calib > target:
        raise ValueError(
            f"acceleration {acceleration}: the calibration block {cal} alone samples "
            f"{n_calib} of {total} points (acceleration {total / max(n_calib, 1):.3g})"
        )
    order = np.random.default_rng(seed).permutation(total).astype(np.int64)
    iy = (np.arange(shp[0]) - shp[0] // 2) / max(shp[0] / 2.0, 1.0)
    ix = (np.arange(shp[1]) - shp[1] // 2) / max(shp[1] / 2.0, 1.0)
    rho = np.sqrt(iy[:, None] ** 2 + ix[None, :] ** 2)
    profile = 1.0 + (radius_ratio - 1.0) * rho

    def trial(r0: float) -> tuple[int, np.ndarray]:
        acc = calib_mask.copy()
        return n_calib + int(_dart_throw(order, r0 * profile, acc)), acc

    # bracket r0: lo keeps at least the target number of points, hi keeps fewer
    lo, hi = 0.5, 2.0 * math.sqrt(acceleration)
    n_lo, m_lo = trial(lo)  # r0 < 1 keeps every point
    n_hi, _ = trial(hi)
    while n_hi >= target and hi < 4.0 * max(shp):
        lo, hi = hi, 2.0 * hi
        n_hi, _ = trial(hi)
    n_lo, m_lo = trial(lo)
    for _ in range(40):
        if n_lo - target <= 0.002 * target or hi - lo < 1e-6:
            break
        mid = 0.5 * (lo + hi)
        n_mid, m_mid = trial(mid)
        if n_mid >= target:
            lo, n_lo, m_lo = mid, n_mid, m_mid
        else:
            hi = mid
    # integer distances make the count a step function of r0: drop the few surplus samples
    # at random (outside the calibration block), which keeps every pairwise distance
    excess = n_lo - max(round(target), n_calib)
    if excess > 0:
        free = np.flatnonzero(m_lo & ~calib_mask)
        rng = np.random.default_rng([seed, 1])
        m_lo.flat[rng.choice(free, size=excess, replace=False)] = False
    return m_lo


# ------------------------------------------------------------------- density compensation
def _shape2(shape: Sequence[int], k: np.ndarray) -> tuple[int, ...]:
    shp = tuple(int(n) for n in shape)
    if len(shp) != k.shape[-1] or any(n < 1 for n in shp):
        raise ShapeError(
            f"shape: expected {k.shape[-1]} positive sizes (one per coordinate column), got {shp}"
        )
    return shp


def pipe_dcf(
    coords: npt.ArrayLike, shape: Sequence[int], *, n_iter: int = 30, eps: float = 1e-6
) -> np.ndarray:
    """Iterative density compensation (Pipe & Menon 1999) computed with the NUFFT.

    The fixed point ``w <- w / (C w)`` is iterated from ``w = 1``, where ``(C w)_j =
    sum_i w_i K(k_j - k_i)`` convolves the weights with a non-negative kernel ``K`` of
    width about one Nyquist step ``2 pi / n``: ``K`` is the product over axes of Fejér
    kernels, applied as "grid" (type-1 NUFFT onto a 2x image grid), multiplication by a
    triangular window of half-width ``n`` pixels, and "interpolate" (type-2 NUFFT). At the
    fixed point ``sum_i w_i K(k - k_i) = 1`` on the samples, i.e. ``w_i`` is the k-space
    area around sample ``i``. The result is scaled to ``area * N / (2 pi)^d`` (``N`` =
    ``prod(shape)``), so that fully sampled Cartesian points get weight 1 and the gridding
    reconstruction ``A^H (w * A x)`` of a smooth image keeps its scale.

    Parameters
    ----------
    coords : array_like of shape (*traj, d)
        Coordinates in radians per sample (see the module docstring).
    shape : tuple of int
        The image shape (``d`` sizes) the weights are meant for.
    n_iter : int
        Number of fixed-point iterations (>= 1; 20-50 is usual).
    eps : float
        NUFFT accuracy.

    Returns
    -------
    ndarray of shape traj, float64
        Non-negative weights.

    Examples
    --------
    >>> k = 2 * np.pi * (np.arange(16) - 8) / 16
    >>> cart = np.stack(np.meshgrid(k, k, indexing="ij"), axis=-1)
    >>> w = pipe_dcf(cart, (16, 16))
    >>> w.shape, round(float(w.mean()), 3)
    ((16, 16), 1.0)
    """
    k = check_coords(coords)
    shp = _shape2(shape, k)
    n_iter = _positive_int(n_iter, "n_iter")
    big = tuple(2 * n for n in shp)
    op = NufftOperator(k, big, eps=eps, dtype=np.complex128)
    window = np.ones(big)
    for axis, n in enumerate(shp):
        tri = np.clip(1.0 - np.abs(np.arange(2 * n) - n) / n, 0.0, None)
        window = window * tri.reshape([-1 if a == axis else 1 for a in range(len(shp))])
    w = np.ones(op.n_samples)
    for _ in range(n_iter):
        cw = op._type2(op._type1(w.astype(np.complex128)) * window).real
        w = w / np.maximum(cw, 1e-12 * float(cw.max()))
    # op scales each transform by 1/sqrt(prod(big)): at the fixed point
    # sum_i w_i K(k_j - k_i) / prod(big) = 1, with integral of K over [-pi, pi)^d = (2 pi)^d,
    # so w = prod(big) * area / (2 pi)^d; the convention wants prod(shape) * area / (2 pi)^d.
    w *= math.prod(shp) / math.prod(big)
    return w.reshape(k.shape[:-1])


def ramp_dcf(coords: npt.ArrayLike, shape: Sequence[int]) -> np.ndarray:
    """Analytic density compensation of full-diameter radial spokes (``|k|`` ramp).

    For ``S`` spokes covering 180 degrees (as :func:`radial` gives) with readout spacing
    ``dr`` (radians per sample, measured from the coordinates), each sample at radius
    ``|k|`` owns the area ``pi |k| dr / S``; the centre sample owns ``pi dr^2 / (4 S)``.
    The weights are those areas times ``N / (2 pi)^2`` (``N = ny * nx``), the normalisation
    of :func:`pipe_dcf`.

    Parameters
    ----------
    coords : array_like of shape (n_spokes, n_readout, 2)
        Radial coordinates (spokes along axis 0, readout along axis 1).
    shape : pair of int
        Image shape ``(ny, nx)``.

    Returns
    -------
    ndarray of shape (n_spokes, n_readout), float64

    Examples
    --------
    >>> w = ramp_dcf(radial(100, 64), (64, 64))
    >>> w.shape, round(float(w[0, 32] / w[0, 48]), 4)
    ((100, 64), 0.0156)
    """
    k = check_coords(coords, 2)
    shp = _shape2(shape, k)
    if k.ndim != 3 or k.shape[1] < 2:
        raise ShapeError(
            f"coords: expected radial coordinates (n_spokes, n_readout >= 2, 2), "
            f"got {tuple(k.shape)}"
        )
    n_spokes = k.shape[0]
    dr = float(np.median(np.linalg.norm(np.diff(k, axis=1), axis=-1)))
    r = np.linalg.norm(k, axis=-1)
    area = math.pi * dr * np.maximum(r, dr / 4.0) / n_spokes
    return area * (math.prod(shp) / (2.0 * math.pi) ** 2)
