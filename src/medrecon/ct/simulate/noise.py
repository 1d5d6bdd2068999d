"""Transmission noise: line integrals -> Poisson (+ electronic) counts -> post-log line integrals.

A monochromatic scan with ``I0`` unattenuated photons per detector element and reading sees
``N ~ Poisson(I0 * g * exp(-p))`` photons behind a line integral ``p`` (``g`` a relative
detector gain, the flat field, 1 by default), plus zero-mean Gaussian electronic noise of
``electronic_std`` counts. The log transform ``p_hat = -log(N / (I0 g))`` turns counts back
into line integrals; to first order ``Var(p_hat) = (I0 g e^-p + sigma_e^2) / (I0 g e^-p)^2``,
i.e. ``1 / (I0 e^-p)`` without electronic noise.

Counts at or below zero (photon starvation, or electronic noise pushing a count negative) have
no logarithm; :class:`ZeroCounts` selects what happens to them.

Input and output are numpy arrays or CPU torch tensors; results come back as the same kind and
dtype as the input. Noise is not differentiable: tensors are detached.
"""

from __future__ import annotations

import enum
import numbers
from typing import Any

import numpy as np

from medrecon._array import check_dtype, check_finite, like, to_numpy
from medrecon._enum import parse_enum
from medrecon.ct.simulate._validate import check_rng, check_scalar
from medrecon.errors import ShapeError

__all__ = [
    "ZeroCounts",
    "log_transform",
    "poisson_noise",
    "transmission_counts",
]

# numpy's Poisson sampler refuses rates above about 9.2e18
_MAX_RATE = 1e18


class ZeroCounts(enum.StrEnum):
    """What :func:`log_transform` does with counts below ``count_floor``.

    ``CLIP``: raise them to ``count_floor`` (0.5 counts by default), so a starved reading
    gives ``-log(count_floor / I0)`` instead of infinity. ``RAISE``: refuse counts ``<= 0``
    with a ``ValueError`` (positive counts below the floor are kept).
    """

    CLIP = "clip"
    RAISE = "raise"


def parse_zero_counts(value: Any) -> ZeroCounts:
    """Return ``value`` as a :class:`ZeroCounts` (names are case-insensitive).

    Examples
    --------
    >>> parse_zero_counts("CLIP") is ZeroCounts.CLIP
    True
    """
    return parse_enum(ZeroCounts, value, "zero_counts")


# --------------------------------------------------------------------------- validation


def _reference(i0: float, flat_field: Any, shape: tuple[int, ...]) -> np.ndarray | float:
    """Unattenuated counts ``I0 * g``, broadcast against ``shape`` (a float without a gain)."""
    if flat_field is None:
        return i0
    raw = flat_field if isinstance(flat_field, numbers.Real) else to_numpy(flat_field)
    g = np.asarray(raw, dtype=np.float64)
    try:
        np.broadcast_shapes(g.shape, shape)
    except ValueError as exc:
        raise ShapeError(
            f"flat_field: expected a shape that broadcasts to the data shape {shape}, got {g.shape}"
        ) from exc
    if np.broadcast_shapes(g.shape, shape) != tuple(shape):
        raise ShapeError(
            f"flat_field: expected a shape that broadcasts to the data shape {shape} without "
            f"enlarging it, got {g.shape}"
        )
    check_finite(g, "flat_field")
    if np.any(g <= 0.0):
        raise ValueError(
            f"flat_field: expected relative gains > 0, got a minimum of {float(g.min())}"
        )
    return i0 * g


def _data(x: Any, name: str) -> np.ndarray:
    """A finite float32/float64 array from numpy or a CPU tensor."""
    arr = to_numpy(x)
    check_dtype(arr, name)
    check_finite(arr, name)
    return arr


# --------------------------------------------------------------------------- public API


def transmission_counts(
    sino: Any,
    *,
    i0: float,
    rng: np.random.Generator | int,
    electronic_std: float = 0.0,
    flat_field: Any = None,
) -> Any:
    """Simulate detector counts behind noise-free line integrals.

    ``N = Poisson(i0 * g * exp(-p)) + Normal(0, electronic_std^2)``, drawn independently for
    every element.

    Parameters
    ----------
    sino : ndarray or torch.Tensor, float32 or float64
        Noise-free line integrals ``p`` (dimensionless), any shape (a sinogram ``(view, det)``,
        projections ``(view, row, col)``, with batch dimensions first). Must be finite.
    i0 : float
        Unattenuated photons per detector element and reading (> 0).
    rng : numpy.random.Generator or int
        The random generator (advanced by the call), or a seed for ``np.random.default_rng``.
    electronic_std : float, optional
        Standard deviation of the additive Gaussian electronic noise, in counts (>= 0).
    flat_field : array_like or torch.Tensor, optional
        Relative gain ``g`` of each detector element (> 0), broadcast against ``sino`` (for
        example shape ``(det,)`` or ``(row, col)``); the expected unattenuated counts are
        ``i0 * g``. Default: 1 everywhere.

    Returns
    -------
    ndarray or torch.Tensor
        Counts (real numbers: electronic noise is continuous, and can make them negative),
        same shape, kind and dtype as ``sino``.

    Examples
    --------
    >>> n = transmission_counts(np.zeros((2, 3)), i0=1e4, rng=np.random.default_rng(0))
    >>> n.shape, bool(np.all(np.abs(n - 1e4) < 600))
    ((2, 3), True)
    """
    p = _data(sino, "sino")
    i0_v = check_scalar(i0, "i0", positive=True)
    sigma = check_scalar(electronic_std, "electronic_std", positive=False)
    gen = check_rng(rng)
    ref = _reference(i0_v, flat_field, p.shape)
    rate = ref * np.exp(-p.astype(np.float64))
    rate = np.broadcast_to(rate, p.shape)
    peak = float(rate.max()) if rate.size else 0.0
    if not peak <= _MAX_RATE:
        raise ValueError(
            f"expected rates i0 * exp(-p) <= {_MAX_RATE:.0e} counts, got {peak:.3g} "
            f"(min(p) = {float(p.min()):.3g}); lower i0 or check the line integrals"
        )
    counts = gen.poisson(rate).astype(np.float64)
    if sigma > 0.0:
        counts += gen.normal(0.0, sigma, size=counts.shape)
    return like(counts.astype(p.dtype, copy=False), sino)


def log_transform(
    counts: Any,
    i0: float,
    *,
    flat_field: Any = None,
    zero_counts: ZeroCounts | str = ZeroCounts.CLIP,
    count_floor: float = 0.5,
) -> Any:
    """Turn counts into line integrals: ``p_hat = -log(N / (i0 * g))``.

    Parameters
    ----------
    counts : ndarray or torch.Tensor
        Measured counts, any shape; float32/float64 (or integer counts, which give float64).
        Must be finite.
    i0 : float
        Unattenuated photons per detector element (> 0), as in :func:`transmission_counts`.
    flat_field : array_like or torch.Tensor, optional
        Relative gain ``g`` of each element (> 0), broadcast against ``counts``: an ideal,
        noise-free flat-field correction. Default: 1.
    zero_counts : {"clip", "raise"} or ZeroCounts, optional
        ``"clip"``: counts below ``count_floor`` are raised to it. ``"raise"``: counts
        ``<= 0`` raise ``ValueError``.
    count_floor : float, optional
        The floor of ``"clip"``, in counts (> 0). Default 0.5, so a starved element reads
        ``log(2 i0 g)``.

    Returns
    -------
    ndarray or torch.Tensor
        Line integrals, same shape and kind as ``counts``, same dtype (float64 for integer
        counts).

    Examples
    --------
    >>> log_transform(np.array([1e4, 1e4 * np.exp(-2.0), 0.0]), 1e4).round(4).tolist()
    [0.0, 2.0, 9.9035]
    """
    n = to_numpy(counts)
    if n.dtype.kind in "iu":
        n = n.astype(np.float64)
    check_dtype(n, "counts")
    check_finite(n, "counts")
    i0_v = check_scalar(i0, "i0", positive=True)
    mode = parse_zero_counts(zero_counts)
    floor = check_scalar(count_floor, "count_floor", positive=True)
    ref = _reference(i0_v, flat_field, n.shape)
    n64 = n.astype(np.float64)
    if mode is ZeroCounts.RAISE:
        bad = int(np.count_nonzero(n64 <= 0.0))
        if bad:
            raise ValueError(
                f"counts: expected counts > 0 with zero_counts='raise', got {bad} of {n64.size} "
                f"<= 0 (minimum {float(n64.min())}); use zero_counts='clip'"
            )
    else:
        n64 = np.maximum(n64, floor)
    out = np.log(ref) - np.log(n64)
    return like(np.asarray(out, dtype=n.dtype), counts)


def poisson_noise(
    sino: Any,
    *,
    i0: float,
    rng: np.random.Generator | int,
    electronic_std: float = 0.0,
    zero_counts: ZeroCounts | str = ZeroCounts.CLIP,
    count_floor: float = 0.5,
    flat_field: Any = None,
) -> Any:
    """Add transmission noise to noise-free line integrals; return noisy post-log data.

    :func:`transmission_counts` then :func:`log_transform` with the same ``i0`` and
    ``flat_field``: ``-log(N / (i0 g))`` with ``N ~ Poisson(i0 g e^-p) + Normal(0,
    electronic_std^2)``. To first order the result is unbiased with variance
    ``(i0 g e^-p + electronic_std^2) / (i0 g e^-p)^2``.

    Parameters
    ----------
    sino : ndarray or torch.Tensor, float32 or float64
        Noise-free line integrals (dimensionless), any shape, finite.
    i0 : float
        Unattenuated photons per detector element and reading (> 0).
    rng : numpy.random.Generator or int
        The random generator (advanced by the call), or a seed.
    electronic_std : float, optional
        Gaussian electronic noise, standard deviation in counts (>= 0).
    zero_counts : {"clip", "raise"} or ZeroCounts, optional
        Handling of counts below ``count_floor`` (see :class:`ZeroCounts`).
    count_floor : float, optional
        Floor of ``"clip"`` in counts (> 0).
    flat_field : array_like or torch.Tensor, optional
        Relative detector gain (> 0), broadcast against ``sino``.

    Returns
    -------
    ndarray or torch.Tensor
        Noisy line integrals, same shape, kind and dtype as ``sino``.

    Examples
    --------
    >>> p = np.full(100_000, 2.0)
    >>> q = poisson_noise(p, i0=1e5, rng=np.random.default_rng(1))
    >>> round(float(q.var() * 1e5 * np.exp(-2.0)), 1)  # variance ~ 1 / (i0 e^-p)
    1.0
    """
    mode = parse_zero_counts(zero_counts)
    floor = check_scalar(count_floor, "count_floor", positive=True)
    counts = transmission_counts(
        sino, i0=i0, rng=rng, electronic_std=electronic_std, flat_field=flat_field
    )
    return log_transform(counts, i0, flat_field=flat_field, zero_counts=mode, count_floor=floor)
