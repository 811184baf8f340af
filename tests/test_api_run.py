"""A run made with the Python API is a run like any other (issue 16): `Trainer(cfg, data).fit(run_dir=R)` writes
R/config.json as `advnets train` does, and report, evaluate, sample, classes and train --resume work on R."""

import json

import pytest

from advnets.data import load_dataset
from advnets.train import Trainer
from conftest import cli_subprocess as advnets
from conftest import tiny_config


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    """The README's pattern: a preset's config (its data source is the embedded MNIST digits) and another dataset,
    here scikit-learn's 8x8 digits."""
    run = tmp_path_factory.mktemp("api") / "run"
    cfg = tiny_config(epochs=2, log_every=10, sample_every=20, checkpoint_every=20)
    assert cfg.data.source == "embedded"
    last = Trainer(cfg, load_dataset("embedded-digits")).fit(run_dir=run, progress=False, tensorboard=False)
    assert last["step"] == 2 * (1439 // 20)
    return run


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    out = advnets("train", "--data", "embedded-digits", "--epochs", "1", "--out", run, "--no-progress")
    assert out.returncode == 0, out.stderr
    return run


def test_fit_writes_config_json_as_advnets_train_does(api_run, cli_run):
    api = json.loads((api_run / "config.json").read_text())
    cli = json.loads((cli_run / "config.json").read_text())
    assert sorted(api) == sorted(cli)
    for key in ("data", "dataset", "image_shape", "splits"):
        assert api[key] == cli[key], key
    assert api["data"]["source"] == "embedded-digits"  # the data it was given, not the preset's default
    assert api["generator"]["hidden_sizes"] == [32, 32]  # and its own nets
    assert "resumes" not in api


@pytest.mark.slow  # five commands as subprocesses on one run (~50 s)
def test_report_evaluate_sample_and_classes_work_on_an_api_run(api_run, tmp_path):
    out = advnets("report", "--run", api_run, "-n", "20")
    assert out.returncode == 0, out.stderr
    assert "embedded-digits" in (api_run / "report.md").read_text()
    out = advnets("evaluate", "--run", api_run, "--num-samples", "300", "--no-progress")
    assert out.returncode == 0, out.stderr
    doc = json.loads((api_run / "parzen.json").read_text())
    assert doc["dataset"] == "embedded-digits", doc
    png = tmp_path / "grid.png"
    out = advnets("sample", "--run", api_run, "-n", "16", "--out", png)
    assert out.returncode == 0 and png.stat().st_size > 0, out.stderr
    out = advnets("classes", "--run", api_run, "-n", "200", "--data-dir", tmp_path / "data")
    assert out.returncode == 0, out.stderr
    assert (
        f"training a digit classifier on embedded-digits (once; cached in {tmp_path / 'data' / 'classifiers'})"
        in out.stderr
    )
    assert sum(json.loads((api_run / "classes.json").read_text())["coverage"]["counts"]) == 200


def test_train_resume_continues_an_api_run_on_its_own_data(api_run, tmp_path):
    import shutil

    run = shutil.copytree(api_run, tmp_path / "run")
    out = advnets("train", "--out", run, "--resume", "--epochs", "3", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert f"resuming {run} at step 142 of 213" in out.stderr
    assert "on embedded-digits (1439 train images" in out.stderr
    doc = json.loads((run / "config.json").read_text())
    assert doc["resumes"] == [{"step": 142, "changes": {"train.epochs": [2, 3]}}]
    assert (run / "checkpoints" / "step-00000213.pt").is_file()
