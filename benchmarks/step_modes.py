"""The training step in its four implementations, against the matrix-product floor (issue 28).

For the ``mnist`` preset (m = 100), both update rules, at each thread count (one fresh process per count: the
compiled kernels fix their OpenMP thread count when they are compiled), on the CPU or (``--device cuda``) a GPU,
it times in interleaved rounds:

* eager fp32: advnets.train.algorithm's step (``--compile off``);
* compiled fp32: advnets.train.compiled's whole step (``--compile on``);
* eager bf16 and compiled bf16: the same with ``--precision bf16``;
* on CUDA also "compiled, no CUDA graphs": the compiled fp32 step with ``mode="default"`` (the compiled rows use
  CUDA graphs there, ``mode="reduce-overhead"``);
* the floor of each precision: every matrix product the step needs (train_throughput.needed_products), each timed
  alone at its shape in float32 or bfloat16, summed;
* the bound of each precision: the floor plus what a step that keeps torch's float32 SGD state and the same
  draws (the same noise and masks for a seed) cannot skip, each timed alone (:class:`Bound`): the optimiser's pass
  over weights, momentum buffers and gradients, and the iteration's draws. Its share of the floor is about the
  most such an implementation can reach here (CPU-checked only; on CUDA the pass runs without CUDA graphs).

and prints one markdown table: steps/s, ms per step, the floor, the share of the floor (floor time / step time),
and the hours the paper's schedule (575,000 steps: the reference's learning rate reaches 0.01 there) takes at
that rate. Compiled rows also give their first step's time: compiling (a fresh inductor cache, made for the
run) and then, in a last process, loading the same graphs from that cache (what a later run on the machine pays).

Used by ``train_throughput.py --modes`` / ``--modes-only``; a worker process is ``--modes-worker``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import torch

PAPER_STEPS = 575_000  # the reference's lr schedule reaches 0.01 after 575,650 minibatches (1,151 MNIST epochs)
MODES = (("eager", "fp32"), ("compiled", "fp32"), ("eager", "bf16"), ("compiled", "bf16"))


@dataclass
class Timed:
    name: str
    update: str
    precision: str
    step: object
    first_s: float | None = None
    times: list[float] = field(default_factory=list)  # mean seconds per step of each round


def _trainer(tt, data, update: str, kind: str, precision: str, device: torch.device):
    from advnets.config import override
    from advnets.train import Trainer
    from advnets.train.compiled import CompiledSteps

    cfg = tt.mnist_config(update, 1)
    compile_ = "off" if kind == "eager" else "on"
    trainer = Trainer(cfg=override(cfg, train=override(cfg.train, compile=compile_, precision=precision)), dataset=data,
                      device=device)  # fmt: skip
    if kind == "compiled, no CUDA graphs":  # on CUDA the compiled step uses CUDA graphs; this row is without them
        trainer.updates = CompiledSteps(trainer, mode="default")
    return trainer


class Bound:
    """What every faithful step does besides its matrix products, timed alone for one update rule and precision
    (the parts of the ``bound`` rows: floor + optimiser pass + draws).

    * the optimiser's pass: advnets.train.compiled.sgd_ (SGD with momentum, and the max-col-norm where the config
      sets one; the ``mnist`` preset sets none), compiled, over
      copies of the preset's G and D weights with their float32 momentum buffers and a gradient in the products'
      dtype: a library product writes each weight gradient to memory, and the update reads it with the weight and
      its buffer and writes both back, once per iteration (float32: the state torch's SGD keeps and a checkpoint
      holds);
    * the draws: G's noise and D's dropout masks of one iteration from the run's named generators, as the compiled
      step draws them (advnets.train.compiled.CompiledSteps._masks; an alternating iteration draws for its D and
      its G step).

    Both run hot (the same tensors call after call), which favours them over the real step; the optimiser's pass is
    a compiled call of its own, so its guard and call overhead (a fraction of a millisecond) is counted, which the
    real step pays once for its whole graph."""

    def __init__(self, tt, data, update: str, precision: str, device: torch.device, calls: int) -> None:
        from advnets.train import compiled

        self.device, self.calls, self.update, self.sync = device, calls, update, tt.sync
        self.trainer = _trainer(tt, data, update, "eager", precision, device)
        self.steps = compiled.CompiledSteps(self.trainer, compiled=False)
        spec, st = self.steps.spec, self.steps
        self.weights = [[w.clone() for w in ws] for ws in (st.gw, st.dw)]
        self.bufs = [[torch.zeros_like(w) for w in ws] for ws in self.weights]
        self.grads = [[1e-3 * torch.randn_like(w).to(spec.dtype) for w in ws] for ws in self.weights]
        self.hyper = torch.tensor([1e-3, 1e-3, 0.5], device=device)

        def optimiser_pass(gw, dw, g_bufs, d_bufs, g_grads, d_grads, hyper):
            compiled.sgd_(dw, d_bufs, d_grads, hyper[1], hyper[2], spec.d_max_col_norm)
            compiled.sgd_(gw, g_bufs, g_grads, hyper[0], hyper[2], spec.g_max_col_norm)

        self.optimiser_pass = torch.compile(optimiser_pass, fullgraph=True, dynamic=False)

    def _optimiser(self) -> None:
        with torch.no_grad():
            self.optimiser_pass(*self.weights, *self.bufs, *self.grads, self.hyper)

    def _draws(self) -> None:
        p, m = self.trainer, self.trainer.m
        self.steps._masks(p, 2 * m)
        p.noise(m)
        if self.update == "alternating":
            self.steps._masks(p, m)
            p.noise(m)

    def measure(self) -> dict[str, float]:
        """Seconds per iteration of each part, each the mean over ``calls`` back-to-back calls."""
        out = {}
        for name, fn in (("optimiser", self._optimiser), ("draws", self._draws)):
            fn()
            self.sync(self.device)
            t0 = time.perf_counter()
            for _ in range(self.calls):
                fn()
            self.sync(self.device)
            out[name] = (time.perf_counter() - t0) / self.calls
        return out


def _modes(device: torch.device) -> list[tuple[str, str]]:
    if device.type != "cuda":
        return list(MODES)
    return [*MODES[:2], ("compiled, no CUDA graphs", "fp32"), *MODES[2:]]


def worker(
    tt, updates: list[str], rounds: int, steps: int, warmup: int, floor_calls: int, first_only: bool, device: str
) -> dict:
    """In this process (threads set by the caller): every mode of every update on ``device``, timed; or, with
    ``first_only``, only the compiled modes' first steps (the cached start-up)."""
    dev = torch.device(device)
    data = tt.load_data()
    timed: list[Timed] = []
    for update in updates:
        for kind, precision in _modes(dev):
            if first_only and kind == "eager":
                continue
            trainer = _trainer(tt, data, update, kind, precision, dev)
            t0 = time.perf_counter()
            trainer.train_step()
            tt.sync(dev)
            v = Timed(f"{kind} {precision}", update, precision, trainer.train_step, time.perf_counter() - t0)
            timed.append(v)
            for _ in range(warmup):
                v.step()
    if first_only:
        return {"first": {f"{v.update}/{v.name}": v.first_s for v in timed}}
    floors = {(u, p): tt.Floor(dev, floor_calls, dtype=d) for u in updates for p, d in _DTYPES}
    floor_times: dict[str, list[float]] = {f"{u}/{p}": [] for u in updates for p, _ in _DTYPES}
    bounds = {(u, p): Bound(tt, data, u, p, dev, floor_calls) for u in updates for p, _ in _DTYPES}
    bound_times: dict[str, list[dict[str, float]]] = {f"{u}/{p}": [] for u in updates for p, _ in _DTYPES}
    for rnd in range(rounds):
        shift = rnd % len(timed)
        for v in timed[shift:] + timed[:shift]:
            tt.sync(dev)
            t0 = time.perf_counter()
            for _ in range(steps):
                v.step()
            tt.sync(dev)
            v.times.append((time.perf_counter() - t0) / steps)
        for (u, p), floor in floors.items():
            products = tt.needed_products(u, 1)
            floor.measure(products)
            floor_times[f"{u}/{p}"].append(floor.total(products))
            bound_times[f"{u}/{p}"].append(bounds[(u, p)].measure())
    return {
        "threads": torch.get_num_threads(),
        "device_name": tt.device_name(dev),
        "load": os.getloadavg()[0],
        "rows": [
            {"update": v.update, "name": v.name, "precision": v.precision, "first_s": v.first_s, "times": v.times}
            for v in timed
        ],
        "floors": floor_times,
        "bounds": bound_times,
    }


_DTYPES = (("fp32", torch.float32), ("bf16", torch.bfloat16))


def _run_worker(args, threads: int, cache: str, first_only: bool = False) -> dict:
    cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "train_throughput.py"), "--modes-worker"]
    cmd += ["--threads", str(threads), "--update", args.update, "--rounds", str(args.rounds)]
    cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--floor-calls", str(args.floor_calls)]
    cmd += ["--device", args.device]
    if first_only:
        cmd.append("--first-only")
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"step-modes worker ({threads} thread(s)) failed with exit code {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fast(values: list[float]) -> float:
    return min(values) if len(values) < 5 else statistics.quantiles(values, n=5, method="inclusive")[0]


def table(args) -> str:
    """Run the workers (each thread count, then the cached start-up) and return the markdown table."""
    threads_list = [int(t) for t in args.threads_list.split(",")]
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="advnets-inductor-") as cache:
        results = [_run_worker(args, n, cache) for n in threads_list]
        cached = _run_worker(args, threads_list[-1], cache, first_only=True)["first"]
    lines = [
        "| update | step | threads | steps/s | ms / step | floor, ms | % of floor | hours for 575,000 steps "
        "| first step: compile; cached |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    loads = []
    for res in results:
        n = res["threads"]
        loads.append(res["load"])
        for row in res["rows"]:
            fl = res["floors"][f"{row['update']}/{row['precision']}"]
            t_med, t_fast = statistics.median(row["times"]), _fast(row["times"])
            share = statistics.median(f / t for f, t in zip(fl, row["times"], strict=True))
            first = "—"
            if not row["name"].startswith("eager"):
                first = f"{row['first_s']:.0f} s; {cached[row['update'] + '/' + row['name']]:.1f} s"
            lines.append(
                f"| {row['update']} | {row['name']} | {n} | {1 / t_med:.1f} ({1 / t_fast:.1f}) | {1e3 * t_med:.1f} "
                f"| {1e3 * statistics.median(fl):.1f} | {100 * share:.0f}% "
                f"| {PAPER_STEPS * t_med / 3600:.2f} | {first} |"
            )
        for key, fl in res["floors"].items():
            update, precision = key.split("/")
            f_med = statistics.median(fl)
            lines.append(
                f"| {update} | floor {precision} (matrix products only) | {n} | {1 / f_med:.1f} | {1e3 * f_med:.1f} "
                f"| {1e3 * f_med:.1f} | 100% | {PAPER_STEPS * f_med / 3600:.2f} | — |"
            )
        for key, parts in res["bounds"].items():
            update, precision = key.split("/")
            f_med = statistics.median(res["floors"][key])
            opt, draws = (statistics.median(p[k] for p in parts) for k in ("optimiser", "draws"))
            b = f_med + opt + draws
            lines.append(
                f"| {update} | bound {precision}: floor + optimiser pass {1e3 * opt:.1f} + draws {1e3 * draws:.1f} "
                f"| {n} | {1 / b:.1f} | {1e3 * b:.1f} | {1e3 * f_med:.1f} | {100 * f_med / b:.0f}% "
                f"| {PAPER_STEPS * b / 3600:.2f} | — |"
            )
    lines += [
        "",
        f"- `mnist` preset (m = 100, k = 1) on the embedded MNIST digits, {args.device.upper()} "
        f"({results[0]['device_name']}); {args.rounds} interleaved rounds of "
        f"{args.steps} steps per row in one process per thread count. steps/s: median over rounds (fastest fifth in "
        "brackets); % of floor: median of per-round floor / step time; hours: 575,000 steps at the median rate.",
        "- bound: about the fastest a step can be that keeps these matrix products, torch's SGD state in float32 "
        "(weights, momentum buffers and gradients pass through memory once per iteration) and the same draws (the "
        "same noise and masks for a seed): the floor plus the optimiser's pass and the iteration's draws, each "
        "timed alone and hot (step_modes.Bound); its % of floor (median floor / median bound) is about the highest "
        "share such a step can reach on this machine.",
        "- First step of a compiled row: compiling with an empty inductor cache, then the same graphs loaded from "
        f"that cache in a last process at {threads_list[-1]} thread(s) (the same figure on every thread count's row); "
        "both include one step.",
        f"- Load average {', '.join(f'{x:.1f}' for x in loads)} (1 min, at the end of each process); torch "
        f"{torch.__version__}; {time.perf_counter() - t_start:.0f} s.",
    ]
    return "\n".join(lines)
