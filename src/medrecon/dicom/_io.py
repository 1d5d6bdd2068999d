"""Writing DICOM files atomically, all or nothing."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom.dataset import Dataset

from medrecon._files import write_atomic as _write_atomic

__all__ = ["deliver", "write_atomic"]


def write_atomic(ds: Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` atomically: readers see the old or the new file, never half."""
    _write_atomic(path, lambda fh: ds.save_as(fh, enforce_file_format=True))


def deliver(
    datasets: Sequence[Dataset], out: str | os.PathLike[str] | Callable[[Dataset], object] | None
) -> list[Path]:
    """Hand ``datasets`` to ``out``: a folder (files named ``<SOPInstanceUID>.dcm``), a callable,
    or nowhere (None).

    Writing to a folder is all or nothing: if one file fails, the files this call wrote are
    removed before the error propagates. Files that existed before are never touched (a name
    collision raises ``FileExistsError``). Returns the paths written.
    """
    if out is None:
        return []
    if callable(out):
        for ds in datasets:
            out(ds)
        return []
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for ds in datasets:
            path = folder / f"{ds.SOPInstanceUID}.dcm"
            if path.exists():
                raise FileExistsError(f"{path}: exists; medrecon never overwrites DICOM files")
            write_atomic(ds, path)
            written.append(path)
    except BaseException:
        for p in written:
            with contextlib.suppress(OSError):
                p.unlink()
        raise
    return written
