"""Attenuation phantoms (1/mm): Shepp-Logan (2D, 3D), FORBILD-like head, thorax, random ellipses.

Every phantom is a list of ellipses (ellipsoids) in physical coordinates, centred on the world
origin, rasterised onto a :class:`~medrecon.geometry.VolumeGeometry` by
:func:`~medrecon.ct.simulate.shapes.ellipses` (:func:`~medrecon.ct.simulate.shapes.ellipsoids`)
with sub-sample averaging, so edge voxels hold area-weighted values. To place a phantom
elsewhere in the grid, move the grid (``VolumeGeometry(center=...)``).

Orientation (``docs/conventions.md``): displayed as an array with row 0 at the top, +y points
down the rows and +x along the columns. With the DICOM reading (+x patient left, +y posterior),
the anterior side (nose, sternum) is at the top (low row index) and the patient's right is on
the left of the display, as in radiological viewing.

Values are linear attenuation coefficients in 1/mm at 70 keV (:mod:`~medrecon.ct.simulate.units`);
tissues are specified in HU and converted with :func:`~medrecon.ct.simulate.units.from_hu`
(``mu = mu_water (1 + HU / 1000)``), so empty space is 0 /mm = -1000 HU.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from medrecon.ct.simulate._validate import (
    check_out_dtype,
    check_oversample,
    check_rng,
    check_scalar,
    check_volume,
)
from medrecon.ct.simulate.shapes import Combine, ellipses, ellipsoids
from medrecon.ct.simulate.units import MU_WATER, from_hu
from medrecon.geometry import VolumeGeometry

__all__ = [
    "FORBILD_LIKE_HU",
    "THORAX_HU",
    "forbild_head_like",
    "random_ellipse_params",
    "random_ellipses",
    "shepp_logan",
    "shepp_logan_params",
    "thorax_slice",
    "thorax_slice_rois",
]

# --------------------------------------------------------------------------- Shepp-Logan tables
# Published parameter tables, in the phantom's unit frame [-1, 1]: x to the right, y to the TOP
# of the picture (anterior), angles in degrees counter-clockwise as drawn there.
#
# 2D (Shepp & Logan 1974; also in Kak & Slaney 1988, ch. 3): (a along x, b along y, x0, y0, phi).
_SL_2D = (
    (0.69, 0.92, 0.0, 0.0, 0.0),
    (0.6624, 0.874, 0.0, -0.0184, 0.0),
    (0.11, 0.31, 0.22, 0.0, -18.0),
    (0.16, 0.41, -0.22, 0.0, 18.0),
    (0.21, 0.25, 0.0, 0.35, 0.0),
    (0.046, 0.046, 0.0, 0.1, 0.0),
    (0.046, 0.046, 0.0, -0.1, 0.0),
    (0.046, 0.023, -0.08, -0.605, 0.0),
    (0.023, 0.023, 0.0, -0.606, 0.0),
    (0.023, 0.046, 0.06, -0.605, 0.0),
)
# 3D: the ellipsoids of the widely used 3D extension of the 2D table (M. Schabel's
# ``phantom3d``, which cites Toft pp. 199-200; not the different 3D table of Kak & Slaney
# p. 102): (a along x, b along y, c along z, x0, y0, z0, phi about z). That table also
# lists a third Euler angle psi = 10 deg for the two ventricles; with theta = 0 it only adds
# to phi, so it is left out here and the axial slices keep the 2D ventricle tilt of +-18 deg.
_SL_3D = (
    (0.69, 0.92, 0.81, 0.0, 0.0, 0.0, 0.0),
    (0.6624, 0.874, 0.78, 0.0, -0.0184, 0.0, 0.0),
    (0.11, 0.31, 0.22, 0.22, 0.0, 0.0, -18.0),
    (0.16, 0.41, 0.28, -0.22, 0.0, 0.0, 18.0),
    (0.21, 0.25, 0.41, 0.0, 0.35, -0.15, 0.0),
    (0.046, 0.046, 0.05, 0.0, 0.1, 0.25, 0.0),
    (0.046, 0.046, 0.05, 0.0, -0.1, 0.25, 0.0),
    (0.046, 0.023, 0.05, -0.08, -0.605, 0.0, 0.0),
    (0.023, 0.023, 0.02, 0.0, -0.606, 0.0, 0.0),
    (0.023, 0.046, 0.02, 0.06, -0.605, 0.0, 0.0),
)
# additive values: Shepp & Logan (1974) and the higher-contrast "modified" ones of Toft (1996)
_SL_VALUES_ORIGINAL = (2.0, -0.98, -0.02, -0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01)
_SL_VALUES_MODIFIED = (1.0, -0.8, -0.2, -0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)

# --------------------------------------------------------------------------- FORBILD-like head
#: HU of the tissues of :func:`forbild_head_like`
FORBILD_LIKE_HU: Mapping[str, float] = {
    "scalp": 40.0,
    "bone": 1000.0,
    "brain": 40.0,
    "csf": 8.0,
    "air": -1000.0,
    "lesion_plus_6": 46.0,
    "lesion_minus_6": 34.0,
    "lesion_plus_10": 50.0,
    "lesion_plus_5": 45.0,
    "lesion_plus_3": 43.0,
}
# (tissue, semi_axis_y, semi_axis_x, center_y, center_x, angle in degrees), painted in order
_FORBILD_LIKE: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("scalp", 118.0, 95.0, 0.0, 0.0, 0.0),
    ("bone", 114.0, 91.0, 0.0, 0.0, 0.0),
    ("brain", 107.0, 85.0, 1.0, 0.0, 0.0),
    # thick frontal bone with the two lobes of a frontal sinus
    ("bone", 11.0, 30.0, -99.0, 0.0, 0.0),
    ("air", 4.5, 8.0, -101.0, -9.0, 10.0),
    ("air", 4.5, 8.0, -101.0, 9.0, -10.0),
    # lateral ventricles (anterior horns close to the midline) and the third ventricle
    ("csf", 28.0, 6.5, -10.0, -14.0, -15.0),
    ("csf", 28.0, 6.5, -10.0, 14.0, 15.0),
    ("csf", 9.0, 2.5, 24.0, 0.0, 0.0),
    # low-contrast lesions (contrast to brain in the name)
    ("lesion_plus_6", 8.0, 8.0, -55.0, -32.0, 0.0),
    ("lesion_minus_6", 6.0, 6.0, -55.0, 32.0, 0.0),
    ("lesion_plus_10", 5.0, 5.0, 48.0, -38.0, 0.0),
    ("lesion_plus_5", 4.0, 4.0, 48.0, 38.0, 0.0),
    ("lesion_plus_3", 10.0, 10.0, 75.0, 0.0, 0.0),
    # ear-like bony structures (petrous bone) joining the skull, each with air cells
    ("bone", 9.0, 18.0, 12.0, -70.0, -35.0),
    ("bone", 9.0, 18.0, 12.0, 70.0, 35.0),
    *(
        ("air", r, r, 12.0 + dy, side * (70.0 + dx), 0.0)
        for side in (-1.0, 1.0)
        for r, dy, dx in (
            (1.5, 0.0, 0.0),
            (1.0, 3.5, 5.0),
            (1.0, -3.5, -5.0),
            (0.8, 6.0, 9.0),
            (0.8, -2.0, 10.0),
            (0.6, 2.5, -9.0),
        )
    ),
)

# --------------------------------------------------------------------------- thorax
#: HU of the tissues of :func:`thorax_slice` (``blood_contrast`` with ``contrast=True``)
THORAX_HU: Mapping[str, float] = {
    "fat": -100.0,
    "soft_tissue": 40.0,
    "lung": -850.0,
    "heart": 40.0,
    "blood": 50.0,
    "blood_contrast": 300.0,
    "bone": 700.0,
    "spinal_canal": 20.0,
}


def _rib_layers() -> tuple[tuple[str, float, float, float, float, float], ...]:
    """Six ribs per side on an ellipse inside the chest wall, tangent to it."""
    ribs = []
    for side in (-1.0, 1.0):
        for t_deg in (-62.0, -38.0, -14.0, 14.0, 38.0, 62.0):
            t = math.radians(t_deg)
            cx, cy = side * 150.0 * math.cos(t), 101.0 * math.sin(t)
            # direction of the tangent of the ellipse (x, y) = (150 cos t, 101 sin t)
            tangent = math.degrees(math.atan2(101.0 * math.cos(t), -side * 150.0 * math.sin(t)))
            ribs.append(("bone", 4.0, 7.5, cy, cx, tangent))
    return tuple(ribs)


_THORAX: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("fat", 125.0, 175.0, 0.0, 0.0, 0.0),
    ("soft_tissue", 113.0, 162.0, 0.0, 0.0, 0.0),
    ("lung", 82.0, 60.0, 0.0, -78.0, 0.0),  # right lung (patient right = -x)
    ("lung", 80.0, 56.0, 2.0, 78.0, 0.0),
    ("heart", 45.0, 58.0, -25.0, 20.0, -30.0),  # apex towards anterior-left
    ("blood", 12.0, 12.0, 38.0, 28.0, 0.0),  # descending aorta
    ("bone", 17.0, 20.0, 62.0, 0.0, 0.0),  # vertebral body
    ("bone", 12.0, 22.0, 90.0, 0.0, 0.0),  # posterior arch
    ("spinal_canal", 8.0, 8.0, 86.0, 0.0, 0.0),
    ("bone", 8.0, 4.0, 102.0, 0.0, 0.0),  # spinous process
    ("bone", 6.0, 14.0, -100.0, 0.0, 0.0),  # sternum
    *_rib_layers(),
)
# the uniform soft-tissue ROI: a disc of radius 20 mm in the middle of the heart
_THORAX_ROI = (20.0, -25.0, 20.0)  # radius, center_y, center_x
# ROI masks of thorax_slice_rois: name -> tissues of _THORAX counted in the region
_THORAX_REGIONS: Mapping[str, frozenset[str]] = {
    "body": frozenset(THORAX_HU),
    "fat": frozenset({"fat"}),
    "soft_tissue": frozenset({"soft_tissue"}),
    "lung": frozenset({"lung"}),
    "heart": frozenset({"heart"}),
    "aorta": frozenset({"blood"}),
    "bone": frozenset({"bone"}),
}


# --------------------------------------------------------------------------- helpers


def _check_range(value: Any, name: str, lo: float, hi: float, unit: str) -> tuple[float, float]:
    """A pair ``(a, b)`` of finite numbers with ``lo <= a <= b <= hi``."""
    try:
        a_in, b_in = value
        a, b = float(a_in), float(b_in)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a pair (low, high), got {value!r}") from exc
    if not (math.isfinite(a) and math.isfinite(b) and lo <= a <= b <= hi):
        raise ValueError(
            f"{name}: expected finite (low, high) with {lo} <= low <= high <= {hi}{unit}, "
            f"got ({a}, {b})"
        )
    return a, b


def _in_plane(volume: VolumeGeometry) -> VolumeGeometry:
    """The axial ``(y, x)`` grid of a 2D or 3D volume."""
    if volume.ndim == 2:
        return volume
    return VolumeGeometry(
        shape=volume.shape[1:], voxel_size=volume.voxel_size[1:], center=volume.center[1:]
    )


def _extrude(img: np.ndarray, volume: VolumeGeometry) -> np.ndarray:
    """Repeat an axial image along z when ``volume`` is 3D."""
    if volume.ndim == 2:
        return img
    return np.ascontiguousarray(np.broadcast_to(img, volume.shape))


def _layer_params(
    layers: Sequence[tuple[str, float, float, float, float, float]],
    values: Mapping[str, float],
) -> np.ndarray:
    """Ellipse rows ``(value, ay, ax, cy, cx, angle_rad)`` from layers in degrees."""
    return np.array(
        [(values[t], ay, ax, cy, cx, math.radians(deg)) for t, ay, ax, cy, cx, deg in layers]
    ).reshape(-1, 6)


def _paint(
    volume: VolumeGeometry,
    layers: Sequence[tuple[str, float, float, float, float, float]],
    hu: Mapping[str, float],
    mu_water: float,
    oversample: int,
    dtype: npt.DTypeLike,
) -> np.ndarray:
    """Paint HU layers (later ones over earlier ones) and return attenuation (1/mm)."""
    mu = {t: float(from_hu(v, mu_water=mu_water)) for t, v in hu.items()}
    img = ellipses(
        _in_plane(volume),
        _layer_params(layers, mu),
        combine=Combine.REPLACE,
        oversample=oversample,
        dtype=np.float64,
    )
    return _extrude(img, volume).astype(dtype, copy=False)


# --------------------------------------------------------------------------- Shepp-Logan


def shepp_logan_params(
    ndim: int = 2,
    *,
    fov: float,
    modified: bool = True,
    mu_water: float = MU_WATER,
) -> np.ndarray:
    """The Shepp-Logan ellipses (ellipsoids) in mm, radians and 1/mm.

    The tables are scaled so the unit frame ``[-1, 1]`` spans ``fov`` mm, flipped to
    medrecon's frame (world ``y = -fov/2 * y_table``, so the phantom is upright when
    displayed with rows downwards) and mapped to attenuation: inside the head, values are
    mapped linearly so that the brain is water (0 HU) and the skull +1000 HU; outside it is
    empty (0 /mm, -1000 HU). The resulting HU:

    ==============================  ===========  ==============
    region                          modified     original
    ==============================  ===========  ==============
    skull                           +1000        +1000
    brain                           0            0
    ventricles                      -250         -20.4
    small lesions, top ellipse      +125         +10.2
    where two of those overlap      +250         +20.4
    ==============================  ===========  ==============

    Parameters
    ----------
    ndim : {2, 3}, optional
        2: the ten ellipses of Shepp & Logan (1974), shape ``(10, 6)`` for
        :func:`~medrecon.ct.simulate.shapes.ellipses`. 3: the ten ellipsoids of the common
        3D extension of that table (Schabel's ``phantom3d``, after Toft 1996; not Kak &
        Slaney's own 3D table), with the ventricles rotated about z only, shape ``(10, 10)`` for
        :func:`~medrecon.ct.simulate.shapes.ellipsoids`; z is scaled like x and y.
    fov : float
        Field of view (mm) that the unit frame's ``[-1, 1]`` spans.
    modified : bool, optional
        True: the higher-contrast values of Toft (1996); False: the original values.
    mu_water : float, optional
        Attenuation of water (1/mm) that the brain gets.

    Returns
    -------
    ndarray of shape (10, 6) or (10, 10)
        Rows of :data:`~medrecon.ct.simulate.shapes.ELLIPSE_COLUMNS` (2D) or
        :data:`~medrecon.ct.simulate.shapes.ELLIPSOID_COLUMNS` (3D), to combine with ``"add"``.

    Examples
    --------
    >>> p = shepp_logan_params(fov=200.0)
    >>> p.shape
    (10, 6)
    >>> p[0, 1:3].round(3).tolist()  # skull semi-axes (y, x) in mm
    [92.0, 69.0]
    """
    if ndim not in (2, 3) or isinstance(ndim, bool):
        raise ValueError(f"ndim: expected 2 or 3, got {ndim!r}")
    s = 0.5 * check_scalar(fov, "fov")
    w = check_scalar(mu_water, "mu_water")
    v = np.array(_SL_VALUES_MODIFIED if modified else _SL_VALUES_ORIGINAL)
    v_skull, v_brain = v[0], v[0] + v[1]
    # mu = mu_water + (v - v_brain) * alpha inside the head: scale every value by alpha and
    # add the constant to the outer ellipse, which covers the head
    alpha = w / (v_skull - v_brain)
    mu = alpha * v
    mu[0] += w - alpha * v_brain
    if ndim == 2:
        t = np.array(_SL_2D)
        a, b, x0, y0, phi = t.T
        return np.column_stack([mu, b * s, a * s, -y0 * s, x0 * s, -np.radians(phi)])
    t = np.array(_SL_3D)
    a, b, c, x0, y0, z0, phi = t.T
    zeros = np.zeros_like(phi)
    return np.column_stack(
        [mu, c * s, b * s, a * s, z0 * s, -y0 * s, x0 * s, -np.radians(phi), zeros, zeros]
    )


def shepp_logan(
    volume: VolumeGeometry,
    *,
    fov: float | None = None,
    modified: bool = True,
    mu_water: float = MU_WATER,
    oversample: int | None = None,
    dtype: npt.DTypeLike = np.float64,
) -> np.ndarray:
    """Shepp-Logan head phantom (2D or 3D) as attenuation in 1/mm.

    See :func:`shepp_logan_params` for the tables and the mapping to attenuation (brain =
    water, skull +1000 HU, ventricles -250 HU with the modified contrasts).

    Parameters
    ----------
    volume : VolumeGeometry
        A 2D ``(ny, nx)`` or 3D ``(nz, ny, nx)`` grid; the phantom is centred on the world
        origin.
    fov : float, optional
        Field of view (mm) that the phantom's unit frame ``[-1, 1]`` spans: the skull's
        semi-axes are ``0.46 fov`` (y) and ``0.345 fov`` (x). Default: the smaller in-plane
        extent of ``volume`` (``min(size_y, size_x)``).
    modified : bool, optional
        Toft's higher-contrast values (default) or the original Shepp & Logan ones.
    mu_water : float, optional
        Attenuation of water (1/mm), given to the brain. Default: water at 70 keV.
    oversample : int, optional
        Sub-samples per voxel and axis. Default 4 in 2D, 2 in 3D.
    dtype : float32 or float64, optional
        Output dtype.

    Returns
    -------
    ndarray of shape volume.shape
        Attenuation (1/mm). Displayed with row 0 at the top, the phantom is upright: the
        large top ellipse (anterior, -y) in the upper half, the three small ellipses near
        the bottom.

    Examples
    --------
    >>> from medrecon.ct.simulate.units import to_hu
    >>> img = shepp_logan(VolumeGeometry(shape=(64, 64), voxel_size=4.0))
    >>> img.shape, img.dtype.name
    ((64, 64), 'float64')
    >>> [round(float(to_hu(img[r, 32]))) for r in (3, 20, 32)]  # skull, top ellipse, brain
    [1000, 125, 0]
    """
    vol = check_volume(volume, (2, 3))
    k = check_oversample(oversample if oversample is not None else (4 if vol.ndim == 2 else 2))
    dt = check_out_dtype(dtype)
    f = min(vol.size[-2:]) if fov is None else check_scalar(fov, "fov")
    params = shepp_logan_params(vol.ndim, fov=f, modified=modified, mu_water=mu_water)
    draw = ellipses if vol.ndim == 2 else ellipsoids
    return draw(vol, params, combine=Combine.ADD, oversample=k, dtype=dt)


# --------------------------------------------------------------------------- FORBILD-like head


def forbild_head_like(
    volume: VolumeGeometry,
    *,
    mu_water: float = MU_WATER,
    oversample: int = 4,
    dtype: npt.DTypeLike = np.float64,
) -> np.ndarray:
    """A FORBILD-like axial head slice (our own simplified set, not the FORBILD phantom).

    In the spirit of the FORBILD head phantom (Lauritsch & Bruder): a 190 x 236 mm head with
    a 3-4 mm scalp (+40 HU), a skull shell (+1000 HU) thickened at the front around a two-lobed
    frontal sinus (air), brain (+40 HU), lateral and third ventricles (CSF, +8 HU), five
    low-contrast lesions (radius 4-10 mm, +3 to +10 HU and -6 HU against brain) and two
    ear-like bony structures joining the skull at the sides, each with six small air cells
    (radius 0.6-1.5 mm) that produce streaks and test resolution. Tissue HU are in
    :data:`FORBILD_LIKE_HU`. Shapes are painted over each other in order (later wins).

    Parameters
    ----------
    volume : VolumeGeometry
        A 2D ``(ny, nx)`` grid, or a 3D one: then every axial slice is the same (a prism
        along z). The head is centred on the world origin; it needs about 200 x 240 mm.
    mu_water : float, optional
        Attenuation of water (1/mm); tissues get ``mu_water * (1 + HU / 1000)``.
    oversample : int, optional
        Sub-samples per pixel and axis (in-plane).
    dtype : float32 or float64, optional
        Output dtype.

    Returns
    -------
    ndarray of shape volume.shape
        Attenuation (1/mm), upright: forehead and sinus at the top (-y), ears left and right.

    Examples
    --------
    >>> from medrecon.ct.simulate.units import to_hu
    >>> img = forbild_head_like(VolumeGeometry(shape=(128, 128), voxel_size=2.0))
    >>> [round(float(to_hu(img[r, 64]))) for r in (0, 64, 98)]  # air, brain, lesion (+3)
    [-1000, 40, 43]
    """
    vol = check_volume(volume, (2, 3))
    k = check_oversample(oversample)
    dt = check_out_dtype(dtype)
    w = check_scalar(mu_water, "mu_water")
    return _paint(vol, _FORBILD_LIKE, FORBILD_LIKE_HU, w, k, dt)


# --------------------------------------------------------------------------- thorax


def thorax_slice(
    volume: VolumeGeometry,
    *,
    contrast: bool = False,
    mu_water: float = MU_WATER,
    oversample: int = 4,
    dtype: npt.DTypeLike = np.float64,
) -> np.ndarray:
    """An axial chest slice, 350 x 250 mm, as attenuation in 1/mm.

    A body ellipse of subcutaneous fat (-100 HU, 12 mm thick) around soft tissue (+40 HU);
    two lungs (-850 HU); the heart (+40 HU) with its apex towards anterior-left; the
    descending aorta (blood +50 HU, or +300 HU with ``contrast=True``); vertebral body,
    posterior arch and spinous process (bone +700 HU) around the spinal canal (+20 HU); the
    sternum and six ribs per side (bone). Tissue HU are in :data:`THORAX_HU`.
    :func:`thorax_slice_rois` gives region masks, among them a uniform soft-tissue disc of
    radius 20 mm inside the heart for noise measurements.

    Parameters
    ----------
    volume : VolumeGeometry
        A 2D ``(ny, nx)`` grid, or a 3D one (every axial slice the same). The chest is
        centred on the world origin and needs a 350 x 250 mm (x by y) field of view.
    contrast : bool, optional
        Iodinated contrast in the aorta (+300 HU instead of +50 HU).
    mu_water : float, optional
        Attenuation of water (1/mm); tissues get ``mu_water * (1 + HU / 1000)``.
    oversample : int, optional
        Sub-samples per pixel and axis (in-plane).
    dtype : float32 or float64, optional
        Output dtype.

    Returns
    -------
    ndarray of shape volume.shape
        Attenuation (1/mm); sternum at the top (anterior, -y), spine at the bottom, the
        patient's right lung on the left of the display (-x).

    Examples
    --------
    >>> from medrecon.ct.simulate.units import to_hu
    >>> vol = VolumeGeometry(shape=(64, 96), voxel_size=4.0)
    >>> img = thorax_slice(vol)
    >>> [round(float(to_hu(img[32, c]))) for c in (0, 28, 48)]  # air, lung, mediastinum
    [-1000, -850, 40]
    """
    vol = check_volume(volume, (2, 3))
    k = check_oversample(oversample)
    dt = check_out_dtype(dtype)
    w = check_scalar(mu_water, "mu_water")
    hu = dict(THORAX_HU)
    if contrast:
        hu["blood"] = THORAX_HU["blood_contrast"]
    return _paint(vol, _THORAX, hu, w, k, dt)


def thorax_slice_rois(volume: VolumeGeometry, *, oversample: int = 4) -> dict[str, np.ndarray]:
    """Region masks of :func:`thorax_slice` on the same grid.

    A voxel belongs to a region when all its ``oversample x oversample`` sub-samples do, so
    the masks hold no partial-volume voxels and the image is constant on each of them (a
    reconstruction's mean and standard deviation there measure bias and noise).

    Parameters
    ----------
    volume : VolumeGeometry
        The grid given to :func:`thorax_slice` (2D, or 3D: the masks repeat along z).
    oversample : int, optional
        Sub-samples per pixel and axis used to decide membership.

    Returns
    -------
    dict of str to ndarray of bool, each of shape volume.shape
        ``"uniform_soft_tissue"`` (a disc of radius 20 mm inside the heart, +40 HU),
        ``"body"`` (inside the skin), ``"fat"``, ``"soft_tissue"`` (chest wall and
        mediastinum, +40 HU), ``"lung"``, ``"heart"``, ``"aorta"`` and ``"bone"``.

    Examples
    --------
    >>> vol = VolumeGeometry(shape=(64, 96), voxel_size=4.0)
    >>> rois = thorax_slice_rois(vol)
    >>> sorted(rois)
    ['aorta', 'body', 'bone', 'fat', 'heart', 'lung', 'soft_tissue', 'uniform_soft_tissue']
    >>> int(rois["uniform_soft_tissue"].sum())  # 4 mm pixels fully inside a 20 mm disc
    64
    """
    vol = check_volume(volume, (2, 3))
    k = check_oversample(oversample)
    plane = _in_plane(vol)
    out: dict[str, np.ndarray] = {}
    for name, tissues in _THORAX_REGIONS.items():
        member = {t: (1.0 if t in tissues else 0.0) for t in THORAX_HU}
        frac = ellipses(
            plane, _layer_params(_THORAX, member), combine=Combine.REPLACE, oversample=k
        )
        out[name] = _extrude(frac >= 1.0 - 1e-9, vol)
    r, cy, cx = _THORAX_ROI
    frac = ellipses(plane, [[1.0, r, r, cy, cx, 0.0]], oversample=k)
    out["uniform_soft_tissue"] = _extrude(frac >= 1.0 - 1e-9, vol)
    return out


# --------------------------------------------------------------------------- random ellipses


def _check_n_ellipses(n_ellipses: Any) -> tuple[int, int]:
    """An integer >= 1, or a pair ``(low, high)`` with ``1 <= low <= high``."""

    def is_int(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if is_int(n_ellipses):
        lo = hi = int(n_ellipses)
    elif (
        isinstance(n_ellipses, Sequence)
        and len(n_ellipses) == 2
        and all(is_int(v) for v in n_ellipses)
    ):
        lo, hi = int(n_ellipses[0]), int(n_ellipses[1])
    else:
        raise TypeError(
            f"n_ellipses: expected an integer or a pair of integers (low, high), got {n_ellipses!r}"
        )
    if not 1 <= lo <= hi:
        raise ValueError(
            f"n_ellipses: expected 1 <= low <= high (an integer >= 1), got {n_ellipses!r}"
        )
    return lo, hi


def random_ellipse_params(
    rng: np.random.Generator | int,
    *,
    radius: float,
    n_ellipses: int | tuple[int, int] = (5, 15),
    value_range: tuple[float, float] = (0.1 * MU_WATER, MU_WATER),
    axis_range: tuple[float, float] = (0.03, 0.3),
) -> np.ndarray:
    """Draw random ellipses that lie inside a disc of ``radius`` mm around the origin.

    The number of ellipses is uniform in ``[low, high]``; values are uniform in
    ``value_range``; both semi-axes are uniform in ``axis_range * radius``; the angle is
    uniform in ``[0, pi)``; the centre is uniform over the disc of radius
    ``radius - max(semi-axes)``, so every ellipse lies inside the field-of-view disc.

    Parameters
    ----------
    rng : numpy.random.Generator or int
        The random generator, or a seed for ``np.random.default_rng``.
    radius : float
        Radius of the field-of-view disc (mm).
    n_ellipses : int or (int, int), optional
        The number of ellipses, or an inclusive range for it (``1 <= low <= high``).
    value_range : (float, float), optional
        Range of the values (``0 <= low <= high``), in the image's unit (1/mm).
    axis_range : (float, float), optional
        Range of the semi-axes as fractions of ``radius`` (``0 < low <= high <= 1``).

    Returns
    -------
    ndarray of shape (n, 6)
        Rows of :data:`~medrecon.ct.simulate.shapes.ELLIPSE_COLUMNS` (mm, radians).

    Examples
    --------
    >>> p = random_ellipse_params(np.random.default_rng(0), radius=100.0, n_ellipses=3)
    >>> p.shape
    (3, 6)
    >>> bool(np.all(np.hypot(p[:, 3], p[:, 4]) + p[:, 1:3].max(axis=1) <= 100.0))
    True
    """
    gen = check_rng(rng)
    r = check_scalar(radius, "radius")
    lo, hi = _check_n_ellipses(n_ellipses)
    v0, v1 = _check_range(value_range, "value_range", 0.0, math.inf, " (1/mm)")
    a0, a1 = _check_range(axis_range, "axis_range", 0.0, 1.0, " (fractions of the radius)")
    if a0 <= 0.0:
        raise ValueError(f"axis_range: expected a low end > 0, got {a0}")
    n = int(gen.integers(lo, hi + 1))
    values = gen.uniform(v0, v1, n)
    axes = gen.uniform(a0 * r, a1 * r, (n, 2))
    angles = gen.uniform(0.0, math.pi, n)
    room = r - axes.max(axis=1)
    rho = room * np.sqrt(gen.uniform(0.0, 1.0, n))
    t = gen.uniform(0.0, 2.0 * math.pi, n)
    return np.column_stack([values, axes, rho * np.sin(t), rho * np.cos(t), angles])


def random_ellipses(
    volume: VolumeGeometry,
    *,
    rng: np.random.Generator | int,
    n_ellipses: int | tuple[int, int] = (5, 15),
    fov: float | None = None,
    value_range: tuple[float, float] = (0.1 * MU_WATER, MU_WATER),
    axis_range: tuple[float, float] = (0.03, 0.3),
    oversample: int = 2,
    dtype: npt.DTypeLike = np.float64,
) -> np.ndarray:
    """A random-ellipse image for training data: non-negative, inside the field-of-view disc.

    Ellipses from :func:`random_ellipse_params` are added up (values >= 0, so the image is
    >= 0), all inside the disc of diameter ``fov`` around the world origin; outside it the
    image is 0. The same generator state gives the same image.

    Parameters
    ----------
    volume : VolumeGeometry
        A 2D grid ``(ny, nx)``.
    rng : numpy.random.Generator or int
        The random generator (advanced by the call), or a seed for ``np.random.default_rng``.
    n_ellipses : int or (int, int), optional
        The number of ellipses, or an inclusive range it is drawn from.
    fov : float, optional
        Diameter (mm) of the disc the ellipses lie in. Default: the smaller extent of
        ``volume``.
    value_range : (float, float), optional
        Range of each ellipse's value (1/mm, ``0 <= low <= high``). Default 0.1 to 1 times
        the attenuation of water.
    axis_range : (float, float), optional
        Range of the semi-axes as fractions of ``fov / 2`` (``0 < low <= high <= 1``).
    oversample : int, optional
        Sub-samples per pixel and axis.
    dtype : float32 or float64, optional
        Output dtype.

    Returns
    -------
    ndarray of shape (ny, nx)
        Attenuation (1/mm), >= 0.

    Examples
    --------
    >>> vol = VolumeGeometry(shape=(64, 64), voxel_size=1.0)
    >>> a = random_ellipses(vol, rng=np.random.default_rng(7))
    >>> b = random_ellipses(vol, rng=np.random.default_rng(7))
    >>> a.shape, bool(np.array_equal(a, b)), bool(a.min() >= 0.0), bool(a.max() > 0.0)
    ((64, 64), True, True, True)
    """
    vol = check_volume(volume, (2,))
    k = check_oversample(oversample)
    dt = check_out_dtype(dtype)
    f = min(vol.size) if fov is None else check_scalar(fov, "fov")
    params = random_ellipse_params(
        rng,
        radius=0.5 * f,
        n_ellipses=n_ellipses,
        value_range=value_range,
        axis_range=axis_range,
    )
    return ellipses(vol, params, combine=Combine.ADD, oversample=k, dtype=dt)
