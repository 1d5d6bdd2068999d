"""Compressed-sensing MR reconstruction (medrecon.mr.cs): l1-wavelet and TV SENSE.

Reference comparisons
---------------------
BART (``bart`` v0.8 on the PATH; skipped without it), on BART-made data, in a temporary
folder::

    bart phantom -k -s 8 -x 128 full           # 8-coil 128 x 128 k-space, noise-free
    # undersampled in Python: medrecon random_mask(4x, centre fraction 0.08, seed 0) on BART
    # dimension 1 (phase encoding) -> written as "us" with medrecon.mr.io.write_cfl
    bart ecalib -m1 us maps                    # ESPIRiT maps from the 10 centre lines
    bart pics -S -w 1 -i 100 -R W:3:0:<lam> us maps out    # l1-wavelet (FISTA, cycle spinning)
    bart pics -S -w 1 -i 100 -R T:3:0:<lam> us maps out    # total variation

``-w 1`` turns off BART's data scaling (its lambda is then in the units of the data, as
ours is) and ``-S`` rescales the output; the scales still differ between the tools, so
every image is compared with the reference after the least-squares complex scale
``alpha = <x, ref> / <x, x>`` (:func:`nrmse_scaled`). The reference is the fully sampled
k-space combined with the same ESPIRiT maps, ``sum_c conj(S_c) ifft2c(k_c)``. The lambdas
of the two tools mean different things (BART's wavelet is its own Daubechies-2 transform
with cycle spinning; its TV uses its own differences and ADMM), so each side gets its best
lambda from a small sweep (:func:`best_over`), in units of ``max |A^H y|``. The assertion
is that our NRMSE is at most 1.1 x BART's.

SigPy (``sigpy.mri.app.L1WaveletRecon`` / ``TotalVariationRecon``, 100 iterations, at the
lambdas that were best in a sweep by hand: 3e-4 and 1e-2 x ``max |A^H y|``) is compared the
same way when it imports and runs (skipped otherwise); ours must not be worse by more than
10%.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _mr_data import complex_scaled_nrmse, nrmse
from medrecon.errors import DtypeError, ShapeError
from medrecon.mr.cs import CSInfo, GradientOperator, WaveletOperator, cs_tv, cs_wavelet
from medrecon.mr.fft import ifft2c
from medrecon.mr.io import bart_to_kspace, kspace_to_bart, read_cfl, write_cfl
from medrecon.mr.masks import random_mask
from medrecon.mr.sense import SenseOperator, sense_recon
from medrecon.mr.simulate import birdcage_maps, brain_phantom, simulate_kspace

N = 64
N_COILS = 8


def rand_complex(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@pytest.fixture(scope="module")
def sim() -> dict[str, Any]:
    """A Shepp-Logan-layout head (with a smooth phase), birdcage maps, 4x random mask, noise."""
    x = brain_phantom(N, phase=0.5, dtype=np.complex128)
    maps = birdcage_maps(N, N_COILS, dtype=np.complex128)
    mask = random_mask((N_COILS, N, N), 0.08, 4, seed=0)
    k = simulate_kspace(x, maps, mask, noise_std=0.01, seed=1)
    scale = float(np.abs(SenseOperator(maps, mask).T(k)).max())
    return {"x": x, "maps": maps, "mask": mask, "k": k, "scale": scale}


# ------------------------------------------------------------------------------ operators
@pytest.mark.parametrize("wavelet", ["haar", "db2", "db4", "sym4"])
def test_wavelet_unitary(wavelet: str) -> None:
    W = WaveletOperator((32, 64), wavelet, dtype=np.complex128)
    assert W.level >= 1
    x = rand_complex((3, 32, 64))
    c = W(x)
    assert c.shape == x.shape
    # Parseval, perfect reconstruction, and W W^H = I
    np.testing.assert_allclose(np.linalg.norm(c, axis=(-2, -1)), np.linalg.norm(x, axis=(-2, -1)))
    np.testing.assert_allclose(W.T(c), x, atol=1e-10)
    np.testing.assert_allclose(W(W.T(x)), x, atol=1e-10)
    y = rand_complex((32, 64), 1)
    assert abs(np.vdot(W(x[0]), y) - np.vdot(x[0], W.T(y))) < 1e-9 * np.linalg.norm(y) ** 2
    # the detail mask leaves out the approximation band only
    n_approx = (32 // 2**W.level) * (64 // 2**W.level)
    assert int((~W.detail_mask).sum()) == n_approx


def test_wavelet_options_and_errors() -> None:
    assert WaveletOperator(128, "db4").level == 4  # capped default
    assert WaveletOperator((24, 40), "haar").level == 3  # largest level dividing both sides
    assert WaveletOperator((5, 7), "haar").level == 0
    W64 = WaveletOperator(16, "haar", level=2)
    assert W64(np.ones((16, 16), np.complex64)).dtype == np.complex64
    with pytest.raises(ValueError, match="orthogonal"):
        WaveletOperator(16, "bior2.2")
    with pytest.raises(ValueError, match="unknown"):
        WaveletOperator(16, "nope")
    with pytest.raises(ValueError, match="divisible"):
        WaveletOperator((24, 40), "haar", level=4)
    with pytest.raises(DtypeError):
        W64(np.ones((16, 16), np.complex128))


def test_gradient_adjoint_dot_test() -> None:
    D = GradientOperator((17, 23), dtype=np.complex128)
    x = rand_complex((2, 17, 23))
    q = rand_complex((2, 2, 17, 23), 1)
    lhs = np.vdot(D(x), q)
    rhs = np.vdot(x, D.T(q))
    assert abs(lhs - rhs) < 1e-12 * abs(lhs)
    assert D.norm() ** 2 < 8.0
    # constant images have zero gradient; a ramp has unit differences except at the border
    assert np.all(D(np.ones((17, 23))) == 0)
    ramp = D(np.tile(np.arange(23.0), (17, 1)))
    assert np.all(ramp[1, :, :-1] == 1) and np.all(ramp[1, :, -1] == 0) and np.all(ramp[0] == 0)


# --------------------------------------------------------------------- reconstructions
def test_cs_beats_cg_sense_and_zero_filled(sim: dict[str, Any]) -> None:
    x, maps, mask, k, sc = sim["x"], sim["maps"], sim["mask"], sim["k"], sim["scale"]
    zero_filled = SenseOperator(maps, mask).T(k)
    err_zf = nrmse(zero_filled, x)
    # CG-SENSE at its best iteration count (noise amplification grows with iterations)
    err_sense = min(nrmse(sense_recon(k, maps, mask, n_iter=n, tol=0.0), x) for n in (5, 10))
    wav = cs_wavelet(k, maps, mask, lam=1e-3 * sc, wavelet="haar", random_shift=True, n_iter=80)
    tv = cs_tv(k, maps, mask, lam=1e-2 * sc, n_iter=150)
    err_wav, err_tv = nrmse(wav, x), nrmse(tv, x)
    assert err_wav < 0.85 * min(err_sense, err_zf), (err_wav, err_sense, err_zf)
    assert err_tv < 0.7 * min(err_sense, err_zf), (err_tv, err_sense, err_zf)


def test_fista_monotone_and_admm_converges(sim: dict[str, Any]) -> None:
    maps, mask, k, sc = sim["maps"], sim["mask"], sim["k"], sim["scale"]
    lam = 3e-3 * sc
    _, fi = cs_wavelet(k, maps, mask, lam=lam, n_iter=60, tol=0.0, return_info=True)
    assert isinstance(fi, CSInfo) and fi.algorithm == "fista" and fi.n_iter == 60
    obj = np.array(fi.objective)
    assert len(obj) == 61 and obj[-1] < 0.5 * obj[0]
    rises = np.diff(obj)
    assert np.all(rises <= 1e-3 * obj[1:]), rises.max()  # monotone within 0.1%
    _, ad = cs_wavelet(
        k, maps, mask, lam=lam, solver="admm", n_iter=30, n_inner=4, tol=0.0, return_info=True
    )
    a_obj = np.array(ad.objective)
    assert ad.algorithm == "admm" and a_obj[-1] < a_obj[1]
    # both reach the same minimum
    assert abs(a_obj[-1] - obj[-1]) < 0.03 * obj[-1], (a_obj[-1], obj[-1])
    assert ad.change[-1] < ad.change[0]


def test_tv_objective_decreases(sim: dict[str, Any]) -> None:
    maps, mask, k, sc = sim["maps"], sim["mask"], sim["k"], sim["scale"]
    _, info = cs_tv(k, maps, mask, lam=1e-2 * sc, n_iter=100, tol=0.0, return_info=True)
    obj = np.array(info.objective)
    assert info.algorithm == "pdhg" and len(obj) == 101
    assert obj[-1] < 0.5 * obj[0] and obj[-1] <= obj[50] * (1 + 1e-3)
    assert info.steps["sigma"] * info.steps["tau"] * (info.steps["norm_A"] ** 2 + 8) < 1


@pytest.mark.parametrize("solver", ["fista", "admm"])
def test_lam_zero_is_least_squares(solver: str) -> None:
    n = 32
    maps = birdcage_maps(n, 8, dtype=np.complex128)
    mask = random_mask((n, n), 0.25, 2, seed=3)
    x = brain_phantom(n, dtype=np.complex128)
    k = simulate_kspace(x, maps, mask)
    ref = sense_recon(k, maps, mask, n_iter=200, tol=1e-12)
    opts: dict[str, Any] = {"n_iter": 300} if solver == "fista" else {"n_iter": 40, "rho": 1e-3}
    rec = cs_wavelet(k, maps, mask, lam=0.0, solver=solver, tol=1e-9, **opts)
    assert nrmse(rec, ref) < 1e-2


def test_op_keyword_batches_dtypes_and_torch(sim: dict[str, Any]) -> None:
    maps, mask, sc = sim["maps"].astype(np.complex64), sim["mask"], sim["scale"]
    x2 = np.stack([sim["x"], np.roll(sim["x"], 5, axis=-1)]).astype(np.complex64)
    k2 = simulate_kspace(x2, maps, mask, noise_std=0.01)
    opts: dict[str, Any] = {"lam": 2e-3 * sc, "n_iter": 15, "tol": 0.0}
    a = cs_wavelet(k2, maps, mask, **opts)
    assert a.shape == (2, N, N) and a.dtype == np.complex64
    # op= gives the same result as maps/mask
    b = cs_wavelet(k2, op=SenseOperator(maps, mask), **opts)
    np.testing.assert_array_equal(a, b)
    # FISTA/PDHG treat a stack exactly as separate slices (up to float32 rounding)
    for fn in (cs_wavelet, cs_tv):
        stack = fn(k2, maps, mask, **opts)
        single = fn(k2[1], maps, mask, **opts)
        assert nrmse(stack[1], single) < 1e-5
    # torch in, torch out
    t = cs_tv(torch.from_numpy(k2), maps, mask, **opts)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.complex64 and t.shape == (2, N, N)
    np.testing.assert_allclose(t.numpy(), cs_tv(k2, maps, mask, **opts), atol=1e-6)
    # complex128
    c = cs_wavelet(k2.astype(np.complex128), maps.astype(np.complex128), mask, **opts)
    assert c.dtype == np.complex128 and nrmse(c, a) < 1e-4


def test_callback_progress_and_errors(sim: dict[str, Any]) -> None:
    maps, mask, k = sim["maps"], sim["mask"], sim["k"]
    seen: list[int] = []

    def stop_at_3(it: int, img: Any) -> bool:
        seen.append(it)
        assert img.shape == (N, N)
        return it == 3

    for fn in (cs_wavelet, cs_tv):
        seen.clear()
        _, info = fn(k, maps, mask, lam=1.0, callback=stop_at_3, progress=True, return_info=True)
        assert seen == [1, 2, 3] and info.stop_reason == "callback" and not info.converged
    _, info = cs_wavelet(k, maps, mask, lam=1.0, n_iter=500, tol=1e-3, return_info=True)
    assert info.converged and info.stop_reason == "tol" and info.n_iter < 500
    with pytest.raises(ValueError, match="lam"):
        cs_wavelet(k, maps, mask, lam=-1.0)
    with pytest.raises(ValueError, match="solver"):
        cs_wavelet(k, maps, mask, lam=1.0, solver="ista")
    with pytest.raises(ValueError, match="either"):
        cs_tv(k, maps, mask, op=SenseOperator(maps, mask), lam=1.0)
    with pytest.raises(ValueError, match="maps"):
        cs_tv(k, lam=1.0)
    with pytest.raises(ShapeError):
        cs_wavelet(k[:, :-1], maps, mask, lam=1.0)
    with pytest.raises(DtypeError):
        cs_wavelet(k.astype(np.complex64), maps, mask, lam=1.0)
    with pytest.raises(ValueError, match="rho"):
        cs_wavelet(k, maps, mask, lam=1.0, solver="admm", rho=0.0)
    with pytest.raises(TypeError):
        cs_tv(k, maps, mask, lam=1.0, callback=3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- BART, SigPy
def _bart(cwd: Path, *args: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(["bart", *args], cwd=cwd, check=True, capture_output=True, env=env)


def best_over(lams: list[float], recon: Callable[[float], Any], ref: np.ndarray) -> Any:
    """The smallest scaled NRMSE over ``lams`` and the lambda that gave it."""
    results = [(complex_scaled_nrmse(recon(lam), ref), lam) for lam in lams]
    return min(results)


@pytest.fixture(scope="module")
def bart_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("bart") is None:
        pytest.skip("bart is not installed")
    d = tmp_path_factory.mktemp("bart")
    _bart(d, "phantom", "-k", "-s", "8", "-x", "128", "full")
    kfull = bart_to_kspace(read_cfl(d / "full"))  # (coils, x, y)
    mask = random_mask(kfull.shape, 0.08, 4, seed=0)  # lines of BART's y (phase encoding)
    kus = (mask * kfull).astype(np.complex64)
    write_cfl(d / "us", kspace_to_bart(kus))
    _bart(d, "ecalib", "-m1", "us", "maps")
    maps = bart_to_kspace(read_cfl(d / "maps"))
    ref = np.sum(np.conj(maps) * ifft2c(kfull), axis=0)
    scale = float(np.abs(SenseOperator(maps, mask).T(kus)).max())
    return {"dir": d, "k": kus, "maps": maps, "mask": mask, "ref": ref, "scale": scale}


def _pics(data: dict[str, Any], reg: str, lam: float) -> np.ndarray:
    d = data["dir"]
    _bart(d, "pics", "-S", "-w", "1", "-i", "100", "-R", f"{reg}:3:0:{lam}", "us", "maps", "out")
    return bart_to_kspace(read_cfl(d / "out"))[0]


@pytest.fixture(scope="module")
def ours_on_bart(bart_data: dict[str, Any]) -> dict[str, Any]:
    """Our best l1-wavelet and TV results on the BART data (lambda sweeps)."""
    k, maps, mask, ref, sc = (bart_data[n] for n in ("k", "maps", "mask", "ref", "scale"))

    def wav(r: float) -> Any:
        return cs_wavelet(k, maps, mask, lam=r * sc, wavelet="haar", random_shift=True)

    def tv(r: float) -> Any:
        return cs_tv(k, maps, mask, lam=r * sc, n_iter=150)

    return {
        "wavelet": best_over([3e-4, 1e-3], wav, ref),
        "tv": best_over([2e-3, 5e-3], tv, ref),
        "zero_filled": complex_scaled_nrmse(SenseOperator(maps, mask).T(k), ref),
        "cg_sense": complex_scaled_nrmse(sense_recon(k, maps, mask, n_iter=30), ref),
    }


def test_wavelet_vs_bart_pics(bart_data: dict[str, Any], ours_on_bart: dict[str, Any]) -> None:
    sc, ref = bart_data["scale"], bart_data["ref"]
    err_bart, lam_bart = best_over([3e-4, 1e-3, 3e-3], lambda r: _pics(bart_data, "W", r * sc), ref)
    err_ours, lam_ours = ours_on_bart["wavelet"]
    print(
        f"l1-wavelet NRMSE: ours {err_ours:.4f} (lam {lam_ours}), BART {err_bart:.4f} "
        f"(lam {lam_bart}), CG-SENSE {ours_on_bart['cg_sense']:.4f}, "
        f"zero-filled {ours_on_bart['zero_filled']:.4f}"
    )
    assert err_ours <= 1.1 * err_bart, (err_ours, err_bart)
    assert err_ours < 0.5 * min(ours_on_bart["zero_filled"], ours_on_bart["cg_sense"])


def test_tv_vs_bart_pics(bart_data: dict[str, Any], ours_on_bart: dict[str, Any]) -> None:
    sc, ref = bart_data["scale"], bart_data["ref"]
    err_bart, lam_bart = best_over([3e-3, 1e-2, 3e-2], lambda r: _pics(bart_data, "T", r * sc), ref)
    err_ours, lam_ours = ours_on_bart["tv"]
    print(f"TV NRMSE: ours {err_ours:.4f} (lam {lam_ours}), BART {err_bart:.4f} (lam {lam_bart})")
    assert err_ours <= 1.1 * err_bart, (err_ours, err_bart)


def test_vs_sigpy(bart_data: dict[str, Any], ours_on_bart: dict[str, Any]) -> None:
    try:
        import sigpy.mri.app as app
    except Exception as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"sigpy does not import: {exc}")
    k, maps, ref, sc = (bart_data[n] for n in ("k", "maps", "ref", "scale"))
    y, s = k.astype(np.complex64), maps.astype(np.complex64)
    try:
        sp_wav = app.L1WaveletRecon(y, s, 3e-4 * sc, max_iter=100, show_pbar=False).run()
        sp_tv = app.TotalVariationRecon(y, s, 1e-2 * sc, max_iter=100, show_pbar=False).run()
    except Exception as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"sigpy does not run here: {exc}")
    e_wav, e_tv = ours_on_bart["wavelet"][0], ours_on_bart["tv"][0]
    e_sp_wav, e_sp_tv = complex_scaled_nrmse(sp_wav, ref), complex_scaled_nrmse(sp_tv, ref)
    print(
        f"SigPy NRMSE: wavelet ours {e_wav:.4f} vs {e_sp_wav:.4f}, TV {e_tv:.4f} vs {e_sp_tv:.4f}"
    )
    assert e_wav <= 1.1 * e_sp_wav and e_tv <= 1.1 * e_sp_tv
