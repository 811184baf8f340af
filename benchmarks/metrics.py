"""Benchmark: the sample-quality metrics of issue 17 against the field's implementations.

Time and peak memory of advnets' FD, KID and precision/recall/density/coverage
against torchmetrics (FID and KID fed the same features through an identity
"feature network") and prdc (the reference of Naeem et al.), on the same
features: N real and N generated rows of dimension d (default 128, the shipped
digit features), float32, from two different Gaussians (seeded). torch-fidelity
and pytorch-fid are listed but cannot run here: they import torchvision, whose
PyPI wheels are CUDA builds that fail beside this project's CPU torch.

Each row runs in a fresh subprocess with one thread (OMP_NUM_THREADS=1: the
machine is shared); peak memory is that process's peak-RSS increase during the
call (VmHWM, reset through /proc/self/clear_refs just before it). prdc holds
three N×N distance matrices, so it is skipped above --prdc-max (default 20,000:
3 × 20,000² float32 = 4.8 GB). "agree" is |advnets − peer| / |peer| on the
numbers (the largest over precision, recall, density and coverage; KID with
one subset of all N rows for both, so that the random subsets do not differ --
the first 10,000 rows when N is larger, as torchmetrics holds three N×N float64
kernels; the timed KID rows use the default 100 subsets of 1,000).

Usage: python benchmarks/metrics.py [--sizes 10000,50000] [--dim 128]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
from machine import cpu_model  # benchmarks/machine.py (the scripts run from this directory)

METHODS = ("fd:advnets", "fd:torchmetrics", "kid:advnets", "kid:torchmetrics", "prdc:advnets", "prdc:prdc")
# prdc uses one k for all four numbers; both rows use k = 5.
NOT_RUNNABLE = {
    "fd:torch-fidelity": "imports torchvision (CUDA wheel: fails beside the CPU torch)",
    "fd:pytorch-fid": "imports torchvision (idem)",
}


def features(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    real = (rng.standard_normal((n, d)) @ mix).astype(np.float32)
    gen = (rng.standard_normal((n, d)) @ (mix * 1.1) + 0.05).astype(np.float32)
    return real, gen


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(field)


def _reset_peak() -> float:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mib("VmHWM")


EXACT_KID_MAX = 10000  # rows of the one-subset KID agreement check (torchmetrics: 3 N² float64 kernels)


def _kid_options(n: int, exact: bool) -> dict:
    """Default subsets (100 x 1,000), or one subset of all n rows for the agreement check."""
    return {"subsets": 1, "subset_size": n} if exact else {}


def prepare(method: str, exact_kid: bool):
    """Import what ``method`` needs and return ``f(real, gen) -> {name: value}`` (imports stay off the clock)."""
    import torch

    metric, impl = method.split(":")
    if impl == "advnets":
        import scipy.linalg  # noqa: F401  (frechet imports it on first use: keep that off the clock)

        from advnets.evaluate.frechet import frechet_distance
        from advnets.evaluate.kid import kernel_distance
        from advnets.evaluate.manifold import manifold_metrics

        if metric == "fd":
            return lambda r, g: {"fd": frechet_distance(r, g)["fd"]}
        if metric == "kid":
            return lambda r, g: {"kid": kernel_distance(r, g, **_kid_options(len(r), exact_kid))["kid"]}
        keys = ("precision", "recall", "density", "coverage")
        return lambda r, g: {k: v for k, v in manifold_metrics(r, g, k=5, k_dc=5).items() if k in keys}
    if impl == "torchmetrics":
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        def tm(r, g):
            class Ident(torch.nn.Module):  # the features themselves, as torchmetrics' "feature network"
                num_features = r.shape[1]

                def forward(self, x):
                    return x

            if metric == "fd":
                m = FrechetInceptionDistance(feature=Ident())
            else:
                m = KernelInceptionDistance(feature=Ident(), **_kid_options(len(r), exact_kid))
            for i in range(0, len(r), 1000):
                m.update(torch.from_numpy(r[i : i + 1000]).double(), real=True)
                m.update(torch.from_numpy(g[i : i + 1000]).double(), real=False)
            out = m.compute()
            return {metric: float(out[0] if isinstance(out, tuple) else out)}

        return tm
    from prdc import compute_prdc

    def run_prdc(r, g):
        with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
            return {k: float(v) for k, v in compute_prdc(r, g, nearest_k=5).items()}

    return run_prdc


def child(method: str, n: int, d: int, exact_kid: bool) -> None:
    import warnings

    warnings.simplefilter("ignore")
    real, gen = features(n, d)
    if exact_kid:
        real, gen = real[:EXACT_KID_MAX], gen[:EXACT_KID_MAX]
    fn = prepare(method, exact_kid)
    base = _reset_peak()
    t = time.perf_counter()
    value = fn(real, gen)
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "peak_mib": _status_mib("VmHWM") - base, "value": value}))


def measure(method: str, n: int, d: int, exact_kid: bool = False) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", method, str(n), str(d)] + (["--exact-kid"] if exact_kid else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000", help="comma-separated N (default 10000; 50000 takes longer)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--prdc-max", type=int, default=20000, help="largest N to run prdc at (3 N² distances)")
    p.add_argument("--child", nargs=3, metavar=("METHOD", "N", "D"), help=argparse.SUPPRESS)
    p.add_argument("--exact-kid", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]), args.exact_kid)
        return
    load = os.getloadavg()[0]
    print("| N | metric | implementation | time (s) | × advnets | peak RSS Δ (MiB) | agree (rel.) |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for n in (int(s) for s in args.sizes.split(",")):
        for metric in ("fd", "kid", "prdc"):
            ours = measure(f"{metric}:advnets", n, args.dim)
            exact = measure(f"{metric}:advnets", n, args.dim, exact_kid=True) if metric == "kid" else ours
            for method in (m for m in METHODS if m.startswith(metric + ":")):
                impl = method.split(":")[1]
                if impl == "prdc" and n > args.prdc_max:
                    print(
                        f"| {n:,} | {metric} | prdc | skipped: 3 × N² float32 distances = "
                        f"{3 * n * n * 4 / 1e9:.0f} GB | | | |"
                    )
                    continue
                r = ours if impl == "advnets" else measure(method, n, args.dim)
                if "error" in r:
                    print(f"| {n:,} | {metric} | {impl} | failed: {r['error']} | | | |")
                    continue
                agree = ""
                if impl != "advnets":
                    peer = measure(method, n, args.dim, exact_kid=True) if metric == "kid" else r
                    mine, theirs = exact["value"], peer["value"]
                    agree = f"{max(abs(mine[k] - theirs[k]) / abs(theirs[k]) for k in theirs):.1e}"
                ratio = r["seconds"] / ours["seconds"]
                print(
                    f"| {n:,} | {metric} | {impl} | {r['seconds']:.2f} | {ratio:.2f} | {r['peak_mib']:.0f} | {agree} |"
                )
        for method, why in NOT_RUNNABLE.items():
            print(f"| {n:,} | {method.split(':')[0]} | {method.split(':')[1]} | not run: {why} | | | |")
    import torch

    print(
        f"\nd = {args.dim}, float32 features, 1 thread per process; machine: {cpu_model()}, "
        f"{os.cpu_count()} cores shared with other jobs (load average {load:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after); Python {platform.python_version()}, torch {torch.__version__}."
    )


if __name__ == "__main__":
    main()
