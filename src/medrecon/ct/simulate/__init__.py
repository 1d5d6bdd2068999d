"""Simulated CT data: phantoms in 1/mm, transmission noise, attenuation units.

* Phantoms (:mod:`~medrecon.ct.simulate.phantoms`), all in physical coordinates and
  rasterised onto a :class:`~medrecon.geometry.VolumeGeometry` with sub-sample averaging:
  :func:`shepp_logan` (2D and 3D), :func:`forbild_head_like`, :func:`thorax_slice` with
  :func:`thorax_slice_rois`, :func:`random_ellipses`; the rasterisers behind them,
  :func:`ellipses` and :func:`ellipsoids` (:mod:`~medrecon.ct.simulate.shapes`).
* Noise (:mod:`~medrecon.ct.simulate.noise`): :func:`poisson_noise` =
  :func:`transmission_counts` + :func:`log_transform`.
* Energy-resolved X-ray physics: tube spectra from spekpy (:mod:`~medrecon.ct.simulate.spectra`:
  :func:`tube_spectrum`, :class:`Spectrum`), materials with xraylib attenuation
  (:mod:`~medrecon.ct.simulate.materials`: :class:`Material`, :func:`get_material`, ``WATER``,
  ``TITANIUM``, ...), and the polychromatic scan with water beam-hardening precorrection
  (:mod:`~medrecon.ct.simulate.polychromatic`: :func:`polychromatic_sinogram`,
  :func:`water_precorrection`, :func:`material_maps_from_image`, :func:`monochromatic_image`).
* Metal phantoms (:mod:`~medrecon.ct.simulate.metal_phantoms`): :func:`pelvis_slice` with
  :class:`Implant` objects, :func:`random_implants`.
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

from medrecon.ct.simulate.materials import (
    AIR,
    AMALGAM,
    CORTICAL_BONE,
    GOLD,
    IRON,
    MATERIALS,
    SOFT_TISSUE,
    STEEL,
    TITANIUM,
    WATER,
    Material,
    get_material,
)
from medrecon.ct.simulate.metal_phantoms import (
    HIP_IMPLANTS,
    PELVIS_HU,
    Implant,
    MetalPhantom,
    pelvis_slice,
    random_implants,
)
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
from medrecon.ct.simulate.polychromatic import (
    MaterialMap,
    WaterCorrection,
    material_maps_from_image,
    monochromatic_image,
    polychromatic_sinogram,
    water_precorrection,
)
from medrecon.ct.simulate.shapes import (
    ELLIPSE_COLUMNS,
    ELLIPSOID_COLUMNS,
    Combine,
    ellipses,
    ellipsoids,
)
from medrecon.ct.simulate.spectra import Detector, Spectrum, monochromatic, tube_spectrum
from medrecon.ct.simulate.units import (
    EFFECTIVE_ENERGY_KEV,
    MU_AIR,
    MU_WATER,
    from_hu,
    to_hu,
)

__all__ = [
    "AIR",
    "AMALGAM",
    "CORTICAL_BONE",
    "EFFECTIVE_ENERGY_KEV",
    "ELLIPSE_COLUMNS",
    "ELLIPSOID_COLUMNS",
    "FORBILD_LIKE_HU",
    "GOLD",
    "HIP_IMPLANTS",
    "IRON",
    "MATERIALS",
    "MU_AIR",
    "MU_WATER",
    "PELVIS_HU",
    "SOFT_TISSUE",
    "STEEL",
    "THORAX_HU",
    "TITANIUM",
    "WATER",
    "Combine",
    "Detector",
    "Implant",
    "Material",
    "MaterialMap",
    "MetalPhantom",
    "Spectrum",
    "WaterCorrection",
    "ZeroCounts",
    "ellipses",
    "ellipsoids",
    "forbild_head_like",
    "from_hu",
    "get_material",
    "log_transform",
    "material_maps_from_image",
    "monochromatic",
    "monochromatic_image",
    "pelvis_slice",
    "poisson_noise",
    "polychromatic_sinogram",
    "random_ellipse_params",
    "random_ellipses",
    "random_implants",
    "shepp_logan",
    "shepp_logan_params",
    "thorax_slice",
    "thorax_slice_rois",
    "to_hu",
    "transmission_counts",
    "tube_spectrum",
    "water_precorrection",
]
