"""Helpers shared by the demo's cases: timing, atomic writes, argument checks, figures."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from medrecon._files import write_atomic
from medrecon.geometry import VolumeGeometry

_T = TypeVar("_T")


def _timed(fn: Callable[[], _T]) -> tuple[_T, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`medrecon._files.write_atomic`)."""
    write_atomic(path, data)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _panel_png(
    images: list[tuple[np.ndarray, str]],
    volume: VolumeGeometry,
    suptitle: str,
    window: tuple[float, float],
    *,
    unit: str = "HU",
) -> bytes:
    """A 1 x n figure (one ``(width, level)`` window in ``unit``) as PNG bytes; pyplot untouched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(19.0, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(images), sharex=True, sharey=True)
    (y0, y1), (x0, x1) = volume.extent
    extent = (x0, x1, y1, y0)  # row 0 at the top: +y (posterior) downwards, anterior up
    width, level = window
    shown = []
    for k, (ax, (hu, title)) in enumerate(zip(axes, images, strict=True)):
        im = ax.imshow(
            hu,
            cmap="gray",
            extent=extent,
            interpolation="nearest",
            vmin=level - width / 2,
            vmax=level + width / 2,
        )
        shown.append(im)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("x (mm)")
        if k == 0:
            ax.set_ylabel("y (mm)")
    fig.colorbar(shown[-1], ax=list(axes), shrink=0.8, label=unit, pad=0.01)
    fig.suptitle(suptitle, fontsize=12)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
