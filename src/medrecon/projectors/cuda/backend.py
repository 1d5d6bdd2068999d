"""``backend="cuda"``: the kernels of ``kernels/`` run on an NVIDIA GPU through CuPy.

CuPy is imported when a backend is created, never when this module is imported, so
``import medrecon`` works without it; a missing CuPy or CUDA device raises
:class:`~medrecon.errors.BackendUnavailableError` naming ``pip install medrecon[cuda]``.

Compilation. Each ``.cu`` file is compiled by NVRTC through ``cupy.RawModule`` with
``-std=c++14``. ``common.cuh`` is **inlined** into each file's text (between ``#line``
directives, so compiler messages still name the original files) instead of being found with
``-I``: CuPy's on-disk kernel cache is keyed by the source text and options only, not by the
contents of included headers, so an edited ``common.cuh`` would otherwise be served from a stale
cache. No ``-arch`` option is passed: CuPy adds its own, for the current device's compute
capability, and a second, conflicting one is an error. Compiled modules are kept per process in
a cache keyed by (sources hash, compute capability, file).

Data path. ``forward``/``adjoint``/``backproject`` take CuPy arrays (computed in place on the
device, result a CuPy array) or numpy arrays (moved to the device once, or slab by slab when
they do not fit, result a numpy array). :class:`~medrecon.projectors.Projector` hands torch CUDA
tensors and CuPy arrays to the backend through :meth:`CudaBackend.exchange` (DLPack, zero copy,
on torch's current stream) instead of converting them to numpy.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import math
import re
import sys
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from medrecon._array import is_torch
from medrecon._enum import parse_enum
from medrecon.errors import BackendUnavailableError, DeviceError
from medrecon.geometry import VolumeGeometry
from medrecon.projectors.base import ProjectorBackend, VecGeometry, Weighting
from medrecon.projectors.cuda import _slabs
from medrecon.projectors.cuda._host import DEFAULT_STEP_FRACTION
from medrecon.projectors.cuda._slabs import KernelGeometry, Operation, SlabPlan
from medrecon.projectors.cuda._sources import HEADER_FILES, KERNELS, read_sources, sources_hash

__all__ = ["INSTALL_HINT", "CudaBackend", "Mode", "compile_source", "inline_header"]

INSTALL_HINT = (
    "Install CuPy for your CUDA version with: pip install medrecon[cuda] "
    "(CuPy for CUDA 12: pip install cupy-cuda12x; CUDA 13: cupy-cuda13x), "
    "and make sure an NVIDIA driver and GPU are present"
)

#: threads per block of every launch
BLOCK = 256
#: at most this many blocks per launch (the kernels' grid-stride loops cover the rest)
MAX_BLOCKS = 1 << 20
#: share of the free device memory (after CuPy's pool) that one work item may plan for
MEMORY_FRACTION = 0.8

_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"common\.cuh"[ \t]*$', re.MULTILINE)


class Mode(enum.StrEnum):
    """Projector pair of the CUDA backend.

    ``MATCHED``: Joseph forward and its exact transpose (the CPU backend's model).
    ``FAST``: interpolated forward at a fixed step and voxel-driven backprojection as the
    adjoint, which is **not** the exact adjoint.
    """

    MATCHED = "matched"
    FAST = "fast"


# ------------------------------------------------------------------------------ CuPy


def _cupy() -> Any:
    """Import CuPy and check that a CUDA device is usable."""
    try:
        cp = importlib.import_module("cupy")
    except ImportError as exc:
        raise BackendUnavailableError(
            f"projector backend 'cuda' needs CuPy, which is not importable ({exc}). {INSTALL_HINT}"
        ) from exc
    try:
        n = int(cp.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError: no driver, no device, driver too old
        raise BackendUnavailableError(
            f"projector backend 'cuda': CuPy is installed but CUDA is not usable ({exc}). "
            f"{INSTALL_HINT}"
        ) from exc
    if n < 1:
        raise BackendUnavailableError(
            f"projector backend 'cuda': no CUDA device was found. {INSTALL_HINT}"
        )
    return cp


def _is_cupy(x: Any) -> bool:
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(x, cp.ndarray)


# ------------------------------------------------------------------------------ compilation


def inline_header(sources: dict[str, str], name: str) -> str:
    """The text of ``name`` with ``#include "common.cuh"`` replaced by the header's text.

    ``#line`` directives keep compiler messages pointing at the original files and lines.

    Parameters
    ----------
    sources : dict
        File name -> text, as :func:`._sources.read_sources` returns.
    name : str
        One of :data:`._sources.CUDA_FILES`.

    Returns
    -------
    str
        Self-contained CUDA source (no ``#include`` left).

    Examples
    --------
    >>> src = {"common.cuh": "int h;", "k.cu": '// k\\n#include "common.cuh"\\nint k;'}
    >>> print(inline_header(src, "k.cu"))
    // k
    #line 1 "common.cuh"
    int h;
    #line 3 "k.cu"
    int k;
    """
    (header,) = HEADER_FILES
    text = sources[name]
    match = _INCLUDE.search(text)
    if match is None:
        raise ValueError(f'{name}: expected an #include "{header}" line')
    line_after = text.count("\n", 0, match.end()) + 2
    block = f'#line 1 "{header}"\n{sources[header].rstrip()}\n#line {line_after} "{name}"'
    return text[: match.start()] + block + text[match.end() :]


_MODULES: dict[tuple[str, str, str], Any] = {}


def compile_source(cp: Any, sources: dict[str, str], name: str) -> Any:
    """The compiled ``cupy.RawModule`` of one kernel file on the current device (cached).

    Raises
    ------
    BackendUnavailableError
        If NVRTC rejects the source (the message holds its log).
    """
    arch = "".join(str(v) for v in cp.cuda.Device().compute_capability)
    key = (sources_hash(sources), arch, name)
    module = _MODULES.get(key)
    if module is None:
        code = inline_header(sources, name)
        module = cp.RawModule(code=code, options=("-std=c++14",), backend="nvrtc")
        try:
            module.compile()
        except Exception as exc:  # cupy.cuda.compiler.CompileException
            raise BackendUnavailableError(
                f"NVRTC could not compile kernels/{name} for sm_{arch}: {exc}"
            ) from exc
        _MODULES[key] = module
    return module


# ------------------------------------------------------------------------------ backend


class CudaBackend(ProjectorBackend):
    """CUDA projectors (``backend="cuda"``) for every geometry of the CPU backend.

    Options
    -------
    mode : {"matched", "fast"}
        ``"matched"`` (default): Joseph forward projection and its exact transpose (ray-driven
        scatter with float32 atomics), the same model as the CPU backend, so results agree with
        it to float32 rounding. ``"fast"``: forward projection by interpolated samples at a
        fixed ``step`` along each ray (3D through the texture unit, whose interpolation weights
        have 8 fractional bits), and voxel-driven backprojection (weighting none) as the
        adjoint. **In fast mode ``adjoint`` is not the exact adjoint** (``exact_adjoint`` is
        False; it also lacks a geometry-dependent scale, see ``kernels/README.md``): use
        ``"matched"`` inside iterative solvers that need the true gradient.
    device : int, optional
        CUDA device number (default: CuPy's current device).
    max_bytes : int, optional
        Device memory one work item may use (default: 80 % of the free memory, CuPy's pool
        included). Work that does not fit is split into z-slabs, view chunks and batch chunks
        (:mod:`._slabs`); the result equals the unsplit one (to float32 summation order). The
        ``fast`` forward is split along views and batch items only, unless the volume alone
        does not fit (then z-slabs with a ``RuntimeWarning``: its sample points move). Small
        values force splitting.
    step : float, optional
        ``fast`` mode sampling step in mm (default half the smallest voxel size).
    texture : bool
        ``fast`` 3D forward through the texture unit (default True); False uses the pointer
        kernel with the same software interpolation as the host build. 2D ``fast`` always uses
        the pointer kernel.

    Notes
    -----
    Computation is float32. float64 inputs are converted to float32 on the way in and the
    result is returned as float64. Half-precision storage is not implemented.

    Arrays: CuPy arrays in give CuPy arrays out, on the device, without host copies; numpy in
    gives numpy out.
    """

    name = "cuda"
    exact_adjoint = True
    #: this backend computes on CuPy arrays itself (see ``Projector``)
    device_arrays: ClassVar[bool] = True

    def __init__(
        self,
        geometry: VecGeometry,
        volume: VolumeGeometry,
        *,
        mode: str | Mode = Mode.MATCHED,
        device: int | None = None,
        max_bytes: int | None = None,
        step: float | None = None,
        texture: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(geometry, volume, **options)
        self.mode = parse_enum(Mode, mode, "mode")
        if self.mode is Mode.FAST:
            self.exact_adjoint = False  # type: ignore[misc]
        if max_bytes is not None and int(max_bytes) < 1:
            raise ValueError(f"max_bytes: expected a positive number of bytes, got {max_bytes!r}")
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self.kg: KernelGeometry = _slabs.kernel_geometry(geometry, volume)
        self.step = (
            DEFAULT_STEP_FRACTION * float(self.kg.spacing.min()) if step is None else float(step)
        )
        if not self.step > 0.0:
            raise ValueError(f"step: expected a positive length in mm, got {step!r}")
        self.texture = bool(texture)
        cp = _cupy()
        self._cp = cp
        n_devices = int(cp.cuda.runtime.getDeviceCount())
        dev_id = int(cp.cuda.Device().id) if device is None else int(device)
        if not 0 <= dev_id < n_devices:
            raise DeviceError(f"device: expected 0 .. {n_devices - 1}, got {device!r}")
        self.device = cp.cuda.Device(dev_id)
        self._sources = read_sources()
        with self.device:
            # geometry uploaded once per backend
            self._vectors = tuple(cp.asarray(v) for v in self.kg.vectors)
            self._spacing = cp.asarray(self.kg.spacing)
            self._origins: dict[int, Any] = {0: cp.asarray(self.kg.origin)}
            self._frames: Any = None
            self._kernels: dict[str, Any] = {}

    @staticmethod
    def unavailable_reason() -> str | None:
        """Why this backend cannot run here (no CuPy, no CUDA device), or None."""
        try:
            _cupy()
        except BackendUnavailableError as exc:
            return str(exc)
        return None

    def __repr__(self) -> str:
        return f"CudaBackend(mode={self.mode.value!r}, device={self.device.id})"

    # ----------------------------------------------------------------- kernels and geometry
    def _kernel(self, name: str) -> Any:
        fn = self._kernels.get(name)
        if fn is None:
            file = next(f for f, names in KERNELS.items() if name in names)
            fn = compile_source(self._cp, self._sources, file).get_function(name)
            self._kernels[name] = fn
        return fn

    def _launch(self, name: str, total: int, args: tuple[Any, ...]) -> None:
        if total <= 0:
            return
        blocks = max(1, min(-(-total // BLOCK), MAX_BLOCKS))
        self._kernel(name)((blocks,), (BLOCK,), args)

    def _origin(self, z0: int) -> Any:
        org = self._origins.get(z0)
        if org is None:
            org = self._cp.asarray(self.kg.slab_origin(z0))
            self._origins[z0] = org
        return org

    def _vecs(self, views: tuple[int, int]) -> tuple[Any, ...]:
        v0, v1 = views  # row slices of C-contiguous arrays: contiguous views, no copy
        return tuple(v[v0:v1] for v in self._vectors)

    def _frames_for(self, views: tuple[int, int]) -> Any:
        if self._frames is None:
            cp = self._cp
            kg = self.kg
            self._frames = cp.zeros((kg.n_views, 8), dtype=cp.float64)
            self._launch(
                "medrecon_backproject3d_frames",
                kg.n_views,
                (self._frames, np.int32(kg.n_views), np.int32(kg.mode), *self._vectors),
            )
        return self._frames[views[0] : views[1]]

    # ----------------------------------------------------------------- memory
    def _budget(self) -> int:
        if self.max_bytes is not None:
            return self.max_bytes
        cp = self._cp
        free, _total = cp.cuda.runtime.memGetInfo()
        pooled = int(cp.get_default_memory_pool().free_bytes())
        return int(MEMORY_FRACTION * (int(free) + pooled))

    def plan(self, op: Operation, n_batch: int, *, input_on_device: bool) -> SlabPlan:
        """The work split :meth:`forward`/:meth:`adjoint`/:meth:`backproject` will use."""
        texture = op is Operation.FORWARD and self._uses_texture()
        sizes = _slabs.Sizes.of(self.kg, n_batch)
        with self.device:
            budget = self._budget()
        kw = {"input_on_device": input_on_device, "texture": texture}
        if op is Operation.FORWARD and self.mode is Mode.FAST:
            # the fast forward is exact over views and batch items, not over z-slabs
            try:
                return _slabs.plan_slabs(op, sizes, budget, split_z=False, **kw)
            except MemoryError:
                warnings.warn(
                    "fast-mode forward projection: the volume does not fit in device memory "
                    "and is split into z-slabs, which moves the fixed-step sample points (a "
                    "change of the order of fast mode's sampling error); use mode='matched' "
                    "for results that do not depend on the split",
                    RuntimeWarning,
                    stacklevel=4,
                )
        return _slabs.plan_slabs(op, sizes, budget, **kw)

    def _uses_texture(self) -> bool:
        return self.mode is Mode.FAST and self.texture and self.kg.ndim == 3

    # ----------------------------------------------------------------- the contract
    def forward(self, x: Any) -> Any:
        return self._run(Operation.FORWARD, x)

    def adjoint(self, y: Any) -> Any:
        if self.mode is Mode.FAST:
            return self._run(Operation.BACKPROJECT, y, weighting=0)
        return self._run(Operation.ADJOINT, y)

    def backproject(self, y: Any, weighting: Weighting) -> Any:
        return self._run(Operation.BACKPROJECT, y, weighting=1 if weighting is Weighting.FDK else 0)

    def _run(self, op: Operation, data: Any, *, weighting: int = 0) -> Any:
        on_device = _is_cupy(data)
        if on_device and data.device.id != self.device.id:
            raise DeviceError(
                f"the data are on CUDA device {data.device.id}, this projector runs on device "
                f"{self.device.id}"
            )
        dtype = np.dtype(data.dtype)
        with self.device:
            plan = self.plan(op, int(data.shape[0]), input_on_device=on_device)
            ex = _CupyExecutor(self, device_output=on_device)
            out = _slabs.run(ex, op, data, plan, self.kg, weighting=weighting)
        return out.astype(dtype, copy=False)

    # ----------------------------------------------------------------- device arrays
    def is_device_array(self, x: Any) -> bool:
        """True for CuPy arrays and torch CUDA tensors (handled without a host copy)."""
        return _is_cupy(x) or (is_torch(x) and x.device.type == "cuda")

    @contextlib.contextmanager
    def exchange(self, x: Any) -> Iterator[tuple[Any, Any]]:
        """Give ``x`` to the backend as a CuPy array; yield ``(array, wrap)``.

        torch CUDA tensors are shared through DLPack (zero copy) and the work is queued on
        torch's current stream of the tensor's device (``cupy.cuda.ExternalStream``), so it is
        ordered with the surrounding torch work without synchronisation; ``wrap`` turns a CuPy
        result into a torch tensor (DLPack again, zero copy). CuPy arrays pass through.
        """
        cp = self._cp
        if is_torch(x):
            import torch

            if x.device.index is not None and x.device.index != self.device.id:
                raise DeviceError(
                    f"the tensor is on {x.device}, this projector runs on CUDA device "
                    f"{self.device.id}"
                )
            stream = torch.cuda.current_stream(x.device)
            with self.device, cp.cuda.ExternalStream(stream.cuda_stream):
                arr = cp.from_dlpack(x.detach())
                yield arr, torch.from_dlpack
            return
        with self.device:
            yield x, _identity

    def array_module(self) -> Any:
        """The array module of the device arrays (CuPy)."""
        return self._cp


def _identity(x: Any) -> Any:
    return x


class _CupyExecutor:
    """:class:`._slabs.SlabExecutor` on the GPU: CuPy arrays and the compiled kernels.

    ``device_output``: results stay on the device (CuPy input); otherwise they are downloaded
    into host numpy arrays.
    """

    def __init__(self, backend: CudaBackend, *, device_output: bool) -> None:
        self.b = backend
        self.cp = backend._cp
        self.device_output = device_output

    # data movement
    def load(self, data: Any, index: tuple[slice, ...]) -> Any:
        cp = self.cp
        part = data[index]
        if isinstance(part, cp.ndarray):  # no copy when already contiguous float32
            return cp.ascontiguousarray(part, dtype=cp.float32)
        return cp.asarray(np.ascontiguousarray(part, dtype=np.float32))

    def zeros(self, shape: tuple[int, ...]) -> Any:
        return self.cp.zeros(shape, dtype=self.cp.float32)

    def iadd(self, acc: Any, part: Any) -> None:
        acc += part

    def finish(self, result: Any) -> Any:
        return result if self.device_output else self.cp.asnumpy(result)

    def new_output(self, shape: tuple[int, ...]) -> Any:
        if self.device_output:
            return self.cp.empty(shape, dtype=self.cp.float32)
        return np.empty(shape, dtype=np.float32)

    def store(self, out: Any, index: tuple[slice, ...], part: Any) -> None:
        out[index] = part if self.device_output else self.cp.asnumpy(part)

    # kernels
    def _common(self, n_batch: int, vol: tuple[int, ...], views: tuple[int, int]) -> tuple:
        kg = self.b.kg
        dv = views[1] - views[0]
        det = kg.det_shape
        return (
            np.int32(n_batch),
            *(np.int32(s) for s in vol),
            np.int32(dv),
            *(np.int32(s) for s in det),
            np.int32(kg.mode),
        )

    def forward(self, x: Any, z0: int, views: tuple[int, int]) -> Any:
        b = self.b
        kg = b.kg
        n_batch = int(x.shape[0])
        vol = tuple(int(s) for s in x.shape[1:])
        dv = views[1] - views[0]
        out = self.cp.empty((n_batch, dv, *kg.det_shape), dtype=self.cp.float32)
        total = n_batch * dv * math.prod(kg.det_shape)
        geo = (*b._vecs(views), b._origin(z0), b._spacing)
        dim = "2d" if kg.ndim == 2 else "3d"
        if b.mode is Mode.MATCHED:
            args = (x, out, *self._common(n_batch, vol, views), *geo)
            b._launch(f"medrecon_joseph{dim}_forward", total, args)
        elif b._uses_texture():
            self._forward_tex3d(x, out, z0, views)
        else:
            args = (x, out, *self._common(n_batch, vol, views), *geo, np.float64(b.step))
            b._launch(f"medrecon_fast{dim}_forward", total, args)
        return out

    def _forward_tex3d(self, x: Any, out: Any, z0: int, views: tuple[int, int]) -> None:
        cp = self.cp
        b = self.b
        kg = b.kg
        rt = cp.cuda.runtime
        tx = cp.cuda.texture
        nz, ny, nx = (int(s) for s in x.shape[1:])
        dv = views[1] - views[0]
        channel = tx.ChannelFormatDescriptor(32, 0, 0, 0, rt.cudaChannelFormatKindFloat)
        stream = cp.cuda.get_current_stream()
        total = dv * math.prod(kg.det_shape)
        for i in range(int(x.shape[0])):
            array = tx.CUDAarray(channel, nx, ny, nz)
            array.copy_from(x[i], stream=stream)
            resource = tx.ResourceDescriptor(rt.cudaResourceTypeArray, cuArr=array)
            texdesc = tx.TextureDescriptor(
                addressModes=(rt.cudaAddressModeBorder,) * 3,
                filterMode=rt.cudaFilterModeLinear,
                readMode=rt.cudaReadModeElementType,
                normalizedCoords=0,
            )
            tex = tx.TextureObject(resource, texdesc)
            args = (
                tex,
                out[i],
                np.int32(nz),
                np.int32(ny),
                np.int32(nx),
                np.int32(dv),
                *(np.int32(s) for s in kg.det_shape),
                np.int32(kg.mode),
                *b._vecs(views),
                b._origin(z0),
                b._spacing,
                np.float64(b.step),
            )
            b._launch("medrecon_fast3d_forward_tex", total, args)
            # the CUDA array must outlive the kernel that reads it
            stream.synchronize()
            del tex, resource, array

    def adjoint(self, y: Any, out: Any, z0: int, views: tuple[int, int]) -> None:
        b = self.b
        kg = b.kg
        n_batch = int(y.shape[0])
        vol = tuple(int(s) for s in out.shape[1:])
        total = n_batch * (views[1] - views[0]) * math.prod(kg.det_shape)
        dim = "2d" if kg.ndim == 2 else "3d"
        args = (
            y,
            out,
            *self._common(n_batch, vol, views),
            *b._vecs(views),
            b._origin(z0),
            b._spacing,
        )
        b._launch(f"medrecon_joseph{dim}_adjoint", total, args)

    def backproject(self, y: Any, z0: int, nz: int, views: tuple[int, int], weighting: int) -> Any:
        b = self.b
        kg = b.kg
        n_batch = int(y.shape[0])
        vol = (nz, *kg.vol_shape[1:]) if kg.ndim == 3 else kg.vol_shape
        out = self.cp.empty((n_batch, *vol), dtype=self.cp.float32)
        total = n_batch * math.prod(vol)
        head = (y, out, *self._common(n_batch, vol, views), *b._vecs(views))
        if kg.ndim == 2:
            args = (*head, b._origin(0), b._spacing, np.int32(weighting))
            b._launch("medrecon_backproject2d", total, args)
        else:
            frames = b._frames_for(views)
            args = (*head, frames, b._origin(z0), b._spacing, np.int32(weighting))
            b._launch("medrecon_backproject3d", total, args)
        return out
