"""`advnets train --branch-from RUN --out NEW`: a new run from another run's checkpoint (issue 15's learning-rate
probes: the paper's recipe continued at a lower, constant rate), leaving RUN as it was."""

import json
import shutil

import torch

from advnets.checkpoint import latest_checkpoint, load_checkpoint
from advnets.runlog import read_metrics
from conftest import cli_in_process

# 1439 digits / m = 50: 28 steps in one epoch, a row every 7.
SHORT = ["--data", "embedded-digits", "--batch-size", "50", "--log-every", "7", "--monitor-every", "0", "--no-progress"]


def _files(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _trained(tmp_path, *extra):
    source = tmp_path / "source"
    code, _, err = cli_in_process("train", *SHORT, "--epochs", "1", "--out", source, *extra)
    assert code == 0, err
    return source


def _weights(run_dir):
    state = load_checkpoint(latest_checkpoint(run_dir))
    return state["step"], {**state["generator"], **{f"d.{k}": v for k, v in state["discriminator"].items()}}


def test_a_branch_without_changes_is_the_resumed_run_and_leaves_its_source_untouched(tmp_path):
    """Weights, optimiser state, schedules and random streams all come from the checkpoint: the branch's second
    epoch is bit for bit the source's resumed one. The branch's log holds the source's rows up to the branch."""
    source = _trained(tmp_path)
    before = _files(source)
    resumed = tmp_path / "resumed"
    shutil.copytree(source, resumed)
    assert cli_in_process("train", "--out", resumed, "--resume", "--epochs", "2", "--no-progress")[0] == 0
    branch = tmp_path / "branch"
    code, _, err = cli_in_process("train", "--branch-from", source, "--out", branch, "--epochs", "2", "--no-progress")
    assert code == 0, err
    origin = source / "checkpoints" / "step-00000028.pt"
    assert f"branching {origin} at step 28 into {branch} with changes: train.epochs 1 -> 2" in err

    step, weights = _weights(branch)
    resumed_step, resumed_weights = _weights(resumed)
    assert step == resumed_step == 56
    assert weights.keys() == resumed_weights.keys()
    assert all(torch.equal(weights[k], resumed_weights[k]) for k in weights)
    assert _files(source) == before  # only read
    resumes = json.loads((branch / "config.json").read_text())["resumes"]
    assert resumes == [{"step": 28, "changes": {"train.epochs": [1, 2]}, "branched_from": str(origin.resolve())}]
    assert [r["step"] for r in read_metrics(branch)] == [r["step"] for r in read_metrics(resumed)]
    began, original = load_checkpoint(branch / "checkpoints" / "step-00000028.pt"), load_checkpoint(origin)
    assert began["step"] == 28 and began["config"]["train"]["epochs"] == 2  # where it began, with its own config
    assert all(torch.equal(began["generator"][k], v) for k, v in original["generator"].items())


def test_a_branch_at_a_constant_lower_rate_is_finished_after_a_kill_by_the_same_command(tmp_path):
    """With --resume, an --out that holds the branch already (a requeued command) continues it: the branch is
    never made twice, and never restarted from step 0."""
    source = _trained(tmp_path)
    branch = tmp_path / "branch"
    command = ("train", "--branch-from", source, "--out", branch, "--resume", "--lr", "0.01", "--lr-decay", "1")
    code, _, err = cli_in_process(*command, "--epochs", "2", "--no-progress")
    assert code == 0 and "branching" in err, err
    code, _, err = cli_in_process(*command, "--epochs", "3", "--no-progress")
    assert code == 0 and f"resuming {branch} at step 56" in err and "branching" not in err, err
    lr = {row["step"]: row["lr"] for row in read_metrics(branch) if "lr" in row}
    assert sorted(lr) == list(range(7, 85, 7))
    assert all(lr[s] == 0.01 for s in lr if s > 28)
    assert all(0.0999 < lr[s] < 0.1 for s in lr if s <= 28)  # the source's own rows: the preset's decaying rate
    resumes = json.loads((branch / "config.json").read_text())["resumes"]
    assert [r["step"] for r in resumes] == [28, 56] and "branched_from" in resumes[0]


def test_a_branch_chooses_best_among_its_own_checkpoints(tmp_path):
    """--eval-every: the source's best so far is not carried over, so checkpoints/best names one of the branch's."""
    source = _trained(tmp_path, "--eval-every", "1")
    branch = tmp_path / "branch"
    code, _, err = cli_in_process("train", "--branch-from", source, "--out", branch, "--epochs", "2", "--no-progress")
    assert code == 0, err
    assert (branch / "checkpoints" / "best").read_text().strip() == "step-00000056.pt"
    assert [r["step"] for r in read_metrics(branch) if "valid_parzen_ll" in r] == [28, 56]


def test_branch_from_refuses_bad_input_naming_the_option_and_writes_nothing(tmp_path):
    source = _trained(tmp_path)
    branch = tmp_path / "branch"
    cases = [
        (("--branch-from", source, "--out", branch, "--epochs", "1"), "--epochs 1: ", "has already trained 1 epochs"),
        (("--branch-from", tmp_path / "nope", "--out", branch), "--branch-from", "no such run directory"),
        (("--branch-from", source, "--out", source, "--epochs", "2"), f"--out {source} already holds a run", ""),
        (("--branch-from", source, "--out", branch, "--nproc", "2"), "--branch-from goes without --nproc", ""),
    ]
    for argv, *expected in cases:
        code, _, err = cli_in_process("train", *argv, "--no-progress")
        assert code == 2 and all(e in err for e in expected) and "Traceback" not in err, (argv, err)
        assert not branch.exists()
    code, _, err = cli_in_process("train", "--branch-from", source, "--out", branch, "--epochs", "2", "--dry-run")
    assert code == 0 and f"would branch {source / 'checkpoints' / 'step-00000028.pt'} at step 28" in err, err
    assert not branch.exists()
