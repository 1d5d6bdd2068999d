"""MR reconstruction: centred FFTs, Cartesian sampling masks and SENSE.

* :mod:`medrecon.mr.fft`: :func:`fft2c`, :func:`ifft2c`, :func:`fftnc`,
  :func:`ifftnc`, :func:`rss` (numpy and torch);
* :mod:`medrecon.mr.masks`: fastMRI-compatible :func:`random_mask` and
  :func:`equispaced_mask`;
* :mod:`medrecon.mr.sense`: the encoding operator :class:`SenseOperator` and
  :func:`sense_recon` (CG-SENSE).

k-space layout: ``(coils, ky, kx)`` or ``(slices, coils, ky, kx)``, DC at the
centre of the grid.
"""

from __future__ import annotations

from medrecon.mr.fft import fft2c, fftnc, ifft2c, ifftnc, rss
from medrecon.mr.masks import center_lines, equispaced_mask, random_mask
from medrecon.mr.sense import SenseOperator, sense_recon

__all__ = [
    "SenseOperator",
    "center_lines",
    "equispaced_mask",
    "fft2c",
    "fftnc",
    "ifft2c",
    "ifftnc",
    "random_mask",
    "rss",
    "sense_recon",
]
