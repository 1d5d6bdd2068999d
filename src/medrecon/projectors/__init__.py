"""Forward and back projectors behind one interface, with pluggable backends.

>>> from medrecon.projectors import available_backends
>>> "cpu" in available_backends()
True
"""

from __future__ import annotations

from medrecon.projectors.base import ProjectorBackend, Weighting
from medrecon.projectors.projector import Projector
from medrecon.projectors.registry import (
    available_backends,
    get_backend,
    register_backend,
    registered_backends,
)

__all__ = [
    "Projector",
    "ProjectorBackend",
    "Weighting",
    "available_backends",
    "get_backend",
    "register_backend",
    "registered_backends",
]
