"""Vector geometries: validation of shapes, finiteness and degenerate configurations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from medrecon.errors import GeometryError
from medrecon.geometry import ConeBeamVec, DetectorShape, FanBeamVec, ParallelVec

N = 4


def _rand(rng: np.random.Generator, width: int, scale: float = 1.0) -> np.ndarray:
    return scale * rng.standard_normal((N, width))


def par2(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "ray_dirs": np.tile([1.0, 0.2], (N, 1)),
        "det_centers": _rand(rng, 2),
        "det_u": np.tile([0.1, 1.0], (N, 1)),
        "det_shape": (5,),
    }


def par3(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "ray_dirs": np.tile([0.1, 1.0, 0.0], (N, 1)),
        "det_centers": _rand(rng, 3),
        "det_u": np.tile([0.0, 0.0, 1.0], (N, 1)),
        "det_v": np.tile([1.0, 0.0, 0.1], (N, 1)),
        "det_shape": (3, 5),
    }


def fan2(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "sources": np.tile([-100.0, 0.0], (N, 1)) + _rand(rng, 2),
        "det_centers": np.tile([50.0, 0.0], (N, 1)) + _rand(rng, 2),
        "det_u": np.tile([0.0, 1.0], (N, 1)),
        "n_det": 7,
    }


def cone3(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "sources": np.tile([0.0, -100.0, 0.0], (N, 1)) + _rand(rng, 3),
        "det_centers": np.tile([0.0, 50.0, 0.0], (N, 1)) + _rand(rng, 3),
        "det_u": np.tile([0.0, 0.0, 1.0], (N, 1)),
        "det_v": np.tile([1.0, 0.0, 0.0], (N, 1)),
        "det_shape": (3, 5),
    }


KINDS: dict[str, tuple[type[Any], Callable[[np.random.Generator], dict[str, Any]]]]
KINDS = {"par2": (ParallelVec, par2), "par3": (ParallelVec, par3)}
KINDS |= {"fan2": (FanBeamVec, fan2), "cone3": (ConeBeamVec, cone3)}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_valid_construction_copies_and_freezes(kind: str) -> None:
    cls, make = KINDS[kind]
    kwargs = make(np.random.default_rng(1))
    originals = {k: np.copy(v) for k, v in kwargs.items() if isinstance(v, np.ndarray)}
    g = cls(**kwargs)
    assert g.n_views == N and g.to_vectors() is g
    assert g.proj_shape == (N, *g.det_shape)
    for name, arr in originals.items():
        stored = getattr(g, name)
        np.testing.assert_array_equal(stored, arr)
        assert stored.dtype == np.float64 and not stored.flags.writeable
        assert not np.shares_memory(stored, kwargs[name])
        kwargs[name][0, 0] += 1.0  # the caller's array stays writeable and independent
        assert stored[0, 0] == arr[0, 0]
    assert cls(**make(np.random.default_rng(1))) == g


def test_parallel_ndim_from_width_and_det_v_rules() -> None:
    rng = np.random.default_rng(2)
    assert ParallelVec(**par2(rng)).ndim == 2
    assert ParallelVec(**par3(rng)).ndim == 3
    assert ParallelVec(**{**par2(rng), "det_shape": 5}).det_shape == (5,)
    with pytest.raises(GeometryError, match="det_v: expected None"):
        ParallelVec(**par2(rng), det_v=np.ones((N, 2)))
    kwargs = par3(rng)
    del kwargs["det_v"]
    with pytest.raises(GeometryError, match="det_v: expected an array of shape"):
        ParallelVec(**kwargs)


def test_fan_detector_shape() -> None:
    kw = fan2(np.random.default_rng(3))
    assert FanBeamVec(**kw).detector is DetectorShape.FLAT
    assert FanBeamVec(**kw, detector="arc").detector is DetectorShape.ARC
    assert FanBeamVec(**kw) != FanBeamVec(**kw, detector="arc")
    with pytest.raises(GeometryError, match="detector"):
        FanBeamVec(**kw, detector="round")


def _with(kwargs: dict[str, Any], name: str, view: int, value: Any) -> dict[str, Any]:
    arr = np.array(kwargs[name], dtype=float)
    arr[view] = value
    return {**kwargs, name: arr}


def _cases() -> list[tuple[str, Any, str]]:
    rng = np.random.default_rng(4)
    p2, p3, f2, c3 = par2(rng), par3(rng), fan2(rng), cone3(rng)
    return [
        # shapes
        ("par2", {**p2, "ray_dirs": np.ones((N, 4))}, "ray_dirs: expected shape"),
        ("par2", {**p2, "ray_dirs": np.ones(2)}, "ray_dirs: expected shape"),
        ("par2", {**p2, "det_centers": np.ones((N + 1, 2))}, "det_centers: expected shape"),
        ("par2", {**p2, "det_u": np.ones((N, 3))}, "det_u: expected shape"),
        ("par2", {**p2, "det_shape": (5, 2)}, "det_shape"),
        ("par3", {**p3, "det_shape": (5,)}, "det_shape"),
        ("par3", {**p3, "det_v": np.ones((N, 2))}, "det_v: expected shape"),
        ("par2", {**p2, "ray_dirs": np.ones((0, 2))}, "ray_dirs: expected at least one view"),
        ("fan2", {**f2, "sources": np.ones((N, 3))}, "sources: expected shape"),
        ("fan2", {**f2, "n_det": 0}, "n_det"),
        ("cone3", {**c3, "det_v": np.ones((N - 1, 3))}, "det_v: expected shape"),
        ("cone3", {**c3, "det_shape": (3, 0)}, "det_shape[1]"),
        ("cone3", {**c3, "sources": "abc"}, "sources"),
        # non-finite
        ("par2", _with(p2, "det_centers", 2, np.nan), "det_centers: expected finite"),
        ("par3", _with(p3, "det_v", 1, np.inf), "det_v: expected finite"),
        ("fan2", _with(f2, "sources", 0, np.nan), "sources: expected finite"),
        ("cone3", _with(c3, "det_u", 3, -np.inf), "det_u: expected finite"),
        # zero-length vectors
        ("par2", _with(p2, "ray_dirs", 1, 0.0), "ray_dirs: expected non-zero"),
        ("par2", _with(p2, "det_u", 1, 0.0), "det_u: expected non-zero"),
        ("par3", _with(p3, "det_v", 0, 0.0), "det_v: expected non-zero"),
        ("fan2", _with(f2, "det_u", 2, 0.0), "det_u: expected non-zero"),
        ("cone3", _with(c3, "det_v", 2, 0.0), "det_v: expected non-zero"),
        # degenerate configurations
        ("par3", _with(p3, "det_v", 1, [0.0, 0.0, 2.0]), "non-parallel detector axes"),
        ("cone3", _with(c3, "det_v", 1, [0.0, 0.0, -3.0]), "non-parallel detector axes"),
        ("par2", _with(p2, "ray_dirs", 3, [0.2, 2.0]), "parallel"),
        ("par3", _with(p3, "ray_dirs", 3, [1.0, 0.0, 1.0]), "parallel"),
        ("fan2", _with(f2, "sources", 1, f2["det_centers"][1]), "source-detector distance"),
        ("fan2", _with(f2, "det_u", 1, f2["det_centers"][1] - f2["sources"][1]), "distance of 0"),
        ("cone3", _with(c3, "sources", 0, c3["det_centers"][0] + [5.0, 0, 3.0]), "distance of 0"),
    ]


@pytest.mark.parametrize(("kind", "kwargs", "fragment"), _cases())
def test_invalid_vectors_raise_geometry_error(kind: str, kwargs: Any, fragment: str) -> None:
    cls, _ = KINDS[kind]
    with pytest.raises(GeometryError) as info:
        cls(**kwargs)
    message = str(info.value)
    assert fragment in message
    assert "expected" in message and "got" in message


def test_degenerate_view_is_named_in_message() -> None:
    kw = cone3(np.random.default_rng(5))
    kw = _with(kw, "sources", 2, kw["det_centers"][2] + [1.0, 0.0, -1.0])
    with pytest.raises(GeometryError, match=r"views \[2\]"):
        ConeBeamVec(**kw)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_slicing_vector_geometries(kind: str) -> None:
    cls, make = KINDS[kind]
    g = cls(**make(np.random.default_rng(6)))
    sub = g[[3, 1]]
    assert type(sub) is cls and sub.n_views == 2
    for name in g._per_view:
        full = getattr(g, name)
        if full is not None:
            np.testing.assert_array_equal(getattr(sub, name), full[[3, 1]])
    assert g[1:3] == g[np.array([False, True, True, False])]
