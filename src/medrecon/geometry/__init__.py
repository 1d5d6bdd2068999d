"""Scan geometries: where the voxels are, where the rays come from, where they land.

Conventions (``docs/conventions.md``): lengths in mm, angles in radians,
volumes ``(z, y, x)`` (2D ``(y, x)``), projections ``(view, row, col)`` (2D
``(view, det)``); every vector is given in array-axis order.

* :class:`VolumeGeometry` - the voxel grid.
* Circular geometries: :class:`ParallelBeam2D`, :class:`FanBeam2D`,
  :class:`ParallelBeam3D`, :class:`ConeBeam3D`.
* Vector geometries (what projectors consume): :class:`ParallelVec`,
  :class:`FanBeamVec`, :class:`ConeBeamVec`.
* ASTRA interchange: :func:`to_astra`, :func:`from_astra` and the layout helpers
  in :mod:`medrecon.geometry.astra`.

Geometries are immutable, validated on construction (invalid input raises
:class:`~medrecon.errors.GeometryError`), compare with ``==``, and index by
view: ``geometry[10:20]`` is the same kind of geometry with those views.
"""

from __future__ import annotations

from medrecon.geometry._base import DetectorShape, ProjectionGeometry
from medrecon.geometry.astra import from_astra, to_astra
from medrecon.geometry.circular import ConeBeam3D, FanBeam2D, ParallelBeam2D, ParallelBeam3D
from medrecon.geometry.vectors import ConeBeamVec, FanBeamVec, ParallelVec
from medrecon.geometry.volume import VolumeGeometry

__all__ = [
    "ConeBeam3D",
    "ConeBeamVec",
    "DetectorShape",
    "FanBeam2D",
    "FanBeamVec",
    "ParallelBeam2D",
    "ParallelBeam3D",
    "ParallelVec",
    "ProjectionGeometry",
    "VolumeGeometry",
    "from_astra",
    "to_astra",
]
