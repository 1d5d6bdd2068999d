"""The host build of ``kernels/`` (the CUDA kernels' per-thread bodies, run on the CPU).

Built with the machine's C++ compiler through ``medrecon.projectors.cuda._host``, it must:

* match the numba backend (``backend="cpu"``) within 1e-5 relative L2 in float32 on every
  geometry kind, for the Joseph forward, its transpose and the voxel-driven backprojection
  (weighting none and fdk), with odd and even sizes, anisotropic off-centre volumes and a
  batch of two;
* pass the dot test (``< 1e-4`` in float32) with its own forward/transpose pair;
* give a ``fast`` forward within 1 % of the matched forward on smooth images;
* split into z-slabs (a slab is a volume with its own origin) without changing the result;
* fail these checks when a kernel is deliberately broken (a modified copy of ``kernels/``),
  so the tests can fail; and report a broken build as ``BackendUnavailableError``.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from _geometries import Case, CaseFactory, angles, unit
from medrecon import ConeBeamVec, FanBeamVec, ParallelVec, Projector, VolumeGeometry
from medrecon.errors import BackendUnavailableError
from medrecon.projectors.cuda import _host, _sources

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None, reason="the host build of the kernels needs g++"
)

AGREE = 1e-5  # host build vs numba, relative L2, float32
DOT = 1e-4  # dot test, float32
FAST = 1e-2  # fast vs matched forward on smooth images

# ---------------------------------------------------------------------------- geometries

KIT = CaseFactory(
    vol2={"odd": (27, 33), "even": (32, 26)},
    vol3={"odd": (13, 15, 17), "even": (12, 16, 14)},
    n_det={"odd": 39, "even": 40},
    det3={"odd": (15, 19), "even": (16, 20)},
)


def _conevec(p: str) -> tuple[Any, VolumeGeometry]:
    """Cone with per-view jitter and a tilted, non-orthogonal detector."""
    rng = np.random.default_rng(14)
    n = 6
    theta = angles(n)
    s, c = np.sin(theta), np.cos(theta)
    zeros = np.zeros(n)
    sources = 45.0 * np.stack([zeros, -c, s], 1) + np.stack([rng.normal(0, 2, n), zeros, zeros], 1)
    centers = 30.0 * np.stack([zeros, c, -s], 1)
    u = unit(np.stack([zeros, s, c], 1) + 0.15 * rng.standard_normal((n, 3)))
    v = unit(np.stack([np.ones(n), zeros, zeros], 1) + 0.3 * u)
    g = ConeBeamVec(
        sources=sources, det_centers=centers, det_u=1.7 * u, det_v=1.5 * v, det_shape=KIT.det3[p]
    )
    return g, KIT.volume3(p)


FAN: dict[str, Any] = {"n_views": 10, "det_spacing": 1.6, "src_iso": 50.0, "iso_det": 30.0}
FAN_VEC: dict[str, Any] = {"n_views": 8, "src_dist": (45, 60), "det_dist": (25, 35), "pitch": 1.7}
CASES: dict[str, Case] = {
    "ParallelBeam2D": KIT.parallel_2d(n_views=9),
    "FanBeam2D-flat": KIT.fan_2d("flat", **FAN),
    "FanBeam2D-arc": KIT.fan_2d("arc", **FAN),
    "ParallelVec2D": KIT.parallel_vec_2d(n_views=8),
    "FanBeamVec-flat": KIT.fan_vec("flat", **FAN_VEC),
    "FanBeamVec-arc": KIT.fan_vec("arc", **FAN_VEC),
    "ParallelBeam3D": KIT.parallel_3d(n_views=5),
    "ConeBeam3D": KIT.cone_3d(n_views=6, src_iso=45.0),
    "ConeBeam3D-wide": KIT.cone_3d_wide(n_views=5, row_spacing=5.0, src_iso=16.0, iso_det=12.0),
    "ParallelVec3D": KIT.parallel_vec_3d(n_views=6),
    "ConeBeamVec": _conevec,
}


def _host_args(geom: Any, vol: VolumeGeometry) -> tuple[int, tuple[np.ndarray, ...], Any, Any]:
    """``(mode, vectors, origin, spacing)`` as the numba backend receives them."""
    v = geom.to_vectors()
    if isinstance(v, ParallelVec):
        mode = 0
        vecs = [v.ray_dirs, v.det_centers, v.det_u]
    elif isinstance(v, FanBeamVec):
        mode = 1 if str(getattr(v.detector, "value", v.detector)) == "flat" else 2
        vecs = [v.sources, v.det_centers, v.det_u]
    else:
        mode = 1
        vecs = [v.sources, v.det_centers, v.det_u]
    if vol.ndim == 3:
        vecs.append(v.det_v)
    return mode, tuple(vecs), np.asarray(vol.origin), np.asarray(vol.voxel_size)


class HostOps:
    """The host build's functions for one geometry, with the numba backend's shapes."""

    def __init__(self, kernels: _host.HostKernels, geom: Any, vol: VolumeGeometry) -> None:
        self.k = kernels
        self.geom = geom
        self.vol = vol
        self.args = _host_args(geom, vol)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.vol.ndim == 2:
            return self.k.forward_2d(x, *self.args, self.geom.proj_shape[-1])
        return self.k.forward_3d(x, *self.args, self.geom.proj_shape[1:])

    def fast_forward(self, x: np.ndarray) -> np.ndarray:
        if self.vol.ndim == 2:
            return self.k.fast_forward_2d(x, *self.args, self.geom.proj_shape[-1])
        return self.k.fast_forward_3d(x, *self.args, self.geom.proj_shape[1:])

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        if self.vol.ndim == 2:
            return self.k.adjoint_2d(y, *self.args, self.vol.shape)
        return self.k.adjoint_3d(y, *self.args, self.vol.shape)

    def backproject(self, y: np.ndarray, weighting: int) -> np.ndarray:
        if self.vol.ndim == 2:
            return self.k.backproject_2d(y, *self.args, self.vol.shape, weighting)
        return self.k.backproject_3d(y, *self.args, self.vol.shape, weighting)


# ------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> _host.HostKernels:
    """The host library built from the repository's kernels/, in a private cache."""
    return _host.load(cache=tmp_path_factory.mktemp("kernel-cache"))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a64 - b64) / np.linalg.norm(b64))


def _inputs(geom: Any, vol: VolumeGeometry, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((2, *vol.shape)).astype(np.float32)
    y = rng.random((2, *geom.proj_shape)).astype(np.float32)
    return x, y


def _dot_error(ops: HostOps, x: np.ndarray, y: np.ndarray) -> float:
    lhs = float(np.vdot(ops.forward(x).astype(np.float64), y.astype(np.float64)))
    rhs = float(np.vdot(x.astype(np.float64), ops.adjoint(y).astype(np.float64)))
    return abs(lhs - rhs) / abs(lhs)


def _matched_errors(ops: HostOps, ref: Projector, seed: int) -> tuple[float, float]:
    x, y = _inputs(ops.geom, ops.vol, seed)
    fwd = ref.forward(x)
    assert float(np.abs(fwd).max()) > 0, "no ray hits the volume: the case tests nothing"
    return _rel(ops.forward(x), fwd), _rel(ops.adjoint(y), ref.adjoint(y))


def _smooth(vol: VolumeGeometry, seed: int) -> np.ndarray:
    """A batch of two smooth images: a blurred random field and an off-centre Gaussian blob."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.random(vol.shape), sigma=2.0, mode="constant")
    axes = [np.linspace(-1.0, 1.0, n) for n in vol.shape]
    grids = np.meshgrid(*axes, indexing="ij")
    blob = np.exp(-sum((g - 0.2) ** 2 for g in grids) / 0.3)
    return np.stack([field, blob]).astype(np.float32)


# --------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("parity", ["odd", "even"])
@pytest.mark.parametrize("name", list(CASES))
def test_matched_pair_agrees_with_numba(kernels: _host.HostKernels, name: str, parity: str) -> None:
    geom, vol = CASES[name](parity)
    ops = HostOps(kernels, geom, vol)
    ref = Projector(geom, vol, backend="cpu")
    err_f, err_a = _matched_errors(ops, ref, seed=1)
    assert err_f < AGREE, f"{name} {parity}: forward differs from numba by {err_f:.2e}"
    assert err_a < AGREE, f"{name} {parity}: adjoint differs from numba by {err_a:.2e}"


@pytest.mark.parametrize("parity", ["odd", "even"])
@pytest.mark.parametrize("name", list(CASES))
def test_backprojection_agrees_with_numba(
    kernels: _host.HostKernels, name: str, parity: str
) -> None:
    geom, vol = CASES[name](parity)
    ops = HostOps(kernels, geom, vol)
    ref = Projector(geom, vol, backend="cpu")
    _, y = _inputs(geom, vol, seed=2)
    for weighting, w in (("none", 0), ("fdk", 1)):
        expected = ref.backproject(y, weighting=weighting)
        assert float(np.abs(expected).max()) > 0
        err = _rel(ops.backproject(y, w), expected)
        assert err < AGREE, f"{name} {parity} {weighting}: backprojection differs by {err:.2e}"


@pytest.mark.parametrize("name", list(CASES))
def test_dot_test_of_the_matched_pair(kernels: _host.HostKernels, name: str) -> None:
    geom, vol = CASES[name]("odd")
    x, y = _inputs(geom, vol, seed=3)
    err = _dot_error(HostOps(kernels, geom, vol), x, y)
    assert err < DOT, f"{name}: dot-test error {err:.2e}"


@pytest.mark.parametrize("name", list(CASES))
def test_fast_forward_is_close_to_matched_on_smooth_images(
    kernels: _host.HostKernels, name: str
) -> None:
    geom, vol = CASES[name]("even")
    ops = HostOps(kernels, geom, vol)
    x = _smooth(vol, seed=4)
    matched = ops.forward(x)
    for b in range(2):
        err = _rel(ops.fast_forward(x[b : b + 1]), matched[b : b + 1])
        assert err < FAST, f"{name} item {b}: fast forward differs from matched by {err:.2e}"


def test_batch_items_are_independent(kernels: _host.HostKernels) -> None:
    geom, vol = CASES["ConeBeamVec"]("odd")
    ops = HostOps(kernels, geom, vol)
    x, y = _inputs(geom, vol, seed=5)
    for fn, data in ((ops.forward, x), (ops.adjoint, y), (ops.fast_forward, x)):
        both = fn(data)
        for b in range(2):
            np.testing.assert_array_equal(both[b], fn(data[b : b + 1])[0])


@pytest.mark.parametrize("name", ["ConeBeam3D", "ParallelVec3D", "ConeBeam3D-wide"])
def test_z_slabs_add_up_to_the_full_volume(kernels: _host.HostKernels, name: str) -> None:
    """A z-slab is a volume with its own origin: forwards add up, transposes are slabs."""
    geom, vol = CASES[name]("odd")
    mode, vecs, origin, spacing = _host_args(geom, vol)
    x, y = _inputs(geom, vol, seed=6)
    det = geom.proj_shape[1:]
    full_f = kernels.forward_3d(x, mode, vecs, origin, spacing, det)
    full_a = kernels.adjoint_3d(y, mode, vecs, origin, spacing, vol.shape)
    full_b = kernels.backproject_3d(y, mode, vecs, origin, spacing, vol.shape, 1)
    total = np.zeros_like(full_f)
    for z0, z1 in ((0, 5), (5, vol.shape[0])):
        org = origin + np.array([z0 * spacing[0], 0.0, 0.0])
        shape = (z1 - z0, *vol.shape[1:])
        total += kernels.forward_3d(x[:, z0:z1], mode, vecs, org, spacing, det)
        adj = kernels.adjoint_3d(y, mode, vecs, org, spacing, shape)
        assert _rel(adj, full_a[:, z0:z1]) < 1e-6
        bp = kernels.backproject_3d(y, mode, vecs, org, spacing, shape, 1)
        assert _rel(bp, full_b[:, z0:z1]) < 1e-6
    assert _rel(total, full_f) < 1e-6


# ---------------------------------------------------------------------- broken kernels


def _broken_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A copy of kernels/ whose file ``name`` has ``old`` replaced by ``new`` (exactly once)."""
    src = _sources.kernel_dir()
    dst = tmp_path / "kernels"
    dst.mkdir()
    for f in _sources.KERNEL_FILES:
        text = (src / f).read_text()
        if f == name:
            assert text.count(old) == 1, f"{old!r} is not in {name} exactly once"
            text = text.replace(old, new)
        (dst / f).write_text(text)
    return dst


def _broken_ops(tmp_path: Path, case: str, name: str, old: str, new: str) -> HostOps:
    """:class:`HostOps` of ``CASES[case]("odd")`` with a host build of a broken copy."""
    broken = _host.load(_broken_copy(tmp_path, name, old, new), tmp_path / "cache")
    geom, vol = CASES[case]("odd")
    return HostOps(broken, geom, vol)


def test_a_wrong_ray_weight_fails_the_agreement_test(tmp_path: Path) -> None:
    """1 % too much weight on x-dominated 2D rays: numba agreement fails, the dot test too."""
    ops = _broken_ops(
        tmp_path,
        "FanBeam2D-flat",
        "joseph2d.cu",
        "p.weight = sx * length / fabs(r.dx);",
        "p.weight = 1.01 * sx * length / fabs(r.dx);",
    )
    err_f, err_a = _matched_errors(ops, Projector(ops.geom, ops.vol), seed=1)
    assert err_f > 100 * AGREE, f"a broken forward passed the agreement test ({err_f:.2e})"
    assert err_a > 100 * AGREE, f"a broken adjoint passed the agreement test ({err_a:.2e})"


def test_a_wrong_scatter_weight_fails_the_dot_test(tmp_path: Path) -> None:
    """The transpose splits each sample with the wrong weights: the dot test must catch it."""
    ops = _broken_ops(
        tmp_path,
        "ConeBeam3D",
        "common.cuh",
        "mr_atomic_add(base + o + s2, g0 * f2);",
        "mr_atomic_add(base + o + s2, g0 * (1.0f - f2));",
    )
    x, y = _inputs(ops.geom, ops.vol, seed=3)
    err = _dot_error(ops, x, y)
    assert err > 5 * DOT, f"a broken transpose passed the dot test ({err:.2e})"
    _, err_a = _matched_errors(ops, Projector(ops.geom, ops.vol), seed=1)
    assert err_a > 100 * AGREE


def test_a_build_failure_raises_with_the_compiler_output(tmp_path: Path) -> None:
    src = _broken_copy(tmp_path, "backproject.cu", '#include "common.cuh"', "this is not C++;")
    with pytest.raises(BackendUnavailableError, match=r"backproject\.cu") as info:
        _host.build_library(src, tmp_path / "cache")
    assert "error" in str(info.value)


# ------------------------------------------------------------------ sources and the cache


def test_sources_are_found_read_and_hashed(tmp_path: Path) -> None:
    folder = _sources.kernel_dir()
    sources = _sources.read_sources(folder)
    assert list(sources) == list(_sources.KERNEL_FILES)
    assert all('#include "common.cuh"' in sources[f] for f in _sources.CUDA_FILES)
    for f, names in _sources.KERNELS.items():
        for kernel in names:
            assert f'extern "C" __global__ void {kernel}(' in sources[f]
    changed = dict(sources, **{"joseph2d.cu": sources["joseph2d.cu"] + "\n"})
    assert _sources.sources_hash(changed) != _sources.sources_hash(sources)
    with pytest.raises(BackendUnavailableError, match="cannot read"):
        _sources.read_sources(tmp_path)


def test_kernel_dir_honours_the_environment_and_reports_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "k"
    shutil.copytree(_sources.kernel_dir(), copy)
    monkeypatch.setenv("MEDRECON_KERNEL_DIR", str(copy))
    assert _sources.kernel_dir() == copy
    monkeypatch.setattr(_sources, "_candidates", lambda: [tmp_path / "nowhere"])
    with pytest.raises(BackendUnavailableError, match="nowhere"):
        _sources.kernel_dir()


def test_the_library_is_cached_by_content(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _host.build_library(cache=cache)
    stamp = first.stat().st_mtime_ns
    assert _host.build_library(cache=cache) == first
    assert first.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temporary leftovers


def test_the_cuda_package_imports_without_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # "import cupy" now raises ImportError
    for name in ("", "._sources", "._host"):
        monkeypatch.delitem(sys.modules, "medrecon.projectors.cuda" + name)
    for name in ("", "._sources", "._host"):
        importlib.import_module("medrecon.projectors.cuda" + name)


def test_wrapper_validates_its_inputs(kernels: _host.HostKernels) -> None:
    geom, vol = CASES["ParallelBeam2D"]("odd")
    mode, vecs, origin, spacing = _host_args(geom, vol)
    img = np.zeros((1, *vol.shape), dtype=np.float32)
    with pytest.raises(ValueError, match="one leading batch axis"):
        kernels.forward_2d(img[0], mode, vecs, origin, spacing, 39)
    with pytest.raises(ValueError, match="mode"):
        kernels.forward_2d(img, 5, vecs, origin, spacing, 39)
    with pytest.raises(ValueError, match="views"):
        kernels.adjoint_2d(np.zeros((1, 3, 39), np.float32), mode, vecs, origin, spacing, (3, 3))
    with pytest.raises(ValueError, match="weighting"):
        kernels.backproject_2d(
            np.zeros((1, 9, 39), np.float32), mode, vecs, origin, spacing, (3, 3), 2
        )
