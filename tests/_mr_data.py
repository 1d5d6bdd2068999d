"""Test data for the MR tests: simulated coils and BART's phantom through .cfl files.

BART stores arrays as ``<name>.cfl`` (raw complex64, Fortran order) plus ``<name>.hdr`` (the
dimensions, BART's order ``[x, y, z, coils, maps, ...]``). Read in C order with the dimensions
reversed, a BART array ``[x, y, 1, coils]`` is ``(coils, 1, y, x)``: after dropping the singleton
this is medrecon's ``(coils, ky, kx)`` with BART's first (readout, ``x``) dimension as our last
axis. No transposition is needed either way.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from medrecon.mr.fft import fft2c
from medrecon.mr.simulate import birdcage_maps, brain_phantom

BART = shutil.which("bart")
NEEDS_BART = "needs BART (/usr/bin/bart, Debian package 'bart')"


def read_cfl(name: Path | str) -> np.ndarray:
    """BART ``name.cfl``/``name.hdr`` as a C-ordered array with BART's dimensions reversed."""
    lines = Path(f"{name}.hdr").read_text().splitlines()
    dims = [int(d) for d in lines[lines.index("# Dimensions") + 1].split()]
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    data = np.fromfile(f"{name}.cfl", dtype=np.complex64)
    return data.reshape(dims[::-1])


def write_cfl(name: Path | str, arr: np.ndarray) -> None:
    """Write ``arr`` (C order) so that BART sees its dimensions reversed."""
    arr = np.ascontiguousarray(arr, dtype=np.complex64)
    dims = " ".join(str(d) for d in arr.shape[::-1])
    Path(f"{name}.hdr").write_text(f"# Dimensions\n{dims}\n")
    arr.tofile(f"{name}.cfl")


def bart(tmp: Path, *args: str) -> None:
    """Run ``bart args...`` in ``tmp`` (raises CalledProcessError with BART's output)."""
    assert BART is not None
    subprocess.run([BART, *args], cwd=tmp, check=True, capture_output=True, text=True)


def bart_phantom_kspace(tmp: Path, n: int = 128, coils: int = 8) -> np.ndarray:
    """``bart phantom -k -s coils -x n``: analytic multi-coil k-space as (coils, ky, kx)."""
    bart(tmp, "phantom", "-k", "-s", str(coils), "-x", str(n), "ph")
    k = read_cfl(tmp / "ph")  # (coils, 1, y, x)
    return np.ascontiguousarray(k[:, 0]).astype(np.complex128)


@functools.cache
def cached_bart_phantom(n: int = 128, coils: int = 8) -> np.ndarray:
    """:func:`bart_phantom_kspace` computed once per test session (read-only)."""
    with tempfile.TemporaryDirectory() as tmp:
        k = bart_phantom_kspace(Path(tmp), n, coils)
    k.setflags(write=False)
    return k


def simulated_kspace(
    n: int = 96, coils: int = 8, noise: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fully sampled k-space of a head phantom with smooth phase under birdcage coils.

    ``medrecon.mr.simulate`` supplies the coils (loops on a circle around the field of view,
    ``1/distance`` fall-off, a phase per coil) and the tissue head phantom; ``noise`` is the
    std of complex white Gaussian noise per real/imaginary part (image peak is 1).
    Returns ``(kspace (coils, n, n), image (n, n), maps (coils, n, n))``, complex128.
    """
    maps = birdcage_maps(n, coils, dtype=np.complex128)
    image = brain_phantom(n, phase=1.0, dtype=np.complex128)
    k = np.asarray(fft2c(maps * image))
    if noise > 0:
        rng = np.random.default_rng(seed)
        k = k + noise * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    return k, image, maps


def nrmse(x: Any, ref: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(x) - ref) / np.linalg.norm(ref))


def scaled_nrmse(x: np.ndarray, ref: np.ndarray, where: np.ndarray | None = None) -> float:
    """NRMSE of ``a x`` against ``ref`` with the best real scalar ``a`` (optionally in a mask)."""
    if where is not None:
        x, ref = x[..., where], ref[..., where]
    a = float(np.vdot(x, ref).real / np.vdot(x, x).real)
    return nrmse(a * x, ref)


def complex_scaled_nrmse(x: Any, ref: np.ndarray) -> float:
    """NRMSE after the least-squares complex scale of ``x`` onto ``ref``."""
    a = np.asarray(x).astype(np.complex128).reshape(ref.shape)
    alpha = np.vdot(a, ref) / np.vdot(a, a)
    return float(np.linalg.norm(alpha * a - ref) / np.linalg.norm(ref))


def ring_coil_maps(n: int, n_coils: int, dtype: type = np.complex128) -> np.ndarray:
    """Gaussian coils on a ring with smooth phase, normalised so that sum_c |S_c|^2 = 1."""
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1) * 2 - 1
    maps = []
    for c in range(n_coils):
        ang = 2 * np.pi * c / n_coils
        cy, cx = 1.2 * np.sin(ang), 1.2 * np.cos(ang)
        mag = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.5**2))
        phase = np.exp(1j * (ang + 0.5 * xx * np.cos(ang) - 0.3 * yy))
        maps.append(mag * phase)
    s = np.array(maps)
    s /= np.sqrt(np.sum(np.abs(s) ** 2, axis=0))
    return s.astype(dtype)
