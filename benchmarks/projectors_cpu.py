"""Benchmark medrecon's CPU projectors against ASTRA's CPU projectors on the same workloads.

Both run in this one process, on the same inputs, one after the other, and the report names the
machine. Workloads (full run; ``--quick`` shrinks every size for a smoke test):

* 2D parallel beam: 512 x 512 image (1 mm pixels), 720 views over 180 degrees, 768 detector
  elements (1 mm). ASTRA references: ``linear`` (Joseph, the same model as ours) and ``line``.
* 2D fan beam, flat detector: same image, 720 views over 360 degrees, 768 elements,
  source-isocentre 595 mm, isocentre-detector 490 mm, element pitch chosen so that the fan just
  covers the 512 mm field of view. ASTRA reference: ``line_fanflat``.
* 3D cone beam: 128^3 volume (1 mm voxels), 180 views over 360 degrees, 192 x 192 detector, same
  distances; medrecon only (ASTRA has no CPU cone-beam projector): forward, adjoint and the
  voxel-driven ``backproject(weighting="fdk")``.

Method: float32 data. Each operation is called once (the "first call": numba compilation, or
loading it from the cache, plus per-projector setup) and then timed ``--repeats`` times; tables
give the median. In 2D, medrecon (all threads, then one thread) and each ASTRA projector take
turns call by call, so a change of machine load hits all of them alike. ASTRA is driven
directly (projector, data objects and FP/BP algorithms created once, then
``astra.algorithm.run``), so neither array copies into ASTRA nor our adapter's per-call object
creation are counted against it; medrecon is timed through the public ``Projector`` call, input
checks and output allocation included. By default numba compiles into a fresh, temporary cache
so that the first-call column measures compilation.

Usage::

    python benchmarks/projectors_cpu.py              # full run, writes results/projectors_cpu.md
    python benchmarks/projectors_cpu.py --quick --out /tmp/quick.md
    python benchmarks/projectors_cpu.py --no-astra   # medrecon only
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    time_call,
    time_interleaved,
    write_atomic,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "projectors_cpu.md"

#: distances of the fan and cone workloads (mm), a clinical CT-like gantry
SRC_ISO = 595.0
ISO_DET = 490.0

COMPARISON_HEADERS = (
    "workload",
    "operation",
    "medrecon [s]",
    "medrecon 1 thread [s]",
    "ASTRA projector",
    "ASTRA [s]",
    "speed-up",
    "speed-up vs 1 thread",
    "rel. L2 difference",
    "cores busy (medrecon / ASTRA)",
)
DETAIL_HEADERS = (
    "workload",
    "operation",
    "median [s] (min-max)",
    "first call [s]",
    "cores busy",
    "peak RSS growth [MiB]",
)


@dataclass(frozen=True)
class Sizes:
    image: int  # 2D image side (pixels of 1 mm)
    views_2d: int
    n_det_2d: int
    volume: int  # 3D cube side (voxels of 1 mm)
    views_3d: int
    det_3d: int  # square detector side (pixels)


FULL = Sizes(image=512, views_2d=720, n_det_2d=768, volume=128, views_3d=180, det_3d=192)
QUICK = Sizes(image=64, views_2d=90, n_det_2d=96, volume=32, views_3d=24, det_3d=48)


# --------------------------------------------------------------------------- geometry


def fan_det_spacing(fov_radius: float, n_det: int) -> float:
    """Flat-detector pitch (mm) for which the fan just covers a circle of ``fov_radius`` mm."""
    half_angle = math.asin(fov_radius / SRC_ISO)
    return 2.0 * (SRC_ISO + ISO_DET) * math.tan(half_angle) / n_det


def cone_det_spacing(half_side: float, n_det: int) -> float:
    """Square pixel pitch (mm) for which every projection of a centred cube fits the detector."""
    r = half_side * math.sqrt(2.0)  # in-plane radius of the cube
    cols = 2.0 * (SRC_ISO + ISO_DET) * math.tan(math.asin(r / SRC_ISO))
    rows = 2.0 * half_side * (SRC_ISO + ISO_DET) / (SRC_ISO - r)
    return max(cols, rows) / n_det


@dataclass
class Workload:
    name: str
    geometry: Any
    volume: Any
    astra_types: tuple[str, ...]


def make_workloads(s: Sizes) -> tuple[list[Workload], Workload, dict[str, str]]:
    """The 2D workloads, the 3D workload, and a description of each for the report."""
    from medrecon import ConeBeam3D, FanBeam2D, ParallelBeam2D, VolumeGeometry

    img = VolumeGeometry(shape=(s.image, s.image), voxel_size=1.0)
    par = ParallelBeam2D(
        angles=np.linspace(0.0, np.pi, s.views_2d, endpoint=False),
        n_det=s.n_det_2d,
        det_spacing=1.0,
    )
    fan_pitch = fan_det_spacing(0.5 * s.image, s.n_det_2d)
    fan = FanBeam2D(
        angles=np.linspace(0.0, 2.0 * np.pi, s.views_2d, endpoint=False),
        n_det=s.n_det_2d,
        det_spacing=fan_pitch,
        src_iso=SRC_ISO,
        iso_det=ISO_DET,
        detector="flat",
    )
    cube = VolumeGeometry(shape=(s.volume,) * 3, voxel_size=1.0)
    cone_pitch = cone_det_spacing(0.5 * s.volume, s.det_3d)
    cone = ConeBeam3D(
        angles=np.linspace(0.0, 2.0 * np.pi, s.views_3d, endpoint=False),
        det_shape=(s.det_3d, s.det_3d),
        det_spacing=cone_pitch,
        src_iso=SRC_ISO,
        iso_det=ISO_DET,
    )
    n = s.image
    names = (f"parallel {n}²", f"fan {n}²", f"cone {s.volume}³")
    desc = {
        names[0]: f"{n} x {n} image, 1 mm pixels; {s.views_2d} views over 180°; "
        f"{s.n_det_2d} detector elements of 1 mm",
        names[1]: f"same image; {s.views_2d} views over 360°; flat detector, {s.n_det_2d} "
        f"elements of {fan_pitch:.4f} mm; source-isocentre {SRC_ISO:g} mm, isocentre-detector "
        f"{ISO_DET:g} mm (fan covers a {n} mm field of view)",
        names[2]: f"{s.volume}³ volume, 1 mm voxels; {s.views_3d} views over 360°; "
        f"{s.det_3d} x {s.det_3d} detector, {cone_pitch:.4f} mm pixels; same distances",
    }
    two_d = [
        Workload(names[0], par, img, ("linear", "line")),
        Workload(names[1], fan, img, ("line_fanflat",)),
    ]
    return two_d, Workload(names[2], cone, cube, ()), desc


# --------------------------------------------------------------------------- ASTRA


class AstraDirect:
    """ASTRA's CPU projector with its data objects and FP/BP algorithms created once."""

    def __init__(self, astra: Any, geometry: Any, volume: Any, projector_type: str) -> None:
        from medrecon.geometry import to_astra

        self._astra = astra
        self.projector_type = projector_type
        proj_geom, vol_geom = to_astra(geometry, volume)
        self.pid = astra.create_projector(projector_type, proj_geom, vol_geom)
        self.sid = astra.data2d.create("-sino", proj_geom, 0.0)
        self.vid = astra.data2d.create("-vol", vol_geom, 0.0)
        fp = astra.astra_dict("FP")
        fp.update(ProjectorId=self.pid, ProjectionDataId=self.sid, VolumeDataId=self.vid)
        bp = astra.astra_dict("BP")
        bp.update(ProjectorId=self.pid, ProjectionDataId=self.sid, ReconstructionDataId=self.vid)
        self.fp = astra.algorithm.create(fp)
        self.bp = astra.algorithm.create(bp)

    def forward(self, x: np.ndarray) -> Callable[[], None]:
        """Store ``x`` in ASTRA and return the timed call (FP into the sinogram object)."""
        self._astra.data2d.store(self.vid, x)
        return lambda: self._astra.algorithm.run(self.fp)

    def adjoint(self, y: np.ndarray) -> Callable[[], None]:
        self._astra.data2d.store(self.sid, y)
        return lambda: self._astra.algorithm.run(self.bp)

    def sinogram(self) -> np.ndarray:
        return np.asarray(self._astra.data2d.get(self.sid))

    def image(self) -> np.ndarray:
        return np.asarray(self._astra.data2d.get(self.vid))

    def close(self) -> None:
        a = self._astra
        a.algorithm.delete([self.fp, self.bp])
        a.data2d.delete([self.sid, self.vid])
        a.projector.delete(self.pid)


# --------------------------------------------------------------------------- helpers


def detail_row(workload: str, op: str, t: Timing) -> list[str]:
    lo, hi = t.spread
    mem = "n/a" if t.peak_mib is None else f"{t.peak_mib:.1f}"
    return [
        workload,
        op,
        f"{fmt(t.median)} ({fmt(lo)}-{fmt(hi)})",
        fmt(t.first),
        f"{t.cores:.2f}",
        mem,
    ]


# --------------------------------------------------------------------------- runs


def run_2d(
    w: Workload, repeats: int, astra: Any | None, rng: np.random.Generator
) -> tuple[list[list[str]], list[list[str]], float]:
    """Comparison rows, detail rows, and medrecon's own float32 rounding for one 2D workload.

    medrecon (all threads and one thread) and every ASTRA projector take turns call by call.
    The rounding is the relative L2 difference of the float32 and float64 forward projections.
    """
    from medrecon import Projector

    A = Projector(w.geometry, w.volume, backend="cpu")
    x = rng.random(w.volume.shape, dtype=np.float32)
    y = rng.random(w.geometry.proj_shape, dtype=np.float32)
    refs = [AstraDirect(astra, w.geometry, w.volume, p) for p in w.astra_types] if astra else []
    try:
        timings: dict[str, dict[str, Timing]] = {}
        results: dict[str, dict[str, np.ndarray]] = {}
        for op, ours, data in (("forward", lambda: A(x), x), ("adjoint", lambda: A.T(y), y)):
            fns: dict[str, Callable[[], Any]] = {"ours": ours, "ours 1 thread": one_thread(ours)}
            for ref in refs:
                fns[ref.projector_type] = (
                    ref.forward(data) if op == "forward" else ref.adjoint(data)
                )
            timings[op] = time_interleaved(fns, repeats=repeats)
            results[op] = {"ours": np.asarray(ours())}
            for ref in refs:
                results[op][ref.projector_type] = ref.sinogram() if op == "forward" else ref.image()
    finally:
        for ref in refs:
            ref.close()

    details: list[list[str]] = []
    comparison: list[list[str]] = []
    for op, t in timings.items():
        ours_t, one_t = t["ours"], t["ours 1 thread"]
        log(
            f"  {w.name} {op}: medrecon {fmt(ours_t.median)} s "
            f"(1 thread {fmt(one_t.median)} s, first call {fmt(ours_t.first)} s)"
        )
        details.append(detail_row(w.name, op, ours_t))
        if not refs:
            comparison.append(
                [w.name, op, fmt(ours_t.median), fmt(one_t.median)]
                + ["n/a"] * 5
                + [f"{ours_t.cores:.2f} / n/a"]
            )
        for ref in refs:
            ptype = ref.projector_type
            t_ref = t[ptype]
            diff = rel_l2(results[op]["ours"], results[op][ptype])
            log(f"  {w.name} {op}: ASTRA {ptype} {fmt(t_ref.median)} s, rel. L2 {diff:.2e}")
            comparison.append(
                [
                    w.name,
                    op,
                    fmt(ours_t.median),
                    fmt(one_t.median),
                    ptype,
                    fmt(t_ref.median),
                    f"{t_ref.median / ours_t.median:.2f}x",
                    f"{t_ref.median / one_t.median:.2f}x",
                    f"{diff:.1e}",
                    f"{ours_t.cores:.2f} / {t_ref.cores:.2f}",
                ]
            )
    rounding = rel_l2(results["forward"]["ours"], A(x.astype(np.float64)))
    return comparison, details, rounding


def run_3d(w: Workload, repeats: int, rng: np.random.Generator) -> list[list[str]]:
    from medrecon import Projector

    A = Projector(w.geometry, w.volume, backend="cpu")
    x = rng.random(w.volume.shape, dtype=np.float32)
    y = rng.random(w.geometry.proj_shape, dtype=np.float32)
    ops: dict[str, Callable[[], Any]] = {
        "forward": lambda: A(x),
        "adjoint": lambda: A.T(y),
        'backproject(weighting="fdk")': lambda: A.backproject(y, weighting="fdk"),
    }
    rows = []
    for op, fn in ops.items():
        t = time_call(fn, repeats=repeats)
        log(f"  {w.name} {op}: medrecon {fmt(t.median)} s (first call {fmt(t.first)} s)")
        rows.append(detail_row(w.name, op, t))
    return rows


# --------------------------------------------------------------------------- report


def report(
    *,
    quick: bool,
    repeats: int,
    machine: dict[str, str],
    loads: tuple[str, str],
    others: tuple[float | None, float | None, float | None],
    astra_note: str,
    astra_ok: bool,
    desc: dict[str, str],
    rounding: dict[str, float],
    comparison: list[list[str]],
    details: list[list[str]],
    fresh_cache: bool,
    elapsed: float,
) -> str:
    title = "# CPU projectors: medrecon vs ASTRA" + (" (quick smoke run)" if quick else "")
    lines = [
        title,
        "",
        "Written by `benchmarks/projectors_cpu.py"
        + (" --quick" if quick else "")
        + "`; float32; times are wall-clock seconds, the median of "
        f"{repeats} timed calls that follow a first call (timed on its own: it compiles).",
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
        f"process's CPU time; above about 0.1 the timings are pessimistic). "
        f"Total run time {elapsed:.0f} s.",
        "",
        "## Workloads",
        "",
    ]
    lines += [f"* **{k}**: {v}" for k, v in desc.items()]
    lines += [
        "",
        "## medrecon vs ASTRA (2D)",
        "",
        "Speed-up = ASTRA time / medrecon time (above 1: medrecon is faster). "
        '"vs 1 thread" uses medrecon restricted to one numba thread: ASTRA\'s CPU projectors run '
        "on one core, see the cores-busy column (CPU time / wall time). Relative L2 difference "
        "= ||medrecon - ASTRA|| / ||ASTRA|| on the same seeded uniform-random input (forward: an "
        "image; adjoint: a sinogram); only ASTRA `linear` is the same (Joseph) model as ours, "
        "so only there should it be near float32 rounding.",
        "",
        markdown_table(COMPARISON_HEADERS, comparison),
        "",
        "For scale, medrecon's own float32 rounding (relative L2 difference of its float32 and "
        "float64 forward projections): "
        + "; ".join(f"{k} {v:.1e}" for k, v in rounding.items())
        + ".",
        "",
        "## medrecon details (2D and 3D)",
        "",
        "First call = numba compilation"
        + (" (fresh cache)" if fresh_cache else " or cache load")
        + " + per-projector setup + one run; the 2D fan workload reuses the kernels compiled "
        "for the parallel one. Peak RSS growth = largest rise of the process's peak resident "
        "memory during one timed call (Linux `VmHWM`, reset before each call).",
        "",
        markdown_table(DETAIL_HEADERS, details),
        "",
        "ASTRA has no CPU cone-beam projector, so the 3D rows have no comparison.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"markdown file to write (default: {DEFAULT_OUT} for a full run; "
        "a quick run without --out only prints)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed calls per operation (>= 1; default 5, or 3 with --quick)",
    )
    p.add_argument("--no-astra", action="store_true", help="time medrecon only")
    p.add_argument(
        "--numba-cache",
        choices=("fresh", "default"),
        default="fresh",
        help="'fresh': compile into a temporary cache so first calls measure compilation "
        "(default); 'default': use numba's usual cache",
    )
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.repeats < 1:
        p.error(f"--repeats: expected >= 1, got {args.repeats}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.numba_cache == "fresh":
            if "numba" in sys.modules:
                log("numba is already imported; --numba-cache fresh has no effect")
            cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="medrecon-numba-"))
            os.environ["NUMBA_CACHE_DIR"] = cache
        return _run(args)
    return 0  # pragma: no cover - unreachable


def _run(args: argparse.Namespace) -> int:
    import numba  # noqa: F401  - after NUMBA_CACHE_DIR is set

    t_start = time.perf_counter()
    load_start = load_average()
    other_start = other_cpu_load()
    log(f"load average at start: {load_start}; other processes busy: {fmt_cores(other_start)}")
    if other_start is not None and other_start > 0.25:
        log("warning: other processes are using the CPU; timings will be pessimistic")
    meter = OtherLoadMeter()
    astra, astra_note = load_astra(args.no_astra)
    sizes = QUICK if args.quick else FULL
    two_d, three_d, desc = make_workloads(sizes)
    rng = np.random.default_rng(20240601)

    comparison: list[list[str]] = []
    details: list[list[str]] = []
    rounding: dict[str, float] = {}
    for w in two_d:
        log(f"{w.name} ...")
        c, d, rounding[w.name] = run_2d(w, args.repeats, astra, rng)
        comparison += c
        details += d
    log(f"{three_d.name} ...")
    details += run_3d(three_d, args.repeats, rng)

    other_during = meter.read()
    log(f"other processes kept {fmt_cores(other_during)} cores busy on average during the run")
    text = report(
        quick=args.quick,
        repeats=args.repeats,
        machine=machine_info(),
        loads=(load_start, load_average()),
        others=(other_start, other_cpu_load(), other_during),
        astra_note=astra_note,
        astra_ok=astra is not None,
        desc=desc,
        rounding=rounding,
        comparison=comparison,
        details=details,
        fresh_cache=args.numba_cache == "fresh",
        elapsed=time.perf_counter() - t_start,
    )
    print(text)
    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)
    if out is not None:
        write_atomic(out, text)
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
