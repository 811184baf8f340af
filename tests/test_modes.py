"""Mode-collapse measures (advnets.evaluate.modes) and the 2-D toys (advnets.data.toy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advnets.data.toy import TOY_2D, GaussianMixture2D, grid25, make_toy, ring8
from advnets.errors import DataError
from advnets.evaluate.modes import (
    DEFAULT_MIN_FRACTION,
    expected_high_quality_fraction,
    mode_coverage,
)

# chi-squared with 2 dof: P(|x - mu| <= 3 sigma) for an isotropic 2-D Gaussian
HQ_3SIGMA_2D = 1.0 - math.exp(-4.5)  # 0.98889, not the 1-D 0.9973


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ 2-D toys


def test_registry_and_documented_values():
    assert set(TOY_2D) == {"ring8", "grid25"}
    r = TOY_2D["ring8"]()
    assert r.modes.shape == (8, 2) and r.std == 0.02
    np.testing.assert_allclose(np.linalg.norm(r.modes, axis=1), 2.0)
    np.testing.assert_allclose(r.modes[0], [2.0, 0.0])
    np.testing.assert_allclose(r.modes[2], [0.0, 2.0], atol=1e-15)
    angles = np.sort(np.mod(np.arctan2(r.modes[:, 1], r.modes[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(np.diff(angles), np.pi / 4)
    g = make_toy("grid25")
    assert g.modes.shape == (25, 2) and g.std == 0.05
    assert {tuple(m) for m in g.modes} == {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}


@pytest.mark.parametrize("toy", [ring8(), grid25()], ids=lambda t: t.name)
def test_toy2d_samples(toy):
    n = 100_000
    s = toy.sample(n, _gen(3))
    assert s.shape == (n, 2) and s.dtype == torch.float32
    x = s.double().numpy()
    np.testing.assert_allclose(x.mean(axis=0), toy.modes.mean(axis=0), atol=0.03)
    # around its mode, each sample has per-coordinate std = toy.std
    nearest = np.argmin(((x[:, None, :] - toy.modes) ** 2).sum(-1), axis=1)
    resid = x - toy.modes[nearest]
    np.testing.assert_allclose(resid.std(axis=0), toy.std, rtol=0.02)
    np.testing.assert_allclose(resid.mean(axis=0), 0.0, atol=0.01 * toy.std * 10)
    # modes are equally likely
    freq = np.bincount(nearest, minlength=toy.n_modes) / n
    np.testing.assert_allclose(freq, 1.0 / toy.n_modes, atol=0.01)
    # reproducible
    assert torch.equal(toy.sample(50, _gen(1)), toy.sample(50, _gen(1)))
    assert not torch.equal(toy.sample(50, _gen(1)), toy.sample(50, _gen(2)))


def test_toy2d_pdf_integrates_to_one():
    toy = ring8(std=0.2)  # wide enough for a modest grid
    (x0, x1), (y0, y1) = toy.bounds(8.0)
    xs, ys = np.linspace(x0, x1, 801), np.linspace(y0, y1, 801)
    pts = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1)
    dens = toy.pdf(pts)
    assert dens.shape == (801, 801)
    assert dens.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]) == pytest.approx(1.0, abs=1e-6)
    # peak value: one of 8 modes, 1 / (8 * 2 pi sigma^2)
    assert toy.pdf(toy.modes[0]) == pytest.approx(1 / (8 * 2 * math.pi * 0.04), rel=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ring8(std=0.0),
        lambda: ring8(radius=-1.0),
        lambda: grid25(spacing=0.0),
        lambda: GaussianMixture2D(np.zeros((3, 3)), 0.1),
        lambda: GaussianMixture2D(np.zeros((0, 2)), 0.1),
        lambda: make_toy("ring9"),
        lambda: make_toy("ring8", sigma=0.1),
        lambda: ring8().sample(-5),
        lambda: ring8().pdf(np.zeros(3)),
    ],
)
def test_toy2d_bad_arguments(make):
    with pytest.raises(DataError):
        make()


# ------------------------------------------------------------- mode coverage


def test_exact_ring8_samples_cover_all_modes():
    toy = ring8()
    n = 20_000
    res = mode_coverage(toy.sample(n, _gen(0)), toy.modes, toy.std)
    assert res["modes_covered"] == 8
    assert res["covered"].all()
    assert expected_high_quality_fraction(3.0, 2) == pytest.approx(HQ_3SIGMA_2D, abs=1e-12)
    # binomial s.e. at n = 20000 is 0.00074; allow > 5 s.e.
    assert res["high_quality_fraction"] == pytest.approx(HQ_3SIGMA_2D, abs=0.004)
    assert res["high_quality_count"] == res["counts"].sum()
    assert res["counts"].shape == (8,) and res["nearest_mode"].shape == (n,)
    assert res["kl_to_uniform"] < 0.005
    assert res["min_count"] == math.ceil(DEFAULT_MIN_FRACTION * n / 8)


def test_exact_grid25_samples_cover_all_modes():
    toy = grid25()
    res = mode_coverage(toy.sample(2_500, _gen(1)), toy.modes, toy.std)
    assert res["min_count"] == 20  # the PacGAN rule: 20 of 2,500 samples
    assert res["modes_covered"] == 25
    assert res["high_quality_fraction"] == pytest.approx(HQ_3SIGMA_2D, abs=0.015)


@pytest.mark.parametrize("threshold", [1.0, 2.0, 4.0])
def test_high_quality_fraction_follows_chi2(threshold):
    toy = ring8()
    res = mode_coverage(toy.sample(20_000, _gen(4)), toy.modes, toy.std, threshold=threshold)
    assert res["high_quality_fraction"] == pytest.approx(1 - math.exp(-(threshold**2) / 2), abs=0.012)


def test_full_collapse_covers_one_mode():
    toy = ring8()
    one = toy.modes[3] + toy.std * torch.randn(5_000, 2, generator=_gen(2)).double().numpy()
    res = mode_coverage(one, toy.modes, toy.std)
    assert res["modes_covered"] == 1
    assert res["covered"].tolist() == [k == 3 for k in range(8)]
    assert res["high_quality_fraction"] == pytest.approx(HQ_3SIGMA_2D, abs=0.01)
    assert res["kl_to_uniform"] == pytest.approx(math.log(8), abs=1e-12)


def test_partial_collapse():
    toy = grid25()
    x = toy.sample(25_000, _gen(5)).numpy()
    keep = mode_coverage(x, toy.modes, toy.std)["nearest_mode"] < 10
    res = mode_coverage(x[keep], toy.modes, toy.std)
    assert res["modes_covered"] == 10
    assert res["kl_to_uniform"] == pytest.approx(math.log(25 / 10), abs=0.01)


def test_uniform_noise_is_low_quality():
    toy = ring8()
    noise = torch.rand(20_000, 2, generator=_gen(6)) * 6 - 3  # uniform on [-3, 3]^2
    res = mode_coverage(noise, toy.modes, toy.std)
    # 8 discs of radius 0.06 cover 0.25 % of the square
    assert res["high_quality_fraction"] < 0.01
    assert res["modes_covered"] == 0  # ~6 per mode, far below ceil(0.2 * 20000 / 8) = 500


def test_min_count_rule_boundary():
    toy = ring8()
    # 100 samples exactly on mode 0 and 19 / 20 on mode 1: with min_count = 20
    x = np.concatenate([np.repeat(toy.modes[:1], 100, 0), np.repeat(toy.modes[1:2], 19, 0)])
    assert mode_coverage(x, toy.modes, toy.std, min_count=20)["modes_covered"] == 1
    x = np.concatenate([x, toy.modes[1:2]])
    res = mode_coverage(x, toy.modes, toy.std, min_count=20)
    assert res["modes_covered"] == 2 and res["counts"][:2].tolist() == [100, 20]
    # default: ceil(0.2 * 800 / 8) = 20 expected per mode under uniform coverage
    x = np.repeat(toy.modes, 100, 0)
    x[100:181] = toy.modes[0]  # rows 100.. were mode 1: now mode 0 has 181, mode 1 only 19
    res = mode_coverage(x, toy.modes, toy.std)
    assert res["min_count"] == 20
    assert res["counts"][1] == 19 and res["modes_covered"] == 7


def test_distance_and_threshold_are_inclusive_and_euclidean():
    modes = np.array([[0.0, 0.0], [10.0, 0.0]])
    # std 0.125, threshold 2: radius exactly 0.25 (binary-exact numbers)
    x = np.array([[0.25, 0.0], [0.0, -0.25], [0.25 + 1e-9, 0.0], [0.1875, 0.1875], [9.0, 0.0]])
    res = mode_coverage(x, modes, 0.125, threshold=2.0, min_count=1)
    np.testing.assert_allclose(res["distance"], [0.25, 0.25, 0.25 + 1e-9, 0.1875 * math.sqrt(2), 1.0], rtol=1e-12)
    assert res["nearest_mode"].tolist() == [0, 0, 0, 0, 1]
    assert res["high_quality_count"] == 2  # on the boundary counts; Euclidean, not per-axis
    assert res["counts"].tolist() == [2, 0]
    assert res["modes_covered"] == 1


def test_nonfinite_samples_are_low_quality():
    toy = ring8()
    x = np.repeat(toy.modes, 10, 0)
    x[:5] = np.nan
    x[5, 1] = np.inf
    res = mode_coverage(x, toy.modes, toy.std, min_count=1)
    assert res["n_samples"] == 80
    assert res["high_quality_count"] == 74
    assert res["nearest_mode"][:6].tolist() == [-1] * 6
    nan_only = mode_coverage(np.full((4, 2), np.nan), toy.modes, toy.std)
    assert nan_only["modes_covered"] == 0 and nan_only["high_quality_fraction"] == 0.0
    assert math.isnan(nan_only["kl_to_uniform"])


def test_chunked_distances_match():
    toy = grid25()
    x = toy.sample(70_000, _gen(8)).numpy() * 1.05  # a few land off-mode
    res = mode_coverage(x, toy.modes, toy.std)
    d2 = ((x[:, None, :].astype(np.float64) - toy.modes) ** 2).sum(-1)
    assert res["nearest_mode"].tolist() == np.argmin(d2, axis=1).tolist()


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((np.zeros((10, 3)), ring8().modes, 0.02), {}),  # dimension mismatch
        ((np.zeros(10), ring8().modes, 0.02), {}),  # 1-D samples
        ((np.zeros((10, 2, 1)), ring8().modes, 0.02), {}),  # 3-D samples
        ((np.zeros((0, 2)), ring8().modes, 0.02), {}),  # empty
        ((np.zeros((10, 2)), np.zeros(2), 0.02), {}),  # modes not (K, 2)
        ((np.zeros((10, 2)), np.full((2, 2), np.nan), 0.02), {}),
        ((np.zeros((10, 2)), ring8().modes, 0.0), {}),  # std <= 0
        ((np.zeros((10, 2)), ring8().modes, "wide"), {}),
        ((np.zeros((10, 2)), ring8().modes, 0.02), {"threshold": -1.0}),
        ((np.zeros((10, 2)), ring8().modes, 0.02), {"min_count": 0}),
        ((np.zeros((10, 2)), ring8().modes, 0.02), {"min_count": 2.5}),
        (([["a", "b"]], ring8().modes, 0.02), {}),
    ],
)
def test_bad_inputs_raise_data_error(args, kwargs):
    with pytest.raises(DataError):
        mode_coverage(*args, **kwargs)
