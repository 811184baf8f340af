"""advnets.evaluate.scoring.score: the one entry that scores a run, a shipped model or an array of samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advnets.errors import AdvnetsError
from advnets.evaluate.parzen import DEFAULT_SIGMAS, parzen_evaluate
from advnets.evaluate.scoring import ScoreRequest, evaluate_run, score
from advnets.runs import create_run
from advnets.train import Trainer
from conftest import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, digits):
    trainer = Trainer(tiny_config(epochs=1), digits)
    out = create_run(trainer.cfg, trainer.dataset, tmp_path_factory.mktemp("score") / "run")
    trainer.fit(out, progress=False, tensorboard=False)
    return out


def test_a_run_scores_as_evaluate_run_and_its_record_holds_the_settings_used(run_dir):
    request = ScoreRequest(run=run_dir, num_samples=300, valid_size=100, seed=2, sigmas=[0.1, 0.2, 0.3])
    result = score(request)
    direct = evaluate_run(run_dir, num_samples=300, valid_size=100, seed=2, sigmas=[0.1, 0.2, 0.3])
    assert result["kind"] == "parzen" and result["run_dir"] == run_dir
    assert result["rows"] == direct["rows"]
    protocol = result["record"]["protocol"]
    assert (protocol["num_samples"], protocol["seed"], protocol["valid_size"]) == (300, 2, 100)
    assert protocol["sigmas"] == [0.1, 0.2, 0.3] and result["record"]["step"] == direct["step"]


def test_samples_score_by_the_parzen_window_on_those_arrays(digits):
    rng = np.random.default_rng(0)
    samples = rng.random((200, 64)).astype(np.float32)
    test, valid = digits.test[:50].reshape(50, -1).numpy(), digits.valid[:40].reshape(40, -1).numpy()
    result = score(ScoreRequest(samples=samples, test=test, valid=valid))
    expected = parzen_evaluate(test, samples, valid=valid, sigmas=DEFAULT_SIGMAS, dtype=torch.float64)
    assert result["kind"] == "parzen" and result["run_dir"] is None
    assert result["rows"]["samples"]["mean"] == pytest.approx(expected["mean"], rel=1e-12)
    assert result["record"]["protocol"]["num_samples"] == 200 and result["record"]["protocol"]["seed"] is None


def test_samples_score_by_todays_metrics_when_metrics_are_named(digits):
    rng = np.random.default_rng(1)
    samples = rng.random((120, 64)).astype(np.float32)
    test, valid = digits.test[:100].reshape(100, -1).numpy(), digits.valid[:40].reshape(40, -1).numpy()
    result = score(ScoreRequest(samples=samples, test=test, valid=valid, metrics="parzen"))
    direct = parzen_evaluate(test, samples, valid=valid, sigmas=DEFAULT_SIGMAS, dtype=torch.float64)
    assert result["kind"] == "quality" and result["metrics"] == ["parzen"]
    assert result["rows"]["samples"]["parzen"] == pytest.approx(direct["mean"], rel=1e-6)
    assert result["dataset"] is None and result["step"] is None


@pytest.mark.parametrize(
    "request_, message",
    [
        (ScoreRequest(), "got none"),
        (ScoreRequest(run="r", pretrained="mnist-paper"), "got run and pretrained"),
        (ScoreRequest(pretrained="mnist-paper"), "give data"),
        (ScoreRequest(samples=np.zeros((3, 4)), metrics="fd"), "need the real images"),
    ],
)
def test_a_request_that_names_not_exactly_one_thing_or_lacks_its_data_is_refused(request_, message):
    with pytest.raises(AdvnetsError, match=message):
        score(request_)
