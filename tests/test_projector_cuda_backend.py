"""The CuPy backend (``backend="cuda"``): what the CPU can check, and the GPU checks.

Without a GPU (every machine CI runs on):

* the backend reports itself unavailable with an error naming ``pip install medrecon[cuda]``,
  importing medrecon never imports CuPy, and the registry lists it;
* ``common.cuh`` is inlined into each kernel file the way NVRTC gets it, and that text compiles
  with ``nvcc --ptx`` and no include path;
* slab planning and assembly (:mod:`medrecon.projectors.cuda._slabs`) split work into batch
  chunks, z-slabs and view chunks whose results equal the unsplit one, with the host build of
  the kernels as the executor;
* the whole backend runs on a **fake CuPy** (numpy arrays standing for device arrays, each
  "kernel launch" calling the host launcher of the same name with the same arguments): this
  checks the argument order of every launch against the ABI, the data path (device arrays in,
  device arrays out, no numpy conversion), slabs through the backend, and the dispatch of
  ``Projector``. It cannot check CUDA itself (NVRTC, textures, atomics, DLPack, streams).

With a GPU (``@pytest.mark.gpu``, run by ``benchmarks/gpu_check.sh``): agreement with the CPU
backend, the dot test, ``fast`` vs ``matched``, slabs, torch CUDA tensors without host copies,
and autograd on CUDA tensors.
"""

from __future__ import annotations

import ctypes
import importlib
import itertools
import os
import re
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medrecon import Projector, VolumeGeometry
from medrecon.errors import BackendUnavailableError, DeviceError, NonFiniteError
from medrecon.projectors import registry
from medrecon.projectors.cuda import _host, _slabs, _sources
from medrecon.projectors.cuda._slabs import HostExecutor, Operation, Sizes, SlabPlan

# the geometry cases and smooth test images of the host-build tests
from test_projector_cuda_host import CASES, _smooth  # type: ignore[import-not-found]

NVCC = shutil.which(os.environ.get("NVCC", "nvcc"))
HAS_GXX = shutil.which("g++") is not None
needs_host = pytest.mark.skipif(not HAS_GXX, reason="the host build of the kernels needs g++")

AGREE_HOST = 1e-5  # fake-CuPy backend (host build) vs numba, relative L2, float32
AGREE_GPU = 1e-4  # GPU vs numba
DOT = 1e-4
FAST = 1e-2
SPLIT = 1e-6  # split vs unsplit (float32 summation order)


def _rel(a: Any, b: Any) -> float:
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a64 - b64) / np.linalg.norm(b64))


def _inputs(geom: Any, vol: VolumeGeometry, seed: int, batch: int = 2) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *vol.shape)).astype(np.float32)
    y = rng.random((batch, *geom.proj_shape)).astype(np.float32)
    return x, y


# ------------------------------------------------------------------ unavailable, registry


def test_unavailable_without_cupy_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # "import cupy" raises ImportError
    geom, vol = CASES["ParallelBeam2D"]("odd")
    with pytest.raises(BackendUnavailableError, match=r"pip install medrecon\[cuda\]") as info:
        Projector(geom, vol, backend="cuda")
    assert "cupy-cuda12x" in str(info.value)
    assert isinstance(info.value, ImportError)
    assert "cuda" not in registry.available_backends()


def test_unavailable_without_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCupy(n_devices=0)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    geom, vol = CASES["ParallelBeam2D"]("odd")
    with pytest.raises(BackendUnavailableError, match="no CUDA device"):
        Projector(geom, vol, backend="cuda")


def test_importing_medrecon_never_imports_cupy() -> None:
    code = (
        "import sys, medrecon, medrecon.projectors.cuda.backend, medrecon.projectors.cuda._slabs\n"
        "from medrecon.projectors import get_backend\n"
        "get_backend('cuda')\n"
        "assert 'cupy' not in sys.modules, 'cupy was imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_registry_entry() -> None:
    from medrecon.projectors.cuda.backend import CudaBackend

    described = registry.registered_backends()
    assert "cuda" in described
    assert "matched" in described["cuda"] and "fast" in described["cuda"]
    assert registry.get_backend("cuda") is CudaBackend
    assert CudaBackend.name == "cuda"
    assert CudaBackend.device_arrays is True


# ------------------------------------------------------------------ sources for NVRTC


def test_the_header_is_inlined_for_nvrtc() -> None:
    from medrecon.projectors.cuda.backend import inline_header

    sources = _sources.read_sources()
    for name in _sources.CUDA_FILES:
        code = inline_header(sources, name)
        includes = re.findall(r"^\s*#\s*include\s*(\S+)", code, flags=re.MULTILINE)
        assert includes == ["<math.h>"]  # only the host build's, behind #if !__CUDACC__
        assert '#line 1 "common.cuh"' in code
        assert sources["common.cuh"].strip() in code
        # the line after the include keeps its number
        original = sources[name].splitlines()
        at = next(i for i, line in enumerate(original) if "common.cuh" in line)
        assert f'#line {at + 2} "{name}"' in code
    with pytest.raises(ValueError, match="include"):
        inline_header({"common.cuh": "", "x.cu": "int x;"}, "x.cu")


@pytest.mark.skipif(NVCC is None, reason="needs nvcc")
@pytest.mark.parametrize("name", _sources.CUDA_FILES)
def test_the_inlined_source_compiles_without_an_include_path(name: str, tmp_path: Path) -> None:
    """What NVRTC gets (one self-contained text, ``-std=c++14``) compiles for sm_90."""
    from medrecon.projectors.cuda.backend import inline_header

    assert NVCC is not None
    src = tmp_path / name
    src.write_text(inline_header(_sources.read_sources(), name))
    out = tmp_path / "out.ptx"
    cmd = [NVCC, "--ptx", "-std=c++14", "-arch=sm_90", str(src), "-o", str(out)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entries = set(re.findall(r"\.entry\s+(\w+)\(", out.read_text()))
    assert set(_sources.KERNELS[name]) <= entries


# ------------------------------------------------------------------ the planner


def test_chunk_sizes() -> None:
    assert _slabs._chunk_sizes(1) == [1]
    assert _slabs._chunk_sizes(10) == [10, 5, 4, 3, 2, 1]
    for n in (7, 100, 721):
        sizes = _slabs._chunk_sizes(n)
        assert sizes == sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)


def test_plan_is_one_item_when_everything_fits() -> None:
    s = Sizes(n_batch=2, nz=10, plane=100, n_views=20, view=50)
    whole = 4 * (2 * 10 * 100 + 2 * 20 * 50)
    plan = _slabs.plan_slabs(Operation.FORWARD, s, whole)
    assert plan.n_items == 1
    assert plan.peak_bytes == whole
    # an input already on the device is not counted
    resident = _slabs.plan_slabs(Operation.FORWARD, s, 4 * 2 * 20 * 50, input_on_device=True)
    assert resident.n_items == 1


@pytest.mark.parametrize("op", list(Operation))
@pytest.mark.parametrize("fraction", [0.5, 0.2, 0.05])
def test_plan_fits_the_budget_and_covers_everything(op: Operation, fraction: float) -> None:
    s = Sizes(n_batch=3, nz=17, plane=64, n_views=23, view=40)
    whole = 4 * (3 * 17 * 64 + 2 * 3 * 23 * 40)
    budget = int(fraction * whole)
    plan = _slabs.plan_slabs(op, s, budget, texture=op is Operation.FORWARD)
    assert plan.n_items > 1
    assert plan.peak_bytes <= budget
    for ranges, n in ((plan.batches, 3), (plan.slabs, 17), (plan.views, 23)):
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    for b0, b1 in plan.batches:
        for z0, z1 in plan.slabs:
            for v0, v1 in plan.views:
                used = _slabs.work_bytes(
                    op,
                    s,
                    b1 - b0,
                    z1 - z0,
                    v1 - v0,
                    n_slabs=len(plan.slabs),
                    n_view_chunks=len(plan.views),
                    texture=op is Operation.FORWARD,
                )
                assert used <= budget
    assert "work item" in _slabs.describe(plan)


def test_plan_prefers_the_split_that_moves_least() -> None:
    """Forward: split z (the volume is read once); adjoint: split views (projections once)."""
    fwd_sizes = Sizes(n_batch=1, nz=256, plane=4096, n_views=32, view=4096)
    fwd = _slabs.plan_slabs(Operation.FORWARD, fwd_sizes, 4 * (64 + 2 * 32) * 4096)
    assert len(fwd.views) == 1 and len(fwd.slabs) == 4
    adj_sizes = Sizes(n_batch=1, nz=32, plane=4096, n_views=256, view=4096)
    adj = _slabs.plan_slabs(Operation.ADJOINT, adj_sizes, 4 * (32 + 64) * 4096)
    assert len(adj.slabs) == 1 and len(adj.views) == 4


def test_plan_raises_when_nothing_fits() -> None:
    s = Sizes(n_batch=1, nz=4, plane=1000, n_views=4, view=1000)
    with pytest.raises(MemoryError, match="bytes"):
        _slabs.plan_slabs(Operation.BACKPROJECT, s, 100)


# ------------------------------------------------------------------ slabs with the host build


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> _host.HostKernels:
    if not HAS_GXX:
        pytest.skip("the host build of the kernels needs g++")
    return _host.load(cache=tmp_path_factory.mktemp("kernel-cache"))


def _whole(kg: _slabs.KernelGeometry, n_batch: int) -> SlabPlan:
    s = Sizes.of(kg, n_batch)
    return SlabPlan(((0, n_batch),), ((0, s.nz),), ((0, s.n_views),), 0)


def _split_all(kg: _slabs.KernelGeometry, n_batch: int) -> SlabPlan:
    """Split every axis into uneven pieces: 2 batch chunks, 3 z-slabs (3D), 3 view chunks."""
    s = Sizes.of(kg, n_batch)
    nz, nv = s.nz, s.n_views
    slabs = ((0, 1), (1, nz // 2), (nz // 2, nz)) if nz > 2 else ((0, nz),)
    views = ((0, 2), (2, nv - 3), (nv - 3, nv))
    return SlabPlan(((0, 1), (1, n_batch)), slabs, views, 0)


SPLIT_CASES = [
    "ParallelBeam2D",
    "FanBeam2D-arc",
    "ParallelBeam3D",
    "ConeBeam3D-wide",
    "ConeBeamVec",
]


@needs_host
@pytest.mark.parametrize("name", SPLIT_CASES)
def test_split_equals_unsplit_with_the_host_executor(kernels: _host.HostKernels, name: str) -> None:
    geom, vol = CASES[name]("odd")
    kg = _slabs.kernel_geometry(geom.to_vectors(), vol)
    x, y = _inputs(geom, vol, seed=7, batch=3)
    whole, split = _whole(kg, 3), _split_all(kg, 3)
    for op, data, w in (
        (Operation.FORWARD, x, 0),
        (Operation.ADJOINT, y, 0),
        (Operation.BACKPROJECT, y, 0),
        (Operation.BACKPROJECT, y, 1),
    ):
        ex = HostExecutor(kernels, kg)
        ref = _slabs.run(ex, op, data, whole, kg, weighting=w)
        assert ex.launches == 1
        assert float(np.abs(ref).max()) > 0, f"{name} {op}: nothing computed"
        ex = HostExecutor(kernels, kg)
        got = _slabs.run(ex, op, data, split, kg, weighting=w)
        assert ex.launches == split.n_items > 1
        err = _rel(got, ref)
        assert err < SPLIT, f"{name} {op.value} w={w}: split differs from unsplit by {err:.2e}"


@needs_host
@pytest.mark.parametrize("name", ["FanBeam2D-flat", "ConeBeam3D"])
@pytest.mark.parametrize("op", list(Operation))
def test_planned_split_equals_unsplit(kernels: _host.HostKernels, name: str, op: Operation) -> None:
    """Plans the planner makes for a fifth (3D; 2D: two thirds) of the unsplit need."""
    geom, vol = CASES[name]("even")
    kg = _slabs.kernel_geometry(geom.to_vectors(), vol)
    x, y = _inputs(geom, vol, seed=8, batch=2)
    data = x if op is Operation.FORWARD else y
    s = Sizes.of(kg, 2)
    need = _slabs.work_bytes(op, s, 2, s.nz, s.n_views, n_slabs=1, n_view_chunks=1)
    plan = _slabs.plan_slabs(op, s, need // 5 if vol.ndim == 3 else need * 2 // 3)
    assert plan.n_items > 1
    ref = _slabs.run(HostExecutor(kernels, kg), op, data, _whole(kg, 2), kg, weighting=1)
    got = _slabs.run(HostExecutor(kernels, kg), op, data, plan, kg, weighting=1)
    assert _rel(got, ref) < SPLIT


# ------------------------------------------------------------------ a fake CuPy on the host


class FakeDeviceArray(np.ndarray):
    """A numpy array standing for a CuPy array on device 0."""

    @property
    def device(self) -> Any:
        return types.SimpleNamespace(id=0)


def _dev(a: Any) -> FakeDeviceArray:
    return np.asarray(a).view(FakeDeviceArray)


class _FakeDevice:
    def __init__(self, dev_id: int = 0) -> None:
        self.id = dev_id
        self.compute_capability = "90"

    def __enter__(self) -> _FakeDevice:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class _FakeKernel:
    """A 'kernel': calls the host launcher of the same name with the same arguments."""

    def __init__(self, owner: FakeCupy, name: str) -> None:
        self.owner = owner
        self.name = name

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple) -> None:
        assert len(grid) == 1 and len(block) == 1 and grid[0] >= 1 and block[0] >= 1
        conv = []
        for a in args:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous, f"{self.name}: a non-contiguous array argument"
                conv.append(a.view(np.ndarray))
            elif isinstance(a, np.integer):
                assert a.dtype == np.int32, f"{self.name}: integer argument of {a.dtype}"
                conv.append(int(a))
            elif isinstance(a, np.floating):
                assert a.dtype == np.float64, f"{self.name}: float argument of {a.dtype}"
                conv.append(float(a))
            else:
                conv.append(a)
        self.owner.launches.append(self.name)
        lib = self.owner.host
        if self.name == "medrecon_fast3d_forward_tex":
            tex, proj, *rest = conv
            vol = tex.ResDesc.cuArr.data[None]
            out = proj.reshape((1, *proj.shape))
            lib._fn["medrecon_fast3d_forward_host"](vol, out, 1, *rest)
            return
        lib._fn[self.name + "_host"](*conv)


class _FakeModule:
    def __init__(self, owner: FakeCupy, code: str, options: tuple[str, ...], backend: str) -> None:
        self.owner = owner
        self.code = code
        self.options = options
        self.backend = backend
        owner.modules.append(self)

    def compile(self) -> None:
        return None

    def get_function(self, name: str) -> _FakeKernel:
        assert re.search(rf'extern "C" __global__ void {name}\(', self.code), name
        return _FakeKernel(self.owner, name)


class _FakeTexture(types.SimpleNamespace):
    pass


class FakeCupy(types.ModuleType):
    """Just enough of CuPy for the backend, on the host, with the kernels' host build."""

    float32 = np.float32
    float64 = np.float64
    isfinite = staticmethod(np.isfinite)
    isnan = staticmethod(np.isnan)
    isinf = staticmethod(np.isinf)
    count_nonzero = staticmethod(np.count_nonzero)
    ndarray = FakeDeviceArray

    def __init__(self, host: Any = None, n_devices: int = 1) -> None:
        super().__init__("cupy")
        self.host = host
        self.launches: list[str] = []
        self.modules: list[_FakeModule] = []
        self.uploads = 0
        owner = self
        stream = types.SimpleNamespace(synchronize=lambda: None)

        def count() -> int:
            return n_devices

        runtime = types.SimpleNamespace(
            getDeviceCount=count,
            memGetInfo=lambda: (1 << 34, 1 << 35),
            cudaChannelFormatKindFloat=2,
            cudaResourceTypeArray=0,
            cudaAddressModeBorder=3,
            cudaFilterModeLinear=1,
            cudaReadModeElementType=0,
        )

        class CUDAarray:
            def __init__(self, ch: Any, w: int, h: int, d: int) -> None:
                self.shape = (d, h, w)
                self.data: np.ndarray | None = None

            def copy_from(self, arr: Any, stream: Any = None) -> None:
                assert arr.shape == self.shape
                self.data = np.array(arr, dtype=np.float32)

        texture = types.SimpleNamespace(
            ChannelFormatDescriptor=lambda *a: a,
            CUDAarray=CUDAarray,
            ResourceDescriptor=lambda restype, cuArr: _FakeTexture(cuArr=cuArr),
            TextureDescriptor=lambda **kw: kw,
            TextureObject=lambda res, desc: _FakeTexture(ResDesc=res, TexDesc=desc),
        )
        self.cuda = types.SimpleNamespace(
            runtime=runtime,
            Device=_FakeDevice,
            texture=texture,
            get_current_stream=lambda: stream,
        )

        def raw_module(code: str, options: tuple[str, ...] = (), backend: str = "") -> Any:
            return _FakeModule(owner, code, tuple(options), backend)

        self.RawModule = raw_module

    # array functions
    def asarray(self, a: Any) -> FakeDeviceArray:
        if not isinstance(a, FakeDeviceArray):
            self.uploads += 1
        return _dev(np.array(a, copy=True))

    def asnumpy(self, a: Any) -> np.ndarray:
        return np.array(np.asarray(a).view(np.ndarray), copy=True)

    def ascontiguousarray(self, a: Any, dtype: Any = None) -> FakeDeviceArray:
        return _dev(np.ascontiguousarray(a, dtype=dtype))

    def zeros(self, shape: Any, dtype: Any = np.float32) -> FakeDeviceArray:
        return _dev(np.zeros(shape, dtype=dtype))

    def empty(self, shape: Any, dtype: Any = np.float32) -> FakeDeviceArray:
        # NaN-filled: a kernel that fails to overwrite its output shows up
        return _dev(np.full(shape, np.nan, dtype=dtype))

    def get_default_memory_pool(self) -> Any:
        return types.SimpleNamespace(free_bytes=lambda: 0)


@pytest.fixture
def fake_cupy(kernels: _host.HostKernels, monkeypatch: pytest.MonkeyPatch) -> FakeCupy:
    from medrecon.projectors.cuda import backend

    fake = FakeCupy(kernels)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(backend, "_MODULES", {})
    return fake


@needs_host
@pytest.mark.parametrize("name", list(CASES))
def test_fake_cupy_backend_agrees_with_numba(fake_cupy: FakeCupy, name: str) -> None:
    """Every launch's argument order against the ABI: numpy in, numpy out."""
    geom, vol = CASES[name]("odd")
    ref = Projector(geom, vol, backend="cpu")
    op = Projector(geom, vol, backend="cuda")
    assert op.exact_adjoint
    x, y = _inputs(geom, vol, seed=1)
    fwd = op(x)
    assert isinstance(fwd, np.ndarray) and fwd.dtype == np.float32
    assert _rel(fwd, ref(x)) < AGREE_HOST
    assert _rel(op.T(y), ref.T(y)) < AGREE_HOST
    for weighting in ("none", "fdk"):
        err = _rel(op.backproject(y, weighting=weighting), ref.backproject(y, weighting=weighting))
        assert err < AGREE_HOST, f"{name} {weighting}: {err:.2e}"
    # float64 in, float64 out (computed in float32)
    assert op(x.astype(np.float64)).dtype == np.float64


@needs_host
def test_fake_cupy_compiles_self_contained_sources(fake_cupy: FakeCupy) -> None:
    geom, vol = CASES["ConeBeam3D"]("odd")
    op = Projector(geom, vol, backend="cuda")
    x, y = _inputs(geom, vol, seed=2)
    op(x), op.T(y), op.backproject(y)
    assert {m.backend for m in fake_cupy.modules} == {"nvrtc"}
    for m in fake_cupy.modules:
        assert "-std=c++14" in m.options
        assert not any(o.startswith(("-arch", "--gpu-architecture", "-I")) for o in m.options)
        assert '#include "common.cuh"' not in m.code
    # compiled once per file and process
    n = len(fake_cupy.modules)
    Projector(geom, vol, backend="cuda")(x)
    assert len(fake_cupy.modules) == n
    assert "medrecon_backproject3d_frames" in fake_cupy.launches


@needs_host
@pytest.mark.parametrize("name", ["FanBeam2D-flat", "ParallelVec2D", "ConeBeam3D", "ParallelVec3D"])
def test_fake_cupy_fast_mode(fake_cupy: FakeCupy, name: str) -> None:
    geom, vol = CASES[name]("even")
    fast = Projector(geom, vol, backend="cuda", mode="fast")
    matched = Projector(geom, vol, backend="cuda", mode="matched")
    assert not fast.exact_adjoint and matched.exact_adjoint
    x = _smooth(vol, seed=4)
    for b in range(2):
        err = _rel(fast(x[b]), matched(x[b]))
        assert err < FAST, f"{name}: fast differs from matched by {err:.2e}"
    if vol.ndim == 3:
        assert "medrecon_fast3d_forward_tex" in fake_cupy.launches
        pointer = Projector(geom, vol, backend="cuda", mode="fast", texture=False)
        assert _rel(pointer(x), fast(x)) < 1e-6
    _, y = _inputs(geom, vol, seed=5)
    # the adjoint of fast mode is the voxel-driven backprojection without weighting
    np.testing.assert_array_equal(fast.T(y), matched.backproject(y, weighting="none"))


@needs_host
@pytest.mark.parametrize("name", ["FanBeam2D-arc", "ConeBeam3D", "ConeBeamVec"])
@pytest.mark.parametrize("mode", ["matched", "fast"])
def test_fake_cupy_slabs_equal_unsplit(fake_cupy: FakeCupy, name: str, mode: str) -> None:
    geom, vol = CASES[name]("odd")
    whole = Projector(geom, vol, backend="cuda", mode=mode)
    x, y = _inputs(geom, vol, seed=6, batch=3)
    split = Projector(
        geom, vol, backend="cuda", mode=mode, max_bytes=_small_budget(geom, vol, mode)
    )
    for op in Operation:
        assert split.backend.plan(op, 3, input_on_device=False).n_items > 1  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no z-split of the fast forward here
        assert _rel(split(x), whole(x)) < SPLIT
    assert _rel(split.T(y), whole.T(y)) < SPLIT
    assert (
        _rel(split.backproject(y, weighting="fdk"), whole.backproject(y, weighting="fdk")) < SPLIT
    )
    # device arrays in: split too, results stay on the device
    out = split(_dev(x))
    assert isinstance(out, FakeDeviceArray)
    assert _rel(out, whole(x)) < SPLIT


def _small_budget(geom: Any, vol: VolumeGeometry, mode: str) -> int:
    """A budget that splits 3 items in every operation (fast 3D: still fits one volume)."""
    n_vol, n_proj = int(np.prod(vol.shape)), int(np.prod(geom.proj_shape))
    if vol.ndim == 2:
        return 4 * 3 * (n_vol + n_proj) // 2
    if mode == "fast":  # one volume, its texture copy and one projection stack
        return 4 * (2 * n_vol + n_proj)
    return 4 * 3 * (n_vol + n_proj) // 6


@needs_host
def test_fake_cupy_fast_forward_warns_when_z_must_split(fake_cupy: FakeCupy) -> None:
    geom, vol = CASES["ConeBeam3D"]("odd")
    x = _smooth(vol, seed=9)[:1]
    whole = Projector(geom, vol, backend="cuda", mode="fast")
    tiny = Projector(geom, vol, backend="cuda", mode="fast", max_bytes=4 * int(np.prod(vol.shape)))
    with pytest.warns(RuntimeWarning, match="z-slabs"):
        got = tiny(x)
    assert _rel(got, whole(x)) < FAST


@needs_host
def test_fake_device_arrays_stay_on_the_device(
    fake_cupy: FakeCupy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Device arrays go to the backend as they are: no numpy conversion, same kind out."""
    from medrecon import linop
    from medrecon.projectors import projector

    original = linop.to_numpy

    def refuse(x: Any) -> Any:
        if isinstance(x, FakeDeviceArray):
            raise AssertionError("to_numpy was called on a device array")
        return original(x)

    geom, vol = CASES["ConeBeamVec"]("odd")
    op = Projector(geom, vol, backend="cuda")
    ref = Projector(geom, vol, backend="cpu")
    x, y = _inputs(geom, vol, seed=3, batch=2)
    monkeypatch.setattr(linop, "to_numpy", refuse)
    monkeypatch.setattr(projector, "to_numpy", refuse)
    xd = _dev(np.stack([x, x]))  # batch dimensions (2, 2)
    uploads = fake_cupy.uploads
    fwd = op(xd)
    assert isinstance(fwd, FakeDeviceArray) and fwd.shape == (2, 2, *geom.proj_shape)
    assert fake_cupy.uploads == uploads, "a device input was uploaded again"
    assert _rel(fwd[1], ref(x)) < AGREE_HOST
    adj = op.T(_dev(y))
    assert isinstance(adj, FakeDeviceArray) and _rel(adj, ref.T(y)) < AGREE_HOST
    assert isinstance(op.adjoint(_dev(y)), FakeDeviceArray)
    bp = op.backproject(_dev(y), weighting="fdk")
    assert isinstance(bp, FakeDeviceArray)
    assert _rel(bp, ref.backproject(y, weighting="fdk")) < AGREE_HOST
    out64 = op(_dev(x.astype(np.float64)))
    assert isinstance(out64, FakeDeviceArray) and out64.dtype == np.float64
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="1 NaN"):
        op(_dev(bad))
    with pytest.raises(ValueError, match="expected shape"):
        op(_dev(y))
    typed = Projector(geom, vol, backend="cuda", dtype=np.float64)
    with pytest.raises(TypeError, match="float64"):
        typed(_dev(x))


@needs_host
def test_fake_cupy_errors(fake_cupy: FakeCupy) -> None:
    geom, vol = CASES["ParallelBeam2D"]("odd")
    with pytest.raises(DeviceError, match="device"):
        Projector(geom, vol, backend="cuda", device=3)
    with pytest.raises(ValueError, match="mode"):
        Projector(geom, vol, backend="cuda", mode="quick")
    with pytest.raises(ValueError, match="max_bytes"):
        Projector(geom, vol, backend="cuda", max_bytes=0)
    with pytest.raises(ValueError, match="step"):
        Projector(geom, vol, backend="cuda", step=-1.0)
    with pytest.raises(TypeError, match="options"):
        Projector(geom, vol, backend="cuda", colour="red")
    # the CPU backend refuses device arrays instead of copying them silently
    cpu = Projector(geom, vol, backend="cpu")
    with pytest.raises(DeviceError, match="CuPy"):
        cpu(_dev(np.zeros(vol.shape, np.float32)))


def test_the_cpu_backend_keeps_the_numpy_path() -> None:
    geom, vol = CASES["ParallelBeam2D"]("odd")
    op = Projector(geom, vol, backend="cpu")
    assert not op._is_device_input(np.zeros(vol.shape))
    assert not op.T._is_device_input(np.zeros(geom.proj_shape))


# ------------------------------------------------------------------ GPU

gpu = pytest.mark.gpu


def _cp() -> Any:
    return pytest.importorskip("cupy")


@gpu
@pytest.mark.parametrize("name", list(CASES))
def test_gpu_matched_agrees_with_cpu(name: str) -> None:
    cp = _cp()
    geom, vol = CASES[name]("odd")
    ref = Projector(geom, vol, backend="cpu")
    op = Projector(geom, vol, backend="cuda")
    x, y = _inputs(geom, vol, seed=11)
    assert _rel(op(x), ref(x)) < AGREE_GPU
    assert _rel(op.T(y), ref.T(y)) < AGREE_GPU
    assert _rel(cp.asnumpy(op(cp.asarray(x))), ref(x)) < AGREE_GPU
    for w in ("none", "fdk"):
        assert _rel(op.backproject(y, weighting=w), ref.backproject(y, weighting=w)) < AGREE_GPU


@gpu
@pytest.mark.parametrize("name", list(CASES))
def test_gpu_dot_test_float32(name: str) -> None:
    _cp()
    geom, vol = CASES[name]("even")
    op = Projector(geom, vol, backend="cuda")
    x, y = _inputs(geom, vol, seed=12)
    lhs = float(np.vdot(op(x).astype(np.float64), y.astype(np.float64)))
    rhs = float(np.vdot(x.astype(np.float64), op.T(y).astype(np.float64)))
    err = abs(lhs - rhs) / abs(lhs)
    assert err < DOT, f"{name}: dot-test error {err:.2e}"


@gpu
@pytest.mark.parametrize("name", list(CASES))
def test_gpu_fast_forward_is_close_to_matched(name: str) -> None:
    _cp()
    geom, vol = CASES[name]("even")
    fast = Projector(geom, vol, backend="cuda", mode="fast")
    matched = Projector(geom, vol, backend="cuda")
    x = _smooth(vol, seed=13)
    for b in range(2):
        err = _rel(fast(x[b]), matched(x[b]))
        assert err < FAST, f"{name} item {b}: fast differs from matched by {err:.2e}"


@gpu
@pytest.mark.parametrize("name", ["FanBeam2D-flat", "ConeBeam3D", "ConeBeamVec", "ParallelBeam3D"])
@pytest.mark.parametrize("mode", ["matched", "fast"])
def test_gpu_slabs_equal_unsplit(name: str, mode: str) -> None:
    cp = _cp()
    geom, vol = CASES[name]("odd")
    whole = Projector(geom, vol, backend="cuda", mode=mode)
    x, y = _inputs(geom, vol, seed=14, batch=3)
    split = Projector(
        geom, vol, backend="cuda", mode=mode, max_bytes=_small_budget(geom, vol, mode)
    )
    assert split.backend.plan(Operation.FORWARD, 3, input_on_device=False).n_items > 1  # type: ignore[attr-defined]
    # atomics make the GPU summation order vary: agreement to float32 rounding
    assert _rel(split(x), whole(x)) < 1e-5
    assert _rel(split.T(y), whole.T(y)) < 1e-5
    bp_split = split.backproject(cp.asarray(y), weighting="fdk")
    assert isinstance(bp_split, cp.ndarray)
    assert _rel(cp.asnumpy(bp_split), whole.backproject(y, weighting="fdk")) < 1e-5


@gpu
def test_gpu_torch_tensors_stay_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    _cp()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    from medrecon import linop
    from medrecon.projectors import projector

    original = linop.to_numpy

    def refuse(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_cuda:
            raise AssertionError("to_numpy was called on a CUDA tensor")
        return original(x)

    geom, vol = CASES["ConeBeam3D"]("odd")
    op = Projector(geom, vol, backend="cuda")
    ref = Projector(geom, vol, backend="cpu")
    x, y = _inputs(geom, vol, seed=15)
    xt = torch.from_numpy(x).cuda()
    with op.backend.exchange(xt) as (arr, _wrap):  # type: ignore[attr-defined]
        assert arr.data.ptr == xt.data_ptr(), "DLPack made a copy"
    monkeypatch.setattr(linop, "to_numpy", refuse)
    monkeypatch.setattr(projector, "to_numpy", refuse)
    out = op(xt)
    assert isinstance(out, torch.Tensor) and out.device == xt.device
    assert out.shape == (2, *geom.proj_shape) and out.dtype == torch.float32
    back = op.T(torch.from_numpy(y).cuda())
    assert back.device == xt.device
    bp = op.backproject(torch.from_numpy(y).cuda(), weighting="fdk")
    assert bp.device == xt.device
    out64 = op(xt.double())
    assert out64.dtype == torch.float64 and out64.device == xt.device
    assert _rel(out.cpu().numpy(), ref(x)) < AGREE_GPU
    assert _rel(back.cpu().numpy(), ref.T(y)) < AGREE_GPU


@gpu
@pytest.mark.parametrize("name", ["FanBeam2D-flat", "ConeBeam3D"])
def test_gpu_autograd_on_cuda_tensors(name: str) -> None:
    """Gradient of 1/2 ||A x - y||^2 through the bridge equals A^T (A x - y), on the device.

    The backend computes in float32 (float64 tensors too), so ``torch.autograd.gradcheck``'s
    float64 finite differences with eps 1e-6 cannot pass; instead: (1) the autograd gradient
    equals the adjoint applied to the residual (float32 tolerance); (2) the loss is quadratic,
    so its central difference along a direction is exact for any step: with a large step it
    matches the directional derivative to float32 rounding; (3) a second backward (gradient of
    the gradient) goes through the adjoint's adjoint.
    """
    _cp()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    geom, vol = CASES[name]("odd")
    op = Projector(geom, vol, backend="cuda")
    x_np, y_np = _inputs(geom, vol, seed=16, batch=1)
    x = torch.from_numpy(x_np).cuda().requires_grad_(True)
    y = torch.from_numpy(y_np).cuda()
    loss = 0.5 * ((op(x) - y) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, x, create_graph=True)
    assert grad.device == x.device
    expected = Projector(geom, vol).T(Projector(geom, vol)(x_np) - y_np)
    assert _rel(grad.detach().cpu().numpy(), expected) < AGREE_GPU

    def f(t: Any) -> float:
        with torch.no_grad():
            return float(0.5 * ((op(t) - y).double() ** 2).sum())

    v = torch.from_numpy(np.random.default_rng(17).standard_normal(x_np.shape).astype(np.float32))
    v = v.cuda()
    h = 0.5
    fd = (f(x.detach() + h * v) - f(x.detach() - h * v)) / (2 * h)
    exact = float((grad.detach().double() * v.double()).sum())
    assert abs(fd - exact) <= 1e-3 * abs(exact)
    # grad of <grad, v> with respect to x is A^T A v
    (hv,) = torch.autograd.grad((grad * v).sum(), x)
    ref = Projector(geom, vol)
    assert _rel(hv.cpu().numpy(), ref.T(ref(v.cpu().numpy()))) < AGREE_GPU


def test_every_cuda_test_module_helper_is_importable() -> None:
    """The GPU tests reuse the host-build tests' cases: the import must keep working."""
    module = importlib.import_module("test_projector_cuda_host")
    assert set(CASES) == set(module.CASES)
    assert ctypes.sizeof(ctypes.c_int) == 4  # the ABI's int
