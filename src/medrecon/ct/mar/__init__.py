"""Metal artifact reduction in the sinogram domain.

* :func:`segment_metal`, :func:`metal_trace`, :func:`interpolate_trace` - the building blocks
  (:mod:`~medrecon.ct.mar.trace`).
* :func:`mar` with :func:`li_mar` and :func:`nmar` - correct a measured sinogram of any 2D
  parallel/fan or 3D parallel/cone scan (or any geometry with a ``reconstruct`` callable), on
  numpy or torch data; :func:`frequency_split` for an FSMAR-style variant
  (:mod:`~medrecon.ct.mar.methods`).
* :func:`mar_from_image` - the weaker image-domain path for PACS use without raw data.

Examples
--------
>>> import numpy as np
>>> from medrecon import FanBeam2D, Projector, VolumeGeometry
>>> vol = VolumeGeometry(shape=(64, 64), voxel_size=2.0)
>>> geom = FanBeam2D(angles=np.linspace(0, 2 * np.pi, 120, endpoint=False), n_det=96,
...                  det_spacing=2.0, src_iso=300.0, iso_det=200.0)
>>> yy, xx = (np.mgrid[-32:32, -32:32] + 0.5) * 2.0
>>> img = np.where(xx**2 + yy**2 < 50**2, 0.02, 0.0)
>>> img[(xx - 20) ** 2 + yy**2 < 16] = 0.4
>>> res = nmar(Projector(geom, vol)(img), geom, vol)
>>> res.method, res.image.shape
('nmar', (64, 64))
"""

from __future__ import annotations

from medrecon.ct.mar.methods import (
    MARMethod,
    MARResult,
    frequency_split,
    li_mar,
    mar,
    mar_from_image,
    nmar,
    nmar_prior,
    normalized_interpolation,
)
from medrecon.ct.mar.trace import (
    DEFAULT_METAL_THRESHOLD_HU,
    dilate,
    interpolate_trace,
    metal_trace,
    segment_metal,
)

__all__ = [
    "DEFAULT_METAL_THRESHOLD_HU",
    "MARMethod",
    "MARResult",
    "dilate",
    "frequency_split",
    "interpolate_trace",
    "li_mar",
    "mar",
    "mar_from_image",
    "metal_trace",
    "nmar",
    "nmar_prior",
    "normalized_interpolation",
    "segment_metal",
]
