"""Transmission noise (``medrecon.ct.simulate.noise``): statistics, zero counts, types, errors.

The statistical checks draw 2e5 readings of one constant line integral; the sample variance
then has a relative standard error of ``sqrt(2 / n) = 0.3 %``, and the first-order variance
formula is off by about ``1 / (I0 e^-p)``, well below the 3 % tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medrecon.ct.simulate import (
    ZeroCounts,
    log_transform,
    poisson_noise,
    transmission_counts,
)
from medrecon.errors import DtypeError, NonFiniteError, ShapeError

N_SAMPLES = 200_000


@pytest.mark.parametrize(("i0", "p"), [(1e5, 2.0), (1e3, 0.5), (5e4, 4.0)])
def test_post_log_variance_is_one_over_expected_counts(
    i0: float, p: float, rng: np.random.Generator
) -> None:
    q = poisson_noise(np.full(N_SAMPLES, p), i0=i0, rng=rng)
    lam = i0 * math.exp(-p)
    assert q.var() == pytest.approx(1.0 / lam, rel=0.03)
    # first-order unbiased: the mean is within a few standard errors of p (+ 1/(2 lam) bias)
    assert abs(q.mean() - p) < 5 * math.sqrt(1.0 / lam / N_SAMPLES) + 1.0 / lam


def test_electronic_noise_adds_to_the_variance(rng: np.random.Generator) -> None:
    i0, p, sigma = 1e3, 1.0, 10.0
    q = poisson_noise(np.full(N_SAMPLES, p), i0=i0, rng=rng, electronic_std=sigma)
    lam = i0 * math.exp(-p)
    assert q.var() == pytest.approx((lam + sigma**2) / lam**2, rel=0.03)


def test_counts_are_poisson(rng: np.random.Generator) -> None:
    n = transmission_counts(np.full(N_SAMPLES, 1.0), i0=200.0, rng=rng)
    lam = 200.0 * math.exp(-1.0)
    assert n.mean() == pytest.approx(lam, rel=0.005)
    assert n.var() == pytest.approx(lam, rel=0.03)
    assert np.all(n == np.round(n))


def test_flat_field_scales_counts_and_is_divided_out(rng: np.random.Generator) -> None:
    gain = np.array([0.5, 1.0, 2.0])
    sino = np.zeros((N_SAMPLES // 10, 3))
    n = transmission_counts(sino, i0=1e4, rng=rng, flat_field=gain)
    np.testing.assert_allclose(n.mean(axis=0), 1e4 * gain, rtol=0.01)
    q = log_transform(n, 1e4, flat_field=gain)
    np.testing.assert_allclose(q.mean(axis=0), 0.0, atol=2e-3)
    # noise scales with 1 / gain
    np.testing.assert_allclose(q.var(axis=0), 1.0 / (1e4 * gain), rtol=0.05)


def test_same_seed_same_noise() -> None:
    p = np.linspace(0.0, 3.0, 50)
    a = poisson_noise(p, i0=1e4, rng=np.random.default_rng(5))
    b = poisson_noise(p, i0=1e4, rng=5)
    c = poisson_noise(p, i0=1e4, rng=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_zero_counts_clip_and_raise() -> None:
    starved = np.full((4, 5), 40.0)  # i0 e^-40 ~ 4e-13: every count is 0
    q = poisson_noise(starved, i0=100.0, rng=0)
    np.testing.assert_allclose(q, math.log(100.0 / 0.5))
    q1 = poisson_noise(starved, i0=100.0, rng=0, count_floor=1.0)
    np.testing.assert_allclose(q1, math.log(100.0))
    with pytest.raises(ValueError, match="counts > 0"):
        poisson_noise(starved, i0=100.0, rng=0, zero_counts="raise")
    # electronic noise makes some counts negative; clipping keeps every value finite
    q2 = poisson_noise(np.full(1000, 6.0), i0=100.0, rng=0, electronic_std=3.0)
    assert np.all(np.isfinite(q2)) and q2.max() == pytest.approx(math.log(200.0))
    assert log_transform(np.array([0.2, 5.0]), 10.0, zero_counts=ZeroCounts.RAISE).tolist() == (
        pytest.approx([math.log(50.0), math.log(2.0)])
    )


def test_log_transform_inverts_noise_free_counts() -> None:
    p = np.linspace(-0.5, 6.0, 27).reshape(3, 9)
    counts = 1e5 * np.exp(-p)
    np.testing.assert_allclose(log_transform(counts, 1e5), p, rtol=0, atol=1e-12)
    ints = log_transform(np.array([1000, 100, 10], dtype=np.int64), 1000.0)
    assert ints.dtype == np.float64
    np.testing.assert_allclose(ints, [0.0, math.log(10.0), math.log(100.0)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_dtype_kept(dtype: type) -> None:
    p = np.full((3, 4), 1.0, dtype=dtype)
    assert transmission_counts(p, i0=1e3, rng=0).dtype == dtype
    assert poisson_noise(p, i0=1e3, rng=0).dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_in_torch_out(dtype: torch.dtype) -> None:
    p = torch.full((2, 8, 6), 1.5, dtype=dtype, requires_grad=True)
    q = poisson_noise(p, i0=1e4, rng=0, flat_field=torch.ones(6))
    assert isinstance(q, torch.Tensor) and q.dtype == dtype and q.shape == p.shape
    assert not q.requires_grad
    ref = poisson_noise(p.detach().numpy(), i0=1e4, rng=0)
    np.testing.assert_array_equal(q.numpy(), ref)
    counts = transmission_counts(p, i0=1e4, rng=0)
    assert isinstance(counts, torch.Tensor) and counts.dtype == dtype
    q2 = log_transform(counts, 1e4)
    assert isinstance(q2, torch.Tensor) and q2.dtype == dtype


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"i0": 0.0}, ValueError),
        ({"i0": -10.0}, ValueError),
        ({"i0": math.inf}, NonFiniteError),
        ({"i0": math.nan}, NonFiniteError),
        ({"i0": "1e5"}, TypeError),
        ({"electronic_std": -1.0}, ValueError),
        ({"electronic_std": math.nan}, NonFiniteError),
        ({"count_floor": 0.0}, ValueError),
        ({"zero_counts": "ignore"}, ValueError),
        ({"rng": None}, TypeError),
        ({"flat_field": np.ones(5)}, ShapeError),
        ({"flat_field": np.ones((2, 2, 4))}, ShapeError),
        ({"flat_field": np.array([1.0, 0.0, 1.0, 1.0])}, ValueError),
        ({"flat_field": np.array([1.0, np.nan, 1.0, 1.0])}, NonFiniteError),
    ],
)
def test_poisson_noise_rejects_bad_arguments(kwargs: dict, error: type[Exception]) -> None:
    args = {"i0": 1e4, "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(error, match="expected"):
        poisson_noise(np.zeros((2, 4)), **args)


def test_poisson_noise_rejects_bad_sinograms() -> None:
    with pytest.raises(NonFiniteError, match="sino"):
        poisson_noise(np.array([0.0, np.inf]), i0=1e4, rng=0)
    with pytest.raises(DtypeError, match="sino"):
        poisson_noise(np.zeros(3, dtype=np.int32), i0=1e4, rng=0)
    with pytest.raises(ValueError, match="rates"):
        poisson_noise(np.array([-50.0]), i0=1e4, rng=0)
    with pytest.raises(NonFiniteError, match="counts"):
        log_transform(np.array([1.0, np.nan]), 10.0)
