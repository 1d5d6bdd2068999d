"""Ramp filters for filtered backprojection, built in the frequency domain.

The ramp is the discrete one of Kak & Slaney (*Principles of Computerized
Tomographic Imaging*, eq. 3.61): the band-limited ramp sampled in space at the
detector pitch ``tau``,

* ``h[0] = 1 / (4 tau^2)``,
* ``h[k] = -1 / (pi k tau)^2`` for odd ``k``,
* ``h[k] = 0`` for even ``k != 0``,

and transformed with the FFT. Unlike a ramp ``|f|`` sampled in frequency, its
response at zero frequency is not forced to zero, so a constant offset of the
reconstruction (the "DC error" of a naive ramp) does not appear. Projections
are zero padded to the next power of two that is at least ``2 n`` so the
circular convolution equals the linear one (no wrap-around). The kernel is
kept at the lags a convolution of ``n`` samples uses, ``|k| <= n - 1``.

For equiangular (arc) fan detectors the kernel is the modified ramp
``(gamma / sin gamma)^2 h(gamma)`` sampled at the angular pitch, ``gamma = k
tau`` (Kak & Slaney eq. 3.101).

A window, scaled so that it reaches zero at ``cutoff`` times the Nyquist
frequency, multiplies the response; frequencies above the cutoff are removed.
"""

from __future__ import annotations

import enum
import numbers
from typing import Any

import numpy as np

from medrecon._enum import parse_enum

__all__ = [
    "Filter",
    "apply_filter",
    "check_cutoff",
    "check_oversample",
    "filter_response",
    "padded_length",
    "parse_filter",
    "ramp_kernel",
]


class Filter(enum.StrEnum):
    """Apodisation window of the ramp filter.

    With ``x = f / (cutoff * f_Nyquist)`` in ``[0, 1]`` (zero above):
    ``RAM_LAK`` 1, ``SHEPP_LOGAN`` ``sinc(x / 2) = sin(pi x / 2) / (pi x / 2)``,
    ``COSINE`` ``cos(pi x / 2)``, ``HAMMING`` ``0.54 + 0.46 cos(pi x)``,
    ``HANN`` ``0.5 + 0.5 cos(pi x)``.
    """

    RAM_LAK = "ram-lak"
    SHEPP_LOGAN = "shepp-logan"
    COSINE = "cosine"
    HAMMING = "hamming"
    HANN = "hann"


def parse_filter(value: Any) -> Filter:
    """Return ``value`` as a :class:`Filter` (names are case-insensitive).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the options.

    Examples
    --------
    >>> parse_filter("Hann") is Filter.HANN
    True
    """
    return parse_enum(Filter, value, "filter")


def check_cutoff(cutoff: Any) -> float:
    """Return ``cutoff`` as a float in ``(0, 1]`` (a fraction of the Nyquist frequency).

    Raises
    ------
    TypeError
        If ``cutoff`` is not a real number.
    ValueError
        If it is not in ``(0, 1]``.

    Examples
    --------
    >>> check_cutoff(0.5)
    0.5
    """
    if isinstance(cutoff, bool | np.bool_) or not isinstance(cutoff, numbers.Real):
        raise TypeError(f"cutoff: expected a number in (0, 1], got {cutoff!r}")
    out = float(cutoff)
    if not 0.0 < out <= 1.0:  # also refuses NaN
        raise ValueError(f"cutoff: expected a number in (0, 1] (fraction of Nyquist), got {out}")
    return out


def padded_length(n: int) -> int:
    """FFT length used to filter ``n`` samples: the next power of two ``>= 2 n``.

    Examples
    --------
    >>> padded_length(256), padded_length(300)
    (512, 1024)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")
    return 1 << (2 * int(n) - 1).bit_length()


def ramp_kernel(n: int, spacing: float, *, equiangular: bool = False) -> np.ndarray:
    """Spatial ramp kernel ``tau * h[k]`` in FFT (wrap-around) order.

    Parameters
    ----------
    n : int
        Number of detector samples to be filtered.
    spacing : float
        Sample pitch ``tau``: mm for flat detectors, radians for an
        equiangular detector.
    equiangular : bool
        Multiply by ``(gamma / sin gamma)^2`` with ``gamma = k tau`` (arc
        detectors).

    Returns
    -------
    ndarray of shape (padded_length(n),)
        Kernel in units of 1/spacing. Convolving samples with it
        (``sum_j p[j] kernel[k - j]``) approximates the ramp-filtered
        projection ``integral p(s) h(t - s) ds``.

    Examples
    --------
    >>> k = ramp_kernel(4, 0.5)
    >>> k.shape
    (8,)
    >>> print(f"{k[0]:.3f} {k[1]:.4f} {k[2]:.1f}")
    0.500 -0.2026 0.0
    """
    tau = float(spacing)
    if not np.isfinite(tau) or tau <= 0.0:
        raise ValueError(f"spacing: expected a finite number > 0, got {spacing!r}")
    n_pad = padded_length(n)
    lag = np.arange(n_pad)
    lag = np.where(lag <= n_pad // 2, lag, lag - n_pad)
    kernel = np.zeros(n_pad)
    kernel[0] = 0.25 / tau
    odd = (lag % 2 != 0) & (np.abs(lag) <= n - 1)
    kernel[odd] = -1.0 / (np.pi**2 * lag[odd] ** 2 * tau)
    if equiangular:
        gamma = lag[odd] * tau
        if np.max(np.abs(gamma), initial=0.0) >= np.pi:
            raise ValueError(
                f"spacing: an equiangular detector of {n} elements at {tau} rad spans more than "
                "pi radians"
            )
        kernel[odd] *= (gamma / np.sin(gamma)) ** 2
    return kernel


def _window(kind: Filter, x: np.ndarray) -> np.ndarray:
    """Window value at normalised frequency ``x >= 0`` (1 = cutoff); zero above 1."""
    if kind is Filter.RAM_LAK:
        w = np.ones_like(x)
    elif kind is Filter.SHEPP_LOGAN:
        w = np.sinc(x / 2.0)
    elif kind is Filter.COSINE:
        w = np.cos(0.5 * np.pi * x)
    elif kind is Filter.HAMMING:
        w = 0.54 + 0.46 * np.cos(np.pi * x)
    else:  # Filter.HANN
        w = 0.5 + 0.5 * np.cos(np.pi * x)
    return np.where(x <= 1.0, w, 0.0)


def filter_response(
    n: int,
    spacing: float,
    *,
    filter: str | Filter = Filter.RAM_LAK,
    cutoff: float = 1.0,
    equiangular: bool = False,
) -> np.ndarray:
    """Frequency response of the windowed ramp, for :func:`numpy.fft.rfft` bins.

    Parameters
    ----------
    n : int
        Number of detector samples to be filtered.
    spacing : float
        Sample pitch (mm; radians when ``equiangular``).
    filter : str or Filter
        Window: ``"ram-lak"``, ``"shepp-logan"``, ``"cosine"``, ``"hamming"``
        or ``"hann"``.
    cutoff : float
        Frequency at which the window reaches zero, as a fraction of the
        Nyquist frequency, in ``(0, 1]``.
    equiangular : bool
        Modified ramp for arc detectors (see :func:`ramp_kernel`).

    Returns
    -------
    ndarray of shape (padded_length(n) // 2 + 1,)
        Real response (units 1/spacing) at frequencies ``k / (padded_length(n)
        * spacing)``, ``k = 0 .. padded_length(n) / 2``.

    Examples
    --------
    >>> r = filter_response(64, 1.0)
    >>> r.shape
    (65,)
    >>> print(f"{r[-1]:.2f}")  # about 1/(2 tau) at Nyquist
    0.50
    """
    kind = parse_filter(filter)
    cut = check_cutoff(cutoff)
    kernel = ramp_kernel(n, spacing, equiangular=equiangular)
    n_pad = kernel.size
    response = np.fft.rfft(kernel).real
    x = np.arange(response.size) * (2.0 / (n_pad * cut))
    return np.asarray(response * _window(kind, x))


def apply_filter(
    proj: np.ndarray,
    spacing: float,
    *,
    filter: str | Filter = Filter.RAM_LAK,
    cutoff: float = 1.0,
    equiangular: bool = False,
    oversample: int = 1,
) -> np.ndarray:
    """Ramp-filter projections along their last axis (the detector columns).

    Parameters
    ----------
    proj : ndarray of shape (..., n_det)
        Projections (numpy, float32 or float64).
    spacing, filter, cutoff, equiangular
        As for :func:`filter_response`.
    oversample : int
        Return the filtered projections on a grid ``oversample`` times finer,
        interpolated exactly for band-limited data (zero padding of the
        spectrum). Output sample ``m`` lies at input index ``m / oversample``;
        every ``oversample``-th output sample equals the plain result.

    Returns
    -------
    ndarray of shape (..., oversample * n_det), float64
        ``proj`` convolved with the windowed ramp, in units of
        ``proj / spacing``.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.ones((2, 32))
    >>> q = apply_filter(p, 1.0)
    >>> q.shape
    (2, 32)
    >>> print(f"{q[0, 16]:.4f}")  # a constant row filters to almost zero in the middle
    0.0063
    """
    k = check_oversample(oversample)
    arr = np.asarray(proj, dtype=np.float64)
    n = arr.shape[-1]
    response = filter_response(n, spacing, filter=filter, cutoff=cutoff, equiangular=equiangular)
    n_pad = 2 * (response.size - 1)
    spectrum = np.fft.rfft(arr, n=n_pad, axis=-1)
    spectrum *= response
    if k > 1:
        # the Nyquist bin stands for +f and -f in the short transform: split it
        spectrum[..., -1] *= 0.5
    out = np.fft.irfft(spectrum, n=k * n_pad, axis=-1)[..., : k * n]
    if k > 1:
        out *= k
    return np.ascontiguousarray(out)


def check_oversample(oversample: Any) -> int:
    """Return ``oversample`` as an int ``>= 1``.

    Raises
    ------
    TypeError
        If it is not an integer.
    ValueError
        If it is smaller than 1.

    Examples
    --------
    >>> check_oversample(2)
    2
    """
    if isinstance(oversample, bool | np.bool_) or not isinstance(oversample, numbers.Integral):
        raise TypeError(f"oversample: expected an integer >= 1, got {oversample!r}")
    if oversample < 1:
        raise ValueError(f"oversample: expected an integer >= 1, got {oversample}")
    return int(oversample)
