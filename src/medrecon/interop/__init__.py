"""Bridges from medrecon operators to other frameworks.

* :func:`as_odl_operator`, :func:`volume_space` - use any
  :class:`~medrecon.linop.LinearOperator` as an ``odl.Operator`` (needs the
  optional package ``odl``, imported only when a bridge is built).

The torch bridge lives below the projectors, in :mod:`medrecon.torch`,
because projectors route tensors that require gradients through it.
"""

from __future__ import annotations

from medrecon.interop.odl import as_odl_operator, volume_space

__all__ = ["as_odl_operator", "volume_space"]
