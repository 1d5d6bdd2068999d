"""medrecon.qc.metrics against scikit-image, on random and phantom images, and its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import (
    normalized_root_mse,
    peak_signal_noise_ratio,
    structural_similarity,
)

from medrecon.ct.simulate import shepp_logan, thorax_slice, thorax_slice_rois, to_hu
from medrecon.errors import DtypeError, NonFiniteError, ShapeError
from medrecon.geometry import VolumeGeometry
from medrecon.qc import Normalization, nrmse, psnr, rmse, roi_stats, ssim, ssim_map

#: half-width of scikit-image's Gaussian SSIM window for sigma = 1.5 (int(3.5 * 1.5 + 0.5)),
#: the border its mean SSIM leaves out
SKIMAGE_PAD = 5


def _interior(shape: tuple[int, ...], pad: int = SKIMAGE_PAD) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(pad, n - pad) for n in shape)] = True
    return m


def _skimage_ssim(image: np.ndarray, ref: np.ndarray, data_range: float, **kw: object) -> object:
    return structural_similarity(
        image,
        ref,
        data_range=data_range,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        **kw,
    )


def _random_pair(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    ref = rng.random(shape)
    return ref + 0.1 * rng.standard_normal(shape), ref


def _phantom_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A Shepp-Logan slice in HU and a noisy, blurred copy, both clipped to [-1000, 1000]."""
    from scipy import ndimage

    ref = to_hu(shepp_logan(VolumeGeometry(shape=(48, 40), voxel_size=5.0)))
    img = ndimage.gaussian_filter(ref, 0.8) + 30.0 * rng.standard_normal(ref.shape)
    return np.clip(img, -1000.0, 1000.0), np.clip(ref, -1000.0, 1000.0)


# --------------------------------------------------------------------------- vs scikit-image


@pytest.mark.parametrize("kind", ["random", "phantom"])
def test_psnr_rmse_nrmse_match_skimage(rng: np.random.Generator, kind: str) -> None:
    if kind == "random":
        img, ref = _random_pair(rng, (31, 40))
        dr = 1.0
    else:
        img, ref = _phantom_pair(rng)
        dr = 2000.0
    expected = peak_signal_noise_ratio(ref, img, data_range=dr)
    assert psnr(img, ref, data_range=dr) == pytest.approx(expected, abs=1e-6)
    assert rmse(img, ref) == pytest.approx(math.sqrt(np.mean((img - ref) ** 2)), rel=1e-12)
    # "mean" needs a positive mean: skimage would return a negative NRMSE for the HU phantom
    norms = ("euclidean", "min-max", "mean") if ref.mean() > 0 else ("euclidean", "min-max")
    for norm in norms:
        want = normalized_root_mse(ref, img, normalization=norm)
        assert nrmse(img, ref, normalization=norm) == pytest.approx(want, rel=1e-10)
    assert nrmse(img, ref, normalization=Normalization.MIN_MAX) == nrmse(
        img, ref, normalization="MIN-MAX"
    )


@pytest.mark.parametrize("kind", ["random", "phantom", "random3d"])
def test_ssim_map_and_interior_mean_match_skimage(rng: np.random.Generator, kind: str) -> None:
    if kind == "random":
        img, ref = _random_pair(rng, (33, 27))
        dr = 1.0
    elif kind == "random3d":
        img, ref = _random_pair(rng, (13, 16, 14))
        dr = 1.0
    else:
        img, ref = _phantom_pair(rng)
        dr = 2000.0
    want_mean, want_map = _skimage_ssim(img, ref, dr, full=True)  # type: ignore[misc]
    got_map = ssim_map(img, ref, data_range=dr)
    # same window, same border reflection: the maps agree everywhere, borders included
    np.testing.assert_allclose(got_map, want_map, rtol=0, atol=1e-9)
    # scikit-image's mean leaves out a 5-voxel border; ours averages over everything
    interior = _interior(img.shape)
    assert ssim(img, ref, data_range=dr, mask=interior) == pytest.approx(want_mean, abs=1e-9)
    full = ssim(img, ref, data_range=dr)
    assert full == pytest.approx(float(want_map.mean()), abs=1e-9)
    assert full != pytest.approx(want_mean, abs=1e-6)  # the documented difference is real


def test_ssim_is_symmetric_and_drops_with_noise(rng: np.random.Generator) -> None:
    img, ref = _phantom_pair(rng)
    a = ssim(img, ref, data_range=2000.0)
    assert a == pytest.approx(ssim(ref, img, data_range=2000.0), abs=1e-12)
    worse = np.clip(img + 100.0 * rng.standard_normal(img.shape), -1000, 1000)
    assert ssim(worse, ref, data_range=2000.0) < a < 1.0


def test_anisotropic_sigma_uses_one_value_per_axis(rng: np.random.Generator) -> None:
    img, ref = _random_pair(rng, (12, 20, 20))
    assert ssim(img, ref, data_range=1.0, sigma=(1.5, 1.5, 1.5)) == ssim(img, ref, data_range=1.0)
    assert ssim(img, ref, data_range=1.0, sigma=(0.5, 1.5, 1.5)) != ssim(img, ref, data_range=1.0)


# --------------------------------------------------------------------------- identity, masks


def test_identical_images_give_ssim_one_and_psnr_inf(rng: np.random.Generator) -> None:
    img, _ = _phantom_pair(rng)
    assert ssim(img, img.copy(), data_range=2000.0) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(ssim_map(img, img, data_range=2000.0), 1.0, atol=1e-12)
    assert psnr(img, img, data_range=2000.0) == math.inf
    assert rmse(img, img) == 0.0
    assert nrmse(img, img) == 0.0


def test_mask_restricts_every_metric(rng: np.random.Generator) -> None:
    vol = VolumeGeometry(shape=(40, 56), voxel_size=7.0)
    ref = to_hu(thorax_slice(vol, oversample=2))
    rois = thorax_slice_rois(vol, oversample=2)
    body = rois["body"]
    img = ref + np.where(body, 20.0, 500.0) * rng.standard_normal(ref.shape)
    err = (img - ref)[body]
    mse = float(np.mean(err**2))
    assert rmse(img, ref, mask=body) == pytest.approx(math.sqrt(mse), rel=1e-12)
    assert psnr(img, ref, data_range=2000.0, mask=body) == pytest.approx(
        10 * math.log10(2000.0**2 / mse), rel=1e-12
    )
    # outside noise does not enter the masked scores, only the unmasked ones
    assert psnr(img, ref, data_range=2000.0, mask=body) > psnr(img, ref, data_range=2000.0) + 5
    s_map = ssim_map(img, ref, data_range=2000.0)
    assert ssim(img, ref, data_range=2000.0, mask=body) == pytest.approx(s_map[body].mean())
    # errors only outside a mask: perfect inside
    outside_only = np.where(body, ref, ref + 50.0)
    assert psnr(outside_only, ref, data_range=2000.0, mask=body) == math.inf


def test_roi_stats_on_uniform_region(rng: np.random.Generator) -> None:
    vol = VolumeGeometry(shape=(48, 64), voxel_size=6.0)
    hu = to_hu(thorax_slice(vol, oversample=2))
    roi = thorax_slice_rois(vol, oversample=2)["uniform_soft_tissue"]
    noisy = hu + 12.0 * rng.standard_normal(hu.shape)
    stats = roi_stats(noisy, roi)
    assert set(stats) == {"mean", "std", "n"}
    assert stats["n"] == int(roi.sum()) > 10
    assert stats["mean"] == pytest.approx(float(noisy[roi].mean()))
    assert stats["std"] == pytest.approx(float(noisy[roi].std(ddof=1)))
    assert roi_stats(noisy, roi, ddof=0)["std"] == pytest.approx(float(noisy[roi].std()))
    clean = roi_stats(hu, roi)
    assert clean["mean"] == pytest.approx(40.0, abs=1e-6)
    assert clean["std"] == pytest.approx(0.0, abs=1e-6)
    assert isinstance(clean["n"], int)


def test_torch_float32_and_integer_inputs(rng: np.random.Generator) -> None:
    img, ref = _random_pair(rng, (20, 24))
    want = ssim(img, ref, data_range=1.0)
    t_img, t_ref = torch.from_numpy(img.astype(np.float32)), torch.from_numpy(ref)
    assert ssim(t_img, t_ref, data_range=1.0) == pytest.approx(want, abs=1e-6)
    assert psnr(t_img, t_ref, data_range=1.0, mask=torch.ones(20, 24, dtype=torch.bool)) == (
        pytest.approx(psnr(img, ref, data_range=1.0), abs=1e-5)
    )
    a8, b8 = (rng.integers(0, 256, (16, 16)).astype(np.uint8) for _ in range(2))
    assert psnr(a8, b8, data_range=255) == pytest.approx(
        peak_signal_noise_ratio(b8, a8, data_range=255), abs=1e-6
    )  # no uint8 wrap-around in the difference


# --------------------------------------------------------------------------- errors


def test_shape_errors() -> None:
    a, b = np.zeros((8, 8)), np.zeros((8, 9))
    for fn in (rmse, nrmse):
        with pytest.raises(ShapeError, match=r"\(8, 8\) and \(8, 9\)"):
            fn(a, b)
    with pytest.raises(ShapeError):
        psnr(a, b, data_range=1.0)
    with pytest.raises(ShapeError):
        ssim(a, b, data_range=1.0)
    with pytest.raises(ShapeError, match="2D"):
        ssim(np.zeros(16), np.zeros(16), data_range=1.0)
    with pytest.raises(ShapeError, match="mask"):
        psnr(a, a, data_range=1.0, mask=np.ones((8, 9), dtype=bool))
    with pytest.raises(ShapeError, match="non-empty"):
        rmse(np.zeros((0, 3)), np.zeros((0, 3)))


@pytest.mark.parametrize("data_range", [0.0, -1.0])
def test_data_range_must_be_positive(data_range: float) -> None:
    a = np.zeros((8, 8))
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a, data_range=data_range)
    with pytest.raises(ValueError, match="data_range"):
        ssim(a, a, data_range=data_range)


def test_other_value_and_type_errors() -> None:
    a = np.zeros((8, 8))
    with pytest.raises(NonFiniteError):
        psnr(a, a, data_range=math.inf)
    with pytest.raises(TypeError):
        psnr(a, a, data_range=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one True"):
        ssim(a, a, data_range=1.0, mask=np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="at least one True"):
        roi_stats(a, np.zeros((8, 8), dtype=bool))
    with pytest.raises(DtypeError, match="boolean"):
        roi_stats(a, np.ones((8, 8)))
    with pytest.raises(TypeError):
        roi_stats(a, None)
    with pytest.raises(ValueError, match="ddof"):
        roi_stats(a, np.eye(8, dtype=bool), ddof=8)
    with pytest.raises(DtypeError):
        rmse(a.astype(complex), a)
    with pytest.raises(NonFiniteError):
        rmse(np.full((8, 8), np.nan), a)
    with pytest.raises(ValueError, match="normalization"):
        nrmse(a + 1.0, a + 1.0, normalization="max")
    with pytest.raises(ValueError, match="scale"):
        nrmse(a, a + 1.0, normalization="min-max")
    with pytest.raises(ValueError, match="scale"):
        nrmse(a, a - 1.0, normalization="mean")
    with pytest.raises(ValueError, match="sigma"):
        ssim(a, a, data_range=1.0, sigma=0.0)
    with pytest.raises(ValueError, match="sigma"):
        ssim(a, a, data_range=1.0, sigma=(1.0, 1.0, 1.0))
