"""Simulated CT data: phantoms in 1/mm, transmission noise, attenuation units.

* Phantoms (:mod:`~medrecon.ct.simulate.phantoms`), all in physical coordinates and
  rasterised onto a :class:`~medrecon.geometry.VolumeGeometry` with sub-sample averaging:
  :func:`shepp_logan` (2D and 3D), :func:`forbild_head_like`, :func:`thorax_slice` with
  :func:`thorax_slice_rois`, :func:`random_ellipses`; the rasterisers behind them,
  :func:`ellipses` and :func:`ellipsoids` (:mod:`~medrecon.ct.simulate.shapes`).
* Noise (:mod:`~medrecon.ct.simulate.noise`): :func:`poisson_noise` =
  :func:`transmission_counts` + :func:`log_transform`.
* Units (:mod:`~medrecon.ct.simulate.units`): :data:`MU_WATER`, :data:`MU_AIR` at 70 keV,
  :func:`to_hu`, :func:`from_hu`.

Examples
--------
>>> from medrecon.geometry import VolumeGeometry
>>> vol = VolumeGeometry(shape=(64, 64), voxel_size=4.0)
>>> mu = shepp_logan(vol)
>>> round(float(to_hu(mu[32, 32])))
0
"""

from __future__ import annotations

from medrecon.ct.simulate.noise import (
    ZeroCounts,
    log_transform,
    poisson_noise,
    transmission_counts,
)
from medrecon.ct.simulate.phantoms import (
    FORBILD_LIKE_HU,
    THORAX_HU,
    forbild_head_like,
    random_ellipse_params,
    random_ellipses,
    shepp_logan,
    shepp_logan_params,
    thorax_slice,
    thorax_slice_rois,
)
from medrecon.ct.simulate.shapes import (
    ELLIPSE_COLUMNS,
    ELLIPSOID_COLUMNS,
    Combine,
    ellipses,
    ellipsoids,
)
from medrecon.ct.simulate.units import (
    EFFECTIVE_ENERGY_KEV,
    MU_AIR,
    MU_WATER,
    from_hu,
    to_hu,
)

__all__ = [
    "EFFECTIVE_ENERGY_KEV",
    "ELLIPSE_COLUMNS",
    "ELLIPSOID_COLUMNS",
    "FORBILD_LIKE_HU",
    "MU_AIR",
    "MU_WATER",
    "THORAX_HU",
    "Combine",
    "ZeroCounts",
    "ellipses",
    "ellipsoids",
    "forbild_head_like",
    "from_hu",
    "log_transform",
    "poisson_noise",
    "random_ellipse_params",
    "random_ellipses",
    "shepp_logan",
    "shepp_logan_params",
    "thorax_slice",
    "thorax_slice_rois",
    "to_hu",
    "transmission_counts",
]
