"""CT reconstruction: simulation, analytic and iterative reconstruction.

Subpackages:

* :mod:`medrecon.ct.simulate` - phantoms in 1/mm, transmission noise, HU conversion.
* :mod:`medrecon.ct.analytic` - FBP (parallel, fan flat/arc, short scans) and FDK.

Frequently used functions are re-exported here; each subpackage keeps its full API.
"""

from __future__ import annotations

from medrecon.ct import analytic, simulate
from medrecon.ct.analytic import Filter, fbp, fdk
from medrecon.ct.simulate import (
    MU_WATER,
    forbild_head_like,
    from_hu,
    poisson_noise,
    random_ellipses,
    shepp_logan,
    thorax_slice,
    thorax_slice_rois,
    to_hu,
)

__all__ = [
    "MU_WATER",
    "Filter",
    "analytic",
    "fbp",
    "fdk",
    "forbild_head_like",
    "from_hu",
    "poisson_noise",
    "random_ellipses",
    "shepp_logan",
    "simulate",
    "thorax_slice",
    "thorax_slice_rois",
    "to_hu",
]
