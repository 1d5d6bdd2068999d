"""Metal artifact reduction: trace, interpolation, LI/NMAR on 2D and 3D data, typed errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from medrecon import ConeBeam3D, FanBeam2D, ParallelBeam2D, Projector, VolumeGeometry
from medrecon.ct import fbp, fdk, from_hu, poisson_noise, to_hu
from medrecon.ct.mar import (
    frequency_split,
    interpolate_trace,
    li_mar,
    mar,
    mar_from_image,
    metal_trace,
    nmar,
    nmar_prior,
    normalized_interpolation,
    segment_metal,
)
from medrecon.errors import (
    DtypeError,
    GeometryError,
    MetalTraceError,
    NotDifferentiableError,
    ShapeError,
)
from medrecon.geometry import FanBeamVec
from medrecon.qc.metrics import psnr

MU_TI = 0.5361 * 4.506 / 10  # titanium at 70 keV, 1/mm (xraylib / NIST XCOM)
WINDOW = (-175.0, 275.0)
RECON = {"filter": "hann", "cutoff": 0.8}


# --------------------------------------------------------------------------- fixtures


def _grid(vol: VolumeGeometry) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = vol.shape[-2:]
    s = vol.voxel_size[-1]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    return (yy - (ny - 1) / 2) * s, (xx - (nx - 1) / 2) * s


def _hip_phantom(vol: VolumeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Water body, two bones with titanium rods inside, a small fat insert (mu, metal mask)."""
    y, x = _grid(vol)
    mu = np.where((x / 120) ** 2 + (y / 90) ** 2 < 1, from_hu(40.0), 0.0)
    mu = np.where(((x + 10) / 15) ** 2 + ((y - 40) / 10) ** 2 < 1, from_hu(-100.0), mu)
    metal = np.zeros(vol.shape, bool)
    for cx in (-55.0, 55.0):
        mu = np.where((x - cx) ** 2 + y**2 < 22**2, from_hu(900.0), mu)
        rod = (x - cx) ** 2 + y**2 < 7**2
        mu = np.where(rod, MU_TI, mu)
        metal |= rod
    return mu, metal


def _fan(n_views: int = 240) -> FanBeam2D:
    return FanBeam2D(
        angles=np.linspace(0, 2 * np.pi, n_views, endpoint=False),
        n_det=160,
        det_spacing=3.0,
        src_iso=500.0,
        iso_det=400.0,
    )


@pytest.fixture(scope="module")
def case() -> dict:
    vol = VolumeGeometry(shape=(128, 128), voxel_size=2.0)
    geom = _fan()
    mu, metal = _hip_phantom(vol)
    A = Projector(geom, vol)
    clean = A(mu)
    # photon starvation behind two titanium rods: the streaks of a real low-count scan
    noisy = poisson_noise(clean, i0=2e4, rng=7)
    # reference: the same scan and reconstruction of the phantom without its implants, so the
    # score measures metal artifacts, not the blur of the reconstruction filter
    free = np.where(metal, from_hu(900.0), mu)
    ref = fbp(A(free), geom, vol, **RECON)
    return {
        "vol": vol, "geom": geom, "mu": mu, "metal": metal, "A": A, "sino": noisy, "ref": ref
    }  # fmt: skip


def _score(image_mu: np.ndarray, ref_mu: np.ndarray, metal: np.ndarray) -> float:
    """PSNR in the HU window [-175, 275], outside the metal (grown by 2 voxels)."""
    lo, hi = WINDOW
    a = np.clip(to_hu(image_mu), lo, hi)
    b = np.clip(to_hu(ref_mu), lo, hi)
    outside = ~ndimage.binary_dilation(metal, iterations=2)
    return psnr(a, b, data_range=hi - lo, mask=outside)


# --------------------------------------------------------------------------- building blocks


def test_interpolation_is_exact_on_linear_data_and_holds_at_edges() -> None:
    n = 40
    line = 3.0 + 0.25 * np.arange(n)
    sino = np.tile(line, (3, 1))
    trace = np.zeros_like(sino, bool)
    trace[0, 10:20] = True  # interior: exact
    trace[1, :5] = True  # left edge: hold first known value
    trace[2, 35:] = True  # right edge
    out = interpolate_trace(sino + 100.0 * trace, trace)
    np.testing.assert_allclose(out[0], line, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[1, :5], line[5])
    np.testing.assert_allclose(out[2, 35:], line[34])


def test_interpolation_leaves_untraced_samples_bit_exact() -> None:
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        sino = rng.normal(size=(30, 7, 50)).astype(dtype)
        trace = rng.random(sino.shape) < 0.3
        trace[..., 0] = False
        out = interpolate_trace(sino, trace)
        assert out.dtype == dtype
        assert np.array_equal(out[~trace], sino[~trace])
        assert not np.shares_memory(out, sino)


def test_interpolation_errors() -> None:
    sino = np.zeros((4, 10))
    with pytest.raises(ShapeError):
        interpolate_trace(sino, np.zeros((4, 9), bool))
    with pytest.raises(DtypeError):
        interpolate_trace(sino, np.zeros((4, 10), np.uint8))
    full = np.zeros((4, 10), bool)
    full[2] = True
    with pytest.raises(MetalTraceError, match="whole detector line"):
        interpolate_trace(sino, full)


def _rays_crossing(geom: FanBeamVec, mask: np.ndarray, vol: VolumeGeometry) -> np.ndarray:
    """Exact test (slab method) of every ray against every metal pixel's square."""
    s = vol.voxel_size[-1]
    iy, ix = np.nonzero(mask)
    cy = (iy - (vol.shape[0] - 1) / 2) * s
    cx = (ix - (vol.shape[1] - 1) / 2) * s
    lo = np.stack([cy - s / 2, cx - s / 2], -1)[None, None]
    hi = np.stack([cy + s / 2, cx + s / 2], -1)[None, None]
    j = np.arange(geom.n_det) - (geom.n_det - 1) / 2
    src = geom.sources[:, None, :]
    det = geom.det_centers[:, None, :] + j[None, :, None] * geom.det_u[:, None, :]
    d = (det - src)[:, :, None, :]
    o = src[:, :, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - o) / d
        t2 = (hi - o) / d
    tmin = np.nanmax(np.minimum(t1, t2), axis=-1)
    tmax = np.nanmin(np.maximum(t1, t2), axis=-1)
    hit = (tmax > np.maximum(tmin, 0.0)) & (tmin < 1.0)
    return hit.any(axis=-1)


def test_metal_trace_covers_every_ray_that_crosses_metal() -> None:
    vol = VolumeGeometry(shape=(64, 64), voxel_size=2.0)
    geom = FanBeam2D(
        angles=np.linspace(0, 2 * np.pi, 90, endpoint=False),
        n_det=100,
        det_spacing=2.5,
        src_iso=300.0,
        iso_det=200.0,
    )
    y, x = _grid(vol)
    mask = ((x - 20) ** 2 + (y + 7) ** 2 < 5**2) | ((x + 31) ** 2 + (y - 3) ** 2 < 2.2**2)
    A = Projector(geom, vol)
    crossing = _rays_crossing(geom.to_vectors(), mask, vol)
    assert crossing.sum() > 500
    for margin, det_margin in ((0, 0), (1, 1)):
        trace = metal_trace(mask, A, margin=margin, det_margin=det_margin)
        missed = crossing & ~trace
        assert not missed.any(), f"{missed.sum()} crossing rays outside the trace"
    # the default trace stays a narrow band: at most a few pixels wider per side
    assert trace.sum() < crossing.sum() + 6 * geom.n_views * 2


def test_segmentation_thresholds_in_hu_and_mu() -> None:
    vol = VolumeGeometry(shape=(64, 64), voxel_size=2.0)
    mu, metal = _hip_phantom(VolumeGeometry(shape=(128, 128), voxel_size=2.0))
    np.testing.assert_array_equal(segment_metal(mu), metal)
    np.testing.assert_array_equal(segment_metal(to_hu(mu), units="hu"), metal)
    with pytest.raises(ValueError, match="units"):
        segment_metal(mu, units="kev")
    del vol


def test_nmar_prior_classes() -> None:
    img = np.array([[from_hu(-900.0), from_hu(30.0), from_hu(1200.0), MU_TI]])
    mask = np.array([[False, False, False, True]])
    prior = nmar_prior(img, mask, sigma_voxels=0)
    np.testing.assert_allclose(prior, [[0.0, from_hu(0.0), img[0, 2], from_hu(0.0)]])
    with pytest.raises(ValueError):
        nmar_prior(img, mask, air_threshold_hu=500.0, bone_threshold_hu=100.0)


def test_normalized_interpolation_recovers_data_proportional_to_the_prior() -> None:
    rng = np.random.default_rng(1)
    prior = rng.uniform(1.0, 3.0, size=(20, 60))
    sino = 2.5 * prior
    trace = np.zeros(sino.shape, bool)
    trace[:, 20:35] = True
    out = normalized_interpolation(np.where(trace, 50.0, sino), trace, prior)
    np.testing.assert_allclose(out, sino, rtol=1e-12)
    # LI cannot follow the prior's structure
    assert np.abs(interpolate_trace(np.where(trace, 50.0, sino), trace) - sino).max() > 0.5


# --------------------------------------------------------------------------- methods, 2D


def test_li_and_nmar_leave_rays_outside_the_trace_unchanged(case: dict) -> None:
    sino = case["sino"]
    before = sino.copy()
    for fn in (li_mar, nmar):
        res = fn(sino, case["geom"], case["vol"])
        assert np.array_equal(res.sinogram[~res.trace], sino[~res.trace])
        assert not np.array_equal(res.sinogram[res.trace], sino[res.trace])
    np.testing.assert_array_equal(sino, before)  # the input is never modified


def test_mar_reduces_metal_artifacts(case: dict) -> None:
    vol, geom, ref, metal = case["vol"], case["geom"], case["ref"], case["metal"]
    base = fbp(case["sino"], geom, vol, **RECON)
    li = li_mar(case["sino"], geom, vol, recon_options=RECON)
    nm = nmar(case["sino"], geom, vol, recon_options=RECON)
    scores = {
        "uncorrected": _score(base, ref, metal),
        "li": _score(li.image, ref, metal),
        "nmar": _score(nm.image, ref, metal),
    }
    print(scores)  # measured 20.1, 23.4, 30.7 dB
    np.testing.assert_allclose(li.uncorrected, base, rtol=1e-5, atol=1e-6)
    assert scores["li"] > scores["uncorrected"] + 2.0
    assert scores["nmar"] > scores["li"] + 3.0
    # segmentation found the rods and the metal was put back from the uncorrected image
    assert (nm.metal_mask & metal).sum() >= 0.9 * metal.sum()
    np.testing.assert_array_equal(nm.image[nm.metal_mask], base[nm.metal_mask])
    assert nm.prior is not None and li.prior is None


def test_given_mask_no_reinsertion_and_frequency_split(case: dict) -> None:
    res = nmar(
        case["sino"],
        case["geom"],
        case["vol"],
        metal_mask=case["metal"],
        reinsert_metal=False,
        frequency_split_sigma=1.5,
    )
    assert res.method == "nmar+fs"
    np.testing.assert_array_equal(res.metal_mask, case["metal"])
    # without reinsertion the metal region holds interpolated tissue, far below titanium
    assert to_hu(res.image[case["metal"]]).max() < 2500.0


def test_frequency_split_is_identity_for_equal_images() -> None:
    rng = np.random.default_rng(3)
    img = rng.normal(size=(32, 32))
    mask = np.zeros((32, 32), bool)
    mask[10, 10] = True
    np.testing.assert_allclose(frequency_split(img, img, mask), img, atol=1e-12)


def test_frequency_split_leaves_no_halo_around_the_metal() -> None:
    """Images that differ only inside the metal: the metal's edge must not leak out."""
    rng = np.random.default_rng(4)
    corrected = rng.normal(size=(48, 48))
    yy, xx = np.mgrid[0:48, 0:48]
    mask = (yy - 24) ** 2 + (xx - 24) ** 2 < 6**2
    uncorrected = np.where(mask, 500.0, corrected)  # bright metal in the uncorrected image
    out = frequency_split(uncorrected, corrected, mask)
    np.testing.assert_allclose(out, corrected, atol=1e-12)


def test_torch_in_torch_out_matches_numpy(case: dict) -> None:
    sino = case["sino"].astype(np.float32)
    ref = li_mar(sino, case["geom"], case["vol"])
    out = li_mar(torch.from_numpy(sino.copy()), case["geom"], case["vol"])
    assert isinstance(out.image, torch.Tensor) and out.image.dtype == torch.float32
    assert isinstance(out.sinogram, torch.Tensor)
    np.testing.assert_allclose(out.image.numpy(), ref.image, rtol=1e-6, atol=1e-7)
    with pytest.raises(NotDifferentiableError):
        li_mar(torch.from_numpy(sino).requires_grad_(), case["geom"], case["vol"])


def test_parallel_beam_sinogram_made_outside_medrecon() -> None:
    """A scikit-image radon sinogram, described by our geometry (angles -theta)."""
    radon = pytest.importorskip("skimage.transform").radon
    n = 128
    vol = VolumeGeometry(shape=(n, n), voxel_size=1.0)
    y, x = _grid(vol)
    mu = np.where(x**2 + y**2 < 55**2, from_hu(0.0), 0.0)
    metal = (x - 20) ** 2 + (y + 5) ** 2 < 4**2
    mu = np.where(metal, MU_TI, mu)
    theta = np.linspace(0.0, 180.0, 180, endpoint=False)
    clean = radon(mu, theta=theta, circle=True).T
    sino = poisson_noise(clean, i0=2e4, rng=2)
    geom = ParallelBeam2D(angles=-np.deg2rad(theta), n_det=n)
    free = radon(np.where(metal, from_hu(0.0), mu), theta=theta, circle=True).T
    ref = fbp(free, geom, vol, **RECON)
    base = fbp(sino, geom, vol, **RECON)
    res = nmar(sino, geom, vol, recon_options=RECON)
    before, after = _score(base, ref, metal), _score(res.image, ref, metal)
    print(f"skimage sinogram: {before:.2f} -> {after:.2f} dB")
    assert after > before + 3.0


def test_mar_from_image_reduces_streaks(case: dict) -> None:
    vol, geom, ref, metal = case["vol"], case["geom"], case["ref"], case["metal"]
    hu = to_hu(fbp(case["sino"], geom, vol, **RECON))
    res = mar_from_image(hu, geom, vol, recon_options=RECON)
    assert res.units == "hu"
    before = _score(from_hu(hu), ref, metal)
    after = _score(from_hu(res.image), ref, metal)
    print(f"image-domain MAR: {before:.2f} -> {after:.2f} dB")
    assert after > before + 1.0
    with pytest.raises(ShapeError):
        mar_from_image(hu[:-1], geom, vol)


# --------------------------------------------------------------------------- 3D cone


def test_cone_beam_nmar() -> None:
    vol = VolumeGeometry(shape=(16, 64, 64), voxel_size=2.0)
    geom = ConeBeam3D(
        angles=np.linspace(0, 2 * np.pi, 120, endpoint=False),
        det_shape=(24, 96),
        det_spacing=(2.5, 2.5),
        src_iso=400.0,
        iso_det=200.0,
    )
    y, x = _grid(vol)
    body = np.where(x**2 + y**2 < 55**2, from_hu(0.0), 0.0)
    mu = np.broadcast_to(body, vol.shape).copy()
    metal = np.zeros(vol.shape, bool)
    metal[4:12] = ((x - 25) ** 2 + y**2 < 5**2)[None]
    mu[metal] = MU_TI
    A = Projector(geom, vol)
    sino = poisson_noise(A(mu), i0=1e4, rng=5)
    ref = fdk(A(np.where(metal, from_hu(0.0), mu)), geom, vol)
    res = nmar(sino, geom, vol, metal_mask=metal)
    assert res.image.shape == vol.shape and res.trace.shape == geom.proj_shape
    assert np.array_equal(res.sinogram[~res.trace], sino[~res.trace])
    before, after = _score(res.uncorrected, ref, metal), _score(res.image, ref, metal)
    print(f"cone beam: {before:.2f} -> {after:.2f} dB")
    assert after > before + 2.0


# --------------------------------------------------------------------------- typed errors


def test_bad_input_raises_typed_errors(case: dict) -> None:
    vol, geom, sino = case["vol"], case["geom"], case["sino"]
    with pytest.raises(ShapeError, match="metal_mask"):
        li_mar(sino, geom, vol, metal_mask=np.zeros((64, 64), bool))
    with pytest.raises(DtypeError, match="boolean"):
        li_mar(sino, geom, vol, metal_mask=case["metal"].astype(np.float32))
    with pytest.raises(MetalTraceError, match="empty"):
        li_mar(sino, geom, vol, metal_mask=np.zeros(vol.shape, bool))
    with pytest.raises(MetalTraceError, match="empty"):  # nothing above the threshold
        li_mar(case["A"](np.where(case["metal"], from_hu(900.0), case["mu"])), geom, vol)
    with pytest.raises(ShapeError, match="projection shape"):
        li_mar(sino[:, :-1], geom, vol)
    with pytest.raises(ShapeError, match="projection shape"):
        li_mar(sino, _fan(120), vol)
    with pytest.raises(GeometryError, match="dimensions differ"):
        li_mar(sino, geom, VolumeGeometry(shape=(4, 128, 128), voxel_size=2.0))
    with pytest.raises(GeometryError, match="reconstruct="):
        li_mar(sino, geom.to_vectors(), vol)
    with pytest.raises(ValueError, match="method"):
        mar(sino, geom, vol, method="magic")
    with pytest.raises(ValueError, match="margin"):
        li_mar(sino, geom, vol, margin=-1)
    with pytest.raises(TypeError, match="method"):
        li_mar(sino, geom, vol, method="nmar")


def test_custom_reconstruct_for_vector_geometry(case: dict) -> None:
    vol, geom = case["vol"], case["geom"]
    vec = geom.to_vectors()
    res = li_mar(case["sino"], vec, vol, reconstruct=lambda s: fbp(s, geom, vol))
    ref = li_mar(case["sino"], geom, vol)
    np.testing.assert_allclose(res.image, ref.image, rtol=1e-6, atol=1e-7)
