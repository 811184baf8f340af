"""Batch collapse statistics and the collapse detector (advnets.evaluate.diversity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import advnets.evaluate.diversity as div_mod
from advnets.errors import DataError
from advnets.evaluate.diversity import (
    DEFAULT_DUPLICATE_FACTOR,
    CollapseDetector,
    collapse_advice,
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


# --------------------------------------------------------------------------- detector


def _feed(det, ratios, start=100, every=100, d_real=None, d_fake=None):
    out = []
    for i, r in enumerate(ratios):
        dr = None if d_real is None else d_real[i]
        df = None if d_fake is None else d_fake[i]
        out.append((start + i * every, det.update(start + i * every, r, d_real=dr, d_fake=df)))
    return [(s, m) for s, m in out if m is not None]


def test_healthy_training_never_warns():
    det = CollapseDetector()
    rng = np.random.default_rng(5)
    n = 200
    warned = _feed(
        det,
        list(rng.uniform(0.5, 1.1, n)),
        d_real=list(rng.uniform(0.4, 0.8, n)),
        d_fake=list(rng.uniform(0.2, 0.6, n)),
    )
    assert warned == [] and det.warnings == []


def test_sustained_low_diversity_warns_once_at_the_right_step():
    det = CollapseDetector()  # ratio < 0.3 for 3 consecutive checks
    ratios = [0.9, 0.8, 0.25, 0.2, 0.1, 0.05, 0.05, 0.04, 0.1, 0.05]
    warned = _feed(det, ratios)  # checks at steps 100, 200, ...; low from step 300
    assert len(warned) == 1
    step, msg = warned[0]
    assert step == 500
    assert msg.startswith("step 500:") and "steps 300 to 500" in msg
    assert "diversity" in msg and "learning rate" in msg and "seed" in msg
    assert det.warnings == [(500, msg)]


@pytest.mark.parametrize(
    "d_lr_scale, instance_noise, recommended, already",
    [
        (1.0, 0.0, ["--d-lr-scale 2", "--instance-noise 0.1"], []),
        (2.0, 0.0, ["--instance-noise 0.1"], ["--d-lr-scale 2"]),
        (1.0, 0.1, ["--d-lr-scale 2"], ["--instance-noise 0.1"]),
        (2.0, 0.1, [], []),
    ],
    ids=["paper-recipe", "fast-d-only", "noise-only", "both"],
)
def test_collapse_advice_recommends_only_what_the_run_does_not_do(d_lr_scale, instance_noise, recommended, already):
    """Issue 18: the remedy is recommended option by option, never to a run that already uses it."""
    advice = collapse_advice(d_lr_scale, instance_noise)
    tail = advice.split("Resume from an earlier checkpoint with ")[-1] if recommended else ""
    for option in recommended:
        assert option in tail  # recommended in the closing advice
    for option in already:
        assert f"already uses {option}" in advice  # said to be in use ...
        assert option not in tail  # ... and not recommended again
    if not recommended:
        assert (
            "already uses the remedy measured in advnets' stability benchmark (--d-lr-scale 2 --instance-noise 0.1"
            in advice
        )
        assert "another --seed" in advice and "When training collapses" in advice
        assert "Resume from an earlier checkpoint with" not in advice
    assert collapse_advice(d_lr_scale, instance_noise) == advice  # pure: same config, same text


def test_collapse_advice_names_the_runs_own_values_where_they_differ():
    advice = collapse_advice(0.5, 0.2)
    assert "with --d-lr-scale 2 --instance-noise 0.1 (this run has --d-lr-scale 0.5, --instance-noise 0.2)" in advice
    assert "(this run has" not in collapse_advice(1.0, 0.0)  # the paper's values need no note


def test_the_detector_ends_its_warning_with_the_runs_advice():
    det = CollapseDetector(advice=collapse_advice(2.0, 0.1))
    (_, msg), *_ = _feed(det, [0.1, 0.1, 0.1])
    assert msg.endswith(collapse_advice(2.0, 0.1))
    assert "Resume from an earlier checkpoint with" not in msg
    (_, default), *_ = _feed(CollapseDetector(), [0.1, 0.1, 0.1])
    assert default.endswith(collapse_advice())  # the paper's recipe by default


def test_a_brief_dip_does_not_warn_and_a_new_episode_warns_again():
    det = CollapseDetector()
    assert _feed(det, [0.9, 0.1, 0.2, 0.9, 0.1, 0.9, 0.2, 0.1, 0.8]) == []  # dips of 2 checks or fewer
    det = CollapseDetector()
    warned = _feed(det, [0.1, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1])
    assert [s for s, _ in warned] == [300, 800]  # recovered at step 500: a second episode
    # a check without a diversity measurement neither extends nor breaks the streak
    det = CollapseDetector()
    assert det.update(1, 0.1) is None and det.update(2) is None and det.update(3, 0.1) is None
    assert det.update(4, d_real=0.5, d_fake=0.5) is None
    assert det.update(5, 0.1).startswith("step 5:")


def test_discriminator_winning_warns():
    det = CollapseDetector()  # D(G(z)) < 0.05 and D(x) > 0.95 for 3 consecutive checks
    d_fake = [0.4, 0.2, 0.04, 0.01, 0.001, 0.001, 0.002]
    d_real = [0.6, 0.8, 0.96, 0.99, 0.999, 0.999, 0.999]
    warned = _feed(det, [None] * 7, d_real=d_real, d_fake=d_fake)
    assert len(warned) == 1 and warned[0][0] == 500
    msg = warned[0][1]
    assert msg.startswith("step 500:") and "D(G(z))" in msg and "D(x)" in msg and "steps 300 to 500" in msg
    # D(G(z)) near 0 alone (D(x) not near 1) is not the pattern
    det = CollapseDetector()
    assert _feed(det, [None] * 5, d_real=[0.7] * 5, d_fake=[0.01] * 5) == []
    # both conditions at once: one message naming both
    det = CollapseDetector(window=2)
    warned = _feed(det, [0.1, 0.1], d_real=[0.99, 0.99], d_fake=[0.01, 0.01])
    assert len(warned) == 1 and warned[0][1].count("step 200:") == 2


def test_detector_state_round_trip_and_errors():
    det = CollapseDetector()
    _feed(det, [0.1, 0.1])
    resumed = CollapseDetector()
    resumed.load_state_dict(det.state_dict())
    message = det.update(300, 0.1)
    assert message is not None and resumed.update(300, 0.1) == message
    with pytest.raises(DataError, match="does not come after"):
        det.update(300, 0.5)
    with pytest.raises(DataError, match="d_fake"):
        det.update(400, d_real=0.5, d_fake=1.5)
    with pytest.raises(DataError, match="diversity_ratio"):
        det.update(400, float("nan"))
    with pytest.raises(DataError, match="window"):
        CollapseDetector(window=0)
    with pytest.raises(DataError, match="d_real_min"):
        CollapseDetector(d_real_min=2.0)
    with pytest.raises(DataError, match="not a CollapseDetector state"):
        resumed.load_state_dict({"runs": {}})
