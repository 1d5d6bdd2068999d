"""Circular geometries: to_vectors formulas, validation, immutability, equality, slicing."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from medrecon.errors import GeometryError
from medrecon.geometry import (
    ConeBeam3D,
    ConeBeamVec,
    DetectorShape,
    FanBeam2D,
    FanBeamVec,
    ParallelBeam2D,
    ParallelBeam3D,
    ParallelVec,
    ProjectionGeometry,
)

HALF_PI = np.pi / 2


def make_all(angles: Any = None) -> list[ProjectionGeometry]:
    """One geometry of every circular kind (non-trivial parameters)."""
    if angles is None:
        angles = np.linspace(0.0, 2 * np.pi, 7, endpoint=False)
    return [
        ParallelBeam2D(angles=angles, n_det=11, det_spacing=0.7, det_offset_u=0.3),
        FanBeam2D(angles=angles, n_det=9, det_spacing=1.1, src_iso=500, iso_det=300),
        FanBeam2D(
            angles=angles,
            n_det=9,
            det_spacing=1.1,
            src_iso=500,
            iso_det=300,
            detector="arc",
            det_offset_u=2.0,
        ),
        ParallelBeam3D(angles=angles, det_shape=(5, 6), det_spacing=(0.5, 0.8), det_offset_v=1.0),
        ConeBeam3D(
            angles=angles,
            det_shape=(4, 7),
            det_spacing=(1.0, 1.5),
            src_iso=600,
            iso_det=400,
            det_offset_u=-3.0,
            det_offset_v=2.0,
        ),
    ]


ALL = make_all()
IDS = [f"{type(g).__name__}-{i}" for i, g in enumerate(ALL)]


# --------------------------------------------------------------------------
# to_vectors formulas (components in array order: (y, x) / (z, y, x))
# --------------------------------------------------------------------------


def test_parallel2d_vectors_at_0_and_half_pi() -> None:
    vec = ParallelBeam2D(angles=[0.0, HALF_PI], n_det=4, det_spacing=2.0).to_vectors()
    assert isinstance(vec, ParallelVec)
    assert vec.ndim == 2 and vec.det_v is None and vec.det_shape == (4,)
    # theta = 0: rays along +y, u = +x
    np.testing.assert_allclose(vec.ray_dirs, [[1, 0], [0, -1]], atol=1e-15)
    np.testing.assert_allclose(vec.det_u, [[0, 2], [2, 0]], atol=1e-15)
    np.testing.assert_allclose(vec.det_centers, 0.0, atol=1e-15)


def test_fan2d_vectors_at_0_and_half_pi() -> None:
    g = FanBeam2D(angles=[0.0, HALF_PI], n_det=4, det_spacing=2.0, src_iso=100, iso_det=50)
    vec = g.to_vectors()
    assert isinstance(vec, FanBeamVec) and vec.detector is DetectorShape.FLAT
    # theta = 0: source at -y, detector at +y; theta = pi/2: source at +x
    np.testing.assert_allclose(vec.sources, [[-100, 0], [0, 100]], atol=1e-12)
    np.testing.assert_allclose(vec.det_centers, [[50, 0], [0, -50]], atol=1e-12)
    np.testing.assert_allclose(vec.det_u, [[0, 2], [2, 0]], atol=1e-15)
    assert g.src_det == 150.0


def test_parallel3d_vectors_at_0_and_half_pi() -> None:
    g = ParallelBeam3D(angles=[0.0, HALF_PI], det_shape=(3, 4), det_spacing=(0.5, 2.0))
    vec = g.to_vectors()
    assert isinstance(vec, ParallelVec) and vec.ndim == 3 and vec.det_shape == (3, 4)
    assert vec.det_v is not None
    np.testing.assert_allclose(vec.ray_dirs, [[0, 1, 0], [0, 0, -1]], atol=1e-15)
    np.testing.assert_allclose(vec.det_u, [[0, 0, 2], [0, 2, 0]], atol=1e-15)
    np.testing.assert_allclose(vec.det_v, [[0.5, 0, 0], [0.5, 0, 0]], atol=1e-15)
    np.testing.assert_allclose(vec.det_centers, 0.0, atol=1e-15)


def test_cone3d_vectors_at_0_and_half_pi() -> None:
    g = ConeBeam3D(
        angles=[0.0, HALF_PI], det_shape=(3, 4), det_spacing=(0.5, 2.0), src_iso=100, iso_det=50
    )
    vec = g.to_vectors()
    assert isinstance(vec, ConeBeamVec)
    np.testing.assert_allclose(vec.sources, [[0, -100, 0], [0, 0, 100]], atol=1e-12)
    np.testing.assert_allclose(vec.det_centers, [[0, 50, 0], [0, 0, -50]], atol=1e-12)
    np.testing.assert_allclose(vec.det_u, [[0, 0, 2], [0, 2, 0]], atol=1e-15)
    np.testing.assert_allclose(vec.det_v, [[0.5, 0, 0], [0.5, 0, 0]], atol=1e-15)


def test_scalar_det_spacing_is_used_for_rows_and_cols() -> None:
    g = ConeBeam3D(angles=[0.0], det_shape=(3, 4), det_spacing=0.4, src_iso=10, iso_det=5)
    assert g.det_spacing == (0.4, 0.4)


def test_detector_offsets() -> None:
    theta = 0.3
    s, c = np.sin(theta), np.cos(theta)
    u_hat2 = np.array([s, c])  # (y, x) of (cos t, sin t)
    par = ParallelBeam2D(angles=[theta], n_det=5, det_offset_u=1.5).to_vectors()
    np.testing.assert_allclose(par.det_centers[0], 1.5 * u_hat2, atol=1e-14)
    fan = FanBeam2D(
        angles=[theta], n_det=5, det_spacing=1, src_iso=80, iso_det=20, det_offset_u=-2.0
    ).to_vectors()
    np.testing.assert_allclose(fan.det_centers[0], 20 * np.array([c, -s]) - 2.0 * u_hat2)
    cone = ConeBeam3D(
        angles=[theta],
        det_shape=(2, 2),
        det_spacing=1,
        src_iso=80,
        iso_det=20,
        det_offset_u=-2.0,
        det_offset_v=3.0,
    ).to_vectors()
    expected = 20 * np.array([0, c, -s]) - 2.0 * np.array([0, s, c]) + [3.0, 0, 0]
    np.testing.assert_allclose(cone.det_centers[0], expected, atol=1e-13)
    # offsets move the detector only, never the source
    np.testing.assert_allclose(cone.sources[0], 80 * np.array([0, -c, s]))
    par3 = ParallelBeam3D(
        angles=[theta], det_shape=(2, 2), det_offset_u=1.0, det_offset_v=-1.0
    ).to_vectors()
    np.testing.assert_allclose(par3.det_centers[0], [-1.0, s, c], atol=1e-14)


def test_rotation_direction_source_moves_from_minus_y_towards_plus_x() -> None:
    angles = np.linspace(0, HALF_PI, 5)
    src = FanBeam2D(angles=angles, n_det=3, det_spacing=1, src_iso=1, iso_det=1).to_vectors()
    y, x = src.sources[:, 0], src.sources[:, 1]
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)
    assert y[0] == -1 and x[-1] == pytest.approx(1)


def test_cone_detector_pixel_centre_rule() -> None:
    g = ConeBeam3D(
        angles=[0.0], det_shape=(3, 4), det_spacing=(0.5, 2.0), src_iso=100, iso_det=50
    ).to_vectors()
    # pixel (row 0, col 0): centre - 1.5 * u - 1 * v, with u = +x, v = +z
    corner = g.det_centers[0] + (0 - 1.5) * g.det_u[0] + (0 - 1.0) * g.det_v[0]
    np.testing.assert_allclose(corner, [-0.5, 50, -3.0], atol=1e-12)


@pytest.mark.parametrize("offset", [0.0, 7.5])
def test_arc_detector_lies_on_circle_around_source(offset: float) -> None:
    angles = np.array([0.0, 0.4, 2.0])
    g = FanBeam2D(
        angles=angles,
        n_det=9,
        det_spacing=1.5,
        src_iso=400,
        iso_det=200,
        detector="arc",
        det_offset_u=offset,
    )
    vec = g.to_vectors()
    assert vec.detector is DetectorShape.ARC
    radius = np.linalg.norm(vec.det_centers - vec.sources, axis=1)
    np.testing.assert_allclose(radius, 600.0)
    np.testing.assert_allclose(np.linalg.norm(vec.det_u, axis=1), 1.5)
    # det_u is tangent to the circle
    np.testing.assert_allclose(np.sum(vec.det_u * (vec.det_centers - vec.sources), 1), 0, atol=1e-9)
    # the offset turns the detector about the source by offset / radius, towards u
    flat = FanBeam2D(angles=angles, n_det=9, det_spacing=1.5, src_iso=400, iso_det=200)
    central = flat.to_vectors().det_centers - vec.sources
    turned = vec.det_centers - vec.sources
    cos_gamma = np.sum(central * turned, 1) / (600.0 * 600.0)
    np.testing.assert_allclose(np.arccos(np.clip(cos_gamma, -1, 1)), offset / 600.0, atol=1e-7)
    toward_u = np.sum((turned - central) * flat.to_vectors().det_u, 1)
    assert np.all(toward_u >= -1e-9)
    if offset == 0.0:
        np.testing.assert_allclose(vec.det_centers, flat.to_vectors().det_centers, atol=1e-12)
        np.testing.assert_allclose(vec.det_u, flat.to_vectors().det_u, atol=1e-15)


def test_detector_shape_parsing() -> None:
    kw: dict[str, Any] = {
        "angles": [0.0],
        "n_det": 3,
        "det_spacing": 1.0,
        "src_iso": 1.0,
        "iso_det": 1.0,
    }
    assert FanBeam2D(**kw).detector is DetectorShape.FLAT
    assert FanBeam2D(**kw, detector="ARC").detector is DetectorShape.ARC
    assert FanBeam2D(**kw, detector=DetectorShape.ARC) == FanBeam2D(**kw, detector="arc")
    with pytest.raises(GeometryError, match="expected one of 'flat', 'arc', got 'curved'"):
        FanBeam2D(**kw, detector="curved")
    with pytest.raises(GeometryError, match="detector"):
        FanBeam2D(**kw, detector=1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------

_P2 = {"angles": [0.0, 1.0], "n_det": 4}
_F2 = {"angles": [0.0, 1.0], "n_det": 4, "det_spacing": 1.0, "src_iso": 10.0, "iso_det": 5.0}
_P3 = {"angles": [0.0, 1.0], "det_shape": (2, 3)}
_C3 = {
    "angles": [0.0, 1.0],
    "det_shape": (2, 3),
    "det_spacing": 1.0,
    "src_iso": 10.0,
    "iso_det": 5.0,
}

BAD = [
    (ParallelBeam2D, _P2, {"angles": []}, "angles"),
    (ParallelBeam2D, _P2, {"angles": [0.0, np.nan]}, "angles"),
    (ParallelBeam2D, _P2, {"angles": [0.0, np.inf]}, "angles"),
    (ParallelBeam2D, _P2, {"angles": 0.5}, "angles"),
    (ParallelBeam2D, _P2, {"angles": [[0.0, 1.0]]}, "angles"),
    (ParallelBeam2D, _P2, {"angles": ["a"]}, "angles"),
    (ParallelBeam2D, _P2, {"angles": [1j]}, "angles"),
    (ParallelBeam2D, _P2, {"n_det": 0}, "n_det"),
    (ParallelBeam2D, _P2, {"n_det": 4.0}, "n_det"),
    (ParallelBeam2D, _P2, {"n_det": True}, "n_det"),
    (ParallelBeam2D, _P2, {"det_spacing": 0.0}, "det_spacing"),
    (ParallelBeam2D, _P2, {"det_spacing": -1.0}, "det_spacing"),
    (ParallelBeam2D, _P2, {"det_spacing": np.nan}, "det_spacing"),
    (ParallelBeam2D, _P2, {"det_offset_u": np.inf}, "det_offset_u"),
    (FanBeam2D, _F2, {"src_iso": 0.0}, "src_iso"),
    (FanBeam2D, _F2, {"iso_det": 0.0}, "iso_det"),
    (FanBeam2D, _F2, {"iso_det": -5.0}, "iso_det"),
    (FanBeam2D, _F2, {"src_iso": np.inf}, "src_iso"),
    (FanBeam2D, _F2, {"det_spacing": 0.0}, "det_spacing"),
    (FanBeam2D, _F2, {"detector": "curved"}, "detector"),
    (ParallelBeam3D, _P3, {"det_shape": (2,)}, "det_shape"),
    (ParallelBeam3D, _P3, {"det_shape": 4}, "det_shape"),
    (ParallelBeam3D, _P3, {"det_shape": (2, 0)}, "det_shape[1]"),
    (ParallelBeam3D, _P3, {"det_shape": (2, 3.5)}, "det_shape[1]"),
    (ParallelBeam3D, _P3, {"det_spacing": (1.0, 0.0)}, "det_spacing[1]"),
    (ParallelBeam3D, _P3, {"det_spacing": (1.0, 1.0, 1.0)}, "det_spacing"),
    (ParallelBeam3D, _P3, {"det_offset_v": np.nan}, "det_offset_v"),
    (ConeBeam3D, _C3, {"src_iso": 0.0}, "src_iso"),
    (ConeBeam3D, _C3, {"iso_det": np.nan}, "iso_det"),
    (ConeBeam3D, _C3, {"det_spacing": -1.0}, "det_spacing"),
    (ConeBeam3D, _C3, {"angles": np.zeros((0,))}, "angles"),
]


@pytest.mark.parametrize(("cls", "base", "change", "fragment"), BAD)
def test_invalid_input_raises_geometry_error(
    cls: type, base: dict, change: dict, fragment: str
) -> None:
    with pytest.raises(GeometryError) as info:
        cls(**{**base, **change})
    message = str(info.value)
    assert fragment in message
    assert "expected" in message and "got" in message


@pytest.mark.parametrize(("cls", "base"), [(ParallelBeam2D, _P2), (FanBeam2D, _F2)])
def test_keyword_only_and_unknown_keyword(cls: type, base: dict) -> None:
    with pytest.raises(TypeError):
        cls([0.0], 4)
    with pytest.raises(TypeError):
        cls(**base, det_offset=1.0)


def test_missing_required_argument() -> None:
    with pytest.raises(TypeError):
        ConeBeam3D(angles=[0.0], det_shape=(2, 2), src_iso=1, iso_det=1)  # type: ignore[call-arg]


# --------------------------------------------------------------------------
# immutability and copies
# --------------------------------------------------------------------------


@pytest.mark.parametrize("g", ALL, ids=IDS)
def test_immutable_and_read_only(g: ProjectionGeometry) -> None:
    with pytest.raises(AttributeError):
        g.angles = np.zeros(3)
    with pytest.raises(AttributeError):
        g._angles = np.zeros(3)
    with pytest.raises(ValueError):
        g.angles[0] = 1.0  # type: ignore[attr-defined]
    vec = g.to_vectors()
    for name in ("ray_dirs", "sources", "det_centers", "det_u", "det_v"):
        arr = getattr(vec, name, None)
        if arr is not None:
            assert arr.dtype == np.float64
            assert not arr.flags.writeable
            with pytest.raises(ValueError):
                arr[0, 0] = 1.0


def test_user_array_is_copied_not_aliased_or_modified() -> None:
    angles = np.linspace(0, np.pi, 5, dtype=np.float32)
    before = angles.copy()
    g = ParallelBeam2D(angles=angles, n_det=3)
    assert g.angles.dtype == np.float64
    assert not np.shares_memory(g.angles, angles)
    angles[0] = 42.0
    assert g.angles[0] == 0.0
    assert angles.flags.writeable
    angles[0] = before[0]
    np.testing.assert_array_equal(angles, before)
    # a read-only float64 input is still copied
    ro = np.linspace(0, 1, 3)
    ro.flags.writeable = False
    assert not np.shares_memory(ParallelBeam2D(angles=ro, n_det=2).angles, ro)


# --------------------------------------------------------------------------
# equality, hashing, repr, pickle
# --------------------------------------------------------------------------


def test_equality_and_hash() -> None:
    a = FanBeam2D(angles=[0.0, 1.0], n_det=4, det_spacing=1.0, src_iso=10, iso_det=5)
    b = FanBeam2D(angles=np.array([-0.0, 1.0]), n_det=4, det_spacing=1, src_iso=10.0, iso_det=5)
    assert a == b and hash(a) == hash(b)
    assert a != FanBeam2D(angles=[0.0, 1.1], n_det=4, det_spacing=1.0, src_iso=10, iso_det=5)
    assert a != FanBeam2D(angles=[0.0], n_det=4, det_spacing=1.0, src_iso=10, iso_det=5)
    assert a != FanBeam2D(
        angles=[0.0, 1.0], n_det=4, det_spacing=1.0, src_iso=10, iso_det=5, detector="arc"
    )
    assert a != a.to_vectors()  # different kinds never compare equal
    assert a != ParallelBeam2D(angles=[0.0, 1.0], n_det=4)


@pytest.mark.parametrize("g", ALL, ids=IDS)
def test_pickle_and_repr(g: ProjectionGeometry) -> None:
    assert pickle.loads(pickle.dumps(g)) == g
    assert pickle.loads(pickle.dumps(g.to_vectors())) == g.to_vectors()
    assert repr(g).startswith(type(g).__name__ + "(")
    assert "7 values" in repr(g)


# --------------------------------------------------------------------------
# shapes and slicing by view
# --------------------------------------------------------------------------


@pytest.mark.parametrize("g", ALL, ids=IDS)
def test_shapes(g: ProjectionGeometry) -> None:
    assert g.n_views == len(g) == 7
    assert g.proj_shape == (7, *g.det_shape)
    assert len(g.det_shape) == g.ndim - 1
    vec = g.to_vectors()
    assert vec.ndim == g.ndim and vec.det_shape == g.det_shape and vec.n_views == 7
    assert vec.to_vectors() is vec


@pytest.mark.parametrize("g", ALL, ids=IDS)
@pytest.mark.parametrize(
    "idx",
    [
        3,
        -1,
        slice(1, 5),
        slice(None, None, -2),
        [0, 6, 2],
        np.array([4, 4]),
        np.arange(7) % 2 == 0,
    ],
    ids=["int", "neg-int", "slice", "rev-slice", "list", "repeat", "mask"],
)
def test_slicing_selects_views_and_commutes_with_to_vectors(
    g: ProjectionGeometry, idx: Any
) -> None:
    sub = g[idx]
    assert type(sub) is type(g)
    expected_views = np.arange(7)[idx]
    expected_views = np.atleast_1d(expected_views)
    np.testing.assert_array_equal(sub.angles, g.angles[expected_views])  # type: ignore[attr-defined]
    assert sub.det_shape == g.det_shape
    assert sub.to_vectors() == g.to_vectors()[idx]
    assert sub == g[expected_views]


def test_int_index_gives_one_view_geometry() -> None:
    g = ALL[0]
    one = g[2]
    assert isinstance(one, ParallelBeam2D) and one.n_views == 1
    assert one.proj_shape == (1, 11)


@pytest.mark.parametrize(
    ("idx", "exc"),
    [
        (7, IndexError),
        (-8, IndexError),
        ([0, 9], IndexError),
        (np.ones(3, dtype=bool), IndexError),
        (1.5, TypeError),
        ((0, 1), TypeError),
        (True, TypeError),
        ("a", TypeError),
        (slice(3, 3), GeometryError),
        (np.zeros(7, dtype=bool), GeometryError),
        ([], GeometryError),
    ],
)
def test_bad_view_index(idx: Any, exc: type) -> None:
    with pytest.raises(exc):
        ALL[0][idx]
