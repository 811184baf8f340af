"""One training per run directory (issue 26): `advnets train` holds an OS lock on the run directory while it trains;
a second training of the same run is refused at once (exit 2, naming the holder), readers never wait for it, and a
killed holder leaves no stale lock. Real processes and real files throughout."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advnets.runlock import LOCK_DIR_ENV, LOCK_FILE, RunLocked, hold_run, holds, lock_path, read_holder
from conftest import cli_in_process, one_thread, tiny_config
from test_resume import (
    KILL_ARGS,
    SHORT,
    _assert_same_run,
    _attempt,
    _config_only_run,
    _uninterrupted,
    _workers_of,
    kill_args,
)

_HOLDER = """import sys
from advnets.runlock import hold_run
with hold_run(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def held_elsewhere(run_dir: Path):
    """The lock of ``run_dir`` held by another (small) process until the block ends; yields that process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline() == "held\n"
        yield proc
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
    """A tiny finished run on the 8x8 digits (its config names the data, so `sample` and `report` load it)."""
    from advnets.config import override
    from advnets.train import Trainer

    cfg = tiny_config(epochs=1)
    cfg = override(cfg, data=override(cfg.data, source="embedded-digits"))
    run_dir = tmp_path_factory.mktemp("runlock") / "run"
    Trainer(cfg, digits).fit(run_dir, progress=False, tensorboard=False)
    return run_dir


def _files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- fast, in one or two processes
@pytest.mark.parametrize("what", ["new", "resume", "branch"])
def test_a_second_training_is_refused_at_once_naming_the_holder_and_writes_nothing(tmp_path, what, trained):
    """The holder is this test process (hold_run); `advnets train` on the same run, called in-process, takes its
    own lock on the same file and is refused before it reads or writes anything in the run directory."""
    run_dir = tmp_path / "run"
    argv = [*SHORT, "--out", run_dir, "--no-progress"]
    if what == "resume":
        _config_only_run(run_dir)
        argv.append("--resume")
    elif what == "branch":
        argv = ["--branch-from", trained, "--epochs", "2", "--out", run_dir, "--no-progress"]
    with hold_run(run_dir):
        before = _files(run_dir)
        started = time.monotonic()
        code, out, err = cli_in_process("train", *argv)
        took = time.monotonic() - started
        assert _files(run_dir) == before  # config.json, metrics.jsonl and the lock file byte-identical
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"advnets: error: {run_dir}: another training holds this run"), err
    host = socket.gethostname()
    assert f"(PID {os.getpid()} on {host}, started 20" in err and " UTC: " in err, err
    assert str(lock_path(run_dir)) in err
    assert took < 60  # at once: no waiting for the holder


def test_the_python_api_takes_the_lock_and_releases_it(tmp_path, digits):
    """Trainer.fit and create_run hold the run's lock too: refused while another process holds it (named); after
    fit the lock is free again and its file is empty."""
    from advnets.runs import create_run
    from advnets.train import Trainer

    run_dir = tmp_path / "run"
    with held_elsewhere(run_dir) as holder:
        with pytest.raises(RunLocked, match=f"PID {holder.pid} on "):
            Trainer(tiny_config(), digits).fit(run_dir, progress=False, tensorboard=False)
        with pytest.raises(RunLocked) as refused:
            create_run(tiny_config(), digits, run_dir)
        assert refused.value.holder["pid"] == holder.pid
        assert [p.name for p in run_dir.iterdir()] == [LOCK_FILE]  # nothing written
    Trainer(tiny_config(), digits).fit(run_dir, progress=False, tensorboard=False)
    assert not holds(run_dir) and (run_dir / LOCK_FILE).read_bytes() == b""
    assert read_holder(run_dir) == {}
    with hold_run(run_dir):  # free again
        assert read_holder(run_dir)["pid"] == os.getpid()


def test_hold_run_is_exclusive_within_one_process_too(tmp_path):
    with hold_run(tmp_path / "run"):
        with pytest.raises(RunLocked, match="another training holds this run"):
            with hold_run(tmp_path / "run"):
                pass


def test_readers_never_wait_for_the_lock(tmp_path, trained):
    """sample and report on a run whose lock another process holds: they succeed, and the lock stays held."""
    with held_elsewhere(trained) as holder:
        code, _, err = cli_in_process("sample", "--run", trained, "-n", "16", "--out", tmp_path / "grid.png")
        assert code == 0, err
        code, _, err = cli_in_process("report", "--run", trained, "-n", "16", "--check-size", "50",
                                      "--out", tmp_path / "report.html")  # fmt: skip
        assert code == 0, err
        assert read_holder(trained)["pid"] == holder.pid
    assert (tmp_path / "grid.png").stat().st_size > 0 and (tmp_path / "report.html").stat().st_size > 0


def test_readers_skip_a_torn_last_line_of_the_log(tmp_path, trained):
    """A row half-written by the training process (read mid-write) is skipped by read_metrics and the report."""
    import shutil

    from advnets.runlog import read_metrics

    run_dir = shutil.copytree(trained, tmp_path / "run")
    whole = read_metrics(run_dir)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 999, "d_loss": 0.6')
    assert read_metrics(run_dir) == whole and whole
    code, _, err = cli_in_process("report", "--run", run_dir, "-n", "16", "--check-size", "50")
    assert code == 0, err


_WRITER = """import sys
from advnets.io import atomic_write_bytes
for _ in range(40):
    atomic_write_bytes(sys.argv[1], sys.argv[2].encode() * 200_000)
"""


def test_two_writers_of_one_file_last_wins_never_torn(tmp_path):
    """Every output of report, sample, evaluate and classes goes through advnets.io.atomic_write_bytes: two
    processes writing the same file (1.2 MB, 40 times each) while it is read; every read is one writer's whole
    file, the end is the last writer's, and no temporary file is left."""
    path = tmp_path / "report.html"
    path.write_bytes(b"old" * 400_000)
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), byte]) for byte in ("abcdef", "ghijkl")]
    seen = set()
    while any(w.poll() is None for w in writers):
        data = path.read_bytes()
        seen.add(data[:6])
        assert len(data) == 1_200_000 and data == data[:6] * 200_000
    assert [w.returncode for w in writers] == [0, 0]
    assert path.read_bytes() in (b"abcdef" * 200_000, b"ghijkl" * 200_000)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert seen & {b"abcdef", b"ghijkl"}


def test_a_dry_run_says_the_run_is_held_and_creates_nothing(tmp_path):
    run_dir = tmp_path / "run"
    _config_only_run(run_dir)
    with held_elsewhere(run_dir) as holder:
        before = _files(run_dir)
        code, _, err = cli_in_process("train", "--out", run_dir, "--resume", "--dry-run")
        assert _files(run_dir) == before
    assert code == 2 and f"PID {holder.pid} on " in err, err
    # No lock file, no folder: a dry run never makes one.
    code, _, err = cli_in_process("train", *SHORT, "--out", tmp_path / "new", "--dry-run")
    assert code == 0 and not (tmp_path / "new").exists(), err


def test_nproc_is_refused_before_it_starts_torchrun(tmp_path):
    """--nproc's launcher holds no lock (its rank 0 takes it) but says at once that another training holds it."""
    run_dir = tmp_path / "run"
    _config_only_run(run_dir)
    with held_elsewhere(run_dir) as holder:
        code, _, err = cli_in_process("train", "--nproc", "2", "--out", run_dir, "--resume", "--no-progress")
    assert code == 2 and f"PID {holder.pid} on " in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("cut_short", [False, True])
def test_a_folder_holding_only_a_lock_file_holds_no_run(tmp_path, cut_short):
    """A job killed after it locked a new --out and before its config.json was in place leaves the lock file
    (and, killed inside the write, the temporary file of config.json): the same command with --resume starts the
    run there, not "holds files but no run" (seen with a torchrun group whose rank 0 was killed)."""
    run_dir = tmp_path / "run"
    with hold_run(run_dir):
        pass
    if cut_short:
        (run_dir / ".config.json.k3j9x0ab.tmp").write_text('{"preset": "mn')
    code, _, err = cli_in_process("train", *SHORT, "--out", run_dir, "--resume", "--dry-run")
    assert code == 0 and "would train" in err, err


def test_the_lock_dir_env_moves_the_lock_file_out_of_the_run(tmp_path, monkeypatch):
    """$ADVNETS_LOCK_DIR (for filesystems without working locks, docs/runs.md): the lock file is there, named
    after the run's absolute path; the run directory gets none, and the lock still refuses a second training."""
    locks = tmp_path / "locks"
    monkeypatch.setenv(LOCK_DIR_ENV, str(locks))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    other = tmp_path / "elsewhere" / "run"  # the same name, another run: another lock file
    assert lock_path(run_dir).parent == locks and lock_path(run_dir).name.startswith("run-")
    assert lock_path(run_dir) != lock_path(other)
    with held_elsewhere(run_dir) as holder:
        assert [p.name for p in locks.iterdir()] == [lock_path(run_dir).name]
        code, _, err = cli_in_process("train", *SHORT, "--out", run_dir, "--no-progress")
        with hold_run(other):  # another run is not blocked
            pass
    assert code == 2 and f"PID {holder.pid} on " in err and str(locks) in err, err
    assert list(run_dir.iterdir()) == []


def test_only_the_process_that_writes_the_run_takes_its_lock_and_a_dry_run_takes_none(tmp_path, digits):
    """train_run takes the lock where it writes files: one process, or rank 0 of a torchrun group (rank 0's
    DataParallel writes, the others' do not); a dry run only checks that no one holds it."""
    import torch

    from advnets.distributed import DataParallel, Group
    from advnets.train.parallel import SingleProcess
    from advnets.train.session import train_run

    def group(rank):
        return Group(rank, 2, torch.device("cpu"), "gloo", None)

    assert SingleProcess().writes_files and DataParallel(group(0)).writes_files
    assert not DataParallel(group(1)).writes_files
    run_dir = tmp_path / "run"
    options = {"data.source": "embedded-digits", "train.epochs": 1}
    dry = train_run(options, digits, out=run_dir, dry_run=True, progress=False)
    assert dry.last is None and not run_dir.exists()  # nothing written, no lock file made
    with hold_run(run_dir):
        with pytest.raises(RunLocked):
            train_run(options, digits, out=run_dir, dry_run=True, progress=False)


# ----------------------------------------------------------------------------- slow: real trainings at once
def _train(run_dir: Path, args=KILL_ARGS, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "advnets", "train", *args, *extra, "--out", str(run_dir), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _wait_until(ready, procs, timeout=300):
    deadline = time.monotonic() + timeout
    while not ready():
        for p in procs:
            assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _holder_pid(run_dir: Path) -> int | None:
    return read_holder(run_dir).get("pid")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """KILL_ARGS trained in one go, alone, in this process."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    with one_thread():
        _uninterrupted(run_dir)
    return run_dir


@pytest.mark.slow  # two training processes (~10 s each to start on 2 cores)
def test_two_trainings_of_one_out_the_second_is_refused_and_the_first_ends_as_if_alone(tmp_path, reference):
    """The first is stopped (SIGSTOP) while it holds the lock, so that the second surely tries while the first is
    mid-run; the second (another seed) exits 2 naming the first's PID; the first, continued, ends bit-identical to
    a run that was alone."""
    run_dir = tmp_path / "run"
    first = _train(run_dir)
    _wait_until(lambda: _holder_pid(run_dir) == first.pid, [first])
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = _train(run_dir, KILL_ARGS, "--seed", "2")
        _, err = second.communicate(timeout=300)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2, err
    assert f"{run_dir}: another training holds this run directory (PID {first.pid} on " in err, err
    _, err1 = first.communicate(timeout=600)
    assert first.returncode == 0, err1
    _assert_same_run(run_dir, reference)
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1


@pytest.mark.slow  # a training process and readers beside it
def test_report_and_sample_while_a_run_trains_succeed_and_leave_it_undisturbed(tmp_path):
    """Readers run again and again from the first checkpoint until the training ends; each succeeds, and the run
    ends as one trained alone."""
    args = kill_args(4)  # 56 steps, checkpoints every 10
    run_dir = tmp_path / "run"
    proc = _train(run_dir, args)
    _wait_until(lambda: (run_dir / "checkpoints" / "latest").is_file(), [proc])
    rounds, overlapped = 0, False
    while proc.poll() is None or rounds == 0:
        overlapped |= proc.poll() is None
        code, _, err = cli_in_process("sample", "--run", run_dir, "-n", "16", "--out", tmp_path / "grid.png")
        assert code == 0, err
        code, _, err = cli_in_process("report", "--run", run_dir, "-n", "16", "--check-size", "50",
                                      "--out", tmp_path / "report.html")  # fmt: skip
        assert code == 0, err
        rounds += 1
    assert overlapped
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    alone = tmp_path / "alone"
    with one_thread():
        _uninterrupted(alone, args)
    _assert_same_run(run_dir, alone)


@pytest.mark.slow  # a training process, killed, then the resume
def test_a_sigkilled_holder_leaves_no_stale_lock_and_resume_finishes_the_run(tmp_path, reference):
    run_dir = tmp_path / "run"
    proc = _attempt(run_dir)
    _wait_until(lambda: _holder_pid(run_dir) == proc.pid, [proc])
    proc.kill()
    proc.communicate()
    assert _holder_pid(run_dir) == proc.pid  # its name is still in the file; the kernel dropped the lock itself
    with one_thread():
        code, _, err = cli_in_process("train", *KILL_ARGS, "--out", run_dir, "--resume", "--no-progress")
    assert code == 0, err
    _assert_same_run(run_dir, reference)


@pytest.mark.slow  # three training processes
def test_two_resumes_of_one_run_at_once_one_trains_and_the_other_is_refused(tmp_path):
    """A requeued job while the old one still runs: two `--resume --epochs 2` of a one-epoch run started together.
    Whichever locks first is stopped while it holds the lock; the other exits 2 naming it; the resume is recorded
    once and the log has one row per step."""
    run_dir = tmp_path / "run"
    code, _, err = cli_in_process("train", *kill_args(1), "--out", run_dir, "--no-progress")
    assert code == 0, err
    config = (run_dir / "config.json").read_bytes()
    procs = [_attempt(run_dir), _attempt(run_dir)]
    _wait_until(lambda: _holder_pid(run_dir) in [p.pid for p in procs], procs)
    winner = next(p for p in procs if p.pid == _holder_pid(run_dir))
    loser = next(p for p in procs if p is not winner)
    os.kill(winner.pid, signal.SIGSTOP)
    try:
        _, err = loser.communicate(timeout=300)
    finally:
        os.kill(winner.pid, signal.SIGCONT)
    assert loser.returncode == 2 and f"(PID {winner.pid} on " in err, err
    _, err = winner.communicate(timeout=600)
    assert winner.returncode == 0, err
    doc = json.loads((run_dir / "config.json").read_text())
    assert (run_dir / "config.json").read_bytes() != config
    assert [r["changes"] for r in doc["resumes"]] == [{"train.epochs": [1, 2]}]
    steps = [row["step"] for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]
    assert steps == sorted(set(steps)) and steps[-1] == 28


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((int(v[5:]) for v in env if v.startswith(b"RANK=")), None)


@pytest.mark.slow  # two groups of two processes
def test_rank_0_of_a_torchrun_group_holds_the_lock_and_a_restart_takes_it_again(tmp_path):
    """`--nproc 2 --max-restarts 3`: rank 0 (not the launcher, not rank 1) holds the lock; a second training is
    refused naming it; rank 0 SIGKILLed, torchrun restarts the group and the new rank 0 holds the lock."""
    run_dir = tmp_path / "run"
    proc = _attempt(run_dir, nproc=2)
    workers = _workers_of(proc)
    _wait_until(lambda: _holder_pid(run_dir) in workers, [proc])
    first = _holder_pid(run_dir)
    assert _rank_of(first) == 0
    os.kill(first, signal.SIGSTOP)  # the group waits for it while the second training tries
    try:
        code, _, err = cli_in_process("train", *KILL_ARGS, "--out", run_dir, "--resume", "--no-progress")
    finally:
        os.kill(first, signal.SIGCONT)
    assert code == 2 and f"(PID {first} on " in err, err
    os.kill(first, signal.SIGKILL)
    holders = set()
    while proc.poll() is None:
        pid = _holder_pid(run_dir)
        if pid is not None and pid != first and pid not in holders and _rank_of(pid) == 0:
            holders.add(pid)
        time.sleep(0.01)
    _, err = proc.communicate()
    assert proc.returncode == 0, err[-4000:]
    assert holders and "another training holds" not in err, err[-4000:]


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs holding an empty run directory with its lock file, then filled up (skipped where this
    process may not mount one)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        run_dir = mnt / "run"
        with hold_run(run_dir):
            pass
        with contextlib.suppress(OSError), open(mnt / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        yield run_dir
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_the_lock_holds_on_a_full_disk(full_disk):
    """The holder's name cannot be written there: the lock is taken all the same, and a second holder is
    refused, saying that the holder has not written its name."""
    with hold_run(full_disk):
        with pytest.raises(RunLocked, match="a process that has not yet written its name"):
            with hold_run(full_disk):
                pass
