"""Precision, recall, density and coverage (advnets.evaluate.manifold) against prdc and brute force."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from advnets.errors import DataError
from advnets.evaluate.manifold import manifold_metrics


def brute_force(real: np.ndarray, fake: np.ndarray, k: int, k_dc: int) -> dict[str, float]:
    """The four definitions from explicit float64 differences and sorted distances."""

    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def radius(a, kk):  # distance to the kk-th nearest other point
        return np.sort(dist(a, a), axis=1)[:, kk]

    d_rf = dist(real, fake)
    rr, rr_dc, rf = radius(real, k), radius(real, k_dc), radius(fake, k)
    return {
        "precision": float(np.mean([any(d_rf[i, j] < rr[i] for i in range(len(real))) for j in range(len(fake))])),
        "recall": float(np.mean([any(d_rf[i, j] < rf[j] for j in range(len(fake))) for i in range(len(real))])),
        "density": float(
            np.mean([sum(d_rf[i, j] < rr_dc[i] for i in range(len(real))) for j in range(len(fake))]) / k_dc
        ),
        "coverage": float(np.mean([d_rf[i].min() < rr_dc[i] for i in range(len(real))])),
    }


def run_prdc(real, fake, k):
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        return {key: float(v) for key, v in compute_prdc(real, fake, nearest_k=k).items()}


def test_matches_brute_force_on_tiny_inputs():
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((23, 3)), rng.standard_normal((17, 3)) * 0.3 + 1.5
    got = manifold_metrics(real, fake, k=3, k_dc=5)
    expected = brute_force(real, fake, 3, 5)
    for key in ("precision", "recall", "density", "coverage"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1


@pytest.mark.parametrize("k", [3, 5])
def test_matches_prdc_on_identical_features(k):
    rng = np.random.default_rng(k)
    real = rng.standard_normal((400, 16))
    fake = rng.standard_normal((300, 16)) * 0.8 + 0.15
    got = manifold_metrics(real, fake, k=k, k_dc=k)
    expected = run_prdc(real, fake, k)
    for key in ("precision", "recall", "density", "coverage"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key


def test_small_memory_blocks_give_the_same_answer():
    rng = np.random.default_rng(9)
    real, fake = rng.standard_normal((300, 8)), rng.standard_normal((250, 8)) + 0.3
    whole = manifold_metrics(real, fake)
    blocked = manifold_metrics(real, fake, max_bytes=8 * 40 * 40)  # blocks of about 40 x 40
    assert blocked == whole


def test_float32_mode_agrees_on_continuous_features():
    rng = np.random.default_rng(10)
    real, fake = rng.standard_normal((300, 8)), rng.standard_normal((250, 8)) + 0.3
    a = manifold_metrics(real, fake)
    b = manifold_metrics(real, fake, dtype=torch.float32)
    for key in ("precision", "recall", "density", "coverage"):
        assert b[key] == pytest.approx(a[key], abs=0.01)


def test_recall_and_coverage_fall_when_classes_are_dropped():
    """Ten well separated clusters as 'classes'; G that keeps only 3 of them."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((10, 4)) * 10
    labels = np.repeat(np.arange(10), 60)
    real = centres[labels] + rng.standard_normal((600, 4))
    g_labels = rng.integers(0, 10, 600)
    full = centres[g_labels] + rng.standard_normal((600, 4))
    kept = full[np.isin(g_labels, [0, 1, 2])]  # the same draws with classes 3-9 removed
    good, dropped = manifold_metrics(real, full), manifold_metrics(real, kept)
    assert good["recall"] > 0.85 and good["coverage"] > 0.9
    assert dropped["recall"] < 0.35 and dropped["coverage"] < 0.35
    assert dropped["precision"] > 0.85  # what G draws is still realistic


def test_identical_sets_score_high_everywhere():
    x = np.random.default_rng(12).standard_normal((200, 6))
    got = manifold_metrics(x, x)
    assert got["precision"] == 1.0 and got["recall"] == 1.0 and got["coverage"] == 1.0


def test_refuses_mismatched_shapes_nan_and_too_few_points():
    with pytest.raises(DataError, match="dimension 4 but real features have 3"):
        manifold_metrics(np.zeros((20, 3)), np.zeros((20, 4)))
    fake = np.zeros((20, 3))
    fake[0, 0] = np.nan
    with pytest.raises(DataError, match="generated features: 1 row"):
        manifold_metrics(np.ones((20, 3)), fake)
    with pytest.raises(DataError, match="real features: 5 rows; the k-NN radii need more than 5"):
        manifold_metrics(np.random.rand(5, 3), np.random.rand(20, 3))
    with pytest.raises(DataError, match="k must be a positive integer"):
        manifold_metrics(np.random.rand(20, 3), np.random.rand(20, 3), k=0)
