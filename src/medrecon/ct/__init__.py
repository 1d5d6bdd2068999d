"""CT reconstruction: simulation, analytic and iterative reconstruction.

Subpackages:

* :mod:`medrecon.ct.simulate` - phantoms in 1/mm, transmission noise, HU conversion.
* :mod:`medrecon.ct.analytic` - FBP (parallel, fan flat/arc, short scans) and FDK.
* :mod:`medrecon.ct.iterative` - SIRT, CGLS, OS-SART, PDHG-TV and FISTA-TV on any operator.
* :mod:`medrecon.ct.mar` - metal artifact reduction in the sinogram domain (LI, NMAR).

Frequently used functions are re-exported here; each subpackage keeps its full API.
"""

from __future__ import annotations

from medrecon.ct import analytic, iterative, mar, simulate
from medrecon.ct.analytic import Filter, fbp, fdk
from medrecon.ct.iterative import (
    Gradient,
    SolverInfo,
    cgls,
    fista_tv,
    os_sart,
    pdhg_tv,
    prox_tv,
    sirt,
    total_variation,
)
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
    "Gradient",
    "SolverInfo",
    "analytic",
    "cgls",
    "fbp",
    "fdk",
    "fista_tv",
    "forbild_head_like",
    "from_hu",
    "iterative",
    "mar",
    "os_sart",
    "pdhg_tv",
    "poisson_noise",
    "prox_tv",
    "random_ellipses",
    "shepp_logan",
    "simulate",
    "sirt",
    "thorax_slice",
    "thorax_slice_rois",
    "to_hu",
    "total_variation",
]
