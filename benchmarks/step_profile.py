"""Where one training step's time goes: torch.profiler over the step of the ``mnist`` preset (issue 28).

Builds the Trainer of ``step_modes.py`` (embedded digits, m = 100) for one update rule, implementation and
precision, warms it up, then profiles ``--steps`` steps with inductor's kernels named
(``torch._inductor.config.cpp.enable_kernel_profile``) and prints milliseconds per step: the matrix products
(aten::mm / addmm / bmm), the random draws (aten::uniform_ / random_: the real batch's order, G's noise, D's
dropout masks, all from advnets' named generators, outside the compiled graph), inductor's fused kernels (for the
compiled step: the layers' elementwise work, the losses, SGD with momentum and the gradient norms) and the rest
(copies, dispatch, guards), then the operations that took the most time. The profiler adds a little time to
every operation; compare the shares, and the step time printed first (timed without the profiler).

    python benchmarks/step_profile.py                                   # compiled fp32, simultaneous, 2 threads
    python benchmarks/step_profile.py --step eager --precision bf16 --threads 1
    python benchmarks/step_profile.py --ablate 3                        # what removing each part saves

``--ablate N`` measures instead what a part of the compiled step costs by removing it: the step as it is, without
the optimiser's update (``advnets.train.compiled.sgd_`` does nothing) and without the gradient norms (``_norm``
returns 0), each in its own process (a compiled graph is specialised to the functions it calls), N processes per
variant in alternation, 5 x ``--steps`` timed steps in each; it prints each variant's median and what it saves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul")
DRAWS = ("aten::uniform_", "aten::random_", "aten::normal_", "aten::bernoulli_")


def category(name: str) -> str:
    if name in PRODUCTS:
        return "matrix products"
    if name in DRAWS:
        return "random draws (batch order, noise, masks)"
    if name.startswith("graph_") and "cpp_fused" in name:
        return "inductor's fused kernels (elementwise, losses, SGD, norms)"
    return "the rest (copies, small ops, dispatch, guards)"


VARIANTS = {
    "the step as it is": None,
    "without the optimiser's update": ("sgd_", lambda *args: None),
    "without the gradient norms": ("_norm", lambda grads: torch.zeros((), device=grads[0].device)),
}


def time_variant(args) -> list[float]:
    """In this process: the compiled step with the part ``args.variant`` names removed; ms per step of 5 rounds."""
    from advnets.train import compiled

    if VARIANTS[args.variant] is not None:  # (name in advnets.train.compiled, what replaces it)
        setattr(compiled, *VARIANTS[args.variant])
    return ms_per_step(settled_trainer(args, "compiled"), args.steps, rounds=5)


def settled_trainer(args, step: str):
    """The ``mnist`` preset's Trainer for ``args`` with ``step`` (compiled / eager), 30 steps in: compiled (or its
    graphs loaded from the cache) and settled."""
    import step_modes
    import train_throughput

    torch.set_num_threads(args.threads)
    data = train_throughput.load_data()
    trainer = step_modes._trainer(train_throughput, data, args.update, step, args.precision, torch.device("cpu"))
    for _ in range(30):
        trainer.train_step()
    return trainer


def ms_per_step(trainer, steps: int, rounds: int) -> list[float]:
    """Milliseconds per step of ``rounds`` rounds of ``steps`` steps."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        times.append((time.perf_counter() - start) / steps * 1e3)
    return times


def ablate(args) -> int:
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.ablate):
        for v in VARIANTS:
            cmd = [sys.executable, __file__, "--variant", v, "--update", args.update, "--precision", args.precision]
            cmd += ["--threads", str(args.threads), "--steps", str(args.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.stderr.write(out.stderr)
                raise SystemExit(f"step_profile.py --ablate: the process for {v!r} failed (exit {out.returncode})")
            times[v] += json.loads(out.stdout.strip().splitlines()[-1])
    base = statistics.median(times["the step as it is"])
    print(f"mnist preset, {args.update} update, compiled {args.precision}, {args.threads} thread(s), m = 100; "
          f"{args.ablate} processes per variant, 5 x {args.steps} steps each")  # fmt: skip
    print()
    print("| variant | ms / step (median) | saves, ms |")
    print("|---|---:|---:|")
    for v, ts in times.items():
        med = statistics.median(ts)
        print(f"| {v} | {med:.2f} | {base - med:+.2f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update", choices=["simultaneous", "alternating"], default="simultaneous")
    ap.add_argument("--step", choices=["compiled", "eager"], default="compiled")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40, help="profiled steps, or steps per timed round (default 40)")
    ap.add_argument("--top", type=int, default=12, help="operations listed (default 12)")
    ap.add_argument(
        "--ablate", type=int, metavar="N", help="time the compiled step without each part, N processes each"
    )
    ap.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one --ablate process
    args = ap.parse_args(argv)
    if args.ablate is not None:
        if args.ablate < 1 or args.step != "compiled":
            ap.error("--ablate N needs N >= 1 and times the compiled step (leave --step at compiled)")
        return ablate(args)
    if args.variant:
        print(json.dumps(time_variant(args)))
        return 0

    import torch._inductor.config as inductor_config
    from torch.profiler import ProfilerActivity, profile

    inductor_config.cpp.enable_kernel_profile = True  # kernel names in the profile (part of the cache key)
    trainer = settled_trainer(args, args.step)
    rates = ms_per_step(trainer, args.steps, rounds=3)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            trainer.train_step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    per_step = {e.key: e.self_cpu_time_total / 1e3 / args.steps for e in events}  # ms per step
    totals: dict[str, float] = {}
    for name, ms in per_step.items():
        totals[category(name)] = totals.get(category(name), 0.0) + ms
    whole = sum(totals.values())
    print(f"mnist preset, {args.update} update, {args.step} {args.precision}, {args.threads} thread(s), m = 100")
    print(f"step time without the profiler: {min(rates):.2f} ms (best of 3 x {args.steps} steps); profiled: "
          f"{whole:.2f} ms per step")  # fmt: skip
    print()
    print("| where | ms / step | share |")
    print("|---|---:|---:|")
    for what, ms in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {what} | {ms:.2f} | {ms / whole:.0%} |")
    print()
    print("| operation (self time) | ms / step | calls / step |")
    print("|---|---:|---:|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        name = e.key if len(e.key) <= 70 else e.key[:67] + "..."
        print(f"| {name} | {per_step[e.key]:.3f} | {e.count / args.steps:g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
