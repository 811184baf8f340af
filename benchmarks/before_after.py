"""A refactor's cost to the training step: this checkout's Trainer.train_step beside a git revision's, in one run.

A restructuring (issue 27) must leave throughput within noise. This extracts ``--base``'s ``src/`` into a
temporary folder (``git archive``), then times the same step of the same preset (eager, or with ``--compile on``
the compiled one) in alternating rounds: one subprocess per tree and round, ``PYTHONPATH`` pointing at that
tree's ``src`` (it comes before the editable install), the same thread count, the same data. Prints steps/s per
tree (median over rounds, with the spread) and their ratio.

    python benchmarks/before_after.py --base 412093c                      # the paper's simultaneous step
    python benchmarks/before_after.py --base HEAD~3 --update alternating --k 2 --rounds 8
    python benchmarks/before_after.py --base HEAD~1 --compile on          # a change to the compiled step
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The worker: build the preset's Trainer on the embedded digits, warm up, then time train_step.
WORKER = """
import json, sys, time, torch
from advnets.data import load_dataset
from advnets.config import override
try:
    from advnets.presets import get_preset
except ImportError:  # a revision from before advnets.presets
    from advnets.config import get_preset
from advnets.train import Trainer
update, k, steps, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
compile_, precision = sys.argv[6], sys.argv[7]
torch.set_num_threads(threads)
cfg = get_preset("mnist")
train = dict(update=update, k=k, compile=compile_, eval_every=0, monitor_every=0)
if precision != "fp32":  # (a revision from before --precision has no such field: only asked for when set)
    train["precision"] = precision
cfg = override(cfg, train=override(cfg.train, **train))
trainer = Trainer(cfg, load_dataset(override(cfg.data, source="embedded")))
for _ in range(warmup):
    trainer.train_step()
start = time.perf_counter()
for _ in range(steps):
    out = trainer.train_step()
float(out["d_loss"])  # the last step's values are on the host: every step has finished
print(json.dumps({"steps_per_s": steps / (time.perf_counter() - start)}))
"""


def extract(rev: str, into: Path) -> Path:
    """``rev``'s ``src/`` under ``into`` (git archive: the working tree is untouched)."""
    archive = into / "src.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), rev, "src"], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def time_once(src: Path, args: argparse.Namespace) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, "-c", WORKER, args.update, str(args.k), str(args.steps), str(args.warmup), str(args.threads),
           args.compile, args.precision]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])["steps_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the git revision to compare with (e.g. a commit before a refactor)")
    ap.add_argument("--update", choices=["simultaneous", "alternating"], default="simultaneous")
    ap.add_argument("--k", type=int, default=1, help="D steps per iteration (alternating)")
    ap.add_argument("--steps", type=int, default=200, help="timed iterations per round")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=6, help="alternating rounds per tree")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", choices=["off", "on"], default="off",
                    help="the step to time: eager (off) or advnets.train.compiled's (on; each subprocess compiles "
                    "or loads its graphs from the inductor cache before the warm-up)")  # fmt: skip
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="advnets-before-after-") as tmp:
        trees = {f"{args.base} (base)": extract(args.base, Path(tmp)), "this checkout": ROOT / "src"}
        rates: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, src in trees.items():
                rates[name].append(time_once(src, args))
    base, here = (statistics.median(r) for r in rates.values())
    print(
        f"mnist preset, {args.update} update (k={args.k}), {'compiled' if args.compile == 'on' else 'eager'} "
        f"{args.precision}, {args.threads} threads, embedded digits; "
        f"{args.steps} steps x {args.rounds} alternating rounds"
    )
    print(f"{'tree':<28s} {'steps/s (median)':>17s} {'min':>7s} {'max':>7s}")
    for name, r in rates.items():
        print(f"{name:<28s} {statistics.median(r):17.1f} {min(r):7.1f} {max(r):7.1f}")
    print(f"ratio this checkout / base: {here / base:.3f}")


if __name__ == "__main__":
    main()
