"""MR reconstruction on the CPU: medrecon.mr against BART and SigPy, and NUFFT wrappers.

One run, one report naming the machine (``--quick`` shrinks every size):

* **Data** (fully sampled, 8 coils, ``--size`` default 256): BART's analytic phantom
  (``bart phantom -k -s 8 -x 256``, noise-free), ISMRMRD's Shepp-Logan
  (``ismrmrd_generate_cartesian_shepp_logan -m 256 -c 8 -n 0.05``: 2x oversampled readout,
  cropped centrally to the recon matrix in the image domain; noise std 0.05) and our head
  phantom (:func:`medrecon.mr.brain_phantom` with a smooth phase, :func:`birdcage_maps`,
  :func:`simulate_kspace` with noise std 0.01 per part, image peak 1). Each is undersampled
  4x along the last axis with ``random_mask(shape, 0.08, 4, seed=0)`` (fastMRI rules).
* **Calibration**: ``bart ecalib -m1 us maps`` (defaults ``-t 0.001 -c 0.8 -k 6 -r 24``)
  against ``espirit(us, threshold=sqrt(0.001), crop=0.8)`` (BART's ``-t`` is the square of our
  threshold). Every reconstruction below uses **BART's maps**, so that only solvers differ.
* **CG-SENSE**, ``lam = 0.01`` and the same number of CG iterations everywhere:
  ``sense_recon(lam, n_iter, tol=0)``, ``bart pics -l2 -r lam -i n_iter`` and
  ``sigpy.mri.app.SenseRecon(lamda=lam, max_iter=n_iter)``. All three minimise
  ``||A x - y||^2 + lam ||x||^2`` (SigPy and we write it with a factor 1/2 on both terms), a
  problem linear in the data, so BART's data scaling leaves ``lam`` unchanged. BART's CG also
  stops on its own residual tolerance; the iterations it ran are reported.
* **l1-wavelet**, ``0.5 ||A x - y||^2 + lam ||W x||_1`` with the same number of iterations:
  ``cs_wavelet(wavelet="haar", random_shift=True, tol=0)`` (FISTA, orthonormal periodic Haar,
  detail bands only, cycle spinning), ``bart pics -S -w 1 -i n -R W:3:0:lam`` (FISTA; ``-w 1``
  turns off BART's data scaling so ``lam`` is in the data's units as ours is; default
  Daubechies-2 wavelet, and ``--wavelet haar``) and ``sigpy.mri.app.L1WaveletRecon(lamda=lam,
  max_iter=n)`` (accelerated proximal gradient, Daubechies-4 with zero padding, approximation
  band thresholded too). The objectives are nominally the same and ``lam`` is the same number
  in every library, but the transforms differ (family, levels, normalisation, which bands are
  penalised, cycle spinning), so **the conversion is not exact**: every tool is swept over the
  same half-decade grid of ``lam / max |A^H y|`` (start 1e-3, 3.2e-3, 1e-2, extended while
  the best value is at an edge, at most 5 values) and reported at its best, and at our best
  ``lam`` (the common nominal value).
* **TV**: ``cs_tv(lam, n_iter, tol=0)`` (isotropic, PDHG) against ``bart pics -S -w 1 -i n
  -R T:3:0:lam`` (anisotropic differences, ADMM with up to 10 inner CG steps per iteration),
  swept likewise (start 3.2e-3, 1e-2, 3.2e-2).
* **NRMSE**: the complex image after the least-squares complex scale
  ``<x, ref> / <x, x>``, against ``ref = sum_c conj(S_c) ifft2c(k_c)`` (fully sampled k-space,
  BART's maps). For the ESPIRiT rows: the magnitude of CG-SENSE with that tool's maps against
  the fully sampled root-sum-of-squares over the object (RSS > 10 % of its maximum), after the
  best real scale.
* **Times**: wall-clock seconds per call, median of the repeats. "1 thread": BART with
  ``OMP_NUM_THREADS=1``, OpenBLAS limited to 1 thread in this process (our code and SigPy use
  numpy's single-threaded FFT otherwise). "default": BART as installed (OpenMP on all cores),
  OpenBLAS at its default. For CS, the single-thread time is the median over the lambda sweep
  (same iteration count at every lambda); the default-thread time is one call at the best
  lambda. BART times include process start and ``.cfl`` file I/O on tmpfs (``/dev/shm``); the
  "BART own" column is the time ``bart pics`` reports itself ("Total Time") and, for
  ``ecalib``, the wall time minus a no-op ``bart version`` call.
* **NUFFT** (``--nufft-size`` default 256, radial 403 spokes x 512 samples, 1 and 8 coils,
  complex64): forward (type 2) and adjoint (type 1) of :class:`medrecon.mr.NufftOperator`
  (eps 1e-6), of FINUFFT called directly with the same plan settings (eps, ``isign``, dtype,
  threads; plans made once, outside the timing: the difference is our wrapper's overhead:
  input checks, reshapes, the ``1/sqrt(N)`` scale), of torchkbnufft (``KbNufft`` /
  ``KbNufftAdjoint`` on the CPU, its defaults: 2x grid, 6 points, table interpolation) and of
  ``sigpy.nufft`` / ``nufft_adjoint`` (defaults: oversampling 1.25, width 4). Accuracy:
  relative error after the best complex scale against FINUFFT at eps 1e-12 in double
  precision. Plus ``ToeplitzNormal`` against the explicit ``A^H A`` (8 coils, with maps).

Usage::

    python benchmarks/mr_recon.py                 # full run, writes results/mr_recon.md and .png
    python benchmarks/mr_recon.py --quick --out /tmp/mr_quick.md
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from _common import (
    OtherLoadMeter,
    _version,
    fmt,
    fmt_cores,
    load_average,
    log,
    machine_info,
    markdown_table,
    other_cpu_load,
    report_head,
    time_call,
    write_atomic,
)
from medrecon.mr import (
    NufftOperator,
    SenseOperator,
    ToeplitzNormal,
    birdcage_maps,
    brain_phantom,
    cs_tv,
    cs_wavelet,
    espirit,
    fftnc,
    ifft2c,
    ifftnc,
    radial,
    random_mask,
    read_ismrmrd,
    rss,
    sense_recon,
    simulate_kspace,
)
from medrecon.mr.io import bart_to_kspace, kspace_to_bart, read_cfl, write_cfl

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS / "mr_recon.md"
BART = shutil.which("bart")
ISMRMRD_TOOL = shutil.which("ismrmrd_generate_cartesian_shepp_logan")
SENSE_LAM = 0.01
WAV_START = (-6, -5, -4)  # lam / max|A^H y| = 10 ** (k / 2)
TV_START = (-5, -4, -3)


@dataclass(frozen=True)
class Settings:
    size: int = 256
    coils: int = 8
    cg_iter: int = 30
    cs_iter: int = 100
    repeats: int = 2
    max_sweep: int = 5
    nufft_size: int = 256
    spokes: int = 403
    readout: int = 512
    nufft_repeats: int = 5


FULL = Settings()
QUICK = Settings(
    size=96, cg_iter=5, cs_iter=10, repeats=1, max_sweep=3, nufft_size=48, spokes=31,
    readout=96, nufft_repeats=1,
)  # fmt: skip


# --------------------------------------------------------------------------- threads


def _openblas_setter() -> Callable[[int], None] | None:
    """``set(n)`` for the OpenBLAS that numpy loaded (found in ``/proc/self/maps``), or None."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = {ln.split()[-1] for ln in maps if "openblas" in ln.lower()}
    for p in sorted(paths):
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        for name in (
            "scipy_openblas_set_num_threads64_",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                return lambda n, fn=fn: fn(int(n))
    return None


_BLAS_SET = _openblas_setter()


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """OpenBLAS and torch limited to ``n`` threads (None: defaults)."""
    import torch

    t_old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
        if _BLAS_SET is not None:
            _BLAS_SET(n)
    try:
        yield
    finally:
        torch.set_num_threads(t_old)
        if _BLAS_SET is not None:
            _BLAS_SET(os.cpu_count() or 1)


# --------------------------------------------------------------------------- BART


@dataclass
class BartRun:
    wall: float
    own: float | None
    cg_iter: int | None


def bart(cwd: Path, *args: str, one_thread: bool = True) -> BartRun:
    """Run ``bart args`` in ``cwd``; wall time, BART's own "Total Time", CG iterations."""
    env = dict(os.environ)
    if one_thread:
        env["OMP_NUM_THREADS"] = "1"
    else:
        env.pop("OMP_NUM_THREADS", None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [BART or "bart", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t0
    text = proc.stdout + proc.stderr
    own = re.findall(r"Total Time:\s*([0-9.eE+-]+)", text)
    cg = re.findall(r"cg:\s*(\d+)", text)
    return BartRun(wall, float(own[-1]) if own else None, int(cg[-1]) if cg else None)


def bart_noop(cwd: Path, repeats: int = 5) -> float:
    """Median wall time of ``bart version`` (process start, no data)."""
    return statistics.median(bart(cwd, "version").wall for _ in range(repeats))


def bart_version() -> str:
    if BART is None:
        return "not installed"
    out = subprocess.run([BART, "version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


# --------------------------------------------------------------------------- data


def nrmse_scaled(x: Any, ref: np.ndarray) -> float:
    """NRMSE after the least-squares complex scale of ``x`` onto ``ref``."""
    a = np.asarray(x).astype(np.complex128).reshape(ref.shape)
    alpha = np.vdot(a, ref) / np.vdot(a, a)
    return float(np.linalg.norm(alpha * a - ref) / np.linalg.norm(ref))


def mag_nrmse(x: Any, ref: np.ndarray, where: np.ndarray) -> float:
    """Magnitude NRMSE over ``where`` after the best real scale."""
    a, r = np.abs(np.asarray(x))[where], ref[where]
    s = float(np.dot(a, r) / np.dot(a, a))
    return float(np.linalg.norm(s * a - r) / np.linalg.norm(r))


def crop_readout(k: np.ndarray, n: int) -> np.ndarray:
    """Crop the oversampled readout (axis -2) to ``n`` samples in the image domain."""
    img = ifftnc(k, axes=-2)
    start = (k.shape[-2] - n) // 2
    return np.asarray(fftnc(img[..., start : start + n, :], axes=-2))


def make_data(name: str, s: Settings, tmp: Path) -> tuple[np.ndarray, str]:
    """Fully sampled ``(coils, n, n)`` k-space (complex128) and a description."""
    n, c = s.size, s.coils
    if name == "bart":
        bart(tmp, "phantom", "-k", "-s", str(c), "-x", str(n), "full")
        k = bart_to_kspace(read_cfl(tmp / "full")).astype(np.complex128)
        return k, f"`bart phantom -k -s {c} -x {n}` (noise-free)"
    if name == "ismrmrd":
        path = tmp / "sl.h5"
        cmd = [ISMRMRD_TOOL or "", "-m", str(n), "-c", str(c), "-n", "0.05", "-o", str(path)]
        subprocess.run(cmd, check=True, capture_output=True)
        raw = read_ismrmrd(path)
        k = crop_readout(raw.kspace[0].astype(np.complex128), raw.recon_matrix[0])
        return k, (
            f"`ismrmrd_generate_cartesian_shepp_logan -m {n} -c {c} -n 0.05` read with "
            f"`read_ismrmrd` ({raw.kspace.shape[-2]} readout samples cropped to {n})"
        )
    img = brain_phantom(n, phase=0.5, dtype=np.complex128)
    maps = birdcage_maps(n, c, dtype=np.complex128)
    k = simulate_kspace(img, maps, noise_std=0.01, seed=1)
    return np.asarray(k), f"`brain_phantom({n}, phase=0.5)`, `birdcage_maps({n}, {c})`, noise 0.01"


DATASETS = {"bart": "BART phantom", "ismrmrd": "ISMRMRD Shepp-Logan", "brain": "medrecon head"}


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    step: str
    tool: str
    setting: str
    nrmse: float | None = None
    mag: float | None = None
    t1: float | None = None
    t1_n: int = 0
    tdef: float | None = None
    own: float | None = None


@dataclass
class DatasetResult:
    key: str
    description: str
    rows: list[Row] = field(default_factory=list)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    noop: float = float("nan")


def lam_of(k: int) -> float:
    return 10.0 ** (k / 2)


def sweep(
    fn: Callable[[float], tuple[np.ndarray, float | None]],
    err: Callable[[np.ndarray], float],
    start: tuple[int, ...],
    max_evals: int,
    cache: dict[int, tuple[float, float, float | None, np.ndarray]] | None = None,
) -> dict[int, tuple[float, float, float | None, np.ndarray]]:
    """Evaluate ``fn(lam_of(k))`` on ``start``, extending while the best ``k`` is at an edge.

    Returns ``{k: (nrmse, wall seconds, own seconds or None, image)}``.
    """
    res = {} if cache is None else cache

    def run(k: int) -> None:
        if k not in res:
            t0 = time.perf_counter()
            img, own = fn(lam_of(k))
            res[k] = (err(img), time.perf_counter() - t0, own, img)

    for k in start:
        run(k)
    while len(res) < max_evals:
        best = min(res, key=lambda q: res[q][0])
        if best == min(res):
            run(best - 1)
        elif best == max(res):
            run(best + 1)
        else:
            break
    return res


def best_k(res: dict[int, tuple[float, float, float | None, np.ndarray]]) -> int:
    return min(res, key=lambda q: res[q][0])


def median_or_none(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def run_dataset(key: str, s: Settings, tmp_root: Path, app: Any) -> DatasetResult:
    tmp = Path(tempfile.mkdtemp(prefix=f"mr_{key}_", dir=tmp_root))
    kfull, desc = make_data(key, s, tmp)
    out = DatasetResult(key, desc)
    out.noop = bart_noop(tmp)
    mask = random_mask(kfull.shape, 0.08, 4, seed=0)
    kus = (mask * kfull).astype(np.complex64)
    write_cfl(tmp / "us", kspace_to_bart(kus))
    full_img = ifft2c(kfull)
    rss_ref = rss(full_img)
    obj = rss_ref > 0.1 * rss_ref.max()
    R = s.repeats

    # ---- ESPIRiT
    runs = [bart(tmp, "ecalib", "-m1", "us", "maps") for _ in range(R)]
    runs_def = [bart(tmp, "ecalib", "-m1", "us", "maps", one_thread=False) for _ in range(R)]
    maps = bart_to_kspace(read_cfl(tmp / "maps")).astype(np.complex64)

    def ours_maps() -> Any:
        return espirit(kus, threshold=float(np.sqrt(0.001)), crop=0.8)

    with threads(1):
        t_esp1 = time_call(ours_maps, repeats=R)
    with threads(None):
        t_esp = time_call(ours_maps, repeats=R)
    maps_ours = ours_maps()
    ref = np.sum(np.conj(maps) * full_img, axis=0)
    out.images["reference"] = ref
    sc = float(np.abs(SenseOperator(maps, mask).T(kus)).max())

    def mag_sense(m: np.ndarray) -> float:
        return mag_nrmse(sense_recon(kus, m, mask, lam=SENSE_LAM, n_iter=s.cg_iter), rss_ref, obj)

    esp = "`-t 0.001 -c 0.8 -k 6 -r 24`; NRMSE: CG-SENSE with these maps (magnitude)"
    out.rows += [
        Row("ESPIRiT maps", "medrecon", esp, None, mag_sense(maps_ours), t_esp1.median, R,
            t_esp.median),
        Row("ESPIRiT maps", "BART ecalib", esp, None, mag_sense(maps),
            statistics.median(r.wall for r in runs), R,
            statistics.median(r.wall for r in runs_def),
            statistics.median(r.wall for r in runs) - out.noop),
    ]  # fmt: skip

    def both(img: Any) -> tuple[float, float]:
        return nrmse_scaled(img, ref), mag_nrmse(img, rss_ref, obj)

    # ---- zero-filled
    zf = SenseOperator(maps, mask).T(kus)
    out.images["zero-filled"] = zf
    out.rows.append(Row("zero-filled", "medrecon", "A^H y (BART's maps)", *both(zf)))

    # ---- CG-SENSE
    def ours_sense() -> Any:
        return sense_recon(kus, maps, mask, lam=SENSE_LAM, n_iter=s.cg_iter, tol=0.0)

    def sp_sense() -> Any:
        return app.SenseRecon(kus, maps, lamda=SENSE_LAM, max_iter=s.cg_iter, show_pbar=False).run()

    pics_l2 = ["pics", "-d4", "-l2", "-r", str(SENSE_LAM), "-i", str(s.cg_iter), "us", "maps"]
    cg_runs = [bart(tmp, *pics_l2, "rec") for _ in range(R)]
    cg_def = [bart(tmp, *pics_l2, "rec", one_thread=False) for _ in range(R)]
    rec_bart = bart_to_kspace(read_cfl(tmp / "rec"))[0]
    img_ours = ours_sense()
    out.images["CG-SENSE (ours)"] = img_ours
    setting = f"lam {SENSE_LAM}, {s.cg_iter} iterations"
    with threads(1):
        t1_ours, t1_sp = time_call(ours_sense, repeats=R), time_call(sp_sense, repeats=R)
    with threads(None):
        td_ours, td_sp = time_call(ours_sense, repeats=R), time_call(sp_sense, repeats=R)
    bart_cg = cg_runs[0].cg_iter
    out.rows += [
        Row("CG-SENSE", "medrecon", setting, *both(img_ours), t1_ours.median, R, td_ours.median),
        Row("CG-SENSE", "BART pics -l2",
            setting + (f" (stopped after {bart_cg})" if bart_cg not in (None, s.cg_iter) else ""),
            *both(rec_bart), statistics.median(r.wall for r in cg_runs), R,
            statistics.median(r.wall for r in cg_def), median_or_none([r.own for r in cg_runs])),
        Row("CG-SENSE", "SigPy SenseRecon", setting, *both(sp_sense()), t1_sp.median, R,
            td_sp.median),
    ]  # fmt: skip

    err = lambda img: nrmse_scaled(img, ref)  # noqa: E731

    # ---- CS: l1-wavelet and TV
    def ours_wav(lam: float) -> tuple[np.ndarray, None]:
        return cs_wavelet(
            kus, maps, mask, lam=lam * sc, wavelet="haar", random_shift=True,
            n_iter=s.cs_iter, tol=0.0,
        ), None  # fmt: skip

    def ours_tv(lam: float) -> tuple[np.ndarray, None]:
        return cs_tv(kus, maps, mask, lam=lam * sc, n_iter=s.cs_iter, tol=0.0), None

    def pics(reg: str, *extra: str, one_thread: bool = True) -> Callable[[float], Any]:
        def fn(lam: float) -> tuple[np.ndarray, float | None]:
            r = bart(
                tmp, "pics", "-S", "-w", "1", "-i", str(s.cs_iter), *extra,
                "-R", f"{reg}:3:0:{lam * sc}", "us", "maps", "out", one_thread=one_thread,
            )  # fmt: skip
            return bart_to_kspace(read_cfl(tmp / "out"))[0], r.own

        return fn

    def sp_wav(lam: float) -> tuple[np.ndarray, None]:
        return app.L1WaveletRecon(
            kus, maps, lam * sc, max_iter=s.cs_iter, show_pbar=False
        ).run(), None  # fmt: skip

    haar = ("--wavelet", "haar")
    # (step, tool, description, run at 1 thread, run at default threads or None, start grid)
    contenders: list[tuple[str, str, str, Callable[[float], Any], Any, tuple[int, ...]]] = [
        ("l1-wavelet", "medrecon", "Haar, FISTA + cycle spinning", ours_wav, None, WAV_START),
        ("l1-wavelet", "BART pics -R W", "Daubechies-2 (default), FISTA", pics("W"),
         pics("W", one_thread=False), WAV_START),
        ("l1-wavelet", "BART pics -R W --wavelet haar", "Haar, FISTA", pics("W", *haar),
         pics("W", *haar, one_thread=False), WAV_START),
        ("l1-wavelet", "SigPy L1WaveletRecon", "Daubechies-4, accelerated prox. gradient",
         sp_wav, None, WAV_START),
        ("TV", "medrecon", "isotropic, PDHG", ours_tv, None, TV_START),
        ("TV", "BART pics -R T", "anisotropic, ADMM", pics("T"), pics("T", one_thread=False),
         TV_START),
    ]  # fmt: skip
    ours_best: dict[str, int] = {}
    for step, tool, desc_, fn, fn_def, start in contenders:
        log(f"  {key}: {step} {tool}")
        is_bart = fn_def is not None
        with threads(1):
            res = sweep(fn, err, start, s.max_sweep)
            if step in ours_best:  # the common nominal lambda
                res = sweep(fn, err, (ours_best[step],), len(res) + 1, res)
        kb = best_k(res)
        if tool == "medrecon":
            ours_best[step] = kb
        # default threads: BART (the only multi-threaded contender) on every dataset, the
        # others on the first dataset only (numpy FFTs: single-threaded)
        tdef = None
        if is_bart or key == "bart":
            with threads(None):
                t0 = time.perf_counter()
                (fn_def or fn)(lam_of(kb))
                tdef = time.perf_counter() - t0
        walls = [v[1] for v in res.values()]
        own = median_or_none([v[2] for v in res.values()]) if is_bart else None
        lam_txt = ", ".join(f"{lam_of(q):.2g}" + ("*" if q == kb else "") for q in sorted(res))
        out.rows.append(
            Row(step, tool, f"{desc_}; lam / max abs(A^H y) in {{{lam_txt}}}", *both(res[kb][3]),
                statistics.median(walls), len(walls), tdef, own)
        )  # fmt: skip
        kc = ours_best.get(step)
        if tool != "medrecon" and kc is not None and kc != kb:
            out.rows.append(
                Row(step, tool, f"at our best lam ({lam_of(kc):.2g})", *both(res[kc][3]))
            )
        short = {
            "medrecon": "medrecon",
            "BART pics -R W --wavelet haar": "BART Haar",
            "BART pics -R T": "BART",
            "SigPy L1WaveletRecon": "SigPy",
        }.get(tool)
        if short is not None:
            out.images[f"{step} ({short})"] = res[kb][3]
    shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- NUFFT


@dataclass
class NufftRow:
    tool: str
    coils: int
    fwd1: float
    fwd: float
    adj1: float
    adj: float
    err_fwd: float
    err_adj: float


def nufft_contenders(
    x: np.ndarray, y: np.ndarray, pts: np.ndarray, n: int, nthreads: int | None, eps: float
) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """``{tool: (forward, adjoint)}`` closures for images ``x`` and k-space ``y``."""
    import finufft
    import sigpy
    import torch
    import torchkbnufft as tkbn

    coils = 1 if x.ndim == 2 else x.shape[0]
    n_samples = pts.shape[0]
    # ours
    A = NufftOperator(pts, (n, n), eps=eps, n_threads=nthreads)
    # finufft directly, the same plan settings as NufftOperator._plan
    opts: dict[str, Any] = {} if nthreads is None else {"nthreads": nthreads}
    p2 = finufft.Plan(2, (n, n), coils, eps=eps, isign=-1, dtype="complex64", **opts)
    p1 = finufft.Plan(1, (n, n), coils, eps=eps, isign=1, dtype="complex64", **opts)
    p32 = [np.ascontiguousarray(pts[:, i], dtype=np.float32) for i in range(2)]
    p2.setpts(*p32)
    p1.setpts(*p32)
    # torchkbnufft (CPU): image (batch, coils, ny, nx), omega (2, samples)
    kb_f = tkbn.KbNufft(im_size=(n, n))
    kb_a = tkbn.KbNufftAdjoint(im_size=(n, n))
    omega = torch.from_numpy(pts.T.astype(np.float32).copy())
    xt = torch.from_numpy(x.reshape(1, coils, n, n).copy())
    yt = torch.from_numpy(y.reshape(1, coils, n_samples).copy())
    # sigpy: coordinates in cycles per field of view, (..., 2) in image-axis order
    sp_coord = (pts * (n / (2 * np.pi))).astype(np.float32)
    return {
        "medrecon NufftOperator": (lambda: A(x), lambda: A.T(y)),
        "FINUFFT direct": (lambda: p2.execute(x), lambda: p1.execute(y)),
        "torchkbnufft": (lambda: kb_f(xt, omega), lambda: kb_a(yt, omega)),
        "SigPy nufft": (
            lambda: sigpy.nufft(x, sp_coord),
            lambda: sigpy.nufft_adjoint(y, sp_coord, oshape=x.shape),
        ),
    }


def run_nufft(s: Settings) -> tuple[list[NufftRow], dict[str, float]]:
    import finufft

    n = s.nufft_size
    coords = radial(s.spokes, s.readout)  # (spokes, readout, 2): (ky, kx) in [-pi, pi)
    pts = coords.reshape(-1, 2)
    n_samples = pts.shape[0]
    img = brain_phantom(n, phase=0.5, dtype=np.complex64)
    maps = birdcage_maps(n, 8, dtype=np.complex64)
    rows: list[NufftRow] = []
    eps = 1e-6
    R = s.nufft_repeats
    for coils in (1, 8):
        x = img if coils == 1 else np.ascontiguousarray(maps * img)
        rng = np.random.default_rng(0)
        shape_y = (n_samples,) if coils == 1 else (coils, n_samples)
        y = (rng.standard_normal(shape_y) + 1j * rng.standard_normal(shape_y)).astype(np.complex64)
        # reference: FINUFFT in double precision at eps 1e-12
        pk = [np.ascontiguousarray(pts[:, i]) for i in range(2)]
        ref_f = finufft.nufft2d2(*pk, x.astype(np.complex128), eps=1e-12, isign=-1)
        ref_a = finufft.nufft2d1(*pk, y.astype(np.complex128), (n, n), eps=1e-12, isign=1)

        def err_of(out: Any, ref: np.ndarray) -> float:
            return nrmse_scaled(np.asarray(out).reshape(ref.shape), ref)

        results: dict[str, dict[str, Any]] = {}
        for nthreads in (1, None):
            ops = nufft_contenders(x, y, pts, n, nthreads, eps)
            with threads(nthreads):
                for name, (f, a) in ops.items():
                    r = results.setdefault(name, {})
                    r[("fwd", nthreads)] = time_call(f, repeats=R).median
                    r[("adj", nthreads)] = time_call(a, repeats=R).median
                    if nthreads is None:
                        r["err_fwd"] = err_of(f(), ref_f)
                        r["err_adj"] = err_of(a(), ref_a)
            log(f"  NUFFT {coils} coil(s), threads {nthreads or 'default'} done")
        for name, r in results.items():
            rows.append(
                NufftRow(name, coils, r[("fwd", 1)], r[("fwd", None)], r[("adj", 1)],
                         r[("adj", None)], r["err_fwd"], r["err_adj"])
            )  # fmt: skip
    # Toeplitz normal operator vs explicit A^H A (8 coils, maps in the operator)
    A = NufftOperator(coords, (n, n), maps=maps, eps=eps)
    t0 = time.perf_counter()
    T = ToeplitzNormal(A)
    build = time.perf_counter() - t0
    E = A.normal(toeplitz=False)
    t_t = time_call(lambda: T(img), repeats=R).median
    t_e = time_call(lambda: E(img), repeats=R).median
    ref = np.asarray(E(img))
    diff = float(np.linalg.norm(np.asarray(T(img)) - ref) / np.linalg.norm(ref))
    return rows, {"build": build, "toeplitz": t_t, "explicit": t_e, "diff": diff}


# --------------------------------------------------------------------------- report


def save_figure(path: Path, results: list[DatasetResult]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(results[0].images)
    fig = Figure(figsize=(2.2 * len(names), 2.5 * len(results)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(len(results), len(names)))
    for row, res in zip(axes, results, strict=True):
        ref = res.images["reference"]
        vmax = float(np.percentile(np.abs(ref), 99.5))
        for ax, name in zip(row, names, strict=True):
            img = np.asarray(res.images[name]).astype(np.complex128)
            alpha = np.vdot(img, ref) / np.vdot(img, img) if name != "reference" else 1.0
            ax.imshow(np.abs(alpha * img), cmap="gray", vmin=0, vmax=vmax)
            label = name if name == "reference" else f"{name}\n{nrmse_scaled(img, ref):.3f}"
            ax.set_title(label, fontsize=7)
            ax.set_axis_off()
        row[0].text(-0.1, 0.5, DATASETS[res.key], transform=row[0].transAxes, rotation=90,
                    va="center", ha="right", fontsize=8)  # fmt: skip
    fig.suptitle("4x random undersampling (NRMSE vs fully sampled, BART's maps)", fontsize=9)
    data = __import__("io").BytesIO()
    fig.savefig(data, format="png", dpi=80)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.getvalue())
    tmp.replace(path)


def _f(v: float | None, digits: int = 4) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def report(
    s: Settings,
    quick: bool,
    results: list[DatasetResult],
    nufft: tuple[list[NufftRow], dict[str, float]] | None,
    machine: dict[str, str],
    loads: tuple[str, str],
    others: tuple[float | None, float | None, float | None],
    figure: str | None,
    elapsed: float,
    skipped: list[str],
) -> str:
    title = "# MR reconstruction on CPU: medrecon vs BART vs SigPy"
    lines = report_head(title, quick, "small sizes, few iterations")
    lines += [
        "Written by `benchmarks/mr_recon.py" + (" --quick" if quick else "") + "`. All numbers "
        "are measured in this run on this machine; the method (data, commands, lambda units, "
        "timing rules) is in the script's docstring.",
        "",
        "## Machine",
        "",
        markdown_table(["", ""], [[k, v] for k, v in machine.items()]),
        "",
        f"Load average (1/5/15 min) at start: {loads[0]}; at end: {loads[1]}. Cores kept busy "
        f"by other processes: {fmt_cores(others[0])} at start, {fmt_cores(others[1])} at end, "
        f"**{fmt_cores(others[2])} on average during the run** (above about 0.1 the times are "
        f"pessimistic, and multi-threaded times most of all). Total run time {elapsed:.0f} s.",
        "",
    ]
    if skipped:
        lines += ["Skipped: " + "; ".join(skipped) + ".", ""]
    lines += [
        "## Setting",
        "",
        f"* {s.coils} coils, {s.size} x {s.size}, 4x random mask along the last axis "
        "(`random_mask(shape, 0.08, 4, seed=0)`); all reconstructions use BART's ESPIRiT maps.",
        f"* CG-SENSE: lam {SENSE_LAM}, {s.cg_iter} CG iterations; CS: {s.cs_iter} iterations "
        "(FISTA for l1-wavelet in medrecon and BART, SigPy's accelerated proximal gradient; "
        "PDHG for our TV, ADMM for BART's).",
        "* Exact BART commands (in a tmpfs folder, `us` = undersampled k-space written with "
        "`medrecon.mr.io.write_cfl`): `bart ecalib -m1 us maps`; "
        f"`bart pics -d4 -l2 -r {SENSE_LAM} -i {s.cg_iter} us maps rec`; "
        f"`bart pics -S -w 1 -i {s.cs_iter} [--wavelet haar] -R W:3:0:<lam> us maps out`; "
        f"`bart pics -S -w 1 -i {s.cs_iter} -R T:3:0:<lam> us maps out` "
        "(`<lam>` = the swept value times max|A^H y|).",
        "* lambda: the same number means the same objective `0.5||Ax - y||^2 + lam R(x)` in all "
        "three libraries (BART with `-w 1`: no data scaling), but the wavelet transforms and TV "
        "discretisations differ, so the conversion is not exact: each tool was swept on the "
        "same half-decade grid and is reported at its own best lambda (marked `*`); rows 'at "
        "our best lam' give the others at our best value.",
        "* NRMSE: complex, after the least-squares complex scale, against the fully sampled "
        "k-space combined with BART's maps; 'magnitude': |image| against the fully sampled "
        "RSS over the object, after the best real scale.",
        "* Times [s]: median of repeats (n = number of calls in the median); '1 thread': BART "
        "`OMP_NUM_THREADS=1`, OpenBLAS 1 thread; 'default': BART's OpenMP on all cores, "
        "OpenBLAS default (measured for BART on every dataset, for the others on the first "
        "dataset only: their Cartesian code uses numpy's single-threaded FFT). For CS the "
        "1-thread median is over the lambda sweep (fixed iteration count), 'default' one call. "
        "**BART times include process start and .cfl file I/O on tmpfs**; 'BART own' is the "
        "'Total Time' that `bart pics` prints itself (for `ecalib`: wall time minus a no-op "
        "`bart version`).",
        "",
    ]
    headers = [
        "step", "tool", "setting", "NRMSE", "NRMSE magnitude", "time 1 thread [s] (n)",
        "time default threads [s]", "BART own [s]",
    ]  # fmt: skip
    for res in results:
        lines += [
            f"## {DATASETS[res.key]}: {res.description}",
            "",
            markdown_table(
                headers,
                [
                    [
                        r.step,
                        r.tool,
                        r.setting,
                        _f(r.nrmse),
                        _f(r.mag),
                        "-" if r.t1 is None else f"{fmt(r.t1)} ({r.t1_n})",
                        fmt(r.tdef),
                        fmt(r.own),
                    ]
                    for r in res.rows
                ],
            ),
            "",
            f"No-op `bart version`: {1e3 * res.noop:.1f} ms (process start).",
            "",
        ]
    if nufft is not None:
        rows, toe = nufft
        lines += [
            f"## NUFFT: {s.nufft_size} x {s.nufft_size} image, radial {s.spokes} spokes x "
            f"{s.readout} samples, complex64",
            "",
            "Forward = image to k-space (type 2), adjoint = k-space to image (type 1); 8 coils "
            "= a batch of 8 images in one call (no maps); ms per call, median of "
            f"{s.nufft_repeats}; error relative to FINUFFT at eps 1e-12 in double precision "
            "after the best complex scale (each tool at its default accuracy; medrecon and "
            "FINUFFT at eps 1e-6). Overhead = medrecon / FINUFFT direct - 1.",
            "",
        ]
        direct = {(r.coils): r for r in rows if r.tool == "FINUFFT direct"}
        table = []
        for r in rows:
            d = direct[r.coils]
            over = (
                f"{100 * (r.fwd / d.fwd - 1):+.0f}% / {100 * (r.adj / d.adj - 1):+.0f}%"
                if r.tool.startswith("medrecon")
                else "-"
            )
            table.append(
                [r.tool, str(r.coils), f"{1e3 * r.fwd1:.1f}", f"{1e3 * r.fwd:.1f}",
                 f"{1e3 * r.adj1:.1f}", f"{1e3 * r.adj:.1f}", f"{r.err_fwd:.1e}",
                 f"{r.err_adj:.1e}", over]
            )  # fmt: skip
        lines += [
            markdown_table(
                [
                    "tool",
                    "coils",
                    "forward 1 thread",
                    "forward default",
                    "adjoint 1 thread",
                    "adjoint default",
                    "error forward",
                    "error adjoint",
                    "overhead vs FINUFFT (fwd / adj, default threads)",
                ],
                table,
            ),
            "",
            f"ToeplitzNormal vs explicit A^H A (8 coils with maps, default threads): "
            f"{1e3 * toe['toeplitz']:.1f} ms vs {1e3 * toe['explicit']:.1f} ms per call "
            f"({toe['explicit'] / toe['toeplitz']:.1f}x faster; kernel built once in "
            f"{1e3 * toe['build']:.0f} ms); relative difference {toe['diff']:.1e}.",
            "",
        ]
    if figure is not None:
        lines += [f"![images]({figure})", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="image side (default 256, quick 96; >= 75: the 8 %% centre band must hold the 6-point "
        "ESPIRiT kernel)",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 2)")
    p.add_argument("--no-nufft", action="store_true", help="skip the NUFFT section")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"markdown file (default {DEFAULT_OUT} for a full run; a quick run only prints)",
    )
    args = p.parse_args(argv)
    s = QUICK if args.quick else FULL
    for name in ("size", "repeats"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                p.error(f"--{name}: expected >= 1, got {value}")
            s = replace(s, **{name: value})
    if BART is None:
        p.error("needs BART (`bart` on the PATH, Debian package 'bart')")
    try:
        import sigpy.mri.app as app
    except Exception as exc:
        p.error(f"needs SigPy ({exc})")

    t_start = time.perf_counter()
    load_start, other_start = load_average(), other_cpu_load()
    meter = OtherLoadMeter()
    tmp_root = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    skipped: list[str] = []
    keys = ["bart", "ismrmrd", "brain"]
    if ISMRMRD_TOOL is None:
        keys.remove("ismrmrd")
        skipped.append("ISMRMRD data (`ismrmrd_generate_cartesian_shepp_logan` not found)")
    results = []
    for key in keys:
        t0 = time.perf_counter()
        results.append(run_dataset(key, s, tmp_root, app))
        log(f"{key}: done in {time.perf_counter() - t0:.0f} s")
    nufft = None
    if not args.no_nufft:
        t0 = time.perf_counter()
        nufft = run_nufft(s)
        log(f"NUFFT: done in {time.perf_counter() - t0:.0f} s")
    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)
    figure = None
    if out is not None:
        png = out.with_suffix(".png")
        save_figure(png, results)
        figure = png.name
    machine = machine_info()
    machine.pop("astra-toolbox", None)
    machine["GPU"] = "none used (CPU benchmark)"
    machine["OpenBLAS threads (default)"] = str(os.cpu_count())
    for dist in ("sigpy", "finufft", "torchkbnufft", "torch", "ismrmrd", "PyWavelets"):
        machine[dist] = _version(dist)
    machine["BART"] = bart_version()
    text = report(
        s,
        args.quick,
        results,
        nufft,
        machine,
        (load_start, load_average()),
        (other_start, other_cpu_load(), meter.read()),
        figure,
        time.perf_counter() - t_start,
        skipped,
    )
    print(text)
    if out is not None:
        write_atomic(out, text + "\n")
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
