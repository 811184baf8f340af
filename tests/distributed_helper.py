"""Run by tests/test_distributed.py in processes that torchrun starts (not a test module).

``steps OUT``: a few Algorithm-1 iterations of a data-parallel Trainer (distributed.rank_trainer) on the
8x8 digits, per-rank batch M, for both update rules, in equivalence_config (so that one process with batch 2M can draw
the very same numbers); then the same with counting all-reduce hooks; then a save/load round trip
against an uninterrupted run. Rank 0 saves everything to OUT.

``spy DIR ARGS...``: ``advnets ARGS...`` with every file opened for writing recorded, per rank,
in DIR/rank-R.json (written at exit).
"""

from __future__ import annotations

import atexit
import builtins
import io
import json
import os
import sys
import tempfile
from pathlib import Path

M = 10  # per-rank batch
STEPS = 3


def equivalence_config(update: str, k: int, batch_size: int):
    """The tiny test model with D's dropout off (a 1-process run with batch 2M can then draw the
    same numbers) and D's weights drawn 40x wider than the paper's, so that G's gradient, and so
    its first updates, are far above float32's resolution of G's weights."""
    from advnets.config import override
    from conftest import tiny_config

    cfg = tiny_config(update=update, k=k, batch_size=batch_size)
    d = override(cfg.discriminator, input_include_prob=1.0, hidden_include_prob=1.0, init_range=0.2)
    return override(cfg, discriminator=d)


def fit_outcome(tr) -> tuple[str, int, str]:
    """How fit() ended on this rank: (exception type, step, message)."""
    try:
        tr.fit(progress=False)
    except Exception as e:  # noqa: BLE001 (reported to the test, whatever it is)
        return type(e).__name__, tr.step, str(e)
    return "finished", tr.step, ""


def steps(out: str) -> None:
    import torch
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    from advnets import distributed
    from advnets.checkpoint import latest_checkpoint, load_checkpoint
    from advnets.config import override
    from advnets.data import load_dataset
    from conftest import tiny_config

    group = distributed.join(distributed.torchrun_env(), "cpu")
    digits = load_dataset("embedded-digits")

    def weights(tr):
        return {"generator": tr.g.state_dict(), "discriminator": tr.d.state_dict()}

    result = {}
    for update, k in (("simultaneous", 1), ("alternating", 2)):
        cfg = equivalence_config(update, k, M)
        tr = distributed.rank_trainer(cfg, digits, group)
        for _ in range(STEPS):
            tr.train_step()
        result[update] = weights(tr)

        # The same steps again, counting the buckets each network's DDP all-reduces.
        tr = distributed.rank_trainer(cfg, digits, group)
        counts = {"G": 0, "D": 0}
        for name, net in (("G", tr.g_train), ("D", tr.d_train)):

            def counting(state, bucket, name=name, counts=counts):
                counts[name] += 1
                return allreduce_hook(None, bucket)

            net.register_comm_hook(None, counting)
        for _ in range(STEPS):
            tr.train_step()
        result[update]["reduces"] = counts

    # Resume on the same number of processes is exact (dropout on: every rank's streams matter),
    # also for conditional nets (each rank's label stream; each rank's masks and inpainting batch).
    result["resume"] = {}
    plain = tiny_config(update="alternating", k=2, batch_size=M)
    pixels = digits.train[0].numel()
    for condition, cond_dim, d_cond_dim in (("none", 0, 0), ("class", 10, 10), ("inpaint", 2 * pixels, pixels)):
        cfg = override(
            plain,
            generator=override(plain.generator, condition=condition, cond_dim=cond_dim),
            discriminator=override(plain.discriminator, cond_dim=d_cond_dim),
        )
        straight = distributed.rank_trainer(cfg, digits, group)
        for _ in range(2 * STEPS):
            straight.train_step()
        first = distributed.rank_trainer(cfg, digits, group)
        for _ in range(STEPS):
            first.train_step()
        run_dir = Path(out).parent / f"resume-{condition}"
        first.save(run_dir)
        resumed = distributed.rank_trainer(cfg, digits, group)
        resumed.load_state_dict(load_checkpoint(latest_checkpoint(run_dir)))
        for _ in range(STEPS):
            resumed.train_step()
        result["resume"][condition] = {"straight": weights(straight), "resumed": weights(resumed)}

    # Decisions the ranks share: what each rank raised when (a) G's loss turns NaN on rank 1 alone,
    # from step 3 on (the divergence guard); (b) rank 0's collapse monitor sees a collapse (on-collapse stop).
    outcomes = {}
    tr = distributed.rank_trainer(tiny_config(update="simultaneous", log_every=2), digits, group)
    if group.rank == 1:
        loss = tr.g_loss_fn
        tr.g_loss_fn = lambda logits: loss(logits) * (float("nan") if tr.step >= 2 else 1.0)
    outcomes["diverged"] = fit_outcome(tr)
    cfg = tiny_config(update="simultaneous", monitor_every=3, on_collapse="stop")
    tr = distributed.rank_trainer(cfg, digits, group)
    if group.rank == 0:
        tr.monitor.check = lambda step, *args: ({}, "G collapsed (a test's verdict)") if step >= 6 else ({}, None)
    outcomes["collapsed"] = fit_outcome(tr)
    everyone: list = [None] * group.world_size
    torch.distributed.all_gather_object(everyone, outcomes)
    result["outcomes"] = everyone
    if group.rank == 0:
        torch.save(result, out)


def spy(directory: str, argv: list[str]) -> int:
    written: list[str] = []
    writes = ("w", "a", "x", "+")
    real_open, real_os_open = builtins.open, os.open

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in writes):
            written.append(os.fsdecode(os.path.abspath(file)))
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND):
            written.append(os.fsdecode(os.path.abspath(path)))
        return real_os_open(path, flags, *args, **kwargs)

    builtins.open = io.open = open_
    os.open = os_open
    report = Path(directory) / f"rank-{os.environ['RANK']}.json"

    def dump():  # with the real functions: the report itself is not the rank's training output
        fd, tmp = tempfile.mkstemp(dir=directory)
        os.close(fd)
        Path(tmp).write_bytes(json.dumps(written).encode())
        os.replace(tmp, report)

    def restore_and_dump():
        builtins.open, io.open, os.open = real_open, real_open, real_os_open
        dump()

    atexit.register(restore_and_dump)
    from advnets.cli import main

    return main(argv)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if sys.argv[1] == "steps":
        steps(sys.argv[2])
    else:
        sys.exit(spy(sys.argv[2], sys.argv[3:]))
