"""Table 1 from a run's checkpoints (issue 15): validation curve, best checkpoint, test score, table, figure."""

import json
import math

import numpy as np
import pytest
from PIL import Image
from scipy.special import logsumexp

from advnets.evaluate.annealing import plateau_fit
from advnets.evaluate.parzen import DEFAULT_SIGMAS, parzen_evaluate
from advnets.evaluate.protocol import reference_protocol
from advnets.evaluate.table1 import (
    CACHE_FILE,
    best_entry,
    kept_checkpoints,
    score_best,
    validation_curve,
)
from advnets.generators import load_generator
from advnets.report.table1 import plot_validation_curves, summarize, table1_markdown
from advnets.train import Trainer
from conftest import load_benchmark, tiny_config

M = 300  # samples of G per checkpoint: small, the protocol is the same


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    """A tiny run on the 8x8 digits keeping 3 checkpoints (steps 50, 100, 142)."""
    run_dir = tmp_path_factory.mktemp("run")
    Trainer(tiny_config(epochs=2, checkpoint_every=50), digits).fit(run_dir, progress=False, tensorboard=False)
    return run_dir


def direct_parzen(x, mu, sigma):
    """log (1/M) sum_j N(x; mu_j, sigma^2 I) from explicit float64 differences (independent of parzen.py)."""
    x, mu = x.reshape(len(x), -1).double().numpy(), mu.reshape(len(mu), -1).double().numpy()
    d2 = ((x[:, None, :] - mu[None, :, :]) ** 2).sum(-1)
    d = x.shape[1]
    return logsumexp(-d2 / (2 * sigma**2), axis=1) - math.log(len(mu)) - d / 2 * math.log(2 * math.pi * sigma**2)


def test_validation_curve_scores_every_kept_checkpoint_against_a_direct_formula(run, digits, tmp_path):
    paths = kept_checkpoints(run)
    assert [p.name for p in paths] == ["step-00000050.pt", "step-00000100.pt", "step-00000142.pt"]
    curve = validation_curve(run, digits, num_samples=M, valid_size=100, cache=tmp_path / "c.json")
    assert [e["step"] for e in curve] == [50, 100, 142]
    assert [round(e["epoch"], 3) for e in curve] == [round(50 / 71, 3), round(100 / 71, 3), 2.0]
    for entry, path in zip(curve, paths, strict=True):
        samples = load_generator(path).sample(M, 0)
        means = [direct_parzen(digits.valid[:100], samples, s).mean() for s in DEFAULT_SIGMAS]
        np.testing.assert_allclose(entry["valid_means"], means, rtol=1e-10)
        assert entry["valid_ll"] == max(entry["valid_means"])
        assert entry["sigma"] == DEFAULT_SIGMAS[int(np.argmax(means))]


def test_scored_checkpoints_are_read_from_the_cache_and_the_run_is_left_untouched(run, digits, tmp_path):
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    cache = tmp_path / "elsewhere" / "paper-s0.json"
    first = validation_curve(run, digits, num_samples=M, valid_size=100, cache=cache)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # nothing written into the run
    doc = json.loads(cache.read_text())
    doc["validation"]["entries"]["step-00000100.pt"]["valid_ll"] = 12345.0  # planted: only a read returns it
    cache.write_text(json.dumps(doc))
    again = validation_curve(run, digits, num_samples=M, valid_size=100, cache=cache)
    assert [e["valid_ll"] for e in again] == [first[0]["valid_ll"], 12345.0, first[2]["valid_ll"]]
    other = validation_curve(run, digits, num_samples=M + 1, valid_size=100, cache=cache)  # other settings: rescored
    assert other[1]["valid_ll"] != 12345.0


def test_the_default_cache_sits_in_the_run_directory(run, digits):
    validation_curve(run, digits, num_samples=50, valid_size=20, checkpoints=kept_checkpoints(run)[:1])
    doc = json.loads((run / CACHE_FILE).read_text())
    assert list(doc["validation"]["entries"]) == ["step-00000050.pt"]
    assert doc["validation"]["protocol"]["num_samples"] == 50 and doc["validation"]["protocol"]["valid_size"] == 20
    (run / CACHE_FILE).unlink()


def test_the_best_checkpoint_is_chosen_on_validation_and_scored_by_the_full_protocol(run, digits, tmp_path):
    cache = tmp_path / "c.json"
    curve = validation_curve(run, digits, num_samples=M, valid_size=100, cache=cache)
    best = best_entry(curve)
    assert best["valid_ll"] == max(e["valid_ll"] for e in curve)
    result = score_best(run, digits, curve, num_samples=M, valid_size=100, cache=cache)
    samples = load_generator(run / "checkpoints" / best["checkpoint"]).sample(M, 0)
    direct = parzen_evaluate(digits.test, samples, valid=digits.valid[:100])
    assert result["mean"] == direct["mean"] and result["se"] == direct["se"] and result["sigma"] == direct["sigma"]
    assert result["checkpoint"] == best["checkpoint"] and result["n"] == len(digits.test)
    # A planted test score is returned: the scored checkpoint is not scored again.
    doc = json.loads(cache.read_text())
    doc["test"]["entries"][best["checkpoint"]]["mean"] = -1.0
    cache.write_text(json.dumps(doc))
    assert score_best(run, digits, curve, num_samples=M, valid_size=100, cache=cache)["mean"] == -1.0
    assert len(doc["validation"]["entries"]) == 3  # the validation section survives the test section's writes


def test_ties_go_to_the_earliest_checkpoint():
    curve = [{"step": 10, "valid_ll": 5.0}, {"step": 20, "valid_ll": 7.0}, {"step": 30, "valid_ll": 7.0}]
    assert best_entry(curve)["step"] == 20


def _asymptote_by_grid(e, ll, taus):
    """The same least-squares fit found another way: for a fixed tau the model is linear in (asymptote, A),
    so solve that exactly (numpy lstsq, float64) on a fine grid of tau and keep the best."""
    best = None
    for tau in taus:
        design = np.stack([np.ones_like(e), -np.exp(-(e - e[0]) / tau)], axis=1)
        coef, *_ = np.linalg.lstsq(design, ll, rcond=None)
        sse = float(((design @ coef - ll) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, coef[0], tau)
    return best[1], best[2]


def test_plateau_fit_finds_a_known_asymptote_and_agrees_with_an_exact_grid_search(tmp_path):
    e = np.arange(60.0, 501.0, 10.0)
    wiggle = 1.5 * np.sin(e / 7.0)  # deterministic "noise" of a validation curve's size
    ll = 200.0 - 70.0 * np.exp(-(e - 100.0) / 90.0) + wiggle
    curve = [{"epoch": x, "valid_ll": y} for x, y in zip(e, ll, strict=True)]
    fit = plateau_fit(curve, from_epoch=100)
    assert fit["n_points"] == 41 and fit["first_epoch"] == 100 and fit["last_epoch"] == 500
    assert fit["identified"] and abs(fit["asymptote"] - 200.0) < 1.5 and abs(fit["tau"] - 90.0) < 10
    assert 0 < fit["asymptote_se"] < 2
    kept = e >= 100
    asymptote, tau = _asymptote_by_grid(e[kept], ll[kept], np.arange(80.0, 100.0, 0.001))
    assert fit["asymptote"] == pytest.approx(asymptote, abs=0.01) and fit["tau"] == pytest.approx(tau, abs=0.01)
    with Image.open(plot_validation_curves({"synthetic": curve}, tmp_path / "v.png")) as im:  # with its fit drawn
        assert im.format == "PNG" and im.size == (700, 450)


def test_plateau_fit_on_a_straight_line_reports_only_the_slope():
    curve = [{"epoch": x, "valid_ll": 100.0 + 0.2 * x} for x in range(100, 300, 10)]
    fit = plateau_fit(curve)
    assert fit["slope_per_50"] == pytest.approx(10.0) and not fit["identified"]  # no bend: no asymptote claimed
    few = plateau_fit(curve[:3])
    assert few["asymptote"] is None and few["slope_per_50"] == pytest.approx(10.0) and not few["identified"]
    assert plateau_fit(curve, from_epoch=1000)["n_points"] == 0


def test_summary_table_and_figure(run, digits, tmp_path):
    assert summarize([1.0, 2.0, 4.0]) == (pytest.approx(7 / 3), pytest.approx(np.std([1, 2, 4], ddof=1)))
    assert math.isnan(summarize([3.0])[1])
    row = {"mean": 100.04, "se": 2.0, "sigma": 0.2154, "epoch": 250.0, "valid_ll": 98.7}
    baselines = reference_protocol(load_generator(run).sample(M, 0), digits, valid_size=100)
    text = table1_markdown({"paper recipe": {0: row, 1: {**row, "mean": 110.04}}}, {"real": baselines["model"]})
    assert (
        "| Adversarial nets (paper, Table 1) | 225 ± 2 |" in text
        and "| Deep GSN (paper, Table 1) | 214 ± 1.1 |" in text
    )
    assert "| advnets, paper recipe, seed 1 | 110.0 ± 2.0 | 0.2154 | 250 | 98.7 |" in text
    assert f"mean ± sd over 2 seeds** | **105.0 ± {np.std([100.04, 110.04], ddof=1):.1f}**" in text
    assert "| baseline: real |" in text
    curve = validation_curve(run, digits, num_samples=M, valid_size=100, cache=tmp_path / "c.json")
    png = plot_validation_curves({"paper recipe, seed 0": curve}, tmp_path / "docs" / "v.png")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (700, 450)


@pytest.mark.slow
def test_the_benchmark_trains_resumes_and_records(tmp_path):
    """benchmarks/table1.py end to end on the 8x8 digits: train 1 epoch, continue to 2 (resumed), score, record."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "table1.py"
    common = ["--seeds", "0", "--recipes", "paper", "--data", "embedded-digits", "--out", str(tmp_path / "out")]
    common += ["--valid-samples", "100", "--test-samples", "100", "--figure", str(tmp_path / "v.png")]
    common += ["--results", str(tmp_path / "R.md")]
    for epochs in ("1", "2"):
        proc = subprocess.run(
            [sys.executable, str(script), *common, "--epochs", epochs], capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming" in proc.stderr and "train.epochs 1 -> 2" in proc.stderr  # the second call continued the run
    assert [p.name for p in kept_checkpoints(tmp_path / "out" / "paper-s0")] == ["step-00000014.pt", "step-00000028.pt"]
    assert "| advnets, paper recipe, seed 0 |" in proc.stdout
    assert (tmp_path / "R.md").read_text().count("## Table 1 on embedded-digits") == 2
    with Image.open(tmp_path / "v.png") as im:
        assert im.format == "PNG"


def test_up_to_epoch_chooses_the_best_among_the_checkpoints_before_it(run, digits, tmp_path, capsys):
    """--up-to-epoch E: seeds compared at equal length; the best is the best-by-validation of those at or before E,
    as best_entry finds it on the restricted curve, and a run with none before E is refused by name."""
    bench = load_benchmark("table1")
    common = ["--run", str(run), "--data", "embedded-digits", "--cache-dir", str(tmp_path), "--no-record"]
    common += ["--valid-samples", str(M), "--test-samples", str(M)]
    assert bench.main([*common, "--up-to-epoch", "1.5"]) == 0
    out = capsys.readouterr().out
    curve = validation_curve(run, digits, num_samples=M, cache=tmp_path / f"{run.name}.json")
    assert [e["step"] for e in curve] == [50, 100, 142]
    assert "(step 100)" in out and "(step 142)" not in out  # epoch 2.0 is left out of the curve and the choice
    expected = best_entry([e for e in curve if e["epoch"] <= 1.5])
    assert f"best on validation at epoch {expected['epoch']:.0f};" in out
    assert f"| advnets, run {run.name}, up to epoch 1.5, seed 0 |" in out
    assert f"| {expected['epoch']:.0f} | {expected['valid_ll']:.1f} |" in out
    with pytest.raises(bench.AdvnetsError, match="--up-to-epoch 0.5: .* has no checkpoint at or before it"):
        bench.main([*common, "--up-to-epoch", "0.5"])


def test_as_seeds_gives_the_runs_rows_and_their_mean_and_refuses_a_repeated_seed(run, tmp_path, capsys):
    """--as-seeds LABEL: the --run runs are seeds of one recipe (each config.json's train.seed), so the table ends
    with their mean ± sd, as for the runs the benchmark trains itself."""
    import shutil

    bench = load_benchmark("table1")
    other = tmp_path / "other"
    shutil.copytree(run, other)
    config = json.loads((other / "config.json").read_text())
    config["train"]["seed"] = 7
    (other / "config.json").write_text(json.dumps(config))
    common = ["--data", "embedded-digits", "--cache-dir", str(tmp_path), "--no-record", "--up-to-epoch", "1.5"]
    common += ["--valid-samples", str(M), "--test-samples", str(M), "--as-seeds", "tiny recipe"]
    assert bench.main([*common, "--run", str(run), "--run", str(other)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| advnets, tiny recipe, up to epoch 1.5, seed ")]
    assert [r.split(" | ")[0] for r in rows] == ["| advnets, tiny recipe, up to epoch 1.5, seed 0"] + [
        "| advnets, tiny recipe, up to epoch 1.5, seed 7"
    ]
    assert rows[0].split(" | ")[1:] == rows[1].split(" | ")[1:]  # the same checkpoints, so the same scores
    mean = rows[0].split(" | ")[1].split(" ± ")[0]
    assert f"| **advnets, tiny recipe, up to epoch 1.5, mean ± sd over 2 seeds** | **{mean} ± 0.0** |" in out
    with pytest.raises(bench.AdvnetsError, match="--as-seeds: --run .* has seed 0, as another --run has"):
        bench.main([*common, "--run", str(run), "--run", str(run)])


def test_probe_csv_records_a_branched_runs_best_within_the_window_and_replaces_its_old_row(
    run, digits, tmp_path, capsys
):
    """--probe-csv: a run started by --branch-from gets one row (the drop's epoch, the best on validation within
    --probe-window epochs of it, that checkpoint's test score), rewritten on a rerun; other runs get none."""
    import csv

    from conftest import cli_in_process

    probe = tmp_path / "probe"
    origin = run / "checkpoints" / "step-00000050.pt"
    args = ["--out", probe, "--epochs", "2", "--lr", "0.01", "--lr-decay", "1", "--checkpoint-every", "20"]
    args += ["--keep-checkpoints", "0"]  # every checkpoint is a point of the curve (as benchmarks/table1.py's runs)
    code, _, err = cli_in_process("train", "--branch-from", origin, "--data", "embedded-digits", *args, "--no-progress")
    assert code == 0, err
    table = tmp_path / "probes.csv"
    table.write_text("run,seed,drop_epoch,valid_ll,test_ll\nprobe,0,1.0,1.0,\nother,3,100,176.6,178.5\n")
    bench = load_benchmark("table1")
    common = ["--data", "embedded-digits", "--cache-dir", str(tmp_path), "--no-record", "--probe-csv", str(table)]
    common += ["--valid-samples", str(M), "--test-samples", str(M), "--probe-window", "0.5"]
    for _ in range(2):
        assert bench.main([*common, "--run", str(probe), "--run", str(run)]) == 0
    rows = list(csv.DictReader(table.open()))
    assert [r["run"] for r in rows] == ["other", "probe"]  # the probe's old row replaced, the fixture run has none

    curve = validation_curve(probe, digits, num_samples=M, cache=tmp_path / "probe.json")
    start = 50 / 71  # the branch's epoch: step 50 of 71 per epoch
    window = [e for e in curve if start - 1e-9 <= e["epoch"] <= start + 0.5]
    assert [e["step"] for e in window] == [50, 60, 80]
    best = best_entry(window)
    assert best["step"] != best_entry(curve)["step"]  # so the window decides the choice here
    assert f"within 0.5 epochs {best['valid_ll']:.1f} (epoch {best['epoch']:.1f})" in capsys.readouterr().out
    scored = score_best(probe, digits, window, num_samples=M, cache=tmp_path / "probe.json")
    assert rows[1] == {
        "run": "probe",
        "seed": "0",
        "drop_epoch": f"{start:.1f}",
        "valid_ll": f"{best['valid_ll']:.1f}",
        "test_ll": f"{scored['mean']:.1f}",
    }
