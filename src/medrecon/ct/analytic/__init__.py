"""Analytic CT reconstruction: filtered backprojection and FDK.

* :func:`fbp` - parallel beam (2D, and 3D row by row) and fan beam (flat or
  arc detector; full scans, and short scans with Parker weights).
* :func:`fdk` - circular cone beam with a flat detector (Feldkamp-Davis-Kress).
* :mod:`.filters` - the ramp filter (:class:`Filter` windows, cutoff), built
  from the spatially sampled ramp of Kak & Slaney.
* :mod:`.weights` - angular steps, cosine pre-weights and Parker weights.

Inputs are line integrals (dimensionless); reconstructions are in 1/mm.

>>> from medrecon.ct.analytic import Filter
>>> [f.value for f in Filter]
['ram-lak', 'shepp-logan', 'cosine', 'hamming', 'hann']
"""

from __future__ import annotations

from medrecon.ct.analytic.fbp import fbp, fdk
from medrecon.ct.analytic.filters import (
    Filter,
    apply_filter,
    filter_response,
    padded_length,
    ramp_kernel,
)
from medrecon.ct.analytic.weights import (
    angular_weights,
    cosine_weights,
    detector_frame,
    fan_angles,
    parker_weights,
    scan_coverage,
)

__all__ = [
    "Filter",
    "angular_weights",
    "apply_filter",
    "cosine_weights",
    "detector_frame",
    "fan_angles",
    "fbp",
    "fdk",
    "filter_response",
    "padded_length",
    "parker_weights",
    "ramp_kernel",
    "scan_coverage",
]
