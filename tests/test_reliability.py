"""Training that loses no work: signals, the divergence guard, safe loading."""

import io
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from advnets.checkpoint import latest_checkpoint, load_checkpoint
from advnets.errors import CheckpointError
from advnets.train import Trainer, TrainingDiverged
from conftest import tiny_config


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_finishes_the_step_checkpoints_and_exits(tmp_path, sig, code):
    run_dir = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "advnets",
        "train",
        "--data",
        "embedded-digits",
        "--epochs",
        "500",
        "--out",
        str(run_dir),
        "--no-progress",
        "--log-every",
        "1",
        "--checkpoint-every",
        "100000",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and metrics.stat().st_size > 0):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "--resume" in err and "Traceback" not in err
    state = load_checkpoint(latest_checkpoint(run_dir))
    assert 0 < state["step"] < 500 * 14
    assert all(torch.isfinite(v).all() for v in state["generator"].values())


def test_nonfinite_loss_stops_training_naming_step_and_network_without_saving_bad_weights(tmp_path, digits):
    tr = Trainer(tiny_config(epochs=2, checkpoint_every=5, log_every=1000), digits)
    tr.total_steps = 10
    tr.fit(run_dir=tmp_path, progress=False, tensorboard=False)
    good = latest_checkpoint(tmp_path)
    assert good.name == "step-00000010.pt"
    with torch.no_grad():
        tr.d.output.bias.fill_(float("nan"))  # D now outputs NaN logits
    tr.total_steps = 20
    with pytest.raises(TrainingDiverged, match=r"D's loss .* at step 11"):
        tr.fit(run_dir=tmp_path, progress=False, tensorboard=False)
    assert latest_checkpoint(tmp_path) == good  # the step-15 checkpoint was never written
    assert not (tmp_path / "checkpoints" / "step-00000015.pt").exists()
    state = load_checkpoint(good)
    assert all(torch.isfinite(v).all() for v in state["discriminator"].values())


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path):
    sentinel = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    path = tmp_path / "step-00000001.pt"
    buf = io.BytesIO()
    torch.save({"generator": Payload(), "discriminator": {}, "config": {}, "step": 1}, buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="step-00000001.pt"):
        load_checkpoint(path)
    assert not sentinel.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_checkpoint_gives_a_clear_error(tmp_path, digits, damage):
    tr = Trainer(tiny_config(), digits)
    path = tr.save(tmp_path)
    data = path.read_bytes()
    path.with_suffix(".sha256").unlink()  # without the digest, the loader itself must cope
    path.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=path.name):
        load_checkpoint(path)


def test_resume_refuses_a_different_architecture(tmp_path, digits):
    from advnets.config import override

    tr = Trainer(tiny_config(), digits)
    state = tr.state_dict()
    cfg = tiny_config()
    other = Trainer(override(cfg, generator=override(cfg.generator, noise_dim=17)), digits)
    with pytest.raises(CheckpointError, match="noise_dim"):
        other.load_state_dict(state)
