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
from conftest import UpdatesThen, tiny_config


def _start_training(run_dir, *extra, epochs=500):
    """A CLI training process on the 8x8 digits that runs far longer than any test waits."""
    args = [
        sys.executable,
        "-m",
        "advnets",
        "train",
        "--data",
        "embedded-digits",
        "--epochs",
        str(epochs),
        "--out",
        str(run_dir),
        "--no-progress",
        *map(str, extra),
    ]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_until(ready, proc, poll=0.05):
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(poll)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_finishes_the_step_checkpoints_and_exits(tmp_path, sig, code):
    run_dir = tmp_path / "run"
    proc = _start_training(run_dir, "--log-every", 1, "--checkpoint-every", 100000)
    metrics = run_dir / "metrics.jsonl"
    _wait_until(lambda: metrics.exists() and metrics.stat().st_size > 0, proc)
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


def test_a_bit_flip_inside_the_weights_is_caught_by_the_sha256(tmp_path, digits):
    """A flipped bit in a tensor's payload leaves a file torch loads without
    complaint: only the stored SHA-256 tells that the weights are not the saved ones."""
    tr = Trainer(tiny_config(), digits)
    path = tr.save(tmp_path)
    data = bytearray(path.read_bytes())
    payload = tr.g.output.weight.detach().numpy().tobytes()
    at = bytes(data).find(payload[:64])
    assert at > 0
    data[at + 10] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{path.name} is corrupt .*no earlier checkpoint in its folder"):
        load_checkpoint(path)
    later = path.rename(path.with_name("step-00000009.pt"))  # with an earlier one, the error names it and says how
    path.with_suffix(".sha256").rename(later.with_suffix(".sha256"))
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"the newest earlier one is step-00000000\.pt: give it as --run, or"):
        load_checkpoint(later)
    path = later
    path.with_suffix(".sha256").unlink()
    damaged = load_checkpoint(path)  # without the digest the change goes unnoticed
    assert not torch.equal(damaged["generator"]["output.weight"], tr.g.output.weight.detach())


def test_resume_refuses_a_different_architecture(tmp_path, digits):
    from advnets.config import override

    tr = Trainer(tiny_config(), digits)
    state = tr.state_dict()
    cfg = tiny_config()
    other = Trainer(override(cfg, generator=override(cfg.generator, noise_dim=17)), digits)
    with pytest.raises(CheckpointError, match="noise_dim"):
        other.load_state_dict(state)


@pytest.mark.parametrize(("err", "text"), [(28, "No space left"), (13, "Permission denied")])
def test_a_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temporary_files(
    tmp_path, digits, monkeypatch, err, text
):
    import advnets.io

    tr = Trainer(tiny_config(), digits)
    good = tr.save(tmp_path)
    tr.train_step()
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):  # the disk fills (or turns read-only) while the new checkpoint is written
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(err, os.strerror(err))
        return real_replace(src, dst)

    monkeypatch.setattr(advnets.io.os, "replace", failing_replace)  # the atomic writes' rename
    with pytest.raises(CheckpointError, match=text) as info:
        tr.save(tmp_path)
    assert "previous checkpoint is intact" in str(info.value)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == good
    assert load_checkpoint(good)["step"] == 0
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == sorted([good.name, good.with_suffix(".sha256").name, "latest"])  # no orphan, no .tmp


def test_skip_nonfinite_skips_bad_updates_and_stops_after_k_in_a_row(digits):
    from advnets.config import override

    cfg = tiny_config(epochs=2, update="simultaneous")
    cfg = override(cfg, train=override(cfg.train, skip_nonfinite=2))
    tr = Trainer(cfg, digits)
    real_loss, calls = tr.g_loss_fn, []

    def every_third_nan(logits):
        calls.append(1)
        loss = real_loss(logits)
        return loss * float("nan") if len(calls) % 3 == 0 else loss

    tr.g_loss_fn = every_third_nan
    tr.total_steps = 30
    tr.fit(progress=False)
    assert tr.skip.skipped == 10 and tr.g_updates == 20 and tr.d_updates == 20
    assert all(torch.isfinite(p).all() for p in [*tr.g.parameters(), *tr.d.parameters()])
    tr.g_loss_fn = lambda logits: real_loss(logits) * float("nan")
    before = [p.detach().clone() for p in tr.g.parameters()]
    tr.total_steps = 60
    with pytest.raises(TrainingDiverged, match="2 consecutive updates"):
        tr.fit(progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, tr.g.parameters(), strict=True))


@pytest.mark.slow  # three processes (~45 s); test_train's in-process resume twin runs by default
def test_resume_in_a_new_process_ends_bit_identical_to_an_uninterrupted_run(tmp_path):
    common = [
        "--data",
        "embedded-digits",
        "--update",
        "alternating",
        "--k",
        "2",
        "--no-progress",
        "--checkpoint-every",
        "100000",
    ]

    def train(*args):
        out = subprocess.run(
            [sys.executable, "-m", "advnets", "train", *common, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr

    train("--epochs", "2", "--out", tmp_path / "full")
    train("--epochs", "1", "--out", tmp_path / "half")  # 1 epoch = 14 D minibatches = 7 steps (k = 2)
    train("--epochs", "2", "--out", tmp_path / "half", "--resume")
    a = load_checkpoint(latest_checkpoint(tmp_path / "full"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "half"))
    assert a["step"] == b["step"] == 14
    for key in ("generator", "discriminator"):
        assert all(torch.equal(a[key][n], b[key][n]) for n in a[key])
    for key in ("opt_g", "opt_d"):
        sa, sb = a[key]["state"], b[key]["state"]
        assert all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)
    for key in ("data", "noise", "dropout"):
        assert torch.equal(a["rng"][key], b["rng"][key])


@pytest.mark.slow  # repeated kills of real processes (~40 s)
def test_sigkill_at_random_moments_never_leaves_a_checkpoint_that_resume_would_pick_broken(tmp_path):
    import random

    run_dir = tmp_path / "run"
    rnd = random.Random(0)
    latest = run_dir / "checkpoints" / "latest"
    for _ in range(6):
        resume = ["--resume"] if latest_checkpoint(run_dir) else []
        proc = _start_training(run_dir, "--checkpoint-every", 1, "--log-every", 1, *resume, epochs=400)
        _wait_until(latest.exists, proc)  # until it is writing checkpoints
        time.sleep(rnd.uniform(0.0, 1.5))  # then kill it anywhere, mid-write included
        proc.kill()
        proc.wait()
        state = load_checkpoint(latest_checkpoint(run_dir))  # loads cleanly, digest verified
        assert all(torch.isfinite(v).all() for v in state["generator"].values())
    # --epochs 2 is below the step reached: resume picks the checkpoint and has nothing left to do
    resumed = _start_training(run_dir, "--checkpoint-every", 1, "--resume", epochs=2)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def _checkpoint_bytes():
    from advnets.data import load_dataset
    from conftest import tiny_config as cfg

    buf = io.BytesIO()
    torch.save(Trainer(cfg(), load_dataset("embedded-digits")).state_dict(), buf)
    return buf.getvalue()


_CKPT = None


def test_checkpoint_loader_under_fuzzing_returns_a_checkpoint_or_its_own_clear_error(tmp_path):
    """Random mutations of a real checkpoint (no digest beside it, so the
    unpickler itself is exercised): a state dict or CheckpointError, never
    another exception type."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    global _CKPT
    _CKPT = _CKPT or _checkpoint_bytes()
    path = tmp_path / "step-00000001.pt"

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        st.lists(st.tuples(st.integers(0, len(_CKPT) - 1), st.integers(0, 255)), min_size=1, max_size=8),
        st.integers(0, len(_CKPT)),
    )
    def check(flips, cut):
        data = bytearray(_CKPT[:cut] if cut > 100 else _CKPT)
        for pos, value in flips:
            if pos < len(data):
                data[pos] = value
        path.write_bytes(bytes(data))
        try:
            state = load_checkpoint(path)
        except CheckpointError as e:
            assert path.name in str(e)
        else:
            assert {"generator", "discriminator", "config", "step"} <= set(state)

    check()


def test_a_second_sigint_aborts_at_once_and_the_last_checkpoint_stays_whole(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start_training(run_dir, "--checkpoint-every", 1)
    _wait_until((run_dir / "checkpoints" / "latest").exists, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    state = load_checkpoint(latest_checkpoint(run_dir))
    assert state["step"] >= 1
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_a_second_sigint_inside_a_step_aborts_that_step_and_keeps_the_last_checkpoint(tmp_path, digits):
    """Deterministic twin of the test above (two signals sent back to back may
    reach a process as one): the first SIGINT asks for a graceful stop, the
    second, in the same step, aborts at once with KeyboardInterrupt."""
    tr = Trainer(tiny_config(update="simultaneous", checkpoint_every=2), digits)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in a background job

    def two_sigints(kind):
        if tr.step == 4:  # the fifth step
            os.kill(os.getpid(), signal.SIGINT)  # graceful: finish the step, checkpoint, stop
            os.kill(os.getpid(), signal.SIGINT)  # abort now

    tr.updates = UpdatesThen(tr.updates, two_sigints)
    with pytest.raises(KeyboardInterrupt):
        tr.fit(tmp_path, progress=False, tensorboard=False)
    assert tr.step == 4  # the fifth step never completed
    assert latest_checkpoint(tmp_path).name == "step-00000004.pt"
    assert load_checkpoint(latest_checkpoint(tmp_path))["step"] == 4
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))
    assert signal.getsignal(signal.SIGINT) == before  # handlers restored


def test_a_second_sigint_while_a_checkpoint_is_written_aborts_once_it_is_whole(tmp_path, digits, monkeypatch):
    """Ctrl-C twice, the second while the stop's checkpoint is being written: the abort waits until the
    checkpoint, its digest and `latest` are all written (an abort between them used to leave `latest` on
    the previous checkpoint, losing the steps since)."""
    import advnets.checkpoint as checkpoint

    tr = Trainer(tiny_config(update="simultaneous", checkpoint_every=2), digits)
    real_write = checkpoint.atomic_write_bytes

    def sigint(kind):
        if tr.step == 5:  # the sixth step
            os.kill(os.getpid(), signal.SIGINT)  # graceful: checkpoint at step 6, then stop

    def write_with_a_sigint_after_the_checkpoint_file(path, data):
        real_write(path, data)
        if path.name == "step-00000006.pt":
            os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, before the digest and `latest`

    tr.updates = UpdatesThen(tr.updates, sigint)
    monkeypatch.setattr(checkpoint, "atomic_write_bytes", write_with_a_sigint_after_the_checkpoint_file)
    with pytest.raises(KeyboardInterrupt):
        tr.fit(tmp_path, progress=False, tensorboard=False)
    assert latest_checkpoint(tmp_path).name == "step-00000006.pt"
    assert load_checkpoint(latest_checkpoint(tmp_path))["step"] == 6  # its digest was written and matches


def test_resume_refuses_data_of_another_image_shape(digits):
    from advnets.data import load_dataset

    state = Trainer(tiny_config(), digits).state_dict()  # 8 x 8 digits
    other = Trainer(tiny_config(), load_dataset("embedded"))  # 28 x 28 digits, same architecture config
    with pytest.raises(CheckpointError, match=r"\(1, 8, 8\) images, this dataset \(embedded-mnist\) has \(1, 28, 28\)"):
        other.load_state_dict(state)


def test_nonfinite_gradient_with_a_finite_loss_stops_training_naming_the_network(tmp_path, digits):
    tr = Trainer(tiny_config(epochs=2, checkpoint_every=5, log_every=1000), digits)
    tr.total_steps = 10
    tr.fit(run_dir=tmp_path, progress=False, tensorboard=False)
    good = latest_checkpoint(tmp_path)
    # G's loss stays finite; only the gradient reaching G's output layer is poisoned.
    tr.g.output.weight.register_hook(lambda grad: grad * float("inf"))
    tr.total_steps = 20
    with pytest.raises(TrainingDiverged, match=r"G's gradient became NaN or infinite at step 11"):
        tr.fit(run_dir=tmp_path, progress=False, tensorboard=False)
    assert latest_checkpoint(tmp_path) == good


@pytest.mark.slow  # two processes (~30 s)
def test_a_stop_inside_the_k_step_inner_loop_resumes_bit_identically_in_a_new_process(tmp_path):
    """SIGTERM during iteration 3's first of k = 2 D updates, in the middle of an
    epoch: the checkpoint holds the half-done iteration, and a new process
    continues it to the same end state as an uninterrupted run."""
    from advnets.data import load_dataset
    from advnets.presets import train_config_from_options
    from advnets.train import TrainingInterrupted

    common = ["--data", "embedded-digits", "--update", "alternating", "--k", "2", "--epochs", "2", "--no-progress"]

    def train(*args):
        out = subprocess.run(
            [sys.executable, "-m", "advnets", "train", *common, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr

    cfg = train_config_from_options(
        {"data.source": "embedded-digits", "train.update": "alternating", "train.k": 2, "train.epochs": 2}
    )
    tr = Trainer(cfg, load_dataset(cfg.data))
    calls = []

    def sigterm_after_fifth_d_update(kind):
        if kind == "d":
            calls.append(kind)
            if len(calls) == 5:  # iteration 3, first D update; minibatch 5 of 14 in epoch 0
                os.kill(os.getpid(), signal.SIGTERM)

    tr.updates = UpdatesThen(tr.updates, sigterm_after_fifth_d_update)
    with pytest.raises(TrainingInterrupted, match=r"after 1 of 2 D steps"):
        tr.fit(tmp_path / "half", progress=False, tensorboard=False)
    state = load_checkpoint(latest_checkpoint(tmp_path / "half"))
    assert (state["step"], state["d_steps_done"], state["batch_in_epoch"]) == (2, 1, 5)

    train("--out", tmp_path / "half", "--resume")
    train("--out", tmp_path / "full")
    a = load_checkpoint(latest_checkpoint(tmp_path / "full"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "half"))
    assert a["step"] == b["step"] == 14 and a["d_updates"] == b["d_updates"] == 28
    for key in ("generator", "discriminator"):
        assert all(torch.equal(a[key][n], b[key][n]) for n in a[key])
    for key in ("opt_g", "opt_d"):
        sa, sb = a[key]["state"], b[key]["state"]
        assert all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)
        assert a[key]["param_groups"][0]["lr"] == b[key]["param_groups"][0]["lr"]
    for key in ("data", "noise", "dropout"):
        assert torch.equal(a["rng"][key], b["rng"][key])
