"""Files for the people who share them, and writes that fail in one line (issue 26, items 3 and 4).

Modes: every file advnets writes gets ``0o666 & ~umask``, tested under umask 022 and 077. Failed writes: real
filesystems that are full (a small tmpfs, filled) or read-only (``mount -o remount,ro``), one per writer, with
only that writer's file on it (bind mounts put the rest of the run on the roomy disk), so the test knows which
write fails and when. Mounting needs root; elsewhere these tests skip, saying so.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from advnets.checkpoint import latest_checkpoint, load_checkpoint
from advnets.errors import WriteError
from advnets.runlog import read_metrics
from advnets.train import Trainer
from conftest import cli_in_process, tiny_config

PAGE = 4096  # tmpfs counts its size in pages


# --------------------------------------------------------------------------- umask


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    """The process umask set to the parameter for one test, and set back after it."""
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of every regular file under ``root``, by relative path."""
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}


def test_every_file_of_a_run_and_its_report_gets_the_umasks_mode(tmp_path, digits, umask):
    """Checkpoints, their digests and `latest`, config.json, metrics.jsonl, TensorBoard events, sample grids,
    and the report's page, Markdown and images: all 0o666 & ~umask (mkstemp alone would make them 0600)."""
    run = tmp_path / "run"
    Trainer(tiny_config(epochs=1, batch_size=100, sample_every=5, checkpoint_every=5), digits).fit(run, progress=False)
    code, _, err = cli_in_process("report", "--run", run, "--out", tmp_path / "page" / "report.html")
    assert code == 0, err
    modes = {**_modes(run), **{f"page/{k}": v for k, v in _modes(tmp_path / "page").items()}}
    kinds = (
        "checkpoints/step-",
        "checkpoints/latest",
        "config.json",
        "metrics.jsonl",
        "events.out",
        "samples/",
        "page/report.html",
        "page/report.md",
        "page/report_files/",
    )
    assert all(any(name.startswith(k) for name in modes) for k in kinds), sorted(modes)
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)


def test_atomic_writes_follow_the_umask_at_the_time_of_the_write(tmp_path, umask):
    """Not the umask the module saw when it was imported: a long-lived process may change it."""
    from advnets.io import atomic_write_bytes, atomic_write_json, new_file_mode

    atomic_write_bytes(tmp_path / "a.bin", b"x")
    atomic_write_json(tmp_path / "b.json", {"a": 1})
    assert new_file_mode() == 0o666 & ~umask
    assert _modes(tmp_path) == {"a.bin": 0o666 & ~umask, "b.json": 0o666 & ~umask}


# --------------------------------------------------------------------------- real full and read-only filesystems


def _mount(*args: str | Path) -> None:
    out = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a filesystem here ({out.stderr.strip() or out.returncode}); needs root")


class Mounts:
    """Small tmpfs filesystems and bind mounts for one test; all unmounted at its end."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, where: Path, size: str = "256k") -> Path:
        where.mkdir(parents=True, exist_ok=True)
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", where)
        self.points.append(where)
        return where

    def bind(self, source: Path, where: Path) -> None:
        """``source`` (a folder or a file) seen at ``where`` too."""
        if source.is_dir():
            where.mkdir(parents=True, exist_ok=True)
        else:
            where.parent.mkdir(parents=True, exist_ok=True)
            where.touch()
        _mount("--bind", source, where)
        self.points.append(where)

    def read_only(self, where: Path, ro: bool = True) -> None:
        _mount("-o", f"remount,{'ro' if ro else 'rw'}", where)

    def resize(self, where: Path, size: str) -> None:
        _mount("-o", f"remount,size={size}", where)

    def fill(self, where: Path, leave_pages: int = 0) -> Path:
        """Fill ``where``'s filesystem with a file until it is full, then give back ``leave_pages`` pages."""
        filler = where / "filler"
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * PAGE)
            except OSError as e:
                assert e.errno == errno.ENOSPC
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - size % PAGE - leave_pages * PAGE))
        return filler

    def close(self) -> None:
        for where in reversed(self.points):
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def mounts(tmp_path_factory, monkeypatch):
    """Small filesystems to fill or remount read-only. The run's lock file (advnets.runlock) goes to a folder on
    the ordinary disk ($ADVNETS_LOCK_DIR), so that a filled filesystem holds only the writer under test; a
    read-only run directory without it is test_a_read_only_run_directory_is_refused_at_its_lock_file."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    monkeypatch.setenv("ADVNETS_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
    m = Mounts()
    yield m
    m.close()


def _config(**train):
    """A tiny run: 14 steps an epoch; one log row every step and a checkpoint every 2 (so a failure at step 3
    finds the one of step 2)."""
    base = {
        "epochs": 1,
        "batch_size": 100,
        "log_every": 1,
        "checkpoint_every": 2,
        "checkpoint_minutes": 0,
        "sample_every": 1000,
    }
    return tiny_config(**{**base, **train})


def _fails(cfg, run: Path, digits, names: str) -> str:
    """Train ``cfg`` into ``run``; it must stop with one line naming a file matching ``names`` (a glob)."""
    with pytest.raises(WriteError) as info:
        Trainer(cfg, digits).fit(run, progress=False)
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text
    named = text.split("could not write ", 1)[1].split(": ", 1)[0]
    assert Path(named).match(names), text
    assert f"advnets train --out {run} --resume" in text
    return text


def _resume_finishes(cfg, run: Path, digits, after: int) -> None:
    """The latest checkpoint loads (step ``after``), and a resume from it trains to the end with one log row
    per step."""
    state = load_checkpoint(latest_checkpoint(run))
    assert state["step"] == after
    tr = Trainer(cfg, digits)
    tr.load_state_dict(state)
    tr.fit(run, progress=False)
    assert tr.step == tr.total_steps
    steps = [r["step"] for r in read_metrics(run) if "d_loss" in r]
    every = cfg.train.log_every
    assert steps == [s for s in range(1, tr.total_steps + 1) if s % every == 0 or s == tr.total_steps]


def test_a_full_disk_under_the_checkpoints_keeps_the_last_one_and_resume_continues(tmp_path, digits, mounts):
    cfg, run = _config(), tmp_path / "run"
    probe = Trainer(cfg, digits)
    probe.train_step()  # with the optimisers' state, as at step 2
    pages = sum(-(-p.stat().st_size // PAGE) for p in probe.save(tmp_path / "probe").parent.iterdir())
    fs = mounts.tmpfs(run / "checkpoints")
    filler = mounts.fill(fs, leave_pages=pages + 3)  # room for one checkpoint (and a little), not two
    text = _fails(cfg, run, digits, "step-00000004.pt")
    assert "No space left on device" in text and "step-00000002.pt, is intact" in text
    assert sorted(p.name for p in fs.iterdir()) == ["filler", "latest", "step-00000002.pt", "step-00000002.sha256"]
    filler.unlink()  # free the space (and more: every checkpoint is kept); the same run continues
    mounts.resize(fs, "16m")
    _resume_finishes(cfg, run, digits, after=2)


def test_a_full_disk_under_the_samples_stops_at_the_grid_and_resume_continues(tmp_path, digits, mounts):
    cfg, run = _config(sample_every=3), tmp_path / "run"
    filler = mounts.fill(mounts.tmpfs(run / "samples"))
    text = _fails(cfg, run, digits, "step-00000003.png")
    assert "free some space there" in text
    filler.unlink()
    _resume_finishes(cfg, run, digits, after=2)


def test_a_full_disk_under_metrics_jsonl_stops_at_the_row_and_resume_elsewhere_continues(tmp_path, digits, mounts):
    cfg, run = _config(log_every=3), tmp_path / "run"
    fs = mounts.tmpfs(tmp_path / "small")
    (fs / "metrics.jsonl").touch()
    mounts.fill(fs)
    mounts.bind(fs / "metrics.jsonl", run / "metrics.jsonl")
    _fails(cfg, run, digits, "metrics.jsonl")
    roomy = tmp_path / "roomy"
    shutil.copytree(run, roomy)  # the advice: copy the run somewhere roomier and continue there
    _resume_finishes(cfg, roomy, digits, after=2)


# Python prints a dying thread's traceback through threading.excepthook; under pytest that hook turns it into
# this warning, here an error: TensorBoard's writer thread must die quietly (its error is raised in ours).
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_full_disk_under_the_tensorboard_events_stops_in_one_line_and_resume_elsewhere_continues(
    tmp_path, digits, mounts, capfd
):
    """TensorBoard writes on its own thread; its error comes back at the next write or at the flush before a
    checkpoint, as one line naming the events file (no thread traceback), the last checkpoint whole and every
    event up to it on disk: the resumed run's TensorBoard holds each step once, as metrics.jsonl does."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, run = _config(epochs=2), tmp_path / "run"
    mounts.tmpfs(run)
    for name in ("checkpoints", "samples"):  # only the events file (and config.json) on the small disk
        (tmp_path / name).mkdir()
        mounts.bind(tmp_path / name, run / name)
    (tmp_path / "metrics.jsonl").touch()
    mounts.bind(tmp_path / "metrics.jsonl", run / "metrics.jsonl")
    mounts.fill(run, leave_pages=2)  # config.json and the events file's first page
    text = _fails(cfg, run, digits, "events.out.tfevents.*")
    assert "Exception in thread" not in capfd.readouterr().err  # TensorBoard's thread printed nothing
    step = load_checkpoint(latest_checkpoint(run))["step"]
    assert step >= 2 and f"step-{step:08d}.pt, is intact" in text
    roomy = tmp_path / "roomy"
    shutil.copytree(run, roomy, ignore=shutil.ignore_patterns("filler"))
    _resume_finishes(cfg, roomy, digits, after=step)
    events = EventAccumulator(str(roomy))
    events.Reload()
    assert [e.step for e in events.Scalars("d_loss")] == [r["step"] for r in read_metrics(roomy) if "d_loss" in r]


@pytest.mark.parametrize("where", ["run", "checkpoints"])
def test_a_read_only_filesystem_stops_in_one_line_and_resume_continues_once_writable(tmp_path, digits, mounts, where):
    """A run continued on a read-only run directory stops at its log (a resume's config.json record waits for
    its first step, so the log's rewind is the first write); one whose checkpoints folder turned
    read-only stops at its next checkpoint, the last one whole. Writable again, the same run continues."""
    run = tmp_path / "run"
    fs = mounts.tmpfs(run if where == "run" else run / "checkpoints", size="4m")
    first = _config(epochs=1, checkpoint_every=1000)  # 14 steps, one checkpoint at the end
    Trainer(first, digits).fit(run, progress=False)
    mounts.read_only(fs)
    cfg = _config(epochs=2, checkpoint_every=1000)
    tr = Trainer(cfg, digits)
    tr.load_state_dict(load_checkpoint(latest_checkpoint(run)))
    with pytest.raises(WriteError) as info:
        tr.fit(run, progress=False)
    text = str(info.value)
    assert "\n" not in text and "Read-only file system" in text and "remount it read-write" in text
    named = "metrics.jsonl" if where == "run" else "step-00000028.pt"
    assert f"could not write {fs / named}: " in text
    assert "step-00000014.pt, is intact" in text
    mounts.read_only(fs, ro=False)
    _resume_finishes(cfg, run, digits, after=14)


def test_a_read_only_run_directory_is_refused_at_its_lock_file(tmp_path, digits, mounts, monkeypatch):
    """The lock file is the first thing a training writes: on a read-only run directory it is the file named,
    in the same one line as any other failed write, with where else the lock can go."""
    monkeypatch.delenv("ADVNETS_LOCK_DIR")
    run = tmp_path / "run"
    fs = mounts.tmpfs(run, size="4m")
    Trainer(_config(epochs=1, checkpoint_every=1000), digits).fit(run, progress=False)
    mounts.read_only(fs)
    tr = Trainer(_config(epochs=2, checkpoint_every=1000), digits)
    tr.load_state_dict(load_checkpoint(latest_checkpoint(run)))
    with pytest.raises(WriteError) as info:
        tr.fit(run, progress=False)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"could not write the run's lock file {fs / '.lock'}: Read-only")
    assert "$ADVNETS_LOCK_DIR" in text


# --------------------------------------------------------------------------- other commands' writes


@pytest.fixture
def small_run(tmp_path, digits):
    run = tmp_path / "run"
    Trainer(tiny_config(epochs=1, batch_size=100, checkpoint_every=1000), digits).fit(run, progress=False)
    return run


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_report_and_sample_on_a_full_or_read_only_disk_exit_2_in_one_line(tmp_path, small_run, mounts, how):
    fs = mounts.tmpfs(tmp_path / "out")
    if how == "full":
        mounts.fill(fs)
    else:
        mounts.read_only(fs)
    for args in (
        ("report", "--run", small_run, "--out", fs / "r.html"),
        ("sample", "--run", small_run, "--out", fs / "s.png"),
    ):
        code, _, err = cli_in_process(*args)
        assert code == 2, err
        assert err.count("\n") == 1 and err.startswith("advnets: error: could not write ") and str(fs) in err, err
        assert ("free some space" if how == "full" else "read-only") in err
        assert [p for p in fs.rglob("*") if p.is_file() and p.name != "filler"] == []  # nothing half-written


def test_a_cache_on_a_full_disk_is_one_line_naming_it(tmp_path, mounts):
    """The baseline cache (k-means and a Gaussian fitted once per dataset) under a full $ADVNETS_DATA."""
    import torch

    from advnets.errors import DataError
    from advnets.evaluate.baselines import baseline_samples

    fs = mounts.tmpfs(tmp_path / "cache")
    mounts.fill(fs)
    with pytest.raises(DataError) as info:
        baseline_samples(torch.rand(40, 1, 8, 8), m=10, seed=0, cache_dir=fs)
    text = str(info.value)
    assert "\n" not in text and f"the baseline cache {fs}/baselines-" in text and "No space left" in text
    assert "free some space" in text and sorted(p.name for p in fs.iterdir()) == ["filler"]


@pytest.mark.slow  # two CLI processes (~40 s)
def test_the_cli_on_a_disk_that_fills_after_a_checkpoint_exits_2_in_one_line_and_resume_finishes(tmp_path):
    """Issue 26's case: `--log-every 1`, the disk full just after a checkpoint. Exit 2, one error line naming
    the file (no TensorBoard traceback), the checkpoint whole; after freeing space `--resume` finishes."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    m = Mounts()
    try:
        fs = m.tmpfs(tmp_path / "disk", size="40m")
        run = fs / "run"
        args = [
            sys.executable,
            "-m",
            "advnets",
            "train",
            "--data",
            "embedded-digits",
            "--epochs",
            "1",
            "--log-every",
            "1",
            "--checkpoint-every",
            "2",
            "--checkpoint-minutes",
            "0",
            "--no-progress",
            "--out",
            str(run),
        ]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        latest = run / "checkpoints" / "latest"
        while not latest.exists():
            assert proc.poll() is None, proc.communicate()
        filler = m.fill(fs)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err
        errors = [line for line in err.splitlines() if line.startswith("advnets:")]
        assert len(errors) == 1 and "Traceback" not in err and "Exception in thread" not in err, err
        assert "No space left on device" in errors[0] and f"--out {run} --resume" in errors[0]
        step = load_checkpoint(latest_checkpoint(run))["step"]
        assert step >= 2 and f"step-{step:08d}.pt, is intact" in errors[0]
        filler.unlink()
        m.resize(fs, "160m")  # and more room: seven checkpoints of 16 MB
        again = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        assert load_checkpoint(latest_checkpoint(run))["step"] == 14
        assert [r["step"] for r in read_metrics(run) if "d_loss" in r] == list(range(1, 15))
    finally:
        m.close()
