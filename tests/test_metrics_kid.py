"""Kernel distance (advnets.evaluate.kid) against a direct float64 MMD² and torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advnets.errors import DataError
from advnets.evaluate.kid import kernel_distance, mmd2_unbiased


def direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (a·b/d + 1)³, from explicit double loops over pairs."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_the_direct_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((9, 5)) + 0.4
    got = mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y))
    assert got == pytest.approx(direct_mmd2(x, y), rel=1e-12)


def test_kid_with_one_full_subset_is_the_mmd2_of_the_sets():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((15, 4)), rng.standard_normal((15, 4)) * 1.5
    got = kernel_distance(x, y, subsets=3, subset_size=15)
    assert got["kid"] == pytest.approx(direct_mmd2(x, y), rel=1e-12)
    assert got["kid_std"] is None  # every subset is the whole set: no spread to report
    assert (got["subsets"], got["subset_size"], got["n_real"], got["dim"]) == (3, 15, 15, 4)


def _direct_subset_mmd2s(x: np.ndarray, y: np.ndarray, subsets: int, size: int, seed: int) -> list[float]:
    """The MMD² of each subset pair, drawn as kernel_distance documents (real, then generated, per subset)."""
    rng = np.random.default_rng(seed)
    pairs = [(rng.choice(len(x), size, replace=False), rng.choice(len(y), size, replace=False)) for _ in range(subsets)]
    return [direct_mmd2(x[i], y[j]) for i, j in pairs]


def test_kid_std_is_reported_only_when_the_subsets_differ():
    """subset_size = N_r = N_g: every draw reorders the same two sets, so the direct MMD²s agree to rounding
    (the 9e-16 'uncertainty' evaluate printed); kid_std is None. On smaller subsets it is their std."""
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((20, 4)), rng.standard_normal((20, 4)) + 0.3
    whole = kernel_distance(x, y, subsets=5, subset_size=20, seed=3)
    direct = _direct_subset_mmd2s(x, y, 5, 20, seed=3)
    assert np.std(direct) < 1e-12 and whole["kid_std"] is None
    assert whole["kid"] == pytest.approx(np.mean(direct), rel=1e-12)
    part = kernel_distance(x, y, subsets=5, subset_size=12, seed=3)
    direct = _direct_subset_mmd2s(x, y, 5, 12, seed=3)
    assert part["kid"] == pytest.approx(np.mean(direct), rel=1e-12)
    assert part["kid_std"] == pytest.approx(np.std(direct), rel=1e-9) and part["kid_std"] > 1e-6
    uneven = kernel_distance(x, y[:15], subsets=5)  # the 15 generated are whole, the 20 real are not
    assert uneven["subset_size"] == 15 and uneven["kid_std"] > 1e-6


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features")
def test_kid_matches_torchmetrics_on_identical_features():
    from torchmetrics.image.kid import KernelInceptionDistance

    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((200, 32)), rng.standard_normal((200, 32)) * 1.2 + 0.1
    tm = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=1, subset_size=200)
    tm.update(torch.from_numpy(x), real=True)
    tm.update(torch.from_numpy(y), real=False)
    expected, _ = tm.compute()
    assert kernel_distance(x, y, subsets=1, subset_size=200)["kid"] == pytest.approx(float(expected), rel=1e-9)


def test_kid_is_unbiased_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(3)
    values = [
        kernel_distance(rng.standard_normal((60, 8)), rng.standard_normal((60, 8)), subsets=1)["kid"]
        for _ in range(400)
    ]
    mean, se = np.mean(values), np.std(values) / np.sqrt(len(values))
    assert abs(mean) < 3 * se  # an expectation of 0 within 3 standard errors
    assert min(values) < 0  # an unbiased estimate of 0 must go negative; a biased one (V-statistic) does not
    shifted = kernel_distance(rng.standard_normal((60, 8)), rng.standard_normal((60, 8)) + 0.5, subsets=20)
    assert shifted["kid"] > 20 * se


def test_kid_defaults_follow_torchmetrics_and_shrink_the_subset_for_small_sets():
    rng = np.random.default_rng(4)
    small = kernel_distance(rng.standard_normal((50, 3)), rng.standard_normal((80, 3)))
    assert (small["subsets"], small["subset_size"]) == (100, 50)
    again = kernel_distance(rng.standard_normal((50, 3)), rng.standard_normal((80, 3)), seed=1)
    assert again["kid"] != small["kid"]


def test_kid_is_reproducible_for_a_seed():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((100, 6)), rng.standard_normal((120, 6))
    assert kernel_distance(x, y, subset_size=30, seed=7) == kernel_distance(x, y, subset_size=30, seed=7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subset_size": 1}, "subset_size 1 must be between 2 and the size of the smaller set"),
        ({"subset_size": 11}, "subset_size 11 must be between 2"),
        ({"subsets": 0}, "subsets must be a positive integer"),
    ],
)
def test_kid_refuses_bad_options(kwargs, message):
    x = np.zeros((10, 3))
    with pytest.raises(DataError, match=message):
        kernel_distance(x, x + 1, **kwargs)


def test_kid_refuses_mismatched_shapes_and_nan():
    with pytest.raises(DataError, match="dimension 4 but real features have 3"):
        kernel_distance(np.zeros((10, 3)), np.zeros((10, 4)))
    y = np.zeros((10, 3))
    y[2, 0] = np.inf
    with pytest.raises(DataError, match="generated features: 1 row"):
        kernel_distance(np.zeros((10, 3)), y)
