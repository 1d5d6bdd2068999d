"""A self-contained demonstration: phantom -> fan-beam sinogram -> backprojections -> files.

:func:`run_demo` builds a modified Shepp-Logan head phantom in attenuation units (1/mm),
projects it with a flat-detector fan beam through :class:`~medrecon.projectors.Projector`,
backprojects the sinogram with the exact adjoint ``A.T`` and with the voxel-driven
``A.backproject(weighting="fdk")``, checks the adjoint with a dot test, and writes a figure and
a JSON summary. It is what ``medrecon demo`` runs.

The phantom generator lives here until phantoms get their own module.
"""

from __future__ import annotations

import io
import json
import math
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from medrecon.geometry import FanBeam2D, VolumeGeometry
from medrecon.projectors import Projector
from medrecon.testing import dot_test

__all__ = ["SHEPP_LOGAN_ELLIPSES", "run_demo", "shepp_logan_2d"]

_T = TypeVar("_T")

#: Modified Shepp-Logan ellipses (Shepp & Logan 1974, higher-contrast values of Toft 1996):
#: ``(value, semi-axis along x, semi-axis along y, centre x, centre y, rotation in degrees)``
#: in a unit frame with y pointing to the top of the displayed image (anterior) and rotation
#: counter-clockwise as displayed. Values add where ellipses overlap: skull 1.0, brain 0.2,
#: ventricles 0.0, small lesions 0.3.
SHEPP_LOGAN_ELLIPSES: tuple[tuple[float, float, float, float, float, float], ...] = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.0, -0.0184, 0.0),
    (-0.2, 0.11, 0.31, 0.22, 0.0, -18.0),
    (-0.2, 0.16, 0.41, -0.22, 0.0, 18.0),
    (0.1, 0.21, 0.25, 0.0, 0.35, 0.0),
    (0.1, 0.046, 0.046, 0.0, 0.1, 0.0),
    (0.1, 0.046, 0.046, 0.0, -0.1, 0.0),
    (0.1, 0.046, 0.023, -0.08, -0.605, 0.0),
    (0.1, 0.023, 0.023, 0.0, -0.606, 0.0),
    (0.1, 0.023, 0.046, 0.06, -0.605, 0.0),
)
#: value of the brain-like region in :data:`SHEPP_LOGAN_ELLIPSES` (1.0 - 0.8)
_BRAIN_VALUE = 0.2

#: demo scan: field of view (mm) and clinical-like gantry distances (mm)
DEMO_FOV = 250.0
DEMO_SRC_ISO = 595.0
DEMO_ISO_DET = 490.0
DOT_DTYPES = (np.float64, np.float32)


def shepp_logan_2d(
    volume: VolumeGeometry,
    *,
    radius: float | None = None,
    mu_water: float = 0.019,
    oversample: int = 2,
) -> np.ndarray:
    """Modified Shepp-Logan head phantom as linear attenuation coefficients (1/mm).

    Parameters
    ----------
    volume : VolumeGeometry
        A 2D grid ``(ny, nx)``; the phantom is centred on the world origin.
    radius : float, optional
        Half-size of the phantom's unit frame in mm: the skull spans ``0.69 * radius`` along x
        and ``0.92 * radius`` along y. Default: half the grid's smaller side.
    mu_water : float, optional
        Attenuation given to the brain-like region (1/mm); every ellipse value is scaled by
        ``mu_water / 0.2``. The default 0.019 /mm is water at about 70 keV. The modified
        phantom's contrasts are exaggerated: the skull becomes ``5 * mu_water``.
    oversample : int, optional
        Sub-samples per pixel along each axis (the value is their mean), to soften edges.

    Returns
    -------
    ndarray of shape (ny, nx), float32
        Displayed with row 0 at the top (medrecon's convention: +y downwards), the phantom
        is upright: the large lesion (``y = 0.35``) near the top, the three small ones near the
        bottom.

    Examples
    --------
    >>> img = shepp_logan_2d(VolumeGeometry(shape=(64, 64), voxel_size=4.0))
    >>> img.shape, img.dtype
    ((64, 64), dtype('float32'))
    >>> bool(abs(img[32, 32] - 0.019) < 1e-6)
    True
    """
    if not isinstance(volume, VolumeGeometry) or volume.ndim != 2:
        raise ValueError(f"volume: expected a 2D VolumeGeometry, got {volume!r}")
    if isinstance(oversample, bool) or not isinstance(oversample, int) or oversample < 1:
        raise ValueError(f"oversample: expected an integer >= 1, got {oversample!r}")
    r = 0.5 * min(volume.size) if radius is None else float(radius)
    if not r > 0.0:
        raise ValueError(f"radius: expected a positive length in mm, got {radius!r}")
    # sub-sample positions (mm) along each axis, then the phantom's unit frame: x right,
    # "up" (anterior) = -y of the world frame
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    ys = (volume.coords(0)[:, None] + sub[None, :] * volume.voxel_size[0]).ravel()
    xs = (volume.coords(1)[:, None] + sub[None, :] * volume.voxel_size[1]).ravel()
    u = xs[None, :] / r
    v = -ys[:, None] / r
    img = np.zeros((ys.size, xs.size))
    for value, a, b, x0, y0, phi in SHEPP_LOGAN_ELLIPSES:
        c, s = math.cos(math.radians(phi)), math.sin(math.radians(phi))
        du, dv = u - x0, v - y0
        inside = ((du * c + dv * s) / a) ** 2 + ((dv * c - du * s) / b) ** 2 <= 1.0
        img[inside] += value
    ny, nx = volume.shape
    img = img.reshape(ny, oversample, nx, oversample).mean(axis=(1, 3))
    # 1.0 - 0.8 - 0.2 leaves rounding residue of either sign in the ventricles
    img = np.where(np.abs(img) < 1e-9, 0.0, img)
    return (img * (mu_water / _BRAIN_VALUE)).astype(np.float32)


# --------------------------------------------------------------------------- helpers


def _timed(fn: Callable[[], _T]) -> tuple[_T, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    The temporary file is created exclusively with the usual permissions (umask applied).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _overview_png(
    phantom: np.ndarray,
    sino: np.ndarray,
    adj: np.ndarray,
    bp: np.ndarray,
    volume: VolumeGeometry,
    geometry: FanBeam2D,
    mu_water: float,
) -> bytes:
    """The 1 x 4 overview figure as PNG bytes (Agg canvas; pyplot's global state is untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(19.5, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    (y0, y1), (x0, x1) = volume.extent
    img_extent = (x0, x1, y1, y0)  # row 0 at the top: +y downwards
    half_u = 0.5 * geometry.n_det * geometry.det_spacing
    last = float(np.degrees(geometry.angles[-1]))
    first = float(np.degrees(geometry.angles[0]))
    d_ang = (last - first) / max(geometry.n_views - 1, 1)
    sino_extent = (-half_u, half_u, last + 0.5 * d_ang, first - 0.5 * d_ang)

    window = (0.0, 2.0 * mu_water)
    panels: list[tuple[np.ndarray, tuple[float, ...], str, str, tuple[float, float] | None]] = [
        (
            phantom,
            img_extent,
            f"Phantom (display window 0-{window[1]:.3f} /mm)",
            "attenuation μ (1/mm)",
            window,
        ),
        (
            sino,
            sino_extent,
            f"Fan-beam sinogram, {geometry.n_views} views",
            "line integral (dimensionless)",
            None,
        ),
        (adj, img_extent, "Exact adjoint Aᵀy (unfiltered)", "Aᵀy (mm)", None),
        (
            bp,
            img_extent,
            "Voxel-driven backprojection (FDK weights)",
            "value (dimensionless)",
            None,
        ),
    ]
    for ax, (data, extent, title, unit, clim) in zip(axes, panels, strict=True):
        im = ax.imshow(
            data,
            cmap="gray",
            extent=extent,
            interpolation="nearest",
            aspect="equal" if data is not sino else "auto",
        )
        if clim is not None:
            im.set_clim(*clim)
        ax.set_title(title, fontsize=10.5)
        fig.colorbar(im, ax=ax, shrink=0.85, label=unit)
        if data is sino:
            ax.set_xlabel("detector position u (mm)")
            ax.set_ylabel("view angle (degrees)")
        else:
            ax.set_xlabel("x (mm)")
            ax.set_ylabel("y (mm)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


# --------------------------------------------------------------------------- demo


def run_demo(
    out_dir: Path, *, size: int = 256, n_views: int = 360, progress: bool = True
) -> dict[str, Any]:
    """Simulate a fan-beam scan of a head phantom and write a figure and a summary.

    Parameters
    ----------
    out_dir : Path
        Folder for the outputs (created if missing). Only ``overview.png`` and
        ``summary.json`` inside it are written, each atomically (temporary file in the same
        folder, then :func:`os.replace`).
    size : int, optional
        Image side in pixels (>= 16); the field of view is 250 mm whatever the size.
    n_views : int, optional
        Number of views over 360 degrees (>= 2).
    progress : bool, optional
        Show a progress bar on stderr.

    Returns
    -------
    dict
        The summary written to ``summary.json`` (geometry in mm and degrees, timings in
        seconds, dot-test relative errors, sinogram range), with ``files`` holding the
        absolute paths of the two outputs.
    """
    size = _check_int("size", size, 16)
    n_views = _check_int("n_views", n_views, 2)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    volume = VolumeGeometry(shape=(size, size), voxel_size=DEMO_FOV / size)
    n_det = math.ceil(1.5 * size)
    # flat-detector pitch for which the fan just covers the field-of-view circle
    half_fan = math.asin(0.5 * DEMO_FOV / DEMO_SRC_ISO)
    det_spacing = 2.0 * (DEMO_SRC_ISO + DEMO_ISO_DET) * math.tan(half_fan) / n_det
    geometry = FanBeam2D(
        angles=np.linspace(0.0, 2.0 * np.pi, n_views, endpoint=False),
        n_det=n_det,
        det_spacing=det_spacing,
        src_iso=DEMO_SRC_ISO,
        iso_det=DEMO_ISO_DET,
        detector="flat",
    )
    A = Projector(geometry, volume, backend="cpu")
    mu_water = 0.019
    timings: dict[str, float] = {}
    steps = ["phantom", "forward", "adjoint", "backproject", "dot test", "figure", "write"]
    with tqdm(total=len(steps), desc="medrecon demo", unit="step", disable=not progress) as bar:

        def step(name: str, fn: Callable[[], _T]) -> _T:
            bar.set_postfix_str(name)
            result, timings[name.replace(" ", "_")] = _timed(fn)
            bar.update()
            return result

        phantom = step("phantom", lambda: shepp_logan_2d(volume, mu_water=mu_water))
        sino = np.asarray(step("forward", lambda: A(phantom)))
        adj = np.asarray(step("adjoint", lambda: A.T(sino)))
        bp = np.asarray(step("backproject", lambda: A.backproject(sino, weighting="fdk")))
        dot64, dot32 = step(
            "dot test",
            lambda: tuple(dot_test(A, dtype=dt, seed=0, rtol=math.inf) for dt in DOT_DTYPES),
        )
        png = step(
            "figure",
            lambda: _overview_png(phantom, sino, adj, bp, volume, geometry, mu_water),
        )

        summary: dict[str, Any] = {
            "phantom": {
                "name": "modified Shepp-Logan",
                "mu_water_per_mm": mu_water,
                "min_per_mm": float(phantom.min()),
                "max_per_mm": float(phantom.max()),
            },
            "volume": {
                "shape": list(volume.shape),
                "voxel_size_mm": list(volume.voxel_size),
                "fov_mm": DEMO_FOV,
            },
            "geometry": {
                "type": "FanBeam2D",
                "detector": "flat",
                "n_views": n_views,
                "angle_range_deg": [0.0, 360.0],
                "n_det": n_det,
                "det_spacing_mm": det_spacing,
                "src_iso_mm": DEMO_SRC_ISO,
                "iso_det_mm": DEMO_ISO_DET,
            },
            "projector": {"backend": A.backend.name, "exact_adjoint": A.exact_adjoint},
            "sinogram": {
                "shape": list(sino.shape),
                "dtype": str(sino.dtype),
                "min": float(sino.min()),
                "max": float(sino.max()),
            },
            "dot_test": {
                "rel_error_float64": dot64,
                "rel_error_float32": dot32,
                "definition": "medrecon.testing.dot_test: |<Ax,y> - <x,A^T y>| / |<Ax,y>|, "
                "x and y uniform on [0, 1), seed 0",
            },
            "timings_s": dict(timings),
            "timings_note": "forward and adjoint include numba compilation unless it was "
            "cached; dot test runs 2 forward and 2 adjoint projections",
            "files": {"overview": "overview.png", "summary": "summary.json"},
        }

        def write() -> None:
            _write_atomic(out / "overview.png", png)
            _write_atomic(
                out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode("utf-8")
            )

        step("write", write)

    result = dict(summary)
    result["timings_s"] = dict(timings)
    result["files"] = {k: str((out / v).resolve()) for k, v in summary["files"].items()}
    return result
