"""Interrupted any number of times, the same command finishes the same run (issue 18): `advnets train ... --resume`
before the first checkpoint and on an empty --out, one row per step in the log after a resume, and messages that
name the options the user gave."""

import json
import os

import pytest

from advnets.runlog import MetricsLog, describe_rewind, read_metrics, rewind_metrics
from advnets.runs import create_run
from conftest import UpdatesThen, cli_in_process

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


def test_resume_refuses_a_folder_that_holds_files_but_no_run(tmp_path):
    """A run's checkpoints/ folder (or anyone's data) is not an empty --out: training into it would mix the two."""
    (tmp_path / "config.json").write_text("{}")
    inner = tmp_path / "checkpoints"
    inner.mkdir()
    (inner / "latest").write_text("step-00000007.pt\n")
    code, _, err = cli_in_process("train", *SHORT, "--out", inner, "--resume", "--no-progress")
    assert code == 2 and f"--out {inner} is not an advnets run" in err and f"did you mean {tmp_path}?" in err, err
    assert [p.name for p in inner.iterdir()] == ["latest"]  # nothing written


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


@pytest.mark.parametrize("holds", ["nothing", "config.json only", "a checkpoint"])
def test_a_torchrun_restart_continues_whatever_the_run_directory_holds(tmp_path, digits, holds):
    """After one of torchrun's restarts (--max-restarts) the command resumes, so that a group killed before its
    first checkpoint starts again from step 0 rather than refusing an --out that "already holds a run"."""
    import argparse

    from advnets.cli.train import check_torchrun_args
    from advnets.distributed import TorchrunEnv
    from advnets.train import Trainer
    from advnets.train.session import plan_run
    from conftest import tiny_config

    run_dir = tmp_path / "run"
    if holds == "config.json only":
        _config_only_run(run_dir)
    elif holds == "a checkpoint":
        Trainer(tiny_config(), digits).fit(run_dir, progress=False, tensorboard=False)
    args = argparse.Namespace(nproc=None, out=run_dir, resume=False)
    check_torchrun_args(args, TorchrunEnv(rank=0, world_size=2, local_rank=0, restart_count=1))
    assert args.resume
    plan = plan_run(out=args.out, resume=args.resume)
    assert plan.kind == {"nothing": "new", "config.json only": "continue", "a checkpoint": "resume"}[holds]
    first = argparse.Namespace(nproc=None, out=run_dir, resume=False)
    check_torchrun_args(first, TorchrunEnv(rank=0, world_size=2, local_rank=0, restart_count=0))
    assert not first.resume  # the first attempt runs the command as given


def test_checkpoint_minutes_checkpoints_when_the_time_is_up_beside_checkpoint_every(tmp_path, digits):
    from advnets.train import Trainer
    from conftest import tiny_config

    def saved(minutes):
        run_dir = tmp_path / str(minutes)
        tr = Trainer(
            tiny_config(checkpoint_every=4, checkpoint_minutes=minutes, log_every=100, keep_checkpoints=0), digits
        )
        tr.total_steps = 6
        tr.fit(run_dir, progress=False, tensorboard=False)
        return [int(p.stem[5:]) for p in sorted((run_dir / "checkpoints").glob("*.pt"))]

    assert saved(1e-9) == [1, 2, 3, 4, 5, 6]  # the time is up after every step
    assert saved(10.0) == [4, 6]  # the default: not within a few seconds
    assert saved(0.0) == [4, 6]  # off


def test_checkpoint_minutes_is_an_option_with_a_default_of_ten(tmp_path):
    from advnets.cli.train import config_from_argv

    assert config_from_argv([]).train.checkpoint_minutes == 10.0
    assert config_from_argv(["--checkpoint-minutes", "2.5"]).train.checkpoint_minutes == 2.5
    code, _, err = cli_in_process("train", "--checkpoint-minutes", "-1", "--dry-run")
    assert code == 2 and "--checkpoint-minutes" in err


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
    assert describe_rewind([30, 40], 20).startswith("metrics.jsonl: dropped 2 row(s) of steps 30, 40 logged after")
    assert describe_rewind([-1], 20).startswith("metrics.jsonl: dropped 1 torn line logged after step 20, ")
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


def test_a_stop_between_two_log_rows_resumes_to_the_log_of_an_uninterrupted_run(tmp_path, digits):
    """SIGTERM at step 7 (rows every 4): no extra row at the stop, and the row of step 8, logged after the resume in
    a new Trainer, averages steps 5-8 as an uninterrupted run's does (the sums since the last row are in the
    checkpoint)."""
    import signal

    from advnets.checkpoint import latest_checkpoint, load_checkpoint
    from advnets.train import Trainer, TrainingInterrupted
    from conftest import tiny_config

    cfg = tiny_config(log_every=4, checkpoint_every=100, checkpoint_minutes=0.0)
    full = Trainer(cfg, digits)
    full.total_steps = 12
    full.fit(tmp_path / "full", progress=False, tensorboard=False)

    half = Trainer(cfg, digits)
    half.total_steps = 12

    def sigterm(kind):
        if half.step == 6:  # during the seventh step
            os.kill(os.getpid(), signal.SIGTERM)

    half.updates = UpdatesThen(half.updates, sigterm)
    with pytest.raises(TrainingInterrupted, match="at step 7"):
        half.fit(tmp_path / "half", progress=False, tensorboard=False)
    assert _steps(tmp_path / "half") == [4]
    again = Trainer(cfg, digits)
    again.load_state_dict(load_checkpoint(latest_checkpoint(tmp_path / "half")))
    again.total_steps = 12
    again.fit(tmp_path / "half", progress=False, tensorboard=False)

    def log(run):
        return [{k: v for k, v in row.items() if k not in TIMING} for row in read_metrics(run)]

    assert _steps(tmp_path / "half") == [4, 8, 12]
    assert log(tmp_path / "half") == log(tmp_path / "full")


# ----------------------------------------------------------------------------- the kill test
# The same command line, run again and again, each attempt killed; then the last one finishes. Alternating
# update with k = 5 D steps per G step, so that most of a step's time is inside Algorithm 1's inner loop:
# 1439 digits / m = 20 = 71 minibatches a epoch, 14 steps, 28 in two epochs; checkpoints at 10, 20, 28.
def kill_args(epochs: int) -> list[str]:
    return [
        *("--data", "embedded-digits", "--update", "alternating", "--k", "5", "--batch-size", "20"),
        *("--epochs", str(epochs), "--log-every", "2", "--checkpoint-every", "10", "--checkpoint-minutes", "0"),
        *("--monitor-every", "0"),
    ]


KILL_ARGS = kill_args(2)
# The random-kill test's run is ten times longer, so that six attempts, each killed within about a second
# of training, cannot finish it on a fast machine before every kill has been sent.
RANDOM_KILL_ARGS = kill_args(20)
TIMING = ("samples_per_s",)  # wall-clock fields, the only ones allowed to differ


def _attempt(run_dir, nproc=None, args=KILL_ARGS):
    import subprocess
    import sys

    launcher = ["--nproc", "2", "--max-restarts", "3"] if nproc else []
    cmd = [sys.executable, "-m", "advnets", "train", *args, *launcher, "--out", str(run_dir), "--resume"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*cmd, "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )


def _rows_logged(run_dir):
    return len(_steps(run_dir))


def _wait_for(ready, proc, timeout=300):
    import time

    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _uninterrupted(run_dir, args=KILL_ARGS):
    """The reference: the same configuration trained in one go, in this process, on one thread."""
    from advnets.cli.train import config_from_argv
    from advnets.data import load_dataset
    from advnets.train import Trainer
    from conftest import one_thread

    cfg = config_from_argv(args)
    with one_thread():  # as the killed subprocesses train (OMP_NUM_THREADS=1)
        Trainer(cfg, load_dataset(cfg.data)).fit(run_dir, progress=False, tensorboard=False)


def _assert_same_run(a, b):
    """Final G, D, optimiser states, RNG states, counters, and the log apart from wall-clock fields."""
    import torch

    from advnets.checkpoint import latest_checkpoint, load_checkpoint

    sa, sb = load_checkpoint(latest_checkpoint(a)), load_checkpoint(latest_checkpoint(b))
    for key in ("step", "d_updates", "g_updates", "d_steps_done"):
        assert sa[key] == sb[key], key
    for key in ("generator", "discriminator"):
        assert all(torch.equal(sa[key][n], sb[key][n]) for n in sa[key]), key
    for key in ("opt_g", "opt_d"):
        assert sa[key]["param_groups"] == sb[key]["param_groups"]
        for i, s in sa[key]["state"].items():
            assert all(torch.equal(v, sb[key]["state"][i][n]) for n, v in s.items()), key
    flat = {k: v for k, v in sa["rng"].items() if isinstance(v, torch.Tensor)}
    assert flat and all(torch.equal(v, sb["rng"][k]) for k, v in flat.items())

    def log(run):
        return [{k: v for k, v in row.items() if k not in TIMING} for row in read_metrics(run)]

    assert log(a) == log(b)


@pytest.mark.slow  # three or more processes (each ~10 s of CPU to start); the deterministic twins above run by default
def test_killed_before_the_first_checkpoint_and_inside_the_k_loop_the_same_command_finishes_the_same_run(tmp_path):
    """SIGKILL before the first checkpoint, then SIGTERM until a stop falls inside the k-step loop, then the same
    command finishes: the run is the one an uninterrupted run would have been."""
    import signal

    run_dir, latest = tmp_path / "run", tmp_path / "run" / "checkpoints" / "latest"
    proc = _attempt(run_dir)  # killed at its first log row, before its first checkpoint
    _wait_for(lambda: _rows_logged(run_dir) > 0, proc)
    proc.kill()
    proc.wait()
    assert not latest.exists()
    for _ in range(4):  # SIGTERM once training runs past a checkpoint, until a stop falls inside the k-step loop
        before = _rows_logged(run_dir) if latest.exists() else 0
        proc = _attempt(run_dir)
        _wait_for(lambda before=before: latest.exists() and _rows_logged(run_dir) > before, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 143, err
        if "of 5 D steps" in err:
            break
    else:
        pytest.fail("no SIGTERM fell inside Algorithm 1's inner loop in 4 tries")
    proc = _attempt(run_dir)  # the last one finishes
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    _uninterrupted(tmp_path / "reference")
    _assert_same_run(tmp_path / "reference", run_dir)


def _kill_at_random(run_dir, proc, rnd, workers=None):
    """Kill an attempt at a random moment once it is under way (SIGKILL or SIGTERM, to the process or, with
    ``workers``, SIGKILL to one of torchrun's workers). Returns what was sent."""
    import signal
    import time

    if rnd.random() < 0.25:  # anywhere from the start: loading, before the first checkpoint
        time.sleep(rnd.uniform(0.0, 4.0))
    else:  # once this attempt trains (a new row), a moment later: between rows, inside the k-step loop, saving
        rows = _rows_logged(run_dir)
        _wait_for(lambda: _rows_logged(run_dir) > rows, proc)
        time.sleep(rnd.uniform(0.0, 1.0))
    if proc.poll() is not None:
        return "finished"
    sig = rnd.choice([signal.SIGKILL, signal.SIGTERM])
    if workers is not None:
        os.kill(rnd.choice(workers), signal.SIGKILL)
        return "SIGKILL to a worker"
    proc.send_signal(sig)
    proc.communicate(timeout=300)
    return sig.name


@pytest.mark.slow  # about 8 processes
def test_killed_at_random_moments_again_and_again_the_same_command_finishes_the_same_run(tmp_path):
    import random

    rnd = random.Random(1806)
    run_dir = tmp_path / "run"
    sent = []
    for _ in range(6):
        proc = _attempt(run_dir, args=RANDOM_KILL_ARGS)
        sent.append(_kill_at_random(run_dir, proc, rnd))
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert {"SIGKILL", "SIGTERM"} <= set(sent), sent
    proc = _attempt(run_dir, args=RANDOM_KILL_ARGS)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, (sent, err)
    _uninterrupted(tmp_path / "reference", RANDOM_KILL_ARGS)
    _assert_same_run(tmp_path / "reference", run_dir)


@pytest.mark.slow  # three groups of two processes
def test_a_two_process_run_restarted_by_torchrun_after_kills_finishes_the_same_run(tmp_path):
    """`--nproc 2 --max-restarts 3` (gloo): a worker is SIGKILLed before the first checkpoint and again later;
    torchrun restarts the group each time, and it continues (from step 0, then from the last checkpoint) to the
    run of an uninterrupted two-process run."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    cmd = [sys.executable, "-m", "advnets", "train", *KILL_ARGS, "--nproc", "2", "--out", str(reference)]
    done = subprocess.run([*cmd, "--no-progress"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]

    run_dir, latest = tmp_path / "run", tmp_path / "run" / "checkpoints" / "latest"
    proc = _attempt(run_dir, nproc=2)
    workers = _workers_of(proc)
    _wait_for(lambda: _rows_logged(run_dir) > 0, proc)
    assert not latest.exists()
    os.kill(workers[1], signal.SIGKILL)  # before the first checkpoint: the restart begins at step 0
    _wait_for(lambda: latest.exists() and set(_workers_of(proc)) != set(workers), proc)
    time.sleep(0.2)
    os.kill(_workers_of(proc)[0], signal.SIGKILL)  # after a checkpoint: the restart resumes from it
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-4000:]
    assert "has no checkpoint yet" in err and "resuming" in err and "already holds a run" not in err
    _assert_same_run(reference, run_dir)


def _workers_of(launcher):
    """The pids of the two workers torchrun runs under ``launcher`` (the launcher's grandchildren or children)."""
    import time

    deadline = time.monotonic() + 120
    while True:
        found = sorted(_descendants(launcher.pid) - {launcher.pid})
        workers = [pid for pid in found if _is_worker(pid)]
        if len(workers) == 2:
            return workers
        assert launcher.poll() is None, launcher.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _descendants(pid):
    from pathlib import Path

    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        found |= frontier
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
    return found


def _is_worker(pid):
    from pathlib import Path

    try:
        return any(v.startswith(b"LOCAL_RANK=") for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
    except OSError:
        return False
