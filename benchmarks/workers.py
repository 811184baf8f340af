"""Run a benchmark's training runs as worker subprocesses, a few at a time.

Each worker gets one BLAS/OpenMP thread (OMP_NUM_THREADS = MKL_NUM_THREADS = 1),
so that N workers on N cores do not fight over them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def run_workers(jobs: list[tuple[str, list[str]]], parallel: int) -> list[str]:
    """Run each (label, argv) as a subprocess, at most ``parallel`` at once, in order;
    print a started/finished line per job to stderr and return the labels of those that failed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    todo, running, failed = list(jobs), [], []
    while todo or running:
        while todo and len(running) < parallel:
            label, argv = todo.pop(0)
            running.append((subprocess.Popen(argv, env=env), label, time.perf_counter()))
            print(f"started {label}", file=sys.stderr, flush=True)
        time.sleep(0.5)
        for item in list(running):
            proc, label, t0 = item
            if proc.poll() is not None:
                running.remove(item)
                ok = proc.returncode == 0
                took = time.perf_counter() - t0
                print(f"{'finished' if ok else 'FAILED'} {label} in {took:.0f} s", file=sys.stderr, flush=True)
                if not ok:
                    failed.append(label)
    return failed
