"""Batch collapse statistics (advnets.evaluate.diversity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import advnets.evaluate.diversity as div_mod
from advnets.errors import DataError
from advnets.evaluate.diversity import (
    DEFAULT_DUPLICATE_FACTOR,
    diversity_ratio,
    mean_pairwise_distance,
    near_duplicate_fraction,
    nearest_other_distance,
)


def _brute_pairs(x):
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n = len(x)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            d[i, j] = math.sqrt(sum((a - b) ** 2 for a, b in zip(x[i], x[j], strict=True)))
    return d


def _brute_mean(x):
    d = _brute_pairs(x)
    return float(d[np.triu_indices(len(d), k=1)].mean())


def _brute_nearest(x):
    d = _brute_pairs(x)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


# --------------------------------------------------------------------------- distances


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_mean_pairwise_distance_matches_a_double_loop(offset):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 30)) + offset
    assert mean_pairwise_distance(x) == pytest.approx(_brute_mean(x), rel=1e-9)
    images = torch.rand(25, 1, 4, 5, generator=torch.Generator().manual_seed(2))
    assert mean_pairwise_distance(images) == pytest.approx(_brute_mean(images.double().numpy()), rel=1e-9)


def test_duplicates_and_near_duplicates_are_exact(monkeypatch):
    rng = np.random.default_rng(3)
    a, b, c = rng.random(50), rng.random(50), rng.random(50)
    near = c + 1e-6 * rng.random(50)  # the product expansion alone gets this pair's distance wrong by ~1e-5
    x = 100 * np.stack([a] * 7 + [b] * 5 + [c, near, rng.random(50)]) + 5  # copies and near-copies
    assert mean_pairwise_distance(x) == pytest.approx(_brute_mean(x), rel=1e-9)
    nn = nearest_other_distance(x)
    np.testing.assert_allclose(nn, _brute_nearest(x), rtol=1e-9, atol=0)
    assert np.all(nn[:12] == 0.0) and np.all(nn[12:] > 0)
    assert mean_pairwise_distance(np.tile(a, (500, 1))) == 0.0
    # several blocks of rows give the same answer
    monkeypatch.setattr(div_mod, "_BLOCK_BYTES", 8 * 3 * 4 * 3)
    y = rng.normal(size=(30, 8))
    assert mean_pairwise_distance(y) == pytest.approx(_brute_mean(y), rel=1e-9)
    np.testing.assert_allclose(nearest_other_distance(y), _brute_nearest(y), rtol=1e-9)


def test_diversity_ratio_on_real_and_collapsed_batches(digits):
    assert diversity_ratio(digits.test, digits.valid) == pytest.approx(1.0, abs=0.1)  # measured 1.012
    assert diversity_ratio(digits.train[:500], digits.test) == pytest.approx(1.0, abs=0.1)
    copies = digits.test[:1].repeat(500, 1, 1, 1)
    assert diversity_ratio(copies, digits.valid) == 0.0
    ones = digits.train[digits.train_labels == 1]
    assert 0.3 < diversity_ratio(ones, digits.test) < 1.0  # one class: less varied than all ten (0.87)
    with pytest.raises(DataError, match="values per row"):
        diversity_ratio(torch.rand(10, 784), digits.test)
    with pytest.raises(DataError, match="all rows equal"):
        diversity_ratio(digits.test, copies)


def test_near_duplicate_fraction(digits):
    copies = digits.test[:1].repeat(500, 1, 1, 1)
    assert near_duplicate_fraction(copies, real=digits.valid) == 1.0
    assert near_duplicate_fraction(digits.test, real=digits.valid) <= 0.02  # measured 0
    assert near_duplicate_fraction(digits.valid, real=digits.test) <= 0.02
    # half the batch collapsed onto one image
    half = torch.cat([digits.test[:90], digits.test[90:91].repeat(89, 1, 1, 1)])
    assert near_duplicate_fraction(half, real=digits.valid) == pytest.approx(89 / 179, abs=0.02)

    x = np.random.default_rng(4).normal(size=(20, 6))
    nn = _brute_nearest(x)
    np.testing.assert_allclose(nearest_other_distance(x), nn, rtol=1e-9)
    thr = float(np.median(nn))
    assert near_duplicate_fraction(x, thr) == float(np.mean(nn < thr))
    other = np.random.default_rng(5).normal(size=(20, 6))
    real_median = float(np.median(_brute_nearest(other)))
    for factor in (DEFAULT_DUPLICATE_FACTOR, 1.0, 2.0):
        expected = float(np.mean(nn < factor * real_median))
        assert near_duplicate_fraction(x, real=other, factor=factor) == expected
    with pytest.raises(DataError, match="threshold or a real batch"):
        near_duplicate_fraction(x)
    with pytest.raises(DataError, match="not both"):
        near_duplicate_fraction(x, 1.0, real=x)
    with pytest.raises(DataError, match="threshold must be >= 0"):
        near_duplicate_fraction(x, -1.0)


def test_mean_pairwise_distance_refuses_one_row_nan_a_flat_vector_and_strings():
    with pytest.raises(DataError, match="at least 2"):
        mean_pairwise_distance(np.zeros((1, 5)))
    with pytest.raises(DataError, match="NaN"):
        mean_pairwise_distance(np.array([[0.0, 1.0], [np.nan, 0.0]]))
    with pytest.raises(DataError, match="shape N x d"):
        mean_pairwise_distance(np.zeros(5))
    with pytest.raises(DataError, match="array of numbers"):
        mean_pairwise_distance([["a", "b"], ["c", "d"]])
