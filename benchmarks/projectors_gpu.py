"""Benchmark medrecon's CUDA projectors against ASTRA's on the same GPU, data resident on it.

Workloads (float32, 1 mm voxels):

* cone beam ``N^3`` volume, ``N`` views over 360 degrees, ``N x N`` detector, source-isocentre
  and isocentre-detector ``2 N`` mm each, detector pitch such that every view holds the whole
  volume; ``N`` from ``--sizes`` (default 256 512 1024; a size whose data do not fit in free
  GPU memory is skipped and reported);
* a 512-slice parallel stack: ``512^3`` volume, 720 views over 180 degrees, a 512 x 768
  detector (rows x columns, 1 mm), i.e. 512 parallel-beam slices of 512 x 512.

Contenders, each on the same device arrays: medrecon ``matched`` (forward, exact adjoint),
medrecon ``fast`` (texture forward, voxel-driven backprojection) and, when astra-toolbox
imports and sees the GPU, ASTRA's ``cuda3d`` projector through
``astra.experimental.direct_FP3D`` / ``direct_BP3D`` with ``astra.data3d.GPULink`` on CuPy
arrays (no host copies for either). medrecon is timed through the public ``Projector`` call
(input checks and output allocation included, ``check_finite=False``); ASTRA writes into a
preallocated array.

Method: each operation is called once (compilation, texture set-up, ASTRA's plan) and then
``--repeats`` times (fewer for calls over a second, so the largest size fits a few minutes);
each call is bracketed by device synchronisations and timed with ``time.perf_counter``; tables
give the median. Giga-updates per second = voxels x views / time / 1e9. The texture-fetch rate
is an estimate: 4 texture units per SM x SM count x SM clock (filtered fetches per second; a
trilinear 3D fetch may take two).

The ASTRA numbers marked "quoted" were measured on an H200 on 2026-11-27 (issue 4), not in this
run; the ratios use this run's ASTRA timings only.

Usage::

    python benchmarks/projectors_gpu.py                      # all sizes, writes the report
    python benchmarks/projectors_gpu.py --sizes 256 512 --repeats 3 --budget-s 240
    python benchmarks/projectors_gpu.py --quick --out /tmp/gpu.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from _common import log, markdown_table, write_atomic

RESULTS = Path(__file__).resolve().parent / "results"

#: ASTRA 2.5.0 on an H200, 2026-11-27 (issue 4): workload -> (forward s, back s)
QUOTED_ASTRA_H200: dict[str, tuple[float, float]] = {
    "cone 256": (0.0149, 0.0111),
    "cone 512": (0.173, 0.150),
    "cone 1024": (2.85, 2.53),
    "parallel stack 512": (0.324, 0.201),
}
#: targets of the issue: speed relative to ASTRA's in the same run
TARGET = {"matched": 1.0, "fast": 1.5}


@dataclass
class Workload:
    name: str
    geometry: Any
    volume: Any

    @property
    def updates(self) -> float:
        return float(math.prod(self.volume.shape)) * float(self.geometry.n_views)

    @property
    def nbytes(self) -> int:
        return 4 * (math.prod(self.volume.shape) + math.prod(self.geometry.proj_shape))


@dataclass
class Result:
    workload: str
    contender: str
    op: str
    runs: list[float] = field(default_factory=list)
    first: float = float("nan")
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")


def cone(n: int) -> Workload:
    from medrecon import ConeBeam3D, VolumeGeometry

    d = 2.0 * n
    r = n * math.sqrt(3.0) / 2.0  # radius of the cube's bounding sphere
    pitch = 2.0 * r * (2 * d) / (d - r) / n * 1.02
    geom = ConeBeam3D(
        angles=np.linspace(0.0, 2 * np.pi, n, endpoint=False),
        det_shape=(n, n),
        det_spacing=pitch,
        src_iso=d,
        iso_det=d,
    )
    return Workload(f"cone {n}", geom, VolumeGeometry(shape=(n, n, n), voxel_size=1.0))


def parallel_stack(n: int = 512, views: int = 720, cols: int = 768) -> Workload:
    from medrecon import ParallelBeam3D, VolumeGeometry

    geom = ParallelBeam3D(
        angles=np.linspace(0.0, np.pi, views, endpoint=False),
        det_shape=(n, cols),
        det_spacing=1.0,
    )
    return Workload(f"parallel stack {n}", geom, VolumeGeometry(shape=(n, n, n), voxel_size=1.0))


# --------------------------------------------------------------------------- timing


def timed(cp: Any, fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    dev = cp.cuda.Device()

    def once() -> float:
        dev.synchronize()
        t0 = time.perf_counter()
        fn()
        dev.synchronize()
        return time.perf_counter() - t0

    first = once()
    n = repeats if first < 1.0 else max(2, min(repeats, 3 if first < 3.0 else 2))
    return first, [once() for _ in range(n)]


# --------------------------------------------------------------------------- contenders


def ours(cp: Any, w: Workload, mode: str) -> dict[str, Callable[[], Any]]:
    from medrecon import Projector

    op = Projector(w.geometry, w.volume, backend="cuda", mode=mode, check_finite=False)
    rng = cp.random.default_rng(0)
    x = rng.random(w.volume.shape, dtype=cp.float32)
    y = rng.random(w.geometry.proj_shape, dtype=cp.float32)
    return {"forward": lambda: op(x), "back": lambda: op.T(y)}


def astra_calls(astra: Any, cp: Any, w: Workload) -> tuple[dict[str, Callable[[], Any]], Any]:
    from astra.data3d import GPULink

    from medrecon.geometry.astra import to_astra

    proj_geom, vol_geom = to_astra(w.geometry.to_vectors(), w.volume)
    pid = astra.create_projector("cuda3d", proj_geom, vol_geom)
    nz, ny, nx = w.volume.shape
    rows, cols = w.geometry.det_shape
    views = w.geometry.n_views
    rng = cp.random.default_rng(1)
    vol = rng.random((nz, ny, nx), dtype=cp.float32)
    proj = cp.zeros((rows, views, cols), dtype=cp.float32)  # ASTRA's (rows, views, cols)
    vol_link = GPULink(vol.data.ptr, nx, ny, nz, nx * 4)
    proj_link = GPULink(proj.data.ptr, cols, views, rows, cols * 4)
    calls = {
        "forward": lambda: astra.experimental.direct_FP3D(pid, vol_link, proj_link),
        "back": lambda: astra.experimental.direct_BP3D(pid, vol_link, proj_link),
    }
    return calls, (pid, vol, proj)


def astra_agreement(astra: Any, cp: Any, w: Workload) -> float:
    """Relative L2 difference of our matched forward and ASTRA's on one random volume."""
    from astra.data3d import GPULink

    from medrecon import Projector
    from medrecon.geometry.astra import to_astra

    proj_geom, vol_geom = to_astra(w.geometry.to_vectors(), w.volume)
    pid = astra.create_projector("cuda3d", proj_geom, vol_geom)
    try:
        nz, ny, nx = w.volume.shape
        rows, cols = w.geometry.det_shape
        vol = cp.random.default_rng(2).random((nz, ny, nx), dtype=cp.float32)
        proj = cp.zeros((rows, w.geometry.n_views, cols), dtype=cp.float32)
        astra.experimental.direct_FP3D(
            pid,
            GPULink(vol.data.ptr, nx, ny, nz, nx * 4),
            GPULink(proj.data.ptr, cols, w.geometry.n_views, rows, cols * 4),
        )
        theirs = cp.swapaxes(proj, 0, 1)
        mine = Projector(w.geometry, w.volume, backend="cuda")(vol)
        return float(cp.linalg.norm(mine - theirs) / cp.linalg.norm(theirs))
    finally:
        astra.projector3d.delete(pid)


def load_astra(cp: Any, disabled: bool) -> tuple[Any | None, str]:
    if disabled:
        return None, "disabled with --no-astra"
    try:
        import astra
        import astra.experimental
    except Exception as exc:  # ImportError, or OSError from a missing shared library
        return None, f"not importable ({type(exc).__name__}: {exc})"
    try:
        if not astra.use_cuda():
            return None, "imports, but sees no CUDA GPU (astra.use_cuda() is False)"
    except Exception as exc:
        return None, f"astra.use_cuda() failed ({exc})"
    return astra, f"astra-toolbox {getattr(astra, '__version__', '?')}, cuda3d"


# --------------------------------------------------------------------------- machine


def card_info(cp: Any) -> dict[str, str]:
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    free, total = cp.cuda.runtime.memGetInfo()
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
    except OSError:
        smi = ""

    def cuda_version(v: int) -> str:
        return f"{v // 1000}.{v % 1000 // 10}"

    sms = int(props["multiProcessorCount"])
    clock_khz = int(props.get("clockRate", 0))
    tex_rate = 4 * sms * clock_khz * 1e3 if clock_khz else float("nan")
    return {
        "date (UTC)": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "GPU": name,
        "compute capability": dev.compute_capability,
        "multiprocessors": str(sms),
        "SM clock [MHz]": f"{clock_khz / 1e3:.0f}" if clock_khz else "n/a",
        "GPU memory [GiB]": f"{total / 2**30:.1f} ({free / 2**30:.1f} free at start)",
        "driver": smi or cuda_version(cp.cuda.runtime.driverGetVersion()),
        "CUDA driver API": cuda_version(cp.cuda.runtime.driverGetVersion()),
        "CUDA runtime (CuPy)": cuda_version(cp.cuda.runtime.runtimeGetVersion()),
        "texture-fetch rate estimate [G/s]": f"{tex_rate / 1e9:.0f}",
        "CPU": platform.processor() or platform.machine(),
        "Python": platform.python_version(),
        "cupy": _version("cupy-cuda13x", "cupy-cuda12x", "cupy"),
        "torch": _version("torch"),
        "astra-toolbox": _version("astra-toolbox"),
        "medrecon": _version("medrecon"),
    }


def _version(*dists: str) -> str:
    for dist in dists:
        try:
            version = metadata.version(dist)
            return f"{version} ({dist})" if len(dists) > 1 else version
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def card_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "gpu"


# --------------------------------------------------------------------------- report


def fmt_ms(t: float) -> str:
    return "n/a" if not math.isfinite(t) else f"{t * 1e3:.4g}"


def report(
    info: dict[str, str],
    results: list[Result],
    workloads: list[Workload],
    notes: list[str],
    astra_status: str,
    tex_rate: float,
    argv: list[str],
) -> str:
    by = {(r.workload, r.contender, r.op): r for r in results}
    rows = []
    for w in workloads:
        for op_i, op in enumerate(("forward", "back")):
            astra_t = by.get((w.name, "ASTRA", op))
            astra_med = astra_t.median if astra_t else float("nan")
            quoted = QUOTED_ASTRA_H200.get(w.name, (float("nan"), float("nan")))[op_i]
            for contender in ("matched", "fast", "ASTRA"):
                r = by.get((w.name, contender, op))
                if r is None:
                    continue
                t = r.median
                gups = w.updates / t / 1e9 if math.isfinite(t) else float("nan")
                ratio = astra_med / t if contender != "ASTRA" else float("nan")
                target = TARGET.get(contender)
                verdict = (
                    "n/a"
                    if not math.isfinite(ratio) or target is None
                    else ("yes" if ratio >= target else "no")
                )
                rows.append(
                    [
                        w.name,
                        op,
                        contender,
                        fmt_ms(t),
                        f"{fmt_ms(min(r.runs))}-{fmt_ms(max(r.runs))}" if r.runs else "n/a",
                        fmt_ms(r.first),
                        f"{gups:.1f}" if math.isfinite(gups) else "n/a",
                        f"{gups * 1e9 / tex_rate:.2f}"
                        if math.isfinite(gups) and math.isfinite(tex_rate)
                        else "n/a",
                        f"{ratio:.2f}" if math.isfinite(ratio) else "-",
                        f"{verdict} (>= {target}x)" if target else "-",
                        fmt_ms(quoted),
                    ]
                )
    headers = (
        "workload",
        "op",
        "contender",
        "median [ms]",
        "min-max [ms]",
        "first call [ms]",
        "GUPS",
        "GUPS / tex rate",
        "speed vs ASTRA (this run)",
        "target met",
        "ASTRA H200 quoted [ms]",
    )
    lines = [
        f"# GPU projectors: medrecon vs ASTRA on {info['GPU']}",
        "",
        "Written by `benchmarks/projectors_gpu.py` "
        f"(`{' '.join(argv) or 'default arguments'}`). Data resident on the GPU for every "
        "contender; median of repeats after one warm-up call; every call bracketed by device "
        "synchronisations. `back` is the exact adjoint for `matched` and the voxel-driven "
        "backprojection for `fast` and ASTRA. GUPS = voxels x views / time / 1e9. "
        "'ASTRA H200 quoted' is from issue 4 (an H200, 2026-11-27), *not* measured in this run; "
        "ratios and targets use this run's ASTRA only.",
        "",
        "## Machine",
        "",
        markdown_table(("item", "value"), [[k, v] for k, v in info.items()]),
        "",
        f"ASTRA: {astra_status}.",
        "",
        "## Results",
        "",
        markdown_table(headers, rows) if rows else "(no results)",
        "",
    ]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += [
        "## Workloads",
        "",
        *[
            f"- {w.name}: volume {w.volume.shape} (1 mm voxels), {w.geometry.n_views} views, "
            f"detector {w.geometry.det_shape} ({type(w.geometry).__name__})"
            for w in workloads
        ],
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--no-parallel", action="store_true", help="skip the parallel stack")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip workloads after this")
    parser.add_argument("--no-astra", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    raw_argv = sys.argv[1:] if argv is None else argv

    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception as exc:
        log(f"projectors_gpu: needs CuPy and a CUDA GPU ({type(exc).__name__}: {exc})")
        return 2

    t_start = time.perf_counter()
    info = card_info(cp)
    tex_rate = float(info["texture-fetch rate estimate [G/s]"]) * 1e9
    astra, astra_status = load_astra(cp, args.no_astra)
    log(f"GPU: {info['GPU']}; ASTRA: {astra_status}")

    if args.quick:
        workloads = [cone(64), cone(128)]
        if not args.no_parallel:
            workloads.append(parallel_stack(64, 90, 96))
    else:
        workloads = [cone(args.sizes[0])]
        if not args.no_parallel:
            workloads.append(parallel_stack())
        workloads += [cone(n) for n in args.sizes[1:]]
    notes: list[str] = []
    results: list[Result] = []
    done: list[Workload] = []
    pool = cp.get_default_memory_pool()
    out = args.out or RESULTS / f"projectors_gpu_{card_slug(info['GPU'])}.md"

    def save(final: bool) -> str:
        extra = [] if final else ["partial report: the run was still going when this was written"]
        text = report(info, results, done, notes + extra, astra_status, tex_rate, raw_argv)
        write_atomic(out, text)
        return text

    for w in workloads:
        elapsed = time.perf_counter() - t_start
        if elapsed > args.budget_s:
            notes.append(f"{w.name}: skipped, the time budget of {args.budget_s:.0f} s was spent")
            continue
        pool.free_all_blocks()
        free, _ = cp.cuda.runtime.memGetInfo()
        need = 3 * w.nbytes  # data, outputs, a texture copy
        if need > free:
            notes.append(
                f"{w.name}: skipped, needs about {need / 2**30:.1f} GiB, "
                f"{free / 2**30:.1f} GiB free"
            )
            continue
        contenders: list[tuple[str, Callable[[], dict[str, Callable[[], Any]]]]] = [
            ("matched", lambda w=w: ours(cp, w, "matched")),
            ("fast", lambda w=w: ours(cp, w, "fast")),
        ]
        keep: list[Any] = []
        if astra is not None:

            def make_astra(w: Workload = w, keep: list[Any] = keep) -> dict[str, Callable[[], Any]]:
                calls, handles = astra_calls(astra, cp, w)
                keep.append(handles)
                return calls

            contenders.append(("ASTRA", make_astra))
        for contender, make in contenders:
            try:
                calls = make()
                for op, fn in calls.items():
                    first, runs = timed(cp, fn, args.repeats)
                    r = Result(w.name, contender, op, runs, first)
                    results.append(r)
                    log(
                        f"{w.name:>20} {contender:>8} {op:>8}: median {fmt_ms(r.median)} ms "
                        f"(first {fmt_ms(first)} ms, {len(runs)} runs)"
                    )
                del calls
            except Exception as exc:  # one failing contender must not lose the others
                notes.append(f"{w.name} {contender}: failed ({type(exc).__name__}: {exc})")
                log(notes[-1])
            pool.free_all_blocks()
        for pid, *_ in keep:
            astra.projector3d.delete(pid)
        keep.clear()
        done.append(w)
        if astra is not None and w is workloads[0]:
            try:
                err = astra_agreement(astra, cp, w)
                notes.append(
                    f"{w.name}: relative L2 difference of medrecon's matched forward and ASTRA's "
                    f"cuda3d forward on one random volume: {err:.2e} (different projector "
                    "models: Joseph vs ASTRA's interpolating ray marcher)"
                )
            except Exception as exc:
                notes.append(f"{w.name}: ASTRA agreement check failed ({exc})")
        save(final=False)  # a run stopped by an outer time limit keeps what it measured
    notes.append(f"total benchmark time {time.perf_counter() - t_start:.0f} s")
    text = save(final=True)
    log(f"wrote {out}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
