"""The metric registry and its entry points (advnets.evaluate.metrics), on the embedded 8x8 digits."""

from __future__ import annotations

import json

import pytest
import torch

from advnets.errors import ConfigError, DataError
from advnets.evaluate.baselines import context_samples
from advnets.evaluate.classifier import class_coverage
from advnets.evaluate.digit_features import digit_features, load_digit_network, preprocess_digits
from advnets.evaluate.frechet import frechet_distance
from advnets.evaluate.kid import kernel_distance
from advnets.evaluate.manifold import manifold_metrics
from advnets.evaluate.metrics import (
    REGISTRY,
    evaluate_metrics,
    evaluate_table,
    format_table,
    parse_metrics,
)
from advnets.evaluate.parzen import parzen_evaluate


def test_every_metric_of_the_issue_is_registered_with_one_signature():
    assert set(REGISTRY) == {
        "fd", "kid", "precision", "recall", "density", "coverage", "parzen", "mnist_score", "class_coverage",
    }  # fmt: skip
    assert {m.inputs for m in REGISTRY.values()} == {"features", "images"}
    assert REGISTRY["precision"].fn is REGISTRY["coverage"].fn  # computed once for all four


def test_parse_metrics():
    assert parse_metrics("all") == tuple(REGISTRY)
    assert parse_metrics("fd, kid,fd") == ("fd", "kid")
    assert parse_metrics(["recall"]) == ("recall",)
    with pytest.raises(ConfigError, match="unknown fid; expected 'all' or a comma-separated list of fd, kid"):
        parse_metrics("fd,fid")
    with pytest.raises(ConfigError, match="empty list"):
        parse_metrics(",")


def test_feature_metrics_equal_the_functions_on_the_shipped_features(digits):
    real, gen = digits.test, digits.valid
    got = evaluate_metrics(real, gen, "fd,kid,precision,recall,density,coverage")
    fr, fg = digit_features(real), digit_features(gen)
    assert got["fd"] == frechet_distance(fr, fg)["fd"]
    assert (got["kid"], got["kid_std"]) == tuple(kernel_distance(fr, fg)[k] for k in ("kid", "kid_std"))
    manifold = manifold_metrics(fr, fg)
    for key in ("precision", "recall", "density", "coverage"):
        assert got[key] == manifold[key]
    assert (got["n_real"], got["n_generated"], got["features"]) == (len(real), len(gen), "digits")
    assert 0 < got["fd"] < 100 and got["precision"] > 0.5 and got["recall"] > 0.5  # two real splits are alike


def test_image_metrics_are_the_existing_parzen_and_classifier_code(digits):
    real, gen, valid = digits.test, digits.train[:300], digits.valid
    got = evaluate_metrics(real, gen, "parzen,mnist_score,class_coverage", options={"parzen": {"valid": valid}})
    direct = parzen_evaluate(real, gen, valid=valid)
    assert (got["parzen"], got["parzen_se"]) == (direct["mean"], direct["se"])
    cc = class_coverage(load_digit_network(), preprocess_digits(gen))
    assert got["mnist_score"] == cc["mnist_score"] and got["classes_covered"] == cc["classes_covered"] == 10
    assert got["features"] is None  # no feature network was needed
    json.loads(json.dumps(got))  # plain numbers, lists and dicts: what the CLI writes as JSON


def test_parzen_without_validation_images_or_sigma_is_a_clear_error(digits):
    with pytest.raises(DataError, match="valid: expected a validation set"):
        evaluate_metrics(digits.test, digits.valid, "parzen")


def test_the_context_rows_and_the_table(digits, tmp_path):
    rows = context_samples(digits.train, 200, seed=0)
    assert list(rows) == ["real training images", "k-means centroids", "Gaussian fit"]
    assert all(v.shape == (200, 1, 8, 8) and v.dtype == torch.float32 for v in rows.values())
    table = evaluate_table(digits.test, rows, "fd,recall,coverage", cache_dir=tmp_path)
    assert table["real training images"]["fd"] < table["Gaussian fit"]["fd"]
    assert table["real training images"]["coverage"] > table["Gaussian fit"]["coverage"]
    text = format_table(table, "fd,recall,coverage")
    lines = text.splitlines()
    assert lines[0].split() == ["fd", "recall", "coverage"] and lines[1].split() == [
        "(better)",
        "lower",
        "higher",
        "higher",
    ]
    assert lines[2].startswith("real training images") and f"{table['Gaussian fit']['fd']:.4g}" in lines[4]
    assert len(list(tmp_path.iterdir())) == 1  # the real features, cached once for the three rows


def test_options_of_metrics_that_share_a_computation_all_reach_it(digits):
    got = evaluate_metrics(digits.test, digits.valid, "precision,coverage", options={"coverage": {"k_dc": 2}})
    direct = manifold_metrics(digit_features(digits.test), digit_features(digits.valid), k_dc=2)
    assert (got["precision"], got["coverage"]) == (direct["precision"], direct["coverage"])
    assert got["details"]["coverage"]["k_dc"] == 2


def test_num_samples_takes_a_seeded_subset_of_each_set(digits):
    a = evaluate_metrics(digits.test, digits.valid, "fd", num_samples=150, seed=3)
    b = evaluate_metrics(digits.test, digits.valid, "fd", num_samples=150, seed=3)
    c = evaluate_metrics(digits.test, digits.valid, "fd", num_samples=150, seed=4)
    assert (a["n_real"], a["n_generated"]) == (150, 150)
    assert a["fd"] == b["fd"] != c["fd"]


def test_bad_inputs_are_clear_errors(digits):
    with pytest.raises(DataError, match=r"generated images \(generated\) have shape \(1, 28, 28\)"):
        evaluate_metrics(digits.test, torch.rand(200, 1, 28, 28), "fd")
    nan = digits.valid.clone()
    nan[3] = float("nan")
    with pytest.raises(DataError, match="contain NaN or infinite values"):
        evaluate_metrics(digits.test, nan, "fd")
    with pytest.raises(ConfigError, match="options for unknown metrics"):
        evaluate_metrics(digits.test, digits.valid, "fd", options={"fid": {}})
    with pytest.raises(DataError, match="N > d"):
        evaluate_metrics(digits.test, digits.valid[:100], "fd")


def test_precomputed_real_features_are_used_as_given(digits):
    from advnets.evaluate.features import get_extractor

    net = get_extractor("digits")
    real, gen = digits.test, digits.train[:200]
    feats = net(real)
    direct = evaluate_metrics(real, gen, "fd", features=net)
    given = evaluate_metrics(real, gen, "fd", features=net, real_features=feats)
    assert given["fd"] == direct["fd"]
    # Used as given, not recomputed: features of other images give the FD against those images.
    other = evaluate_metrics(real, gen, "fd", features=net, real_features=net(digits.valid))
    assert other["fd"] == pytest.approx(frechet_distance(net(digits.valid), net(gen))["fd"], rel=1e-12)
    with pytest.raises(DataError, match="real_features: 179 rows for 180 real images"):
        evaluate_metrics(torch.cat([real, real[:1]]), gen, "fd", features=net, real_features=feats)
