"""Benchmark: data-parallel scaling of training (issue 8), samples/s on 1 and 2 processes (and 1 GPU if present).

The ``mnist`` preset (Goodfellow et al. 2014: G 100 -> 1200 -> 1200 -> 784, D maxout 240x5 -> 240x5 -> 1 with dropout,
SGD, m = 100 per process) on the embedded MNIST digits, both update rules. Each row is measured in fresh processes:

* 1 process, all cores: the plain Trainer with torch using every core (what ``advnets train`` runs);
* 1 process, 1 thread: the same, one thread (one worker's share of the machine below);
* 1 process under DDP, 1 thread: a data-parallel Trainer in a group of one (gloo): DDP's own overhead, no peer;
* 2 processes x 1 thread (DDP, gloo): ``advnets train --nproc 2``: m = 100 each, a global batch of 200;
* on CUDA, when available: 1 GPU (plain Trainer), and 1 GPU under DDP (NCCL, a group of one);
* and, once per round, the all-reduce of one step's gradients alone between the 2 processes (its time per step).

samples/s counts real training examples consumed by the whole group: N x m per simultaneous step, N x m x k per
alternating one. Efficiency = samples/s of N processes / (N x samples/s of 1 process with the same threads per
process); "vs all cores" compares with one process using the whole machine. Every worker times ``--steps`` steps
after ``--warmup`` steps, between barriers, each step followed by fit()'s per-step stop check as in training;
configurations run in interleaved rounds (the machine may be shared) and the table gives the median over rounds and
the spread (min-max).

Usage: python benchmarks/scaling.py [--rounds 3] [--steps 30] [--warmup 5] [--update both|simultaneous|alternating]
(workers: python benchmarks/scaling.py --worker ..., started by the runner, under torchrun for N > 1)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import torch
from machine import cpu_model  # benchmarks/machine.py (the scripts run from this directory)

M = 100


# --------------------------------------------------------------------------- worker


def worker(args) -> None:
    import torch.distributed as dist

    from advnets import distributed
    from advnets.config import override
    from advnets.data import load_dataset
    from advnets.presets import PRESETS
    from advnets.train import Trainer

    torch.set_num_threads(args.threads)
    cfg = PRESETS["mnist"]
    cfg = override(cfg, train=override(cfg.train, update=args.update, k=1, batch_size=M, device=args.device))
    data = load_dataset("embedded")
    env = distributed.torchrun_env()
    if args.comm:  # the all-reduce of one step's gradients alone: as many floats as G and D have parameters
        group = distributed.join(env, args.device)
        trainer = Trainer(cfg, data, device=group.device)
        grads = torch.ones(sum(p.numel() for p in [*trainer.g_params, *trainer.d_params]), device=group.device)
        for _ in range(args.warmup):
            dist.all_reduce(grads)
        dist.barrier()
        start = time.perf_counter()
        for _ in range(args.steps):
            dist.all_reduce(grads)
        dist.barrier()
        if env.rank == 0:
            print(json.dumps({"ms": 1000 * (time.perf_counter() - start) / args.steps, "mb": grads.numel() * 4 / 1e6}))
        return
    if env is None:
        trainer, world = Trainer(cfg, data), 1
    else:
        trainer = distributed.rank_trainer(cfg, data, distributed.join(env, args.device))
        world = env.world_size
    device = trainer.device

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if env is not None:
            dist.barrier()

    poll = trainer.parallel.stop_on_signal().poll  # fit()'s check for a stop after each step (an all-reduce under DDP)
    for _ in range(args.warmup):
        trainer.train_step()
        poll()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
        poll()
    sync()
    seconds = time.perf_counter() - start
    if env is None or env.rank == 0:
        print(json.dumps({"samples_per_s": args.steps * world * M / seconds, "s_per_step": seconds / args.steps}))


# --------------------------------------------------------------------------- runner


@dataclass
class Row:
    name: str
    processes: int
    threads: int  # per process
    device: str
    ddp: bool
    rates: dict[str, list[float]] = field(default_factory=dict)  # update -> samples/s per round


def measure(row: Row, update: str, args, comm: bool = False) -> dict:
    """One measurement in fresh processes: {"samples_per_s": ...}, or with comm {"ms": ..., "mb": ...}."""
    script = os.path.abspath(__file__)
    work = ["--worker", "--update", update, "--threads", str(row.threads), "--device", row.device]
    work += ["--comm"] if comm else []
    work += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    if row.ddp:  # under torchrun, through advnets' loopback-bound launcher (as `advnets train --nproc`)
        launch = (
            f"from advnets.distributed import run_torchrun; sys.exit(run_torchrun({row.processes}, 0, sys.argv[1:]))"
        )
        cmd = [sys.executable, "-c", f"import sys; {launch}", script, *work]
    else:
        cmd = [sys.executable, script, *work]
    env = {**os.environ, "OMP_NUM_THREADS": str(row.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if out.returncode != 0:
        raise RuntimeError(f"{row.name} ({update}) failed:\n{out.stderr[-3000:]}")
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])


def table(rows: list[Row], updates: list[str]) -> str:
    def med(row, u):
        return statistics.median(row.rates[u])

    by_name = {r.name: r for r in rows}
    one_thread, all_cores = by_name["1 process, 1 thread"], by_name[f"1 process, {os.cpu_count()} threads"]
    lines = [
        "| configuration | "
        + " | ".join(f"{u}: samples/s (min-max)" for u in updates)
        + " | efficiency | vs all cores |",
        "|---|" + "---:|" * len(updates) + "---:|---:|",
    ]
    for row in rows:
        cells = []
        for u in updates:
            lo, hi = min(row.rates[u]), max(row.rates[u])
            cells.append(f"{med(row, u):,.0f} ({lo:,.0f}-{hi:,.0f})")
        if row.device == "cpu" and row.processes > 1:
            eff = " / ".join(f"{med(row, u) / (row.processes * med(one_thread, u)):.2f}" for u in updates)
            vs = " / ".join(f"{med(row, u) / med(all_cores, u):.2f}" for u in updates)
        elif row.device == "cpu" and row.ddp:
            eff = " / ".join(f"{med(row, u) / med(one_thread, u):.2f}" for u in updates)
            vs = ""
        else:
            eff = vs = ""
        lines.append(f"| {row.name} | " + " | ".join(cells) + f" | {eff} | {vs} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--comm", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--update", default="both", choices=["both", "simultaneous", "alternating"])
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    cores = os.cpu_count() or 1
    rows = [
        Row(f"1 process, {cores} threads", 1, cores, "cpu", ddp=False),
        Row("1 process, 1 thread", 1, 1, "cpu", ddp=False),
        Row("1 process under DDP (gloo), 1 thread", 1, 1, "cpu", ddp=True),
        Row("2 processes x 1 thread, DDP (gloo)", 2, 1, "cpu", ddp=True),
    ]
    if torch.cuda.is_available():
        rows += [Row("1 GPU", 1, 1, "cuda", ddp=False), Row("1 GPU under DDP (NCCL)", 1, 1, "cuda", ddp=True)]
    updates = ["simultaneous", "alternating"] if args.update == "both" else [args.update]
    pair = rows[3]  # 2 processes on the CPU
    comm: list[dict] = []
    load0, t0 = os.getloadavg(), time.perf_counter()
    for r in range(args.rounds):
        order = rows[r % len(rows) :] + rows[: r % len(rows)]  # rotate, so no row always runs first
        for row in order:
            for u in updates:
                row.rates.setdefault(u, []).append(measure(row, u, args)["samples_per_s"])
                print(f"round {r + 1}: {row.name}, {u}: {row.rates[u][-1]:,.0f} samples/s", file=sys.stderr)
        comm.append(measure(pair, updates[0], args, comm=True))
        print(f"round {r + 1}: all-reduce alone: {comm[-1]['ms']:.1f} ms", file=sys.stderr)
    load1 = os.getloadavg()
    gpu = f"; GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "; no GPU on this machine"
    print(table(rows, updates))
    print()
    ms = statistics.median(c["ms"] for c in comm)
    step_ms = {u: 1000 * pair.processes * M / statistics.median(pair.rates[u]) for u in updates}
    print(
        f"- Communication alone: a gloo all-reduce of one step's gradients (G and D: {comm[0]['mb']:.1f} MB of "
        f"float32) between the 2 processes takes {ms:.1f} ms (median; {min(c['ms'] for c in comm):.1f}-"
        f"{max(c['ms'] for c in comm):.1f}), against a 2-process step of "
        + " / ".join(f"{step_ms[u]:.0f} ms ({u})" for u in updates)
        + "."
    )
    print(
        f"- mnist preset on the embedded MNIST digits, m = {M} per process, k = 1; {args.steps} timed steps after "
        f"{args.warmup} warm-up steps per measurement, {args.rounds} interleaved rounds, median (min-max). "
        "Efficiency: samples/s / (N x samples/s of 1 process, 1 thread) for N processes; for the 1-process DDP "
        "row, its samples/s over the plain 1-thread row (DDP's own cost)."
    )
    print(
        f"- Machine: {cpu_model()}, {cores} cores{gpu}; load average {load0[0]:.1f} before, {load1[0]:.1f} after "
        f"({(time.perf_counter() - t0) / 60:.0f} min); Python {platform.python_version()}, torch {torch.__version__}; "
        f"{datetime.date.today().isoformat()}."
    )
    print(
        "- Command: `python benchmarks/scaling.py"
        + (f" --update {args.update}" if args.update != "both" else "")
        + "`."
    )


if __name__ == "__main__":
    main()
