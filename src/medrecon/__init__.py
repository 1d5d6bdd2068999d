"""medrecon: medical image reconstruction with exactly matched adjoints.

The public entry points are re-exported here: geometries
(:mod:`medrecon.geometry`), the :class:`Projector`, and the typed errors.
"""

from __future__ import annotations

from medrecon import errors
from medrecon.geometry import (
    ConeBeam3D,
    ConeBeamVec,
    FanBeam2D,
    FanBeamVec,
    ParallelBeam2D,
    ParallelBeam3D,
    ParallelVec,
    VolumeGeometry,
)
from medrecon.linop import LinearOperator
from medrecon.projectors import Projector, available_backends

__version__ = "0.1.0"

__all__ = [
    "ConeBeam3D",
    "ConeBeamVec",
    "FanBeam2D",
    "FanBeamVec",
    "LinearOperator",
    "ParallelBeam2D",
    "ParallelBeam3D",
    "ParallelVec",
    "Projector",
    "VolumeGeometry",
    "__version__",
    "available_backends",
    "errors",
]
