"""`--keep-checkpoints N` (issue 26): a run keeps its newest N checkpoints plus those `latest` and `best` name and
the one a branch began with; older ones go only once a newer one is complete; 0 keeps all; the default is 5."""

import hashlib
import json
import re

import pytest
import torch

from advnets.checkpoint import latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from advnets.config import TrainConfig
from conftest import cli_in_process

# 1439 digits / m = 50: 28 steps in one epoch; a checkpoint every 4 steps: 7 in an epoch.
SHORT = ["--data", "embedded-digits", "--batch-size", "50", "--log-every", "7", "--monitor-every", "0",
         "--checkpoint-every", "4", "--no-progress"]  # fmt: skip


def _steps(run_dir):
    """The steps of the checkpoints in ``run_dir`` (each checked to have its .sha256, and no stray .sha256)."""
    folder = run_dir / "checkpoints"
    pts = sorted(int(p.name[5:13]) for p in folder.glob("step-*.pt"))
    assert sorted(int(p.name[5:13]) for p in folder.glob("step-*.sha256")) == pts
    return pts


def _fake_run(run_dir, steps, latest, best=None):
    """A checkpoints folder with files named as a run's (their content does not matter to pruning)."""
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True)
    for s in steps:
        (folder / f"step-{s:08d}.pt").write_bytes(b"x")
        (folder / f"step-{s:08d}.sha256").write_text("0\n")
    (folder / "latest").write_text(f"step-{latest:08d}.pt\n")
    if best is not None:
        (folder / "best").write_text(f"step-{best:08d}.pt\n")
    return run_dir


def test_prune_keeps_the_newest_n_and_what_latest_best_and_protect_name(tmp_path):
    run = _fake_run(tmp_path / "a", [10, 20, 30, 40, 50, 60], latest=60, best=20)
    deleted = prune_checkpoints(run, 2, protect=("step-00000010.pt",))
    assert [p.name for p in deleted] == ["step-00000030.pt", "step-00000040.pt"]
    assert _steps(run) == [10, 20, 50, 60]
    assert prune_checkpoints(run, 2, protect=("step-00000010.pt",)) == []  # nothing more to do

    run = _fake_run(tmp_path / "b", [10, 20, 30], latest=30)
    assert prune_checkpoints(run, 0) == [] and _steps(run) == [10, 20, 30]  # 0 keeps all
    (run / "checkpoints" / "latest").unlink()
    assert prune_checkpoints(run, 1) == [] and _steps(run) == [10, 20, 30]  # no `latest`: nothing is deleted


def test_prune_leaves_the_checkpoints_after_latest_alone_and_never_deletes_latest(tmp_path):
    """`latest` moved back (--on-collapse stop, or by hand past a corrupt file) and the run resumed from it: the
    checkpoints after it belong to the abandoned attempt. They are neither deleted nor counted as the newest,
    so the resumed run's own newest ones (latest among them) stay."""
    for keep, left in ((1, [30, 40, 50]), (2, [20, 30, 40, 50])):
        run = _fake_run(tmp_path / str(keep), [10, 20, 30, 40, 50], latest=30)
        prune_checkpoints(run, keep)
        assert _steps(run) == left
    (run / "checkpoints" / "step-00000020.pt").unlink()  # a kill between the two unlinks leaves the .sha256
    prune_checkpoints(run, 2)
    assert not (run / "checkpoints" / "step-00000020.sha256").exists()  # it goes at the next prune


def test_a_run_keeps_the_newest_n_and_resumes_from_latest_after_pruning(tmp_path):
    """--keep-checkpoints 2 with a checkpoint every 4 steps: after each save only the newest two are left, the
    earlier attempt's included after a resume; --resume continues from latest; a change of N on resume is
    allowed and recorded."""
    run = tmp_path / "run"
    code, _, err = cli_in_process("train", *SHORT, "--epochs", "1", "--keep-checkpoints", "2", "--out", run)
    assert code == 0, err
    assert _steps(run) == [24, 28]
    assert latest_checkpoint(run).name == "step-00000028.pt"
    code, _, err = cli_in_process("train", "--out", run, "--resume", "--epochs", "2", "--no-progress")
    assert code == 0 and "resuming" in err and "at step 28" in err, err
    assert _steps(run) == [52, 56]
    code, _, err = cli_in_process("train", "--out", run, "--resume", "--epochs", "3", "--keep-checkpoints", "3",
                                  "--no-progress")  # fmt: skip
    assert code == 0 and "train.keep_checkpoints 2 -> 3" in err, err
    assert _steps(run) == [76, 80, 84]
    assert json.loads((run / "config.json").read_text())["resumes"][-1]["changes"]["train.keep_checkpoints"] == [2, 3]
    assert load_checkpoint(latest_checkpoint(run))["step"] == 84


def test_best_is_never_pruned(tmp_path):
    """`best` names the one validation check of the first epoch (step 28); the run resumed without checks to
    epoch 3, keeping one checkpoint: step 28 stays beside latest, all those between go."""
    run = tmp_path / "run"
    code, _, err = cli_in_process("train", *SHORT, "--epochs", "1", "--eval-every", "1", "--keep-checkpoints", "1",
                                  "--out", run)  # fmt: skip
    assert code == 0, err
    assert (run / "checkpoints" / "best").read_text().strip() == "step-00000028.pt"
    code, _, err = cli_in_process("train", "--out", run, "--resume", "--epochs", "3", "--eval-every", "0",
                                  "--no-progress")  # fmt: skip
    assert code == 0, err
    assert (run / "checkpoints" / "best").read_text().strip() == "step-00000028.pt"
    assert _steps(run) == [28, 84]


def test_a_branch_keeps_the_checkpoint_it_began_with(tmp_path):
    source = tmp_path / "source"
    assert cli_in_process("train", *SHORT, "--epochs", "1", "--out", source)[0] == 0
    branch = tmp_path / "branch"
    code, _, err = cli_in_process("train", "--branch-from", source, "--out", branch, "--epochs", "2",
                                  "--keep-checkpoints", "1", "--no-progress")  # fmt: skip
    assert code == 0, err
    assert _steps(branch) == [28, 56]  # its start (step 28, the source's checkpoint) and latest
    assert _steps(source) == [12, 16, 20, 24, 28]  # the source: the default, 5


def test_the_default_is_five_stated_in_help_and_zero_keeps_all(tmp_path):
    assert TrainConfig().keep_checkpoints == 5
    code, out, _ = cli_in_process("train", "--help")
    assert code == 0 and re.search(r"--keep-checkpoints N\s.*default\s+5", " ".join(out.split()))
    run = tmp_path / "all"
    assert cli_in_process("train", *SHORT, "--epochs", "1", "--keep-checkpoints", "0", "--out", run)[0] == 0
    assert _steps(run) == [4, 8, 12, 16, 20, 24, 28]


@pytest.mark.parametrize("value", ["-1", "two"])
def test_a_bad_keep_checkpoints_exits_2_naming_the_flag(tmp_path, value):
    code, _, err = cli_in_process("train", *SHORT, "--keep-checkpoints", value, "--out", tmp_path / "run")
    assert code == 2 and "--keep-checkpoints" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_a_run_begun_before_the_option_keeps_every_checkpoint_when_resumed(tmp_path):
    """A checkpoint whose config has no keep_checkpoints (written before it existed): resumed, the run keeps all,
    as it did (a Table 1 curve scores every checkpoint), and no change is reported."""
    run = tmp_path / "run"
    assert cli_in_process("train", *SHORT, "--epochs", "1", "--keep-checkpoints", "0", "--out", run)[0] == 0
    path = latest_checkpoint(run)
    state = load_checkpoint(path)
    del state["config"]["train"]["keep_checkpoints"]
    state.pop("version")
    save_checkpoint(run, state)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == path.with_suffix(".sha256").read_text().strip()
    assert "keep_checkpoints" not in torch.load(path, weights_only=True)["config"]["train"]
    code, _, err = cli_in_process("train", "--out", run, "--resume", "--epochs", "2", "--no-progress")
    assert code == 0 and "keep_checkpoints" not in err, err
    assert _steps(run) == list(range(4, 57, 4))


def test_a_collapse_stop_still_finds_the_checkpoint_of_the_last_healthy_check(tmp_path, digits):
    """--on-collapse stop points `latest` back at the newest checkpoint at or before the last healthy check:
    pruning keeps that one, though many newer ones are written (and pruned) while G collapses."""
    from advnets.config import override
    from advnets.train import Trainer, TrainingCollapsed
    from conftest import tiny_config

    def config(d_lr_scale, epochs, **train):  # as tests/test_monitor.py: Adam keeps the tiny nets diverse
        cfg = tiny_config(epochs=epochs, monitor_every=50, log_every=50, **train)
        return override(cfg, optim=override(cfg.optim, optimizer="adam", lr=2e-3, lr_decay=1.0, d_lr_scale=d_lr_scale))

    Trainer(config(1.0, 10, checkpoint_every=100), digits).fit(tmp_path, progress=False, tensorboard=False)
    tr = Trainer(config(0.0, 40, checkpoint_every=5, keep_checkpoints=1, on_collapse="stop"), digits)
    tr.load_state_dict(load_checkpoint(latest_checkpoint(tmp_path)))
    with pytest.raises(TrainingCollapsed, match="last healthy check"):
        tr.fit(tmp_path, progress=False, tensorboard=False)
    last_healthy = tr.monitor.last_healthy_step
    assert tr.step - last_healthy >= 50  # at least one unhealthy check: ten checkpoints since
    kept = load_checkpoint(latest_checkpoint(tmp_path))["step"]
    assert kept <= last_healthy and last_healthy - kept < 5
    assert len(_steps(tmp_path)) <= 3  # the healthy one, the newest, and none of those in between
