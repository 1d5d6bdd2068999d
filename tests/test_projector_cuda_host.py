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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from medrecon import (
    ConeBeam3D,
    ConeBeamVec,
    FanBeam2D,
    FanBeamVec,
    ParallelBeam2D,
    ParallelBeam3D,
    ParallelVec,
    Projector,
    VolumeGeometry,
)
from medrecon.errors import BackendUnavailableError
from medrecon.projectors.cuda import _host, _sources

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None, reason="the host build of the kernels needs g++"
)

AGREE = 1e-5  # host build vs numba, relative L2, float32
DOT = 1e-4  # dot test, float32
FAST = 1e-2  # fast vs matched forward on smooth images

# ---------------------------------------------------------------------------- geometries


def _vol2(p: str) -> VolumeGeometry:
    shape = (27, 33) if p == "odd" else (32, 26)
    return VolumeGeometry(shape=shape, voxel_size=(0.9, 1.2), center=(1.5, -2.0))


def _vol3(p: str) -> VolumeGeometry:
    shape = (13, 15, 17) if p == "odd" else (12, 16, 14)
    return VolumeGeometry(shape=shape, voxel_size=(1.1, 0.9, 1.3), center=(0.7, -1.2, 2.1))


def _n_det(p: str) -> int:
    return 39 if p == "odd" else 40


def _det3(p: str) -> tuple[int, int]:
    return (15, 19) if p == "odd" else (16, 20)


def _angles(n: int, span: float = 2 * np.pi) -> np.ndarray:
    return np.linspace(0.1, 0.1 + span, n, endpoint=False)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _par2d(p: str) -> tuple[Any, VolumeGeometry]:
    g = ParallelBeam2D(angles=_angles(9, np.pi), n_det=_n_det(p), det_spacing=1.1, det_offset_u=0.6)
    return g, _vol2(p)


def _fan2d(detector: str) -> Callable[[str], tuple[Any, VolumeGeometry]]:
    def make(p: str) -> tuple[Any, VolumeGeometry]:
        g = FanBeam2D(
            angles=_angles(10),
            n_det=_n_det(p),
            det_spacing=1.6,
            src_iso=50.0,
            iso_det=30.0,
            detector=detector,
            det_offset_u=1.3,
        )
        return g, _vol2(p)

    return make


def _parvec2d(p: str) -> tuple[Any, VolumeGeometry]:
    rng = np.random.default_rng(11)
    n = 8
    rays = rng.standard_normal((n, 2))
    perp = np.stack([rays[:, 1], -rays[:, 0]], axis=1)
    u = 1.2 * _unit(perp + 0.3 * rays) * rng.uniform(0.8, 1.2, (n, 1))
    g = ParallelVec(
        ray_dirs=rays, det_centers=rng.normal(0.0, 2.0, (n, 2)), det_u=u, det_shape=(_n_det(p),)
    )
    return g, _vol2(p)


def _fanvec(detector: str) -> Callable[[str], tuple[Any, VolumeGeometry]]:
    def make(p: str) -> tuple[Any, VolumeGeometry]:
        rng = np.random.default_rng(12)
        n = 8
        phi = rng.uniform(0, 2 * np.pi, n)
        direction = np.stack([np.cos(phi), np.sin(phi)], axis=1)
        sources = -rng.uniform(45, 60, (n, 1)) * direction + rng.normal(0, 1.5, (n, 2))
        centers = rng.uniform(25, 35, (n, 1)) * direction + rng.normal(0, 1.5, (n, 2))
        perp = np.stack([direction[:, 1], -direction[:, 0]], axis=1)
        u = 1.7 * _unit(perp + 0.2 * rng.standard_normal((n, 2)))  # tilted detector line
        g = FanBeamVec(
            sources=sources, det_centers=centers, det_u=u, n_det=_n_det(p), detector=detector
        )
        return g, _vol2(p)

    return make


def _par3d(p: str) -> tuple[Any, VolumeGeometry]:
    g = ParallelBeam3D(
        angles=_angles(5, np.pi),
        det_shape=_det3(p),
        det_spacing=(1.2, 1.0),
        det_offset_u=0.7,
        det_offset_v=-0.4,
    )
    return g, _vol3(p)


def _cone3d(p: str) -> tuple[Any, VolumeGeometry]:
    g = ConeBeam3D(
        angles=_angles(6),
        det_shape=_det3(p),
        det_spacing=(1.6, 1.8),
        src_iso=45.0,
        iso_det=30.0,
        det_offset_u=1.5,
        det_offset_v=-2.0,
    )
    return g, _vol3(p)


def _cone3d_wide(p: str) -> tuple[Any, VolumeGeometry]:
    """Circular cone whose outer rows are steep enough for z to dominate."""
    g = ConeBeam3D(
        angles=_angles(5),
        det_shape=(_det3(p)[0] + 4, _det3(p)[1]),
        det_spacing=(5.0, 2.0),
        src_iso=16.0,
        iso_det=12.0,
    )
    return g, _vol3(p)


def _parvec3d(p: str) -> tuple[Any, VolumeGeometry]:
    rng = np.random.default_rng(13)
    n = 6
    rays = _unit(rng.standard_normal((n, 3)))  # every axis dominates some rays
    a = _unit(np.cross(rays, rng.standard_normal((n, 3))))
    b = np.cross(rays, a)
    g = ParallelVec(
        ray_dirs=rays,
        det_centers=rng.normal(0, 1.0, (n, 3)),
        det_u=1.3 * a,
        det_v=1.1 * b,
        det_shape=_det3(p),
    )
    return g, _vol3(p)


def _conevec(p: str) -> tuple[Any, VolumeGeometry]:
    """Cone with per-view jitter and a tilted, non-orthogonal detector."""
    rng = np.random.default_rng(14)
    n = 6
    theta = _angles(n)
    s, c = np.sin(theta), np.cos(theta)
    zeros = np.zeros(n)
    sources = 45.0 * np.stack([zeros, -c, s], 1) + np.stack([rng.normal(0, 2, n), zeros, zeros], 1)
    centers = 30.0 * np.stack([zeros, c, -s], 1)
    u = _unit(np.stack([zeros, s, c], 1) + 0.15 * rng.standard_normal((n, 3)))
    v = _unit(np.stack([np.ones(n), zeros, zeros], 1) + 0.3 * u)
    g = ConeBeamVec(
        sources=sources, det_centers=centers, det_u=1.7 * u, det_v=1.5 * v, det_shape=_det3(p)
    )
    return g, _vol3(p)


CASES: dict[str, Callable[[str], tuple[Any, VolumeGeometry]]] = {
    "ParallelBeam2D": _par2d,
    "FanBeam2D-flat": _fan2d("flat"),
    "FanBeam2D-arc": _fan2d("arc"),
    "ParallelVec2D": _parvec2d,
    "FanBeamVec-flat": _fanvec("flat"),
    "FanBeamVec-arc": _fanvec("arc"),
    "ParallelBeam3D": _par3d,
    "ConeBeam3D": _cone3d,
    "ConeBeam3D-wide": _cone3d_wide,
    "ParallelVec3D": _parvec3d,
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


def test_a_wrong_ray_weight_fails_the_agreement_test(tmp_path: Path) -> None:
    """1 % too much weight on x-dominated 2D rays: numba agreement fails, the dot test too."""
    src = _broken_copy(
        tmp_path,
        "joseph2d.cu",
        "p.weight = sx * length / fabs(r.dx);",
        "p.weight = 1.01 * sx * length / fabs(r.dx);",
    )
    broken = _host.load(src, tmp_path / "cache")
    geom, vol = CASES["FanBeam2D-flat"]("odd")
    ops = HostOps(broken, geom, vol)
    err_f, err_a = _matched_errors(ops, Projector(geom, vol), seed=1)
    assert err_f > 100 * AGREE, f"a broken forward passed the agreement test ({err_f:.2e})"
    assert err_a > 100 * AGREE, f"a broken adjoint passed the agreement test ({err_a:.2e})"


def test_a_wrong_scatter_weight_fails_the_dot_test(tmp_path: Path) -> None:
    """The transpose splits each sample with the wrong weights: the dot test must catch it."""
    src = _broken_copy(
        tmp_path,
        "common.cuh",
        "mr_atomic_add(base + o + s2, g0 * f2);",
        "mr_atomic_add(base + o + s2, g0 * (1.0f - f2));",
    )
    broken = _host.load(src, tmp_path / "cache")
    geom, vol = CASES["ConeBeam3D"]("odd")
    ops = HostOps(broken, geom, vol)
    x, y = _inputs(geom, vol, seed=3)
    err = _dot_error(ops, x, y)
    assert err > 5 * DOT, f"a broken transpose passed the dot test ({err:.2e})"
    _, err_a = _matched_errors(ops, Projector(geom, vol), seed=1)
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
