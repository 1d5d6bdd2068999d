"""GRAPPA (medrecon.mr.grappa) on simulated birdcage-coil data and BART's phantom."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _mr_data import BART, NEEDS_BART, cached_bart_phantom, nrmse, simulated_kspace
from medrecon.errors import DtypeError, ShapeError
from medrecon.mr.fft import ifft2c, rss
from medrecon.mr.grappa import acs_from_mask, grappa
from medrecon.mr.masks import equispaced_mask
from medrecon.mr.sense import sense_recon

N = 96


def line_mask(n: int, r: int, acs: int, offset: int = 0) -> np.ndarray:
    """Every ``r``-th column from ``offset`` plus ``acs`` centred columns (fastMRI's band)."""
    line = np.zeros(n, bool)
    line[offset::r] = True
    pad = (n - acs + 1) // 2
    line[pad : pad + acs] = True
    return line


@pytest.fixture(scope="module")
def sim() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return simulated_kspace(N, 8, noise=2e-3)


def errors(k: np.ndarray, line: np.ndarray, **kw: object) -> tuple[float, float]:
    ref = rss(ifft2c(k))
    ku = k * line
    filled = grappa(ku, line, **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(filled[..., line], ku[..., line])  # acquired lines kept exactly
    return nrmse(rss(ifft2c(filled)), ref), nrmse(rss(ifft2c(ku)), ref)


def test_acceleration_and_acs(sim: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    k = sim[0]
    err = {}
    for r, factor in ((2, 0.2), (3, 0.35), (4, 0.65)):
        err[r], zf = errors(k, line_mask(N, r, 24))
        assert err[r] < factor * zf, (r, err[r], zf)
    # measured (96 x 96, 8 coils, noise 2e-3): R=2 0.0083, R=3 0.0255, R=4 0.063; zero-filled
    # 0.085, 0.10, 0.11
    assert err[2] < err[3] < err[4] < 0.08
    # more calibration data, better weights (R=4: 16 ACS columns 0.17, 32 columns 0.048)
    narrow, _ = errors(k, line_mask(N, 4, 16))
    wide, _ = errors(k, line_mask(N, 4, 32))
    assert wide < err[4] < narrow, (wide, err[4], narrow)


def test_fastmri_mask_stack_torch_and_sense(sim: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """fastMRI's equispaced mask (spacing alternating between 3 and 4 lines, 2.5x) on a stack of
    two slices as a torch tensor; compared with CG-SENSE on the true maps. The 15 ACS columns
    hold few positions of the wide irregular 4-line patterns (GRAPPA (5, 4): 0.147, no better
    than zero-filled), so this uses 2 source lines."""
    k, image, maps = sim
    stack = np.stack([k, 0.5 * k])
    mask = equispaced_mask(stack.shape, 0.16, 2.5, seed=0)
    ku = stack * mask
    filled = grappa(torch.from_numpy(ku.astype(np.complex64)), mask, kernel=(5, 2))
    assert isinstance(filled, torch.Tensor) and filled.dtype == torch.complex64
    filled_np = filled.numpy()
    assert filled_np.shape == (2, 8, N, N)
    cols = mask[0, 0, 0]
    np.testing.assert_array_equal(filled_np[..., cols], ku.astype(np.complex64)[..., cols])
    # each slice is calibrated on its own ACS: the 2nd is the 1st scaled (up to float32 rounding)
    np.testing.assert_allclose(filled_np[1], 0.5 * filled_np[0], atol=1e-4 * np.abs(k).max())
    ref = rss(ifft2c(k))
    err = nrmse(rss(ifft2c(filled_np[0])), ref)
    err_zf = nrmse(rss(ifft2c(ku[0])), ref)
    sense = sense_recon(ku[0], maps, mask[0], lam=1e-3, n_iter=50)
    err_sense = nrmse(np.abs(sense), np.abs(image))
    # measured: GRAPPA 0.049, CG-SENSE (true maps) 0.058, zero-filled 0.146
    assert err < 0.4 * err_zf and err < 1.5 * err_sense, (err, err_sense, err_zf)
    # data-detected sampling gives the same result as the explicit mask
    np.testing.assert_array_equal(
        grappa(ku[0], mask[0], kernel=(5, 2)), grappa(ku[0], kernel=(5, 2))
    )


@pytest.mark.skipif(BART is None, reason=NEEDS_BART)
def test_bart_phantom() -> None:
    """BART's analytic 8-coil phantom (``bart phantom -k -s 8 -x 128``), R = 2 and 3."""
    k = cached_bart_phantom(128, 8)
    err2, zf2 = errors(k, line_mask(128, 2, 24))
    err3, zf3 = errors(k, line_mask(128, 3, 24))
    # measured: R=2 0.012 (zero-filled 0.20), R=3 0.040 (0.24)
    assert err2 < 0.25 * zf2 and err3 < 0.35 * zf3 and err2 < err3, (err2, zf2, err3, zf3)


def test_acs_from_mask() -> None:
    assert acs_from_mask(line_mask(32, 4, 8, offset=1)) == (12, 20)
    assert acs_from_mask(equispaced_mask((4, 32, 32), 0.25, 4, offset=1)) == (12, 20)
    two_d = np.ones((4, 16), bool)
    two_d[1, 9] = False  # column 9 not fully sampled
    assert acs_from_mask(two_d) == (0, 9)
    with pytest.raises(ValueError, match="no ACS"):
        acs_from_mask(np.arange(16) % 2 == 1)  # centre column 8 missing


def test_explicit_acs_and_full_sampling(sim: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    k = sim[0]
    line = line_mask(N, 2, 24)
    ku = k * line
    np.testing.assert_allclose(grappa(ku, line, acs=(38, 58)), grappa(ku, line, acs=20))
    np.testing.assert_array_equal(grappa(k), k)  # nothing missing


def test_errors(sim: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    k = sim[0]
    line = line_mask(N, 4, 24)
    ku = k * line
    with pytest.raises(ValueError, match="no ACS"):
        grappa(k * (np.arange(N) % 4 == 1))
    with pytest.raises(ValueError, match="ACS band has 8 columns, fewer than the 13"):
        grappa(k * line_mask(N, 4, 8, offset=1))  # 4 source lines at R=4 span 13 columns
    with pytest.raises(ValueError, match="not all sampled"):
        grappa(ku, line, acs=40)
    with pytest.raises(ShapeError):
        grappa(ku[0])
    with pytest.raises(ShapeError):
        grappa(ku, line[:-1])
    with pytest.raises(ShapeError):
        grappa(ku, kernel=(N + 1, 4))
    with pytest.raises(DtypeError):
        grappa(ku.real.astype(np.int16))
    with pytest.raises(DtypeError):
        grappa(ku, line.astype(complex))
    for bad in [{"lam": -1.0}, {"kernel": (5,)}, {"kernel": (0, 4)}, {"acs": (30, 20)}]:
        with pytest.raises(ValueError):
            grappa(ku, line, **bad)  # type: ignore[arg-type]
