"""Benchmark: training throughput of the paper's MNIST model against a plain PyTorch loop and the floor (issue 7).

One run, one printed markdown table, for the ``mnist`` preset (Goodfellow et al. 2014: G 100 -> 1200 -> 1200 -> 784,
D maxout 240x5 -> 240x5 -> 1 with dropout, SGD lr 0.1 momentum 0.5, m = 100) on the embedded MNIST digits, both
update rules (Algorithm 1 "alternating" with k D steps, and the reference code's "simultaneous"):

* advnets: ``Trainer.train_step()``, the iteration ``advnets train`` runs (its fit() loop adds a log row every
  50 iterations);
* plain loop: benchmarks/plain_loop.py, the same model written as the usual examples write it;
* floor: every matrix product one Algorithm-1 iteration needs (forward, input-gradient and weight-gradient
  products of G and D, only those the algorithm needs: no weight gradients for D in G's step, no input gradient
  for the first layer of either net on data or noise, D's input gradient only for generated rows), each timed
  alone at its exact shape and transposition (as torch's Linear runs it: X @ W.T, dY @ W, dY.T @ X) in this run,
  summed. ``% of floor`` = floor time / iteration time.

The machine may be shared, so the variants are measured in interleaved rounds in one process (each round times
``--steps`` iterations of every variant, in rotating order, then every floor product); ratios are taken within
each round, and the table gives medians over rounds and, in brackets, estimates from the fastest fifth of the
iterations (interference only adds time). Peak memory: on CUDA the rise of ``torch.cuda.max_memory_allocated``
during the variant's warm-up iterations; on CPU the rise of the process's peak RSS (VmHWM, reset through
/proc/self/clear_refs after set-up) over 20 iterations, each variant in a fresh subprocess.

samples/s counts real training examples consumed: m * k per alternating iteration, m per simultaneous one.

A second table gives sampling throughput: images/s of ``Trainer.sample(10_000)`` against its floor.

Usage: python benchmarks/train_throughput.py [--update both|alternating|simultaneous] [--k 1] [--threads N]
       [--steps S] [--rounds R] [--device cpu|cuda|auto] [--quick] [--ablations] [--no-memory]
       [--no-sampling | --sampling-only] [--modes | --modes-only [--threads-list 1,2]]
(--modes adds, and --modes-only prints alone, the table of issue 28: eager and compiled steps in fp32 and bf16
against each precision's floor at 1 and 2 threads, with the hours of the paper's 575,000 steps; step_modes.py)
(--ablations adds rows for each optimisation switched off, and for the two changes issue 7 proposed, fused SGD and
D(x, fake), which the training step has made its own since: those rows re-apply them; see NOTES.md)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from machine import cpu_model  # benchmarks/machine.py (the scripts run from this directory)

sys.path.insert(0, str(Path(__file__).resolve().parent))

M = 100  # minibatch size m of the paper's MNIST model
G_DIMS = (100, 1200, 1200, 784)  # G's layer widths: noise, hidden, hidden, image
D_LINEARS = ((784, 1200), (240, 1200), (240, 1))  # D's linear maps (in, out): maxout 240x5, maxout 240x5, logit


# --------------------------------------------------------------------------- the floor


@dataclass(frozen=True)
class Product:
    """One matrix product of an iteration: (rows x inner) @ (inner x cols), with torch Linear's transpositions."""

    what: str  # "fwd", "igrad", "wgrad"
    net: str
    layer: int
    rows: int  # minibatch rows through the layer
    fan_in: int
    fan_out: int

    @property
    def flops(self) -> int:
        return 2 * self.rows * self.fan_in * self.fan_out

    def operands(self, device: torch.device, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        n, i, o = self.rows, self.fan_in, self.fan_out
        w = torch.randn(o, i, device=device, dtype=dtype)
        if self.what == "fwd":  # Y = X @ W.T
            return torch.randn(n, i, device=device, dtype=dtype), w.t()
        if self.what == "igrad":  # dX = dY @ W
            return torch.randn(n, o, device=device, dtype=dtype), w
        # dW = dY.T @ X
        return torch.randn(n, o, device=device, dtype=dtype).t(), torch.randn(n, i, device=device, dtype=dtype)


def _linear_products(net: str, dims: list[tuple[int, int]], rows: int, fwd: bool, wgrad: bool, igrad: set[int]):
    out = []
    for layer, (i, o) in enumerate(dims):
        if fwd:
            out.append(Product("fwd", net, layer, rows, i, o))
        if wgrad:
            out.append(Product("wgrad", net, layer, rows, i, o))
        if layer in igrad:
            out.append(Product("igrad", net, layer, rows, i, o))
    return out


def needed_products(update: str, k: int, m: int = M) -> list[Product]:
    """The matrix products of one Algorithm-1 iteration, and only those the algorithm needs."""
    g = list(zip(G_DIMS[:-1], G_DIMS[1:], strict=True))
    d = list(D_LINEARS)
    upper_g, upper_d, all_d = {1, 2}, {1, 2}, {0, 1, 2}  # input gradients: never w.r.t. the noise or the data
    g_forward = _linear_products("G", g, m, fwd=True, wgrad=False, igrad=set())
    if update == "alternating":
        d_step = (
            g_forward  # G(z) for D's step: forward only
            + _linear_products("D", d, 2 * m, fwd=True, wgrad=True, igrad=upper_d)  # D on m real + m generated rows
        )
        g_step = (
            g_forward
            + _linear_products("D", d, m, fwd=True, wgrad=False, igrad=all_d)  # D held fixed: input gradients only
            + _linear_products("G", g, m, fwd=False, wgrad=True, igrad=upper_g)
        )
        return d_step * k + g_step
    # simultaneous: one G forward, one D forward over 2m rows; D's loss needs D's weight gradients (2m rows),
    # G's loss needs D's input gradients on the m generated rows only, then G's backward.
    return (
        g_forward
        + _linear_products("D", d, 2 * m, fwd=True, wgrad=True, igrad=upper_d)
        + _linear_products("D", d, m, fwd=False, wgrad=False, igrad=all_d)
        + _linear_products("G", g, m, fwd=False, wgrad=True, igrad=upper_g)
    )


class Floor:
    """Times each distinct product alone (median of a few back-to-back batches) and sums over an iteration;
    ``dtype`` bfloat16 gives the floor of --precision bf16 (its products run in bfloat16)."""

    def __init__(self, device: torch.device, calls: int, dtype: torch.dtype = torch.float32) -> None:
        self.device, self.calls, self.dtype = device, calls, dtype
        self.operands: dict[Product, tuple[torch.Tensor, torch.Tensor]] = {}
        self.last: dict[Product, float] = {}

    def measure(self, products: list[Product]) -> None:
        for p in dict.fromkeys(products):
            if p not in self.operands:
                self.operands[p] = p.operands(self.device, self.dtype)
                torch.mm(*self.operands[p])  # warm-up
            a, b = self.operands[p]
            batches = []
            for _ in range(3):
                sync(self.device)
                t0 = time.perf_counter()
                for _ in range(self.calls):
                    torch.mm(a, b)
                sync(self.device)
                batches.append((time.perf_counter() - t0) / self.calls)
            self.last[p] = statistics.median(batches)

    def total(self, products: list[Product]) -> float:
        return sum(self.last[p] for p in products)


# --------------------------------------------------------------------------- the variants


def fast(values: list[float]) -> float:
    """The fastest fifth's boundary (20th percentile) of timings: on a shared machine interference only adds
    time, so the low quantile estimates the undisturbed time; on a quiet machine it is close to the median."""
    if len(values) < 5:
        return min(values)
    return statistics.quantiles(values, n=5, method="inclusive")[0]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_data():
    from advnets.data import load_dataset

    return load_dataset("embedded")


def mnist_config(update: str, k: int):
    """The preset with the eager step (compile "off"): the issue-7 table compares the eager step with the plain
    loop; the compiled step has its own table (step_modes.py, ``--modes``)."""
    from advnets.config import override
    from advnets.presets import PRESETS

    cfg = PRESETS["mnist"]
    return override(cfg, train=override(cfg.train, update=update, k=k, batch_size=M, compile="off"))


@dataclass
class Variant:
    name: str
    update: str
    samples_per_step: int
    step: Callable[[], object]
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    note: str = ""
    times: list[float] = field(default_factory=list)  # seconds per iteration, mean of each round
    iters: list[float] = field(default_factory=list)  # seconds of each timed iteration (CPU; CUDA: as times)
    memory: str = ""


def advnets_variant(data, device, update: str, k: int, name: str = "advnets", tweak=None, note: str = ""):
    from advnets.train import Trainer

    trainer = Trainer(mnist_config(update, k), data, device=device)
    context = contextlib.nullcontext
    if tweak is not None:
        context = tweak(trainer) or contextlib.nullcontext
    per_step = M * (k if update == "alternating" else 1)
    return Variant(name, update, per_step, lambda: trainer.train_step(), context, note)


def plain_variant(data, device, update: str, k: int):
    from plain_loop import PlainGAN

    gan = PlainGAN(data.train, device=device, update=update, k=k, batch_size=M)
    return Variant("plain PyTorch loop", update, M * (k if update == "alternating" else 1), gan.step)


# ----- ablations: each optimisation switched off, and issue 7's two proposals, the step's own since (see NOTES.md)


def _old_dropout_mask(self, shape, include_prob, device, dtype):
    """nets.py before issue 7: bernoulli_ draws one double per input."""
    mask = torch.empty(shape, device=device, dtype=dtype).bernoulli_(include_prob, generator=self.dropout_generator)
    return mask.mul_(1 / include_prob)


def _old_maxout_forward(self, *blocks):
    """nets.py before issue 7: amax over the pieces (its backward counts and divides ties)."""
    z = self.linear(blocks[0] if len(blocks) == 1 else torch.cat(blocks))
    return z.view(*z.shape[:-1], self.units, self.pieces).amax(dim=-1)


def tweak_old_dropout(trainer):
    trainer.d.dropout_mask = types.MethodType(_old_dropout_mask, trainer.d)


def tweak_old_maxout(trainer):
    for layer in trainer.d.hidden:
        layer.forward = types.MethodType(_old_maxout_forward, layer)


def tweak_old_nets(trainer):
    tweak_old_dropout(trainer)
    tweak_old_maxout(trainer)


def tweak_unfused_sgd(trainer):
    """Undo the fused SGD kernel (advnets.train.algorithm.make_optimizer): torch's default multi-tensor SGD,
    three passes per tensor instead of one."""
    for name in ("opt_g", "opt_d"):
        old = getattr(trainer, name)
        group = old.param_groups[0]
        new = torch.optim.SGD(group["params"], lr=group["lr"], momentum=group["momentum"], fused=False)
        setattr(trainer, name, new)


def tweak_no_grad_norm(trainer):
    """The per-step gradient-norm monitor of train.py switched off (to show its cost)."""
    import advnets.train.algorithm as train_module

    @contextlib.contextmanager
    def context() -> Iterator[None]:
        original = train_module.grad_norm
        train_module.grad_norm = lambda params: torch.zeros((), device=params[0].device)
        try:
            yield
        finally:
            train_module.grad_norm = original

    return context


def tweak_separate_d_calls(trainer):
    """Undo "one D forward over cat([real, fake])": D called on the real and the generated rows separately
    (the rows are sliced back out of the concatenation train.py builds, so its copy is still paid)."""
    d_forward = trainer.d.forward
    m = trainer.cfg.train.batch_size

    def forward(*xs):
        if len(xs) == 1 and len(xs[0]) == 2 * m:
            return torch.cat([d_forward(xs[0][:m]), d_forward(xs[0][m:])])
        return d_forward(*xs)

    trainer.d.forward = forward


def tweak_d_weight_grads_in_g_step(trainer):
    """Undo "no weight gradients for D during G's step" (alternating): train.py freezes the parameters in
    trainer.d_params; with none listed, G's backward also computes D's weight gradients (and D's gradient
    norm, then over no parameters, is skipped: a small saving in this row)."""
    trainer.d_params = []


def tweak_dataloader(trainer):
    """Undo "data as one tensor with index batches": minibatches from a shuffling DataLoader over a
    TensorDataset (as the plain loop), moved to the device."""
    from torch.utils.data import DataLoader, TensorDataset

    m = trainer.cfg.train.batch_size
    loader = DataLoader(TensorDataset(trainer.data.cpu()), batch_size=m, shuffle=True, drop_last=True)
    batches = iter(loader)

    def next_real_batch():
        nonlocal batches
        try:
            (x,) = next(batches)
        except StopIteration:
            batches = iter(loader)
            (x,) = next(batches)
        return x.to(trainer.device)

    trainer.next_real_batch = next_real_batch


def tweak_sync_every_step(trainer):
    """Undo "no host-device synchronisation per step": both losses read with .item() after every step."""
    train_step = trainer.train_step

    def step(*args, **kwargs):
        out = train_step(*args, **kwargs)
        out["d_loss"].item(), out["g_loss"].item()
        return out

    trainer.train_step = step


ABLATIONS = {
    "alternating": [
        ("advnets, nets.py before issue 7 (amax maxout, bernoulli_ masks)", tweak_old_nets),
        ("advnets, bernoulli_ dropout masks", tweak_old_dropout),
        ("advnets, amax maxout", tweak_old_maxout),
        ("advnets, separate D calls on real and generated rows", tweak_separate_d_calls),
        ("advnets, D's weight gradients computed in G's step", tweak_d_weight_grads_in_g_step),
        ("advnets, DataLoader over a TensorDataset", tweak_dataloader),
        ("advnets, .item() of the losses every step", tweak_sync_every_step),
        ("advnets without the grad-norm monitor", tweak_no_grad_norm),
        ("advnets, unfused SGD", tweak_unfused_sgd),
    ],
    "simultaneous": [
        ("advnets, nets.py before issue 7 (amax maxout, bernoulli_ masks)", tweak_old_nets),
        ("advnets without the grad-norm monitor", tweak_no_grad_norm),
        ("advnets, unfused SGD", tweak_unfused_sgd),
    ],
}


def build_variants(data, device, updates: list[str], k: int, ablations: bool) -> list[Variant]:
    variants = []
    for update in updates:
        variants.append(advnets_variant(data, device, update, k))
        variants.append(plain_variant(data, device, update, k))
        if ablations:
            for name, tweak in ABLATIONS[update]:
                variants.append(advnets_variant(data, device, update, k, name=name, tweak=tweak))
    return variants


def build_one(name: str, update: str, k: int, data, device) -> Variant:
    if name == "advnets":
        return advnets_variant(data, device, update, k)
    if name == "plain PyTorch loop":
        return plain_variant(data, device, update, k)
    for ablation, tweak in ABLATIONS[update]:
        if ablation == name:
            return advnets_variant(data, device, update, k, name=name, tweak=tweak)
    raise SystemExit(f"unknown variant {name!r}")


# --------------------------------------------------------------------------- memory


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{key} not in /proc/self/status")


def memory_worker(name: str, update: str, k: int, steps: int, threads: int | None) -> dict:
    """In a fresh process: set up the variant, reset the peak-RSS mark, train, report the peak's increase."""
    if threads:
        torch.set_num_threads(threads)
    import resource

    v = build_one(name, update, k, load_data(), torch.device("cpu"))
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        base = _status_mib("VmRSS")
        reset = True
    except (OSError, RuntimeError):
        base, reset = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, False
    with v.context():
        for _ in range(steps):
            v.step()
    try:
        peak = _status_mib("VmHWM")
    except (OSError, RuntimeError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"delta_mib": peak - base, "peak_mib": peak, "reset": reset}


def cpu_memory(v: Variant, k: int, steps: int, threads: int) -> str:
    cmd = [sys.executable, __file__, "--memory-worker", v.name, "--update", v.update, "--k", str(k)]
    cmd += ["--steps", str(steps), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr)
        return "failed"
    r = json.loads(out.stdout.strip().splitlines()[-1])
    how = "" if r["reset"] else " (ru_maxrss, not reset)"
    return f"+{r['delta_mib']:.0f} MiB (peak {r['peak_mib']:.0f}){how}"


# --------------------------------------------------------------------------- sampling


def sampling_throughput(data, device: torch.device, n: int = 10_000, repeats: int = 5) -> dict:
    """Images/s of ``Trainer.sample(n)`` (G in eval mode, no grad), best and median of ``repeats``, and the
    floor: G's three forward products at n rows, each timed alone."""
    from advnets.train import Trainer

    trainer = Trainer(mnist_config("simultaneous", 1), data, device=device)
    trainer.sample(100)
    products = _linear_products("G", list(zip(G_DIMS[:-1], G_DIMS[1:], strict=True)), n, True, False, set())
    floor = Floor(device, calls=1)
    times, floors = [], []
    for _ in range(repeats):  # interleaved with the floor products (shared machines)
        sync(device)
        t0 = time.perf_counter()
        trainer.sample(n)
        sync(device)
        times.append(time.perf_counter() - t0)
        floor.measure(products)
        floors.append(floor.total(products))
    flops = sum(p.flops for p in products)
    return {
        "n": n,
        "best": min(times),
        "median": statistics.median(times),
        "floor": statistics.median(floors),
        "gflops": flops / min(times) / 1e9,
    }


def sampling_table(data, device: torch.device) -> str:
    s = sampling_throughput(data, device)
    return "\n".join(
        [
            f"`Trainer.sample({s['n']:,})` of the `mnist` preset's G (100 -> 1200 -> 1200 -> 784; eval mode, no "
            f"grad), {device.type.upper()} ({device_name(device)}), {torch.get_num_threads()} thread(s):",
            "",
            "| what | images/s | time for 10,000 | % of floor |",
            "|---|---:|---:|---:|",
            f"| advnets, best of 5 (median) | {s['n'] / s['best']:,.0f} ({s['n'] / s['median']:,.0f}) "
            f"| {1e3 * s['best']:.0f} ms | {100 * s['floor'] / s['median']:.0f}% |",
            f"| floor: G's 3 forward products at {s['n']:,} rows, each timed alone | {s['n'] / s['floor']:,.0f} "
            f"| {1e3 * s['floor']:.0f} ms | 100% |",
            "",
            f"- {s['gflops']:.0f} GFLOP/s in the best run; load average {os.getloadavg()[0]:.1f}; torch "
            f"{torch.__version__}; {datetime.date.today().isoformat()}.",
        ]
    )


# --------------------------------------------------------------------------- main


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {os.cpu_count()} cores"


def run(args) -> str:
    device = resolve(args.device)
    updates = ["alternating", "simultaneous"] if args.update == "both" else [args.update]
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    data = load_data()
    variants = build_variants(data, device, updates, args.k, args.ablations)
    floor = Floor(device, calls=args.floor_calls)
    products = {u: needed_products(u, args.k) for u in updates}
    floors: dict[str, list[float]] = {u: [] for u in updates}
    cuda_peak: dict[str, tuple[float, float]] = {}

    for v in variants:  # warm-up (and, on CUDA, the peak memory of the variant's steps)
        if device.type == "cuda":
            sync(device)
            torch.cuda.reset_peak_memory_stats(device)
            held = torch.cuda.memory_allocated(device)  # every variant's weights and data, set up already
        with v.context():
            for _ in range(args.warmup):
                v.step()
        if device.type == "cuda":
            sync(device)
            peak = torch.cuda.max_memory_allocated(device)
            cuda_peak[v.name + v.update] = ((peak - held) / 2**20, peak / 2**20)
    for u in updates:
        floor.measure(products[u])

    for rnd in range(args.rounds):
        shift = rnd % len(variants)
        for v in variants[shift:] + variants[:shift]:
            with v.context():
                if device.type == "cuda":  # one sync per block: a per-iteration one would be timed too
                    sync(device)
                    t0 = time.perf_counter()
                    for _ in range(args.steps):
                        v.step()
                    sync(device)
                    v.iters.append((time.perf_counter() - t0) / args.steps)
                    v.times.append(v.iters[-1])
                else:
                    ts = []
                    for _ in range(args.steps):
                        t0 = time.perf_counter()
                        v.step()
                        ts.append(time.perf_counter() - t0)
                    v.iters += ts
                    v.times.append(sum(ts) / len(ts))
        for u in updates:
            floor.measure(products[u])
            floors[u].append(floor.total(products[u]))
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    load1 = os.getloadavg()
    threads = torch.get_num_threads()
    busy = max(load0[0], load1[0]) > threads + 0.5  # someone else was running too

    if not args.no_memory:
        for v in variants:
            if device.type == "cuda":
                delta, peak = cuda_peak[v.name + v.update]
                v.memory = f"+{delta:.0f} MiB (peak {peak:.0f})"
            else:
                v.memory = cpu_memory(v, args.k, steps=20, threads=threads)

    by = {(v.name, v.update): v for v in variants}
    plain_alt = by.get(("plain PyTorch loop", "alternating"))
    lines = [
        f"The paper's MNIST model (`mnist` preset: m = {M}, k = {args.k}) on the embedded MNIST digits, "
        f"{device.type.upper()} ({device_name(device)}), {threads} thread(s). {args.rounds} interleaved rounds "
        f"of {args.steps} iterations per variant. Each cell: the median over rounds (ratios: of the per-round "
        "ratios); in brackets, the same from the fastest fifth of the iterations (and of the rounds' floors), "
        "which is what a shared machine distorts least: interference only adds time.",
        "",
        "| update | variant | samples/s | ms / iteration | % of floor | × plain alternating | × plain, same update "
        "| × advnets | peak memory |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary = {}
    for u in updates:
        plain_same, ours = by[("plain PyTorch loop", u)], by[("advnets", u)]
        fl = floors[u]
        fl_fast = fast(fl)

        def ratio(a: Variant, b: Variant) -> tuple[float, float]:
            """How many times faster b is than a (samples/s): median of per-round ratios, and fast-fifth ratio."""
            per_round = [
                (b.samples_per_step / tb) / (a.samples_per_step / ta) for ta, tb in zip(a.times, b.times, strict=True)
            ]
            quick = (b.samples_per_step / fast(b.iters)) / (a.samples_per_step / fast(a.iters))
            return statistics.median(per_round), quick

        def cell(pair: tuple[float, float] | None) -> str:
            return "—" if pair is None else f"{pair[0]:.2f}× ({pair[1]:.2f}×)"

        for v in [x for x in variants if x.update == u]:
            t_med, t_fast = statistics.median(v.times), fast(v.iters)
            pct = (statistics.median(f / t for f, t in zip(fl, v.times, strict=True)), fl_fast / t_fast)
            x_alt = ratio(plain_alt, v) if plain_alt is not None else None
            x_same, x_ours = ratio(plain_same, v), ratio(ours, v)
            summary[(v.name, u)] = {"pct_floor": pct, "x_plain_same": x_same, "x_plain_alt": x_alt}
            lines.append(
                f"| {u} | {v.name} | {v.samples_per_step / t_med:,.0f} ({v.samples_per_step / t_fast:,.0f}) "
                f"| {1e3 * t_med:.1f} ({1e3 * t_fast:.1f}) | {100 * pct[0]:.0f}% ({100 * pct[1]:.0f}%) "
                f"| {cell(x_alt)} | {cell(x_same)} | {cell(x_ours)} | {v.memory or '—'} |"
            )
        gflop = sum(p.flops for p in products[u]) / 1e9
        per_step = M * (args.k if u == "alternating" else 1)
        lines.append(
            f"| {u} | floor: {len(products[u])} matrix products, {gflop:.2f} GFLOP, each timed alone "
            f"| {per_step / statistics.median(fl):,.0f} ({per_step / fl_fast:,.0f}) "
            f"| {1e3 * statistics.median(fl):.1f} ({1e3 * fl_fast:.1f}) | 100% | | | | — |"
        )
    fwd = [p for p in products[updates[0]] if p.what == "fwd"]
    fwd_rate = sum(p.flops for p in fwd) / sum(floor.last[p] for p in fwd) / 1e9
    lines.append("")
    notes = []

    def verdict(name: str, pair: tuple[float, float], target: float, percent: bool = False) -> str:
        show = (lambda x: f"{100 * x:.0f}%") if percent else (lambda x: f"{x:.2f}×")
        met = "met" if pair[0] >= target else "missed"
        return f"{name} {show(pair[0])} (target ≥ {show(target)}: {met}; fastest fifth {show(pair[1])})"

    if ("advnets", "alternating") in summary:
        s = summary[("advnets", "alternating")]
        notes.append(verdict("alternating, advnets / plain loop:", s["x_plain_same"], 1.3))
        notes.append(verdict("alternating, advnets' share of the floor:", s["pct_floor"], 0.75, percent=True))
    if ("advnets", "simultaneous") in summary and plain_alt:
        x = summary[("advnets", "simultaneous")]["x_plain_alt"]
        notes.append(verdict("simultaneous, advnets / plain alternating loop:", x, 1.6))
    if notes:
        lines.append("- Targets: " + "; ".join(notes) + ".")
    lines += [
        "- Floor: the products listed in `needed_products()`, each timed alone (median of 3 batches of "
        f"{args.floor_calls} back-to-back calls) in every round; the forward products ran at {fwd_rate:.0f} "
        "GFLOP/s in the last round.",
    ]
    if not args.no_memory:
        lines.append(
            "- Peak memory: "
            + (
                "increase of `torch.cuda.max_memory_allocated` over the memory allocated before the variant's "
                "warm-up iterations (all variants' weights and data); the process's peak in brackets."
                if device.type == "cuda"
                else "increase of the process's peak RSS (VmHWM, reset via /proc/self/clear_refs after set-up) "
                "over 20 iterations, each variant in a fresh subprocess; the absolute peak in brackets."
            )
        )
    lines += [
        f"- Machine: {device_name(device)}; torch threads {threads}; load average {load0[0]:.1f} → {load1[0]:.1f} "
        f"(1 min) during the run{' (shared: absolute timings polluted, ratios less so)' if busy else ''}; "
        f"Python {platform.python_version()}, torch {torch.__version__}; "
        f"{datetime.date.today().isoformat()}; {time.perf_counter() - t_start:.0f} s.",
        "- Command: `python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]) + "`.",
    ]
    text = "\n".join(lines)
    if not args.no_sampling:
        text += "\n\n" + sampling_table(data, device)
    return text


def resolve(name: str) -> torch.device:
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available here")
    return device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--update", choices=["both", "alternating", "simultaneous"], default="both")
    ap.add_argument("--k", type=int, default=1, help="D steps per G step (alternating)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--steps", type=int, default=None, help="iterations per variant per round (default 5)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up iterations per variant")
    ap.add_argument("--floor-calls", type=int, default=10, help="back-to-back calls per timed floor batch")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--quick", action="store_true", help="3 rounds of 3 iterations")
    ap.add_argument("--ablations", action="store_true", help="add rows with each optimisation switched off")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--no-sampling", action="store_true", help="skip the sampling throughput table")
    ap.add_argument("--sampling-only", action="store_true", help="only the sampling throughput table")
    ap.add_argument("--modes", action="store_true", help="also the step-modes table (step_modes.py)")
    ap.add_argument(
        "--modes-only",
        action="store_true",
        help="only the step-modes table: eager/compiled x fp32/bf16 against each floor at --threads-list",
    )
    ap.add_argument("--threads-list", default="1,2", help="thread counts of the step-modes table (default 1,2)")
    ap.add_argument("--memory-worker", help=argparse.SUPPRESS)
    ap.add_argument("--modes-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--first-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.modes_worker or args.modes_only or args.modes:
        import step_modes  # benchmarks/step_modes.py

        updates = ["alternating", "simultaneous"] if args.update == "both" else [args.update]
        args.device = resolve(args.device).type
        if args.modes_worker:
            this = sys.modules[__name__]
            res = step_modes.worker(
                this, updates, args.rounds, args.steps, args.warmup, args.floor_calls, args.first_only, args.device
            )
            print(json.dumps(res))
            return
        args.steps = args.steps or (2 if args.quick else 5)
        args.rounds = args.rounds or (2 if args.quick else 15)
        if args.quick:
            args.warmup = 1
        modes = step_modes.table(args)
        if args.modes_only:
            print(modes)
            return
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, args.update, args.k, args.steps or 20, args.threads)))
        return
    if args.sampling_only:
        print(sampling_table(load_data(), resolve(args.device)))
        return
    args.steps = args.steps or (3 if args.quick else 5)
    args.rounds = args.rounds or (3 if args.quick else 15)
    print(run(args))
    if args.modes:
        print("\n" + modes)


if __name__ == "__main__":
    main()
