"""Data weights for analytic reconstruction: angular steps, cosine and Parker weights.

Angles follow ``docs/conventions.md``: at angle ``theta`` the source of a fan
or cone geometry sits at ``src_iso * (sin theta, -cos theta, 0)``. A ray leaving
the source at fan angle ``gamma`` (positive towards the detector's u axis) is
the parallel ray of angle ``theta - gamma`` at distance ``src_iso * sin gamma``
from the rotation axis, so its conjugate (the same line, travelled backwards)
is the ray at angle ``theta + pi - 2 gamma`` and fan angle ``-gamma``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from medrecon.errors import GeometryError
from medrecon.geometry import ConeBeam3D, ConeBeamVec, DetectorShape, FanBeam2D

__all__ = [
    "DetectorFrame",
    "ScanCoverage",
    "angular_weights",
    "cosine_weights",
    "detector_frame",
    "fan_angles",
    "parker_weights",
    "scan_coverage",
]

_TWO_PI = 2.0 * np.pi
# angles closer than this (radians, modulo the period) count as the same direction
_SAME_ANGLE = 1e-9


class ScanCoverage(NamedTuple):
    """Which part of the period a set of angles covers.

    Attributes
    ----------
    start : float
        First angle of the covered arc (radians, in ``[0, period)``).
    span : float
        Angle from the first to the last view along the covered arc
        (radians); ``period`` for a full scan.
    full : bool
        True when the views go all the way around (no gap wider than twice
        the mean step ``period / n_distinct``).
    """

    start: float
    span: float
    full: bool


def _distinct(angles: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct angles modulo ``period`` and, per view, the index of its angle."""
    wrapped = np.mod(angles, period)
    order = np.argsort(wrapped, kind="stable")
    srt = wrapped[order]
    new = np.empty(srt.size, dtype=bool)
    new[0] = True
    new[1:] = np.diff(srt) > _SAME_ANGLE
    group = np.cumsum(new) - 1
    # the last group may be the first one again (angles just below the period)
    if srt.size > 1 and period - srt[-1] + srt[0] <= _SAME_ANGLE:
        group[group == group[-1]] = 0
        new[np.flatnonzero(new)[-1]] = False
    index = np.empty(srt.size, dtype=np.int64)
    index[order] = group
    return srt[new], index


def _check_angles(angles: object) -> np.ndarray:
    arr = np.asarray(angles, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise GeometryError(
            f"angles: expected a non-empty 1-D array of finite radians, got shape {arr.shape}"
        )
    return arr


def _circular_gaps(unique: np.ndarray, period: float) -> np.ndarray:
    """Gap from each distinct angle to the next one around the circle."""
    return np.diff(np.append(unique, unique[0] + period))


def _arc(unique: np.ndarray, period: float) -> tuple[bool, int, np.ndarray]:
    """(full scan?, index of the first distinct angle of the covered arc, circular gaps)."""
    gaps = _circular_gaps(unique, period)
    largest = int(np.argmax(gaps))
    full = bool(gaps[largest] <= 2.0 * period / unique.size)
    return full, (largest + 1) % unique.size, gaps


def scan_coverage(angles: object, *, period: float = _TWO_PI) -> ScanCoverage:
    """Find the arc that the view angles cover.

    Parameters
    ----------
    angles : array_like of shape (n_views,)
        View angles (radians), in any order.
    period : float
        Angle after which the data repeat: ``pi`` for parallel beams,
        ``2 pi`` for fan and cone beams.

    Returns
    -------
    ScanCoverage

    Examples
    --------
    >>> import numpy as np
    >>> c = scan_coverage(np.linspace(0, np.pi, 10))
    >>> c.full, round(c.span, 4)
    (False, 3.1416)
    >>> scan_coverage(np.linspace(0, 2 * np.pi, 10, endpoint=False)).full
    True
    """
    arr = _check_angles(angles)
    unique, _ = _distinct(arr, period)
    if unique.size == 1:
        return ScanCoverage(float(unique[0]), 0.0, False)
    full, first, gaps = _arc(unique, period)
    if full:
        return ScanCoverage(float(unique[0]), float(period), True)
    return ScanCoverage(float(unique[first]), float(period - gaps[first - 1]), False)


def angular_weights(angles: object, *, period: float = _TWO_PI) -> np.ndarray:
    """Angular integration weight ``delta theta`` of every view (radians).

    Each distinct angle gets half the distance to its neighbours on either
    side (the midpoint rule, which handles non-uniform steps); views that
    repeat an angle (modulo ``period``) share its weight. For a full scan
    (see :func:`scan_coverage`) the neighbours wrap around and the weights
    add up to ``period``; for a partial scan the first and last views get the
    step to their only neighbour, so uniformly spaced views all get the same
    weight and the weights add up to ``span + step``.

    Parameters
    ----------
    angles : array_like of shape (n_views,)
        View angles (radians), in any order.
    period : float
        ``pi`` for parallel beams, ``2 pi`` for fan and cone beams.

    Returns
    -------
    ndarray of shape (n_views,)

    Examples
    --------
    >>> import numpy as np
    >>> w = angular_weights(np.linspace(0, np.pi, 4, endpoint=False), period=np.pi)
    >>> print(np.round(w / np.pi, 3).tolist())
    [0.25, 0.25, 0.25, 0.25]
    >>> w = angular_weights([0.0, 0.1, 0.3])
    >>> print(np.round(w, 3).tolist())
    [0.1, 0.15, 0.2]
    """
    arr = _check_angles(angles)
    unique, index = _distinct(arr, period)
    count = np.bincount(index, minlength=unique.size)
    if unique.size == 1:
        return np.full(arr.size, period / arr.size)
    full, first, gaps = _arc(unique, period)
    if full:
        step = 0.5 * (gaps + np.roll(gaps, 1))
    else:
        # rotate so the covered arc runs from position 0 to the end
        inner = np.roll(gaps, -first)[:-1]  # steps along the covered arc
        arc_step = np.empty(unique.size)
        arc_step[1:-1] = 0.5 * (inner[1:] + inner[:-1])
        arc_step[0] = inner[0]
        arc_step[-1] = inner[-1]
        step = np.roll(arc_step, first)
    return np.asarray(step[index] / count[index])


class DetectorFrame(NamedTuple):
    """Detector coordinates relative to the principal point, and source distances.

    Attributes
    ----------
    u : ndarray of shape (n_cols,)
        Column coordinate of each element from the principal point: mm for
        flat detectors, the fan angle ``gamma`` in radians (positive towards
        u) for arc detectors.
    v : ndarray of shape (n_rows,) or None
        Row coordinate from the principal point (mm; cone beams), None in 2D.
    src_det : float
        Source to detector distance (mm): to the detector plane along its
        normal (flat), or the radius of the arc (arc).
    src_iso : float
        Source to rotation-axis distance (mm).
    """

    u: np.ndarray
    v: np.ndarray | None
    src_det: float
    src_iso: float


def detector_frame(geometry: FanBeam2D | ConeBeam3D) -> DetectorFrame:
    """Detector coordinates relative to the principal point, and source distances.

    The principal point is where the ray from the source through the rotation
    axis meets the detector: ``u = -det_offset_u`` (and ``v = -det_offset_v``)
    from the detector centre. It is found from the geometry's vectors
    (:meth:`to_vectors`, first view; circular geometries look the same from
    every view).

    Parameters
    ----------
    geometry : FanBeam2D or ConeBeam3D

    Returns
    -------
    DetectorFrame

    Examples
    --------
    >>> from medrecon.geometry import FanBeam2D
    >>> g = FanBeam2D(angles=[0.3], n_det=4, det_spacing=2.0, src_iso=100.0, iso_det=50.0,
    ...               det_offset_u=0.5)
    >>> f = detector_frame(g)
    >>> print(np.round(f.u, 6).tolist(), round(f.src_det, 6), round(f.src_iso, 6))
    [-2.5, -0.5, 1.5, 3.5] 150.0 100.0
    """
    if not isinstance(geometry, FanBeam2D | ConeBeam3D):
        raise GeometryError(
            f"geometry: expected a FanBeam2D or ConeBeam3D, got {type(geometry).__name__}"
        )
    vec = geometry.to_vectors()
    src = vec.sources[0]
    center = vec.det_centers[0]
    du = vec.det_u[0]
    radius = float(np.linalg.norm(src))  # rotation axis through the origin, source at z = 0
    step = float(np.linalg.norm(du))
    if isinstance(geometry, FanBeam2D):
        n = geometry.n_det
        index = np.arange(n) - 0.5 * (n - 1)
        if geometry.detector is DetectorShape.ARC:
            to_iso = -src / radius
            perp = np.array([-to_iso[1], to_iso[0]])
            if perp @ du < 0.0:
                perp = -perp
            central = center - src
            gamma0 = float(np.arctan2(central @ perp, central @ to_iso))
            r_d = float(np.linalg.norm(central))
            return DetectorFrame(index * (step / r_d) + gamma0, None, r_d, radius)
        t0 = float((src - center) @ du) / step**2
        foot = center + t0 * du
        return DetectorFrame((index - t0) * step, None, float(np.linalg.norm(src - foot)), radius)
    if not isinstance(vec, ConeBeamVec):  # pragma: no cover - ConeBeam3D gives ConeBeamVec
        raise GeometryError(f"expected cone-beam vectors, got {type(vec).__name__}")
    dv = vec.det_v[0]
    sv = float(np.linalg.norm(dv))
    tu = float((src - center) @ du) / step**2
    tv = float((src - center) @ dv) / sv**2
    normal = np.cross(du, dv)
    d_sd = abs(float((center - src) @ normal)) / float(np.linalg.norm(normal))
    n_rows, n_cols = geometry.det_shape
    u = (np.arange(n_cols) - 0.5 * (n_cols - 1) - tu) * step
    v = (np.arange(n_rows) - 0.5 * (n_rows - 1) - tv) * sv
    return DetectorFrame(u, v, d_sd, radius)


def _is_arc(geometry: FanBeam2D | ConeBeam3D) -> bool:
    return isinstance(geometry, FanBeam2D) and geometry.detector is DetectorShape.ARC


def fan_angles(geometry: FanBeam2D | ConeBeam3D) -> np.ndarray:
    """Fan angle ``gamma`` of each detector column (radians, positive towards u).

    Measured in the rotation plane from the ray through the rotation axis,
    using the true principal point (detector offsets included).

    Returns
    -------
    ndarray of shape (n_det,) or (n_cols,)

    Examples
    --------
    >>> from medrecon.geometry import FanBeam2D
    >>> g = FanBeam2D(angles=[0.0], n_det=3, det_spacing=100.0, src_iso=50.0, iso_det=50.0)
    >>> print(np.round(np.degrees(fan_angles(g)), 3).tolist())
    [-45.0, 0.0, 45.0]
    """
    frame = detector_frame(geometry)
    if _is_arc(geometry):
        return frame.u
    return np.arctan2(frame.u, frame.src_det)


def cosine_weights(geometry: FanBeam2D | ConeBeam3D) -> np.ndarray:
    """Cosine pre-weights of divergent-beam FBP (FDK).

    Flat detectors: ``D_sd / sqrt(D_sd^2 + u^2 (+ v^2))``, the cosine of the
    angle between each ray and the ray through the rotation axis. Arc
    detectors: ``cos gamma``.

    Returns
    -------
    ndarray of shape (n_det,) for FanBeam2D, (n_rows, n_cols) for ConeBeam3D

    Examples
    --------
    >>> from medrecon.geometry import FanBeam2D
    >>> g = FanBeam2D(angles=[0.0], n_det=3, det_spacing=100.0, src_iso=50.0, iso_det=50.0)
    >>> print(np.round(cosine_weights(g), 4).tolist())
    [0.7071, 1.0, 0.7071]
    """
    frame = detector_frame(geometry)
    if _is_arc(geometry):
        return np.cos(frame.u)
    d2 = frame.src_det**2 + frame.u**2
    if frame.v is not None:
        d2 = d2[None, :] + frame.v[:, None] ** 2
    return np.asarray(frame.src_det / np.sqrt(d2))


def parker_weights(angles: object, gamma: object) -> np.ndarray:
    """Parker's short-scan weights, generalised to any arc of at least ``pi + 2 gamma_max``.

    With the covered arc ``[start, start + pi + 2 delta]``, ``beta = theta -
    start`` and the conjugate ray of ``(theta, gamma)`` at ``(theta + pi - 2
    gamma, -gamma)`` (see the module notes; this is Parker's formula with the
    sign of gamma flipped for medrecon's rotation sense):

    * ``sin^2(pi/4 * beta / (delta + gamma))`` for ``beta < 2 (delta + gamma)``,
    * ``1`` up to ``beta = pi + 2 gamma``,
    * ``sin^2(pi/4 * (pi + 2 delta - beta) / (delta - gamma))`` after that.

    A ray and its conjugate get weights that add up to 1. ``delta = gamma_max``
    is Parker's original (minimal) short scan; a longer arc uses its whole
    range (Wesarg et al., Med. Phys. 29, 2002).

    Parameters
    ----------
    angles : array_like of shape (n_views,)
        View angles (radians) of a partial scan, in any order.
    gamma : array_like of shape (n_det,)
        Fan angle of each detector column (radians), e.g. :func:`fan_angles`.

    Returns
    -------
    ndarray of shape (n_views, n_det)

    Raises
    ------
    GeometryError
        When the arc is shorter than ``pi + 2 max|gamma|`` (less half a view
        step of tolerance) or the views cover the full circle.

    Examples
    --------
    >>> import numpy as np
    >>> gam = np.array([-0.1, 0.0, 0.1])
    >>> w = parker_weights(np.linspace(0, np.pi + 0.2, 101), gam)
    >>> w.shape
    (101, 3)
    >>> print(f"{w[0].max():.1f} {w[50, 1]:.1f}")
    0.0 1.0
    """
    arr = _check_angles(angles)
    gam = np.asarray(gamma, dtype=np.float64).reshape(-1)
    coverage = scan_coverage(arr, period=_TWO_PI)
    if coverage.full:
        raise GeometryError(
            "angles: short-scan (Parker) weights need a partial scan, got views all around "
            "the circle"
        )
    delta = 0.5 * (coverage.span - np.pi)
    g_max = float(np.max(np.abs(gam)))
    tolerance = 0.5 * coverage.span / max(arr.size - 1, 1)
    if delta < g_max - tolerance:
        raise GeometryError(
            f"angles: a short scan needs an arc of at least pi + 2 * max|gamma| = "
            f"{np.pi + 2 * g_max:.4f} rad ({np.degrees(np.pi + 2 * g_max):.2f} deg), "
            f"got {coverage.span:.4f} rad ({np.degrees(coverage.span):.2f} deg)"
        )
    delta = max(delta, g_max)
    beta = np.mod(arr - coverage.start, _TWO_PI)[:, None]
    g = gam[None, :]
    tiny = np.finfo(np.float64).tiny
    a = np.maximum(delta + g, tiny)
    b = np.maximum(delta - g, tiny)
    rise = np.sin(0.25 * np.pi * np.clip(beta / a, 0.0, 2.0)) ** 2
    fall = np.sin(0.25 * np.pi * np.clip((np.pi + 2 * delta - beta) / b, 0.0, 2.0)) ** 2
    w = np.where(beta < 2 * a, rise, np.where(beta <= np.pi + 2 * g, 1.0, fall))
    return np.asarray(w)
