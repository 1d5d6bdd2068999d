"""Simulated multi-coil MR data: a tissue-labelled brain phantom, coil maps and k-space.

* :func:`brain_phantom` - a 2D axial head slice made of ellipses (the layout of the
  Shepp-Logan head) where every ellipse is a tissue with proton density, T1 and T2
  (:data:`TISSUES`), turned into a spin-echo image ``PD (1 - exp(-TR/T1)) exp(-TE/T2)``, with
  an optional smooth background phase as real MR images have;
* :func:`birdcage_maps` - smooth complex sensitivities of ``n_coils`` loops spaced around the
  field of view (Biot-Savart-like ``1/distance`` fall-off, each coil with its own phase),
  normalised so that ``sum_c |S_c|^2 = 1`` everywhere;
* :func:`simulate_kspace` - ``mask * fft2c(S * x)`` plus complex white Gaussian noise on the
  sampled entries.

Everything is seeded and deterministic. The tissue values are round numbers of the order
reported at 1.5 T (e.g. white matter T1 ~ 600-800 ms, grey matter ~ 1000 ms, CSF ~ 4000 ms);
they give realistic contrast, not a standard (for a standard MR phantom see Gach et al. 2008,
IEEE TMI 27:1735).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medrecon._array import check_finite, to_numpy
from medrecon.errors import ShapeError
from medrecon.geometry.shapes import Combine, ellipses
from medrecon.geometry.volume import VolumeGeometry
from medrecon.mr.fft import fft2c

__all__ = ["TISSUES", "Tissue", "birdcage_maps", "brain_phantom", "simulate_kspace"]


@dataclass(frozen=True)
class Tissue:
    """MR properties of a tissue: relative proton density, T1 and T2 in ms."""

    pd: float
    t1: float
    t2: float

    def spin_echo(self, tr: float, te: float) -> float:
        """Spin-echo signal ``PD (1 - exp(-TR/T1)) exp(-TE/T2)`` (TR, TE in ms)."""
        return self.pd * (1.0 - math.exp(-tr / self.t1)) * math.exp(-te / self.t2)


#: tissue properties used by :func:`brain_phantom` (round values of the order seen at 1.5 T)
TISSUES: dict[str, Tissue] = {
    "scalp": Tissue(pd=0.90, t1=260.0, t2=80.0),
    "skull": Tissue(pd=0.05, t1=300.0, t2=1.0),
    "grey_matter": Tissue(pd=0.80, t1=1000.0, t2=100.0),
    "white_matter": Tissue(pd=0.70, t1=700.0, t2=80.0),
    "csf": Tissue(pd=1.00, t1=4000.0, t2=2000.0),
    "lesion": Tissue(pd=0.85, t1=1200.0, t2=150.0),
}

# (tissue, semi_axis_y, semi_axis_x, center_y, center_x, angle_deg) in units of the half field
# of view, painted in order (later rows replace earlier ones). The outline follows the
# Shepp-Logan head (outer ellipse 0.92 x 0.69, ventricles tilted by 18 degrees, small blobs).
_LAYOUT: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("scalp", 0.92, 0.69, 0.0, 0.0, 0.0),
    ("skull", 0.895, 0.665, -0.009, 0.0, 0.0),
    ("grey_matter", 0.874, 0.6624, -0.0184, 0.0, 0.0),
    ("white_matter", 0.78, 0.56, -0.03, 0.0, 0.0),
    ("csf", 0.41, 0.16, 0.0, -0.22, 18.0),
    ("csf", 0.31, 0.11, 0.0, 0.22, -18.0),
    ("grey_matter", 0.25, 0.21, 0.35, 0.0, 0.0),
    ("lesion", 0.046, 0.046, -0.1, 0.0, 0.0),
    ("lesion", 0.046, 0.046, 0.1, 0.0, 0.0),
    ("csf", 0.023, 0.046, -0.605, -0.08, 0.0),
    ("csf", 0.023, 0.023, -0.606, 0.0, 0.0),
    ("csf", 0.046, 0.023, -0.605, 0.06, 0.0),
)


def _shape2(shape: Any) -> tuple[int, int]:
    try:
        dims = tuple(int(n) for n in shape)
    except TypeError:
        dims = (int(shape), int(shape))
    if len(dims) != 2 or any(n < 2 for n in dims):
        raise ShapeError(f"shape: expected (ny, nx) with both >= 2, got {shape!r}")
    return dims[0], dims[1]


def brain_phantom(
    shape: int | tuple[int, int] = 256,
    *,
    tr: float = 3000.0,
    te: float = 90.0,
    phase: float = 0.0,
    oversample: int = 4,
    dtype: npt.DTypeLike = np.complex64,
) -> np.ndarray:
    """A spin-echo image of a tissue-labelled head slice.

    Parameters
    ----------
    shape : int or (ny, nx)
        Image size; the head fills the grid as the Shepp-Logan head does (outer ellipse
        0.92 x 0.69 of the half field of view).
    tr, te : float
        Repetition and echo time in ms (defaults: T2-weighted, CSF bright). ``tr=500,
        te=15`` gives a T1-weighted image (white matter brighter than grey, CSF dark).
    phase : float
        Peak amplitude (radians) of a smooth quadratic background phase; 0 gives a real
        image (stored complex).
    oversample : int
        Sub-samples per pixel and axis for partial-volume edges.
    dtype : complex64 or complex128

    Returns
    -------
    ndarray of shape (ny, nx)
        Complex image; magnitudes in [0, 1].

    Examples
    --------
    >>> img = brain_phantom(64)
    >>> img.shape, img.dtype
    ((64, 64), dtype('complex64'))
    >>> bool(abs(img[32, 25]) > abs(img[32, 44]))  # CSF (ventricle) brighter than white matter
    True
    """
    ny, nx = _shape2(shape)
    if not (math.isfinite(tr) and math.isfinite(te) and tr > 0 and te >= 0):
        raise ValueError(f"tr, te: expected tr > 0 and te >= 0 (ms), got tr={tr!r}, te={te!r}")
    if not math.isfinite(phase):
        raise ValueError(f"phase: expected a finite number of radians, got {phase!r}")
    cdt = np.dtype(dtype)
    if cdt not in (np.dtype(np.complex64), np.dtype(np.complex128)):
        raise TypeError(f"dtype: expected complex64 or complex128, got {cdt}")
    # a grid whose half field of view is 1 along each axis: pixel sizes 2/n
    vol = VolumeGeometry(shape=(ny, nx), voxel_size=(2.0 / ny, 2.0 / nx))
    params = [
        (TISSUES[t].spin_echo(tr, te), ay, ax, cy, cx, math.radians(ang))
        for t, ay, ax, cy, cx, ang in _LAYOUT
    ]
    # "replace" painting; the layout's y axis runs down the rows
    params = [(v, ay, ax, -cy, cx, a) for v, ay, ax, cy, cx, a in params]
    mag = ellipses(vol, params, combine=Combine.REPLACE, oversample=oversample)
    mag /= max(float(mag.max()), np.finfo(float).tiny)
    img = mag.astype(np.complex128)
    if phase:
        y = np.linspace(-1.0, 1.0, ny)[:, None]
        x = np.linspace(-1.0, 1.0, nx)[None, :]
        img = img * np.exp(1j * phase * (0.6 * x + 0.3 * y + 0.4 * (x * x - y * y)))
    return img.astype(cdt)


def birdcage_maps(
    shape: int | tuple[int, int],
    n_coils: int = 8,
    *,
    radius: float = 1.5,
    dtype: npt.DTypeLike = np.complex64,
) -> np.ndarray:
    """Smooth coil sensitivities of loops placed evenly on a circle around the field of view.

    Coil ``c`` sits at angle ``2 pi c / n_coils`` on a circle of ``radius`` (in units of the
    half field of view); its raw sensitivity is ``exp(i theta_c) / d_c(r)`` with ``d_c`` the
    distance to the coil (the in-plane field of a long straight conductor) and ``theta_c`` the
    coil's angle, which gives each coil a smooth phase that varies across the image. The maps
    are normalised so that ``sum_c |S_c|^2 = 1`` at every pixel.

    Parameters
    ----------
    shape : int or (ny, nx)
    n_coils : int
        Number of coils (>= 1).
    radius : float
        Coil circle radius relative to the half field of view; must exceed ``sqrt(2)`` so
        that every coil lies outside the (square, in these units) field of view.
    dtype : complex64 or complex128

    Returns
    -------
    ndarray of shape (n_coils, ny, nx)

    Examples
    --------
    >>> s = birdcage_maps(32, 4)
    >>> s.shape
    (4, 32, 32)
    >>> round(float((abs(s) ** 2).sum(axis=0).mean()), 6)
    1.0
    """
    ny, nx = _shape2(shape)
    if isinstance(n_coils, bool) or not isinstance(n_coils, int | np.integer) or n_coils < 1:
        raise ValueError(f"n_coils: expected an integer >= 1, got {n_coils!r}")
    if not (math.isfinite(radius) and radius > math.sqrt(2.0)):
        raise ValueError(
            f"radius: expected a number > sqrt(2) (coils outside the FOV), got {radius!r}"
        )
    y = np.linspace(-1.0, 1.0, ny)[:, None]
    x = np.linspace(-1.0, 1.0, nx)[None, :]
    theta = 2.0 * np.pi * np.arange(n_coils) / n_coils
    cx = radius * np.cos(theta)[:, None, None]
    cy = radius * np.sin(theta)[:, None, None]
    dist = np.hypot(x[None] - cx, y[None] - cy)
    # phase: the coil angle plus the angle under which the coil sees the pixel, measured from
    # the direction to the centre (within (-pi/2, pi/2) for a coil outside the FOV: no wrap)
    ang = np.angle(((x[None] - cx) + 1j * (y[None] - cy)) * (-cx + 1j * cy))
    raw = np.exp(1j * (theta[:, None, None] + 0.5 * ang)) / dist
    raw /= np.sqrt(np.sum(np.abs(raw) ** 2, axis=0, keepdims=True))
    return raw.astype(np.dtype(dtype))


def simulate_kspace(
    image: npt.ArrayLike,
    maps: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    *,
    noise_std: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Multi-coil k-space ``mask * (fft2c(S * x) + n)`` with complex white Gaussian noise.

    Parameters
    ----------
    image : array_like of shape (..., ny, nx)
        Complex (or real) image; leading dimensions are slices/batch.
    maps : array_like of shape (coils, ny, nx)
        Coil sensitivities.
    mask : array_like, optional
        Real sampling mask broadcasting to ``(coils, ky, kx)``; unsampled entries are zero.
    noise_std : float
        Standard deviation of the noise per real and imaginary part (same units as the
        unitary k-space, so the image-domain noise per coil has the same std).
    seed : int
        Seed of the noise generator.

    Returns
    -------
    ndarray of shape (..., coils, ky, kx)
        complex64 if both inputs are single precision, else complex128.

    Examples
    --------
    >>> k = simulate_kspace(brain_phantom(32), birdcage_maps(32, 4), noise_std=0.01)
    >>> k.shape, k.dtype
    ((4, 32, 32), dtype('complex64'))
    """
    x = to_numpy(image)
    s = to_numpy(maps)
    if s.ndim != 3:
        raise ShapeError(f"maps: expected shape (coils, ny, nx), got {tuple(s.shape)}")
    if x.ndim < 2 or tuple(x.shape[-2:]) != tuple(s.shape[1:]):
        raise ShapeError(
            f"image: expected (..., ny, nx) matching the maps' {tuple(s.shape[1:])}, got "
            f"{tuple(x.shape)}"
        )
    if not (math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std: expected a finite number >= 0, got {noise_std!r}")
    check_finite(x, "image")
    check_finite(s, "maps")
    single = x.dtype in (np.complex64, np.float32) and s.dtype in (np.complex64, np.float32)
    cdt = np.dtype(np.complex64 if single else np.complex128)
    coil_images = np.asarray(s, dtype=cdt) * np.asarray(x, dtype=cdt)[..., None, :, :]
    k: np.ndarray = np.asarray(fft2c(coil_images))
    if noise_std > 0:
        rng = np.random.default_rng(seed)
        k = k + noise_std * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    if mask is not None:
        m = to_numpy(mask)
        try:
            np.broadcast_shapes(m.shape, k.shape[-3:])
        except ValueError as exc:
            raise ShapeError(
                f"mask: expected a shape broadcasting to (coils, ky, kx) = {k.shape[-3:]}, got "
                f"{tuple(m.shape)}"
            ) from exc
        k = k * m.astype(k.real.dtype)
    return np.asarray(k, dtype=cdt)
