"""Full-reference image-quality metrics: PSNR, SSIM, RMSE, NRMSE, and ROI statistics.

Every metric takes two arrays of the same shape, ``image`` (the one judged) and ``reference``
(the ground truth), as numpy arrays or CPU torch tensors, and computes in float64. Integer
inputs (stored DICOM values, 8-bit images) are accepted and converted; boolean, complex and
non-numeric arrays are refused with :class:`~medrecon.errors.DtypeError`, NaN and infinity with
:class:`~medrecon.errors.NonFiniteError`.

An optional boolean ``mask`` of the same shape restricts the average to the voxels where it is
True (for example the body outline of a CT slice, so that the air around the patient does not
inflate the score). Metrics are in the units of the images: HU in, HU out. ``data_range``, the
span of values the image format can take (2000 for HU clipped to ``[-1000, 1000]``, 255 for
8-bit images), fixes the scale of PSNR and SSIM; it is never inferred from the data, because
inferring it makes scores depend on the image content.

Definitions (``e = image - reference``, means over the mask or over all voxels):

* ``rmse = sqrt(mean(e^2))``;
* ``nrmse = rmse / N`` with ``N = sqrt(mean(reference^2))`` (``"euclidean"``),
  ``max(reference) - min(reference)`` (``"min-max"``) or ``mean(reference)`` (``"mean"``);
* ``psnr = 10 log10(data_range^2 / mean(e^2))`` in dB, infinite for identical images;
* ``ssim``: the structural similarity of Wang, Bovik, Sheikh & Simoncelli (IEEE TIP 13(4),
  2004), see :func:`ssim_map`.

These match ``skimage.metrics`` (``peak_signal_noise_ratio``, ``normalized_root_mse``,
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``)
with one deliberate difference: scikit-image's mean SSIM leaves out a border as wide as the
window radius (5 voxels for ``sigma = 1.5``); :func:`ssim` averages over every voxel (or the
mask). Pass a mask that excludes that border to get scikit-image's number.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from enum import Enum
from typing import Any, TypedDict

import numpy as np
from scipy import ndimage

from medrecon._array import check_finite, to_numpy
from medrecon._enum import parse_enum
from medrecon.errors import DtypeError, NonFiniteError, ShapeError

__all__ = [
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_TRUNCATE",
    "Normalization",
    "RoiStats",
    "nrmse",
    "psnr",
    "rmse",
    "roi_stats",
    "ssim",
    "ssim_map",
]

#: SSIM stabilising constants of Wang et al. (2004): ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2``
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: the Gaussian window is cut at this many standard deviations: an 11-tap window for
#: ``sigma = 1.5``, the window of Wang et al. (2004) (scikit-image uses the same)
SSIM_TRUNCATE = 3.5


class Normalization(Enum):
    """The normalisation of :func:`nrmse` (names as in ``skimage.metrics``)."""

    EUCLIDEAN = "euclidean"
    MIN_MAX = "min-max"
    MEAN = "mean"


class RoiStats(TypedDict):
    """Statistics of an image inside a region, as returned by :func:`roi_stats`."""

    mean: float
    std: float
    n: int


# --------------------------------------------------------------------------- validation


def _as_float64(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy array or CPU tensor) as a finite, non-empty float64 array."""
    arr = to_numpy(x)
    if arr.dtype.kind not in "iuf":
        raise DtypeError(
            f"{name}: expected real numbers (a float or integer dtype), got dtype {arr.dtype}"
        )
    if arr.size == 0:
        raise ShapeError(f"{name}: expected a non-empty array, got shape {arr.shape}")
    out = arr.astype(np.float64, copy=False)
    check_finite(out, name)
    return out


def _pair(image: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as float64 arrays of one shape."""
    x = _as_float64(image, "image")
    r = _as_float64(reference, "reference")
    if x.shape != r.shape:
        raise ShapeError(
            f"image and reference: expected the same shape, got {x.shape} and {r.shape}"
        )
    return x, r


def _check_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask of ``shape`` with at least one True voxel."""
    name = "mask"
    if mask is None:
        raise TypeError(f"{name}: expected a boolean array, got None")
    m = to_numpy(mask)
    if m.dtype != np.bool_:
        raise DtypeError(
            f"{name}: expected a boolean array, got dtype {m.dtype}; "
            "compare explicitly, e.g. labels == 1"
        )
    if m.shape != shape:
        raise ShapeError(f"{name}: expected the image shape {shape}, got {m.shape}")
    if not m.any():
        raise ValueError(f"{name}: expected at least one True voxel, got an empty mask")
    return m


def _mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """:func:`_check_mask`, or None for no mask."""
    return None if mask is None else _check_mask(mask, shape)


def _data_range(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"data_range: expected a positive number, got {value!r}")
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        raise NonFiniteError(f"data_range: expected a finite positive number, got {v}")
    if v <= 0.0:
        raise ValueError(f"data_range: expected a positive number, got {v}")
    return v


def _sigma(value: Any, ndim: int) -> tuple[float, ...]:
    """Per-axis standard deviations (voxels) of the SSIM window, each finite and > 0."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        values: Sequence[Any] = (value,) * ndim
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = value
    else:
        raise TypeError(f"sigma: expected a number or one number per axis, got {value!r}")
    if len(values) != ndim:
        raise ValueError(f"sigma: expected one value per axis ({ndim}), got {len(values)}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"sigma: expected numbers, got {v!r}")
        f = float(v)
        if not (math.isfinite(f) and f > 0.0):
            raise ValueError(f"sigma: expected finite values > 0 (voxels), got {f}")
        out.append(f)
    return tuple(out)


def _parse_normalization(value: Any) -> Normalization:
    return parse_enum(Normalization, value, "normalization")


def _mean(a: np.ndarray, mask: np.ndarray | None) -> float:
    return float(np.mean(a if mask is None else a[mask]))


def _mse(x: np.ndarray, r: np.ndarray, mask: np.ndarray | None) -> float:
    d = x - r
    return _mean(d * d, mask)


# --------------------------------------------------------------------------- metrics


def rmse(image: Any, reference: Any, *, mask: Any = None) -> float:
    """Root-mean-square error ``sqrt(mean((image - reference)^2))``.

    Parameters
    ----------
    image, reference : ndarray or torch.Tensor
        Arrays of one shape, real numbers (float or integer dtypes), finite.
    mask : ndarray or torch.Tensor of bool, optional
        Average only where True (same shape, at least one True voxel).

    Returns
    -------
    float
        In the units of the images.

    Examples
    --------
    >>> rmse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))  # sqrt(4 / 3)
    1.1547005383792515
    """
    x, r = _pair(image, reference)
    return math.sqrt(_mse(x, r, _mask(mask, x.shape)))


def nrmse(
    image: Any,
    reference: Any,
    *,
    normalization: Normalization | str = Normalization.EUCLIDEAN,
    mask: Any = None,
) -> float:
    """Normalised root-mean-square error, :func:`rmse` divided by a scale of the reference.

    Parameters
    ----------
    image, reference : ndarray or torch.Tensor
        Arrays of one shape, finite real numbers.
    normalization : {"euclidean", "min-max", "mean"} or Normalization, optional
        The scale: ``sqrt(mean(reference^2))`` (``rmse / rms(reference)``, the relative L2
        error), ``max(reference) - min(reference)``, or ``mean(reference)``; all over the
        mask when one is given.
    mask : ndarray or torch.Tensor of bool, optional
        Average only where True.

    Returns
    -------
    float
        Dimensionless.

    Raises
    ------
    ValueError
        The scale is 0 (for example a constant reference with ``"min-max"``) or, for
        ``"mean"``, not positive; an unknown ``normalization``.

    Examples
    --------
    >>> ref = np.array([3.0, 4.0])
    >>> round(nrmse(ref + np.array([0.3, -0.4]), ref), 12)  # relative L2 error 0.5 / 5
    0.1
    """
    kind = _parse_normalization(normalization)
    x, r = _pair(image, reference)
    m = _mask(mask, x.shape)
    rr = r if m is None else r[m]
    if kind is Normalization.EUCLIDEAN:
        scale = math.sqrt(float(np.mean(rr * rr)))
    elif kind is Normalization.MIN_MAX:
        scale = float(rr.max() - rr.min())
    else:
        scale = float(np.mean(rr))
    if not scale > 0.0:
        raise ValueError(
            f"nrmse: expected a positive {kind.value!r} scale of the reference, got {scale}"
        )
    return math.sqrt(_mse(x, r, m)) / scale


def psnr(image: Any, reference: Any, *, data_range: float, mask: Any = None) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / mse)`` in dB.

    Parameters
    ----------
    image, reference : ndarray or torch.Tensor
        Arrays of one shape, finite real numbers.
    data_range : float
        Span of the values the images can take (> 0), for example 2000 for HU clipped to
        ``[-1000, 1000]``. Values outside it are not clipped here.
    mask : ndarray or torch.Tensor of bool, optional
        Mean squared error only where True.

    Returns
    -------
    float
        dB; ``inf`` when the images agree exactly (on the mask).

    Examples
    --------
    >>> ref = np.zeros((4, 4))
    >>> round(psnr(ref + 1.0, ref, data_range=100.0), 6)  # 10 log10(100^2 / 1)
    40.0
    >>> psnr(ref, ref, data_range=1.0)
    inf
    """
    dr = _data_range(data_range)
    x, r = _pair(image, reference)
    mse = _mse(x, r, _mask(mask, x.shape))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(dr * dr / mse)


def ssim_map(
    image: Any,
    reference: Any,
    *,
    data_range: float,
    sigma: float | Sequence[float] = 1.5,
) -> np.ndarray:
    """Local structural similarity of two 2D or 3D images (Wang et al. 2004).

    At every voxel, with Gaussian-weighted local means ``mu_x``, ``mu_r``, variances
    ``s_x^2``, ``s_r^2`` and covariance ``s_xr`` (population moments)::

        SSIM = (2 mu_x mu_r + C1) (2 s_xr + C2) / ((mu_x^2 + mu_r^2 + C1) (s_x^2 + s_r^2 + C2))

    with ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2``, ``K1 = 0.01``, ``K2 = 0.03`` and ``L`` the data
    range. The window is a Gaussian of standard deviation ``sigma`` voxels cut at
    :data:`SSIM_TRUNCATE` standard deviations (11 taps for 1.5) and normalised;
    :func:`scipy.ndimage.gaussian_filter` computes it, reflecting the image at its borders
    (``mode="reflect"``: ``d c b a | a b c d``), as scikit-image does.

    Parameters
    ----------
    image, reference : ndarray or torch.Tensor of shape (ny, nx) or (nz, ny, nx)
        Images of one shape, finite real numbers.
    data_range : float
        ``L``, the span of values the images can take (> 0).
    sigma : float or sequence of float, optional
        Window standard deviation in voxels, one for every axis or one per axis (for
        anisotropic voxels). Default 1.5, as in Wang et al.

    Returns
    -------
    ndarray of shape image.shape, float64
        Local SSIM, at most 1 (equal to 1 where the images agree exactly).

    Examples
    --------
    >>> ref = np.arange(64.0).reshape(8, 8)
    >>> bool(np.allclose(ssim_map(ref, ref, data_range=63.0), 1.0))
    True
    """
    dr = _data_range(data_range)
    x, r = _pair(image, reference)
    if x.ndim not in (2, 3):
        raise ShapeError(
            f"image: expected a 2D (ny, nx) or 3D (nz, ny, nx) array, got shape {x.shape}"
        )
    s = _sigma(sigma, x.ndim)

    def smooth(a: np.ndarray) -> np.ndarray:
        return np.asarray(ndimage.gaussian_filter(a, s, mode="reflect", truncate=SSIM_TRUNCATE))

    mu_x, mu_r = smooth(x), smooth(r)
    var_x = smooth(x * x) - mu_x * mu_x
    var_r = smooth(r * r) - mu_r * mu_r
    cov = smooth(x * r) - mu_x * mu_r
    c1 = (SSIM_K1 * dr) ** 2
    c2 = (SSIM_K2 * dr) ** 2
    num = (2.0 * mu_x * mu_r + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_r * mu_r + c1) * (var_x + var_r + c2)
    return num / den


def ssim(
    image: Any,
    reference: Any,
    *,
    data_range: float,
    mask: Any = None,
    sigma: float | Sequence[float] = 1.5,
) -> float:
    """Mean structural similarity (Wang et al. 2004) over the image or a mask.

    The mean of :func:`ssim_map` over every voxel, or over the voxels where ``mask`` is True.
    The local windows still see the voxels outside the mask (the map is computed on the whole
    image first). Unlike ``skimage.metrics.structural_similarity``, no border is left out;
    its value is ``ssim(..., mask=interior)`` with ``interior`` False within ``r`` voxels of
    the edges, ``r = int(3.5 * sigma + 0.5)`` (5 for ``sigma = 1.5``).

    Parameters
    ----------
    image, reference : ndarray or torch.Tensor of shape (ny, nx) or (nz, ny, nx)
        Images of one shape, finite real numbers.
    data_range : float
        Span of values the images can take (> 0), e.g. 2000 for HU clipped to
        ``[-1000, 1000]``.
    mask : ndarray or torch.Tensor of bool, optional
        Average only where True (same shape, at least one True voxel).
    sigma : float or sequence of float, optional
        Gaussian window standard deviation in voxels (see :func:`ssim_map`).

    Returns
    -------
    float
        At most 1; 1 for identical images.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.random((32, 32))
    >>> ssim(ref, ref, data_range=1.0)
    1.0
    >>> round(ssim(ref + 0.3 * rng.standard_normal((32, 32)), ref, data_range=1.0), 3)
    0.629
    """
    s = ssim_map(image, reference, data_range=data_range, sigma=sigma)
    return _mean(s, _mask(mask, s.shape))


def roi_stats(image: Any, mask: Any, *, ddof: int = 1) -> RoiStats:
    """Mean, standard deviation and voxel count of an image inside a region.

    In a uniform region of a reconstruction of a known phantom, ``mean`` minus the true value
    is the bias and ``std`` the noise (both in the units of the image, e.g. HU).

    Parameters
    ----------
    image : ndarray or torch.Tensor
        Finite real numbers, any shape.
    mask : ndarray or torch.Tensor of bool
        The region (same shape), with more than ``ddof`` True voxels.
    ddof : int, optional
        Delta degrees of freedom of the standard deviation: 1 (default) for the sample
        standard deviation, 0 for the population one.

    Returns
    -------
    RoiStats
        ``{"mean": float, "std": float, "n": int}``.

    Examples
    --------
    >>> img = np.array([[1.0, 3.0], [5.0, 100.0]])
    >>> roi_stats(img, img < 10)
    {'mean': 3.0, 'std': 2.0, 'n': 3}
    """
    x = _as_float64(image, "image")
    m = _check_mask(mask, x.shape)
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Integral) or ddof < 0:
        raise ValueError(f"ddof: expected an integer >= 0, got {ddof!r}")
    values = x[m]
    n = int(values.size)
    if n <= ddof:
        raise ValueError(f"mask: expected more than ddof = {ddof} True voxels, got {n}")
    return {"mean": float(values.mean()), "std": float(values.std(ddof=int(ddof))), "n": n}
