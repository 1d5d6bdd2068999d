"""The pelvis phantom with metal implants: tissue values, symmetry, implants, ROIs, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medrecon.ct.simulate.metal_phantoms import (
    HIP_IMPLANTS,
    PELVIS_HU,
    Implant,
    MetalPhantom,
    pelvis_slice,
    random_implants,
)
from medrecon.errors import GeometryError
from medrecon.geometry import VolumeGeometry

FINE = VolumeGeometry(shape=(250, 380), voxel_size=1.0)  # exactly the pelvis, 1 mm pixels
MEDIUM = VolumeGeometry(shape=(100, 160), voxel_size=2.5)


@pytest.fixture(scope="module")
def fine() -> MetalPhantom:
    return pelvis_slice(FINE)


@pytest.fixture(scope="module")
def medium() -> MetalPhantom:
    return pelvis_slice(MEDIUM)


def _index(volume: VolumeGeometry, y: float, x: float) -> tuple[int, int]:
    """The pixel whose centre is nearest to the world point (y, x) in mm."""
    iy = int(np.argmin(np.abs(volume.coords(0) - y)))
    ix = int(np.argmin(np.abs(volume.coords(1) - x)))
    return iy, ix


def _world(volume: VolumeGeometry) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(volume.coords(0), volume.coords(1), indexing="ij")


# --------------------------------------------------------------------------- tissue


@pytest.mark.parametrize(
    ("y", "x", "hu"),
    [
        (-120.0, -185.0, -1000.0),  # air, outside the skin
        (2.0, 183.0, -100.0),  # subcutaneous fat between muscle and skin
        (0.0, 0.0, 50.0),  # muscle
        (-45.0, 0.0, 10.0),  # bladder
        (62.0, -12.0, 30.0),  # rectum, beside its gas pocket
        (60.0, 1.0, -1000.0),  # rectal gas
        (96.0, 0.0, 600.0),  # sacrum
        (0.0, -95.0, 250.0),  # right femoral head, cancellous (under the implant)
        (0.0, 95.0, 250.0),  # left femoral head
        (0.0, -95.0 - 23.5, 1000.0),  # cortical ring of the right femoral head
        (0.0, 95.0 + 23.5, 1000.0),
        (-23.5, 95.0, 1000.0),
    ],
)
def test_tissue_values_at_known_points(fine: MetalPhantom, y: float, x: float, hu: float) -> None:
    assert fine.tissue_hu[_index(FINE, y, x)] == pytest.approx(hu, abs=1e-9)


def test_tissue_table_and_range(fine: MetalPhantom) -> None:
    assert PELVIS_HU["muscle"] == 50.0 and PELVIS_HU["bladder"] == 10.0
    assert PELVIS_HU["cancellous_bone"] == 250.0 and PELVIS_HU["cortical_bone"] == 1000.0
    assert fine.tissue_hu.shape == FINE.shape and fine.tissue_hu.dtype == np.float64
    assert fine.tissue_hu.min() == pytest.approx(-1000.0)
    assert fine.tissue_hu.max() == pytest.approx(1000.0)


def test_tissue_does_not_depend_on_the_implants(medium: MetalPhantom) -> None:
    bare = pelvis_slice(MEDIUM, implants=[])
    np.testing.assert_array_equal(bare.tissue_hu, medium.tissue_hu)
    for name in ("body", "bone"):
        np.testing.assert_array_equal(bare.rois[name], medium.rois[name])


def test_left_right_mirror_symmetry(medium: MetalPhantom) -> None:
    """Mirrored along x the slice is itself, except for the rectal gas pocket (at x = +1 mm)."""
    hu = medium.tissue_hu
    differs = np.abs(hu - hu[:, ::-1]) > 1e-9
    y, x = _world(MEDIUM)
    in_rectum = ((y - 62.0) / 16.0) ** 2 + (x / 16.0) ** 2 < 1.0
    assert differs.any()  # the gas pocket is off-centre
    assert not (differs & ~in_rectum).any()
    for name in ("body", "bone"):
        np.testing.assert_array_equal(medium.rois[name], medium.rois[name][:, ::-1])
    np.testing.assert_array_equal(medium.rois["streak_right"], medium.rois["streak_left"][:, ::-1])
    # the default implants are symmetric too
    (fraction,) = medium.metal_fraction.values()
    np.testing.assert_allclose(fraction, fraction[:, ::-1], atol=1e-12)


# --------------------------------------------------------------------------- implants


def test_hip_implants_default() -> None:
    assert len(HIP_IMPLANTS) == 2
    assert {imp.material for imp in HIP_IMPLANTS} == {"titanium"}
    assert sorted(imp.center_x for imp in HIP_IMPLANTS) == [-95.0, 95.0]
    assert all(imp.radius_x == imp.radius_y == 14.0 for imp in HIP_IMPLANTS)


_IMPLANT_CASES = {
    "hip_right": HIP_IMPLANTS[0],
    "hip_left": HIP_IMPLANTS[1],
    "clip": Implant(-30.0, 20.0, 5.0, 5.0, "steel"),
    "ellipse": Implant(40.0, -60.0, 8.0, 12.0),
}


# the area holds to 2% once the implant is a few pixels across (a 5 mm clip on 2.5 mm pixels,
# two pixels in radius, is off by 3%): every implant on 1 mm pixels, the larger ones on 2.5 mm
@pytest.mark.parametrize(
    ("volume", "implant"),
    [(FINE, imp) for imp in _IMPLANT_CASES.values()]
    + [(MEDIUM, _IMPLANT_CASES[name]) for name in ("hip_right", "hip_left", "ellipse")],
    ids=[f"{name}-1mm" for name in _IMPLANT_CASES]
    + [f"{name}-2.5mm" for name in ("hip_right", "hip_left", "ellipse")],
)
def test_metal_fraction_holds_the_implant_area(volume: VolumeGeometry, implant: Implant) -> None:
    ph = pelvis_slice(volume, implants=[implant])
    (fraction,) = ph.metal_fraction.values()
    assert fraction.min() >= 0.0 and fraction.max() <= 1.0
    area = math.pi * implant.radius_y * implant.radius_x
    voxel_area = volume.voxel_size[0] * volume.voxel_size[1]
    assert float(fraction.sum()) == pytest.approx(area / voxel_area, rel=0.02)
    # nothing outside the implant's bounding box
    y, x = _world(volume)
    s = max(volume.voxel_size)
    outside = (np.abs(y - implant.center_y) > implant.radius_y + s) | (
        np.abs(x - implant.center_x) > implant.radius_x + s
    )
    assert not fraction[outside].any()


def test_each_default_implant_fills_its_femoral_head(medium: MetalPhantom) -> None:
    (fraction,) = medium.metal_fraction.values()
    _, x = _world(MEDIUM)
    expected = math.pi * 14.0**2 / 2.5**2
    for side in (x < 0, x > 0):
        assert float(fraction[side].sum()) == pytest.approx(expected, rel=0.02)


def test_metal_mask_is_plausible(medium: MetalPhantom) -> None:
    mask = medium.metal_mask
    assert mask.dtype == np.bool_ and mask.shape == MEDIUM.shape
    expected = 2 * math.pi * 14.0**2 / 2.5**2  # ~197 pixels for the two 28 mm heads
    assert 0.9 * expected <= int(mask.sum()) <= 1.1 * expected
    (fraction,) = medium.metal_fraction.values()
    np.testing.assert_array_equal(mask, fraction >= 0.5)
    # inside the femoral heads
    iy, ix = np.nonzero(mask)
    y, x = MEDIUM.coords(0)[iy], MEDIUM.coords(1)[ix]
    assert np.all(np.hypot(y, np.abs(x) - 95.0) < 14.0 + 2.5)


def test_two_materials_give_two_fraction_maps() -> None:
    implants = [
        Implant(0.0, -95.0, 14.0, 14.0, "titanium"),
        Implant(0.0, 95.0, 12.0, 12.0, "steel"),
    ]
    ph = pelvis_slice(MEDIUM, implants=implants)
    assert sorted(ph.metal_fraction) == ["steel", "titanium"]
    _, x = _world(MEDIUM)
    assert ph.metal_fraction["titanium"][x > 0].sum() == 0.0
    assert ph.metal_fraction["steel"][x < 0].sum() == 0.0
    assert ph.metal_fraction["steel"].sum() < ph.metal_fraction["titanium"].sum()
    assert ph.implants == tuple(implants)
    # the mask counts every material
    assert ph.metal_mask[:, x[0] > 0].any() and ph.metal_mask[:, x[0] < 0].any()


def test_implants_of_one_material_share_a_map_capped_at_one() -> None:
    overlapping = [Implant(0.0, 0.0, 10.0, 10.0), Implant(0.0, 5.0, 10.0, 10.0)]
    ph = pelvis_slice(MEDIUM, implants=overlapping)
    assert list(ph.metal_fraction) == ["titanium"]
    fraction = ph.metal_fraction["titanium"]
    assert fraction.max() == 1.0
    single = pelvis_slice(MEDIUM, implants=overlapping[:1]).metal_fraction["titanium"]
    assert single.sum() < fraction.sum() < 2 * single.sum()


def test_no_implants_no_metal() -> None:
    ph = pelvis_slice(MEDIUM, implants=[])
    assert ph.metal_fraction == {} and ph.implants == ()
    assert ph.metal_mask.shape == MEDIUM.shape and not ph.metal_mask.any()
    assert ph.rois["streak_right"].any() and ph.rois["streak_left"].any()


# --------------------------------------------------------------------------- regions


@pytest.mark.parametrize(
    "volume",
    [
        FINE,
        MEDIUM,
        VolumeGeometry(shape=(64, 64), voxel_size=6.25),  # the notebook's test size
        VolumeGeometry(shape=(40, 60), voxel_size=7.0),  # coarser than 6.7 mm: discs grow
    ],
    ids=["1mm", "2.5mm", "6.25mm", "7mm"],
)
def test_streak_discs_lie_in_uniform_muscle(volume: VolumeGeometry) -> None:
    ph = pelvis_slice(volume)
    metal = sum(ph.metal_fraction.values(), np.zeros(volume.shape))
    y, x = _world(volume)
    for name, side in (("streak_right", -1.0), ("streak_left", 1.0)):
        roi = ph.rois[name]
        assert roi.dtype == np.bool_ and roi.shape == volume.shape
        assert int(roi.sum()) >= 2
        np.testing.assert_array_equal(ph.tissue_hu[roi], PELVIS_HU["muscle"])
        assert not metal[roi].any()
        assert np.all(np.sign(x[roi]) == side)  # right of the patient: left of the display
        assert not (roi & ph.rois["bone"]).any()
        assert np.all(ph.rois["body"][roi])
    r = max(10.0, 1.5 * max(volume.voxel_size))
    disc = ph.rois["streak_left"]
    assert np.all(np.hypot(y[disc] - 15.0, x[disc] - 45.0) <= r)


def test_streak_discs_leave_out_metal() -> None:
    clip = Implant(15.0, 45.0, 3.0, 3.0, "steel")  # a clip in the middle of the left disc
    ph = pelvis_slice(MEDIUM, implants=[clip])
    assert not (ph.rois["streak_left"] & (ph.metal_fraction["steel"] > 0)).any()
    bare = pelvis_slice(MEDIUM, implants=[])
    assert ph.rois["streak_left"].sum() < bare.rois["streak_left"].sum()


def test_body_mask_lies_inside_the_skin(fine: MetalPhantom) -> None:
    body = fine.rois["body"]
    y, x = _world(FINE)
    skin = (y / 125.0) ** 2 + (x / 190.0) ** 2
    assert np.all(skin[body] < 1.0)
    # and covers the inside, one pixel in from the skin
    inside = ((np.abs(y) + 1.5) / 125.0) ** 2 + ((np.abs(x) + 1.5) / 190.0) ** 2 < 1.0
    assert np.all(body[inside])
    # everything outside the body is air
    np.testing.assert_array_equal(fine.tissue_hu[skin > 1.0 + 1e-2], -1000.0)
    # bone is body; bone tissue lies in the bone mask
    bone = fine.rois["bone"]
    assert np.all(body[bone])
    assert np.all(fine.tissue_hu[bone] >= PELVIS_HU["cancellous_bone"] - 1e-9)


# --------------------------------------------------------------------------- 3D and grids


def test_3d_volume_repeats_the_slice() -> None:
    vol3 = VolumeGeometry(shape=(4, 100, 160), voxel_size=(3.0, 2.5, 2.5))
    ph3 = pelvis_slice(vol3)
    ph2 = pelvis_slice(MEDIUM)
    assert ph3.tissue_hu.shape == vol3.shape
    for k in range(vol3.shape[0]):
        np.testing.assert_array_equal(ph3.tissue_hu[k], ph2.tissue_hu)
        np.testing.assert_array_equal(ph3.metal_mask[k], ph2.metal_mask)
        for name, roi in ph2.rois.items():
            np.testing.assert_array_equal(ph3.rois[name][k], roi)
        for material, fraction in ph2.metal_fraction.items():
            np.testing.assert_array_equal(ph3.metal_fraction[material][k], fraction)


@pytest.mark.parametrize(
    "volume",
    [
        VolumeGeometry(shape=(90, 160), voxel_size=2.5),  # 225 mm in y
        VolumeGeometry(shape=(100, 150), voxel_size=2.5),  # 375 mm in x
        VolumeGeometry(shape=(100, 160), voxel_size=2.5, center=(0.0, 60.0)),  # off-centre
        VolumeGeometry(shape=(4, 90, 160), voxel_size=2.5),
    ],
    ids=["short_y", "narrow_x", "off_centre", "3d"],
)
def test_too_small_a_field_of_view_raises(volume: VolumeGeometry) -> None:
    with pytest.raises(GeometryError, match="field of view"):
        pelvis_slice(volume)


def test_exact_field_of_view_is_accepted() -> None:
    ph = pelvis_slice(VolumeGeometry(shape=(100, 152), voxel_size=2.5))  # 250 x 380 mm
    assert ph.tissue_hu.shape == (100, 152)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        pelvis_slice(MEDIUM, implants=[(0.0, 0.0, 5.0, 5.0)])
    with pytest.raises(ValueError, match="oversample"):
        pelvis_slice(MEDIUM, oversample=0)
    with pytest.raises(GeometryError):
        pelvis_slice(VolumeGeometry(shape=(2, 4, 100, 160), voxel_size=2.5))


# --------------------------------------------------------------------------- Implant


@pytest.mark.parametrize(
    "kwargs",
    [
        {"radius_y": 0.0},
        {"radius_x": -1.0},
        {"center_y": math.nan},
        {"center_x": math.inf},
        {"radius_y": math.nan},
        {"material": ""},
        {"material": 3},
    ],
)
def test_implant_validation(kwargs: dict) -> None:
    args = {"center_y": 0.0, "center_x": 0.0, "radius_y": 5.0, "radius_x": 5.0} | kwargs
    with pytest.raises(ValueError):
        Implant(**args)


def test_implant_defaults_to_titanium_and_is_frozen() -> None:
    imp = Implant(1.0, 2.0, 3.0, 4.0)
    assert imp.material == "titanium"
    with pytest.raises(AttributeError):
        imp.radius_x = 5.0  # type: ignore[misc]


# --------------------------------------------------------------------------- random_implants


def _inside_skin(imp: Implant) -> bool:
    t = np.linspace(0.0, 2.0 * np.pi, 64)
    y = imp.center_y + imp.radius_y * np.sin(t)
    x = imp.center_x + imp.radius_x * np.cos(t)
    return bool(np.all((y / 125.0) ** 2 + (x / 190.0) ** 2 < 1.0))


def test_random_implants_reproducible() -> None:
    assert random_implants(7) == random_implants(7)
    assert random_implants(np.random.default_rng(7)) == random_implants(7)
    sets = {random_implants(seed) for seed in range(20)}
    assert len(sets) == 20


@pytest.mark.parametrize(
    ("n_implants", "radius_mm"),
    [((1, 3), (3.0, 16.0)), ((2, 2), (3.0, 5.0)), ((3, 4), (8.0, 12.0)), ((1, 2), (20.0, 25.0))],
)
def test_random_implants_respect_count_radius_and_spacing(
    n_implants: tuple[int, int], radius_mm: tuple[float, float]
) -> None:
    counts = set()
    for seed in range(40):
        imps = random_implants(seed, n_implants=n_implants, radius_mm=radius_mm)
        counts.add(len(imps))
        assert n_implants[0] <= len(imps) <= n_implants[1]
        assert len({imp.material for imp in imps}) == 1  # one material per set
        for imp in imps:
            assert imp.material in ("titanium", "steel")
            assert imp.radius_x == imp.radius_y
            assert radius_mm[0] <= imp.radius_x <= radius_mm[1]
            assert _inside_skin(imp)
        for i, a in enumerate(imps):
            for b in imps[i + 1 :]:
                gap = math.hypot(a.center_y - b.center_y, a.center_x - b.center_x)
                assert gap > a.radius_x + b.radius_x
    if n_implants[0] < n_implants[1]:
        assert len(counts) > 1


def test_random_implants_materials() -> None:
    drawn = {random_implants(seed)[0].material for seed in range(30)}
    assert drawn == {"titanium", "steel"}
    assert {random_implants(s, materials=["gold"])[0].material for s in range(5)} == {"gold"}


def test_random_implants_give_a_phantom() -> None:
    imps = random_implants(3, materials=("titanium", "steel"))
    ph = pelvis_slice(MEDIUM, implants=imps)
    assert set(ph.metal_fraction) == {imps[0].material}
    assert ph.metal_mask.any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_implants": (0, 2)},
        {"n_implants": (3, 1)},
        {"n_implants": (1.0, 2)},
        {"radius_mm": (0.0, 5.0)},
        {"radius_mm": (-1.0, 5.0)},
        {"radius_mm": (6.0, 5.0)},
        {"radius_mm": (math.nan, 5.0)},
        {"materials": ()},
    ],
)
def test_random_implants_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        random_implants(0, **kwargs)


def test_random_implants_bad_types() -> None:
    with pytest.raises(TypeError, match="materials"):
        random_implants(0, materials="steel")  # a name, not a sequence of names
    with pytest.raises(TypeError, match="rng"):
        random_implants("seed")  # type: ignore[arg-type]
