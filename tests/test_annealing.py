"""The annealed-level fits (advnets.evaluate.annealing) against direct formulas and a Monte Carlo of their error."""

import numpy as np
import pytest

from advnets.errors import AdvnetsError
from advnets.evaluate.annealing import fit_annealed_level
from conftest import load_benchmark

EPOCHS = np.array([100.0, 106.0, 160.0, 200.0, 250.0, 330.0, 400.0])


def _power_law(e, ceiling, c, alpha):
    return ceiling - c * (e / 100.0) ** -alpha


def test_power_law_recovers_exact_parameters_and_extrapolates_by_the_formula():
    levels = _power_law(EPOCHS, 240.0, 60.0, 0.6)
    fit = fit_annealed_level(EPOCHS, levels, "power-law")
    assert fit.params == pytest.approx({"ceiling": 240.0, "c": 60.0, "alpha": 0.6}, rel=1e-6)
    value, se = fit.predict([1151.0])
    assert value[0] == pytest.approx(_power_law(1151.0, 240.0, 60.0, 0.6), abs=1e-5)
    assert se[0] < 1e-4 and fit.residual_sd < 1e-6


def test_log_linear_matches_ordinary_least_squares_and_its_textbook_prediction_error():
    rng = np.random.default_rng(0)
    levels = 70.0 + 15.0 * np.log2(EPOCHS) + rng.normal(0.0, 1.5, EPOCHS.size)
    fit = fit_annealed_level(EPOCHS, levels, "log-linear")
    x = np.stack([np.ones_like(EPOCHS), np.log2(EPOCHS)], axis=1)
    beta, rss, *_ = np.linalg.lstsq(x, levels, rcond=None)
    assert [fit.params["a"], fit.params["b"]] == pytest.approx(beta, rel=1e-6)
    x0 = np.array([1.0, np.log2(1151.0)])
    s2 = rss[0] / (EPOCHS.size - 2)
    expected_se = np.sqrt(s2 * x0 @ np.linalg.inv(x.T @ x) @ x0)
    value, se = fit.predict(1151.0)
    assert float(value) == pytest.approx(x0 @ beta, rel=1e-9)
    assert float(se) == pytest.approx(expected_se, rel=1e-4)


def test_power_law_standard_error_matches_the_spread_over_noise_draws():
    rng = np.random.default_rng(1)
    truth = _power_law(EPOCHS, 240.0, 60.0, 0.6)
    predictions, errors = [], []
    for _ in range(300):
        fit = fit_annealed_level(EPOCHS, truth + rng.normal(0.0, 0.3, EPOCHS.size), "power-law")
        value, se = fit.predict(800.0)
        predictions.append(float(value))
        errors.append(float(se))
    assert np.std(predictions) == pytest.approx(np.median(errors), rel=0.25)
    assert np.mean(predictions) == pytest.approx(_power_law(800.0, 240.0, 60.0, 0.6), abs=0.5)


@pytest.mark.parametrize(
    ("epochs", "levels", "model", "message"),
    [
        ([100, 200, 400], [1, 2, 3], "cubic", "expected one of log-linear, power-law"),
        ([100, 200], [1, 2], "log-linear", "at least 3 are needed"),
        ([100, 200, 300], [1, 2, 3], "power-law", "at least 4 are needed"),
        ([0, 200, 400], [1, 2, 3], "log-linear", "must be finite and > 0"),
        ([100, 200, 400], [1, 2], "log-linear", "the same length"),
        ([100, 100, 100], [1, 2, 3], "log-linear", "1 distinct epochs; it needs 2"),
        ([100, 100, 200, 200, 200], [1, 2, 3, 4, 5], "power-law", "2 distinct epochs; it needs 3"),
    ],
)
def test_bad_input_is_refused_with_the_reason(epochs, levels, model, message):
    with pytest.raises(AdvnetsError, match=message):
        fit_annealed_level(epochs, levels, model)


def test_the_reference_rate_reaches_0_01_at_epoch_1151():
    # lr 0.1 divided by 1.000004 per minibatch, 500 minibatches per epoch (the reference's mnist.yaml):
    # the epoch by the direct formula
    epoch = load_benchmark("anneal_level").reference_drop_epoch()
    assert epoch == pytest.approx(np.log(10.0) / np.log(1.000004) / 500, rel=1e-12)
    assert epoch == pytest.approx(1151.3, abs=0.1)


def test_the_script_prints_both_predictions_and_draws_them(tmp_path, capsys):
    levels = 70.0 + 15.0 * np.log2(EPOCHS)
    rows = ["run,seed,drop_epoch,valid_ll,test_ll"]
    rows += [f"p{i},0,{e},{v},{v + 3.0 + 0.1 * (i % 2)}" for i, (e, v) in enumerate(zip(EPOCHS, levels, strict=True))]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    figure = tmp_path / "level.png"
    argv = ["--points", str(tmp_path / "p.csv"), "--at", "800", "--figure", str(figure)]
    assert load_benchmark("anneal_level").main(argv) == 0
    out = capsys.readouterr().out
    expected = 70.0 + 15.0 * np.log2(800.0)
    line = next(row for row in out.splitlines() if row.startswith("| log-linear |"))
    assert f"| {expected:.1f} ± 0.0 |" in line  # exact log-linear points: the formula's value, no error
    assert f"| {expected + 3.0 + 0.3 / 7:.1f} ± 0.0 |" in line  # plus the probes' mean test - validation offset
    assert "| power-law |" in out
    assert figure.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"run,seed,drop_epoch,valid_ll,test_ll\na,0,100,176.6,\nb,0,two hundred,194.0,\n", "line 3: expected numbers"),
        (b"run,epoch,valid_ll\na,100,176.6\n", "its header lacks drop_epoch"),
        (b"run,seed,drop_epoch,valid_ll\n\xff\xfe,0,100,1\n", "not a UTF-8 text file"),
        (b"run,seed,drop_epoch,valid_ll,test_ll\n", "no probes in it"),
    ],
)
def test_the_script_refuses_a_malformed_csv_by_file_and_line(tmp_path, capsys, content, message):
    (tmp_path / "p.csv").write_bytes(content)
    assert load_benchmark("anneal_level").main(["--points", str(tmp_path / "p.csv"), "--no-figure"]) == 2
    err = capsys.readouterr().err
    assert f"--points {tmp_path / 'p.csv'}" in err and message in err


def test_without_test_scores_the_script_prints_validation_only(tmp_path, capsys):
    rows = ["run,seed,drop_epoch,valid_ll,test_ll"] + [
        f"p{i},0,{e},{70 + 15 * np.log2(e)}," for i, e in enumerate(EPOCHS)
    ]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    assert load_benchmark("anneal_level").main(["--points", str(tmp_path / "p.csv"), "--no-figure"]) == 0
    out = capsys.readouterr().out
    assert "no probe has a test score: validation only" in out and "test LL" not in out
