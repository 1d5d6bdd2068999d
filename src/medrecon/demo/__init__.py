"""The demo: a simulated low-dose chest scan (FBP and TV) and hip prostheses (LI and NMAR).

:func:`run_demo` is what ``medrecon demo`` runs. The low-dose chest case:

1. an axial chest slice (:func:`~medrecon.ct.simulate.thorax_slice`, 350 x 250 mm, attenuation
   in 1/mm at 70 keV) on a 400 mm field of view;
2. its noise-free fan-beam sinogram (flat detector, source 595 mm and detector 490 mm from
   the isocentre, a clinical-like gantry) through :class:`~medrecon.projectors.Projector`;
3. Poisson noise at a normal dose (``I0 = 1e6`` photons per detector element and view) and a
   low dose (``I0 = 1e4``), seeded;
4. FBP (:func:`~medrecon.ct.analytic.fbp`, Shepp-Logan window) of both, and TV-regularised
   least squares (:func:`~medrecon.ct.iterative.pdhg_tv`, non-negative) of the low-dose data,
   started from the low-dose FBP;
5. PSNR and SSIM against the phantom in HU over the body, and the noise (HU standard deviation)
   in a uniform soft-tissue disc, with :mod:`medrecon.qc`;
6. ``ct_panel.png``, ``metrics.json`` and ``report.md`` in the output folder.

The metal case (:mod:`medrecon.demo.mar`) scans a pelvis with two titanium hip prostheses with
a 120 kVp spectrum on the same gantry and writes ``mar_panel.png`` (uncorrected, LI-MAR, NMAR)
and a ``"mar"`` section of ``metrics.json`` and ``report.md``. The third case
(:mod:`medrecon.demo.mr`) reconstructs 4x undersampled 8-coil brain MR (zero-filled, CG-SENSE,
l1-wavelet CS with ESPIRiT maps) into ``mr_panel.png`` and an ``"mr"`` section.

TV weight
---------
The objective is ``0.5 ||A x - y||^2 + lam TV(x)`` with ``x`` in 1/mm and TV's finite
differences per mm. Where the data term and TV balance, ``lam`` grows like the number of views
times the pixel area (each view adds a term to ``A^T (A x - y)`` of the size of a pixel's
chord, while a pixel's TV subgradient scales with ``1 / voxel size``). :data:`TV_LAM_REF` was
tuned once, for PSNR over the body, at the default 256 x 256 pixels (1.5625 mm) and 360 views;
other grids and view counts get ``TV_LAM_REF * (n_views / 360) * (voxel_size / 1.5625 mm)^2``.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from medrecon.ct.analytic import fbp
from medrecon.ct.iterative import pdhg_tv
from medrecon.ct.simulate import (
    EFFECTIVE_ENERGY_KEV,
    MU_WATER,
    THORAX_HU,
    poisson_noise,
    thorax_slice,
    thorax_slice_rois,
    to_hu,
)
from medrecon.demo._common import _check_int, _panel_png, _timed, _write_atomic
from medrecon.demo.dicom_out import write_demo_dicom
from medrecon.demo.mar import MAR_WINDOW_HU, run_mar_case
from medrecon.demo.mr import MR_RECONS, run_mr_case
from medrecon.geometry import FanBeam2D, VolumeGeometry
from medrecon.projectors import Projector
from medrecon.qc import psnr, rmse, roi_stats, ssim
from medrecon.testing import dot_test

__all__ = [
    "DEMO_FILTER",
    "DEMO_FOV",
    "DEMO_ISO_DET",
    "DEMO_SRC_ISO",
    "HU_CLIP",
    "I0_LOW",
    "I0_NORMAL",
    "TV_LAM_REF",
    "WINDOW",
    "demo_lambda",
    "run_demo",
]

_T = TypeVar("_T")

#: field of view (mm): the 350 x 250 mm chest with room around it
DEMO_FOV = 400.0
#: source-to-isocentre and isocentre-to-detector distances (mm), clinical-like
DEMO_SRC_ISO = 595.0
DEMO_ISO_DET = 490.0
#: ramp-filter window of the FBP reconstructions (one filter for both doses)
DEMO_FILTER = "shepp-logan"
#: unattenuated photons per detector element and view
I0_NORMAL = 1e6
I0_LOW = 1e4
#: HU range of the metrics (values are clipped to it); PSNR and SSIM use its width as the
#: data range
HU_CLIP = (-1000.0, 1000.0)
#: display window of the figure: (width, level) in HU, soft tissue
WINDOW = (400.0, 40.0)
#: TV weight at the reference grid and view count (see the module docstring)
TV_LAM_REF = 5.0
_LAM_REF_VIEWS = 360
_LAM_REF_VOXEL = 400.0 / 256

_DOT_DTYPES = (np.float64, np.float32)
_FILES = {
    "figure": "ct_panel.png",
    "mar_figure": "mar_panel.png",
    "mr_figure": "mr_panel.png",
    "metrics": "metrics.json",
    "report": "report.md",
}
#: the three reconstructions: key -> (label for the figure and the report, dose)
_RECONS = {
    "fbp_normal_dose": ("FBP, normal dose", "normal"),
    "fbp_low_dose": ("FBP, low dose", "low"),
    "tv_low_dose": ("TV (PDHG), low dose", "low"),
}


def demo_lambda(n_views: int, voxel_size: float) -> float:
    """The TV weight the demo uses for ``n_views`` views and square pixels of ``voxel_size`` mm.

    ``TV_LAM_REF * (n_views / 360) * (voxel_size / (400 / 256))^2`` (see the module docstring).

    Examples
    --------
    >>> demo_lambda(360, 400 / 256)
    5.0
    >>> demo_lambda(90, 400 / 64)  # a quarter of the views, 16 times the pixel area
    20.0
    """
    return TV_LAM_REF * (n_views / _LAM_REF_VIEWS) * (voxel_size / _LAM_REF_VOXEL) ** 2


# --------------------------------------------------------------------------- helpers


def _scan(size: int, n_views: int) -> tuple[VolumeGeometry, FanBeam2D]:
    """The image grid and the fan-beam geometry of the demo.

    The detector pitch, seen at the isocentre, equals the pixel size, and the fan covers the
    circle inscribed in the field of view (radius 200 mm; the chest reaches 175 mm).
    """
    voxel = DEMO_FOV / size
    volume = VolumeGeometry(shape=(size, size), voxel_size=voxel)
    sdd = DEMO_SRC_ISO + DEMO_ISO_DET
    pitch = voxel * sdd / DEMO_SRC_ISO
    half_fan = math.asin(0.5 * DEMO_FOV / DEMO_SRC_ISO)
    n_det = math.ceil(2.0 * sdd * math.tan(half_fan) / pitch)
    geometry = FanBeam2D(
        angles=np.linspace(0.0, 2.0 * np.pi, n_views, endpoint=False),
        n_det=n_det,
        det_spacing=pitch,
        src_iso=DEMO_SRC_ISO,
        iso_det=DEMO_ISO_DET,
        detector="flat",
    )
    return volume, geometry


def _clip_hu(mu: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(to_hu(mu), dtype=np.float64), *HU_CLIP)


def _metrics(
    recon: np.ndarray, truth_hu: np.ndarray, rois: dict[str, np.ndarray]
) -> dict[str, float | int]:
    """PSNR, SSIM and RMSE over the body (clipped HU), mean and noise in the uniform disc."""
    hu = _clip_hu(recon)
    data_range = HU_CLIP[1] - HU_CLIP[0]
    body = rois["body"]
    # the noise ROI (+40 HU) lies far inside the clipping range: the clip changes nothing there
    stats = roi_stats(hu, rois["uniform_soft_tissue"])
    return {
        "psnr_db": psnr(hu, truth_hu, data_range=data_range, mask=body),
        "ssim": ssim(hu, truth_hu, data_range=data_range, mask=body),
        "rmse_hu": rmse(hu, truth_hu, mask=body),
        "noise_std_hu": stats["std"],
        "roi_mean_hu": stats["mean"],
        "roi_n_voxels": stats["n"],
    }


def _report_md(summary: dict[str, Any]) -> str:
    """The short Markdown report."""
    vol, geo, tv = summary["volume"], summary["geometry"], summary["tv"]
    lines = [
        "# medrecon demo: simulated low-dose chest CT, FBP vs TV",
        "",
        "**Caveat: simulated data.** A mathematical thorax phantom (ellipses, monochromatic at "
        f"{EFFECTIVE_ENERGY_KEV:.0f} keV), projected with the same projector that reconstructs "
        "it, with Poisson noise only (no scatter, beam hardening, electronic noise or motion). "
        "The numbers compare methods on this phantom; they do not predict clinical image "
        "quality.",
        "",
        "## What was simulated",
        "",
        f"- Phantom: `medrecon.ct.simulate.thorax_slice` (350 x 250 mm chest), "
        f"{vol['shape'][0]} x {vol['shape'][1]} pixels of {vol['voxel_size_mm'][0]:.5g} mm "
        f"over a {vol['fov_mm']:.0f} mm field of view.",
        f"- Scan: fan beam, flat detector of {geo['n_det']} elements at "
        f"{geo['det_spacing_mm']:.4g} mm, source-isocentre {geo['src_iso_mm']:.0f} mm, "
        f"isocentre-detector {geo['iso_det_mm']:.0f} mm, {geo['n_views']} views over 360°.",
        f"- Dose: Poisson noise with I0 = {summary['dose']['normal']['i0']:.0e} (normal) and "
        f"{summary['dose']['low']['i0']:.0e} (low) photons per detector element and view, "
        f"seed {summary['dose']['seed']}.",
        f"- FBP: `{summary['fbp']['filter']}` window, both doses.",
        f"- TV: `pdhg_tv` on the low-dose data, λ = {tv['lam']:.4g}, {tv['n_iter']} "
        f"iterations, x >= 0, started from the low-dose FBP.",
        "",
        "## Metrics",
        "",
        f"PSNR and SSIM against the phantom in HU clipped to [{HU_CLIP[0]:.0f}, "
        f"{HU_CLIP[1]:.0f}] (data range {HU_CLIP[1] - HU_CLIP[0]:.0f} HU), over the body; "
        "noise = standard deviation of HU in a uniform soft-tissue disc (radius 20 mm, "
        f"{THORAX_HU['soft_tissue']:.0f} HU) in the heart.",
        "",
        "| reconstruction | PSNR (dB) | SSIM | RMSE (HU) | noise std (HU) | ROI mean (HU) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, (label, _) in _RECONS.items():
        m = summary["reconstructions"][key]
        lines.append(
            f"| {label} | {m['psnr_db']:.2f} | {m['ssim']:.4f} | {m['rmse_hu']:.1f} | "
            f"{m['noise_std_hu']:.1f} | {m['roi_mean_hu']:.1f} |"
        )
    t = summary["timings_s"]
    lines += [
        "",
        "## Timings (seconds)",
        "",
        "| step | time |",
        "| --- | ---: |",
        *(f"| {name.replace('_', ' ')} | {sec:.2f} |" for name, sec in t.items()),
        "",
        "Steps that first run a numba kernel (forward, FBP normal dose, operator norm) include "
        "its compilation unless it was cached. "
        f"Projector dot test: relative error {summary['dot_test']['rel_error_float64']:.1e} "
        "(float64).",
        "",
        f"Figure: `{_FILES['figure']}` (window W {WINDOW[0]:.0f} / L {WINDOW[1]:.0f} HU). "
        f"All numbers: `{_FILES['metrics']}`.",
        "",
    ]
    lines += _mar_report(summary["mar"])
    lines += _mr_report(summary["mr"])
    d = summary["dicom"]
    lines += [
        "## DICOM",
        "",
        f"`dicom/`: {d['n_files']} files in one simulated study: the low-dose chest FBP and the "
        "uncorrected pelvis as original series, the TV reconstruction and the NMAR image as "
        "series linked to them (lineage: algorithm, version, parameters, source images), and a "
        "TID 1500 QC report for each; `dicom/audit.jsonl` holds "
        f"{d['audit_entries']} hash-chained entries (`medrecon audit verify` checks them).",
        "",
    ]
    return "\n".join(lines)


def _mar_report(mar: dict[str, Any]) -> list[str]:
    """The report's metal-artifact section."""
    lo, hi = MAR_WINDOW_HU
    imps = ", ".join(
        f"{i['material']} r={i['radius_mm']:.0f} mm at (y, x) = "
        f"({i['center_yx_mm'][0]:.0f}, {i['center_yx_mm'][1]:.0f}) mm"
        for i in mar["phantom"]["implants"]
    )
    lines = [
        "",
        "## Metal artifact reduction (hip prostheses)",
        "",
        f"Pelvis phantom (380 x 250 mm) with {imps}; scanned with {mar['scan']['spectrum']} "
        f"(mean energy {mar['scan']['mean_energy_kev']:.1f} keV), energy-integrating detector, "
        f"I0 = {mar['scan']['i0']:.0e} photons per element and view, water beam-hardening "
        "precorrection; the same fan beam as above. Metrics against the tissue at 70 keV in "
        f"the window [{lo:.0f}, {hi:.0f}] HU over the body outside the metal (grown by 2 "
        "voxels); streak index = HU standard deviation in two uniform muscle discs next to the "
        "joints. 'No implants' is the same scan of the pelvis without metal, for reference: "
        "the noise and image quality of an artifact-free scan. MAR can score above it in PSNR "
        "and streak index because the interpolated rays (the metal trace) carry no noise.",
        "",
        "| reconstruction | PSNR (dB) | SSIM | streak index (HU) | streak ROI mean (HU) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for m in mar["reconstructions"].values():
        lines.append(
            f"| {m['label']} | {m['psnr_db']:.2f} | {m['ssim']:.4f} | "
            f"{m['streak_index_hu']:.1f} | {m['streak_roi_mean_hu']:.1f} |"
        )
    lines += [
        "",
        f"Metal segmented: {mar['metal']['segmented_voxels']} voxels (true: "
        f"{mar['metal']['true_metal_voxels']}); metal trace: "
        f"{100 * mar['metal']['trace_fraction']:.1f}% of the sinogram. "
        f"Figure: `{_FILES['mar_figure']}` (window [{lo:.0f}, {hi:.0f}] HU).",
        "",
    ]
    return lines


def _mr_report(mr: dict[str, Any]) -> list[str]:
    """The report's MR section."""
    acq, ph = mr["acquisition"], mr["phantom"]
    lines = [
        "## Accelerated multi-coil MR",
        "",
        f"Head phantom `{ph['name']}` ({ph['contrast']}, {ph['shape'][0]} x {ph['shape'][1]}, "
        f"smooth background phase), {acq['coils']} simulated coils, complex noise std "
        f"{acq['noise_std']} (peak magnitude 1); fastMRI random mask, acceleration "
        f"{acq['acceleration']}, centre fraction {acq['center_fraction']} "
        f"({100 * acq['sampled_fraction']:.1f}% of the lines kept). Coil maps by ESPIRiT from "
        "the calibration lines of the undersampled data (the simulated maps are not used). "
        "Reference: the fully sampled k-space combined with those maps. Metrics on magnitude "
        "images inside the head; data consistency = ||M F S x - y|| / ||y|| on the acquired "
        f"lines; the noise alone gives {mr['noise_floor']:.4f} (a result below that floor fits "
        "the noise).",
        "",
        "| reconstruction | NRMSE | PSNR (dB) | SSIM | data consistency |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key in MR_RECONS:
        m = mr["reconstructions"][key]
        lines.append(
            f"| {m['label']} | {m['nrmse']:.4f} | {m['psnr_db']:.2f} | {m['ssim']:.4f} | "
            f"{m['data_consistency']:.4f} |"
        )
    lines += ["", f"Figure: `{_FILES['mr_figure']}`.", ""]
    return lines


# --------------------------------------------------------------------------- demo


def run_demo(
    out_dir: Path | str,
    *,
    size: int = 256,
    n_views: int = 360,
    n_iter: int = 80,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Simulate normal- and low-dose fan-beam scans of a chest, reconstruct, score, report.

    Parameters
    ----------
    out_dir : Path or str
        Folder for the outputs (created if missing). Only ``ct_panel.png``,
        ``mar_panel.png``, ``mr_panel.png``, ``metrics.json``, ``report.md`` and the ``dicom``
        folder inside it are written, each
        atomically (temporary file in the same folder, then :func:`os.replace`).
    size : int, optional
        Image side in pixels (>= 32); the field of view is 400 mm whatever the size
        (256: 1.5625 mm pixels).
    n_views : int, optional
        Number of views over 360 degrees (>= 16).
    n_iter : int, optional
        PDHG-TV iterations (>= 1).
    progress : bool, optional
        Show progress bars on stderr: the demo's steps and the TV solver's iterations.
    seed : int, optional
        Seed of the Poisson noise (>= 0).

    Returns
    -------
    dict
        What ``metrics.json`` holds (phantom, volume and geometry in mm, dose, FBP and TV
        settings, per-reconstruction metrics, dot test, timings in seconds), with ``files``
        holding the absolute paths of the outputs.
    """
    size = _check_int("size", size, 32)
    n_views = _check_int("n_views", n_views, 16)
    n_iter = _check_int("n_iter", n_iter, 1)
    seed = _check_int("seed", seed, 0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    volume, geometry = _scan(size, n_views)
    voxel = float(volume.voxel_size[0])
    lam = demo_lambda(n_views, voxel)
    A = Projector(geometry, volume, backend="cpu")
    rng = np.random.default_rng(seed)
    timings: dict[str, float] = {}
    steps = [
        "phantom",
        "forward",
        "noise",
        "fbp normal dose",
        "fbp low dose",
        "operator norm",
        "tv low dose",
        "metrics",
        "dot test",
        "figure",
        "mar phantom",
        "mar spectrum",
        "mar scan",
        "mar scan without metal",
        "mar fbp",
        "li-mar",
        "nmar",
        "mar figure",
        "mr phantom",
        "mr scan",
        "espirit",
        "cg-sense",
        "cs wavelet",
        "mr metrics",
        "mr figure",
        "dicom",
        "write",
    ]
    t_start = time.perf_counter()
    with tqdm(total=len(steps), desc="medrecon demo", unit="step", disable=not progress) as bar:

        def step(name: str, fn: Callable[[], _T]) -> _T:
            bar.set_postfix_str(name)
            result, timings[name.replace(" ", "_")] = _timed(fn)
            bar.update()
            return result

        mu, rois = step(
            "phantom", lambda: (thorax_slice(volume, dtype=np.float32), thorax_slice_rois(volume))
        )
        sino = np.asarray(step("forward", lambda: A(mu)))
        noisy = step(
            "noise",
            lambda: {
                "normal": np.asarray(poisson_noise(sino, i0=I0_NORMAL, rng=rng)),
                "low": np.asarray(poisson_noise(sino, i0=I0_LOW, rng=rng)),
            },
        )
        recons: dict[str, np.ndarray] = {}
        for dose in ("normal", "low"):
            recons[f"fbp_{dose}_dose"] = np.asarray(
                step(
                    f"fbp {dose} dose",
                    functools.partial(
                        fbp, noisy[dose], geometry, volume, filter=DEMO_FILTER, short_scan=False
                    ),
                )
            )
        norm_A = step("operator norm", lambda: float(A.norm()))
        x0 = np.maximum(recons["fbp_low_dose"], 0.0)
        tv_x, tv_info = step(
            "tv low dose",
            lambda: pdhg_tv(
                A,
                noisy["low"],
                lam=lam,
                x0=x0,
                n_iter=n_iter,
                nonneg=True,
                voxel_size=voxel,
                progress=progress,
                return_info=True,
            ),
        )
        recons["tv_low_dose"] = np.asarray(tv_x)
        truth_hu = _clip_hu(mu)
        scores = step("metrics", lambda: {k: _metrics(recons[k], truth_hu, rois) for k in _RECONS})
        dot64, dot32 = step(
            "dot test",
            lambda: tuple(dot_test(A, dtype=dt, seed=0, rtol=math.inf) for dt in _DOT_DTYPES),
        )
        png = step(
            "figure",
            lambda: _panel_png(
                [(np.asarray(to_hu(mu)), "Ground truth (thorax phantom)")]
                + [
                    (
                        np.asarray(to_hu(recons[k])),
                        f"{label}\nPSNR {scores[k]['psnr_db']:.2f} dB, "
                        f"SSIM {scores[k]['ssim']:.3f}",
                    )
                    for k, (label, _) in _RECONS.items()
                ],
                volume,
                f"Simulated fan-beam CT of a thorax phantom: {size}x{size} pixels, "
                f"{n_views} views; I0 normal {I0_NORMAL:.0e}, low {I0_LOW:.0e}; "
                f"window W {WINDOW[0]:.0f} / L {WINDOW[1]:.0f} HU; metrics over the body",
                WINDOW,
            ),
        )

        mar_section, mar_images, mar_hu = run_mar_case(volume, geometry, rng=rng, step=step)
        mar_png = step(
            "mar figure",
            lambda: _panel_png(
                mar_images,
                volume,
                "Hip prostheses (titanium), 120 kVp polychromatic fan-beam scan with water "
                f"precorrection; {size}x{size} pixels, {n_views} views; window "
                f"[{MAR_WINDOW_HU[0]:.0f}, {MAR_WINDOW_HU[1]:.0f}] HU",
                (MAR_WINDOW_HU[1] - MAR_WINDOW_HU[0], 0.5 * sum(MAR_WINDOW_HU)),
            ),
        )

        mr_section, mr_images, mr_volume = run_mr_case(size, seed=seed, step=step)
        mr_png = step(
            "mr figure",
            lambda: _panel_png(
                mr_images,
                mr_volume,
                f"Simulated 8-coil brain MR (T2-weighted, {size}x{size}), fastMRI random mask "
                "4x (centre fraction 0.08), ESPIRiT maps from the calibration lines; "
                "magnitude, metrics inside the head",
                (1.0, 0.5),
                unit="magnitude (a.u.)",
            ),
        )

        low = noisy["low"]
        residual = float(np.linalg.norm(np.asarray(A(recons["tv_low_dose"])) - low))
        dicom_summary = step(
            "dicom",
            lambda: write_demo_dicom(
                out,
                voxel_mm=voxel,
                chest_fbp_hu=np.asarray(to_hu(recons["fbp_low_dose"]), dtype=np.float64),
                chest_tv_hu=np.asarray(to_hu(recons["tv_low_dose"]), dtype=np.float64),
                chest_roi=rois["uniform_soft_tissue"],
                chest_residual=residual / float(np.linalg.norm(low)),
                tv_parameters={"lam": lam, "n_iter": n_iter, "nonneg": True},
                pelvis_fbp_hu=mar_hu["uncorrected"],
                pelvis_nmar_hu=mar_hu["nmar"],
                pelvis_roi=mar_hu["streak_roi"],
            ),
        )

        objective = tv_info.objective[-1]
        rel_gap = tv_info.gap[-1] / objective if tv_info.gap and objective else None
        summary: dict[str, Any] = {
            "caveat": "simulated phantom (monochromatic, Poisson noise only, same projector "
            "for simulation and reconstruction); not a clinical image-quality claim",
            "phantom": {
                "name": "medrecon.ct.simulate.thorax_slice",
                "size_mm": [250.0, 350.0],
                "tissues_hu": dict(THORAX_HU),
                "mu_water_per_mm": MU_WATER,
                "energy_kev": EFFECTIVE_ENERGY_KEV,
            },
            "volume": {
                "shape": list(volume.shape),
                "voxel_size_mm": [float(v) for v in volume.voxel_size],
                "fov_mm": DEMO_FOV,
            },
            "geometry": {
                "type": "FanBeam2D",
                "detector": "flat",
                "n_views": n_views,
                "angle_range_deg": [0.0, 360.0],
                "n_det": geometry.n_det,
                "det_spacing_mm": float(geometry.det_spacing),
                "src_iso_mm": DEMO_SRC_ISO,
                "iso_det_mm": DEMO_ISO_DET,
            },
            "dose": {
                "normal": {"i0": I0_NORMAL},
                "low": {"i0": I0_LOW},
                "i0_unit": "photons per detector element and view",
                "noise": "Poisson counts, log transform (counts below 0.5 clipped); "
                "no electronic noise",
                "seed": seed,
            },
            "fbp": {"filter": DEMO_FILTER, "cutoff": 1.0, "short_scan": False},
            "tv": {
                "solver": "medrecon.ct.iterative.pdhg_tv",
                "objective": "0.5 ||A x - y||^2 + lam TV(x), x >= 0; x in 1/mm, TV per mm",
                "lam": lam,
                "lam_rule": f"{TV_LAM_REF} * (n_views / {_LAM_REF_VIEWS}) * "
                f"(voxel_size_mm / {_LAM_REF_VOXEL})^2",
                "n_iter": n_iter,
                "iterations_run": tv_info.n_iter,
                "nonneg": True,
                "x0": "low-dose FBP, negative values set to 0",
                "operator_norm": norm_A,
                "final_objective": objective,
                "final_relative_gap": rel_gap,
                "gap_note": "PDHG's conditional primal-dual gap (upper bound infinite), "
                "relative to the objective",
            },
            "metrics_definition": {
                "reference": "the phantom in HU",
                "hu_clip": list(HU_CLIP),
                "data_range_hu": HU_CLIP[1] - HU_CLIP[0],
                "mask": "body (inside the skin, no partial-volume voxels)",
                "psnr": "medrecon.qc.psnr over the body mask",
                "ssim": "medrecon.qc.ssim (Wang et al. 2004, Gaussian sigma 1.5 px), mean "
                "over the body mask",
                "noise_std_hu": "sample standard deviation (ddof=1) in the uniform "
                "soft-tissue disc (radius 20 mm in the heart, 40 HU)",
            },
            "reconstructions": {
                k: {"label": label, "dose": dose, **scores[k]}
                for k, (label, dose) in _RECONS.items()
            },
            "dot_test": {
                "rel_error_float64": dot64,
                "rel_error_float32": dot32,
                "definition": "medrecon.testing.dot_test: |<Ax,y> - <x,A^T y>| / |<Ax,y>|, "
                "x and y uniform on [0, 1), seed 0",
            },
            "timings_s": dict(timings),
            "timings_note": "steps that first run a numba kernel (forward: projector; fbp normal "
            "dose: backprojector; operator norm: adjoint) include its compilation unless it was "
            "cached; total_time_s leaves out 'write'",
            "mar": mar_section,
            "mr": mr_section,
            "dicom": dicom_summary,
            "files": dict(_FILES),
        }
        summary["total_time_s"] = time.perf_counter() - t_start
        report = _report_md(summary)

        def write() -> None:
            _write_atomic(out / _FILES["figure"], png)
            _write_atomic(out / _FILES["mar_figure"], mar_png)
            _write_atomic(out / _FILES["mr_figure"], mr_png)
            _write_atomic(
                out / _FILES["metrics"],
                (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode("utf-8"),
            )
            _write_atomic(out / _FILES["report"], report.encode("utf-8"))

        step("write", write)

    result = dict(summary)
    result["timings_s"] = dict(timings)
    result["files"] = {k: str((out / v).resolve()) for k, v in _FILES.items()}
    result["files"]["dicom"] = str((out / "dicom").resolve())
    return result
