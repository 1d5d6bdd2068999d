"""Quality control: full-reference image-quality metrics on arrays.

:mod:`~medrecon.qc.metrics`: :func:`psnr`, :func:`ssim` (and the local :func:`ssim_map`),
:func:`rmse`, :func:`nrmse` and :func:`roi_stats`, on numpy arrays or CPU torch tensors, over
the whole image or a boolean mask. ``qc`` needs only arrays (and geometry metadata), never a
projector or a reconstruction, so it runs wherever the images are.

Examples
--------
>>> import numpy as np
>>> ref = np.zeros((16, 16))
>>> round(psnr(ref + 10.0, ref, data_range=2000.0), 2)  # 10 HU error on a 2000 HU scale
46.02
"""

from __future__ import annotations

from medrecon.qc.metrics import (
    SSIM_K1,
    SSIM_K2,
    SSIM_TRUNCATE,
    Normalization,
    RoiStats,
    nrmse,
    psnr,
    rmse,
    roi_stats,
    ssim,
    ssim_map,
)

__all__ = [
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_TRUNCATE",
    "Normalization",
    "RoiStats",
    "nrmse",
    "psnr",
    "rmse",
    "roi_stats",
    "ssim",
    "ssim_map",
]
