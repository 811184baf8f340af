"""`advnets evaluate --metrics`, its report section and `train --eval-metrics` (issue 17), on the 8x8 digits."""

import json

import numpy as np
import pytest
import scipy.linalg

from advnets.evaluate.features import get_extractor
from advnets.runlog import read_metrics
from advnets.train import Trainer
from conftest import cli_in_process, tiny_config


@pytest.fixture(autouse=True)
def _data_root(tmp_path, monkeypatch):
    """The real-feature cache goes under the data directory: a fresh one per test, never ~/.cache."""
    monkeypatch.setenv("ADVNETS_DATA", str(tmp_path / "data-root"))


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    run_dir = tmp_path_factory.mktemp("metrics") / "run"
    Trainer(tiny_config(epochs=1, monitor_every=0), digits).fit(run_dir, progress=False, tensorboard=False)
    return run_dir


@pytest.fixture(scope="module")
def arrays(tmp_path_factory, digits):
    """Real digits as "samples" (.npy), the test and validation splits, and a file of the wrong width."""
    d = tmp_path_factory.mktemp("arrays")
    np.save(d / "S.npy", digits.train[:300].numpy())
    np.save(d / "T.npy", digits.test.numpy())
    np.save(d / "V.npy", digits.valid.numpy())
    np.save(d / "wide.npy", np.zeros((300, 65), np.float32))
    np.save(d / "S255.npy", digits.train[:300].numpy() * 255)  # 8-bit scale, not divided by 255
    nan = digits.train[:300].numpy().copy()
    nan[3, 0, 2, 2] = np.nan
    np.save(d / "nan.npy", nan)
    (d / "zero.npy").write_bytes(b"")  # a file left empty by a crash
    (d / "demo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # not a .npy at all
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(d / "Z.npz", images=digits.train[:300].numpy())
    np.save(d / "complex.npy", digits.train[:300].numpy().astype(np.complex64))
    (d / "outdir.json").mkdir()
    return d


def _fd_float64(a: np.ndarray, b: np.ndarray) -> float:
    """FID's formula written out in float64 with SciPy, independently of advnets.evaluate.frechet."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_metrics_on_a_run_print_one_table_write_json_and_log_one_row_per_metric(run, tmp_path):
    before = len(read_metrics(run))
    code, out, err = cli_in_process("evaluate", "--run", run, "--metrics", "fd,kid,parzen", "--num-samples", 200)
    assert code == 0, err
    for label in ("adversarial nets (step", "real training images", "k-means centroids", "Gaussian fit"):
        assert label in out
    doc = json.loads((run / "quality.json").read_text())
    assert doc["metrics"] == ["fd", "kid", "parzen"] and doc["features"] == "digits" and doc["num_samples"] == 200
    assert len(doc["rows"]) == 4
    model = doc["rows"][doc["model"]]
    assert model["n_generated"] == 200 and model["n_real"] == 179  # all 179 test digits: fewer than N
    # The floor (real training images) beats the Gaussian fit on FD, as any sane feature space must say.
    assert doc["rows"]["real training images"]["fd"] < doc["rows"]["Gaussian fit"]["fd"]
    new = read_metrics(run)[before:]
    assert [r["eval_metric"] for r in new] == ["fd", "kid", "parzen"]
    assert new[0]["eval_fd"] == model["fd"] and new[1]["eval_kid_std"] == model["kid_std"]
    assert new[2]["eval_parzen"] == model["parzen"] and new[2]["eval_features"] is None
    assert all(r["step"] == doc["step"] and r["eval_n"] == 200 for r in new)
    assert list((tmp_path / "data-root" / "features").glob("features-digits-*.safetensors"))  # cached

    # TensorBoard got the same numbers, through the run's MetricsLog.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run)).Reload()
    assert acc.Scalars("eval_fd")[-1].value == pytest.approx(model["fd"], rel=1e-6)

    # The report shows the table when the run has one.
    code, _, err = cli_in_process("report", "--run", run, "--out", tmp_path / "r.html", "-n", 10, "--check-size", 20)
    assert code == 0, err
    md = (tmp_path / "r.md").read_text()
    assert "Sample-quality metrics" in md and "real training images" in md and f"{model['fd']:.4g}" in md
    assert "The rows below the model's score real training images" in md
    # ... and says so when the table has the model's row alone.
    code, _, err = cli_in_process("evaluate", "--run", run, "--metrics", "fd", "--num-samples", 200, "--no-context")
    assert code == 0, err
    code, _, err = cli_in_process("report", "--run", run, "--out", tmp_path / "r.html", "-n", 10, "--check-size", 20)
    md = (tmp_path / "r.md").read_text()
    assert code == 0 and "Only the model's row (computed with --no-context)" in md and "The rows below" not in md, err


def test_samples_fd_matches_the_float64_formula_and_out_chooses_the_file(arrays, tmp_path, digits):
    out = tmp_path / "sub" / "q.json"
    code, text, err = cli_in_process(
        "evaluate", "--samples", arrays / "S.npy", "--test", arrays / "T.npy", "--metrics", "fd", "--out", out
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert list(doc["rows"]) == ["samples"] and doc["step"] is None  # no dataset: no context rows, and it says so
    assert "no context rows (real images, k-means, Gaussian fit): they need --data" in err
    net = get_extractor("digits")
    expected = _fd_float64(net(digits.test).double().numpy(), net(digits.train[:300]).double().numpy())
    assert doc["rows"]["samples"]["fd"] == pytest.approx(expected, rel=1e-6)
    assert f"{expected:.4g}" in text


def test_samples_outside_0_1_are_named_in_a_warning_and_in_range_ones_are_not(arrays, tmp_path):
    import warnings

    with pytest.warns(UserWarning, match=r"--samples .*S255\.npy: values lie in \[0, 255\], not \[0, 1\]"):
        code, _, err = cli_in_process("evaluate", "--samples", arrays / "S255.npy", "--test", arrays / "T.npy",
                                      "--metrics", "fd", "--out", tmp_path / "a.json")  # fmt: skip
    assert code == 0, err
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # S.npy is in [0, 1]: no warning may be raised
        code, _, err = cli_in_process("evaluate", "--samples", arrays / "S.npy", "--test", arrays / "T.npy",
                                      "--metrics", "fd", "--out", tmp_path / "b.json")  # fmt: skip
    assert code == 0, err


def test_samples_with_a_dataset_get_the_context_rows_and_all_metrics(arrays, tmp_path):
    out = tmp_path / "q.json"
    args = ("--samples", arrays / "S.npy", "--data", "embedded-digits", "--metrics", "all", "--num-samples", 150)
    code, text, err = cli_in_process("evaluate", *args, "--out", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert list(doc["rows"]) == ["samples", "real training images", "k-means centroids", "Gaussian fit"]
    row = doc["rows"]["samples"]
    for key in ("fd", "kid", "precision", "recall", "density", "coverage", "parzen", "mnist_score", "classes_covered"):
        assert np.isfinite(row[key]), key
    assert row["n_generated"] == 150 and row["n_real"] == 150
    assert "fitting k-means (150 centroids" in err  # the slow fit is announced, then kept under the data root
    code, _, err = cli_in_process("evaluate", *args, "--json", tmp_path / "again.json")
    assert code == 0 and "k-means" not in err, err
    again = json.loads((tmp_path / "again.json").read_text())["rows"]
    assert again["k-means centroids"]["fd"] == doc["rows"]["k-means centroids"]["fd"]
    code, _, err = cli_in_process("evaluate", *args, "--no-context", "--json", tmp_path / "alone.json")
    alone = json.loads((tmp_path / "alone.json").read_text())["rows"]
    assert code == 0 and list(alone) == ["samples"] and alone["samples"]["fd"] == row["fd"], err
    # Without --num-samples every context row is scored at the model's N (300 here): FD is biased by N.
    code, _, err = cli_in_process("evaluate", *args[:-2], "--metrics", "fd", "--json", tmp_path / "n.json")
    rows = json.loads((tmp_path / "n.json").read_text())["rows"]
    assert code == 0 and {r["n_generated"] for r in rows.values()} == {300}, err
    assert {r["n_real"] for r in rows.values()} == {179}  # all the test digits there are


def test_kid_of_two_whole_sets_prints_no_std_and_writes_null(arrays, tmp_path):
    """At --num-samples 179 both sets are whole (179 test digits): every KID subset is the same pair of sets."""
    out = tmp_path / "q.json"
    args = ("--samples", arrays / "S.npy", "--test", arrays / "T.npy", "--metrics", "fd,kid", "--json", out)
    code, text, err = cli_in_process("evaluate", *args, "--num-samples", 179)
    assert code == 0, err
    row = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in quality.json"))["rows"]["samples"]
    assert row["kid_std"] is None and np.isfinite(row["kid"]) and row["n_generated"] == row["n_real"] == 179
    assert f"{row['kid']:.4g} ± n/a" in text
    code, text, err = cli_in_process("evaluate", *args)  # 300 samples: their subsets differ, so a std
    row = json.loads(out.read_text())["rows"]["samples"]
    assert code == 0 and row["kid_std"] > 0 and f"± {row['kid_std']:.2g}" in text, err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (("--samples", "S.npy", "--test", "T.npy", "--metrics", "fd,bogus"), "unknown bogus; expected 'all'"),
        (("--samples", "wide.npy", "--test", "T.npy", "--metrics", "fd"), "have shape (65,)"),
        (("--samples", "S.npy", "--test", "T.npy", "--metrics", "fd", "--num-samples", "20"), "N > d"),
        (("--samples", "nan.npy", "--test", "T.npy", "--metrics", "kid"), "NaN"),
        (("--samples", "S.npy", "--metrics", "fd"), "--test T.npy, or a dataset with --data"),
        (("--samples", "S.npy", "--test", "T.npy", "--metrics", "parzen"), "needs --valid"),
        (("--samples", "S.npy", "--test", "T.npy", "--metrics", "fd", "--features", "resnet"), "--features 'resnet'"),
        (("--samples", "S.npy", "--test", "T.npy", "--features", "digits"), "--features goes with --metrics"),
        (("--samples", "S.npy", "--test", "T.npy", "--no-context"), "--no-context goes with --metrics"),
        (("--samples", "S.npy", "--data", "embedded-digits"), "--samples --data goes with --metrics"),
        (("--samples", "S.npy", "--test", "T.npy", "--metrics", "fd", "--split", "valid"), "--split are Parzen"),
        (("--samples", "zero.npy", "--test", "T.npy", "--metrics", "fd"), "not a readable .npy array (an empty file)"),
        (("--samples", "demo.png", "--test", "T.npy", "--metrics", "fd"), "demo.png: not a .npy file (expected an"),
        (("--samples", "S.npy", "--valid", "V.npy", "--test", "demo.png"), "demo.png: not a .npy file (expected"),
        (("--samples", "objects.npy", "--test", "T.npy"), "not a readable .npy array (pickled objects)"),
        (("--samples", "Z.npz", "--test", "T.npy", "--metrics", "fd"), "an .npz archive; expected one .npy array"),
        (
            ("--samples", "complex.npy", "--test", "T.npy", "--metrics", "fd"),
            "expected real numbers, got dtype complex",
        ),
        (("--samples", "S.npy", "--test", "T.npy", "--metrics", "fd", "--json", "outdir.json"), "is a directory"),
        (("--samples", "S.npy", "--test", "T.npy", "--metrics", "fd", "--json", "S.npy/o.json"), "is a file, not a"),
        (("--samples", "S.npy", "--test", "T.npy", "--metrics", "all,fd"), "'all' stands alone"),
        (("--samples", "S.npy", "--test", "T.npy", "--split", "train"), "--split, --folds and --baselines need"),
        (("--samples", "S.npy", "--test", "T.npy", "--metrics", "fd", "--baselines"), "--baselines goes with Parzen"),
    ],
)
def test_bad_metrics_input_exits_2_with_one_clear_line(arrays, extra, expected):
    args = [arrays / a if a.endswith((".npy", ".npz", ".json", ".png")) or "/" in a else a for a in extra]
    code, out, err = cli_in_process("evaluate", *args)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err


def test_eval_metrics_log_beside_the_validation_ll_and_bad_names_fail_before_training(tmp_path, digits):
    cfg = tiny_config(epochs=2, eval_every=1, checkpoint_every=1000, monitor_every=0, eval_metrics="parzen,fd,recall")
    trainer = Trainer(cfg, digits)
    trainer.fit(tmp_path / "run", progress=False, tensorboard=False)
    rows = [r for r in read_metrics(tmp_path / "run") if "valid_parzen_ll" in r]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["valid_fd"]) and 0 <= r["valid_recall"] <= 1 for r in rows)
    # The last check's FD, recomputed from the final G's samples (the monitor's fixed noise) with SciPy.
    from advnets.train.streams import one_off
    from advnets.train.validation import EVAL_SAMPLES

    samples = trainer.sample(EVAL_SAMPLES, generator=one_off(cfg.train.seed, "validation")).cpu()
    net = get_extractor("digits")
    expected = _fd_float64(net(digits.valid).double().numpy(), net(samples).double().numpy())
    assert rows[-1]["valid_fd"] == pytest.approx(expected, rel=1e-5)

    code, _, err = cli_in_process(
        "train", "--data", "embedded-digits", "--eval-every", 1, "--eval-metrics", "fd,nope", "--out", tmp_path / "x"
    )
    assert code == 2 and "unknown nope" in err
    assert not (tmp_path / "x" / "checkpoints").exists()


@pytest.mark.parametrize(("n", "metric"), [(50, "fd"), (4, "precision"), (1, "kid")])
def test_too_few_samples_are_named_as_the_samples_not_the_real_set_cut_to_their_count(arrays, tmp_path, n, metric):
    """The real images are cut to the sample count (equal N), so a metric short of rows is short of samples."""
    np.save(tmp_path / "few.npy", np.load(arrays / "S.npy")[:n])
    code, _, err = cli_in_process(
        "evaluate", "--samples", tmp_path / "few.npy", "--test", arrays / "T.npy", "--metrics", metric
    )
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"advnets: error: samples: {n} samples are too few for {metric} (the real images"), err


def test_a_real_set_that_is_itself_too_small_is_still_named(arrays, tmp_path):
    np.save(tmp_path / "T50.npy", np.load(arrays / "T.npy")[:50])
    code, _, err = cli_in_process(
        "evaluate", "--samples", arrays / "S.npy", "--test", tmp_path / "T50.npy", "--metrics", "fd"
    )
    assert code == 2 and "samples: fd: real features: 50 samples of dimension 128" in err, err
    assert "samples are too few" not in err
