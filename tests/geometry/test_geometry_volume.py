"""VolumeGeometry: construction, index -> coordinate rule, validation, immutability."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from medrecon.errors import GeometryError
from medrecon.geometry import VolumeGeometry


def test_2d_properties() -> None:
    vol = VolumeGeometry(shape=(4, 6), voxel_size=(2.0, 0.5), center=(10.0, -3.0))
    assert vol.ndim == 2
    assert vol.shape == (4, 6)
    assert vol.voxel_size == (2.0, 0.5)
    assert vol.center == (10.0, -3.0)
    assert vol.size == (8.0, 3.0)
    assert vol.origin == (10.0 - 3.0, -3.0 - 1.25)
    assert vol.extent == ((6.0, 14.0), (-4.5, -1.5))
    assert vol.n_voxels == 24
    np.testing.assert_array_equal(vol.coords(0), [7.0, 9.0, 11.0, 13.0])
    np.testing.assert_array_equal(vol.coords(-1), -3.0 + (np.arange(6) - 2.5) * 0.5)


def test_3d_scalar_arguments_apply_to_every_axis() -> None:
    vol = VolumeGeometry(shape=(2, 3, 5), voxel_size=0.25, center=1.0)
    assert vol.ndim == 3
    assert vol.voxel_size == (0.25, 0.25, 0.25)
    assert vol.center == (1.0, 1.0, 1.0)
    assert vol.size == (0.5, 0.75, 1.25)
    assert vol.n_voxels == 30


def test_defaults_are_unit_voxels_centred_at_origin() -> None:
    vol = VolumeGeometry(shape=(3, 4))
    assert vol.voxel_size == (1.0, 1.0)
    assert vol.center == (0.0, 0.0)
    assert vol.extent == ((-1.5, 1.5), (-2.0, 2.0))


def test_index_to_coordinate_rule_increases_with_index() -> None:
    rng = np.random.default_rng(0)
    shape = (5, 7, 4)
    voxel = tuple(rng.uniform(0.1, 3.0, 3))
    center = tuple(rng.uniform(-50, 50, 3))
    vol = VolumeGeometry(shape=shape, voxel_size=voxel, center=center)
    for axis in range(3):
        n = shape[axis]
        expected = center[axis] + (np.arange(n) - (n - 1) / 2) * voxel[axis]
        np.testing.assert_allclose(vol.coords(axis), expected, rtol=0, atol=1e-12)
        assert np.all(np.diff(vol.coords(axis)) > 0)
        assert vol.coords(axis)[0] == pytest.approx(vol.origin[axis])
        lo, hi = vol.extent[axis]
        assert vol.coords(axis)[0] - voxel[axis] / 2 == pytest.approx(lo)
        assert vol.coords(axis)[-1] + voxel[axis] / 2 == pytest.approx(hi)


def test_accepts_numpy_integers_and_arrays() -> None:
    vol = VolumeGeometry(shape=np.array([3, 4]), voxel_size=np.array([1.0, 2.0]))
    assert vol.shape == (3, 4)
    assert all(type(n) is int for n in vol.shape)
    assert vol.voxel_size == (1.0, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"shape": 5}, "shape"),
        ({"shape": (5,)}, "shape"),
        ({"shape": (2, 3, 4, 5)}, "shape"),
        ({"shape": (0, 4)}, "shape[0]"),
        ({"shape": (4, -1)}, "shape[1]"),
        ({"shape": (4.0, 3)}, "shape[0]"),
        ({"shape": (True, 3)}, "shape[0]"),
        ({"shape": "ab"}, "shape"),
        ({"shape": (4, 4), "voxel_size": 0.0}, "voxel_size"),
        ({"shape": (4, 4), "voxel_size": -1.0}, "voxel_size"),
        ({"shape": (4, 4), "voxel_size": np.nan}, "voxel_size"),
        ({"shape": (4, 4), "voxel_size": np.inf}, "voxel_size"),
        ({"shape": (4, 4), "voxel_size": (1.0, 2.0, 3.0)}, "voxel_size"),
        ({"shape": (4, 4), "voxel_size": (1.0, 0.0)}, "voxel_size[1]"),
        ({"shape": (4, 4), "voxel_size": "1"}, "voxel_size"),
        ({"shape": (4, 4), "center": np.nan}, "center"),
        ({"shape": (4, 4), "center": (0.0,)}, "center"),
        ({"shape": (4, 4), "center": (0.0, np.inf)}, "center[1]"),
    ],
)
def test_invalid_input_raises_geometry_error(kwargs: dict, fragment: str) -> None:
    with pytest.raises(GeometryError) as info:
        VolumeGeometry(**kwargs)
    message = str(info.value)
    assert fragment in message
    assert "expected" in message and "got" in message


def test_geometry_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="voxel_size"):
        VolumeGeometry(shape=(2, 2), voxel_size=0)


def test_keyword_only_and_unknown_keywords() -> None:
    with pytest.raises(TypeError):
        VolumeGeometry((2, 2))  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        VolumeGeometry(shape=(2, 2), spacing=1.0)  # type: ignore[call-arg]


def test_coords_rejects_bad_axis() -> None:
    vol = VolumeGeometry(shape=(2, 3))
    for axis in (2, -3, 0.5):
        with pytest.raises(GeometryError, match="axis"):
            vol.coords(axis)  # type: ignore[arg-type]


def test_immutable() -> None:
    vol = VolumeGeometry(shape=(2, 3))
    with pytest.raises(AttributeError):
        vol.shape = (3, 3)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        vol._shape = (3, 3)
    with pytest.raises(AttributeError):
        del vol._shape
    with pytest.raises(AttributeError):
        vol.new_attribute = 1


def test_equality_and_hash() -> None:
    a = VolumeGeometry(shape=(2, 3), voxel_size=0.5)
    b = VolumeGeometry(shape=[2, 3], voxel_size=(0.5, 0.5), center=(0.0, -0.0))
    assert a == b
    assert hash(a) == hash(b)
    assert a != VolumeGeometry(shape=(2, 3), voxel_size=0.5, center=(0.0, 1.0))
    assert a != VolumeGeometry(shape=(3, 2), voxel_size=0.5)
    assert a != VolumeGeometry(shape=(1, 2, 3), voxel_size=0.5)
    assert a != "VolumeGeometry"
    assert len({a, b}) == 1


def test_repr_round_trips_and_pickle() -> None:
    vol = VolumeGeometry(shape=(2, 3, 4), voxel_size=(0.5, 1.0, 2.0), center=(1.0, 2.0, 3.0))
    assert eval(repr(vol), {"VolumeGeometry": VolumeGeometry}) == vol
    assert pickle.loads(pickle.dumps(vol)) == vol
