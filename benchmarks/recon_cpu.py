"""CT reconstruction on the CPU: FBP, SIRT and TV in a LoDoPaB-CT-like setting, and vs ASTRA.

Two parts, one run, one report naming the machine (``--quick`` shrinks every size):

1. **Quality** in a setting modelled on LoDoPaB-CT (Leuschner et al., Scientific Data 8, 109,
   2021): a 362 x 362 image covering 26 cm (pixel 260/362 mm), parallel beam, 1000 views over
   180 degrees (angles k pi / 1000), 513 detector elements. As in LoDoPaB (ODL's
   ``parallel_beam_geometry``) the detector spans the disc that circumscribes the image,
   ``2 * 130 * sqrt(2)`` mm, so the element pitch is ``260 sqrt(2) / 513 = 0.7168`` mm. Poisson
   noise with I0 = 4096 photons per detector element (pre-log). The test set is 20 simulated,
   seeded slices (:func:`test_set`: thorax slices scaled into the 26 cm field, FORBILD-like
   heads, rotated Shepp-Logan variants, random ellipses; attenuation in 1/mm). The data are
   projected from each phantom rasterised on a grid twice as fine (724 x 724), not from the
   362 x 362 ground truth, so the reconstructions do not share the data's discretisation (no
   "inverse crime"). Methods: FBP (Hann window), SIRT (nonneg) and TV (``pdhg_tv``, nonneg,
   started from the FBP image); the FBP cutoff and the TV weight lambda were tuned once with
   ``--tune`` on a separate seed, never on the test slices. Metrics: PSNR and SSIM with
   ``data_range = max - min`` of the ground truth (the LoDoPaB paper's convention).
2. **Speed vs ASTRA** on a 512 x 512 image (1 mm), 720 views over 180 degrees, 768 detector
   elements (1 mm), float32: our ``fbp`` (ram-lak) against ASTRA's CPU ``FBP`` (ram-lak,
   ``linear`` projector), our ``sirt`` against ASTRA's CPU ``SIRT`` (``linear`` projector), both
   100 iterations with a non-negativity constraint. Each timed call goes from the sinogram in
   memory to the image in memory, set-up included on both sides (our projector and SIRT
   weights; ASTRA's projector, data objects and algorithm). FBP: the median of a few calls after
   a first one; SIRT: one call each. Agreement: PSNR of each FBP against the phantom, and the
   relative L2 difference of the two SIRT results.

The run prints an estimate of its own duration first (from timing one application of each
operator on this machine), and ``--estimate`` prints it without running.

Usage::

    python benchmarks/recon_cpu.py                  # full run, writes results/recon_cpu.md/.png
    python benchmarks/recon_cpu.py --quick --out /tmp/quick.md
    python benchmarks/recon_cpu.py --estimate       # how long the full run will take here
    python benchmarks/recon_cpu.py --tune           # redo the FBP-cutoff / TV-lambda sweep
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from _common import (
    OtherLoadMeter,
    Timing,
    fmt,
    fmt_cores,
    load_astra,
    load_average,
    log,
    machine_info,
    markdown_table,
    one_thread,
    other_cpu_load,
    rel_l2,
    report_head,
    time_interleaved,
    write_atomic,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "recon_cpu.md"

#: side of the square field the LoDoPaB-CT images cover (mm)
FIELD_MM = 260.0
#: unattenuated photons per detector element (LoDoPaB-CT)
I0 = 4096.0
#: seed of the test slices, and of the separate tuning slices
TEST_SEED = 20240611
TUNE_SEED = 7
#: published LoDoPaB-CT test-set results (Leuschner et al. 2021, Scientific Data 8, 109)
LODOPAB = {"FBP": (30.37, 0.739), "TV": (33.36, 0.830)}
KINDS = ("thorax", "head", "shepp-logan", "ellipses")
METHODS = ("FBP", "SIRT", "TV")


@dataclass(frozen=True)
class Settings:
    """Sizes and reconstruction parameters of one mode (full or quick)."""

    n: int  # image side (pixels over FIELD_MM)
    n_angles: int
    n_det: int
    n_slices: int
    sirt_iter: int
    tv_iter: int
    tv_lam: float  # λ of pdhg_tv, in (line integral)^2 per (1/mm) of per-pixel TV
    fbp_cutoff: float  # of the Hann window, fraction of the detector Nyquist frequency
    astra_n: int  # ASTRA comparison: image side (1 mm pixels)
    astra_views: int
    astra_det: int
    astra_sirt_iter: int
    fbp_repeats: int
    n_tune: int  # tuning slices
    fbp_filter: str = "hann"
    upsample: int = 2  # the data are projected from a phantom on a grid this many times finer

    @property
    def pixel(self) -> float:
        return FIELD_MM / self.n

    @property
    def det_spacing(self) -> float:
        """Pitch (mm) for which the detector spans the disc circumscribing the image."""
        return FIELD_MM * math.sqrt(2.0) / self.n_det


# FBP cutoff and TV λ: the best mean PSNR of `--tune` on TUNE_SEED's slices, never the test
# slices. Full (2 tuning slices, thorax and head; 2026-11-28): Hann cutoff 0.3 / 0.5 / 0.6 /
# 0.7 / 0.8 / 1.0 gave 26.08 / 28.64 / 29.57 / 30.21 / 30.53 / 30.36 dB; TV λ 0.25 / 0.5 / 1 /
# 2 / 4 / 8 / 16 gave 29.88 / 32.19 / 35.22 / 37.52 / 37.91 / 36.80 / 34.43 dB after 100
# iterations (still rising for λ >= 1 between 75 and 100 iterations: about +1 dB). Quick
# (4 tuning slices): cutoff 1.0 (28.90 dB), λ 1 (34.60 dB; 0.3: 32.17, 3: 34.28).
FULL = Settings(
    n=362,
    n_angles=1000,
    n_det=513,
    n_slices=20,
    sirt_iter=100,
    tv_iter=100,
    tv_lam=4.0,
    fbp_cutoff=0.8,
    astra_n=512,
    astra_views=720,
    astra_det=768,
    astra_sirt_iter=100,
    fbp_repeats=3,
    n_tune=2,
)
QUICK = Settings(
    n=128,
    n_angles=200,
    n_det=181,  # the same ratio to the image side as 513 / 362
    n_slices=3,
    sirt_iter=50,
    tv_iter=50,
    tv_lam=1.0,
    fbp_cutoff=1.0,
    astra_n=128,
    astra_views=180,
    astra_det=192,
    astra_sirt_iter=100,
    fbp_repeats=3,
    n_tune=4,
)


# --------------------------------------------------------------------------- test set


@dataclass(frozen=True)
class Phantom:
    """One test image: ``draw(volume)`` rasterises it (1/mm) on any grid of the field."""

    kind: str
    label: str
    draw: Callable[[Any], np.ndarray]


def _placed(volume: Any, scale: float, shift: tuple[float, float]) -> Any:
    """The grid on which a phantom centred at the origin appears scaled and shifted.

    Pixel i of ``volume`` at position p sees the phantom at ``(p - shift) / scale``.
    """
    from medrecon import VolumeGeometry

    return VolumeGeometry(
        shape=volume.shape,
        voxel_size=tuple(v / scale for v in volume.voxel_size),
        center=tuple((c - s) / scale for c, s in zip(volume.center, shift, strict=True)),
    )


def _shift(rng: np.random.Generator, max_mm: float) -> tuple[float, float]:
    dy, dx = rng.uniform(-max_mm, max_mm, 2)
    return float(dy), float(dx)


def make_phantom(kind: str, rng: np.random.Generator) -> Phantom:
    """A random variant of one kind of test image (see :func:`test_set`)."""
    from medrecon.ct import simulate as sim

    if kind == "thorax":  # 350 x 250 mm chest scaled by 0.62-0.70 into the 260 mm field
        scale, shift = float(rng.uniform(0.62, 0.70)), _shift(rng, 5.0)
        contrast, flip = bool(rng.random() < 0.5), bool(rng.random() < 0.5)

        def draw(vol: Any) -> np.ndarray:
            img = sim.thorax_slice(_placed(vol, scale, shift), contrast=contrast)
            return img[:, ::-1] if flip else img

        label = (
            f"thorax x{scale:.2f}"
            + (", contrast" if contrast else "")
            + (", mirrored" if flip else "")
        )
    elif kind == "head":  # 190 x 236 mm FORBILD-like head scaled by 0.85-1.05
        scale, shift, flip = float(rng.uniform(0.85, 1.05)), _shift(rng, 5.0), rng.random() < 0.5

        def draw(vol: Any) -> np.ndarray:
            img = sim.forbild_head_like(_placed(vol, scale, shift))
            return img[:, ::-1] if flip else img

        label = f"FORBILD-like head x{scale:.2f}" + (", mirrored" if flip else "")
    elif kind == "shepp-logan":  # rotated, 200-250 mm field, Toft's or the original contrasts
        fov, angle = float(rng.uniform(200.0, 250.0)), float(rng.uniform(0.0, 2.0 * math.pi))
        modified = bool(rng.random() < 0.5)
        p = sim.shepp_logan_params(2, fov=fov, modified=modified)
        c, s = math.cos(angle), math.sin(angle)
        y, x = p[:, 3].copy(), p[:, 4].copy()
        p[:, 3], p[:, 4], p[:, 5] = x * s + y * c, x * c - y * s, p[:, 5] + angle

        def draw(vol: Any) -> np.ndarray:
            return sim.ellipses(vol, p, oversample=4)

        label = f"Shepp-Logan ({'modified' if modified else 'original'}), fov {fov:.0f} mm, "
        label += f"rotated {math.degrees(angle):.0f}°"
    elif kind == "ellipses":  # 5-15 random ellipses inside a 250 mm disc
        p = sim.random_ellipse_params(rng, radius=125.0)

        def draw(vol: Any) -> np.ndarray:
            return sim.ellipses(vol, p, oversample=4)

        label = f"{len(p)} random ellipses"
    else:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    return Phantom(kind, label, draw)


def test_set(n: int, seed: int) -> list[tuple[Phantom, np.random.Generator]]:
    """``n`` phantoms, each with its own generator (the same one then draws its noise).

    Slice i is of kind ``KINDS[i % 4]`` (thorax, head, Shepp-Logan, ellipses, thorax, ...), so
    20 slices are 5 of each kind; slice i's generator comes from
    ``SeedSequence(seed).spawn(n)[i]``.
    """
    out = []
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        rng = np.random.default_rng(child)
        out.append((make_phantom(KINDS[i % len(KINDS)], rng), rng))
    return out


# --------------------------------------------------------------------------- problem


@dataclass
class Problem:
    """Geometry, grids and projectors of the quality part."""

    s: Settings
    geometry: Any
    volume: Any
    fine_volume: Any
    A: Any
    A_fine: Any


def make_problem(s: Settings) -> Problem:
    from medrecon import ParallelBeam2D, Projector, VolumeGeometry

    geom = ParallelBeam2D(
        angles=np.arange(s.n_angles) * (np.pi / s.n_angles),
        n_det=s.n_det,
        det_spacing=s.det_spacing,
    )
    vol = VolumeGeometry(shape=(s.n, s.n), voxel_size=s.pixel)
    fine = VolumeGeometry(shape=(s.upsample * s.n,) * 2, voxel_size=s.pixel / s.upsample)
    return Problem(s, geom, vol, fine, Projector(geom, vol), Projector(geom, fine))


def simulate(p: Problem, ph: Phantom, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth on the image grid, and noisy float32 line integrals from the fine grid."""
    from medrecon.ct.simulate import poisson_noise

    truth = ph.draw(p.volume).astype(np.float32)
    clean = p.A_fine(ph.draw(p.fine_volume))
    sino = poisson_noise(clean, i0=I0, rng=rng)
    return truth, np.asarray(sino, dtype=np.float32)


def run_fbp(p: Problem, sino: np.ndarray, cutoff: float | None = None) -> np.ndarray:
    from medrecon.ct.analytic import fbp

    c = p.s.fbp_cutoff if cutoff is None else cutoff
    return fbp(sino, p.geometry, p.volume, filter=p.s.fbp_filter, cutoff=c)


def run_sirt(
    p: Problem, sino: np.ndarray, callback: Any = None, n_iter: int | None = None
) -> np.ndarray:
    from medrecon.ct.iterative import sirt

    k = p.s.sirt_iter if n_iter is None else n_iter
    return sirt(p.A, sino, n_iter=k, nonneg=True, progress=False, callback=callback)


def run_tv(
    p: Problem,
    sino: np.ndarray,
    x0: np.ndarray,
    lam: float | None = None,
    callback: Any = None,
    n_iter: int | None = None,
) -> np.ndarray:
    from medrecon.ct.iterative import pdhg_tv

    return pdhg_tv(
        p.A,
        sino,
        lam=p.s.tv_lam if lam is None else lam,
        x0=np.maximum(x0, 0.0),
        n_iter=p.s.tv_iter if n_iter is None else n_iter,
        nonneg=True,
        progress=False,
        callback=callback,
    )


# --------------------------------------------------------------------------- metrics

Metric = Callable[[np.ndarray, np.ndarray], float]


def _against_truth(fn: Callable[..., Any], truth_first: bool = False) -> Metric:
    """``metric(image, truth)`` in float64 with ``data_range = truth.max() - truth.min()``."""

    def metric(image: np.ndarray, truth: np.ndarray) -> float:
        t, im = np.asarray(truth, dtype=np.float64), np.asarray(image, dtype=np.float64)
        pair = (t, im) if truth_first else (im, t)
        return float(fn(*pair, data_range=float(t.max() - t.min())))

    return metric


def load_metrics() -> tuple[Metric, Metric, str]:
    """PSNR and SSIM ``f(image, truth)`` from ``medrecon.qc.metrics``, else from scikit-image."""
    try:
        from medrecon.qc.metrics import psnr, ssim
    except ImportError:
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        note = (
            "scikit-image `peak_signal_noise_ratio` and `structural_similarity` (default 7 x 7 "
            "uniform window); `medrecon.qc.metrics` was not available"
        )
        return (
            _against_truth(peak_signal_noise_ratio, truth_first=True),
            _against_truth(structural_similarity),
            note,
        )
    note = (
        "`medrecon.qc.metrics.psnr` and `medrecon.qc.metrics.ssim` (Gaussian window of "
        "standard deviation 1.5 pixels, averaged over every pixel)"
    )
    return _against_truth(psnr), _against_truth(ssim), note


# --------------------------------------------------------------------------- quality part


@dataclass
class SliceResult:
    index: int
    label: str
    psnr: dict[str, float] = field(default_factory=dict)
    ssim: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def reconstruct(p: Problem, sino: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """FBP, SIRT and TV images of one sinogram, and the seconds each took."""
    images: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    images["FBP"], seconds["FBP"] = _timed(lambda: run_fbp(p, sino))
    images["SIRT"], seconds["SIRT"] = _timed(lambda: run_sirt(p, sino))
    images["TV"], seconds["TV"] = _timed(lambda: run_tv(p, sino, images["FBP"]))
    return images, seconds


def run_quality(
    p: Problem, n_slices: int, psnr: Metric, ssim: Metric, figure_slice: int = 0
) -> tuple[list[SliceResult], dict[str, np.ndarray]]:
    """Reconstruct every test slice with FBP, SIRT and TV; the images of ``figure_slice``."""
    from tqdm.auto import tqdm

    results: list[SliceResult] = []
    shown: dict[str, np.ndarray] = {}
    bar = tqdm(test_set(n_slices, TEST_SEED), desc="slices", unit="slice", file=sys.stderr)
    for i, (ph, rng) in enumerate(bar):
        truth, sino = simulate(p, ph, rng)
        r = SliceResult(i, ph.label)
        images, r.seconds = reconstruct(p, sino)
        for m, img in images.items():
            r.psnr[m], r.ssim[m] = psnr(img, truth), ssim(img, truth)
        results.append(r)
        bar.set_postfix_str(" ".join(f"{m} {r.psnr[m]:.1f}" for m in METHODS) + " dB")
        if i == figure_slice:
            shown = {"ground truth": truth, **images}
    return results, shown


def save_figure(path: Path, shown: dict[str, np.ndarray], label: str, psnr: Metric) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = shown["ground truth"]
    lo, hi = float(truth.min()), float(truth.max())
    fig, axes = plt.subplots(1, len(shown), figsize=(4.0 * len(shown), 4.4), layout="constrained")
    for ax, (name, img) in zip(axes, shown.items(), strict=True):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        title = name if name == "ground truth" else f"{name}: {psnr(img, truth):.2f} dB"
        ax.set_title(title)
        ax.set_axis_off()
    fig.suptitle(f"{label} (display window {lo:.3f}-{hi:.3f} 1/mm)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------- ASTRA part


@dataclass
class Comparison:
    """Timings and agreement of the 2D parallel-beam comparison with ASTRA."""

    description: str
    fbp: dict[str, Timing]
    sirt: dict[str, Timing]
    psnr: dict[str, float]  # FBP and SIRT images vs the phantom
    fbp_rel_l2: float | None
    sirt_rel_l2: float | None


def _comparison_problem(s: Settings) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """Geometry, grid, phantom and noise-free float32 sinogram (from the 2x finer grid)."""
    from medrecon import ParallelBeam2D, Projector, VolumeGeometry
    from medrecon.ct.simulate import shepp_logan

    n = s.astra_n
    geom = ParallelBeam2D(
        angles=np.linspace(0.0, np.pi, s.astra_views, endpoint=False),
        n_det=s.astra_det,
        det_spacing=1.0,
    )
    vol = VolumeGeometry(shape=(n, n), voxel_size=1.0)
    fine = VolumeGeometry(shape=(2 * n, 2 * n), voxel_size=0.5)
    phantom = shepp_logan(vol, fov=float(n), dtype=np.float32)
    sino = Projector(geom, fine)(shepp_logan(fine, fov=float(n)))
    return geom, vol, phantom, np.asarray(sino, dtype=np.float32)


class AstraRecon:
    """ASTRA's CPU FBP and SIRT, every object created and deleted inside the call."""

    def __init__(self, astra: Any, geometry: Any, volume: Any) -> None:
        from medrecon.geometry import to_astra

        self.astra = astra
        # SIRT through our converter (parallel_vec); ASTRA's CPU FBP refuses parallel_vec and
        # takes the 'parallel' form, whose angle theta is our -theta (docs/conventions.md).
        self.vec_geom, self.vol_geom = to_astra(geometry, volume)
        self.par_geom = astra.create_proj_geom(
            "parallel", geometry.det_spacing, geometry.n_det, -np.asarray(geometry.angles)
        )

    def _run(self, proj_geom: dict, sino: np.ndarray, algorithm: str, **kw: Any) -> np.ndarray:
        a = self.astra
        pid = a.create_projector("linear", proj_geom, self.vol_geom)
        sid = a.data2d.create("-sino", proj_geom, sino)
        rid = a.data2d.create("-vol", self.vol_geom, 0.0)
        cfg = a.astra_dict(algorithm)
        cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
        cfg["option"] = kw.pop("option", {})
        aid = a.algorithm.create(cfg)
        try:
            a.algorithm.run(aid, kw.pop("iterations", 1))
            return np.asarray(a.data2d.get(rid))
        finally:
            a.algorithm.delete(aid)
            a.data2d.delete([sid, rid])
            a.projector.delete(pid)

    def fbp(self, sino: np.ndarray) -> np.ndarray:
        return self._run(self.par_geom, sino, "FBP", option={"FilterType": "ram-lak"})

    def sirt(self, sino: np.ndarray, n_iter: int) -> np.ndarray:
        return self._run(
            self.vec_geom, sino, "SIRT", iterations=n_iter, option={"MinConstraint": 0.0}
        )


def _keep(store: dict[str, Any], name: str, fn: Callable[[], Any]) -> Callable[[], None]:
    """``fn`` that stores its last result in ``store[name]``."""

    def call() -> None:
        store[name] = fn()

    return call


def run_comparison(s: Settings, astra: Any | None, psnr: Metric) -> Comparison:
    from medrecon import Projector
    from medrecon.ct.analytic import fbp
    from medrecon.ct.iterative import sirt

    geom, vol, phantom, sino = _comparison_problem(s)
    it = s.astra_sirt_iter
    out: dict[str, Any] = {}
    ref = AstraRecon(astra, geom, vol) if astra is not None else None

    fbp_fns = {
        "medrecon": _keep(out, "fbp medrecon", lambda: fbp(sino, geom, vol, filter="ram-lak")),
    }
    fbp_fns["medrecon 1 thread"] = one_thread(fbp_fns["medrecon"])
    if ref is not None:
        fbp_fns["ASTRA"] = _keep(out, "fbp ASTRA", lambda: ref.fbp(sino))
    log("  FBP ...")
    fbp_t = time_interleaved(fbp_fns, repeats=s.fbp_repeats)

    # a fresh projector per call: our SIRT weights are computed inside the timed call, as ASTRA's
    sirt_fns = {
        "medrecon": _keep(
            out,
            "sirt medrecon",
            lambda: sirt(Projector(geom, vol), sino, n_iter=it, nonneg=True, progress=False),
        )
    }
    if ref is not None:
        sirt_fns["ASTRA"] = _keep(out, "sirt ASTRA", lambda: ref.sirt(sino, it))
    log(f"  SIRT ({it} iterations, one call each) ...")
    # numba's kernels are compiled by now (FBP above and the quality part): no first call
    sirt_t = time_interleaved(sirt_fns, repeats=1, first=False)

    scores = {f"{k.split()[0].upper()} {k.split()[1]}": psnr(v, phantom) for k, v in out.items()}
    return Comparison(
        description=f"{s.astra_n} x {s.astra_n} image, 1 mm pixels; {s.astra_views} views over "
        f"180°; {s.astra_det} detector elements of 1 mm; modified Shepp-Logan phantom (1/mm), "
        "noise-free data projected from the phantom on a 2x finer grid",
        fbp=fbp_t,
        sirt=sirt_t,
        psnr=scores,
        fbp_rel_l2=rel_l2(out["fbp medrecon"], out["fbp ASTRA"]) if ref else None,
        sirt_rel_l2=rel_l2(out["sirt medrecon"], out["sirt ASTRA"]) if ref else None,
    )


# --------------------------------------------------------------------------- estimate


def _once(fn: Callable[[], Any]) -> float:
    fn()  # compile / warm up
    return _timed(fn)[1]


def _per_iteration(run: Callable[[int], Any], k: int) -> tuple[float, float]:
    """``(set-up, seconds per iteration)`` of ``run(n_iter)`` from runs of 1 and ``1 + k``."""
    t1 = _timed(lambda: run(1))[1]
    tk = _timed(lambda: run(1 + k))[1]
    per = max(tk - t1, 0.0) / k
    return max(t1 - per, 0.0), per


def estimate(p: Problem, n_slices: int, astra: Any | None) -> tuple[dict[str, float], float]:
    """Seconds each part of a run should take here, and the seconds ||A|| took.

    Computes ``p.A.norm()`` (cached on the projector, so the run reuses it), then times the
    simulation and FBP of one tuning slice, a few iterations of SIRT and TV on it, and of both
    SIRTs and FBPs of the ASTRA comparison, and multiplies by the counts.
    """
    from medrecon import Projector
    from medrecon.ct.analytic import fbp
    from medrecon.ct.iterative import sirt

    s = p.s
    k = 5
    ph, ph_rng = test_set(1, TUNE_SEED)[0]
    sim_s = _once(lambda: simulate(p, ph, ph_rng))
    _, sino = simulate(p, ph, ph_rng)
    fbp_s = _once(lambda: run_fbp(p, sino))
    x0 = run_fbp(p, sino)
    _, norm_s = _timed(p.A.norm)
    run_sirt(p, sino, n_iter=1)  # compiles, caches the SIRT weights
    sirt_setup, sirt_it = _per_iteration(lambda n: run_sirt(p, sino, n_iter=n), k)
    tv_setup, tv_it = _per_iteration(lambda n: run_tv(p, sino, x0, n_iter=n), k)

    geom, vol, _, cmp_sino = _comparison_problem(s)
    it = s.astra_sirt_iter
    fbp_b = _once(lambda: fbp(cmp_sino, geom, vol, filter="ram-lak"))
    setup_b, per_b = _per_iteration(
        lambda n: sirt(Projector(geom, vol), cmp_sino, n_iter=n, nonneg=True, progress=False), 2
    )
    parts = {
        "||A|| (power iteration, once; done)": norm_s,
        "simulation": n_slices * sim_s,
        "FBP": n_slices * fbp_s,
        "SIRT": n_slices * (sirt_setup + s.sirt_iter * sirt_it),
        "TV": n_slices * (tv_setup + s.tv_iter * tv_it),
        "ASTRA part: medrecon FBP (all threads and 1 thread)": (s.fbp_repeats + 1) * 2.5 * fbp_b,
        "ASTRA part: medrecon SIRT": setup_b + it * per_b,
    }
    if astra is not None:
        ref = AstraRecon(astra, geom, vol)
        parts["ASTRA part: ASTRA FBP"] = (s.fbp_repeats + 1) * _once(lambda: ref.fbp(cmp_sino))
        setup_a, per_a = _per_iteration(lambda n: ref.sirt(cmp_sino, n), 1)
        parts["ASTRA part: ASTRA SIRT"] = setup_a + it * per_a
    return parts, norm_s


def print_estimate(parts: dict[str, float], what: str) -> float:
    total = sum(parts.values())
    log(f"estimated duration of the {what}: {total / 60:.1f} min")
    for k, v in parts.items():
        log(f"  {k}: {v:.0f} s")
    return total


# --------------------------------------------------------------------------- tuning


def _recorder(
    curve: dict[int, list[float]], ks: Sequence[int], truth: np.ndarray, psnr: Metric
) -> Callable[[int, Any], bool]:
    """A solver callback that appends the PSNR of iterate k to ``curve[k]`` for k in ``ks``."""

    def cb(k: int, x: Any) -> bool:
        if k in ks:
            curve.setdefault(k, []).append(psnr(np.asarray(x), truth))
        return False

    return cb


def tune(s: Settings, psnr: Metric, ssim: Metric, lams: Sequence[float] | None = None) -> str:
    """Sweep the FBP cutoff and the TV λ on the tuning seed's slices (never the test slices).

    TV starts from the FBP image with the current cutoff (as in the benchmark). Also records
    the PSNR at intermediate iterations of SIRT and TV, to choose the iteration counts.
    """
    from tqdm.auto import tqdm

    p = make_problem(s)
    cutoffs = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
    if lams is None:
        lams = tuple(s.tv_lam * f for f in (0.25, 0.5, 1.0, 2.0, 4.0))
    checkpoints = sorted({max(1, round(s.tv_iter * f)) for f in (0.25, 0.5, 0.75, 1.0)})
    fbp_scores: dict[float, list[tuple[float, float]]] = {c: [] for c in cutoffs}
    tv_scores: dict[float, list[tuple[float, float]]] = {lam: [] for lam in lams}
    tv_curve: dict[float, dict[int, list[float]]] = {lam: {} for lam in lams}
    sirt_ckpt = sorted({max(1, round(s.sirt_iter * f)) for f in (0.25, 0.5, 0.75, 1.0)})
    sirt_curve: dict[int, list[float]] = {}
    slices = test_set(s.n_tune, TUNE_SEED)
    for ph, rng in tqdm(slices, desc="tuning slices", file=sys.stderr):
        truth, sino = simulate(p, ph, rng)
        for c in cutoffs:
            img = run_fbp(p, sino, c)
            fbp_scores[c].append((psnr(img, truth), ssim(img, truth)))
        x0 = run_fbp(p, sino)

        run_sirt(p, sino, callback=_recorder(sirt_curve, sirt_ckpt, truth, psnr))
        for lam in lams:
            cb = _recorder(tv_curve[lam], checkpoints, truth, psnr)
            img = run_tv(p, sino, x0, lam, callback=cb)
            tv_scores[lam].append((psnr(img, truth), ssim(img, truth)))

    def mean(v: list[tuple[float, float]], j: int) -> float:
        return statistics.fmean(t[j] for t in v)

    lines = [f"Tuning on {s.n_tune} slices of seed {TUNE_SEED} ({s.n} x {s.n}):", ""]
    rows = [[f"{c:g}", f"{mean(v, 0):.2f}", f"{mean(v, 1):.3f}"] for c, v in fbp_scores.items()]
    lines += [markdown_table(["FBP hann cutoff", "PSNR [dB]", "SSIM"], rows), ""]
    rows = [
        [f"{lam:.3g}", f"{mean(v, 0):.2f}", f"{mean(v, 1):.3f}"]
        + [f"{statistics.fmean(tv_curve[lam][k]):.2f}" for k in checkpoints]
        for lam, v in tv_scores.items()
    ]
    heads = ["TV λ", "PSNR [dB]", "SSIM"] + [f"PSNR after {k} it." for k in checkpoints]
    lines += [markdown_table(heads, rows), ""]
    rows = [[str(k), f"{statistics.fmean(v):.2f}"] for k, v in sorted(sirt_curve.items())]
    lines += [markdown_table(["SIRT iterations", "PSNR [dB]"], rows), ""]
    best_c = max(cutoffs, key=lambda c: mean(fbp_scores[c], 0))
    best_l = max(lams, key=lambda lam: mean(tv_scores[lam], 0))
    lines.append(f"Best by mean PSNR: FBP cutoff {best_c:g}, TV λ {best_l:.3g}.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- report


def _mean_std(v: Sequence[float], digits: int) -> str:
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.fmean(v):.{digits}f} ± {sd:.{digits}f}"


QUALITY_HEADERS = (
    "method",
    "PSNR [dB]",
    "SSIM",
    "time per slice [s]",
    "LoDoPaB-CT PSNR [dB] (published)",
    "LoDoPaB-CT SSIM (published)",
)
SLICE_HEADERS = ("slice", "phantom", "FBP PSNR / SSIM", "SIRT PSNR / SSIM", "TV PSNR / SSIM")
ASTRA_HEADERS = (
    "reconstruction",
    "medrecon [s]",
    "ASTRA [s]",
    "speed-up (ASTRA / medrecon)",
    "cores busy (medrecon / ASTRA)",
    "agreement",
)


def quality_rows(results: list[SliceResult]) -> list[list[str]]:
    rows = []
    for m in METHODS:
        pub = LODOPAB.get(m)
        rows.append(
            [
                m,
                _mean_std([r.psnr[m] for r in results], 2),
                _mean_std([r.ssim[m] for r in results], 3),
                fmt(statistics.fmean(r.seconds[m] for r in results)),
                f"{pub[0]:.2f}" if pub else "—",
                f"{pub[1]:.3f}" if pub else "—",
            ]
        )
    return rows


def astra_rows(c: Comparison) -> list[list[str]]:
    def row(name: str, t: dict[str, Timing], ours: str, agreement: str) -> list[str]:
        mine = t[ours]
        theirs = t.get("ASTRA")
        return [
            name,
            fmt(mine.median),
            fmt(theirs.median) if theirs else "n/a",
            f"{theirs.median / mine.median:.2f}x" if theirs else "n/a",
            f"{mine.cores:.2f} / " + (f"{theirs.cores:.2f}" if theirs else "n/a"),
            agreement,
        ]

    ps = c.psnr
    fbp_agree = f"PSNR vs phantom: medrecon {ps['FBP medrecon']:.2f} dB" + (
        f", ASTRA {ps['FBP ASTRA']:.2f} dB; rel. L2 difference {c.fbp_rel_l2:.1e}"
        if c.fbp_rel_l2 is not None
        else ""
    )
    sirt_agree = (
        (f"rel. L2 difference {c.sirt_rel_l2:.1e}; " if c.sirt_rel_l2 is not None else "")
        + f"PSNR vs phantom: medrecon {ps['SIRT medrecon']:.2f} dB"
        + (f", ASTRA {ps['SIRT ASTRA']:.2f} dB" if "SIRT ASTRA" in ps else "")
    )
    return [
        row("FBP, ram-lak", c.fbp, "medrecon", fbp_agree),
        row("FBP, ram-lak (medrecon on 1 thread)", c.fbp, "medrecon 1 thread", "same result"),
        row("SIRT, nonneg", c.sirt, "medrecon", sirt_agree),
    ]


def report(
    *,
    s: Settings,
    quick: bool,
    machine: dict[str, str],
    loads: tuple[str, str],
    others: tuple[float | None, float | None, float | None],
    metrics_note: str,
    astra_note: str,
    results: list[SliceResult],
    norm_seconds: float,
    figure: str | None,
    figure_label: str,
    comparison: Comparison,
    astra_ok: bool,
    timing: tuple[float, float, float],
) -> str:
    """The markdown report; ``timing`` is (total run time, estimate, time of what it covers)."""
    elapsed, estimated, covered = timing
    n = len(results)
    title = "# CT reconstruction on CPU: FBP, SIRT, TV (LoDoPaB-CT-like) and medrecon vs ASTRA"
    lines = report_head(title, quick, "small sizes and few iterations")
    lines += [
        "Written by `benchmarks/recon_cpu.py" + (" --quick" if quick else "") + "`; float32 "
        "data and images; times are wall-clock seconds.",
        "",
    ]
    if not astra_ok:
        lines += [f"**ASTRA not available ({astra_note}): medrecon only, no comparison.**", ""]
    lines += ["## Machine", "", markdown_table(["", ""], [[k, v] for k, v in machine.items()])]
    lines += [
        "",
        f"Load average (1/5/15 min) at start: {loads[0]}; at end: {loads[1]}. "
        f"Cores kept busy by other processes: {fmt_cores(others[0])} at start and "
        f"{fmt_cores(others[1])} at end (1 s samples while this one idled), "
        f"**{fmt_cores(others[2])} on average during the run** (system busy time minus this "
        "process's CPU time; above about 0.1 the timings are pessimistic). "
        f"Total run time {elapsed:.0f} s. The estimate printed at the start (from trial runs of "
        f"every part, ||A|| included) was {estimated:.0f} s; that part took {covered:.0f} s.",
        "",
        "## LoDoPaB-CT-like setting",
        "",
        f"* Image: {s.n} x {s.n} pixels covering {FIELD_MM / 10:g} cm (pixel "
        f"{FIELD_MM:g}/{s.n} = {s.pixel:.4f} mm), attenuation in 1/mm.",
        f"* Scan: parallel beam, {s.n_angles} views at angles k·π/{s.n_angles} (k = 0 .. "
        f"{s.n_angles - 1}), {s.n_det} detector elements of {s.det_spacing:.4f} mm: as in "
        f"LoDoPaB-CT (ODL's `parallel_beam_geometry`) the detector spans the disc that "
        f"circumscribes the image, {FIELD_MM:g}·√2 = {FIELD_MM * math.sqrt(2):.1f} mm.",
        f"* Data: line integrals of the phantom rasterised on a {s.upsample}x finer grid "
        f"({s.upsample * s.n}²; no inverse crime), then Poisson noise with I0 = {I0:g} photons "
        "per detector element (`poisson_noise`; zero counts clipped to 0.5), log-transformed.",
        f"* Test set: {n} slices from seed {TEST_SEED}, slice i of kind "
        "thorax / head / Shepp-Logan / ellipses for i mod 4 = 0 / 1 / 2 / 3: thorax slices "
        "(`thorax_slice`, 350 x 250 mm) scaled by 0.62-0.70 into the 26 cm field, random "
        "aortic contrast and left-right mirroring; FORBILD-like heads (`forbild_head_like`) "
        "scaled by 0.85-1.05, random mirroring; Shepp-Logan ellipses (modified or original "
        "contrasts, field 200-250 mm) rotated by a random angle; 5-15 random ellipses "
        "(`random_ellipse_params`) in a 250 mm disc. Thorax and head phantoms are also "
        "shifted by up to 5 mm. The slices are listed below.",
        f"* FBP: `fbp(filter='{s.fbp_filter}', cutoff={s.fbp_cutoff:g})`: the Hann window "
        "reaches zero at that fraction of the detector Nyquist frequency (lower cutoffs "
        "smooth more against the low-dose noise).",
        f"* SIRT: `sirt(n_iter={s.sirt_iter}, nonneg=True)`, from zero.",
        f"* TV: `pdhg_tv(lam={s.tv_lam:g}, n_iter={s.tv_iter}, nonneg=True)` (isotropic TV of "
        "per-pixel differences), started from the FBP image (clipped at 0); its time excludes "
        f"that FBP and the one-off ||A|| power iteration ({norm_seconds:.1f} s, cached on the "
        "projector and shared by all slices).",
        f"* The FBP cutoff and the TV λ were chosen once by `--tune{' --quick' if quick else ''}`"
        f" (best mean PSNR over {s.n_tune} slices of seed {TUNE_SEED}, never the test slices; "
        "the sweeps are recorded next to the settings in the script).",
        f"* Metrics: {metrics_note}; data_range = max - min of the ground truth, over the whole "
        "image (the LoDoPaB-CT paper's convention).",
        "",
        f"## Results: mean ± standard deviation over {n} slices",
        "",
        markdown_table(QUALITY_HEADERS, quality_rows(results)),
        "",
        "**Not comparable one-to-one with the published column**: LoDoPaB-CT's test set is "
        "3,553 real chest CT slices (LIDC/IDRI), normalised to [0, 1]; ours are simulated "
        "phantoms, mostly piecewise constant, which favours TV, with a different mix of "
        "anatomy and contrast; the SSIM window behind the published values may differ from "
        "ours. The published values (Leuschner et al. 2021, Scientific Data 8, 109) are given "
        "only for orientation.",
        "",
        "### Per slice",
        "",
        markdown_table(
            SLICE_HEADERS,
            [
                [str(r.index), r.label] + [f"{r.psnr[m]:.2f} / {r.ssim[m]:.3f}" for m in METHODS]
                for r in results
            ],
        ),
        "",
    ]
    if figure is not None:
        lines += [f"![slice 0: {figure_label}]({figure})", ""]
    t = comparison
    lines += [
        "## medrecon vs ASTRA (2D parallel beam, CPU)",
        "",
        f"* {t.description}.",
        f"* FBP: median of {s.fbp_repeats} calls after a first one, medrecon and ASTRA taking "
        "turns. medrecon `fbp(filter='ram-lak')` (default `oversample=2`); ASTRA `FBP` with "
        "`FilterType='ram-lak'` and the `linear` (Joseph) projector on its `parallel` geometry "
        "at -θ (our convention, docs/conventions.md).",
        f"* SIRT: one call each of {s.astra_sirt_iter} iterations from zero: medrecon "
        "`sirt(nonneg=True)`; ASTRA `SIRT` with the `linear` projector on `to_astra`'s "
        "`parallel_vec` geometry and `MinConstraint=0`. Both use the same row and column "
        "weights, so the results should agree closely.",
        "* Each call starts from the sinogram in memory and ends with the image in memory; "
        "set-up is inside the call on both sides. Cores busy = CPU time / wall time: ASTRA's "
        "CPU algorithms run on one core, medrecon on all numba threads; the FBP row "
        '"medrecon on 1 thread" limits numba to one thread.',
        "",
        markdown_table(ASTRA_HEADERS, astra_rows(t)),
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument(
        "--n-slices",
        type=int,
        default=None,
        help="test slices (default 20, or 3 with --quick)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"markdown file to write, the PNG goes next to it (default: {DEFAULT_OUT} for a "
        "full run; a quick run without --out only prints)",
    )
    p.add_argument("--no-astra", action="store_true", help="no ASTRA comparison timings")
    p.add_argument("--estimate", action="store_true", help="print the estimated duration and exit")
    p.add_argument(
        "--tune",
        action="store_true",
        help="sweep the FBP cutoff and TV λ on the tuning seed, print the table and exit",
    )
    p.add_argument(
        "--tune-lams",
        type=lambda v: [float(t) for t in v.split(",")],
        default=None,
        help="comma-separated TV λ values for --tune (default: the current λ times 1/4 .. 4)",
    )
    args = p.parse_args(argv)
    if args.n_slices is not None and args.n_slices < 1:
        p.error(f"--n-slices: expected >= 1, got {args.n_slices}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    s = QUICK if args.quick else FULL
    if args.n_slices is not None:
        s = replace(s, n_slices=args.n_slices)
    mode = "quick run" if args.quick else "full run"
    psnr, ssim, metrics_note = load_metrics()
    astra, astra_note = load_astra(args.no_astra)
    if args.tune:
        print(tune(s, psnr, ssim, args.tune_lams))
        return 0

    t_start = time.perf_counter()
    load_start = load_average()
    other_start = other_cpu_load()
    log(f"load average at start: {load_start}; other processes busy: {fmt_cores(other_start)}")
    if other_start is not None and other_start > 0.25:
        log("warning: other processes are using the CPU; timings will be pessimistic")
    meter = OtherLoadMeter()
    p = make_problem(s)
    parts, norm_seconds = estimate(p, s.n_slices, astra)
    estimated = print_estimate(parts, mode)
    if args.estimate:
        return 0
    t_run = time.perf_counter()
    log(f"||A|| = {p.A.norm():.4g} (power iteration, {norm_seconds:.1f} s)")
    results, shown = run_quality(p, s.n_slices, psnr, ssim)
    for m in METHODS:
        log(f"  {m}: PSNR {_mean_std([r.psnr[m] for r in results], 2)} dB")
    log("ASTRA comparison ...")
    comparison = run_comparison(s, astra, psnr)

    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)
    figure = None
    if out is not None:
        png = out.with_suffix(".png")
        save_figure(png, shown, results[0].label, psnr)
        figure = png.name
    other_during = meter.read()
    now = time.perf_counter()
    elapsed = now - t_start
    covered = now - t_run + norm_seconds  # what the estimate covers
    log(f"run time {elapsed:.0f} s; the estimated part ({estimated:.0f} s) took {covered:.0f} s")
    text = report(
        s=s,
        quick=args.quick,
        machine=machine_info(),
        loads=(load_start, load_average()),
        others=(other_start, other_cpu_load(), other_during),
        metrics_note=metrics_note,
        astra_note=astra_note,
        results=results,
        norm_seconds=norm_seconds,
        figure=figure,
        figure_label=results[0].label,
        comparison=comparison,
        astra_ok=astra is not None,
        timing=(elapsed, estimated, covered),
    )
    print(text)
    if out is not None:
        write_atomic(out, text)
        log(f"wrote {out} and {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
