"""Data-parallel training (advnets.distributed): real processes under torchrun, gloo on the CPU."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from advnets.checkpoint import latest_checkpoint, load_checkpoint
from advnets.distributed import stream_seed, without_launcher_options
from advnets.nets import sample_noise
from advnets.train import Trainer

HELPER = Path(__file__).with_name("distributed_helper.py")
# The 8x8 digits with the mnist preset: 1439 images, so 7 steps of 2 x 100 (or 14 of 100) per epoch.
DIGITS = ["--data", "embedded-digits", "--no-progress"]
# One thread per process (torchrun's own default for several processes): two processes on two cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun(*args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *map(str, args)]


def _advnets(*args) -> list[str]:
    return [sys.executable, "-m", "advnets", *map(str, args)]


def _run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def _final(run_dir: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run_dir))


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the workers torchrun started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _rank_of(pid: int) -> int:
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return int(next(v for v in env if v.startswith(b"RANK="))[5:])


def _workers(launcher: subprocess.Popen, n: int = 2) -> dict[int, int]:
    """rank -> pid of the worker processes under an `advnets train --nproc` launcher."""
    deadline = time.monotonic() + 120
    while True:
        workers = {}
        for pid in _children(launcher.pid):
            try:
                workers[_rank_of(pid)] = pid
            except (OSError, StopIteration):  # not a worker, or not yet exec'd
                pass
        if len(workers) == n:
            return workers
        assert launcher.poll() is None, launcher.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _wait_until(ready, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _listening_addresses(pids: list[int]) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* shows them) of the TCP sockets these processes listen on."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.append(fields[1].rsplit(":", 1)[0])
    return addresses


_LOOPBACK = {
    "0100007F",  # 127.0.0.1
    "00000000000000000000000001000000",  # ::1
    "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1
}


def test_two_processes_with_batch_m_agree_with_one_process_with_batch_2m(tmp_path, digits):
    """The gradient average is right (both update rules, after 3 steps); each network's
    gradients are all-reduced once per update of that network and never in the other's
    (D's are not reduced in G's step); a save/load on 2 processes resumes exactly; the
    ranks stop together on divergence and on collapse."""
    sys.path.insert(0, str(HELPER.parent))
    from distributed_helper import STEPS, M, equivalence_config

    out = tmp_path / "result.pt"
    _run(_torchrun(HELPER, "steps", out))
    result = torch.load(out, weights_only=True)

    for update, k in (("simultaneous", 1), ("alternating", 2)):
        cfg = equivalence_config(update, k, 2 * M)
        ref = Trainer(cfg, digits)
        # The two ranks' noise streams, side by side: rank 0's rows, then rank 1's.
        gens = [torch.Generator().manual_seed(stream_seed(cfg.train.seed, "noise", r)) for r in (0, 1)]
        ref.noise = lambda n, gens=gens, cfg=cfg: torch.cat(
            [sample_noise(cfg.generator, n // 2, generator=g) for g in gens]
        )
        before = {"generator": ref.g.state_dict(), "discriminator": ref.d.state_dict()}
        before = {net: {n: p.clone() for n, p in sd.items()} for net, sd in before.items()}
        for _ in range(STEPS):
            ref.train_step()
        for net, module in (("generator", ref.g), ("discriminator", ref.d)):
            for name, value in module.state_dict().items():
                change = (value - before[net][name]).abs().max()
                error = (result[update][net][name] - value).abs().max()
                # float32 sums in another order: far below the update itself (a sum instead of a
                # mean, or one rank's gradient alone, would be off by the order of the update).
                assert change > 0 and error <= 1e-3 * change, (update, net, name, float(error), float(change))
        assert result[update]["reduces"] == {"G": STEPS, "D": k * STEPS}, update

    assert set(result["resume"]) == {"none", "class", "inpaint"}  # plain, conditional (§7.1) and inpainting (§7.3) nets
    for condition, nets in result["resume"].items():
        for net in ("generator", "discriminator"):
            straight, resumed = nets["straight"][net], nets["resumed"][net]
            assert all(torch.equal(straight[n], resumed[n]) for n in straight), (condition, net)

    # A NaN loss on rank 1 alone: both ranks stop at the same step naming it (rank 0's own
    # values would only show G's gradient, reduced from rank 1's); rank 0's collapse verdict
    # stops rank 1 too.
    for rank, outcomes in enumerate(result["outcomes"]):
        kind, step, message = outcomes["diverged"]
        assert (kind, step) == ("TrainingDiverged", 4) and "G's loss became NaN or infinite at step 3" in message, rank
        kind, step, message = outcomes["collapsed"]
        assert (kind, step) == ("TrainingCollapsed", 6) and "at step 6" in message, rank


@pytest.mark.slow  # four launches
def test_a_two_process_checkpoint_resumes_on_one_and_on_two_processes_and_back(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    first = _run(_advnets("train", *DIGITS, "--nproc", 2, "--epochs", 1, "--out", a))
    assert "global batch 2 x 100 = 200" in first.stderr
    state = _final(a)
    assert (state["step"], state["epoch"], state["world_size"], len(state["rng"]["ranks"])) == (7, 1, 2, 2)
    shutil.copytree(a, b)

    # On 1 process (a plain run): steps of 100, so 14 more to the end of epoch 2.
    _run(_advnets("train", *DIGITS, "--epochs", 2, "--out", a, "--resume"))
    state = _final(a)
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (21, 2, 0)
    assert "world_size" not in state

    # On 2 processes: 7 more steps of 2 x 100.
    _run(_advnets("train", *DIGITS, "--nproc", 2, "--epochs", 2, "--out", b, "--resume"))
    state = _final(b)
    assert (state["step"], state["epoch"], state["world_size"]) == (14, 2, 2)

    # And back: the single-process checkpoint of a, continued on 2 processes.
    again = _run(_advnets("train", *DIGITS, "--nproc", 2, "--epochs", 3, "--out", a, "--resume"))
    assert "resuming" in again.stderr
    state = _final(a)
    assert (state["step"], state["epoch"], state["world_size"]) == (28, 3, 2)
    resumes = json.loads((a / "config.json").read_text())["resumes"]
    assert [r["step"] for r in resumes] == [7, 21]


@pytest.mark.slow  # two groups started
def test_a_killed_rank_makes_torchrun_restart_the_group_which_resumes_and_completes(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", *DIGITS, "--nproc", 2, "--max-restarts", 1, "--epochs", 8, "--checkpoint-every", 2]
    launcher = subprocess.Popen(
        _advnets(*args, "--out", run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV
    )
    workers = _workers(launcher)
    _wait_until((run_dir / "checkpoints" / "latest").exists, launcher)
    os.kill(workers[1], signal.SIGKILL)
    _, err = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, err[-4000:]
    assert "resuming" in err  # the restarted group continued from the last checkpoint
    state = _final(run_dir)
    assert (state["step"], state["epoch"]) == (8 * 7, 8)
    assert json.loads((run_dir / "config.json").read_text())["resumes"][0]["step"] > 0


@pytest.mark.slow  # two real torchrun processes stopped (~15 s); the one-process signal tests run by default
def test_sigterm_to_the_launcher_stops_every_rank_with_one_complete_checkpoint_and_all_listen_on_loopback(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", *DIGITS, "--nproc", 2, "--epochs", 500, "--log-every", 1, "--checkpoint-every", 100000]
    launcher = subprocess.Popen(
        _advnets(*args, "--out", run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV
    )
    workers = _workers(launcher)
    metrics = run_dir / "metrics.jsonl"
    _wait_until(lambda: metrics.exists() and metrics.stat().st_size > 0, launcher)

    # c10d has no authentication: the launcher's store and the workers' gloo sockets listen on loopback only.
    addresses = _listening_addresses([launcher.pid, *workers.values()])
    assert addresses and set(addresses) <= _LOOPBACK, addresses

    launcher.send_signal(signal.SIGTERM)
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 143, err[-4000:]
    assert all(_gone(pid) for pid in workers.values())
    assert err.count("stopped by SIGTERM") == 1 and "Traceback" not in err  # rank 0 reports, once
    assert "advnets train --nproc 2 --out" in err
    saved = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len([n for n in saved if n.endswith(".pt")]) == 1 and not [n for n in saved if n.endswith(".tmp")]
    state = _final(run_dir)
    assert 0 < state["step"] < 500 * 7
    assert all(torch.isfinite(v).all() for v in state["generator"].values())


@pytest.mark.slow  # two real torchrun processes (~15 s); the other two-process tests run by default
def test_only_rank_0_writes_files(tmp_path):
    """Plain `torchrun ... advnets train` (here through a helper that records every file opened
    for writing): rank 0 writes the metrics, TensorBoard events, grids, checkpoints; rank 1 nothing."""
    run_dir, spy = tmp_path / "run", tmp_path / "spy"
    spy.mkdir()
    every = ["--log-every", 2, "--sample-every", 3, "--checkpoint-every", 3, "--monitor-every", 3]
    _run(_torchrun(HELPER, "spy", spy, "train", *DIGITS, "--epochs", 1, *every, "--out", run_dir))
    rank0 = json.loads((spy / "rank-0.json").read_text())
    rank1 = json.loads((spy / "rank-1.json").read_text())
    inside = [p for p in rank1 if Path(p).is_relative_to(run_dir)]
    assert inside == [], inside
    names = {Path(p).name for p in rank0}
    assert "metrics.jsonl" in names
    # Atomic writes go through a temporary file beside the target: .NAME.XXXXXXXX.tmp
    for target in ("config.json", "latest", "step-00000006.pt", "step-00000006.png"):
        assert any(n.startswith(f".{target}.") for n in names), target
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert _final(run_dir)["step"] == 7


def test_a_plain_run_is_unaffected_and_makes_no_collective_call(tmp_path, monkeypatch):
    from advnets.cli import main

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RESTART_COUNT"):
        monkeypatch.delenv(name, raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("a collective in a single-process run")

    for name in ("init_process_group", "new_group", "all_reduce", "barrier", "broadcast_object_list", "gather_object"):
        monkeypatch.setattr(dist, name, forbidden)
    assert main(["train", *DIGITS, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    state = _final(tmp_path / "run")
    assert state["step"] == 14 and "world_size" not in state and "ranks" not in state["rng"]


def test_one_process_under_torch_distributed_trains_exactly_like_a_plain_run(digits, tmp_path, monkeypatch):
    """A group of one (gloo, in this process): rank 0 keeps the single-process streams, DDP changes
    nothing numerically, and its checkpoints load into a plain Trainer (and back) exactly."""
    from advnets.distributed import Group, rank_trainer
    from conftest import tiny_config

    cfg = tiny_config(update="alternating", k=2, epochs=2)
    plain = Trainer(cfg, digits)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        group = Group(0, 1, torch.device("cpu"), "gloo", dist.group.WORLD)
        ddp = rank_trainer(cfg, digits, group)
        for _ in range(5):
            plain.train_step()
            ddp.train_step()
        for net in ("g", "d"):
            pairs = zip(getattr(plain, net).parameters(), getattr(ddp, net).parameters(), strict=True)
            assert all(torch.equal(a, b) for a, b in pairs)
        path = ddp.save(tmp_path)
        again = Trainer(cfg, digits)
        again.load_state_dict(load_checkpoint(path))
        back = rank_trainer(cfg, digits, group)
        back.load_state_dict(copy.deepcopy(plain.state_dict()))  # a copy: it would share the momentum buffers
        for tr in (plain, again, back):
            tr.train_step()
        for tr in (again, back):
            assert all(torch.equal(a, b) for a, b in zip(plain.g.parameters(), tr.g.parameters(), strict=True))
            assert (tr.step, tr.epoch, tr.order.batch_in_epoch, tr.total_steps) == (6, 0, 12, plain.total_steps)
    finally:
        dist.destroy_process_group()


def test_a_distributed_run_needs_out(monkeypatch, capsys):
    from advnets.cli import main

    assert main(["train", *DIGITS, "--nproc", "2"]) == 2  # checked before any process starts
    assert "--nproc needs --out" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(["train", *DIGITS]) == 2  # started by torchrun without --out
    assert "needs --out" in capsys.readouterr().err


def test_the_launcher_passes_on_everything_but_its_own_options():
    argv = ["--debug", "train", "--nproc", "2", "--epochs", "3", "--max-restarts=1", "--np", "4", "--no-progress"]
    assert without_launcher_options(argv) == ["--debug", "train", "--epochs", "3", "--no-progress"]


@pytest.mark.parametrize("rank", [1, 2])
def test_other_ranks_draw_their_own_streams(rank):
    assert stream_seed(0, "noise", 0) == 2 and stream_seed(0, "dropout", 0) == 4  # rank 0: the plain run's
    seeds = {stream_seed(0, s, r, step) for s in ("noise", "dropout") for r in (0, rank) for step in (0, 7)}
    assert len(seeds) == 8


def test_the_means_averaged_over_ranks_are_every_scalar_train_step_logs(digits):
    from advnets.distributed import LOGGED
    from conftest import tiny_config

    assert set(Trainer(tiny_config(), digits).train_step()) == set(LOGGED)


@pytest.mark.slow  # one two-process launch (~20 s)
def test_a_two_process_inpainting_run_with_the_collapse_monitor_on_trains_to_the_end(tmp_path):
    """Inpainting has no collapse statistics (its completions share their visible pixels): every rank must agree
    there is no monitor. Rank 0 used to have none while the others stood in for one and waited for its verdict,
    so the ranks' collectives crossed and the run crashed at its first check."""
    out = _run(
        _advnets("train", *DIGITS, "--inpaint", "--nproc", 2, "--epochs", 2, "--monitor-every", 2, "--out", tmp_path)
    )
    assert "done: step 14" in out.stderr
    assert _final(tmp_path)["step"] == 14
