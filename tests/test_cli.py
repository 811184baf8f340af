"""The CLI end to end, through real subprocesses."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import cli_in_process

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "advnets", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
        timeout=600,
    )


def test_help_shows_runnable_examples_and_module_equals_script():
    out = run("--help")
    assert out.returncode == 0
    assert "examples:" in out.stdout and "advnets train --preset mnist" in out.stdout
    for sub in ("train", "sample"):  # in-process: only the top-level call needs to be the real program
        code, text, _ = cli_in_process(sub, "--help")
        assert code == 0 and "examples:" in text
    script = shutil.which("advnets", path=str(Path(sys.executable).parent))
    if script:  # the installed console script prints the same help
        assert subprocess.run([script, "--help"], capture_output=True, text=True).stdout == out.stdout


def test_dry_run_prints_the_resolved_config_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default --out (runs/...) would be created
    code, out, err = cli_in_process(
        "train", "--preset", "mnist", "--epochs", "7", "--k", "2", "--noise-prior", "normal", "--dry-run"
    )
    assert code == 0, err
    cfg = json.loads(out)
    assert cfg["train"]["epochs"] == 7 and cfg["train"]["k"] == 2 and cfg["train"]["update"] == "alternating"
    assert cfg["generator"]["noise"] == "normal"  # the preset's is "uniform"
    assert cfg["generator"]["hidden_sizes"] == [1200, 1200]
    assert list(tmp_path.iterdir()) == []
    # 7 epochs x 40 minibatches / k = 2
    assert "dry run: embedded-mnist (4000 train images); would train 140 steps; nothing written" in err
    code, _, _ = cli_in_process("train", "--dry-run", "--out", tmp_path / "new")  # a free --out is not created
    assert code == 0 and list(tmp_path.iterdir()) == []


@pytest.mark.slow  # train, sample and resume as subprocesses (~40 s)
def test_train_sample_resume_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    out = run(
        "train", "--data", "embedded-digits", "--epochs", "1", "--out", run_dir, "--no-progress", "--log-every", "5"
    )
    assert out.returncode == 0, out.stderr
    assert f"run directory: {run_dir}" in out.stdout
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["data"]["source"] == "embedded-digits" and cfg["splits"]["train"] == 1439
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 14  # 1439 // 100 minibatches in one epoch
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-00000014.pt"

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for path in (a, b):
        s = run("sample", "--run", run_dir, "-n", "16", "--seed", "3", "--out", path)
        assert s.returncode == 0, s.stderr
        assert "seed 3" in s.stdout
    assert a.read_bytes() == b.read_bytes()  # sampling by seed is reproducible
    img = Image.open(a)
    assert img.size == (2 * (4 * 10 + 2), 2 * (4 * 10 + 2))  # 4 x 4 grid of 8x8 digits, 2 px padding, x2

    again = run("train", "--out", run_dir, "--resume", "--epochs", "2", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr and "train.epochs 1 -> 2" in again.stderr
    assert json.loads((run_dir / "config.json").read_text())["resumes"] == [
        {"step": 14, "changes": {"train.epochs": [1, 2]}}
    ]
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-00000028.pt"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--lr", "-1"], "--lr"),
        (["train", "--lr-decay", "0.99"], "--lr-decay: expected a factor >= 1, got '0.99'"),
        (["train", "--preset", "nope"], "--preset"),
        (["train", "--data", "/no/such/dir"], "/no/such/dir"),
        (["train", "--data", "/no/such/dir", "--dry-run"], "/no/such/dir"),  # a dry run checks the data too
        (["train", "--data", "embedded-digits", "--batch-size", "100000", "--dry-run"], "training split"),
        (["train", "--data", "embedded-digits", "--out", "/dev/null/run"], "--out /dev/null/run: cannot create"),
        (["train", "--channels", "3", "--dry-run"], "--channels goes with folder:DIR data; --data embedded has"),
        (["train", "--image-size", "32", "--channels", "3"], "--image-size, --channels go with folder:DIR data"),
        (["train", "--data", "embedded-digits", "--valid-size", "100"], "--valid-size goes with IDX or CIFAR-10"),
        (["train", "--resume"], "--resume"),
        (["train", "--k", "3", "--update", "simultaneous", "--dry-run"], "train.k"),
        (["train", "--real-label", "1.5", "--dry-run"], "--real-label: train.real_label must be in (0.5, 1]"),
        (["train", "--instance-noise", "-1"], "--instance-noise"),
        (["train", "--d-lr-scale", "-1"], "--d-lr-scale"),
        (["train", "--max-restarts", "2", "--dry-run"], "--max-restarts goes with --nproc"),
        (["train", "--eval-metrics", "fd", "--dry-run"], "train.eval_metrics"),
        (["train", "--eval-metrics", "foo", "--dry-run"], "unknown foo"),  # named before "needs --eval-every"
        (["train", "--seed", "99999999999999999999", "--dry-run"], "--seed: expected a seed: an integer from 0 to"),
        (["sample", "--run", "r", "--seed", "-1"], "--seed: expected a seed"),
        (["sample", "--run", "r", "-n", "1000000"], "-n: expected a number of images from 1 to 10,000"),
        (["evaluate", "--run", "r", "--seed", str(2**31)], "--seed: expected a seed"),
        (["evaluate", "--run", "r", "--test", "t.npy"], "--test and --valid go with --samples"),
        (["sample", "--run", "r", "--rows", "3", "--spherical"], "--rows, --spherical: these go with --interpolate"),
        (["sample", "--run", "r", "--rows", "3"], "--rows goes with --interpolate (Figure 3)"),
        (["sample", "--run", "r", "--check-size", "5"], "--check-size goes with --nearest"),
        (["sample", "--run", "r", "--data", "embedded-digits"], "--data goes with --pretrained --nearest"),
        (["sample", "--run", "/no/such/run"], "/no/such/run"),
        (["sample"], "--run"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(tmp_path, args, expected):
    out = run(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], out.stderr


@pytest.mark.parametrize("where", ["before the command", "after it", "after data list"])
def test_debug_shows_the_traceback_wherever_it_is_given(tmp_path, where):
    """--debug adds the traceback; the exit code stays 2 (a user error), as without it."""
    from advnets.cli import build_parser

    if where == "after data list":  # a nested action's parser accepts it too
        assert build_parser().parse_args(["data", "list", "--debug"]).debug is True
        return
    argv = ["sample", "--run", str(tmp_path / "nowhere")]
    code, _, err = cli_in_process(*argv)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    argv = ["--debug", *argv] if where == "before the command" else [*argv, "--debug"]
    code, _, err = cli_in_process(*argv)
    assert code == 2 and "Traceback" in err and "CheckpointError" in err, err
    assert err.strip().splitlines()[-1].startswith("advnets: error: --run") and "nowhere" in err
    assert build_parser().parse_args(argv[1:] if where == "before the command" else argv[:-1]).debug is False


def test_debug_on_a_refused_file_shows_the_traceback_and_exits_2(monkeypatch):
    from advnets.cli import data

    def refused(args):
        raise PermissionError(13, "Permission denied", "/data/mnist")

    monkeypatch.setattr(data, "cmd_data_list", refused)
    code, _, err = cli_in_process("data", "list")
    assert code == 2 and err == "advnets: error: /data/mnist: Permission denied\n"
    code, _, err = cli_in_process("--debug", "data", "list")
    assert code == 2 and "Traceback" in err and err.endswith("advnets: error: /data/mnist: Permission denied\n"), err

    def no_file(args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(data, "cmd_data_list", no_file)  # no file to name: Python's own report, as before
    with pytest.raises(OSError, match="Input/output"):
        cli_in_process("--debug", "data", "list")


@pytest.mark.parametrize("holds", ["a checkpoint", "only config.json"])
def test_existing_run_is_not_overwritten_without_resume(tmp_path, holds):
    """Also a run killed before its first checkpoint (config.json, no checkpoint): a second run there
    would append to its log."""
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    if holds == "a checkpoint":
        (tmp_path / "run" / "checkpoints" / "latest").write_text("step-00000010.pt\n")
    else:
        (tmp_path / "run" / "config.json").write_text("{}\n")
    for dry_run in ([], ["--dry-run"]):  # the dry run says so too, instead of printing a config that cannot start
        code, out, err = cli_in_process("train", "--data", "embedded-digits", "--out", tmp_path / "run", *dry_run)
        assert code == 2 and "already holds a run; add --resume" in err
        assert out == ""


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One short run shared by the sampling tests (training is the slow part)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    out = run("train", "--data", "embedded-digits", "--epochs", "1", "--out", run_dir, "--no-progress")
    assert out.returncode == 0, out.stderr
    return run_dir


def test_a_runs_checkpoints_folder_and_latest_pointer_mean_its_latest_checkpoint(tmp_path, trained_run):
    """What a user tab-completes to (RUN/checkpoints, RUN/checkpoints/latest) works like RUN; any other file
    is named as not a checkpoint, never with torch's advice to load it unsafely."""
    from advnets.checkpoint import latest_checkpoint, resolve_checkpoint
    from advnets.errors import CheckpointError

    want = latest_checkpoint(trained_run)
    ckpts = trained_run / "checkpoints"
    assert resolve_checkpoint(ckpts) == resolve_checkpoint(ckpts / "latest") == resolve_checkpoint(trained_run) == want
    out = run("sample", "--run", ckpts / "latest", "--out", tmp_path / "g.png")
    assert out.returncode == 0 and (tmp_path / "g.png").is_file(), out.stderr
    from advnets.checkpoint import load_checkpoint

    for path in (trained_run / "config.json", trained_run / "metrics.jsonl", want.with_suffix(".sha256")):
        with pytest.raises(CheckpointError, match="is not an advnets checkpoint") as e:
            load_checkpoint(path)
        assert "weights_only" not in str(e.value)
    out = run("sample", "--run", want.with_suffix(".sha256"), "--out", tmp_path / "h.png")
    assert out.returncode == 2 and "is not an advnets checkpoint (expected a step-*.pt" in out.stderr, out.stderr


def test_a_checkpoint_name_on_a_file_of_other_bytes_is_refused_for_its_content(tmp_path):
    """A file named like a checkpoint but holding other bytes, or a torch.save of a non-dict, is refused by
    what it holds (not by its name, which is right)."""
    from advnets.checkpoint import load_checkpoint
    from advnets.errors import CheckpointError

    garbage = tmp_path / "step-00001000.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"not a file that torch.save wrote"):
        load_checkpoint(garbage)
    torch.save([1, 2, 3], garbage)
    with pytest.raises(CheckpointError, match=r"it holds a list, not a dict"):
        load_checkpoint(garbage)


def test_dry_run_of_a_resume_loads_the_checkpoint_and_writes_nothing(trained_run):
    before = sorted(p.name for p in trained_run.rglob("*"))
    code, _, err = cli_in_process("train", "--out", trained_run, "--resume", "--epochs", "2", "--dry-run")
    assert code == 0, err
    assert f"would resume {trained_run} at step 14 of 28; nothing written" in err
    code, _, err = cli_in_process("train", "--out", trained_run, "--resume", "--data", "embedded", "--dry-run")
    assert code == 2 and "(embedded-mnist) has (1, 28, 28); resume on the run's own data" in err  # 28x28, not 8x8
    assert sorted(p.name for p in trained_run.rglob("*")) == before


def test_resuming_a_finished_run_says_so_and_writes_nothing(trained_run):
    before = sorted(p.name for p in trained_run.rglob("*"))
    code, _, err = cli_in_process("train", "--out", trained_run, "--resume", "--no-progress")  # a requeued command
    assert code == 0
    assert f"{trained_run} is complete: step 14 of 14 (1 epochs); nothing to train" in err
    assert sorted(p.name for p in trained_run.rglob("*")) == before  # no new TensorBoard file, no config change
    code, _, err = cli_in_process("train", "--out", trained_run, "--resume", "--epochs", "1", "--dry-run")
    assert code == 0 and "is complete" in err


def test_resuming_with_fewer_epochs_than_trained_is_refused(tmp_path, digits):
    from advnets.train import Trainer
    from conftest import cli_in_process, tiny_config

    Trainer(tiny_config(epochs=2), digits).fit(tmp_path / "run", progress=False, tensorboard=False)
    code, _, err = cli_in_process("train", "--out", tmp_path / "run", "--resume", "--epochs", "1")
    assert code == 2 and "--epochs 1: the run in" in err and "has already trained 2 epochs" in err


def test_lr_decay_sets_the_rate_of_every_step_and_can_change_on_resume(tmp_path):
    """--lr-decay D: step t uses the rate LR / D**t (the reference's schedule, made faster or slower). The
    rate is a function of the step alone, so a resume with another D follows the new schedule from step 0's
    rate, as --lr's help says."""
    run_dir = tmp_path / "run"
    common = ("--data", "embedded-digits", "--out", run_dir, "--no-progress", "--log-every", "1")
    code, _, err = cli_in_process("train", *common, "--epochs", "1", "--lr", "0.1", "--lr-decay", "1.05")
    assert code == 0, err
    code, _, err = cli_in_process("train", *common, "--resume", "--epochs", "2", "--lr-decay", "1")
    assert code == 0, err
    assert "optim.lr_decay 1.05 -> 1" in err  # the resume says what it changes
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    lr = {row["step"]: row["lr"] for row in rows if "lr" in row}
    assert sorted(lr) == list(range(1, 29))  # 14 steps per epoch, a row after each
    for step in range(1, 15):  # the row after step s shows the rate step s used: 0.1 / 1.05**(s - 1)
        assert lr[step] == pytest.approx(0.1 / 1.05 ** (step - 1), rel=1e-12)
    for step in range(15, 29):  # decay 1 from step 14 on: 0.1 / 1**t, not the 0.1 / 1.05**13 the first leg reached
        assert lr[step] == pytest.approx(0.1, rel=1e-12)


def test_sample_refuses_a_non_png_output(tmp_path, trained_run):
    out = run("sample", "--run", trained_run, "--out", tmp_path / "grid.jpg")
    assert out.returncode == 2 and ".png" in out.stderr
    assert not (tmp_path / "grid.jpg").exists()


def test_sample_nearest_writes_figure2_and_a_memorisation_check(tmp_path, trained_run):
    png = tmp_path / "fig2.png"
    out = run("sample", "--run", trained_run, "--nearest", "-n", "9", "--seed", "5", "--out", png)
    assert out.returncode == 0, out.stderr
    report = json.loads(png.with_suffix(".json").read_text())
    assert report["seed"] == 5 and len(report["rightmost_column"]["train_index"]) == 3  # 3 rows of 3 + 1
    mem = report["memorization"]
    assert mem["samples"]["n"] == 179 and mem["heldout"]["n"] == 179  # the whole test split
    assert mem["ratio"] > 0 and "ratio of medians" in out.stdout
    assert "(--check-size 1000 capped at 179: the test split holds 179 images)" in out.stdout  # the default
    small = ("--nearest", "--check-size", 50, "--out", tmp_path / "small.png")
    code, text, err = cli_in_process("sample", "--run", trained_run, *small)
    assert code == 0 and "  50 held-out images:" in text and "capped" not in text, err
    assert Image.open(png).size == (2 * (4 * 10 + 2), 2 * (3 * 10 + 2))  # 4 columns x 3 rows of 8x8


def test_sample_interpolate_writes_rows_of_paths(tmp_path, trained_run):
    png = tmp_path / "fig3.png"
    out = run("sample", "--run", trained_run, "--interpolate", "--rows", "2", "--steps", "5", "--out", png)
    assert out.returncode == 0, out.stderr
    assert Image.open(png).size == (2 * (5 * 10 + 2), 2 * (2 * 10 + 2))
    bad = run("sample", "--run", trained_run, "--interpolate", "--steps", "1")
    assert bad.returncode == 2 and "--steps" in bad.stderr


def test_corrupt_checkpoint_is_a_clear_error_naming_the_file(tmp_path, trained_run):
    run_dir = tmp_path / "copy"
    shutil.copytree(trained_run, run_dir)
    ckpt = run_dir / "checkpoints" / "step-00000014.pt"
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    out = run("sample", "--run", run_dir)
    assert out.returncode == 2 and "step-00000014.pt" in out.stderr and "corrupt" in out.stderr


def _write_idx(path, array):
    import gzip
    import struct

    import numpy as np

    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.mark.slow  # trains through a subprocess (~12 s); the IDX reader and --valid-size are tested in-process
def test_train_on_a_directory_of_idx_files_with_a_custom_validation_size(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    data = tmp_path / "mnist"
    data.mkdir()
    _write_idx(data / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (260, 28, 28)))
    _write_idx(data / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 260))
    _write_idx(data / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 28, 28)))
    _write_idx(data / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 40))
    run_dir = tmp_path / "run"
    out = run(
        "train",
        "--data",
        data,
        "--valid-size",
        "60",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--out",
        run_dir,
        "--no-progress",
    )
    assert out.returncode == 0, out.stderr
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["splits"] == {"train": 200, "valid": 60, "test": 40}
    assert cfg["image_shape"] == [1, 28, 28]
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-00000004.pt"
    (data / "t10k-labels-idx1-ubyte.gz").unlink()
    for dry_run in (["--dry-run"], []):  # a dry run reads the data too, and stops where the real run would
        bad = run("train", "--data", data, "--out", tmp_path / "run2", *dry_run)
        assert bad.returncode == 2 and "t10k-labels" in bad.stderr


def test_named_datasets_come_from_the_data_directory(tmp_path):
    import os

    import numpy as np

    rng = np.random.default_rng(1)
    mnist = tmp_path / "data" / "mnist"
    mnist.mkdir(parents=True)
    for name, shape in (
        ("train-images-idx3-ubyte.gz", (230, 28, 28)),
        ("train-labels-idx1-ubyte.gz", (230,)),
        ("t10k-images-idx3-ubyte.gz", (20, 28, 28)),
        ("t10k-labels-idx1-ubyte.gz", (20,)),
    ):
        _write_idx(mnist / name, rng.integers(0, 10 if len(shape) == 1 else 256, shape))
    env = {**os.environ, "ADVNETS_DATA": str(tmp_path / "data")}
    listing = subprocess.run([sys.executable, "-m", "advnets", "data", "list"], capture_output=True, text=True, env=env)
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if line.startswith("mnist "))
    assert " yes " in row
    assert f"mnist\n  where    {mnist}\n" in listing.stdout
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "advnets",
            "train",
            "--data",
            "mnist",
            "--valid-size",
            "30",
            "--batch-size",
            "50",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["splits"]["train"] == 200
    missing = run("train", "--data", "cifar10", "--data-dir", tmp_path / "data")
    assert missing.returncode == 2 and "advnets data fetch cifar10" in missing.stderr
