"""The demo's second case: hip prostheses, simulated with a real spectrum, corrected by LI and NMAR.

1. :func:`~medrecon.ct.simulate.metal_phantoms.pelvis_slice` with a titanium prosthesis head in
   each femoral head (:data:`~medrecon.ct.simulate.metal_phantoms.HIP_IMPLANTS`);
2. an energy-resolved fan-beam scan (the CT case's gantry): a 120 kVp tungsten spectrum from
   spekpy, mass attenuation from xraylib, an energy-integrating detector, Poisson noise at
   :data:`MAR_I0` photons per detector element and view, and the water beam-hardening
   precorrection every scanner applies;
3. FBP of the precorrected data (uncorrected), :func:`~medrecon.ct.mar.li_mar` and
   :func:`~medrecon.ct.mar.nmar`; the same scan of the pelvis without implants is reconstructed
   too, for reference (MAR can score above it: its interpolated rays carry no noise);
4. PSNR and SSIM in the HU window [-175, 275] over the body outside the metal (grown by 2
   voxels), against the tissue's attenuation at 70 keV, and a streak index: the HU standard
   deviation in two uniform muscle discs next to the joints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

from medrecon.ct.analytic import fbp
from medrecon.ct.mar import li_mar, nmar
from medrecon.ct.simulate import to_hu
from medrecon.ct.simulate.materials import get_material
from medrecon.ct.simulate.metal_phantoms import MetalPhantom, pelvis_slice
from medrecon.ct.simulate.polychromatic import (
    MaterialMap,
    material_maps_from_image,
    monochromatic_image,
    polychromatic_sinogram,
    water_precorrection,
)
from medrecon.ct.simulate.spectra import tube_spectrum
from medrecon.geometry import FanBeam2D, VolumeGeometry
from medrecon.projectors import Projector
from medrecon.qc import psnr, roi_stats, ssim

__all__ = [
    "MAR_FILTER",
    "MAR_I0",
    "MAR_KVP",
    "MAR_WINDOW_HU",
    "metal_phantom_maps",
    "run_mar_case",
]

#: tube voltage (kVp) and added filtration of the simulated scan
MAR_KVP = 120.0
MAR_FILTRATION = (("Al", 2.5), ("Cu", 0.1))
#: unattenuated photons per detector element and view
MAR_I0 = 1e6
#: ramp-filter window of every reconstruction of this case
MAR_FILTER = "shepp-logan"
#: HU window of the metrics and the figure (the usual soft-tissue window of MAR papers)
MAR_WINDOW_HU = (-175.0, 275.0)
#: the reconstructions: key -> label
MAR_RECONS = {
    "uncorrected": "Uncorrected (FBP)",
    "li": "LI-MAR",
    "nmar": "NMAR",
}


def metal_phantom_maps(phantom: MetalPhantom) -> list[MaterialMap]:
    """Material density maps of a metal phantom: tissue (water/bone split) plus its metals.

    The tissue's density is scaled down where metal fills part of a voxel; each metal gets
    its nominal density times its fraction.
    """
    metal_total = sum(phantom.metal_fraction.values(), np.zeros(phantom.tissue_hu.shape))
    keep = np.clip(1.0 - metal_total, 0.0, 1.0)
    maps = [
        MaterialMap(m.material, np.asarray(m.density) * keep)
        for m in material_maps_from_image(phantom.tissue_hu, units="hu")
    ]
    for name, frac in phantom.metal_fraction.items():
        mat = get_material(name)
        maps.append(MaterialMap(mat, mat.density * frac))
    return maps


def _scores(
    mu: np.ndarray, truth_hu: np.ndarray, mask: np.ndarray, streak: np.ndarray
) -> dict[str, float]:
    lo, hi = MAR_WINDOW_HU
    hu = np.clip(np.asarray(to_hu(mu), dtype=np.float64), lo, hi)
    ref = np.clip(truth_hu, lo, hi)
    raw_hu = np.asarray(to_hu(mu), dtype=np.float64)
    stats = roi_stats(raw_hu, streak)
    return {
        "psnr_db": psnr(hu, ref, data_range=hi - lo, mask=mask),
        "ssim": ssim(hu, ref, data_range=hi - lo, mask=mask),
        "streak_index_hu": stats["std"],
        "streak_roi_mean_hu": stats["mean"],
    }


def run_mar_case(
    volume: VolumeGeometry,
    geometry: FanBeam2D,
    *,
    rng: np.random.Generator,
    step: Callable[[str, Callable[[], Any]], Any],
) -> tuple[dict[str, Any], list[tuple[np.ndarray, str]], dict[str, np.ndarray]]:
    """Run the hip-prosthesis case on the demo's grid and gantry.

    ``step(name, fn)`` runs and times each stage (the demo's progress bar). Returns the
    ``"mar"`` section of ``metrics.json``, the figure's images (HU) with their titles, and the
    reconstructions in HU by key (``"uncorrected"``, ``"li"``, ``"nmar"``, ``"no_metal"``) with
    the streak ROI mask (``"streak_roi"``).
    """
    phantom: MetalPhantom = step("mar phantom", lambda: pelvis_slice(volume))
    maps = metal_phantom_maps(phantom)
    # the same pelvis without implants (the tissue continues under them)
    free = material_maps_from_image(phantom.tissue_hu, units="hu")
    spectrum = step("mar spectrum", lambda: tube_spectrum(MAR_KVP, filtration=MAR_FILTRATION))
    A = Projector(geometry, volume, backend="cpu")
    correction = water_precorrection(spectrum)

    def simulate(m: list[MaterialMap]) -> np.ndarray:
        p = polychromatic_sinogram(m, A, spectrum, i0=MAR_I0, rng=rng)
        return np.asarray(correction(np.asarray(p, dtype=np.float64)), dtype=np.float32)

    sino = step("mar scan", lambda: simulate(maps))
    sino_free = step("mar scan without metal", lambda: simulate(free))
    opts: dict[str, Any] = {"filter": MAR_FILTER, "short_scan": False}
    recons: dict[str, np.ndarray] = {}
    recons["uncorrected"] = np.asarray(step("mar fbp", lambda: fbp(sino, geometry, volume, **opts)))
    li = step("li-mar", lambda: li_mar(sino, geometry, volume, recon_options=opts))
    nm = step("nmar", lambda: nmar(sino, geometry, volume, recon_options=opts))
    recons["li"] = np.asarray(li.image)
    recons["nmar"] = np.asarray(nm.image)
    recons["no_metal"] = np.asarray(fbp(sino_free, geometry, volume, **opts))

    truth_hu = np.asarray(to_hu(monochromatic_image(free, 70.0)), dtype=np.float64)
    metal = phantom.metal_mask
    grown = ndimage.binary_dilation(metal, iterations=2)
    mask = phantom.rois["body"] & ~grown
    streak = phantom.rois["streak_right"] | phantom.rois["streak_left"]
    scores = {k: _scores(v, truth_hu, mask, streak) for k, v in recons.items()}
    found = nm.metal_mask
    section: dict[str, Any] = {
        "phantom": {
            "name": "medrecon.ct.simulate.metal_phantoms.pelvis_slice",
            "size_mm": [250.0, 380.0],
            "implants": [
                {
                    "center_yx_mm": [imp.center_y, imp.center_x],
                    "radius_mm": imp.radius_x,
                    "material": imp.material,
                }
                for imp in phantom.implants
            ],
        },
        "scan": {
            "spectrum": spectrum.description,
            "mean_energy_kev": spectrum.mean_energy,
            "detector": "energy integrating",
            "i0": MAR_I0,
            "i0_unit": "photons per detector element and view",
            "precorrection": "water beam-hardening polynomial to 70 keV",
            "geometry": "the CT case's fan beam",
        },
        "fbp": {"filter": MAR_FILTER, "short_scan": False},
        "metal": {
            "threshold_hu": 2500.0,
            "segmented_voxels": int(found.sum()),
            "true_metal_voxels": int(metal.sum()),
            "trace_fraction": float(nm.trace.mean()),
        },
        "metrics_definition": {
            "reference": "tissue attenuation at 70 keV (no metal) in HU",
            "window_hu": list(MAR_WINDOW_HU),
            "mask": "body outside the metal grown by 2 voxels",
            "psnr_ssim": "clipped to the window, data range = its width (450 HU)",
            "streak_index_hu": "HU standard deviation in two uniform muscle discs (radius "
            "10 mm) next to the hip joints (no clipping)",
            "no_metal": "the same scan and noise model of the pelvis without implants, for "
            "reference; MAR can score above it because the interpolated rays carry no noise",
        },
        "reconstructions": {
            k: {"label": MAR_RECONS.get(k, "No implants (reference scan)"), **scores[k]}
            for k in recons
        },
    }
    images = [(truth_hu, "Ground truth (70 keV, no metal)")]
    for k, label in MAR_RECONS.items():
        s = scores[k]
        images.append(
            (
                np.asarray(to_hu(recons[k])),
                f"{label}\nPSNR {s['psnr_db']:.2f} dB, streak {s['streak_index_hu']:.0f} HU",
            )
        )
    hu = {k: np.asarray(to_hu(v), dtype=np.float64) for k, v in recons.items()}
    hu["streak_roi"] = streak
    return section, images, hu
