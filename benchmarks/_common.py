"""Helpers shared by the benchmark scripts: machine description, timing, memory, output.

Benchmarks are scripts, not part of the package. They time medrecon against a peer in the same
process and the same run, and write a markdown report naming the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import math
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "OtherLoadMeter",
    "Timing",
    "cpu_model",
    "load_average",
    "machine_info",
    "markdown_table",
    "other_cpu_load",
    "peak_rss_mib",
    "peak_rss_reset",
    "time_call",
    "time_interleaved",
    "write_atomic",
]


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (falls back to :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cgroup_cpu_limit() -> str | None:
    """The cgroup v2 CPU quota as a number of cores, if one is set."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return f"{int(quota) / int(period):g}"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or ``"n/a"``."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _cpu_jiffies() -> tuple[int, int] | None:
    """``(busy, total)`` jiffies of all CPUs from ``/proc/stat``."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def other_cpu_load(interval: float = 1.0) -> float | None:
    """Cores kept busy by other processes, sampled over ``interval`` seconds while idle here.

    Unlike the load average, this excludes this process's own work, so it tells whether a
    timing run shared the machine. None where ``/proc/stat`` is unreadable.
    """
    before = _cpu_jiffies()
    own0 = time.process_time()
    t0 = time.perf_counter()
    time.sleep(interval)
    after = _cpu_jiffies()
    if before is None or after is None or after[1] == before[1]:
        return None
    n_cpu = os.cpu_count() or 1
    busy_fraction = (after[0] - before[0]) / (after[1] - before[1])
    own = (time.process_time() - own0) / (time.perf_counter() - t0)
    return max(busy_fraction * n_cpu - own, 0.0)


class OtherLoadMeter:
    """Average number of cores that other processes kept busy between creation and :meth:`read`.

    System-wide busy time from ``/proc/stat`` minus this process's CPU time (all its threads).
    """

    def __init__(self) -> None:
        self._jiffies = _cpu_jiffies()
        self._own = time.process_time()
        self._wall = time.perf_counter()

    def read(self) -> float | None:
        now = _cpu_jiffies()
        if self._jiffies is None or now is None or now[1] == self._jiffies[1]:
            return None
        n_cpu = os.cpu_count() or 1
        busy = (now[0] - self._jiffies[0]) / (now[1] - self._jiffies[1]) * n_cpu
        own = (time.process_time() - self._own) / (time.perf_counter() - self._wall)
        return max(busy - own, 0.0)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """Describe the machine and the software versions (call after numba is imported)."""
    import numba

    info = {
        "date (UTC)": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu_model(),
        "logical CPUs": str(os.cpu_count()),
        "CPUs usable by this process": str(len(os.sched_getaffinity(0)))
        if hasattr(os, "sched_getaffinity")
        else "n/a",
        "numba threads": str(numba.get_num_threads()),
        "GPU": "none used (CPU benchmark)",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "astra-toolbox": _version("astra-toolbox"),
        "medrecon": _version("medrecon"),
    }
    limit = _cgroup_cpu_limit()
    if limit is not None:
        info["cgroup CPU quota (cores)"] = limit
    return info


# --------------------------------------------------------------------------- memory

_STATUS = Path("/proc/self/status")


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_reset() -> int | None:
    """Reset the kernel's peak-RSS mark (Linux) and return the current RSS in KiB.

    Freed heap memory is first returned to the system (glibc ``malloc_trim``), so that memory
    a call allocates shows up as growth even when malloc would reuse earlier freed blocks.
    Returns None where the peak cannot be reset (non-Linux, restricted ``/proc``).
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return None
    return _status_kib("VmRSS")


def peak_rss_mib(rss_before_kib: int | None) -> float | None:
    """Peak RSS growth since :func:`peak_rss_reset` returned ``rss_before_kib`` (MiB)."""
    if rss_before_kib is None:
        return None
    hwm = _status_kib("VmHWM")
    if hwm is None:
        return None
    return max(hwm - rss_before_kib, 0) / 1024.0


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Wall times of repeated calls of one operation.

    ``first`` is the first call (numba compilation included, when it happens); ``runs`` the
    timed repeats after it; ``cores`` the CPU time over wall time of the repeats (how many cores
    the operation kept busy); ``peak_mib`` the largest peak-RSS growth seen in a repeat.
    """

    first: float | None
    runs: list[float] = field(default_factory=list)
    cores: float = float("nan")
    peak_mib: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.runs), max(self.runs)


def time_call(fn: Callable[[], Any], *, repeats: int, first: bool = True) -> Timing:
    """Time ``fn()``: optionally one first call, then ``repeats`` timed calls.

    The first call is timed on its own so that compilation never enters the median.
    """
    first_s = None
    if first:
        t0 = time.perf_counter()
        fn()
        first_s = time.perf_counter() - t0
    runs = []
    wall = cpu = 0.0
    peak: float | None = None
    for _ in range(repeats):
        rss0 = peak_rss_reset()
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        cpu += time.process_time() - c0
        wall += dt
        runs.append(dt)
        grew = peak_rss_mib(rss0)
        if grew is not None:
            peak = grew if peak is None else max(peak, grew)
    return Timing(
        first=first_s, runs=runs, cores=cpu / wall if wall > 0 else float("nan"), peak_mib=peak
    )


def time_interleaved(
    fns: dict[str, Callable[[], Any]], *, repeats: int, first: bool = True
) -> dict[str, Timing]:
    """Like :func:`time_call` for several contenders, taking turns call by call.

    Round-robin order spreads slow drifts of the machine (another process starting, thermal
    throttling) evenly over the contenders instead of penalising whichever ran last.
    """
    out = {name: Timing(first=None) for name in fns}
    if first:
        for name, fn in fns.items():
            out[name].first = time_call(fn, repeats=0).first
    cpu = dict.fromkeys(fns, 0.0)
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time_call(fn, repeats=1, first=False)
            out[name].runs += t.runs
            cpu[name] += t.cores * t.runs[0]
            if t.peak_mib is not None:
                out[name].peak_mib = max(out[name].peak_mib or 0.0, t.peak_mib)
    for name, t in out.items():
        wall = sum(t.runs)
        t.cores = cpu[name] / wall if wall > 0 else float("nan")
    return out


# --------------------------------------------------------------------------- output


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"expected {len(headers)} cells per row, got {len(row)}: {row!r}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def report_head(title: str, quick: bool, small: str) -> list[str]:
    """First lines of a report: ``title`` (marked on a ``--quick`` run) and, on a quick run,
    a banner saying that ``small`` (e.g. "small sizes and few iterations") makes its numbers
    a smoke test only."""
    lines = [title + (" (quick smoke run)" if quick else ""), ""]
    if quick:
        lines += [
            f"**Quick smoke run (`--quick`): {small}; these numbers only show that the "
            "benchmark works. The full run replaces them.**",
            "",
        ]
    return lines


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- shared by the scripts


def fmt(t: float | None) -> str:
    return "n/a" if t is None or not math.isfinite(t) else f"{t:.4g}"


def fmt_cores(c: float | None) -> str:
    return "n/a" if c is None else f"{c:.2f}"


def rel_l2(ours: np.ndarray, ref: np.ndarray) -> float:
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def numba_threads(n: int) -> Iterator[None]:
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def one_thread(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with numba limited to one thread."""

    def call() -> Any:
        with numba_threads(1):
            return fn()

    return call


def load_astra(disabled: bool) -> tuple[Any | None, str]:
    if disabled:
        return None, "disabled with --no-astra"
    try:
        import astra
    except ImportError as exc:
        return None, f"astra-toolbox is not installed ({exc})"
    return astra, f"astra-toolbox {getattr(astra, '__version__', '?')}, CPU projectors"
