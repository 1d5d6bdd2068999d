"""Locate, read and hash the CUDA kernel sources of ``kernels/``.

The sources are found, in this order, in

1. the folder named by the environment variable ``MEDRECON_KERNEL_DIR``;
2. ``kernels/`` of the repository checkout this package was imported from (editable installs);
3. ``share/medrecon/kernels`` under the installation's data prefix (``sys.prefix`` for a wheel
   installed into a virtual environment, the user base for ``pip install --user``), where
   ``[tool.setuptools.data-files]`` in ``pyproject.toml`` installs them.

A folder counts only when it holds every file of :data:`KERNEL_FILES`.
"""

from __future__ import annotations

import hashlib
import os
import site
import sys
import sysconfig
from pathlib import Path

from medrecon.errors import BackendUnavailableError

__all__ = [
    "CUDA_FILES",
    "HEADER_FILES",
    "KERNELS",
    "KERNEL_FILES",
    "kernel_dir",
    "read_sources",
    "sources_hash",
]

#: the shared header every ``.cu`` file includes
HEADER_FILES: tuple[str, ...] = ("common.cuh",)
#: one source file per kernel family
CUDA_FILES: tuple[str, ...] = ("joseph2d.cu", "joseph3d.cu", "backproject.cu")
#: every file a complete kernel folder holds
KERNEL_FILES: tuple[str, ...] = HEADER_FILES + CUDA_FILES
#: the ``extern "C" __global__`` kernels of each file (see ``kernels/README.md``)
KERNELS: dict[str, tuple[str, ...]] = {
    "joseph2d.cu": (
        "medrecon_joseph2d_forward",
        "medrecon_joseph2d_adjoint",
        "medrecon_fast2d_forward",
        "medrecon_fast2d_forward_tex",
    ),
    "joseph3d.cu": (
        "medrecon_joseph3d_forward",
        "medrecon_joseph3d_adjoint",
        "medrecon_fast3d_forward",
        "medrecon_fast3d_forward_tex",
    ),
    "backproject.cu": (
        "medrecon_backproject2d",
        "medrecon_backproject3d_frames",
        "medrecon_backproject3d",
    ),
}

_ENV_DIR = "MEDRECON_KERNEL_DIR"
_SHARE = Path("share", "medrecon", "kernels")


def _candidates() -> list[Path]:
    found: list[Path] = []
    env = os.environ.get(_ENV_DIR)
    if env:
        found.append(Path(env))
    # src/medrecon/projectors/cuda/_sources.py -> repository root is parents[4]
    here = Path(__file__).resolve()
    if len(here.parents) > 4:
        found.append(here.parents[4] / "kernels")
    prefixes = [sysconfig.get_path("data"), sys.prefix, sys.base_prefix, site.getuserbase()]
    for prefix in prefixes:
        if prefix:
            path = Path(prefix) / _SHARE
            if path not in found:
                found.append(path)
    return found


def _complete(path: Path) -> bool:
    return all((path / name).is_file() for name in KERNEL_FILES)


def kernel_dir() -> Path:
    """The folder holding the kernel sources.

    Returns
    -------
    pathlib.Path
        The first complete folder of the search order in the module docstring.

    Raises
    ------
    BackendUnavailableError
        If no searched folder holds every file of :data:`KERNEL_FILES`; the message lists the
        folders searched.
    """
    candidates = _candidates()
    for path in candidates:
        if _complete(path):
            return path
    searched = ", ".join(str(p) for p in candidates)
    raise BackendUnavailableError(
        f"the CUDA kernel sources ({', '.join(KERNEL_FILES)}) were not found; searched: "
        f"{searched}. Reinstall medrecon, or set {_ENV_DIR} to a copy of the repository's "
        "kernels/ folder"
    )


def read_sources(directory: Path | str | None = None) -> dict[str, str]:
    """Read every kernel source file.

    Parameters
    ----------
    directory : path, optional
        Folder to read from (default: :func:`kernel_dir`).

    Returns
    -------
    dict
        File name -> text, in the order of :data:`KERNEL_FILES`.

    Raises
    ------
    BackendUnavailableError
        If a file is missing.
    """
    folder = kernel_dir() if directory is None else Path(directory)
    sources: dict[str, str] = {}
    for name in KERNEL_FILES:
        path = folder / name
        try:
            sources[name] = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise BackendUnavailableError(f"cannot read kernel source {path}: {exc}") from exc
    return sources


def sources_hash(sources: dict[str, str]) -> str:
    """SHA-256 (hex) of the file names and contents, the key of compiled-kernel caches.

    Examples
    --------
    >>> sources_hash({"a.cu": "x"}) == sources_hash({"a.cu": "x"})
    True
    >>> sources_hash({"a.cu": "x"}) == sources_hash({"a.cu": "y"})
    False
    """
    digest = hashlib.sha256()
    for name in sorted(sources):
        data = sources[name].encode("utf-8")
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()
