"""A run's life in the library (advnets.train.session, issue 27): the Python API resumes, continues and branches a
run with the CLI's guarantees, and `advnets train`, its --dry-run and the API read the same plan."""

import json

import pytest
import torch

from advnets.checkpoint import latest_checkpoint, load_checkpoint
from advnets.errors import AdvnetsError
from advnets.runlock import hold_run
from advnets.runlog import read_metrics
from advnets.train.session import plan_run, train_run
from conftest import cli_in_process

# 1439 digits / m = 50: 28 steps an epoch; small nets, no monitor, a row every 7 steps.
SMALL = {
    "data.source": "embedded-digits",
    "train.batch_size": 50,
    "train.log_every": 7,
    "train.monitor_every": 0,
    "generator.noise_dim": 16,
    "generator.hidden_sizes": (32, 32),
    "discriminator.hidden_units": (16, 16),
    "discriminator.pieces": (3, 3),
}


def _state(run):
    state = load_checkpoint(latest_checkpoint(run))
    nets = {**state["generator"], **{f"d.{k}": v for k, v in state["discriminator"].items()}}
    return state["step"], nets


def _train(out, epochs, **kw):
    return train_run({**SMALL, "train.epochs": epochs}, out=out, progress=False, tensorboard=False, **kw)


def test_a_resume_through_the_api_ends_bit_identical_to_an_uninterrupted_run(tmp_path):
    whole = _train(tmp_path / "whole", 2)
    assert whole.last["step"] == 56 and whole.run_dir == tmp_path / "whole"
    _train(tmp_path / "split", 1)
    lines = []
    resumed = _train(tmp_path / "split", 2, resume=True, say=lines.append)
    assert lines[0] == f"resuming {tmp_path / 'split'} at step 28 of 56 with changes: train.epochs 1 -> 2"
    assert len(lines) == 2 and lines[1].startswith("training mnist on") and lines[1].endswith(str(tmp_path / "split"))
    (step_a, a), (step_b, b) = _state(tmp_path / "whole"), _state(tmp_path / "split")
    assert step_a == step_b == 56 and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_metrics(tmp_path / "split") if "d_loss" in r]
    assert steps == [r["step"] for r in read_metrics(tmp_path / "whole") if "d_loss" in r]  # one row per step
    assert resumed.last["step"] == 56
    again = _train(tmp_path / "split", 2, resume=True, say=lines.append)  # a requeued call: nothing to do
    assert again.last is None and lines[-1].startswith(f"{tmp_path / 'split'} is complete: step 56 of 56")


def test_a_branch_through_the_api_leaves_its_source_untouched_and_records_where_it_began(tmp_path):
    source = _train(tmp_path / "source", 1).run_dir
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    branch = train_run({"train.epochs": 2, "optim.lr": 0.01}, branch_from=source, out=tmp_path / "b", progress=False)
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before
    doc = json.loads((branch.run_dir / "config.json").read_text())
    assert doc["resumes"][0]["step"] == 28 and doc["resumes"][0]["branched_from"].endswith("step-00000028.pt")
    assert doc["optim"]["lr"] == 0.01 and branch.last["step"] == 56


def test_the_plan_names_what_a_call_will_do(tmp_path):
    assert plan_run(SMALL).kind == "new"
    assert plan_run(SMALL, out=tmp_path / "missing", resume=True).kind == "new"
    _train(tmp_path / "run", 1)
    plan = plan_run({"train.epochs": 3}, out=tmp_path / "run", resume=True)
    assert plan.kind == "resume" and plan.changes() == {"train.epochs": [1, 3]}
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / "config.json").write_bytes((tmp_path / "run" / "config.json").read_bytes())
    assert plan_run(out=tmp_path / "killed", resume=True).kind == "continue"
    assert plan_run(branch_from=tmp_path / "run", out=tmp_path / "new").kind == "branch"
    with pytest.raises(AdvnetsError, match="--resume needs --out"):
        plan_run(resume=True)


def test_the_api_refuses_a_run_another_training_holds(tmp_path):
    _train(tmp_path / "run", 1)
    with hold_run(tmp_path / "run"), pytest.raises(AdvnetsError, match="another training holds this run directory"):
        _train(tmp_path / "run", 2, resume=True)


def test_the_cli_and_its_dry_run_print_the_libraries_plan(tmp_path):
    _train(tmp_path / "run", 1)
    code, _, err = cli_in_process("train", "--out", tmp_path / "run", "--resume", "--epochs", "2", "--dry-run")
    assert code == 0 and "would resume" in err and "at step 28 of 56" in err
    code, _, err = cli_in_process("train", "--out", tmp_path / "run", "--resume", "--epochs", "2", "--no-progress")
    assert code == 0 and f"resuming {tmp_path / 'run'} at step 28 of 56 with changes: train.epochs 1 -> 2" in err
