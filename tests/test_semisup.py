"""Semi-supervised learning with D's features (paper §7, item 4)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from advnets.config import override
from advnets.errors import ConfigError, DataError
from advnets.nets import build_nets
from advnets.semisup import (
    SemisupConfig,
    balanced_indices,
    check_labels,
    discriminator_features,
    evaluate_features,
    fit_linear,
    format_table,
    labelled_draws,
    pixel_features,
    run_semisup,
)
from advnets.train import Trainer
from conftest import cli_in_process as cli
from conftest import tiny_config


def _tiny_run(run_dir, data, source, **data_cfg):
    cfg = tiny_config(epochs=5, sample_every=10_000, checkpoint_every=10_000)
    cfg = override(
        cfg,
        data=override(cfg.data, source=source, **data_cfg),
        optim=override(cfg.optim, optimizer="adam", lr=2e-3, lr_decay=1.0),
    )
    trainer = Trainer(cfg, data)
    trainer.fit(run_dir, progress=False)
    return trainer


@pytest.fixture(scope="module")
def digits_run(digits, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("semisup") / "run"
    trainer = _tiny_run(run_dir, digits, "embedded-digits")
    return run_dir, trainer


# --------------------------------------------------------------------------- the balanced sampler


def test_balanced_draws_give_exactly_n_over_k_per_class_without_repeats():
    labels = np.repeat(np.arange(10), [30, 12, 40, 25, 10, 33, 18, 21, 50, 10])
    rng = np.random.default_rng(0)
    idx = balanced_indices(labels, 50, rng)
    assert len(idx) == len(set(idx.tolist())) == 50
    assert np.bincount(labels[idx], minlength=10).tolist() == [5] * 10
    other = balanced_indices(labels, 50, np.random.default_rng(1))
    assert not np.array_equal(idx, other)  # another seed, another draw
    # n not a multiple of K: n // K each, the rest to distinct random classes.
    counts = np.bincount(labels[balanced_indices(labels, 53, rng)], minlength=10)
    assert counts.sum() == 53 and sorted(counts.tolist()) == [5] * 7 + [6] * 3
    # Draw i of size n is reproducible (the same images for every feature set).
    cfg = SemisupConfig(labels=(20, 30), draws=3, seed=4)
    a, b = labelled_draws(labels, cfg), labelled_draws(labels, cfg)
    assert all(np.array_equal(x, y) for n in (20, 30) for x, y in zip(a[n], b[n], strict=True))
    assert not np.array_equal(a[20][0], a[20][1])


@pytest.mark.parametrize(
    ("n", "message"),
    [(9, "fewer than one labelled example per class"), (250, "larger than the training split"), (120, "class 4")],
)
def test_impossible_labelled_sets_name_the_option(n, message):
    labels = np.repeat(np.arange(10), [30, 12, 40, 25, 10, 33, 18, 21, 50, 10])
    with pytest.raises(ConfigError, match=message) as info:
        balanced_indices(labels, n, np.random.default_rng(0))
    assert str(info.value).startswith(f"--labels {n}")


def test_datasets_without_labels_are_refused():
    with pytest.raises(DataError, match="no training labels"):
        check_labels(None)
    with pytest.raises(DataError, match="no test labels"):
        check_labels(torch.full((5,), -1), "test")
    assert check_labels(torch.tensor([0, 2, 1])).tolist() == [0, 2, 1]


# --------------------------------------------------------------------------- the classifier


def test_linear_classifier_reads_an_informative_feature_map_and_not_a_random_one():
    rng = np.random.default_rng(0)
    k, per_class = 5, 200
    y = np.repeat(np.arange(k), per_class)
    informative = np.concatenate([4.0 * np.eye(k)[y], np.zeros((len(y), 15))], axis=1) + rng.normal(size=(len(y), 20))
    noise = rng.normal(size=(len(y), 20))
    order = rng.permutation(len(y))
    train, test = order[:600], order[600:]
    cfg = SemisupConfig(labels=(25, 100), draws=3)
    good = evaluate_features(informative[train], y[train], informative[test], y[test], cfg)
    bad = evaluate_features(noise[train], y[train], noise[test], y[test], cfg)
    assert good["dim"] == 20
    # Reading the class off the largest informative feature scores ~0.99; chance is 0.2.
    # Measured: 0.83 with 25 labels, 0.98 with 100.
    assert good["25"]["mean"] > 0.7 and good["100"]["mean"] > 0.9
    assert bad["25"]["mean"] < 0.35 and bad["100"]["mean"] < 0.35
    assert len(good["25"]["accuracies"]) == 3 and good["25"]["std"] >= 0
    assert all(c in cfg.c_grid for c in good["100"]["C"])
    # Standardisation: an informative feature on a huge scale is read just as well.
    clf, _ = fit_linear(informative[train[:100]] * 1e4, y[train[:100]], cfg)
    assert clf.score(informative[test] * 1e4, y[test]) > 0.8


def test_raw_pixel_baseline_on_the_8x8_digits(digits):
    y, ty = check_labels(digits.train_labels), check_labels(digits.test_labels, "test")
    x, tx = pixel_features(digits.train), pixel_features(digits.test)
    r = evaluate_features(x, y, tx, ty, SemisupConfig(labels=(20, 100), draws=3))
    assert r["dim"] == 64
    # Measured over seeds 0-2, 5 draws each: 0.69-0.70 with 20 labels, 0.90-0.91 with 100.
    assert 0.55 < r["20"]["mean"] < 0.85
    assert 0.85 < r["100"]["mean"] < 0.96


def test_discriminator_features_are_its_hidden_maxout_outputs():
    cfg = tiny_config()
    _, d = build_nets(cfg.generator, cfg.discriminator, (1, 8, 8))
    d.train()
    x = torch.rand(30, 1, 8, 8)
    f = discriminator_features(d, x, batch=7)
    assert f.shape == (30, 16 + 16) and d.training  # mode given back
    with torch.no_grad():
        h1 = d.hidden[0](x.reshape(30, -1))
        h2 = d.hidden[1](h1)
    np.testing.assert_allclose(f, torch.cat([h1, h2], 1).double().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(discriminator_features(d, x, batch=7), f)  # no dropout: deterministic


def test_run_semisup_scores_the_same_labelled_sets_as_the_whole_split_would(digits_run, digits, tmp_path):
    # run_semisup computes features only for the training images some draw uses; the result must be
    # what the whole training split's features give with the same draws.
    cfg = SemisupConfig(labels=(20, 50), draws=2, seed=3)
    result = run_semisup(digits_run[0], cfg, out=tmp_path / "s.json")
    y, ty = check_labels(digits.train_labels), check_labels(digits.test_labels, "test")
    direct = evaluate_features(pixel_features(digits.train), y, pixel_features(digits.test), ty, cfg)
    for n in ("20", "50"):
        assert result["rows"]["raw pixels"][n]["accuracies"] == direct[n]["accuracies"]
    assert json.loads((tmp_path / "s.json").read_text())["rows"]["raw pixels"]["20"] == direct["20"]


# --------------------------------------------------------------------------- CLI


def test_cli_semisup_prints_the_table_and_writes_json(digits_run):
    run_dir, trainer = digits_run
    code, stdout, stderr = cli("semisup", "--run", run_dir, "--labels", "20,100", "--draws", "2")
    assert code == 0, stderr
    for row in ("raw pixels", "untrained D (same architecture and seed)", "trained D (step"):
        assert row in stdout, row
    assert "| features | dim | 20 labels | 100 labels |" in stdout
    doc = json.loads((run_dir / "semisup.json").read_text())
    with Image.open(run_dir / "semisup.png") as img:  # the figure beside the numbers
        assert img.format == "PNG" and img.width >= 400 and img.height >= 250
    assert doc["classes"] == 10 and doc["config"]["labels"] == [20, 100] and doc["config"]["draws"] == 2
    rows = {"raw pixels", "untrained D (same architecture and seed)", f"trained D (step {trainer.step})"}
    assert set(doc["rows"]) == rows
    for row in doc["rows"].values():
        assert len(row["20"]["accuracies"]) == 2 and 0 <= row["100"]["mean"] <= 1
    # The untrained baseline is D as the trainer built it at step 0 (same config, same seed).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(trainer.cfg.train.seed)
        _, d0 = build_nets(trainer.cfg.generator, trainer.cfg.discriminator, (1, 8, 8))
    assert not torch.equal(d0.hidden[0].linear.weight, trainer.d.hidden[0].linear.weight)
    assert format_table(doc).count("\n| ") == 3

    # --with-encoder needs `advnets infer` first; then the encoder gets its own row.
    code, _, stderr = cli("semisup", "--run", run_dir, "--labels", "20", "--with-encoder")
    assert code == 2 and "--with-encoder" in stderr and "advnets infer" in stderr
    code, _, stderr = cli("infer", "--run", run_dir, "--steps", "50", "--hidden", "16", "--eval-samples", "50")
    assert code == 0, stderr
    out = run_dir / "with-encoder.json"
    code, _, stderr = cli(
        "semisup", "--run", run_dir, "--labels", "20", "--draws", "1", "--with-encoder", "--json", out
    )
    assert code == 0, stderr
    row = json.loads(out.read_text())["rows"]["encoder E (hidden layers and z)"]
    assert row["dim"] == 16 + 16  # one hidden layer of 16 and z of 16


def test_cli_semisup_refuses_a_dataset_without_labels(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    from advnets.config import DataConfig
    from advnets.data import load_dataset

    data = load_dataset(DataConfig(source=f"folder:{folder}", image_size=8, channels=1))
    run_dir = tmp_path / "run"
    _tiny_run(run_dir, data, f"folder:{folder}", image_size=8, channels=1)
    code, _, stderr = cli("semisup", "--run", run_dir, "--labels", "10")
    assert code == 2 and "no training labels" in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["semisup", "--run", "/no/such/run"], "/no/such/run"),
        (["semisup"], "--run"),
        (["semisup", "--run", "EMPTY"], "is not an advnets run"),
        (["semisup", "--run", "RUN", "--labels", "0,100"], "--labels"),
        (["semisup", "--run", "RUN", "--labels", "ten"], "--labels"),
        (["semisup", "--run", "RUN", "--labels", "5"], "--labels 5"),
        (["semisup", "--run", "RUN", "--labels", "100,5000"], "--labels 5000"),
        (["semisup", "--run", "RUN", "--draws", "0"], "--draws"),
    ],
)
def test_cli_semisup_bad_input_exits_2_with_one_line(tmp_path, digits_run, args, expected):
    args = [str(tmp_path) if a == "EMPTY" else str(digits_run[0]) if a == "RUN" else a for a in args]
    code, _, stderr = cli(*args)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], stderr
