"""Interrupted any number of times, the same command finishes the same run (issue 18): `advnets train ... --resume`
before the first checkpoint and on an empty --out, one row per step in the log after a resume, and messages that
name the options the user gave."""

import json
import os

import pytest

from advnets.runs import MetricsLog, create_run, describe_rewind, read_metrics, rewind_metrics
from conftest import cli_in_process

# 1439 digits / m = 50: 28 steps in one epoch, a row every 7.
SHORT = ["--data", "embedded-digits", "--epochs", "1", "--batch-size", "50", "--log-every", "7", "--monitor-every", "0"]


def _steps(run_dir, key="d_loss"):
    return [row["step"] for row in read_metrics(run_dir) if key in row]


def _config_only_run(run_dir, argv=SHORT):
    """A run killed before its first checkpoint: config.json, and the rows its killed attempt logged."""
    from advnets.cli.train import config_from_argv
    from advnets.data import load_dataset

    cfg = config_from_argv(argv)
    create_run(cfg, load_dataset(cfg.data), run_dir)
    rows = [{"step": s, "d_loss": 9.0} for s in (7, 14, 21)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 2')
    return run_dir


@pytest.mark.parametrize("out", ["missing", "empty"])
def test_resume_on_a_missing_or_empty_out_starts_a_new_run_and_says_so(tmp_path, out):
    run_dir = tmp_path / "run"
    if out == "empty":
        run_dir.mkdir()
    code, _, err = cli_in_process("train", *SHORT, "--out", run_dir, "--resume", "--no-progress")
    assert code == 0, err
    what = "does not exist" if out == "missing" else "holds no run"
    assert f"--out {run_dir} {what} yet: starting a new run there" in err
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-00000028.pt"
    assert "resumes" not in json.loads((run_dir / "config.json").read_text())
    assert _steps(run_dir) == [7, 14, 21, 28]


def test_resume_before_the_first_checkpoint_starts_from_step_0_with_the_stored_config(tmp_path):
    """The command names neither the data nor the intervals: they come from config.json. The rows of the
    killed attempt (and its torn last line) are dropped, and one line says so."""
    run_dir = _config_only_run(tmp_path / "run")
    code, _, err = cli_in_process("train", "--out", run_dir, "--resume", "--no-progress")
    assert code == 0, err
    said = f"--out {run_dir} has no checkpoint yet (stopped before the first): starting its run again from step 0"
    assert said in err
    assert "--run" not in err  # the option the user gave is named, not another command's
    assert "metrics.jsonl: dropped 3 row(s) of steps 7, 14, 21 and 1 torn line logged after step 0" in err
    assert "on embedded-digits (1439 train images, 28 steps" in err
    assert _steps(run_dir) == [7, 14, 21, 28]
    assert all(row["d_loss"] != 9.0 for row in read_metrics(run_dir))
    assert json.loads((run_dir / "config.json").read_text())["resumes"] == [{"step": 0, "changes": {}}]
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-00000028.pt"


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--conditional"], "cannot resume with a different architecture: generator.condition: 'none' stored"),
        (["--preset", "tfd"], "--preset tfd: the run in {run} was trained with 'mnist'"),
    ],
)
def test_resume_before_the_first_checkpoint_refuses_conflicting_options_naming_them(tmp_path, option, expected):
    run_dir = _config_only_run(tmp_path / "run")
    before = (run_dir / "config.json").read_bytes()
    code, _, err = cli_in_process("train", "--out", run_dir, "--resume", "--no-progress", *option)
    assert code == 2
    assert expected.format(run=run_dir) in err and "--run" not in err
    assert (run_dir / "config.json").read_bytes() == before  # nothing recorded, nothing trained
    assert not (run_dir / "checkpoints").exists()


def test_an_unreadable_config_json_is_named_when_resuming(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"train": {"epochs": "many"}}\n')
    code, _, err = cli_in_process("train", "--out", run_dir, "--resume", "--no-progress")
    assert code == 2
    assert f"{run_dir / 'config.json'}: not a readable run configuration" in err


# ----------------------------------------------------------------------------- one row per step


def _write_rows(run_dir, steps, torn=False):
    text = "".join(json.dumps({"step": s, "d_loss": float(s)}) + "\n" for s in steps)
    (run_dir / "metrics.jsonl").write_text(text + ('{"step": 9' if torn else ""))


def test_rewind_drops_the_rows_after_the_resume_step_and_says_which(tmp_path):
    _write_rows(tmp_path, [10, 20, 30, 30, 40], torn=True)  # step 30: a log row and a collapse row
    dropped = rewind_metrics(tmp_path, 20)
    assert dropped == [30, 30, 40, -1]
    assert _steps(tmp_path) == [10, 20]
    assert (tmp_path / "metrics.jsonl").read_text().endswith("}\n")  # the next row starts on its own line
    line = describe_rewind(dropped, 20)
    assert line == "metrics.jsonl: dropped 3 row(s) of steps 30, 40 and 1 torn line logged after step 20, " + (
        "where this run continues (the steps are trained and logged again)"
    )
    assert rewind_metrics(tmp_path, 20) == [] and describe_rewind([], 20) == ""  # nothing more to drop
    assert rewind_metrics(tmp_path / "nowhere", 0) == []


def test_rewind_rewrites_metrics_jsonl_atomically(tmp_path, monkeypatch):
    """A failure (disk full, a kill) during the rewrite leaves the whole old file and no temporary."""
    import advnets.io

    _write_rows(tmp_path, [10, 20, 30])
    before = (tmp_path / "metrics.jsonl").read_bytes()

    def disk_full(src, dst):
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(advnets.io.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        rewind_metrics(tmp_path, 10)
    assert (tmp_path / "metrics.jsonl").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_tensorboard_after_a_resume_holds_one_value_per_step(tmp_path):
    """The killed attempt logged steps 1-10; the run continues from its checkpoint at step 5 and logs 6-8 again
    with other values: TensorBoard, like metrics.jsonl, shows each step once, with the values of the run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = MetricsLog(tmp_path, start_step=0)
    for s in range(1, 11):
        first.log({"step": s, "d_loss": float(s)})
    first.close()
    again = MetricsLog(tmp_path, start_step=5)
    assert again.dropped == [6, 7, 8, 9, 10]
    for s in range(6, 9):
        again.log({"step": s, "d_loss": 100.0 + s})
    again.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    scalars = [(e.step, e.value) for e in events.Scalars("d_loss")]
    assert scalars == [(s, float(s)) for s in range(1, 6)] + [(s, 100.0 + s) for s in range(6, 9)]
    assert [(r["step"], r["d_loss"]) for r in read_metrics(tmp_path)] == scalars
