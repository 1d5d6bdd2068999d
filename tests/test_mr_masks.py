"""fastMRI-compatible Cartesian masks (medrecon.mr.masks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medrecon.errors import ShapeError
from medrecon.mr.masks import center_lines, equispaced_mask, random_mask


def _lines(mask: np.ndarray) -> list[int]:
    return np.flatnonzero(mask.reshape(-1)).tolist()


@pytest.mark.parametrize(
    ("num_cols", "cf", "expected"),
    [
        (16, 0.25, (6, 4)),
        (16, 0.125, (7, 2)),
        (15, 0.2, (6, 3)),
        (368, 0.08, (170, 29)),
        (320, 0.04, (154, 13)),
        (10, 0.25, (4, 2)),
    ],  # 2.5 rounds half to even -> 2
)
def test_center_lines(num_cols: int, cf: float, expected: tuple[int, int]) -> None:
    assert center_lines(num_cols, cf) == expected


@pytest.mark.parametrize("mask_fn", [random_mask, equispaced_mask])
@pytest.mark.parametrize(("num_cols", "cf", "acc"), [(368, 0.08, 4), (320, 0.04, 8), (64, 0.08, 4)])
def test_centre_band_exact(mask_fn, num_cols: int, cf: float, acc: int) -> None:  # type: ignore[no-untyped-def]
    pad, num_low = center_lines(num_cols, cf)
    m = mask_fn((4, 8, num_cols), cf, acc, seed=3)
    assert m.shape == (1, 1, num_cols) and m.dtype == bool
    assert m[0, 0, pad : pad + num_low].all()
    assert num_low == round(num_cols * cf)


def test_random_acceleration_on_average() -> None:
    num_cols, cf, acc = 368, 0.08, 4
    counts = [random_mask((640, num_cols), cf, acc, seed=s).sum() for s in range(400)]
    assert np.mean(counts) == pytest.approx(num_cols / acc, rel=0.02)


@pytest.mark.parametrize(
    ("num_cols", "cf", "acc"), [(368, 0.08, 4), (320, 0.04, 8), (372, 0.08, 4)]
)
def test_equispaced_acceleration_exact(num_cols: int, cf: float, acc: int) -> None:
    for seed in range(10):
        n = int(equispaced_mask((num_cols,), cf, acc, seed=seed).sum())
        assert abs(n - num_cols / acc) <= 2, (seed, n)


def test_reproducible_and_seed_dependent() -> None:
    for fn in (random_mask, equispaced_mask):
        a = fn((320, 368), 0.08, 4, seed=7)
        np.testing.assert_array_equal(a, fn((320, 368), 0.08, 4, seed=7))
        others = [fn((320, 368), 0.08, 4, seed=s) for s in range(8, 14)]
        assert any(not np.array_equal(a, b) for b in others)


def test_random_follows_fastmri_draws() -> None:
    # num_cols 16, center_fraction 0.125 -> num_low 2, pad 7; prob = (16/4 - 2) / 14 = 1/7
    draws = np.random.RandomState(0).uniform(size=16)
    expected = set(np.flatnonzero(draws < 1 / 7).tolist()) | {7, 8}
    assert _lines(random_mask((16,), 0.125, 4, seed=0)) == sorted(expected)
    # by hand: RandomState(0).uniform(size=16) is 0.549, 0.715, ..., 0.926, 0.071, 0.087;
    # only the last two are < 1/7 = 0.143, plus the band 7, 8
    assert _lines(random_mask((16,), 0.125, 4, seed=0)) == [7, 8, 14, 15]


def test_hand_derived_small_cases() -> None:
    # num_cols 16, center_fraction 0.25, acceleration 4: num_low = 4, pad = (16-4+1)//2 = 6.
    # random: prob = (16/4 - 4) / 12 = 0 -> only the band, whatever the seed
    for seed in range(5):
        assert _lines(random_mask((8, 16), 0.25, 4, seed=seed)) == [6, 7, 8, 9]
    # equispaced, fraction matched: the band is the whole budget -> band only
    assert _lines(equispaced_mask((8, 16), 0.25, 4, seed=0)) == [6, 7, 8, 9]
    # equispaced every 4th line (fastMRI 0.3 EquispacedMaskFunc), offset 0 / 1
    assert _lines(equispaced_mask((16,), 0.25, 4, match_fraction=False, offset=0)) == [
        0,
        4,
        6,
        7,
        8,
        9,
        12,
    ]
    assert _lines(equispaced_mask((16,), 0.25, 4, match_fraction=False, offset=1)) == [
        1,
        5,
        6,
        7,
        8,
        9,
        13,
    ]
    # center_fraction 0.125: num_low 2, pad 7; adjusted = 4 * (2-16) / (2*4-16) = 7
    # offset 0 -> arange(0, 15, 7) = 0, 7, 14; offset 3 -> 3, 10
    assert _lines(equispaced_mask((16,), 0.125, 4, offset=0)) == [0, 7, 8, 14]
    assert _lines(equispaced_mask((16,), 0.125, 4, offset=3)) == [3, 7, 8, 10]
    # seeded offset = RandomState(seed).randint(0, round(7))
    for seed in range(6):
        off = np.random.RandomState(seed).randint(0, 7)
        expected = sorted({*range(off, 15, 7), 7, 8})
        assert _lines(equispaced_mask((16,), 0.125, 4, seed=seed)) == expected


def test_non_integer_adjusted_spacing_rounds() -> None:
    # 20 cols, cf 0.1 -> num_low 2, pad 9; adjusted = 4*(2-20)/(8-20) = 6
    assert _lines(equispaced_mask((20,), 0.1, 4, offset=1)) == [1, 7, 9, 10, 13]
    # 24 cols, cf 0.125 -> num_low 3, pad 11; adjusted = 5*(3-24)/(15-24) = 11.666...
    # arange(2, 23, 11.67) = 2, 13.67 -> rounded 2, 14
    assert _lines(equispaced_mask((24,), 0.125, 5, offset=2)) == [2, 11, 12, 13, 14]


def test_errors() -> None:
    with pytest.raises(ShapeError):
        random_mask((), 0.08, 4, seed=0)
    with pytest.raises(ShapeError):
        random_mask((4, 0), 0.08, 4, seed=0)
    with pytest.raises(ValueError, match="center_fraction"):
        random_mask((16,), 1.5, 4, seed=0)
    with pytest.raises(ValueError, match="acceleration"):
        equispaced_mask((16,), 0.1, 0.5, seed=0)
    with pytest.raises(ValueError, match="centre lines"):
        random_mask((16,), 0.5, 4, seed=0)
    with pytest.raises(ValueError, match="centre lines"):
        equispaced_mask((16,), 0.5, 4, seed=0)
    with pytest.raises(ValueError, match="integer"):
        equispaced_mask((16,), 0.1, 2.5, match_fraction=False, seed=0)


_FASTMRI = json.loads((Path(__file__).parent / "data" / "fastmri_masks.json").read_text())


@pytest.mark.parametrize(
    "case",
    _FASTMRI["cases"],
    ids=lambda c: "-".join(
        str(c[k]) for k in ("kind", "num_cols", "center_fraction", "acceleration", "seed")
    ),
)
def test_identical_to_fastmri_reference_masks(case: dict) -> None:  # type: ignore[type-arg]
    """Masks recorded from fastMRI 0.3.0's own mask functions (tests/data/fastmri_masks.json)."""
    shape = (15, 640, case["num_cols"])  # (coils, readout, phase encode): lines on the last axis
    args = (shape, case["center_fraction"], case["acceleration"])
    if case["kind"] == "random":
        m = random_mask(*args, seed=case["seed"])
    else:
        fraction = case["kind"] == "equispaced_fraction"
        m = equispaced_mask(*args, seed=case["seed"], match_fraction=fraction)
    assert _lines(m) == case["lines"]
    assert center_lines(case["num_cols"], case["center_fraction"])[1] == case["num_low"]
