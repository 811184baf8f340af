"""Coordinating G and D: k = 1, 2, 5 against the simultaneous update, by wall-clock (issue §7.5).

The paper leaves k, the number of D steps per G step in Algorithm 1, open ("we
used k = 1, the least expensive option"), and the reference code instead updates
both players from one batch ("simultaneous"). This benchmark measures rather
than claims which one gets to a fixed sample quality soonest, on

* **ring**: the 2-D ring of 8 Gaussians (``ring8``, :func:`advnets.toy.train_toy`,
  its default nets and Adam optimiser). Quality target: **all 8 modes covered**
  by :func:`advnets.evaluate.modes.mode_coverage` -- a mode is covered when at
  least ``ceil(0.2 n / 8)`` of the n samples fall within 3 std of it (the
  high-quality-sample criterion). The run is evaluated on the 1,000 fixed-noise
  samples of G that ``train_toy(..., frames=N)`` records every
  ``--ring-eval-every`` iterations (so 25 high-quality samples per mode).
  ``advnets.toy`` implements Algorithm 1 with k only: it has no simultaneous
  update, so the ring compares k = 1, 2, 5. It also trains on the CPU only,
  whatever ``--device`` says.
* **mnist**: the paper's MNIST model (``mnist`` preset, SGD with momentum) on the
  embedded digits (4,000 train / 500 valid / 500 test), driven here with
  :meth:`advnets.train.Trainer.train_step`. Every ``--eval-every`` epochs (and at
  epoch 0 and at the end) G draws S = ``--samples`` samples (default 2,000, fixed
  noise) and we record
  - the Parzen-window log-likelihood of *validation* images
    (:func:`advnets.evaluate.parzen.parzen_evaluate`): sigma is chosen on the
    first 250 validation images and the mean is taken over the other 250 (the
    test split is never looked at);
  - the digit classes covered by the first 1,000 samples
    (:func:`advnets.evaluate.classifier.class_coverage`: a class is covered with
    at least 2 % of the samples; the classifier cache of the stability benchmark
    is reused).
  Quality target: **Parzen LL >= T (``--target``) and >= ``--min-classes``
  (default 9) classes covered**, at the same evaluation. Default T = 0 nats:
  see ``DEFAULT_TARGET`` below for why.

Budget. Every configuration gets the same number of D updates (Algorithm 1's
inner-loop steps, each on a fresh minibatch): ``--epochs`` passes over the
training split on MNIST (Trainer.total_steps = epochs x 40 // k iterations), and
``--ring-d-steps`` D updates on the ring (ring-d-steps // k iterations). So k = 5
has a fifth of k = 1's G updates; the simultaneous update, one D and one G
update per iteration, has as many iterations as k = 1.

Time to target = (iterations until the target is first met) x (seconds per
Algorithm-1 iteration of that update rule). The two factors are measured apart,
so that the wall-clock stays honest when many training runs share one machine:
the iteration counts come from the training runs (parallel workers, one thread
each on the CPU), the seconds per iteration from a separate timing phase run
alone in this process after the training runs (``--timing-iters`` iterations
after a warm-up, the median of ``--timing-repeats`` repeats; one thread on the
CPU, like the workers). On the ring a timed iteration is the difference
between ``train_toy`` runs of W + N and W steps, divided by N (the set-up and
the final evaluation cancel). The evaluation is timed in neither.

With several seeds (``--seeds``, default 0-4) the table gives the median of the
iterations to target over all seeds, a seed that never met the target counting
as infinitely many (so the median is "not reached" when fewer than half of the
seeds got there), and how many seeds reached it; below it, one line per seed.

Every training run writes its trajectory to ``<out>/<part>/<config>-seed<s>.json``
and is skipped when that file exists, so an interrupted benchmark continues where
it stopped; the target is applied when the table is made, so another
``--target`` needs no retraining. Timings are kept in ``<out>/<part>/timing.json``
(redone with ``--retime`` or on another device). Usage:

    python benchmarks/coordination.py --device cuda --jobs 8      # the full benchmark
    python benchmarks/coordination.py --epochs 2 --seeds 0 --ring-d-steps 1000 \\
        --timing-iters 20 --timing-repeats 1 --out /tmp/coord    # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402
from workers import run_workers  # noqa: E402

# Algorithm 1's k D steps per G step (update "alternating"), and the reference code's
# one-batch update of both players (§7.5: "compare k = 1, k = 2, k = 5 and the simultaneous update").
CONFIGS = {
    "k1": {"update": "alternating", "k": 1},
    "k2": {"update": "alternating", "k": 2},
    "k5": {"update": "alternating", "k": 5},
    "simultaneous": {"update": "simultaneous", "k": 1},
}
# advnets.toy has k but no simultaneous update.
PART_CONFIGS = {"ring": ("k1", "k2", "k5"), "mnist": tuple(CONFIGS)}

N_MODES = 8  # ring8
PARZEN_SIGMA_HALF = 250  # sigma chosen on valid[:250], LL averaged over valid[250:]
CLASS_SAMPLES = 1000  # classes covered among this many samples (as benchmarks/stability.py)
EVAL_SEED = 1234  # the evaluation's noise: the same z at every evaluation, independent of training
# Default Parzen target, in nats, on the 250 held-out validation digits with 2,000 samples.
# Reference points on that estimate (sigma from the other 250, as here): 2,000 random
# *training* digits score 171 (the real-data ceiling; 2,000 digits of classes 0-4 only
# score -162), the mean training image repeated -42 (what G emits at initialisation,
# its output bias being the data mean), collapsed runs -70 to -460, and the runs that ended
# with all 10 classes 20 to 40 (benchmarks/RESULTS.md). 0 is well above the mean image and
# collapsed runs and below what healthy runs reach; together with >= 9 classes it asks for
# varied, digit-like samples. The target is applied when the table is made: re-tabulate with
# --timing-only --target T to try another.
DEFAULT_TARGET = 0.0


# ----------------------------------------------------------------------------- training


def run_ring(config: str, seed: int, args: argparse.Namespace, path: Path) -> dict:
    """Train one ring8 run with train_toy, recording G's samples every ring_eval_every iterations."""
    import torch

    torch.set_num_threads(1)
    from advnets.evaluate.modes import mode_coverage
    from advnets.toy import toy_config, train_toy

    k = CONFIGS[config]["k"]
    steps = args.ring_d_steps // k  # the same number of D updates for every k
    cfg = toy_config("ring8", k=k, seed=seed, steps=steps)
    result = train_toy(cfg, frames=max(1, steps // args.ring_eval_every))
    data = result.data
    trajectory = []
    for frame in result.frames:
        cov = mode_coverage(frame.points, data.modes, data.std)  # 3 std, ceil(0.2 n / K) samples per mode
        trajectory.append(
            {
                "iteration": frame.step,
                "d_updates": frame.step * k,
                "modes_covered": int(cov["modes_covered"]),
                "high_quality_fraction": float(cov["high_quality_fraction"]),
            }
        )
    record = {
        "part": "ring",
        "config": config,
        "seed": seed,
        "k": k,
        "update": "alternating",
        "iterations": steps,
        "d_updates": steps * k,
        "n_samples": len(result.frames[-1].points),
        # train_toy's own clock: training plus the frames and the final coverage (CPU, 1 thread).
        "seconds": round(result.seconds, 2),
        "trajectory": trajectory,
    }
    _write_json(path, record)
    return record


def _mnist_config(config: str, seed: int, args: argparse.Namespace):
    from advnets.config import override
    from advnets.presets import get_preset

    spec = CONFIGS[config]
    base = get_preset("mnist")
    train = override(
        base.train,
        update=spec["update"],
        k=spec["k"],
        seed=seed,
        epochs=args.epochs,
        device=args.device,
        instance_noise=args.instance_noise,
    )
    return override(base, train=train, optim=override(base.optim, d_lr_scale=args.d_lr_scale))


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_mnist(config: str, seed: int, args: argparse.Namespace, path: Path) -> dict:
    """Train one MNIST run with Trainer.train_step, evaluating every eval_every epochs."""
    import torch

    if args.device == "cpu":
        torch.set_num_threads(1)
    from advnets.data import load_dataset
    from advnets.evaluate.classifier import class_coverage, load_or_train_classifier
    from advnets.evaluate.parzen import parzen_evaluate
    from advnets.train import Trainer

    cfg = _mnist_config(config, seed, args)
    dataset = load_dataset(cfg.data)
    trainer = Trainer(cfg, dataset, device=args.device)
    classifier = load_or_train_classifier(dataset, args.classifier_cache, device=args.device)
    valid = dataset.valid.reshape(len(dataset.valid), -1).to(args.device)
    pick_sigma, held_out = valid[:PARZEN_SIGMA_HALF], valid[PARZEN_SIGMA_HALF:]

    def evaluate(train_seconds: float) -> dict:
        gen = torch.Generator().manual_seed(EVAL_SEED)  # CPU generator: the same z on every device
        samples = trainer.sample(args.samples, generator=gen)
        row = {
            "iteration": trainer.step,
            "epoch": trainer.epoch,
            "d_updates": trainer.d_updates,
            "train_seconds": round(train_seconds, 3),
        }
        if not bool(torch.isfinite(samples).all()):
            return {**row, "parzen": None, "classes": 0, "diverged": True}
        flat = samples.reshape(len(samples), -1)
        parzen = parzen_evaluate(held_out, flat, pick_sigma, device=args.device, check_range=False)
        coverage = class_coverage(classifier, samples[:CLASS_SAMPLES])
        return {**row, "parzen": parzen["mean"], "sigma": parzen["sigma"], "classes": coverage["classes_covered"]}

    trajectory = [evaluate(0.0)]
    train_seconds = 0.0
    next_eval = args.eval_every
    while trainer.step < trainer.total_steps:
        _sync(args.device)
        t0 = time.perf_counter()
        # Run to the next evaluation point without syncing (a k = 5 iteration may cross it mid-way).
        while trainer.step < trainer.total_steps and trainer.epoch < next_eval:
            trainer.train_step()
        _sync(args.device)
        train_seconds += time.perf_counter() - t0
        row = evaluate(train_seconds)
        trajectory.append(row)
        print(
            f"{config} seed {seed}: epoch {row['epoch']}, iteration {row['iteration']}, "
            f"Parzen {row['parzen'] if row['parzen'] is None else round(row['parzen'], 1)}, "
            f"{row['classes']} classes",
            file=sys.stderr,
            flush=True,
        )
        if row.get("diverged"):
            break
        next_eval = (trainer.epoch // args.eval_every + 1) * args.eval_every

    record = {
        "part": "mnist",
        "config": config,
        "seed": seed,
        "k": CONFIGS[config]["k"],
        "update": CONFIGS[config]["update"],
        "epochs": args.epochs,
        "iterations": trainer.total_steps,
        "n_samples": args.samples,
        "device": args.device,
        "seconds": round(train_seconds, 2),  # training only, on a possibly shared machine
        "trajectory": trajectory,
    }
    _write_json(path, record)
    return record


# ------------------------------------------------------------------------------- figure


def quality_figure(part: str, records: list[dict], timing: dict[str, dict] | None, path: Path) -> Path:
    """Quality against estimated wall-clock (iterations x the timed seconds per iteration, or
    iterations if untimed): one panel per quality measure, one line per run, a colour per rule."""
    from advnets.figures import new_figure, save_figure

    panels = [("modes_covered", "modes covered (of 8)")] if part == "ring" else []
    panels = panels or [("parzen", "Parzen LL on validation digits (nats)"), ("classes", "classes covered")]
    fig = new_figure(5.2 * len(panels), 3.8, layout="constrained")
    axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
    colours = {"k1": "tab:blue", "k2": "tab:orange", "k5": "tab:red", "simultaneous": "tab:green"}
    timed = timing is not None and all(r["config"] in timing for r in records)
    for ax, (key, label) in zip(axes, panels, strict=True):
        seen = set()
        for r in sorted(records, key=lambda r: (r["config"], r["seed"])):
            scale = timing[r["config"]]["seconds_per_iteration"] if timed else 1.0
            rows = [row for row in r["trajectory"] if row.get(key) is not None]
            spec = CONFIGS[r["config"]]
            name = f"k = {spec['k']}" if spec["update"] == "alternating" else "simultaneous"
            ax.plot(
                [row["iteration"] * scale for row in rows],
                [row[key] for row in rows],
                color=colours[r["config"]],
                alpha=0.8,
                label=None if name in seen else name,
            )
            seen.add(name)
        if key == "parzen":
            ax.set_ylim(bottom=max(ax.get_ylim()[0], -150))
        ax.set_xlabel("seconds (iterations × s / iteration)" if timed else "iterations")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------- timing


def _median_of(values: list[float]) -> float:
    return float(statistics.median(values))


def time_ring(config: str, args: argparse.Namespace) -> dict:
    """Seconds per Algorithm-1 iteration of train_toy on ring8: (t(W + N) - t(W)) / N."""
    import torch

    torch.set_num_threads(1)
    from advnets.toy import toy_config, train_toy

    k, warm, n = CONFIGS[config]["k"], args.timing_warmup, args.timing_iters
    train_toy(toy_config("ring8", k=k, steps=warm))  # first-call costs (imports, allocator) stay out
    per_iter = []
    for _ in range(args.timing_repeats):
        short = train_toy(toy_config("ring8", k=k, steps=warm)).seconds
        long = train_toy(toy_config("ring8", k=k, steps=warm + n)).seconds
        per_iter.append(max(long - short, 0.0) / n)
    return {"seconds_per_iteration": _median_of(per_iter), "repeats": per_iter, "iterations": n}


def time_mnist(config: str, args: argparse.Namespace) -> dict:
    """Seconds per Algorithm-1 iteration of Trainer.train_step (k D steps + 1 G step, or one simultaneous step)."""
    import torch

    if args.device == "cpu":
        torch.set_num_threads(1)
    from advnets.data import load_dataset
    from advnets.train import Trainer

    cfg = _mnist_config(config, 0, args)
    trainer = Trainer(cfg, load_dataset(cfg.data), device=args.device)
    for _ in range(args.timing_warmup):
        trainer.train_step()
    per_iter = []
    for _ in range(args.timing_repeats):
        _sync(args.device)
        t0 = time.perf_counter()
        for _ in range(args.timing_iters):
            trainer.train_step()
        _sync(args.device)
        per_iter.append((time.perf_counter() - t0) / args.timing_iters)
    return {"seconds_per_iteration": _median_of(per_iter), "repeats": per_iter, "iterations": args.timing_iters}


def device_name(device: str) -> str:
    """The CPU model, or the GPU's name with it, for the table's header."""
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} (host CPU {cpu_model()})"
    return f"{cpu_model()}, 1 thread"


def timings(part: str, args: argparse.Namespace, out: Path) -> dict[str, dict]:
    """Per-configuration seconds per iteration, from <out>/<part>/timing.json or measured now."""
    path = out / part_dir(part, args) / "timing.json"
    where = "cpu" if part == "ring" else args.device  # train_toy runs on the CPU
    cached = json.loads(path.read_text()) if path.exists() else {}
    if args.retime or cached.get("device") != device_name(where):
        cached = {"device": device_name(where), "configs": {}}
    timer = time_ring if part == "ring" else time_mnist
    for config in args_configs(part, args):
        if config not in cached["configs"]:
            print(f"timing {part} {config} ...", file=sys.stderr, flush=True)
            cached["configs"][config] = timer(config, args)
            _write_json(path, cached)
    return cached["configs"]


# -------------------------------------------------------------------------------- table


def reached_at(record: dict, args: argparse.Namespace) -> int | None:
    """The first evaluated iteration at which the run met its part's quality target, or None."""
    for row in record["trajectory"]:
        if record["part"] == "ring":
            ok = row["modes_covered"] >= N_MODES
        else:
            ok = row["parzen"] is not None and row["parzen"] >= args.target and row["classes"] >= args.min_classes
        if ok:
            return row["iteration"]
    return None


def best_quality(record: dict) -> str:
    rows = record["trajectory"]
    if record["part"] == "ring":
        return f"best {max(r['modes_covered'] for r in rows)}/{N_MODES} modes"
    scored = [r for r in rows if r["parzen"] is not None]
    if not scored:
        return "diverged"
    best = max(scored, key=lambda r: r["parzen"])
    return f"best Parzen {best['parzen']:.1f} ({best['classes']} classes, epoch {best['epoch']})"


def _fmt_seconds(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def table(part: str, records: list[dict], timing: dict[str, dict] | None, args: argparse.Namespace) -> str:
    if part == "ring":
        target = f"all {N_MODES} modes covered (1,000 samples, 3 std, >= 25 high-quality samples per mode)"
        budget = (
            f"{args.ring_d_steps:,} D updates (ring-d-steps / k iterations), evaluated every {args.ring_eval_every}"
        )
    else:
        target = (
            f"Parzen LL >= {args.target:g} nats on 250 validation digits (sigma from the other 250; "
            f"{args.samples:,} samples) and >= {args.min_classes} classes covered"
        )
        budget = f"{args.epochs} epochs of D updates (epochs x 40 / k iterations), evaluated every {args.eval_every}"
    unit = "iterations" if part == "ring" else "epochs"
    lines = [f"Target: {target}. Budget: {budget} {unit}.", ""]
    lines += [
        "| configuration | seeds reached | iterations to target (median) | s / iteration | time to target "
        "| × k = 1 | not reached: best quality |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    k1_time = None
    rows = []
    for config in args_configs(part, args):
        recs = sorted((r for r in records if r["config"] == config), key=lambda r: r["seed"])
        if not recs:
            continue
        hits = [reached_at(r, args) for r in recs]
        n_hit = sum(h is not None for h in hits)
        med = statistics.median([math.inf if h is None else h for h in hits])
        per_iter = timing[config]["seconds_per_iteration"] if timing and config in timing else None
        total = med * per_iter if per_iter is not None and math.isfinite(med) else None
        if config == "k1":
            k1_time = total
        misses = [best_quality(r) for r, h in zip(recs, hits, strict=True) if h is None]
        rows.append((config, len(recs), n_hit, med, per_iter, total, misses))
    for config, n, n_hit, med, per_iter, total, misses in rows:
        spec = CONFIGS[config]
        label = f"k = {spec['k']}" if spec["update"] == "alternating" else "simultaneous"
        ratio = f"{total / k1_time:.2f}×" if total is not None and k1_time else "—"
        lines.append(
            f"| {label} | {n_hit}/{n} | {f'{med:,.0f}' if math.isfinite(med) else 'not reached'} | "
            f"{_fmt_seconds(per_iter) if per_iter is not None else '—'} | "
            f"{_fmt_seconds(total) if total is not None else ('not reached' if not math.isfinite(med) else '—')} | "
            f"{ratio} | {'; '.join(misses) if misses else ''} |"
        )
    if part == "ring":
        lines.append("| simultaneous | — | — | — | — | — | not available: advnets.toy has no simultaneous update |")
    lines += ["", "Per seed (iteration of first reaching the target; final quality):", ""]
    for config in args_configs(part, args):
        recs = sorted((r for r in records if r["config"] == config), key=lambda r: r["seed"])
        if not recs:
            continue
        cells = []
        for r in recs:
            hit = reached_at(r, args)
            last = r["trajectory"][-1]
            if part == "ring":
                final = f"final {last['modes_covered']}/{N_MODES} modes"
            else:
                p = last["parzen"]
                final = "diverged" if p is None else f"final Parzen {p:.1f}, {last['classes']} classes"
            cells.append(f"{r['seed']}: {hit if hit is not None else 'not reached'} ({final})")
        lines.append(f"- {config}: " + "; ".join(cells))
    return "\n".join(lines)


# --------------------------------------------------------------------------------- main


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def args_configs(part: str, args: argparse.Namespace) -> list[str]:
    return [c for c in args.configs if c in PART_CONFIGS[part]]


def part_dir(part: str, args: argparse.Namespace) -> str:
    """Where a part's runs are kept: "mnist" for the paper's recipe, a longer name for another."""
    if part == "mnist" and (args.d_lr_scale != 1.0 or args.instance_noise != 0.0):
        return f"mnist-dlr{args.d_lr_scale:g}-noise{args.instance_noise:g}"
    return part


def run_path(out: Path, args: argparse.Namespace, part: str, config: str, seed: int) -> Path:
    return out / part_dir(part, args) / f"{config}-seed{seed}.json"


def worker_argv(args: argparse.Namespace, part: str, config: str, seed: int) -> list[str]:
    """This script's command line for one training run, with the options that shape it."""
    cmd = [sys.executable, __file__, "--out", str(args.out), "--device", args.device]
    cmd += ["--epochs", str(args.epochs), "--eval-every", str(args.eval_every), "--samples", str(args.samples)]
    cmd += ["--ring-d-steps", str(args.ring_d_steps), "--ring-eval-every", str(args.ring_eval_every)]
    cmd += ["--d-lr-scale", str(args.d_lr_scale), "--instance-noise", str(args.instance_noise)]
    cmd += ["--classifier-cache", str(args.classifier_cache), "--worker", part, config, str(seed)]
    return cmd


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["ring", "mnist"], choices=["ring", "mnist"])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--device", default="cpu", help="MNIST training and timing: cpu (default) or cuda")
    ap.add_argument("--epochs", type=int, default=100, help="MNIST budget: epochs of D updates (default 100)")
    ap.add_argument("--eval-every", type=int, default=5, help="MNIST: epochs between evaluations (default 5)")
    ap.add_argument("--samples", type=int, default=2000, help="MNIST: samples per Parzen evaluation (default 2,000)")
    ap.add_argument(
        "--target", type=float, default=DEFAULT_TARGET, help=f"MNIST Parzen LL target (default {DEFAULT_TARGET:g})"
    )
    ap.add_argument("--min-classes", type=int, default=9, help="MNIST: classes covered for the target (default 9)")
    ap.add_argument(
        "--d-lr-scale", type=float, default=1.0, help="MNIST: D's learning rate over G's (default 1, the paper)"
    )
    ap.add_argument(
        "--instance-noise", type=float, default=0.0, help="MNIST: train.instance_noise (default 0, the paper)"
    )
    ap.add_argument("--ring-d-steps", type=int, default=20000, help="ring budget in D updates (default 20,000)")
    ap.add_argument("--ring-eval-every", type=int, default=50, help="ring: iterations between evaluations")
    ap.add_argument("--jobs", type=int, default=2, help="training runs in parallel (default 2; one thread each on CPU)")
    ap.add_argument("--out", type=Path, default=here / "out" / "coordination")
    ap.add_argument(
        "--classifier-cache", type=Path, default=here / "out" / "stability" / "epochs100" / "classifier-cache"
    )
    ap.add_argument("--timing-iters", type=int, default=200, help="timed iterations per repeat (default 200)")
    ap.add_argument("--timing-warmup", type=int, default=20, help="untimed iterations first (default 20)")
    ap.add_argument("--timing-repeats", type=int, default=3, help="the median of this many repeats (default 3)")
    ap.add_argument("--timing-only", action="store_true", help="no training runs: timing and the table only")
    ap.add_argument("--no-timing", action="store_true", help="no timing: iterations to target only")
    ap.add_argument("--retime", action="store_true", help="measure the timings again even if cached")
    ap.add_argument("--worker", nargs=3, metavar=("PART", "CONFIG", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA device is available")
    out = args.out

    if args.worker:
        part, config, seed = args.worker[0], args.worker[1], int(args.worker[2])
        runner = run_ring if part == "ring" else run_mnist
        runner(config, seed, args, run_path(out, args, part, config, seed))
        return 0

    jobs = [
        (p, c, s)
        for p in args.parts
        for c, s in itertools.product(args_configs(p, args), args.seeds)
        if not run_path(out, args, p, c, s).exists()
    ]
    if args.timing_only:
        jobs = []
    if any(p == "mnist" for p, _, _ in jobs):  # train the classifier once, before the workers race to cache it
        from advnets.data import load_dataset
        from advnets.evaluate.classifier import load_or_train_classifier

        load_or_train_classifier(load_dataset("embedded"), args.classifier_cache)
    t_start = time.perf_counter()
    failed = run_workers([(" ".join(map(str, job)), worker_argv(args, *job)) for job in jobs], args.jobs)
    train_wall = time.perf_counter() - t_start

    # Timing: after the training runs, alone on the machine (§7.5: "by wall-clock").
    for part in args.parts:
        timing = None if args.no_timing else timings(part, args, out)
        records = [
            json.loads(run_path(out, args, part, c, s).read_text())
            for c, s in itertools.product(args_configs(part, args), args.seeds)
            if run_path(out, args, part, c, s).exists()
        ]
        where = "cpu" if part == "ring" else args.device
        timed = (
            "not timed"
            if args.no_timing
            else f"s / iteration: median of {args.timing_repeats} × {args.timing_iters} iterations"
        )
        print()
        if part == "ring":
            print("### Ring of 8 Gaussians (ring8, advnets.toy defaults: Adam, m = 128)\n")
        else:
            recipe = (
                "the paper's recipe"
                if part_dir(part, args) == "mnist"
                else f"D at {args.d_lr_scale:g}× G's learning rate, instance noise {args.instance_noise:g}"
            )
            print(f"### Embedded MNIST (mnist preset: SGD + momentum, m = 100; 4,000 training digits; {recipe})\n")
        print(f"Device: {device_name(where)}; seeds {', '.join(map(str, args.seeds))}; {timed}.\n")
        print(table(part, records, timing, args))
        if records:
            figure = quality_figure(part, records, timing, out / part_dir(part, args) / "quality-over-time.png")
            print(f"figure: {figure}", file=sys.stderr)
    print(
        f"\n(training runs of this invocation: {train_wall:.0f} s wall-clock, {args.jobs} in parallel)", file=sys.stderr
    )
    if failed:
        print(f"\nfailed runs: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
