"""Host build of the CUDA kernels: the GPU kernels' per-thread bodies, run on the CPU.

The ``.cu`` files of ``kernels/`` compile with a plain C++ compiler when
``MEDRECON_HOST_BUILD`` is defined: ``__host__``/``__device__``/``__global__``
are defined away, the ``__global__`` kernels are left out, and each kernel
family's ``extern "C"`` host launchers loop over the kernel's index space and
call the same ``__host__ __device__`` bodies (see ``kernels/README.md``). This
module builds that shared library with ``g++`` (or ``$CXX``), caches it under
the user cache folder keyed by the sources' hash, loads it with :mod:`ctypes`
and wraps each launcher in a function that takes the numba twin's numpy
arguments, so the CUDA code is tested against the numba backend on machines
without a GPU.

Functions (data are computed and returned in float32; volumes and projections
carry exactly one leading batch axis, as for the numba backend):

=====================  =====================================================
``forward_2d``         Joseph forward, ``(B, ny, nx) -> (B, n_views, n_det)``
``adjoint_2d``         its exact transpose
``backproject_2d``     voxel-driven backprojection, weighting none/fdk
``fast_forward_2d``    ``fast`` mode forward (bilinear samples at a fixed step)
``forward_3d``         Joseph forward, ``(B, nz, ny, nx) -> (B, n_views, n_rows, n_cols)``
``adjoint_3d``         its exact transpose
``backproject_3d``     voxel-driven backprojection, weighting none/fdk
``fast_forward_3d``    ``fast`` mode forward (trilinear samples at a fixed step)
=====================  =====================================================

Geometry arguments are those of the numba twins: ``mode`` (2D: 0 parallel,
1 flat fan, 2 arc fan; 3D: 0 parallel, 1 cone), ``vectors`` (2D:
``(a, det_centers, det_u)``; 3D: ``(a, det_centers, det_u, det_v)``, each
``(n_views, ndim)``; ``a`` is the ray direction for parallel beams and the
source otherwise), ``origin`` and ``spacing`` of the volume (array-axis
order, mm).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medrecon.errors import BackendUnavailableError, GeometryError, ShapeError
from medrecon.projectors.cuda._sources import CUDA_FILES, kernel_dir, read_sources, sources_hash

__all__ = [
    "DEFAULT_STEP_FRACTION",
    "HostKernels",
    "adjoint_2d",
    "adjoint_3d",
    "backproject_2d",
    "backproject_3d",
    "build_library",
    "cache_dir",
    "fast_forward_2d",
    "fast_forward_3d",
    "forward_2d",
    "forward_3d",
    "load",
]

#: default ``fast``-mode step: this fraction of the smallest voxel size
DEFAULT_STEP_FRACTION = 0.5

_BASE_FLAGS = ("-x", "c++", "-std=c++14", "-O2", "-fPIC", "-shared", "-DMEDRECON_HOST_BUILD")
_LIB_SUFFIX = ".dylib" if sys.platform == "darwin" else ".so"

Vectors2 = tuple[np.ndarray, np.ndarray, np.ndarray]
Vectors3 = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

# ------------------------------------------------------------------------------ the build


def cache_dir() -> Path:
    """Folder of the cached host libraries.

    ``$MEDRECON_CACHE_DIR/kernels-host`` when that variable is set, else
    ``$XDG_CACHE_HOME/medrecon/kernels-host`` (default ``~/.cache/medrecon/kernels-host``).
    """
    env = os.environ.get("MEDRECON_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "medrecon"
    return root / "kernels-host"


def _compiler() -> str:
    name = os.environ.get("CXX") or "g++"
    path = shutil.which(name)
    if path is None:
        raise BackendUnavailableError(
            f"the host build of the CUDA kernels needs a C++ compiler; {name!r} was not found "
            "(install g++, or set CXX)"
        )
    return path


@functools.cache
def _compiler_id(compiler: str) -> str:
    try:
        out = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise BackendUnavailableError(f"cannot run the C++ compiler {compiler}: {exc}") from exc
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else compiler


def _compile(compiler: str, flags: Sequence[str], src: Path, out: Path) -> tuple[bool, str]:
    cmd = [compiler, *flags, "-I", str(src), *(str(src / f) for f in CUDA_FILES), "-o", str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"$ {' '.join(cmd)}\n{exc}"
    return proc.returncode == 0, f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}"


def build_library(
    source_dir: Path | str | None = None,
    cache: Path | str | None = None,
    *,
    openmp: bool = True,
    extra_flags: Sequence[str] = (),
) -> Path:
    """Build (or find in the cache) the host shared library of the kernels.

    Parameters
    ----------
    source_dir : path, optional
        Folder holding the kernel sources (default: :func:`._sources.kernel_dir`).
    cache : path, optional
        Cache folder (default :func:`cache_dir`).
    openmp : bool
        Parallelise the launchers with ``-fopenmp`` (default True; the build falls back to
        a serial library when the compiler refuses the flag).
    extra_flags : sequence of str
        Further compiler flags (for example ``-D`` macros); part of the cache key.

    Returns
    -------
    pathlib.Path
        The shared library. Its name holds a hash of the sources, the compiler's version
        line and the flags; a finished library is moved into place atomically, so
        concurrent builds never see half a file.

    Raises
    ------
    BackendUnavailableError
        If no compiler is found or the build fails; the message holds the compiler output.
    """
    src = kernel_dir() if source_dir is None else Path(source_dir)
    sources = read_sources(src)
    compiler = _compiler()
    flags = [*_BASE_FLAGS, *extra_flags]
    key = sources_hash(
        {
            **sources,
            "\0build": "\n".join(
                [_compiler_id(compiler), *flags, f"openmp={openmp}", platform.machine()]
            ),
        }
    )[:20]
    folder = cache_dir() if cache is None else Path(cache)
    target = folder / f"libmedrecon_kernels_{key}{_LIB_SUFFIX}"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        out = Path(tmp) / target.name
        ok, log = False, ""
        if openmp:
            ok, log = _compile(compiler, [*flags, "-fopenmp"], src, out)
        if not ok:
            ok, log = _compile(compiler, flags, src, out)
        if not ok:
            raise BackendUnavailableError(
                f"building the host library of the CUDA kernels in {src} failed:\n{log}"
            )
        os.replace(out, target)
    return target


# --------------------------------------------------------------------------- the wrappers

_F32 = np.ctypeslib.ndpointer(dtype=np.float32, flags="C_CONTIGUOUS")
_F32W = np.ctypeslib.ndpointer(dtype=np.float32, flags=("C_CONTIGUOUS", "WRITEABLE"))
_F64 = np.ctypeslib.ndpointer(dtype=np.float64, flags="C_CONTIGUOUS")
_F64W = np.ctypeslib.ndpointer(dtype=np.float64, flags=("C_CONTIGUOUS", "WRITEABLE"))
_I = ctypes.c_int
_D = ctypes.c_double

_SIGNATURES: dict[str, list[Any]] = {
    # data in, data out, n_batch, image shape (2), n_views, n_det, mode, a, c, u, origin, spacing
    "medrecon_joseph2d_forward_host": [_F32, _F32W, *[_I] * 6, *[_F64] * 5],
    "medrecon_joseph2d_adjoint_host": [_F32, _F32W, *[_I] * 6, *[_F64] * 5],
    "medrecon_fast2d_forward_host": [_F32, _F32W, *[_I] * 6, *[_F64] * 5, _D],
    "medrecon_backproject2d_host": [_F32, _F32W, *[_I] * 6, *[_F64] * 5, _I],
    # data in, data out, n_batch, volume shape (3), n_views, n_rows, n_cols, mode,
    # a, c, u, w, origin, spacing
    "medrecon_joseph3d_forward_host": [_F32, _F32W, *[_I] * 8, *[_F64] * 6],
    "medrecon_joseph3d_adjoint_host": [_F32, _F32W, *[_I] * 8, *[_F64] * 6],
    "medrecon_fast3d_forward_host": [_F32, _F32W, *[_I] * 8, *[_F64] * 6, _D],
    "medrecon_backproject3d_frames_host": [_F64W, _I, _I, *[_F64] * 4],
    # ... a, c, u, w, frames, origin, spacing, weighting
    "medrecon_backproject3d_host": [_F32, _F32W, *[_I] * 8, *[_F64] * 7, _I],
}


def _f32(arr: Any, ndim: int, what: str) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.ndim != ndim:
        raise ShapeError(
            f"{what}: expected {ndim} dimensions (one leading batch axis), got shape {out.shape}"
        )
    return out


def _f64(arr: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if out.shape != shape:
        raise ShapeError(f"{what}: expected shape {shape}, got {out.shape}")
    return out


def _geometry(
    mode: int, modes: tuple[int, ...], vectors: Sequence[Any], ndim: int, origin: Any, spacing: Any
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    if int(mode) not in modes:
        raise GeometryError(f"mode: expected one of {modes} for {ndim}D, got {mode!r}")
    n_vec = 3 if ndim == 2 else 4
    if len(vectors) != n_vec:
        raise ShapeError(f"vectors: expected {n_vec} arrays for {ndim}D, got {len(vectors)}")
    first = np.asarray(vectors[0])
    if first.ndim != 2 or first.shape[1] != ndim:
        raise ShapeError(f"vectors[0]: expected shape (n_views, {ndim}), got {first.shape}")
    shape = (first.shape[0], ndim)
    vecs = [_f64(v, shape, f"vectors[{k}]") for k, v in enumerate(vectors)]
    return vecs, _f64(origin, (ndim,), "origin"), _f64(spacing, (ndim,), "spacing")


def _ints(values: Sequence[int], n: int, what: str) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)
    if len(out) != n or min(out) < 1:
        raise ShapeError(f"{what}: expected {n} positive sizes, got {tuple(values)}")
    return out


def _weighting(weighting: int) -> int:
    if int(weighting) not in (0, 1):
        raise ValueError(f"weighting: expected 0 (none) or 1 (fdk), got {weighting!r}")
    return int(weighting)


def _step(step: float | None, spacing: np.ndarray) -> float:
    value = DEFAULT_STEP_FRACTION * float(spacing.min()) if step is None else float(step)
    if not value > 0.0:
        raise ValueError(f"step: expected a positive length in mm, got {step!r}")
    return value


class HostKernels:
    """The host-built kernel library, with numpy wrappers around its C launchers.

    Parameters
    ----------
    path : path
        A library built by :func:`build_library`.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            lib = ctypes.CDLL(str(self.path))
        except OSError as exc:
            raise BackendUnavailableError(f"cannot load {self.path}: {exc}") from exc
        self._fn: dict[str, Any] = {}
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes = argtypes
            fn.restype = None
            self._fn[name] = fn
        self._lib = lib

    def __repr__(self) -> str:
        return f"HostKernels({str(self.path)!r})"

    # ------------------------------------------------------------------------------ 2D
    def _run_2d(
        self,
        name: str,
        data: np.ndarray,
        out_shape: tuple[int, ...],
        shape: tuple[int, int],
        n_det: int,
        mode: int,
        vectors: Sequence[Any],
        origin: Any,
        spacing: Any,
        *extra: Any,
    ) -> np.ndarray:
        vecs, org, spc = _geometry(mode, (0, 1, 2), vectors, 2, origin, spacing)
        out = np.zeros(out_shape, dtype=np.float32)
        n_views = vecs[0].shape[0]
        self._fn[name](
            data, out, data.shape[0], *shape, n_views, n_det, int(mode), *vecs, org, spc, *extra
        )
        return out

    def forward_2d(
        self,
        img: np.ndarray,
        mode: int,
        vectors: Vectors2,
        origin: np.ndarray,
        spacing: np.ndarray,
        n_det: int,
    ) -> np.ndarray:
        """Joseph forward projection ``(B, ny, nx) -> (B, n_views, n_det)``."""
        x = _f32(img, 3, "img")
        (n,) = _ints([n_det], 1, "n_det")
        out_shape = (x.shape[0], len(vectors[0]), n)
        shape = (x.shape[1], x.shape[2])
        return self._run_2d(
            "medrecon_joseph2d_forward_host", x, out_shape, shape, n, mode, vectors, origin, spacing
        )

    def adjoint_2d(
        self,
        sino: np.ndarray,
        mode: int,
        vectors: Vectors2,
        origin: np.ndarray,
        spacing: np.ndarray,
        shape: tuple[int, int],
    ) -> np.ndarray:
        """Exact transpose of :meth:`forward_2d`: ``(B, n_views, n_det) -> (B, ny, nx)``."""
        y = _f32(sino, 3, "sino")
        ny, nx = _ints(shape, 2, "shape")
        self._check_views(y, vectors)
        return self._run_2d(
            "medrecon_joseph2d_adjoint_host",
            y,
            (y.shape[0], ny, nx),
            (ny, nx),
            y.shape[2],
            mode,
            vectors,
            origin,
            spacing,
        )

    def backproject_2d(
        self,
        sino: np.ndarray,
        mode: int,
        vectors: Vectors2,
        origin: np.ndarray,
        spacing: np.ndarray,
        shape: tuple[int, int],
        weighting: int,
    ) -> np.ndarray:
        """Voxel-driven backprojection ``(B, n_views, n_det) -> (B, ny, nx)``.

        ``weighting``: 0 none, 1 fdk (see :class:`~medrecon.projectors.base.Weighting`).
        """
        y = _f32(sino, 3, "sino")
        ny, nx = _ints(shape, 2, "shape")
        self._check_views(y, vectors)
        return self._run_2d(
            "medrecon_backproject2d_host",
            y,
            (y.shape[0], ny, nx),
            (ny, nx),
            y.shape[2],
            mode,
            vectors,
            origin,
            spacing,
            _weighting(weighting),
        )

    def fast_forward_2d(
        self,
        img: np.ndarray,
        mode: int,
        vectors: Vectors2,
        origin: np.ndarray,
        spacing: np.ndarray,
        n_det: int,
        step: float | None = None,
    ) -> np.ndarray:
        """``fast`` forward projection: bilinear samples at most ``step`` mm apart.

        ``step`` defaults to :data:`DEFAULT_STEP_FRACTION` times the smallest pixel size.
        Not the transpose of any backprojector here.
        """
        x = _f32(img, 3, "img")
        (n,) = _ints([n_det], 1, "n_det")
        out_shape = (x.shape[0], len(vectors[0]), n)
        h = _step(step, np.asarray(spacing, dtype=np.float64))
        return self._run_2d(
            "medrecon_fast2d_forward_host",
            x,
            out_shape,
            (x.shape[1], x.shape[2]),
            n,
            mode,
            vectors,
            origin,
            spacing,
            h,
        )

    # ------------------------------------------------------------------------------ 3D
    def _run_3d(
        self,
        name: str,
        data: np.ndarray,
        out_shape: tuple[int, ...],
        shape: tuple[int, int, int],
        det_shape: tuple[int, int],
        mode: int,
        vectors: Sequence[Any],
        origin: Any,
        spacing: Any,
        *extra: Any,
        frames: bool = False,
    ) -> np.ndarray:
        vecs, org, spc = _geometry(mode, (0, 1), vectors, 3, origin, spacing)
        n_views = vecs[0].shape[0]
        tail: list[Any] = []
        if frames:
            fr = np.zeros((n_views, 8), dtype=np.float64)
            self._fn["medrecon_backproject3d_frames_host"](fr, n_views, int(mode), *vecs)
            tail.append(fr)
        out = np.zeros(out_shape, dtype=np.float32)
        self._fn[name](
            data,
            out,
            data.shape[0],
            *shape,
            n_views,
            *det_shape,
            int(mode),
            *vecs,
            *tail,
            org,
            spc,
            *extra,
        )
        return out

    def forward_3d(
        self,
        vol: np.ndarray,
        mode: int,
        vectors: Vectors3,
        origin: np.ndarray,
        spacing: np.ndarray,
        det_shape: tuple[int, int],
    ) -> np.ndarray:
        """Joseph forward projection ``(B, nz, ny, nx) -> (B, n_views, n_rows, n_cols)``."""
        x = _f32(vol, 4, "vol")
        det = _ints(det_shape, 2, "det_shape")
        out_shape = (x.shape[0], len(vectors[0]), det[0], det[1])
        shape = (x.shape[1], x.shape[2], x.shape[3])
        return self._run_3d(
            "medrecon_joseph3d_forward_host",
            x,
            out_shape,
            shape,
            (det[0], det[1]),
            mode,
            vectors,
            origin,
            spacing,
        )

    def adjoint_3d(
        self,
        proj: np.ndarray,
        mode: int,
        vectors: Vectors3,
        origin: np.ndarray,
        spacing: np.ndarray,
        shape: tuple[int, int, int],
    ) -> np.ndarray:
        """Exact transpose of :meth:`forward_3d`.

        ``(B, n_views, n_rows, n_cols) -> (B, nz, ny, nx)``.
        """
        y = _f32(proj, 4, "proj")
        nz, ny, nx = _ints(shape, 3, "shape")
        self._check_views(y, vectors)
        return self._run_3d(
            "medrecon_joseph3d_adjoint_host",
            y,
            (y.shape[0], nz, ny, nx),
            (nz, ny, nx),
            (y.shape[2], y.shape[3]),
            mode,
            vectors,
            origin,
            spacing,
        )

    def backproject_3d(
        self,
        proj: np.ndarray,
        mode: int,
        vectors: Vectors3,
        origin: np.ndarray,
        spacing: np.ndarray,
        shape: tuple[int, int, int],
        weighting: int,
    ) -> np.ndarray:
        """Voxel-driven backprojection ``(B, n_views, n_rows, n_cols) -> (B, nz, ny, nx)``.

        ``weighting``: 0 none, 1 fdk (see :class:`~medrecon.projectors.base.Weighting`).
        """
        y = _f32(proj, 4, "proj")
        nz, ny, nx = _ints(shape, 3, "shape")
        self._check_views(y, vectors)
        return self._run_3d(
            "medrecon_backproject3d_host",
            y,
            (y.shape[0], nz, ny, nx),
            (nz, ny, nx),
            (y.shape[2], y.shape[3]),
            mode,
            vectors,
            origin,
            spacing,
            _weighting(weighting),
            frames=True,
        )

    def fast_forward_3d(
        self,
        vol: np.ndarray,
        mode: int,
        vectors: Vectors3,
        origin: np.ndarray,
        spacing: np.ndarray,
        det_shape: tuple[int, int],
        step: float | None = None,
    ) -> np.ndarray:
        """``fast`` forward projection: trilinear samples at most ``step`` mm apart.

        ``step`` defaults to :data:`DEFAULT_STEP_FRACTION` times the smallest voxel size.
        Not the transpose of any backprojector here.
        """
        x = _f32(vol, 4, "vol")
        det = _ints(det_shape, 2, "det_shape")
        out_shape = (x.shape[0], len(vectors[0]), det[0], det[1])
        h = _step(step, np.asarray(spacing, dtype=np.float64))
        return self._run_3d(
            "medrecon_fast3d_forward_host",
            x,
            out_shape,
            (x.shape[1], x.shape[2], x.shape[3]),
            (det[0], det[1]),
            mode,
            vectors,
            origin,
            spacing,
            h,
        )

    @staticmethod
    def _check_views(data: np.ndarray, vectors: Sequence[Any]) -> None:
        n_views = len(vectors[0])
        if data.shape[1] != n_views:
            raise ShapeError(
                f"projections have {data.shape[1]} views along axis 1, the geometry has {n_views}"
            )


def load(
    source_dir: Path | str | None = None,
    cache: Path | str | None = None,
    *,
    openmp: bool = True,
    extra_flags: Sequence[str] = (),
) -> HostKernels:
    """Build (if needed) and load the host library; arguments as :func:`build_library`."""
    return HostKernels(build_library(source_dir, cache, openmp=openmp, extra_flags=extra_flags))


@functools.cache
def _default() -> HostKernels:
    return load()


def forward_2d(
    img: np.ndarray,
    mode: int,
    vectors: Vectors2,
    origin: np.ndarray,
    spacing: np.ndarray,
    n_det: int,
) -> np.ndarray:
    """:meth:`HostKernels.forward_2d` of the default library (built on first use)."""
    return _default().forward_2d(img, mode, vectors, origin, spacing, n_det)


def adjoint_2d(
    sino: np.ndarray,
    mode: int,
    vectors: Vectors2,
    origin: np.ndarray,
    spacing: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """:meth:`HostKernels.adjoint_2d` of the default library."""
    return _default().adjoint_2d(sino, mode, vectors, origin, spacing, shape)


def backproject_2d(
    sino: np.ndarray,
    mode: int,
    vectors: Vectors2,
    origin: np.ndarray,
    spacing: np.ndarray,
    shape: tuple[int, int],
    weighting: int,
) -> np.ndarray:
    """:meth:`HostKernels.backproject_2d` of the default library."""
    return _default().backproject_2d(sino, mode, vectors, origin, spacing, shape, weighting)


def fast_forward_2d(
    img: np.ndarray,
    mode: int,
    vectors: Vectors2,
    origin: np.ndarray,
    spacing: np.ndarray,
    n_det: int,
    step: float | None = None,
) -> np.ndarray:
    """:meth:`HostKernels.fast_forward_2d` of the default library."""
    return _default().fast_forward_2d(img, mode, vectors, origin, spacing, n_det, step)


def forward_3d(
    vol: np.ndarray,
    mode: int,
    vectors: Vectors3,
    origin: np.ndarray,
    spacing: np.ndarray,
    det_shape: tuple[int, int],
) -> np.ndarray:
    """:meth:`HostKernels.forward_3d` of the default library."""
    return _default().forward_3d(vol, mode, vectors, origin, spacing, det_shape)


def adjoint_3d(
    proj: np.ndarray,
    mode: int,
    vectors: Vectors3,
    origin: np.ndarray,
    spacing: np.ndarray,
    shape: tuple[int, int, int],
) -> np.ndarray:
    """:meth:`HostKernels.adjoint_3d` of the default library."""
    return _default().adjoint_3d(proj, mode, vectors, origin, spacing, shape)


def backproject_3d(
    proj: np.ndarray,
    mode: int,
    vectors: Vectors3,
    origin: np.ndarray,
    spacing: np.ndarray,
    shape: tuple[int, int, int],
    weighting: int,
) -> np.ndarray:
    """:meth:`HostKernels.backproject_3d` of the default library."""
    return _default().backproject_3d(proj, mode, vectors, origin, spacing, shape, weighting)


def fast_forward_3d(
    vol: np.ndarray,
    mode: int,
    vectors: Vectors3,
    origin: np.ndarray,
    spacing: np.ndarray,
    det_shape: tuple[int, int],
    step: float | None = None,
) -> np.ndarray:
    """:meth:`HostKernels.fast_forward_3d` of the default library."""
    return _default().fast_forward_3d(vol, mode, vectors, origin, spacing, det_shape, step)
