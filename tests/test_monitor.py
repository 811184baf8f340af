"""The collapse monitor wired into training (issue 10): logged, warned, stopped."""

import pytest
import torch

from advnets.checkpoint import latest_checkpoint, load_checkpoint
from advnets.config import override
from advnets.runlog import read_metrics
from advnets.train import Trainer, TrainingCollapsed
from conftest import tiny_config


def _config(d_lr_scale=1.0, epochs=20, **train):
    """The tiny nets with Adam (lr 2e-3), which stay diverse on the 8x8 digits;
    d_lr_scale = 0 freezes D, so that G collapses onto D's favourite image."""
    cfg = tiny_config(epochs=epochs, monitor_every=50, log_every=50, **train)
    return override(cfg, optim=override(cfg.optim, optimizer="adam", lr=2e-3, lr_decay=1.0, d_lr_scale=d_lr_scale))


def test_a_healthy_run_logs_its_diversity_and_never_warns(tmp_path, digits):
    tr = Trainer(_config(), digits)
    tr.fit(tmp_path, progress=False, tensorboard=False)
    rows = [r for r in read_metrics(tmp_path) if "collapse/diversity" in r]
    assert [r["step"] for r in rows] == [*range(50, tr.total_steps, 50), tr.total_steps]  # and at the end
    assert all(0 <= r["collapse/near_duplicates"] <= 1 for r in rows)
    assert min(r["collapse/diversity"] for r in rows[len(rows) // 4 :]) > 0.3
    assert tr.monitor.detector.warnings == []
    assert not any("warning" in r for r in read_metrics(tmp_path))


def test_a_frozen_discriminator_makes_g_collapse_and_trips_the_detector(tmp_path, digits, capsys):
    tr = Trainer(_config(d_lr_scale=0.0), digits)
    d_before = [p.detach().clone() for p in tr.d.parameters()]
    tr.fit(tmp_path, progress=False, tensorboard=False)
    assert len(tr.monitor.detector.warnings) == 1  # one warning per episode
    step, message = tr.monitor.detector.warnings[0]
    assert "possible mode collapse" in message and f"step {step}" in message
    assert "--d-lr-scale 2 --instance-noise 0.1" in message  # the remedy the stability benchmark measured
    assert "(this run has --d-lr-scale 0)" in message  # the advice is this run's, not the paper recipe's
    assert step >= tr.total_steps // 4  # G never became diverse: judged after the warm-up quarter
    assert "possible mode collapse" in capsys.readouterr().err
    logged = [r for r in read_metrics(tmp_path) if "warning" in r]
    assert [r["step"] for r in logged] == [step]
    # D took its steps at learning rate 0 and never moved: the collapse is G's alone.
    assert tr.d_updates > 0
    assert all(torch.equal(a, b) for a, b in zip(d_before, tr.d.parameters(), strict=True))


def test_stop_on_collapse_points_latest_at_the_last_healthy_checkpoint(tmp_path, digits):
    healthy = Trainer(_config(epochs=10, checkpoint_every=100), digits)
    healthy.fit(tmp_path, progress=False, tensorboard=False)  # 710 steps, diverse throughout
    assert healthy.monitor.last_healthy_step == healthy.step
    # Continue the same run with D frozen and --on-collapse stop.
    tr = Trainer(_config(d_lr_scale=0.0, epochs=40, checkpoint_every=100, on_collapse="stop"), digits)
    tr.load_state_dict(load_checkpoint(latest_checkpoint(tmp_path)))
    with pytest.raises(TrainingCollapsed, match="last healthy check") as err:
        tr.fit(tmp_path, progress=False, tensorboard=False)
    last_healthy = tr.monitor.last_healthy_step
    assert healthy.step <= last_healthy < tr.step
    kept = latest_checkpoint(tmp_path)
    assert str(kept) in str(err.value)
    kept_step = load_checkpoint(kept)["step"]
    assert kept_step <= last_healthy and last_healthy - kept_step < 100  # the newest one at or before it
    newer = [p for p in (tmp_path / "checkpoints").glob("step-*.pt") if int(p.name[5:13]) > last_healthy]
    assert newer, "checkpoints written during the collapse stay on disk, but `latest` skips them"


def test_the_monitor_state_survives_a_checkpoint(tmp_path, digits):
    tr = Trainer(_config(d_lr_scale=0.0, epochs=10), digits)
    tr.fit(tmp_path, progress=False, tensorboard=False)
    again = Trainer(_config(d_lr_scale=0.0, epochs=10), digits)
    again.load_state_dict(load_checkpoint(latest_checkpoint(tmp_path)))
    assert repr(again.monitor.state_dict()) == repr(tr.monitor.state_dict())  # (NaN != NaN)
    assert again.monitor.armed


def test_monitor_every_zero_turns_the_checks_off(digits):
    tr = Trainer(tiny_config(monitor_every=0), digits)
    assert tr.monitor is None
    tr.total_steps = 5
    tr.fit(progress=False)
    assert tr.step == 5


def test_monitor_checks_never_change_what_training_computes(digits):
    a = Trainer(tiny_config(monitor_every=3), digits)
    b = Trainer(tiny_config(monitor_every=0), digits)
    for tr in (a, b):
        tr.total_steps = 12
        tr.fit(progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.g.parameters(), b.g.parameters(), strict=True))


def test_cli_on_collapse_stop_exits_3_with_one_clear_message(tmp_path, capsys):
    from advnets.cli import main

    args = ["train", "--data", "embedded-digits", "--epochs", "20", "--out", str(tmp_path / "run"), "--no-progress"]
    args += ["--optimizer", "adam", "--d-lr-scale", "0", "--monitor-every", "20", "--on-collapse", "stop"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "possible mode collapse" in err and "training stopped (--on-collapse stop)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("bad", [["--on-collapse", "panic"], ["--monitor-every", "-1"], ["--d-lr-scale", "nan"]])
def test_cli_rejects_bad_monitor_options_with_exit_2(bad, capsys):
    from advnets.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--dry-run", *bad])
    assert e.value.code == 2
    assert bad[0] in capsys.readouterr().err
