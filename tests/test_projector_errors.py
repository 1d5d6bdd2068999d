"""Bad input raises typed errors that say what was expected and what was received.

Also: the caller's arrays are never modified, and read-only arrays work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from medrecon import (
    ConeBeam3D,
    ConeBeamVec,
    FanBeam2D,
    ParallelBeam2D,
    ParallelBeam3D,
    Projector,
    VolumeGeometry,
)
from medrecon.errors import (
    DtypeError,
    GeometryError,
    MedreconError,
    NonFiniteError,
    NotDifferentiableError,
    ShapeError,
    UnknownBackendError,
)

ANGLES = np.linspace(0, np.pi, 6, endpoint=False)
VOL2 = VolumeGeometry(shape=(8, 10), voxel_size=(1.0, 0.8))
VOL3 = VolumeGeometry(shape=(4, 6, 5))
PAR2 = ParallelBeam2D(angles=ANGLES, n_det=12)
CONE = ConeBeam3D(angles=ANGLES, det_shape=(5, 7), det_spacing=1.5, src_iso=30.0, iso_det=20.0)


def _projectors() -> dict[str, Projector]:
    fan = FanBeam2D(angles=ANGLES, n_det=12, det_spacing=1.3, src_iso=30.0, iso_det=20.0)
    return {
        "parallel2d": Projector(PAR2, VOL2),
        "fan2d": Projector(fan, VOL2),
        "cone3d": Projector(CONE, VOL3),
    }


PROJECTORS = list(_projectors())


def _ops(A: Projector) -> dict[str, tuple[Any, tuple[int, ...]]]:
    """Every entry point with the core shape of its input."""
    return {
        "forward": (A.forward, A.domain_shape),
        "adjoint": (A.adjoint, A.range_shape),
        "backproject": (A.backproject, A.range_shape),
        "T": (A.T, A.range_shape),
    }


OPS = ["forward", "adjoint", "backproject", "T"]


# --------------------------------------------------------------- input data


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", PROJECTORS)
def test_wrong_shape_raises_shape_error(name: str, op: str) -> None:
    A = _projectors()[name]
    fn, core = _ops(A)[op]
    bad = np.zeros((*core[:-1], core[-1] + 1))
    expected = ", ".join(map(str, core))
    with pytest.raises(ShapeError, match=rf"expected shape \(\.\.\., {expected}\), got"):
        fn(bad)
    with pytest.raises(ShapeError, match=r"expected shape .* got \(" + str(core[-1]) + r",\)"):
        fn(np.zeros(core[-1:]))  # too few dimensions
    # a ShapeError is also a ValueError and a MedreconError
    with pytest.raises(ValueError):
        fn(bad)
    with pytest.raises(MedreconError):
        fn(bad)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_input_raises(op: str, bad_value: float) -> None:
    A = _projectors()["fan2d"]
    fn, core = _ops(A)[op]
    x = np.ones(core)
    x.flat[3] = bad_value
    n_nan, n_inf = (1, 0) if np.isnan(bad_value) else (0, 1)
    with pytest.raises(
        NonFiniteError, match=rf"expected finite values, got {n_nan} NaN and {n_inf}"
    ):
        fn(x)


def test_non_finite_check_can_be_switched_off() -> None:
    A = Projector(PAR2, VOL2, check_finite=False)
    x = np.zeros(VOL2.shape)
    x[0, 0] = np.nan
    out = A(x)
    assert np.isnan(out).any()


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    "dtype", [np.int32, np.int64, np.complex128, np.float16, np.bool_], ids=str
)
def test_unsupported_dtype_raises_dtype_error(op: str, dtype: Any) -> None:
    A = _projectors()["cone3d"]
    fn, core = _ops(A)[op]
    x = np.ones(core, dtype=dtype)
    with pytest.raises(
        DtypeError, match=rf"expected dtype float32 or float64, got {np.dtype(dtype)}"
    ):
        fn(x)
    with pytest.raises(TypeError):  # DtypeError is a TypeError
        fn(x)


@pytest.mark.parametrize("op", OPS)
def test_fixed_dtype_projector_refuses_other_dtype(op: str) -> None:
    A = Projector(PAR2, VOL2, dtype=np.float32)
    fn, core = _ops(A)[op]
    with pytest.raises(DtypeError, match="created for float32, got an input of dtype float64"):
        fn(np.ones(core, dtype=np.float64))
    assert fn(np.ones(core, dtype=np.float32)).dtype == np.float32


def test_projector_dtype_argument_is_checked() -> None:
    with pytest.raises(DtypeError, match="expected None, float32 or float64, got int64"):
        Projector(PAR2, VOL2, dtype=np.int64)


def test_torch_complex_and_integer_tensors_raise() -> None:
    A = _projectors()["parallel2d"]
    with pytest.raises(DtypeError, match="got int64"):
        A(torch.ones(VOL2.shape, dtype=torch.int64))
    with pytest.raises(DtypeError, match="got complex64"):
        A(torch.ones(VOL2.shape, dtype=torch.complex64))


def test_backproject_of_a_tensor_requiring_grad_raises() -> None:
    A = _projectors()["parallel2d"]
    y = torch.ones(A.range_shape, dtype=torch.float64, requires_grad=True)
    with pytest.raises(NotDifferentiableError, match=r"use Projector\.adjoint"):
        A.backproject(y)


# ------------------------------------------------------ construction errors


def test_geometry_volume_dimension_mismatch() -> None:
    with pytest.raises(GeometryError, match=r"geometry is 2D, volume is 3D \(shape \(4, 6, 5\)\)"):
        Projector(PAR2, VOL3)
    with pytest.raises(GeometryError, match=r"geometry is 3D, volume is 2D"):
        Projector(CONE, VOL2)


def test_volume_and_geometry_types_are_checked() -> None:
    with pytest.raises(GeometryError, match="volume: expected a VolumeGeometry, got tuple"):
        Projector(PAR2, (8, 10))  # type: ignore[arg-type]
    with pytest.raises(GeometryError, match="geometry: expected a projection geometry, got dict"):
        Projector({"angles": ANGLES}, VOL2)


def test_unknown_backend() -> None:
    with pytest.raises(
        UnknownBackendError, match=r"unknown projector backend 'tpu'; expected one of"
    ):
        Projector(PAR2, VOL2, backend="tpu")
    with pytest.raises(ValueError):  # UnknownBackendError is a ValueError
        Projector(PAR2, VOL2, backend="CPU")


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"backend 'cpu' takes no options, got \['n_threads'\]"):
        Projector(PAR2, VOL2, n_threads=4)


def test_unknown_weighting() -> None:
    A = _projectors()["fan2d"]
    y = np.ones(A.range_shape)
    with pytest.raises(
        ValueError, match=r"weighting: expected one of \['none', 'fdk'\], got 'hann'"
    ):
        A.backproject(y, weighting="hann")


_POS = r"expected a finite number > 0 \(in mm\), got "
_FAN = {"n_det": 8, "det_spacing": 1.0, "src_iso": 5.0, "iso_det": 5.0}
_CONE = {"det_shape": (4, 4), "det_spacing": 1.0, "src_iso": 5.0, "iso_det": 5.0}
_EMPTY3 = np.zeros((0, 3))

INVALID_GEOMETRIES = [
    pytest.param(
        lambda: ParallelBeam2D(angles=ANGLES, n_det=8, det_spacing=0.0),
        "det_spacing: " + _POS + "0.0",
        id="zero-spacing",
    ),
    pytest.param(
        lambda: ParallelBeam2D(angles=ANGLES, n_det=8, det_spacing=np.nan),
        "det_spacing: " + _POS + "nan",
        id="nan-spacing",
    ),
    pytest.param(
        lambda: ParallelBeam2D(angles=ANGLES, n_det=8, det_spacing=np.inf),
        "det_spacing: " + _POS + "inf",
        id="inf-spacing",
    ),
    pytest.param(
        lambda: ParallelBeam2D(angles=ANGLES, n_det=8, det_spacing=-1.0),
        "det_spacing: " + _POS + "-1.0",
        id="negative-spacing",
    ),
    pytest.param(
        lambda: ParallelBeam2D(angles=[], n_det=8),
        "angles: expected at least one angle, got an empty array",
        id="empty-angles-2d",
    ),
    pytest.param(
        lambda: ParallelBeam2D(angles=[0.0, np.nan], n_det=8),
        r"angles: expected finite values \(radians\), got 1 non-finite",
        id="nan-angle",
    ),
    pytest.param(
        lambda: ParallelBeam2D(angles=ANGLES, n_det=0),
        "n_det: expected an integer >= 1, got 0",
        id="zero-detectors",
    ),
    pytest.param(
        lambda: FanBeam2D(angles=ANGLES, **(_FAN | {"src_iso": 0.0})),
        "src_iso: " + _POS + "0.0",
        id="zero-src-iso",
    ),
    pytest.param(
        lambda: FanBeam2D(angles=ANGLES, **(_FAN | {"iso_det": np.inf})),
        "iso_det: " + _POS + "inf",
        id="inf-iso-det",
    ),
    pytest.param(
        lambda: FanBeam2D(angles=ANGLES, detector="curved", **_FAN),
        "detector: expected one of 'flat', 'arc', got 'curved'",
        id="unknown-detector",
    ),
    pytest.param(
        lambda: ParallelBeam3D(angles=[], det_shape=(4, 4)),
        "angles: expected at least one angle, got an empty array",
        id="empty-angles-3d",
    ),
    pytest.param(
        lambda: ParallelBeam3D(angles=ANGLES, det_shape=(4, 4), det_spacing=(1.0, 0.0)),
        r"det_spacing\[1\]: " + _POS + "0.0",
        id="zero-col-spacing-3d",
    ),
    pytest.param(
        lambda: ConeBeam3D(angles=ANGLES, **(_CONE | {"det_spacing": np.nan})),
        "det_spacing: " + _POS + "nan",
        id="nan-spacing-cone",
    ),
    pytest.param(
        lambda: ConeBeam3D(angles=np.array([]), **_CONE),
        "angles: expected at least one angle, got an empty array",
        id="empty-angles-cone",
    ),
    pytest.param(
        lambda: ConeBeamVec(
            sources=_EMPTY3, det_centers=_EMPTY3, det_u=_EMPTY3, det_v=_EMPTY3, det_shape=(2, 2)
        ),
        r"sources: expected at least one view, got shape \(0, 3\)",
        id="empty-cone-vectors",
    ),
    pytest.param(
        lambda: VolumeGeometry(shape=(4, 4), voxel_size=0.0),
        "voxel_size: expected a finite number > 0, got 0.0",
        id="zero-voxel",
    ),
    pytest.param(
        lambda: VolumeGeometry(shape=(4, 4), voxel_size=(1.0, np.nan)),
        r"voxel_size\[1\]: expected a finite number > 0, got nan",
        id="nan-voxel",
    ),
    pytest.param(
        lambda: VolumeGeometry(shape=(4, 4, 4), voxel_size=(1.0, np.inf, 1.0)),
        r"voxel_size\[1\]: expected a finite number > 0, got inf",
        id="inf-voxel",
    ),
]


@pytest.mark.parametrize(("factory", "match"), INVALID_GEOMETRIES)
def test_invalid_geometry_raises_geometry_error(factory: Any, match: str) -> None:
    with pytest.raises(GeometryError, match=match):
        factory()


# ----------------------------------------------- inputs are never modified


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", PROJECTORS)
def test_input_is_not_modified(name: str, op: str) -> None:
    A = _projectors()[name]
    fn, core = _ops(A)[op]
    rng = np.random.default_rng(40)
    for dtype in (np.float64, np.float32):
        x = rng.random((2, *core)).astype(dtype)
        before = x.copy()
        fn(x)
        np.testing.assert_array_equal(x, before)
        # non-contiguous views too
        xt = np.asfortranarray(x)
        fn(xt)
        np.testing.assert_array_equal(xt, before)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", PROJECTORS)
def test_read_only_input_works(name: str, op: str) -> None:
    A = _projectors()[name]
    fn, core = _ops(A)[op]
    x = np.random.default_rng(41).random(core)
    ro = x.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(fn(ro), fn(x))


def test_torch_input_is_not_modified() -> None:
    A = _projectors()["cone3d"]
    x = torch.rand(A.domain_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    before = x.clone()
    y = A(x)
    A.T(y)
    A.backproject(y)
    assert torch.equal(x, before)
