"""Simulated MR data: phantom contrast, coil maps, k-space noise and masks."""

from __future__ import annotations

import numpy as np
import pytest

from medrecon.errors import ShapeError
from medrecon.mr import ifft2c
from medrecon.mr.simulate import TISSUES, birdcage_maps, brain_phantom, simulate_kspace


def _centre_values(img: np.ndarray) -> dict[str, float]:
    n = img.shape[0]
    # (row, col) inside each tissue at n = 128: ventricle, white matter, scalp
    pick = {"csf": (n // 2, int(0.39 * n)), "wm": (n // 2, int(0.69 * n)), "scalp": (3, n // 2)}
    return {k: float(abs(img[r, c])) for k, (r, c) in pick.items()}


def test_t2_weighting_makes_csf_brightest() -> None:
    v = _centre_values(brain_phantom(128))
    assert v["csf"] == pytest.approx(1.0, abs=1e-6)
    assert v["csf"] > v["wm"] > 0.2


def test_t1_weighting_inverts_csf_and_matches_tissue_table() -> None:
    img = brain_phantom(128, tr=500.0, te=15.0)
    v = _centre_values(img)
    assert v["csf"] < v["wm"]
    # ratios follow the spin-echo equation of the tissue table
    wm = TISSUES["white_matter"].spin_echo(500.0, 15.0)
    csf = TISSUES["csf"].spin_echo(500.0, 15.0)
    assert v["csf"] / v["wm"] == pytest.approx(csf / wm, rel=1e-5)


def test_background_phase_is_smooth_and_magnitude_unchanged() -> None:
    a = brain_phantom(64)
    b = brain_phantom(64, phase=1.5, dtype=np.complex128)
    np.testing.assert_allclose(abs(b), abs(a), atol=1e-6)
    assert np.isrealobj(a) is False and float(abs(a.imag).max()) == 0.0
    ph = np.angle(b)[abs(b) > 0.3]
    assert float(np.ptp(ph)) > 0.5


def test_birdcage_maps_normalised_distinct_and_smooth() -> None:
    s = birdcage_maps((48, 64), 8, dtype=np.complex128)
    assert s.shape == (8, 48, 64)
    np.testing.assert_allclose((abs(s) ** 2).sum(axis=0), 1.0, atol=1e-12)
    # each coil is brightest on its own side: coil 0 (angle 0) on the right, coil 4 on the left
    assert abs(s[0][:, -1]).mean() > 2 * abs(s[0][:, 0]).mean()
    assert abs(s[4][:, 0]).mean() > 2 * abs(s[4][:, -1]).mean()
    # smooth, with no phase wrap: neighbouring pixels differ by a small step that halves
    # when the grid is twice as fine (a jump would not shrink)
    step = max(float(abs(np.diff(s, axis=a)).max()) for a in (1, 2))
    fine = birdcage_maps((96, 128), 8, dtype=np.complex128)
    step_fine = max(float(abs(np.diff(fine, axis=a)).max()) for a in (1, 2))
    assert step < 0.2
    assert step_fine < 0.65 * step


def test_simulate_kspace_is_the_sense_model_with_noise_of_stated_std() -> None:
    x = brain_phantom(64)
    s = birdcage_maps(64, 4)
    clean = simulate_kspace(x, s)
    np.testing.assert_allclose(ifft2c(clean), s * x, atol=1e-6)
    noisy = simulate_kspace(x, s, noise_std=0.05, seed=3)
    d = noisy - clean
    assert float(d.real.std()) == pytest.approx(0.05, rel=0.03)
    assert float(d.imag.std()) == pytest.approx(0.05, rel=0.03)
    again = simulate_kspace(x, s, noise_std=0.05, seed=3)
    np.testing.assert_array_equal(noisy, again)
    mask = np.zeros((1, 64), bool)
    mask[0, ::4] = True
    under = simulate_kspace(x, s, mask, noise_std=0.05, seed=3)
    assert np.all(under[..., ~mask[0]] == 0)
    np.testing.assert_array_equal(under[..., mask[0]], noisy[..., mask[0]])


def test_simulate_kspace_batches_slices() -> None:
    x = np.stack([brain_phantom(32), 0.5 * brain_phantom(32)])
    k = simulate_kspace(x, birdcage_maps(32, 2))
    assert k.shape == (2, 2, 32, 32)
    np.testing.assert_allclose(k[1], 0.5 * k[0], atol=1e-6)


@pytest.mark.parametrize(
    ("image", "maps", "mask"),
    [
        (np.zeros((32, 30)), np.zeros((2, 32, 32)), None),
        (np.zeros((32, 32)), np.zeros((32, 32)), None),
        (np.zeros((32, 32)), np.zeros((2, 32, 32)), np.ones((3, 32, 32))),
    ],
)
def test_simulate_kspace_rejects_bad_shapes(image, maps, mask) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ShapeError):
        simulate_kspace(image, maps, mask)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ShapeError):
        brain_phantom((1, 5))
    with pytest.raises(ValueError, match="tr"):
        brain_phantom(32, tr=-1.0)
    with pytest.raises(ValueError, match="n_coils"):
        birdcage_maps(32, 0)
    with pytest.raises(ValueError, match="radius"):
        birdcage_maps(32, 4, radius=0.5)
    with pytest.raises(TypeError, match="dtype"):
        brain_phantom(32, dtype=np.float32)
    with pytest.raises(ValueError, match="noise_std"):
        simulate_kspace(np.zeros((8, 8)), np.zeros((1, 8, 8)), noise_std=-1.0)
