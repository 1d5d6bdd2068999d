"""ASTRA converters: round trips, agreement with ASTRA's own formulas, and a numeric check.

The numeric check projects a single off-centre pixel with ASTRA's 2D CPU
projectors through :func:`to_astra` and compares where it lands on the
detector with our own vector formulas; it is what proves the 2D y flip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from medrecon.errors import GeometryError, ShapeError
from medrecon.geometry import (
    ConeBeam3D,
    ConeBeamVec,
    FanBeam2D,
    FanBeamVec,
    ParallelBeam2D,
    ParallelBeam3D,
    ParallelVec,
    ProjectionGeometry,
    VolumeGeometry,
    from_astra,
    to_astra,
)
from medrecon.geometry.astra import (
    proj_from_astra,
    proj_to_astra,
    volume_from_astra,
    volume_to_astra,
)

ANGLES = np.linspace(0.1, 2 * np.pi, 9, endpoint=False)
VOL2 = VolumeGeometry(shape=(6, 10), voxel_size=(0.5, 1.25), center=(3.0, -2.0))
VOL3 = VolumeGeometry(shape=(4, 6, 10), voxel_size=(2.0, 0.5, 1.25), center=(1.0, 3.0, -2.0))


def _random_vectors(rng: np.random.Generator) -> list[ProjectionGeometry]:
    n = 5
    return [
        ParallelVec(
            ray_dirs=rng.standard_normal((n, 2)),
            det_centers=rng.standard_normal((n, 2)),
            det_u=rng.standard_normal((n, 2)),
            det_shape=(7,),
        ),
        FanBeamVec(
            sources=rng.standard_normal((n, 2)) * 100,
            det_centers=rng.standard_normal((n, 2)) * 100,
            det_u=rng.standard_normal((n, 2)),
            n_det=7,
        ),
        ParallelVec(
            ray_dirs=rng.standard_normal((n, 3)),
            det_centers=rng.standard_normal((n, 3)),
            det_u=rng.standard_normal((n, 3)),
            det_v=rng.standard_normal((n, 3)),
            det_shape=(3, 7),
        ),
        ConeBeamVec(
            sources=rng.standard_normal((n, 3)) * 100,
            det_centers=rng.standard_normal((n, 3)) * 100,
            det_u=rng.standard_normal((n, 3)),
            det_v=rng.standard_normal((n, 3)),
            det_shape=(3, 7),
        ),
    ]


GEOMETRIES = [
    ParallelBeam2D(angles=ANGLES, n_det=16, det_spacing=0.8, det_offset_u=0.4),
    FanBeam2D(angles=ANGLES, n_det=16, det_spacing=1.5, src_iso=300, iso_det=200, det_offset_u=-1),
    ParallelBeam3D(angles=ANGLES, det_shape=(5, 16), det_spacing=(0.7, 0.9), det_offset_v=0.5),
    ConeBeam3D(
        angles=ANGLES,
        det_shape=(5, 16),
        det_spacing=(0.7, 0.9),
        src_iso=300,
        iso_det=200,
        det_offset_u=1.0,
        det_offset_v=-2.0,
    ),
    *_random_vectors(np.random.default_rng(7)),
]
IDS = [f"{type(g).__name__}{g.ndim}d-{i}" for i, g in enumerate(GEOMETRIES)]
ASTRA_TYPE = {
    (ParallelVec, 2): "parallel_vec",
    (FanBeamVec, 2): "fanflat_vec",
    (ParallelVec, 3): "parallel3d_vec",
    (ConeBeamVec, 3): "cone_vec",
}


def _volume_close(a: VolumeGeometry, b: VolumeGeometry) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a.voxel_size, b.voxel_size, rtol=1e-14)
    np.testing.assert_allclose(a.center, b.center, rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------
# dict layout and round trips (no ASTRA needed)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("g", GEOMETRIES, ids=IDS)
def test_round_trip_gives_exact_vectors(g: ProjectionGeometry) -> None:
    vol = VOL2 if g.ndim == 2 else VOL3
    proj_geom, vol_geom = to_astra(g, vol)
    vec = g.to_vectors()
    assert proj_geom["type"] == ASTRA_TYPE[type(vec), g.ndim]
    assert proj_geom["Vectors"].shape == (g.n_views, 6 if g.ndim == 2 else 12)
    if g.ndim == 2:
        assert proj_geom["DetectorCount"] == g.det_shape[0]
    else:
        assert (proj_geom["DetectorRowCount"], proj_geom["DetectorColCount"]) == g.det_shape
    back, back_vol = from_astra(proj_geom, vol_geom)
    assert back == vec  # bit-exact: only swaps and sign flips happen
    _volume_close(back_vol, vol)
    assert g.to_astra(vol)[0]["type"] == proj_geom["type"]


@pytest.mark.parametrize("vol", [VOL2, VOL3, VolumeGeometry(shape=(3, 5))], ids=str)
def test_volume_round_trip(vol: VolumeGeometry) -> None:
    vol_geom = volume_to_astra(vol)
    _volume_close(volume_from_astra(vol_geom), vol)


def test_volume_windows_2d_mirror_y_and_3d_do_not() -> None:
    vol_geom = volume_to_astra(VOL2)
    # y extent (0.5 mm * 6 rows) around +3 becomes a window around -3
    assert vol_geom == {
        "option": {"WindowMinX": -8.25, "WindowMaxX": 4.25, "WindowMinY": -4.5, "WindowMaxY": -1.5},
        "GridRowCount": 6,
        "GridColCount": 10,
    }
    vol_geom = volume_to_astra(VOL3)
    assert vol_geom["option"] == {
        "WindowMinX": -8.25,
        "WindowMaxX": 4.25,
        "WindowMinY": 1.5,
        "WindowMaxY": 4.5,
        "WindowMinZ": -3.0,
        "WindowMaxZ": 5.0,
    }
    assert (vol_geom["GridSliceCount"], vol_geom["GridRowCount"], vol_geom["GridColCount"]) == (
        4,
        6,
        10,
    )


def test_volume_without_windows_uses_astra_defaults() -> None:
    assert volume_from_astra({"GridRowCount": 4, "GridColCount": 6}) == VolumeGeometry(shape=(4, 6))
    three = {"GridRowCount": 4, "GridColCount": 6, "GridSliceCount": 2, "option": {}}
    assert volume_from_astra(three) == VolumeGeometry(shape=(2, 4, 6))


def test_2d_vectors_are_written_as_x_minus_y() -> None:
    g = FanBeam2D(angles=[0.0], n_det=4, det_spacing=2.0, src_iso=100, iso_det=50)
    vectors = to_astra(g, VOL2)[0]["Vectors"]
    # ours: source (y, x) = (-100, 0) -> ASTRA (x, y) = (0, 100)
    np.testing.assert_allclose(vectors, [[0, 100, 0, -50, 2, 0]], atol=1e-12)
    g3 = ConeBeam3D(angles=[0.0], det_shape=(2, 4), det_spacing=(3.0, 2.0), src_iso=100, iso_det=50)
    vectors = to_astra(g3, VOL3)[0]["Vectors"]
    np.testing.assert_allclose(vectors, [[0, -100, 0, 0, 50, 0, 2, 0, 0, 0, 0, 3]], atol=1e-12)


def test_arc_detector_is_refused() -> None:
    g = FanBeam2D(angles=[0.0], n_det=4, det_spacing=1, src_iso=10, iso_det=5, detector="arc")
    with pytest.raises(GeometryError, match="ASTRA has no arc"):
        to_astra(g, VOL2)


def test_dimension_mismatch_and_wrong_types() -> None:
    with pytest.raises(GeometryError, match="expected a 2D volume"):
        to_astra(GEOMETRIES[0], VOL3)
    with pytest.raises(GeometryError, match="expected a 3D volume"):
        to_astra(GEOMETRIES[3], VOL2)
    with pytest.raises(TypeError):
        to_astra({"type": "parallel"}, VOL2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        to_astra(GEOMETRIES[0], (6, 10))  # type: ignore[arg-type]


_PAR = {"type": "parallel", "DetectorWidth": 1.0, "DetectorCount": 8, "ProjectionAngles": [0.0]}
_V2 = {"GridRowCount": 4, "GridColCount": 4}
_V3 = {"GridRowCount": 4, "GridColCount": 4, "GridSliceCount": 2}


@pytest.mark.parametrize(
    ("proj_geom", "vol_geom", "fragment"),
    [
        ({**_PAR, "type": "sparse_matrix"}, _V2, "expected one of"),
        ({"DetectorCount": 3}, _V2, "'type'"),
        (_PAR, _V3, "expected a 2D volume"),
        ({**_PAR, "option": {"ExtraDetectorOffset": [1.0]}}, _V2, "expected no options"),
        ({k: v for k, v in _PAR.items() if k != "DetectorWidth"}, _V2, "'DetectorWidth'"),
        ({**_PAR, "DetectorCount": 0}, _V2, "DetectorCount"),
        ({**_PAR, "DetectorCount": 2.5}, _V2, "DetectorCount"),
        ({**_PAR, "ProjectionAngles": []}, _V2, "angles"),
        ({"type": "parallel_vec", "DetectorCount": 3, "Vectors": np.ones((2, 12))}, _V2, "(n_v"),
        ({"type": "cone_vec", "DetectorRowCount": 3, "DetectorColCount": 3}, _V3, "'Vectors'"),
        (_PAR, {"GridRowCount": 4}, "GridColCount"),
        (_PAR, {**_V2, "option": {"WindowMinX": 1.0, "WindowMaxX": -1.0}}, "WindowMaxX >"),
        (_PAR, {**_V2, "option": {"WindowMinX": 1.0}}, "WindowMaxX"),
    ],
)
def test_from_astra_rejects_bad_dicts(proj_geom: Any, vol_geom: Any, fragment: str) -> None:
    with pytest.raises(GeometryError, match="expected") as info:
        from_astra(proj_geom, vol_geom)
    assert fragment in str(info.value)


def test_from_astra_accepts_integral_floats() -> None:
    geometry, vol = from_astra(
        {**_PAR, "DetectorCount": 8.0}, {"GridRowCount": 4.0, "GridColCount": 4}
    )
    assert geometry.det_shape == (8,) and vol.shape == (4, 4)


# --------------------------------------------------------------------------
# ASTRA's circular geometries vs our from_astra
# --------------------------------------------------------------------------


def _circular_dicts() -> list[dict[str, Any]]:
    theta = np.random.default_rng(8).uniform(-np.pi, 3 * np.pi, 6)
    return [
        {"type": "parallel", "DetectorWidth": 0.8, "DetectorCount": 12, "ProjectionAngles": theta},
        {
            "type": "fanflat",
            "DetectorWidth": 1.3,
            "DetectorCount": 12,
            "ProjectionAngles": theta,
            "DistanceOriginSource": 400.0,
            "DistanceOriginDetector": 150.0,
        },
        {
            "type": "parallel3d",
            "DetectorSpacingX": 0.8,
            "DetectorSpacingY": 1.7,
            "DetectorRowCount": 3,
            "DetectorColCount": 12,
            "ProjectionAngles": theta,
        },
        {
            "type": "cone",
            "DetectorSpacingX": 0.8,
            "DetectorSpacingY": 1.7,
            "DetectorRowCount": 3,
            "DetectorColCount": 12,
            "ProjectionAngles": theta,
            "DistanceOriginSource": 400.0,
            "DistanceOriginDetector": 150.0,
        },
    ]


def test_most_specific_equivalents() -> None:
    par, fan, par3, cone = (
        from_astra(d, _V3 if "3d" in d["type"] or d["type"] == "cone" else _V2)[0]
        for d in _circular_dicts()
    )
    theta = _circular_dicts()[0]["ProjectionAngles"]
    assert par == ParallelBeam2D(angles=-theta, n_det=12, det_spacing=0.8)
    assert isinstance(fan, FanBeamVec)
    assert par3 == ParallelBeam3D(angles=theta, det_shape=(3, 12), det_spacing=(1.7, 0.8))
    assert cone == ConeBeam3D(
        angles=theta, det_shape=(3, 12), det_spacing=(1.7, 0.8), src_iso=400, iso_det=150
    )
    # ASTRA's fanflat is our circular fan at pi - theta with the detector reversed
    ours = FanBeam2D(
        angles=np.pi - theta, n_det=12, det_spacing=1.3, src_iso=400, iso_det=150
    ).to_vectors()
    assert isinstance(fan, FanBeamVec)
    np.testing.assert_allclose(fan.sources, ours.sources, atol=1e-9)
    np.testing.assert_allclose(fan.det_centers, ours.det_centers, atol=1e-9)
    np.testing.assert_allclose(fan.det_u, -ours.det_u, atol=1e-12)


@pytest.mark.astra
@pytest.mark.parametrize("proj_geom", _circular_dicts(), ids=lambda d: d["type"])
def test_matches_astra_geom_2vec(proj_geom: dict[str, Any]) -> None:
    astra = pytest.importorskip("astra")
    vol_geom = _V2 if proj_geom["type"] in ("parallel", "fanflat") else _V3
    expected = astra.functions.geom_2vec(proj_geom)
    geometry, volume = from_astra(proj_geom, vol_geom)
    ours, _ = to_astra(geometry, volume)
    assert ours["type"] == expected["type"]
    got, want = ours["Vectors"], np.asarray(expected["Vectors"])
    if proj_geom["type"] == "parallel3d":
        # ASTRA's geom_2vec points parallel-3D rays the other way from its own
        # C++ circular geometry and from ours; the sign of a ray is irrelevant
        np.testing.assert_allclose(got[:, :3], -want[:, :3], atol=1e-12)
        got, want = got[:, 3:], want[:, 3:]
    np.testing.assert_allclose(got, want, atol=1e-12)
    # and it describes the same volume as ASTRA's own vol_geom
    assert volume_to_astra(volume) == astra.create_vol_geom(*vol_geom_args(vol_geom))


def vol_geom_args(vol_geom: dict[str, int]) -> tuple[int, ...]:
    if "GridSliceCount" in vol_geom:
        return (vol_geom["GridRowCount"], vol_geom["GridColCount"], vol_geom["GridSliceCount"])
    return (vol_geom["GridRowCount"], vol_geom["GridColCount"])


@pytest.mark.astra
@pytest.mark.parametrize("vol", [VOL2, VOL3], ids=["2d", "3d"])
def test_vol_geom_matches_astra_create_vol_geom(vol: VolumeGeometry) -> None:
    astra = pytest.importorskip("astra")
    ours = volume_to_astra(vol)
    opt = ours["option"]
    windows = [opt[f"Window{m}{a}"] for a in "XYZ"[: vol.ndim] for m in ("Min", "Max")]
    assert ours == astra.create_vol_geom(*vol_geom_args(ours), *windows)


# --------------------------------------------------------------------------
# data layout
# --------------------------------------------------------------------------


def test_projection_layout_helpers() -> None:
    rng = np.random.default_rng(9)
    g3 = GEOMETRIES[3]  # 9 views, det (5, 16)
    data = rng.standard_normal((2, *g3.proj_shape)).astype(np.float32)
    astra_data = proj_to_astra(data, g3)
    assert astra_data.shape == (2, 5, 9, 16) and astra_data.flags.c_contiguous
    assert astra_data.dtype == np.float32
    np.testing.assert_array_equal(astra_data[1, 4, 7], data[1, 7, 4])
    np.testing.assert_array_equal(proj_from_astra(astra_data, g3), data)
    g2 = GEOMETRIES[0]
    sino = rng.standard_normal(g2.proj_shape)
    np.testing.assert_array_equal(proj_to_astra(sino, g2), sino)
    np.testing.assert_array_equal(proj_from_astra(sino, g2), sino)
    with pytest.raises(ShapeError):
        proj_to_astra(astra_data, g3)
    with pytest.raises(ShapeError):
        proj_from_astra(data, g3)
    with pytest.raises(ShapeError):
        proj_to_astra(sino[:, :-1], g2)


# --------------------------------------------------------------------------
# numeric check with ASTRA's 2D CPU projectors
# --------------------------------------------------------------------------

# a non-square image off the rotation centre; ASTRA's 2D CPU projectors want
# square pixels (they refuse most anisotropic ones: "Pixel height must equal
# pixel width"), so the pixels are square here
NUM_VOL = VolumeGeometry(shape=(12, 17), voxel_size=0.9, center=(2.5, -1.5))
PIXEL = (2, 13)  # (row, col): well off-centre in both y and x
NUM_ANGLES = np.concatenate(
    [[0.0, np.pi / 2, 1.0, 2.2, 4.0], np.random.default_rng(10).uniform(0, 2 * np.pi, 5)]
)


def _pixel_centre(vol: VolumeGeometry, pixel: tuple[int, int]) -> np.ndarray:
    return np.array([vol.coords(0)[pixel[0]], vol.coords(1)[pixel[1]]])


def _predicted_det_index(vec: ProjectionGeometry, point: np.ndarray) -> np.ndarray:
    """Detector coordinate (in element indices) where the ray through ``point`` lands."""
    n_det = vec.det_shape[0]
    out = []
    for v in range(vec.n_views):
        if isinstance(vec, ParallelVec):
            origin, direction = point, vec.ray_dirs[v]
        else:
            assert isinstance(vec, FanBeamVec)
            origin, direction = vec.sources[v], point - vec.sources[v]
        # origin + s * direction = det_center + t * det_u
        matrix = np.stack([direction, -vec.det_u[v]], 1)
        _, t = np.linalg.solve(matrix, vec.det_centers[v] - origin)
        out.append(t + (n_det - 1) / 2)
    return np.array(out)


def _astra_sinogram(astra: Any, proj_geom: dict[str, Any], kernel: str) -> np.ndarray:
    image = np.zeros(NUM_VOL.shape, dtype=np.float32)
    image[PIXEL] = 1.0
    projector = astra.create_projector(kernel, proj_geom, volume_to_astra(NUM_VOL))
    try:
        sino_id, sino = astra.create_sino(image, projector)
        astra.data2d.delete(sino_id)
    finally:
        astra.projector.delete(projector)
    return np.asarray(sino, dtype=np.float64)


NUMERIC_CASES = [
    (
        "strip",
        ParallelBeam2D(angles=NUM_ANGLES, n_det=160, det_spacing=0.25, det_offset_u=1.7),
        0.1,
    ),
    ("line", ParallelBeam2D(angles=NUM_ANGLES, n_det=160, det_spacing=0.25, det_offset_u=1.7), 0.3),
    (
        "line_fanflat",
        FanBeam2D(
            angles=NUM_ANGLES, n_det=128, det_spacing=0.4, src_iso=60, iso_det=40, det_offset_u=-2
        ),
        0.3,
    ),
    (
        "strip",
        ParallelVec(  # generic vectors: detector tilted, off-centre, non-unit rays
            ray_dirs=np.stack([np.cos(NUM_ANGLES), 2 * np.sin(NUM_ANGLES)], 1),
            det_centers=np.stack([np.sin(NUM_ANGLES + 0.3), np.cos(NUM_ANGLES)], 1) * 3,
            det_u=np.stack([np.sin(NUM_ANGLES + 0.2), np.cos(NUM_ANGLES + 0.2)], 1) * 0.3,
            det_shape=(160,),
        ),
        0.1,
    ),
    # ASTRA's own circular geometries, read back with from_astra
    (
        "strip",
        {
            "type": "parallel",
            "DetectorWidth": 0.25,
            "DetectorCount": 160,
            "ProjectionAngles": NUM_ANGLES,
        },
        0.1,
    ),
    (
        "line_fanflat",
        {
            "type": "fanflat",
            "DetectorWidth": 0.4,
            "DetectorCount": 128,
            "ProjectionAngles": NUM_ANGLES,
            "DistanceOriginSource": 60.0,
            "DistanceOriginDetector": 40.0,
        },
        0.3,
    ),
]
NUMERIC_IDS = ["par-strip", "par-line", "fan", "vec", "astra-parallel", "astra-fanflat"]


# tol is in detector elements (0.25-0.4 mm here); a half-pixel (0.45 mm) mistake
# in the conventions would be off by more than one element
@pytest.mark.astra
@pytest.mark.parametrize(("kernel", "source", "tol"), NUMERIC_CASES, ids=NUMERIC_IDS)
def test_astra_2d_projects_pixel_where_our_vectors_predict(
    kernel: str, source: ProjectionGeometry | dict[str, Any], tol: float
) -> None:
    astra = pytest.importorskip("astra")
    if isinstance(source, dict):  # ASTRA geometry -> ours
        proj_geom = source
        geometry, volume = from_astra(proj_geom, volume_to_astra(NUM_VOL))
        _volume_close(volume, NUM_VOL)
    else:  # ours -> ASTRA
        geometry = source
        proj_geom = to_astra(geometry, NUM_VOL)[0]
    sino = _astra_sinogram(astra, proj_geom, kernel)
    assert sino.shape == geometry.proj_shape
    assert np.all(sino.sum(axis=1) > 0), "the pixel must be seen in every view"
    bins = np.arange(sino.shape[1])
    centroid = (sino * bins).sum(axis=1) / sino.sum(axis=1)
    vec = geometry.to_vectors()
    predicted = _predicted_det_index(vec, _pixel_centre(NUM_VOL, PIXEL))
    np.testing.assert_allclose(centroid, predicted, atol=tol)
    # the test can tell a flip: the pixel mirrored in y lands elsewhere
    mirrored = _pixel_centre(NUM_VOL, PIXEL) * [-1.0, 1.0]
    assert np.max(np.abs(_predicted_det_index(vec, mirrored) - centroid)) > 3.0


# --------------------------------------------------------------------------
# numeric check with ASTRA's 3D CUDA projectors (needs a GPU)
# --------------------------------------------------------------------------

NUM_VOL3 = VolumeGeometry(shape=(9, 12, 17), voxel_size=(1.1, 0.9, 0.7), center=(1.0, 2.5, -1.5))
VOXEL = (6, 2, 13)  # (slice, row, col): off-centre on every axis
NUMERIC_3D = [
    ParallelBeam3D(angles=NUM_ANGLES, det_shape=(48, 96), det_spacing=(0.4, 0.3), det_offset_u=0.7),
    ConeBeam3D(
        angles=NUM_ANGLES,
        det_shape=(64, 128),
        det_spacing=(0.5, 0.4),
        src_iso=60,
        iso_det=40,
        det_offset_u=-1.0,
        det_offset_v=0.8,
    ),
]


def _predicted_det_rc(vec: ProjectionGeometry, point: np.ndarray) -> np.ndarray:
    """(row, col) where the ray through ``point`` lands, in element indices."""
    n_rows, n_cols = vec.det_shape
    out = []
    for v in range(vec.n_views):
        if isinstance(vec, ParallelVec):
            origin, direction = point, vec.ray_dirs[v]
        else:
            assert isinstance(vec, ConeBeamVec)
            origin, direction = vec.sources[v], point - vec.sources[v]
        assert vec.det_v is not None
        matrix = np.stack([direction, -vec.det_u[v], -vec.det_v[v]], 1)
        _, t, w = np.linalg.solve(matrix, vec.det_centers[v] - origin)
        out.append((w + (n_rows - 1) / 2, t + (n_cols - 1) / 2))
    return np.array(out)


@pytest.mark.gpu
@pytest.mark.astra
@pytest.mark.parametrize("geometry", NUMERIC_3D, ids=["parallel3d", "cone"])
def test_astra_3d_projects_voxel_where_our_vectors_predict(geometry: ProjectionGeometry) -> None:
    astra = pytest.importorskip("astra")
    if not astra.use_cuda():
        pytest.skip("ASTRA's 3D projectors need a CUDA GPU")
    proj_geom, vol_geom = to_astra(geometry, NUM_VOL3)
    volume = np.zeros(NUM_VOL3.shape, dtype=np.float32)
    volume[VOXEL] = 1.0
    proj_id, data = astra.create_sino3d_gpu(volume, proj_geom, vol_geom)
    astra.data3d.delete(proj_id)
    proj = proj_from_astra(np.asarray(data, dtype=np.float64), geometry)
    assert proj.shape == geometry.proj_shape
    weight = proj.sum(axis=(1, 2))
    assert np.all(weight > 0), "the voxel must be seen in every view"
    rows = (proj.sum(axis=2) * np.arange(proj.shape[1])).sum(axis=1) / weight
    cols = (proj.sum(axis=1) * np.arange(proj.shape[2])).sum(axis=1) / weight
    point = np.array([NUM_VOL3.coords(a)[VOXEL[a]] for a in range(3)])
    predicted = _predicted_det_rc(geometry.to_vectors(), point)
    np.testing.assert_allclose(np.stack([rows, cols], 1), predicted, atol=0.3)
