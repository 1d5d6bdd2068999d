"""The contract between :class:`~medrecon.projectors.Projector` and its backends."""

from __future__ import annotations

import abc
import enum
from typing import Any, ClassVar

import numpy as np

from medrecon.geometry import ConeBeamVec, FanBeamVec, ParallelVec, VolumeGeometry

__all__ = ["ProjectorBackend", "VecGeometry", "Weighting"]

VecGeometry = ParallelVec | FanBeamVec | ConeBeamVec


class Weighting(enum.StrEnum):
    """Weighting of the voxel-driven backprojector.

    ``NONE``: plain sum over views. ``FDK``: divergent-beam distance weight
    ``(D_sd / L)^2`` (flat detectors; ``D_sd`` source-to-detector distance,
    ``L`` voxel depth along the detector normal) or ``(R / |X - S|)^2`` (arc
    detectors); 1 for parallel beams.
    """

    NONE = "none"
    FDK = "fdk"


class ProjectorBackend(abc.ABC):
    """One implementation of forward projection, its adjoint and backprojection.

    Backends receive the geometry already converted to vectors
    (:meth:`to_vectors`) and arrays with exactly one leading batch axis:
    volumes ``(B, *volume.shape)`` and projections ``(B, *geometry.proj_shape)``
    as contiguous float32 or float64 numpy arrays. They return arrays of the
    input dtype.
    """

    #: registry name
    name: ClassVar[str] = ""
    #: True when :meth:`adjoint` is the exact transpose of :meth:`forward`
    exact_adjoint: ClassVar[bool] = True

    def __init__(self, geometry: VecGeometry, volume: VolumeGeometry, **options: Any) -> None:
        if options:
            raise TypeError(f"backend {self.name!r} takes no options, got {sorted(options)}")
        self.geometry = geometry
        self.volume = volume

    @abc.abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Project volumes ``(B, *volume.shape)`` to ``(B, *proj_shape)``."""

    @abc.abstractmethod
    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """Apply the adjoint to projections ``(B, *proj_shape)``."""

    @abc.abstractmethod
    def backproject(self, y: np.ndarray, weighting: Weighting) -> np.ndarray:
        """Voxel-driven backprojection for analytic reconstruction."""
