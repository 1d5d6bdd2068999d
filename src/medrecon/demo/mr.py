"""The demo's third case: 4x accelerated multi-coil MR, zero-filled vs CG-SENSE vs CS.

1. :func:`~medrecon.mr.simulate.brain_phantom` (T2-weighted spin echo, smooth background phase)
   seen by :data:`MR_COILS` :func:`~medrecon.mr.simulate.birdcage_maps` coils, complex Gaussian
   noise, fully sampled k-space;
2. a fastMRI random mask (:func:`~medrecon.mr.masks.random_mask`: acceleration 4, centre fraction
   0.08, seed 0) keeps a quarter of the phase-encoding lines;
3. coil maps estimated from the undersampled data's own calibration lines by
   :func:`~medrecon.mr.espirit.espirit` (as a scanner would; the simulated maps are not used);
4. reconstructions: zero-filled (``A^H y`` with the ESPIRiT maps), CG-SENSE
   (:func:`~medrecon.mr.sense.sense_recon`), l1-wavelet compressed sensing
   (:func:`~medrecon.mr.cs.cs_wavelet`); the fully sampled coil combination is the reference;
5. NRMSE, PSNR and SSIM of the magnitude images inside the head, and each result's relative
   data-consistency residual ``||M (F S x) - y|| / ||y||`` on the sampled lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from medrecon.geometry import VolumeGeometry
from medrecon.mr.cs import cs_wavelet
from medrecon.mr.espirit import espirit
from medrecon.mr.masks import random_mask
from medrecon.mr.sense import SenseOperator, sense_recon
from medrecon.mr.simulate import birdcage_maps, brain_phantom, simulate_kspace
from medrecon.qc import nrmse, psnr, ssim

__all__ = [
    "MR_ACCELERATION",
    "MR_CENTER_FRACTION",
    "MR_COILS",
    "MR_CS_LAMBDA",
    "MR_MIN_SIZE",
    "MR_NOISE_STD",
    "MR_SENSE_LAMBDA",
    "run_mr_case",
]

#: smallest image side of the MR case (the demo's CT size, if larger)
MR_MIN_SIZE = 64
#: receive coils of the simulated head coil
MR_COILS = 8
#: undersampling: fastMRI random mask, acceleration and centre fraction
MR_ACCELERATION = 4
MR_CENTER_FRACTION = 0.08
#: complex noise std per real/imaginary part, relative to the phantom's peak magnitude (1.0)
MR_NOISE_STD = 0.01
#: Tikhonov weight and iterations of CG-SENSE (early stopping regularises too: more
#: iterations amplify the noise at 4x)
MR_SENSE_LAMBDA = 0.01
MR_SENSE_ITER = 10
#: l1 weight of the CS reconstruction (Haar wavelet, random cycle shifts; units of A^H y for a
#: phantom of peak magnitude 1), tuned on this phantom: 0.001 -> NRMSE 0.050, 0.002 -> 0.037,
#: 0.004 -> 0.039 at 256 x 256
MR_CS_LAMBDA = 0.002
MR_CS_WAVELET = "haar"
MR_CS_ITER = 60
#: the reconstructions: key -> label
MR_RECONS = {
    "zero_filled": "Zero-filled (4x)",
    "sense": "CG-SENSE (4x)",
    "cs_wavelet": "CS l1-wavelet (4x)",
}

_T = Any


def run_mr_case(
    size: int, *, seed: int, step: Callable[[str, Callable[[], _T]], _T]
) -> tuple[dict[str, Any], list[tuple[np.ndarray, str]], VolumeGeometry]:
    """Simulate, undersample, calibrate, reconstruct and score the MR case.

    Parameters
    ----------
    size : int
        Image side in pixels: the demo's CT size, at least :data:`MR_MIN_SIZE`.
    seed : int
        Seed of the k-space noise.
    step : callable
        ``step(name, fn)`` runs ``fn`` as one timed, progress-reported demo step.

    Returns
    -------
    section : dict
        The ``mr`` part of ``metrics.json``.
    images : list of (ndarray, str)
        Magnitude images (reference first) with their titles, for the figure.
    volume : VolumeGeometry
        The image grid (1 mm pixels) for the figure's axes.
    """
    # at least 64 x 64: smaller grids leave too few calibration lines for ESPIRiT
    size = max(int(size), MR_MIN_SIZE)
    truth = step("mr phantom", lambda: brain_phantom(size, phase=1.0))
    maps_true = birdcage_maps(size, MR_COILS)
    full = step(
        "mr scan", lambda: simulate_kspace(truth, maps_true, noise_std=MR_NOISE_STD, seed=seed)
    )
    # at least 12 calibration lines (at most all the lines the acceleration allows), so that
    # ESPIRiT's 6 x 6 kernels fit on small test grids; at 256 the fastMRI 0.08 gives 20 lines
    lines = max(round(size * MR_CENTER_FRACTION), min(12, size // MR_ACCELERATION))
    center_fraction = lines / size
    mask_row = random_mask(full.shape, center_fraction, MR_ACCELERATION, seed=0)
    mask = np.broadcast_to(np.asarray(mask_row, dtype=np.float32).reshape(1, -1), full.shape[-2:])
    kspace = (full * mask).astype(np.complex64)
    n_low = round(size * center_fraction)
    maps = step("espirit", lambda: espirit(kspace, calib=(min(24, size), n_low)))
    op = SenseOperator(maps)
    reference = np.asarray(op.adjoint(full))
    recons: dict[str, np.ndarray] = {}
    recons["zero_filled"] = np.asarray(SenseOperator(maps, mask).adjoint(kspace))
    recons["sense"] = np.asarray(
        step(
            "cg-sense",
            lambda: sense_recon(kspace, maps, mask, lam=MR_SENSE_LAMBDA, n_iter=MR_SENSE_ITER),
        )
    )
    recons["cs_wavelet"] = np.asarray(
        step(
            "cs wavelet",
            lambda: cs_wavelet(
                kspace,
                maps,
                mask,
                lam=MR_CS_LAMBDA,
                wavelet=MR_CS_WAVELET,
                random_shift=True,
                seed=seed,
                n_iter=MR_CS_ITER,
            ),
        )
    )
    ref_mag = np.abs(reference).astype(np.float64)
    head = np.abs(truth) > 0.05
    peak = float(ref_mag[head].max())
    masked_op = SenseOperator(maps, mask)
    y_norm = float(np.linalg.norm(kspace))
    # what the noise alone leaves: the residual of the noise-free data on the acquired lines
    clean = simulate_kspace(truth, maps_true) * mask
    noise_floor = float(np.linalg.norm(kspace - clean)) / y_norm

    def score(x: np.ndarray) -> dict[str, float]:
        mag = np.abs(x).astype(np.float64)
        residual = np.asarray(masked_op(x.astype(np.complex64))) - kspace
        return {
            "nrmse": nrmse(mag, ref_mag, mask=head),
            "psnr_db": psnr(mag, ref_mag, data_range=peak, mask=head),
            "ssim": ssim(mag, ref_mag, data_range=peak, mask=head),
            "data_consistency": float(np.linalg.norm(residual)) / y_norm,
        }

    scores = step("mr metrics", lambda: {k: score(v) for k, v in recons.items()})
    section: dict[str, Any] = {
        "phantom": {
            "name": "medrecon.mr.simulate.brain_phantom",
            "contrast": "spin echo TR 3000 ms, TE 90 ms (T2-weighted)",
            "shape": [size, size],
            "background_phase_rad": 1.0,
        },
        "acquisition": {
            "coils": MR_COILS,
            "coil_maps": "medrecon.mr.simulate.birdcage_maps (not given to the reconstruction)",
            "noise_std": MR_NOISE_STD,
            "mask": "medrecon.mr.masks.random_mask (fastMRI rules)",
            "acceleration": MR_ACCELERATION,
            "center_fraction": center_fraction,
            "sampled_fraction": float(np.mean(mask_row)),
            "seed": seed,
        },
        "calibration": {"method": "medrecon.mr.espirit.espirit", "calib": [min(24, size), n_low]},
        "settings": {
            "sense": {"lam": MR_SENSE_LAMBDA, "n_iter": MR_SENSE_ITER},
            "cs_wavelet": {
                "lam": MR_CS_LAMBDA,
                "n_iter": MR_CS_ITER,
                "wavelet": MR_CS_WAVELET,
                "random_shift": True,
                "solver": "fista",
            },
        },
        "metrics_definition": {
            "reference": "fully sampled k-space combined with the ESPIRiT maps (A^H y)",
            "mask": "inside the head (phantom magnitude > 0.05)",
            "psnr_ssim": "magnitude images, data range = the reference's peak in the head",
            "data_consistency": "||M F S x - y|| / ||y|| on the acquired lines",
            "noise_floor": "||M n|| / ||y||: the residual of the noise-free object itself",
        },
        "noise_floor": noise_floor,
        "reconstructions": {k: {"label": MR_RECONS[k], **scores[k]} for k in MR_RECONS},
    }
    images = [(ref_mag, "Fully sampled (reference)")]
    for k, label in MR_RECONS.items():
        s = scores[k]
        images.append(
            (
                np.abs(recons[k]),
                f"{label}\nNRMSE {s['nrmse']:.3f}, SSIM {s['ssim']:.3f}",
            )
        )
    volume = VolumeGeometry(shape=(size, size), voxel_size=1.0)
    return section, images, volume
