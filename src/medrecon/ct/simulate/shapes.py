"""Ellipse and ellipsoid rasterisers: :mod:`medrecon.geometry.shapes`, re-exported here."""

from __future__ import annotations

from medrecon.geometry.shapes import (
    ELLIPSE_COLUMNS,
    ELLIPSOID_COLUMNS,
    Combine,
    ellipses,
    ellipsoids,
    parse_combine,
    rasterise,
)

__all__ = [
    "ELLIPSE_COLUMNS",
    "ELLIPSOID_COLUMNS",
    "Combine",
    "ellipses",
    "ellipsoids",
    "parse_combine",
    "rasterise",
]
