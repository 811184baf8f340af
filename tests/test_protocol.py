"""The Table 1 protocol (evaluate/protocol.py) and `advnets evaluate` end to end."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from advnets.errors import DataError
from advnets.evaluate.baselines import baseline_samples
from advnets.evaluate.protocol import evaluate_folds, format_row, parse_sigmas


def direct_parzen(x, mu, sigma):
    """log (1/M) sum_j N(x; mu_j, sigma^2 I), from explicit differences in float64."""
    d2 = ((x[:, None, :] - mu[None, :, :]) ** 2).sum(-1)
    return (
        logsumexp(-d2 / (2 * sigma**2), axis=1) - math.log(len(mu)) - x.shape[1] / 2 * math.log(2 * math.pi * sigma**2)
    )


def test_parse_sigmas_reads_logspace_and_lists():
    np.testing.assert_array_equal(parse_sigmas("logspace:-1:0:10"), np.logspace(-1, 0, 10))
    np.testing.assert_array_equal(parse_sigmas("0.1, 0.25"), [0.1, 0.25])
    for bad in ("logspace:-1:0", "0.1,abc", "0,0.1", "-1", ""):
        with pytest.raises(DataError, match="--sigmas"):
            parse_sigmas(bad)


def test_folds_choose_sigma_per_fold_and_report_se_across_folds():
    rng = np.random.default_rng(0)
    folds = []
    for spread in (0.05, 0.3, 0.6):  # different folds prefer different bandwidths
        centre = rng.random((1, 5))
        folds.append(
            {
                k: centre + spread * rng.standard_normal((n, 5))
                for k, n in (("samples", 300), ("valid", 50), ("test", 60))
            }
        )
    sigmas = [0.03, 0.1, 0.3, 1.0]
    res = evaluate_folds(folds, sigmas=sigmas, check_range=False)
    fold_means, fold_sigmas = [], []
    for f in folds:
        best = max(sigmas, key=lambda s: direct_parzen(f["valid"], f["samples"], s).mean())
        fold_sigmas.append(best)
        fold_means.append(direct_parzen(f["test"], f["samples"], best).mean())
    assert [r["sigma"] for r in res["folds"]] == fold_sigmas and len(set(fold_sigmas)) > 1
    assert math.isclose(res["mean"], np.mean(fold_means), rel_tol=1e-9)
    assert math.isclose(res["se"], np.std(fold_means) / math.sqrt(3), rel_tol=1e-9)


def test_baselines_are_built_from_the_training_split():
    gen = torch.Generator().manual_seed(0)
    train = torch.rand(200, 1, 4, 4, generator=gen)
    base = baseline_samples(train, m=150, seed=1)
    real, km, gauss = base["real training images"], base["k-means centroids"], base["Gaussian fit"]
    flat = train.reshape(200, -1).double()
    assert real.shape == (150, 16) and all((flat == r).all(dim=1).any() for r in real)  # real rows of train
    assert km.shape == (100, 16)  # k = min(m, N_train // 2)
    assert gauss.shape == (150, 16)
    assert torch.allclose(gauss.mean(dim=0), flat.mean(dim=0), atol=0.08)


def test_baselines_are_cached_keyed_by_the_data_and_rebuilt_when_damaged(tmp_path):
    """The slow k-means fit is paid once per (training images, m, seed): the cached rows equal a fresh build,
    a different seed or different images get their own file, and a damaged file is rebuilt with a warning."""
    train = torch.rand(120, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    notes = []
    fresh = baseline_samples(train, m=60, seed=2)
    first = baseline_samples(train, m=60, seed=2, cache_dir=tmp_path, note=notes.append)
    (path,) = tmp_path.glob("baselines-*.safetensors")
    assert len(notes) == 1 and "60 centroids of 120 training images" in notes[0] and str(path) in notes[0]
    again = baseline_samples(train, m=60, seed=2, cache_dir=tmp_path, note=notes.append)
    assert len(notes) == 1  # read back: no fit, no note
    for name in fresh:
        assert torch.equal(first[name], fresh[name]) and torch.equal(again[name], fresh[name])
    baseline_samples(train, m=60, seed=3, cache_dir=tmp_path)
    baseline_samples(train.flip(0), m=60, seed=2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("baselines-*.safetensors"))) == 3
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a crash on a filesystem without atomic renames
    with pytest.warns(UserWarning, match="unreadable baseline cache"):
        rebuilt = baseline_samples(train, m=60, seed=2, cache_dir=tmp_path)
    assert all(torch.equal(rebuilt[n], fresh[n]) for n in fresh)
    assert torch.equal(baseline_samples(train, m=60, seed=2, cache_dir=tmp_path)["k-means centroids"],
                       fresh["k-means centroids"])  # fmt: skip


def test_format_row_reads_like_table_1():
    row = format_row("adversarial nets", {"mean": 225.04, "se": 2.01, "sigma": 0.2, "n": 10000, "m": 10000})
    assert "225.0 ± 2.0" in row and "σ = 0.2" in row and "N = 10000" in row


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "advnets", *map(str, args)], capture_output=True, text=True, timeout=600
    )


def test_evaluate_scores_any_models_samples_like_the_direct_formula(tmp_path):
    rng = np.random.default_rng(3)
    samples, valid, test = rng.random((120, 3, 3)), rng.random((30, 9)), rng.random((40, 9))
    for name, a in (("s", samples), ("v", valid), ("t", test)):
        np.save(tmp_path / f"{name}.npy", a)
    out = run(
        "evaluate",
        "--samples",
        tmp_path / "s.npy",
        "--valid",
        tmp_path / "v.npy",
        "--test",
        tmp_path / "t.npy",
        "--sigmas",
        "0.1,0.2,0.4",
        "--json",
        tmp_path / "r.json",
        "--no-progress",
    )
    assert out.returncode == 0, out.stderr
    row = json.loads((tmp_path / "r.json").read_text())["rows"]["samples"]
    flat = samples.reshape(120, 9)
    best = max((0.1, 0.2, 0.4), key=lambda s: direct_parzen(valid, flat, s).mean())
    ll = direct_parzen(test, flat, best)
    assert row["sigma"] == best
    assert math.isclose(row["mean"], ll.mean(), rel_tol=1e-9)
    assert math.isclose(row["se"], ll.std() / math.sqrt(40), rel_tol=1e-9)
    assert f"{ll.mean():.1f}" in out.stdout


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: None, "no such file"),
        (lambda p: np.save(p, np.zeros(5)), "shape"),
        (lambda p: np.save(p, np.zeros((4, 7))), "features per image"),
        (lambda p: p.write_bytes(b"not numpy"), "not a .npy file"),
    ],
)
def test_evaluate_bad_arrays_exit_2_naming_the_file(tmp_path, make, expected):
    np.save(tmp_path / "v.npy", np.zeros((4, 9)))
    np.save(tmp_path / "t.npy", np.zeros((4, 9)))
    bad = tmp_path / "s.npy"
    make(bad)
    out = run("evaluate", "--samples", bad, "--valid", tmp_path / "v.npy", "--test", tmp_path / "t.npy")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert expected in out.stderr.lower() and str(bad) in out.stderr, out.stderr


def test_evaluate_a_run_prints_a_table1_row_writes_json_and_metrics(tmp_path):
    run_dir = tmp_path / "run"
    assert run("train", "--data", "embedded-digits", "--epochs", "1", "--out", run_dir, "--no-progress").returncode == 0
    out = run("evaluate", "--run", run_dir, "--num-samples", "300", "--baselines", "--no-progress")
    assert out.returncode == 0, out.stderr
    doc = json.loads((run_dir / "parzen.json").read_text())
    assert set(doc["rows"]) == {
        "adversarial nets (step 14)",
        "real training images",
        "k-means centroids",
        "Gaussian fit",
    }
    main = doc["rows"]["adversarial nets (step 14)"]
    assert main["m"] == 300 and main["n"] == 179 and main["d"] == 64
    assert doc["protocol"]["valid_size"] == 179  # the digits' whole validation split (< 1000)
    assert f"{main['mean']:.1f} ± {main['se']:.1f}" in out.stdout
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["parzen_ll"] == main["mean"] and last["step"] == 14


@pytest.mark.slow  # three folds through the CLI (~25 s)
def test_evaluate_tfd_folds_chooses_sigma_per_fold_and_reports_se_across_folds(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(4)
    n = 80
    folds = np.zeros((n, 5), dtype=np.int32)
    for k in range(5):  # fold k: valid and test are different images in each fold
        folds[50:, k] = 1
        folds[50 + 6 * k % 30 : 50 + 6 * k % 30 + 3, k] = 2
        folds[(50 + 6 * k % 30 + 3) : (50 + 6 * k % 30 + 6), k] = 3
    mat = tmp_path / "TFD_48x48.mat"
    savemat(mat, {"images": rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), "folds": folds})
    run_dir = tmp_path / "run"
    train = run(
        "train", "--data", f"tfd:{mat}", "--batch-size", "25", "--epochs", "1", "--out", run_dir, "--no-progress"
    )
    assert train.returncode == 0, train.stderr
    out = run(
        "evaluate", "--run", run_dir, "--folds", "3", "--num-samples", "50", "--sigmas", "0.1,0.3,1", "--no-progress"
    )
    assert out.returncode == 0, out.stderr
    row = json.loads((run_dir / "parzen.json").read_text())["rows"]["adversarial nets (step 2, 3 folds)"]
    means = [f["mean"] for f in row["folds"]]
    assert len(means) == 3 and len({round(m, 6) for m in means}) == 3  # each fold scores its own test images
    assert math.isclose(row["mean"], np.mean(means)) and math.isclose(row["se"], np.std(means) / math.sqrt(3))
    assert "paper, Table 1 (TFD)" in out.stdout
    bad = run("evaluate", "--run", run_dir, "--folds", "9", "--num-samples", "50", "--no-progress")
    assert bad.returncode == 2 and "fold 5 is out of range" in bad.stderr


def test_reference_protocol_scores_the_model_and_the_baselines_on_the_same_images(digits):
    """One function for the protocol the CLI, shipped models and benchmarks run (issue 15)."""
    from advnets.evaluate.parzen import parzen_evaluate
    from advnets.evaluate.protocol import reference_protocol

    samples = digits.train[torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(0))[:200]]
    rows = reference_protocol(samples, digits, valid_size=50, baselines=True, seed=3, label="m")
    assert list(rows) == ["m", "real training images", "k-means centroids", "Gaussian fit"]
    valid = digits.valid[:50]
    assert rows["m"]["mean"] == parzen_evaluate(digits.test, samples, valid=valid)["mean"]
    fakes = baseline_samples(digits.train, 200, 3)
    for name, fake in fakes.items():
        direct = parzen_evaluate(digits.test, fake, valid=valid, check_range=False)
        assert rows[name]["mean"] == direct["mean"] and rows[name]["sigma"] == direct["sigma"]
        assert rows[name]["n_valid"] == 50 and rows[name]["m"] == len(fake)
