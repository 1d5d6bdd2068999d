"""Helpers of the smoke tests of the scripts in ``benchmarks/``: run one, read its tables."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_quick(
    script: Path,
    *args: str,
    timeout: float,
    python_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python [python_args] script --quick args``; fails the test unless it exits with 0."""
    proc = subprocess.run(
        [sys.executable, *python_args, str(script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def table_rows(text: str, header: str, *, prefix: bool = False) -> list[list[str]]:
    """The stripped cells of the Markdown table under ``header`` (the first line that is it,
    or with ``prefix`` the first that starts with it), up to the first line not in the table."""
    lines = text.splitlines()
    if prefix:
        start = lines.index(next(ln for ln in lines if ln.startswith(header))) + 2
    else:
        start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows
