"""What a resume or a branch may change (issue 26): another optimiser starts fresh, said in one line and recorded
in config.json; the other optimiser settings follow the new config; and nothing about a resume is recorded
before it has taken a step, so a refused or crashed resume leaves config.json byte-identical."""

import itertools
import json
import shutil

import pytest
import torch

from advnets.checkpoint import latest_checkpoint, load_checkpoint
from advnets.config import OPTIMIZERS, override
from advnets.train import Trainer
from advnets.train.algorithm import momentum_at
from conftest import cli_in_process, tiny_config

# 1439 digits / m = 50: 28 steps in one epoch.
SHORT = ["--data", "embedded-digits", "--batch-size", "50", "--log-every", "7", "--monitor-every", "0", "--no-progress"]
# What each optimiser keeps per parameter, and a hyperparameter only its param groups hold.
STATE_KEY = {"sgd": "momentum_buffer", "adam": "exp_avg"}
GROUP_KEY = {"sgd": "dampening", "adam": "betas"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished 1-epoch run per optimiser the config allows (copied by each test, never changed)."""
    runs = {}
    for name in OPTIMIZERS:
        run = tmp_path_factory.mktemp(f"source-{name}") / "run"
        code, _, err = cli_in_process("train", *SHORT, "--epochs", "1", "--optimizer", name, "--out", run)
        assert code == 0, err
        runs[name] = run
    return runs


def _copy(trained, name, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained[name], run)
    return run


def _assert_optimizer(run_dir, name, steps_since_fresh=None):
    """The latest checkpoint of ``run_dir`` holds optimiser states of kind ``name`` (and, for a fresh Adam, step
    counts that began at the resume)."""
    state = load_checkpoint(latest_checkpoint(run_dir))
    assert state["config"]["optim"]["optimizer"] == name
    for key in ("opt_g", "opt_d"):
        per_param = state[key]["state"]
        assert per_param and all(STATE_KEY[name] in s for s in per_param.values()), (key, per_param.keys())
        assert all(GROUP_KEY[name] in g for g in state[key]["param_groups"])
        if name == "adam":
            counts = {float(s["step"]) for s in per_param.values()}
            assert counts == {float(steps_since_fresh if steps_since_fresh is not None else state["step"])}


PAIRS = list(itertools.product(OPTIMIZERS, repeat=2))


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_resume_with_any_optimizer_continues_or_starts_it_fresh_and_says_so(trained, tmp_path, old, new):
    run = _copy(trained, old, tmp_path)
    code, _, err = cli_in_process("train", "--out", run, "--resume", "--epochs", "2", "--optimizer", new,
                                  "--no-progress")  # fmt: skip
    assert code == 0 and "Traceback" not in err, err
    line = f"optim.optimizer {old!r} -> {new!r}: {new} starts fresh"
    assert (line in err) == (old != new), err
    assert sum(line in x for x in err.splitlines()) == (old != new)  # one line
    record = json.loads((run / "config.json").read_text())["resumes"][-1]
    assert record["step"] == 28
    assert ("optim.optimizer" in record["changes"]) == (old != new)
    assert record.get("optimizer_state") == ("fresh" if old != new else None)
    # Adam's step counts: 28 since a fresh start, all 56 when its state was carried.
    _assert_optimizer(run, new, steps_since_fresh=28 if old != new else None)


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_branch_and_dry_run_with_any_optimizer(trained, tmp_path, old, new):
    """--branch-from: the branch starts the new optimiser fresh (its first checkpoint, saved before any step,
    holds an empty state), its source is only read; --dry-run says the same and writes nothing."""
    source = _copy(trained, old, tmp_path)
    before = (source / "config.json").read_bytes()
    code, _, err = cli_in_process("train", "--out", source, "--resume", "--epochs", "2", "--optimizer", new,
                                  "--dry-run", "--no-progress")  # fmt: skip
    assert code == 0 and "would resume" in err and "Traceback" not in err, err
    assert ("starts fresh" in err) == (old != new), err
    assert (source / "config.json").read_bytes() == before

    branch = tmp_path / "branch"
    code, _, err = cli_in_process("train", "--branch-from", source, "--out", branch, "--epochs", "2",
                                  "--optimizer", new, "--no-progress")  # fmt: skip
    assert code == 0 and "Traceback" not in err, err
    assert (f"optim.optimizer {old!r} -> {new!r}: {new} starts fresh" in err) == (old != new), err
    record = json.loads((branch / "config.json").read_text())["resumes"][0]
    assert "branched_from" in record and record.get("optimizer_state") == ("fresh" if old != new else None)
    _assert_optimizer(branch, new, steps_since_fresh=28 if old != new else None)
    began = load_checkpoint(branch / "checkpoints" / "step-00000028.pt")
    assert (began["opt_g"]["state"] == {}) == (old != new)  # fresh: nothing carried into the branch's start
    assert (source / "config.json").read_bytes() == before


def test_a_resume_uses_the_new_betas_momentum_and_d_lr_scale(tmp_path, digits):
    """Optimiser settings without a flag (Adam's betas, the momentum schedule) and --d-lr-scale: a resume uses
    the new config's values, not the ones in the checkpoint's optimiser state (torch's load_state_dict alone
    brings back the old betas)."""
    adam = tiny_config()
    adam = override(adam, optim=override(adam.optim, optimizer="adam", lr=2e-4, lr_decay=1.0))
    tr = Trainer(adam, digits)
    tr.train_step()
    state = tr.state_dict()
    changed = override(adam, optim=override(adam.optim, adam_betas=(0.9, 0.99), d_lr_scale=0.5))
    resumed = Trainer(changed, digits)
    resumed.load_state_dict(state)
    resumed.train_step()
    for opt in (resumed.opt_g, resumed.opt_d):
        assert all(tuple(g["betas"]) == (0.9, 0.99) for g in opt.param_groups)
        assert all(float(s["step"]) == 2 for s in opt.state.values())  # the state itself was carried
    assert resumed.opt_d.param_groups[0]["lr"] == pytest.approx(1e-4)

    sgd = tiny_config()
    tr = Trainer(sgd, digits)
    tr.train_step()
    changed = override(sgd, optim=override(sgd.optim, momentum_start=0.9, momentum_end=0.95))
    resumed = Trainer(changed, digits)
    resumed.load_state_dict(tr.state_dict())
    resumed.train_step()
    assert resumed.opt_g.param_groups[0]["momentum"] == pytest.approx(momentum_at(changed.optim, resumed.epoch))
    assert all("momentum_buffer" in s for s in resumed.opt_g.state.values())


def test_a_resume_refused_for_another_architecture_leaves_config_json_byte_identical(trained, tmp_path):
    run = _copy(trained, "sgd", tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, _, err = cli_in_process("train", "--out", run, "--resume", "--epochs", "2", "--noise-prior", "normal",
                                  "--no-progress")  # fmt: skip
    assert code == 2 and "cannot resume with a different architecture" in err and "generator.noise" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_resume_whose_data_fails_to_load_leaves_config_json_byte_identical(tmp_path):
    """A run on a folder of images, resumed after the folder went away: exit 2 naming it, config.json as it was."""
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(60):
        pixels = (torch.rand(8, 8, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels, mode="L").save(images / f"{i:03d}.png")
    run = tmp_path / "run"
    argv = ["--data", f"folder:{images}", "--image-size", "8", "--channels", "1", "--batch-size", "20"]
    code, _, err = cli_in_process("train", *argv, "--epochs", "1", "--monitor-every", "0", "--no-progress",
                                  "--out", run)  # fmt: skip
    assert code == 0, err
    before = (run / "config.json").read_bytes()
    shutil.rmtree(images)
    code, _, err = cli_in_process("train", "--out", run, "--resume", "--epochs", "2", "--lr", "0.01", "--no-progress")
    assert code == 2 and str(images) in err and "Traceback" not in err, err
    assert (run / "config.json").read_bytes() == before


def test_a_resume_that_crashes_at_its_first_step_leaves_config_json_byte_identical(trained, tmp_path, monkeypatch):
    """A failure inside the first step (a CUDA out-of-memory, say; simulated here, no GPU): the resume and its
    changes are not recorded. Once a step is taken, they are."""
    import advnets.train.algorithm as algorithm

    run = _copy(trained, "sgd", tmp_path)
    before = (run / "config.json").read_bytes()
    real_step = algorithm.simultaneous_step

    def out_of_memory(players):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    command = ("train", "--out", run, "--resume", "--epochs", "2", "--lr", "0.01", "--no-progress")
    monkeypatch.setattr(algorithm, "simultaneous_step", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        cli_in_process(*command)
    assert (run / "config.json").read_bytes() == before

    monkeypatch.setattr(algorithm, "simultaneous_step", real_step)
    code, _, err = cli_in_process(*command)
    assert code == 0, err
    resumes = json.loads((run / "config.json").read_text())["resumes"]
    assert resumes == [{"step": 28, "changes": {"optim.lr": [0.1, 0.01], "train.epochs": [1, 2]}}]
