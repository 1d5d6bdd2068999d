"""Phantoms, the ellipse/ellipsoid rasterisers and HU conversion (``medrecon.ct.simulate``).

Region values are checked at points chosen from the published tables (mapped to mm), on
voxels that lie well inside one region; the rasteriser is checked against a brute-force
evaluation of the documented inside test at every sub-sample.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medrecon.ct.simulate import (
    MU_AIR,
    MU_WATER,
    THORAX_HU,
    ellipses,
    ellipsoids,
    forbild_head_like,
    from_hu,
    random_ellipse_params,
    random_ellipses,
    shepp_logan,
    shepp_logan_params,
    thorax_slice,
    thorax_slice_rois,
    to_hu,
)
from medrecon.errors import DtypeError, GeometryError, NonFiniteError, ShapeError
from medrecon.geometry import VolumeGeometry, shapes


def hu_at(img: np.ndarray, vol: VolumeGeometry, *point_mm: float) -> float:
    """HU of the voxel that contains the world point ``point_mm`` (array-axis order)."""
    idx = tuple(
        round((p - o) / d) for p, o, d in zip(point_mm, vol.origin, vol.voxel_size, strict=True)
    )
    return float(to_hu(img[idx]))


def brute_force_ellipses(
    vol: VolumeGeometry, params: np.ndarray, k: int, replace: bool
) -> np.ndarray:
    """Evaluate every ellipse at every sub-sample with the documented formula, then average."""
    axes = []
    for a in range(2):
        n, d, c = vol.shape[a], vol.voxel_size[a], vol.center[a]
        axes.append(c - n * d / 2 + (np.arange(n * k) + 0.5) * d / k)
    y, x = np.meshgrid(axes[0], axes[1], indexing="ij")
    acc = np.zeros_like(y)
    for value, ay, ax, cy, cx, phi in params:
        dx, dy = x - cx, y - cy
        u = dx * math.cos(phi) + dy * math.sin(phi)  # along the semi_axis_x body axis
        v = -dx * math.sin(phi) + dy * math.cos(phi)
        inside = (u / ax) ** 2 + (v / ay) ** 2 <= 1.0
        if replace:
            acc[inside] = value
        else:
            acc[inside] += value
    ny, nx = vol.shape
    return acc.reshape(ny, k, nx, k).mean(axis=(1, 3))


# --------------------------------------------------------------------------- rasteriser


@pytest.mark.parametrize("combine", ["add", "replace"])
def test_ellipses_match_brute_force_with_small_chunks(
    combine: str, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    vol = VolumeGeometry(shape=(37, 29), voxel_size=(0.7, 1.1), center=(1.5, -2.0))
    params = random_ellipse_params(rng, radius=14.0, n_ellipses=8)
    params[:, 0] = rng.uniform(-1.0, 1.0, len(params))
    params = np.vstack([params, [[0.5, 40.0, 3.0, 0.0, 50.0, 0.4]]])  # partly off the grid
    expected = brute_force_ellipses(vol, params, 3, combine == "replace")
    monkeypatch.setattr(shapes, "_CHUNK_SUBSAMPLES", 200)  # several rows per chunk, ragged end
    got = ellipses(vol, params, combine=combine, oversample=3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.count_nonzero(got) > 100


def test_ellipse_area_weighted_on_anisotropic_grid() -> None:
    vol = VolumeGeometry(shape=(60, 40), voxel_size=(0.5, 1.0))
    img = ellipses(vol, [[1.0, 9.0, 13.0, 1.3, -2.1, 0.3]], oversample=8)
    area = float(img.sum()) * 0.5 * 1.0
    assert area == pytest.approx(math.pi * 9.0 * 13.0, rel=2e-3)
    assert img.min() == 0.0
    assert img.max() == 1.0
    # edge voxels hold fractions
    assert np.count_nonzero((img > 0.0) & (img < 1.0)) > 20


def test_ellipse_angle_turns_x_towards_y() -> None:
    vol = VolumeGeometry(shape=(41, 41), voxel_size=1.0)
    img = ellipses(vol, [[1.0, 2.0, 18.0, 0.0, 0.0, math.pi / 4]], oversample=1)
    # the long axis runs along (x, y) = (1, 1): rows (+y) and columns (+x) grow together
    assert img[20 + 10, 20 + 10] == 1.0
    assert img[20 - 10, 20 - 10] == 1.0
    assert img[20 + 10, 20 - 10] == 0.0


def test_combine_replace_paints_over() -> None:
    vol = VolumeGeometry(shape=(21, 21), voxel_size=1.0)
    p = [[1.0, 8.0, 8.0, 0.0, 0.0, 0.0], [3.0, 3.0, 3.0, 0.0, 0.0, 0.0]]
    assert ellipses(vol, p, combine="add", oversample=1)[10, 10] == 4.0
    assert ellipses(vol, p, combine="replace", oversample=1)[10, 10] == 3.0
    assert ellipses(vol, np.zeros((0, 6))).shape == (21, 21)


def test_ellipsoid_axial_slices_are_the_ellipse() -> None:
    vol3 = VolumeGeometry(shape=(4, 23, 31), voxel_size=(1.0, 0.9, 0.8))
    vol2 = VolumeGeometry(shape=(23, 31), voxel_size=(0.9, 0.8))
    ellipsoid = [[2.0, 1e7, 6.3, 9.7, 0.0, 1.1, -0.7, 0.35, 0.0, 0.0]]
    ellipse = [[2.0, 6.3, 9.7, 1.1, -0.7, 0.35]]
    img3 = ellipsoids(vol3, ellipsoid, oversample=3)
    img2 = ellipses(vol2, ellipse, oversample=3)
    for z in range(4):
        np.testing.assert_allclose(img3[z], img2, rtol=0, atol=1e-12)


def test_ellipsoid_theta_quarter_turn_swaps_x_and_z() -> None:
    vol = VolumeGeometry(shape=(20, 20, 20), voxel_size=1.0)
    rotated = [[1.0, 3.1, 5.2, 8.3, 0.0, 0.0, 0.0, 0.0, math.pi / 2, 0.0]]
    swapped = [[1.0, 8.3, 5.2, 3.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    a = ellipsoids(vol, rotated, oversample=2)
    b = ellipsoids(vol, swapped, oversample=2)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    volume = 4 / 3 * math.pi * 3.1 * 5.2 * 8.3
    assert float(a.sum()) == pytest.approx(volume, rel=0.02)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: ellipses(VolumeGeometry(shape=(4, 4, 4)), [[1, 1, 1, 0, 0, 0]]), GeometryError),
        (lambda: ellipsoids(VolumeGeometry(shape=(4, 4)), [[1] * 10]), GeometryError),
        (lambda: ellipses("not a volume", [[1, 1, 1, 0, 0, 0]]), TypeError),
        (lambda: ellipses(VolumeGeometry(shape=(4, 4)), [[1, 1, 1, 0, 0]]), ShapeError),
        (lambda: ellipses(VolumeGeometry(shape=(4, 4)), [1, 1, 1, 0, 0, 0]), ShapeError),
        (lambda: ellipses(VolumeGeometry(shape=(4, 4)), [[1, 1, np.nan, 0, 0, 0]]), NonFiniteError),
        (lambda: ellipses(VolumeGeometry(shape=(4, 4)), [[1, 0.0, 1, 0, 0, 0]]), ValueError),
        (lambda: ellipses(VolumeGeometry(shape=(4, 4)), [["a"] * 6]), TypeError),
        (lambda: ellipses(VolumeGeometry(shape=(4, 4)), [[1] * 6], oversample=0), ValueError),
        (lambda: ellipses(VolumeGeometry(shape=(4, 4)), [[1] * 6], oversample=2.0), TypeError),
        (lambda: ellipses(VolumeGeometry(shape=(4, 4)), [[1] * 6], dtype=np.int32), DtypeError),
        (lambda: ellipses(VolumeGeometry(shape=(4, 4)), [[1] * 6], combine="max"), ValueError),
    ],
)
def test_rasteriser_rejects_bad_input(call: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="expected"):
        call()  # type: ignore[operator]


# --------------------------------------------------------------------------- Shepp-Logan


@pytest.mark.parametrize(
    ("modified", "ventricle", "lesion"), [(True, -250.0, 125.0), (False, -20.408, 10.204)]
)
def test_shepp_logan_hu_of_regions(modified: bool, ventricle: float, lesion: float) -> None:
    vol = VolumeGeometry(shape=(256, 256), voxel_size=1.0)
    img = shepp_logan(vol, modified=modified)  # fov 256 mm: one table unit is 128 mm
    s = 128.0

    def at(x_table: float, y_table: float) -> float:
        return hu_at(img, vol, -y_table * s, x_table * s)

    assert at(0.0, 0.89) == pytest.approx(1000.0, abs=1e-6)  # skull, top of the head
    assert at(0.0, 0.75) == pytest.approx(0.0, abs=1e-6)  # brain
    assert at(0.22, 0.0) == pytest.approx(ventricle, abs=1e-3)
    assert at(0.0, 0.35) == pytest.approx(lesion, abs=1e-3)  # the large top ellipse
    assert at(0.0, 0.12) == pytest.approx(2 * lesion, abs=1e-3)  # two ellipses overlap
    assert float(to_hu(img[0, 0])) == -1000.0
    assert img.min() >= 0.0


def test_shepp_logan_is_upright() -> None:
    vol = VolumeGeometry(shape=(128, 128), voxel_size=2.0)
    img = to_hu(shepp_logan(vol))
    lesion = np.isclose(img[:, 64], 125.0)
    # the large ellipse (table y 0.1..0.6) is in the upper half (rows 26..57), not mirrored
    assert lesion[26:58].sum() > 20 and lesion[71:102].sum() < 8
    # the three small ellipses (table y -0.605) near the bottom, row 102
    assert lesion[102:104].all() and not lesion[24:26].any()
    # the skull is taller than wide: 0.92 vs 0.69 of the unit frame
    skull = img > 900
    assert np.ptp(np.nonzero(skull.any(axis=1))[0]) > np.ptp(np.nonzero(skull.any(axis=0))[0])


def test_shepp_logan_default_fov_and_dtype() -> None:
    vol = VolumeGeometry(shape=(48, 64), voxel_size=2.0)
    img = shepp_logan(vol, dtype=np.float32, oversample=2)
    assert img.dtype == np.float32 and img.shape == (48, 64)
    np.testing.assert_array_equal(img, shepp_logan(vol, fov=96.0, dtype=np.float32, oversample=2))
    assert shepp_logan_params(fov=96.0)[0, 1] == pytest.approx(0.46 * 96.0)


def test_shepp_logan_3d() -> None:
    vol = VolumeGeometry(shape=(40, 40, 40), voxel_size=3.2)  # fov 128 mm, unit = 64 mm
    img = shepp_logan(vol)
    assert img.shape == (40, 40, 40) and img.dtype == np.float64
    s = 64.0
    assert hu_at(img, vol, 0.0, -0.75 * s, 0.0) == pytest.approx(0.0, abs=1e-6)  # brain
    assert hu_at(img, vol, 0.0, 0.0, 0.22 * s) == pytest.approx(-250.0, abs=1e-6)
    # the small ellipsoid at (x, y, z) = (0, -0.1, +0.25) is there, not mirrored to z = -0.25
    hu = to_hu(img)
    iy, ix = round((0.1 * s - vol.origin[1]) / 3.2), round(-vol.origin[2] / 3.2)
    for z, present in ((0.25 * s, True), (-0.25 * s, False)):
        iz = round((z - vol.origin[0]) / 3.2)
        block = hu[iz - 1 : iz + 2, iy - 1 : iy + 2, ix - 1 : ix + 2]
        assert bool(block.max() > 60.0) is present
    # the skull closes at the top and bottom: semi-axis 0.81 along z
    assert hu_at(img, vol, 0.9 * s, 0.0, 0.0) == -1000.0
    assert shepp_logan_params(3, fov=128.0).shape == (10, 10)


def test_shepp_logan_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="fov"):
        shepp_logan(VolumeGeometry(shape=(8, 8)), fov=-1.0)
    with pytest.raises(NonFiniteError, match="fov"):
        shepp_logan(VolumeGeometry(shape=(8, 8)), fov=math.inf)
    with pytest.raises(ValueError, match="ndim"):
        shepp_logan_params(4, fov=1.0)


# --------------------------------------------------------------------------- FORBILD-like head


def test_forbild_head_like_regions() -> None:
    vol = VolumeGeometry(shape=(480, 400), voxel_size=0.5)
    img = forbild_head_like(vol)
    assert hu_at(img, vol, 0.0, 0.0) == pytest.approx(40.0)  # brain
    assert hu_at(img, vol, 0.0, -88.0) == pytest.approx(1000.0)  # skull, patient right
    assert hu_at(img, vol, 0.0, 93.0) == pytest.approx(40.0)  # scalp
    assert hu_at(img, vol, -101.0, -9.0) == pytest.approx(-1000.0)  # frontal sinus (anterior)
    assert hu_at(img, vol, -10.0, 14.0) == pytest.approx(8.0)  # lateral ventricle
    assert hu_at(img, vol, 75.0, 0.0) == pytest.approx(43.0)  # low-contrast lesion
    assert hu_at(img, vol, 12.0, 70.0) == pytest.approx(-1000.0)  # air cell in the ear
    assert hu_at(img, vol, 12.0, 66.0) == pytest.approx(1000.0)  # its bone
    assert hu_at(img, vol, 119.5, 0.0) == pytest.approx(-1000.0)  # outside
    vol3 = VolumeGeometry(shape=(2, 60, 50), voxel_size=4.0)
    img3 = forbild_head_like(vol3, dtype=np.float32)
    assert img3.shape == (2, 60, 50) and img3.dtype == np.float32
    np.testing.assert_array_equal(img3[0], img3[1])


# --------------------------------------------------------------------------- thorax


def test_thorax_regions_and_rois() -> None:
    vol = VolumeGeometry(shape=(140, 200), voxel_size=2.0)
    img = to_hu(thorax_slice(vol))
    rois = thorax_slice_rois(vol)
    expected = {
        "fat": -100.0,
        "soft_tissue": 40.0,
        "lung": -850.0,
        "heart": 40.0,
        "aorta": 50.0,
        "bone": 700.0,
        "uniform_soft_tissue": 40.0,
    }
    for name, hu in expected.items():
        mask = rois[name]
        assert mask.dtype == bool and mask.shape == vol.shape
        assert mask.sum() > 5, name
        np.testing.assert_allclose(img[mask], hu, atol=1e-9, err_msg=name)
    disc = rois["uniform_soft_tissue"]
    assert disc.sum() == pytest.approx(math.pi * 20.0**2 / 4.0, rel=0.2)
    assert not np.any(disc & ~rois["heart"]) and not np.any(rois["heart"] & ~rois["body"])
    assert not np.any(rois["lung"] & rois["bone"])
    # a 350 x 250 mm body (x by y), upright: sternum above the spine
    inside = img > -1000.0
    width = np.ptp(np.nonzero(inside.any(axis=0))[0]) + 1
    height = np.ptp(np.nonzero(inside.any(axis=1))[0]) + 1
    assert width * 2.0 == pytest.approx(350.0, abs=4.0)
    assert height * 2.0 == pytest.approx(250.0, abs=4.0)
    bone_rows = np.nonzero(rois["bone"][:, 98:102].any(axis=1))[0]
    assert bone_rows.min() < 30 and bone_rows.max() > 110
    # the patient's right lung (-x, left of the display) is the larger one
    lung = rois["lung"]
    assert lung[:, :100].sum() > lung[:, 100:].sum()


def test_thorax_contrast_and_3d() -> None:
    vol = VolumeGeometry(shape=(3, 70, 100), voxel_size=(1.0, 4.0, 4.0))
    img = to_hu(thorax_slice(vol, contrast=True, oversample=2))
    rois = thorax_slice_rois(vol, oversample=2)
    assert img.shape == rois["aorta"].shape == (3, 70, 100)
    assert rois["aorta"].sum() >= 6
    np.testing.assert_allclose(img[rois["aorta"]], THORAX_HU["blood_contrast"], atol=1e-9)
    np.testing.assert_array_equal(img[0], img[2])


# --------------------------------------------------------------------------- random ellipses


def test_random_ellipses_seeded_nonnegative_inside_fov() -> None:
    vol = VolumeGeometry(shape=(64, 64), voxel_size=1.0)
    a = random_ellipses(vol, rng=np.random.default_rng(3), n_ellipses=(5, 15))
    b = random_ellipses(vol, rng=3)
    c = random_ellipses(vol, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() > 0.0
    # nothing outside the disc of diameter fov (voxel centres more than a half diagonal out)
    for img, fov in ((a, 64.0), (random_ellipses(vol, rng=5, fov=40.0), 40.0)):
        y, x = np.meshgrid(vol.coords(0), vol.coords(1), indexing="ij")
        outside = np.hypot(y, x) > fov / 2 + math.sqrt(0.5)
        assert np.all(img[outside] == 0.0)
    p = random_ellipse_params(np.random.default_rng(0), radius=10.0, n_ellipses=7)
    assert p.shape == (7, 6)
    assert np.all((p[:, 0] >= 0.1 * MU_WATER) & (p[:, 0] <= MU_WATER))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_ellipses": 0}, ValueError),
        ({"n_ellipses": (5, 3)}, ValueError),
        ({"n_ellipses": (0, 3)}, ValueError),
        ({"n_ellipses": 2.5}, TypeError),
        ({"n_ellipses": (1, 2, 3)}, TypeError),
        ({"n_ellipses": True}, TypeError),
        ({"value_range": (-1.0, 1.0)}, ValueError),
        ({"axis_range": (0.0, 0.5)}, ValueError),
        ({"axis_range": (0.1, 1.5)}, ValueError),
        ({"fov": 0.0}, ValueError),
        ({"rng": None}, TypeError),
    ],
)
def test_random_ellipses_rejects_bad_input(kwargs: dict, error: type[Exception]) -> None:
    args = {"rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(error, match="expected"):
        random_ellipses(VolumeGeometry(shape=(8, 8)), **args)


def test_random_ellipses_refuses_3d() -> None:
    with pytest.raises(GeometryError, match="2D"):
        random_ellipses(VolumeGeometry(shape=(4, 8, 8)), rng=0)


# --------------------------------------------------------------------------- units


def test_unit_constants() -> None:
    assert math.isclose(MU_WATER, 0.01929)  # 0.1929 cm^2/g (NIST XCOM, 70 keV) in 1/mm
    assert math.isclose(MU_AIR, 2.117e-5, rel_tol=1e-3)
    assert to_hu(MU_WATER) == 0.0
    assert to_hu(0.0) == pytest.approx(-1000.0, abs=1e-9)
    assert to_hu(MU_AIR, mu_air=MU_AIR) == pytest.approx(-1000.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hu_round_trip_numpy(dtype: type, rng: np.random.Generator) -> None:
    hu = rng.uniform(-1000.0, 3000.0, (5, 7)).astype(dtype)
    mu = from_hu(hu)
    assert isinstance(mu, np.ndarray) and mu.dtype == dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(to_hu(mu), hu, rtol=rtol, atol=1e-3 if dtype == np.float32 else 0)
    back = from_hu(to_hu(mu, mu_air=MU_AIR), mu_air=MU_AIR)
    np.testing.assert_allclose(back, mu, rtol=1e-5 if dtype == np.float32 else 1e-13)


def test_hu_round_trip_torch_int_and_scalar() -> None:
    t = torch.tensor([-1000.0, 0.0, 40.0, 1000.0], dtype=torch.float32)
    mu = from_hu(t)
    assert isinstance(mu, torch.Tensor) and mu.dtype == torch.float32
    torch.testing.assert_close(to_hu(mu), t, rtol=1e-6, atol=1e-3)
    ints = from_hu(np.array([-1000, 0, 1000], dtype=np.int16))
    assert ints.dtype == np.float64
    np.testing.assert_allclose(ints, [0.0, MU_WATER, 2 * MU_WATER], rtol=1e-15)
    ti = from_hu(torch.tensor([0, 1000]))
    assert ti.dtype == torch.float64
    assert isinstance(to_hu(0.01), float)
    assert from_hu(1000.0, mu_water=0.02) == pytest.approx(0.04)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"mu_water": -0.01}, ValueError),
        ({"mu_water": math.nan}, ValueError),
        ({"mu_water": 0.01, "mu_air": 0.02}, ValueError),
        ({"mu_water": "water"}, TypeError),
    ],
)
def test_hu_rejects_bad_scale(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error, match="expected"):
        to_hu(np.zeros(3), **kwargs)
    with pytest.raises(TypeError, match="expected"):
        from_hu(np.array(["a"]))
