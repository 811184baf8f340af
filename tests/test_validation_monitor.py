"""--eval-every: the validation log-likelihood while training, and checkpoints/best (issue 15)."""

import json

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from advnets.checkpoint import load_checkpoint
from advnets.config import override
from advnets.errors import ConfigError
from advnets.generators import load_generator
from advnets.nets import sample_noise
from advnets.runlog import read_metrics
from advnets.train import Trainer
from advnets.train.streams import one_off
from advnets.train.validation import EVAL_SAMPLES
from conftest import cli_in_process, tiny_config


def _valid_rows(run_dir):
    return [r for r in read_metrics(run_dir) if "valid_parzen_ll" in r]


def _parzen_mean(valid: np.ndarray, samples: np.ndarray, sigma: float) -> float:
    """The Parzen estimate written out in float64 NumPy/SciPy, independently of advnets.evaluate."""
    d = valid.shape[1]
    sq = ((valid[:, None, :] - samples[None, :, :]) ** 2).sum(-1)
    ll = logsumexp(-sq / (2 * sigma**2), axis=1) - np.log(len(samples)) - d / 2 * np.log(2 * np.pi * sigma**2)
    return float(ll.mean())


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    run_dir = tmp_path_factory.mktemp("valid") / "run"
    cfg = tiny_config(epochs=3, eval_every=1, checkpoint_every=1000, monitor_every=0)
    Trainer(cfg, digits).fit(run_dir, progress=False, tensorboard=False)
    return run_dir


def test_every_epoch_logs_the_validation_ll_and_best_names_the_best_checks_checkpoint(run, digits):
    rows = _valid_rows(run)
    per_epoch = len(digits.train) // 20
    assert [r["step"] for r in rows] == [per_epoch, 2 * per_epoch, 3 * per_epoch]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    lls = [r["valid_parzen_ll"] for r in rows]
    assert all(np.isfinite(lls))
    assert [r["valid_parzen_best"] for r in rows] == list(np.maximum.accumulate(lls))
    best = rows[int(np.argmax(lls))]
    name = (run / "checkpoints" / "best").read_text().strip()
    assert name == f"step-{best['step']:08d}.pt"
    state = load_checkpoint(run / "checkpoints" / name)
    assert state["validation"]["ll"] == best["valid_parzen_ll"] and state["step"] == best["step"]
    # The logged number, recomputed from the kept weights with the direct formula and σ chosen on the grid.
    loaded = load_generator(run / "checkpoints" / name)
    g, cfg = loaded.generator, loaded.config
    z = sample_noise(cfg.generator, EVAL_SAMPLES, generator=one_off(cfg.train.seed, "validation"))
    with torch.no_grad():
        samples = g(z).double().numpy()
    valid = digits.valid.reshape(len(digits.valid), -1).double().numpy()
    means = [_parzen_mean(valid, samples, s) for s in np.logspace(-1, 0, 10)]
    assert best["valid_parzen_ll"] == pytest.approx(max(means), rel=1e-9)
    assert best["valid_parzen_sigma"] == pytest.approx(np.logspace(-1, 0, 10)[int(np.argmax(means))])


def test_a_resumed_run_keeps_the_best_so_far(tmp_path, digits):
    cfg = tiny_config(epochs=2, eval_every=1, checkpoint_every=1000, monitor_every=0, eval_sigma=0.3)
    first = Trainer(cfg, digits)
    first.fit(tmp_path, progress=False, tensorboard=False)
    best_before = dict(first.validation.best)
    state = load_checkpoint(tmp_path / "checkpoints" / f"step-{first.step:08d}.pt")
    resumed = Trainer(override(cfg, train=override(cfg.train, epochs=4)), digits)
    resumed.load_state_dict(state)
    assert resumed.validation.best == best_before
    resumed.fit(tmp_path, progress=False, tensorboard=False)
    rows = _valid_rows(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]  # no check repeated, none skipped
    assert all(r["valid_parzen_sigma"] == 0.3 for r in rows)
    lls = [r["valid_parzen_ll"] for r in rows]
    assert resumed.validation.best["ll"] == max(lls)
    best_step = rows[int(np.argmax(lls))]["step"]
    assert (tmp_path / "checkpoints" / "best").read_text().strip() == f"step-{best_step:08d}.pt"


def test_eval_options_are_checked_and_reach_the_config(tmp_path):
    with pytest.raises(ConfigError, match="train.eval_every"):
        tiny_config(eval_every=-1)
    with pytest.raises(ConfigError, match="train.eval_sigma"):
        tiny_config(eval_every=1, eval_sigma=0.0)
    code, out, err = cli_in_process("train", "--eval-every", "5", "--eval-sigma", "0.2", "--dry-run")
    assert code == 0, err
    train = json.loads(out)["train"]
    assert (train["eval_every"], train["eval_sigma"]) == (5, 0.2)
