"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomic"]


def write_atomic(path: Path, write: Callable[[BinaryIO], object] | bytes) -> None:
    """Write ``path`` through a temporary file in the same folder, ``fsync`` and ``os.replace``.

    ``write`` is the bytes to write or a function that writes to the open binary file. The
    temporary file is created exclusively (umask applies) and removed if anything fails.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.txt"
    >>> write_atomic(p, b"hello")
    >>> p.read_bytes()
    b'hello'
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            if isinstance(write, bytes):
                fh.write(write)
            else:
                write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
