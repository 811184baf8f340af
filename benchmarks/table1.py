"""Table 1 on full MNIST over seeds: two recipes, best checkpoint by validation, reference protocol (issue 15).

For every recipe and seed a run directory ``--out/<recipe>-s<seed>`` is trained
by the ``advnets train`` CLI in a subprocess (``--workers`` at a time, one
thread each) for ``--epochs`` epochs, keeping a checkpoint every
``--checkpoint-epochs`` epochs; an existing run is continued with ``--resume
--epochs E``, a finished one left alone. Then, for each run:

1. the validation curve: every kept checkpoint scored on validation images
   50,000-50,999 with ``--valid-samples`` samples of G (default 10,000) and σ
   from numpy.logspace(-1, 0, 10), cached per checkpoint in
   ``parzen_validation.json`` in the run (or under ``--cache-dir``), so reruns
   skip what is scored;
2. the best checkpoint on validation (never test) scored by the full reference
   protocol on the 10,000 test images (advnets.evaluate.table1).

Prints Table 1 per seed and mean ± sd over seeds beside the paper's rows, with
``--baselines`` (real training images, k-means centroids, a Gaussian fit) on the
same protocol; draws validation LL against epochs (``--figure``); appends a
dated section to ``--results``. With ``--probe-csv``, each scored run that
`advnets train --branch-from` started (a learning-rate probe) gets its row in the
CSV that benchmarks/anneal_level.py fits.

    python benchmarks/table1.py --seeds 0 1 2 --epochs 250 --workers 2        # train (resumable) and score
    python benchmarks/table1.py --score-only --baselines                      # score what exists under --out
    python benchmarks/table1.py --run /path/to/run --cache-dir /tmp/t1 --max-checkpoints 2 --no-record
                                                   # score an existing run read-only (cache elsewhere, nothing recorded)
    python benchmarks/table1.py --run s1-e200-lr0.01 --cache-dir /tmp/t1 --no-record \\
        --probe-csv benchmarks/table1_anneal_probes.csv       # a probe's row for anneal_level.py
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workers import run_workers  # noqa: E402

from advnets.checkpoint import latest_checkpoint, load_checkpoint  # noqa: E402
from advnets.data import load_dataset  # noqa: E402
from advnets.errors import AdvnetsError  # noqa: E402
from advnets.evaluate.annealing import plateau_fit  # noqa: E402
from advnets.evaluate.baselines import baseline_rows  # noqa: E402
from advnets.evaluate.options import MetricOptions  # noqa: E402
from advnets.evaluate.protocol import REFERENCE_NUM_SAMPLES, format_row  # noqa: E402
from advnets.evaluate.table1 import (  # noqa: E402
    kept_checkpoints,
    score_best,
    validation_curve,
)
from advnets.io import atomic_write_bytes  # noqa: E402
from advnets.report.table1 import plot_validation_curves, summarize, table1_markdown  # noqa: E402
from advnets.runs import read_config_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RECIPES = {
    "paper": ["--preset", "mnist"],  # the reference code's hyperparameters and simultaneous update
    "demo": ["--preset", "mnist", "--d-lr-scale", "2", "--instance-noise", "0.1"],  # issue 10's measured remedy
}
# The mnist preset on full MNIST: 50,000 training images in minibatches of 100, k = 1.
STEPS_PER_EPOCH = 50_000 // 100


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to train (default 0 1 2)")
    p.add_argument("--epochs", type=int, default=250, help="train each run to this many epochs (default 250)")
    p.add_argument(
        "--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES), help="recipes to train (default: both)"
    )
    p.add_argument("--out", type=Path, default=REPO / "runs" / "table1", help="root of the runs (default runs/table1)")
    p.add_argument(
        "--data",
        default=str(REPO.parent / "shared" / "data" / "mnist"),
        help="full MNIST: a directory of the four IDX files, or 'mnist' after `advnets data fetch mnist` "
        "(default ../shared/data/mnist beside the repository)",
    )
    p.add_argument("--workers", type=int, default=1, help="training processes at a time, one thread each")
    p.add_argument("--checkpoint-epochs", type=int, default=10, help="keep a checkpoint every N epochs (default 10)")
    p.add_argument("--score-only", action="store_true", help="skip training; score the runs that exist")
    p.add_argument(
        "--run", type=Path, action="append", default=None, metavar="DIR", help="score this existing run (repeatable)"
    )
    p.add_argument(
        "--as-seeds",
        metavar="LABEL",
        default=None,
        help="the --run runs are seeds of one recipe named LABEL: one row each and their mean ± sd",
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="keep the score caches here, not in the runs")
    p.add_argument(
        "--max-checkpoints", type=int, default=None, metavar="K", help="score K evenly spaced, last included"
    )
    p.add_argument(
        "--up-to-epoch",
        type=float,
        default=None,
        metavar="E",
        help="choose each run's best among its checkpoints at or before epoch E (seeds compared at equal length)",
    )
    p.add_argument(
        "--probe-csv",
        type=Path,
        default=None,
        metavar="FILE",
        help="for each --run started by `advnets train --branch-from` (a learning-rate probe): its row in FILE "
        "(run, seed, drop_epoch, valid_ll, test_ll: the best on validation within --probe-window epochs of the "
        "branch, and its test score), replacing the run's old row; benchmarks/anneal_level.py reads FILE",
    )
    p.add_argument(
        "--probe-window", type=float, default=10.0, metavar="EPOCHS", help="see --probe-csv (default 10 epochs)"
    )
    p.add_argument("--valid-samples", type=int, default=REFERENCE_NUM_SAMPLES, help="samples of G per checkpoint")
    p.add_argument("--test-samples", type=int, default=REFERENCE_NUM_SAMPLES, help="samples of G for the test score")
    p.add_argument("--baselines", action="store_true", help="add real images, k-means and a Gaussian fit")
    p.add_argument("--device", default=None, help="where the Parzen sums run (default: CUDA if present)")
    p.add_argument(
        "--figure",
        type=Path,
        default=REPO / "docs" / "table1_validation.png",
        help="where to draw validation LL against epochs (default: docs/table1_validation.png, docs/table1.md's)",
    )
    p.add_argument("--title", default="Validation Parzen LL on full MNIST (advnets)", help="the figure's title")
    p.add_argument(
        "--results",
        type=Path,
        default=REPO / "benchmarks" / "RESULTS.md",
        help="append a dated section to this file (default: benchmarks/RESULTS.md)",
    )
    p.add_argument("--no-record", action="store_true", help="print only: no figure, nothing appended to --results")
    return p.parse_args(argv)


def train_jobs(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The `advnets train` command of every run that has not reached --epochs yet."""
    jobs = []
    advnets = [sys.executable, "-m", "advnets", "train"]
    quiet = ["--no-progress"] if args.workers > 1 else []
    for recipe in args.recipes:
        for seed in args.seeds:
            run = args.out / f"{recipe}-s{seed}"
            latest = latest_checkpoint(run) if run.is_dir() else None
            if latest is not None:
                if int(load_checkpoint(latest)["epoch"]) >= args.epochs:
                    continue
                argv = [*advnets, "--out", str(run), "--resume", "--epochs", str(args.epochs), *quiet]
            else:
                every = str(args.checkpoint_epochs * STEPS_PER_EPOCH)
                argv = [*advnets, *RECIPES[recipe], "--data", str(args.data), "--epochs", str(args.epochs)]
                # Every checkpoint is a point of the validation curve: keep them all (the default keeps 5).
                argv += ["--seed", str(seed), "--out", str(run), "--checkpoint-every", every, "--keep-checkpoints", "0"]
                argv += quiet
            jobs.append((run.name, argv))
    return jobs


def runs_to_score(args: argparse.Namespace) -> dict[str, tuple[str, int, Path]]:
    """label -> (recipe, seed, run directory) of every run with checkpoints."""
    if args.run:
        found, seeds = {}, set()
        for run in args.run:
            seed = read_config_json(run).get("train", {}).get("seed")  # config.json: RunConfig + run facts
            if not isinstance(seed, int):
                raise AdvnetsError(f"--run {run}: expected a run directory with a config.json naming train.seed")
            if args.as_seeds is not None and seed in seeds:
                raise AdvnetsError(f"--as-seeds: --run {run} has seed {seed}, as another --run has; expected one "
                                   "run per seed")  # fmt: skip
            seeds.add(seed)
            found[run.name] = (args.as_seeds or f"run {run.name}", seed, run)
        return found
    found = {}
    for recipe in args.recipes:
        for seed in args.seeds:
            run = args.out / f"{recipe}-s{seed}"
            if (run / "checkpoints").is_dir() and kept_checkpoints(run):
                found[run.name] = (f"{recipe} recipe", seed, run)
    return found


def subset(paths: list[Path], k: int | None) -> list[Path]:
    if k is None or k >= len(paths):
        return paths
    return [paths[i] for i in sorted({round(x) for x in np.linspace(len(paths) - 1, 0, k)})]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    if not (args.score_only or args.run):
        jobs = train_jobs(args)
        print(f"training {len(jobs)} run(s) to {args.epochs} epochs, {args.workers} at a time", file=sys.stderr)
        failed = run_workers(jobs, args.workers)
        if failed:
            print(f"failed: {', '.join(failed)} (their checkpoints are kept; run again to continue)", file=sys.stderr)
    scoring_started = time.time()
    dataset = load_dataset(str(args.data))
    options = MetricOptions(device=args.device, progress=True)
    curves, results = {}, {}
    for label, (recipe, seed, run) in runs_to_score(args).items():
        cache = args.cache_dir / f"{label}.json" if args.cache_dir else None
        paths = subset(kept_checkpoints(run), args.max_checkpoints)
        curve = validation_curve(
            run, dataset, num_samples=args.valid_samples, cache=cache, checkpoints=paths, options=options
        )
        if args.up_to_epoch is not None:
            curve = [e for e in curve if e["epoch"] <= args.up_to_epoch + 1e-9]
            if not curve:
                raise AdvnetsError(f"--up-to-epoch {args.up_to_epoch:g}: {run} has no checkpoint at or before it")
            recipe = f"{recipe}, up to epoch {args.up_to_epoch:g}"
        for e in curve:
            print(f"{label}: epoch {e['epoch']:6.1f} (step {e['step']}): validation LL {e['valid_ll']:7.2f} "
                  f"(σ = {e['sigma']:.4f})")  # fmt: skip
        curves[f"{recipe}, seed {seed}"] = curve
        print(f"{label}: {describe_plateau(plateau_fit(curve))}")
        best = score_best(run, dataset, curve, num_samples=args.test_samples, cache=cache, options=options)
        print(f"{label}: best on validation at epoch {best['epoch']:.0f}; " + format_row("test", best))
        results.setdefault(recipe, {})[seed] = best
        if args.probe_csv is not None and (drop := branch_step(run)) is not None:
            record_probe(args, run, seed, drop, curve, dataset, cache, options)
    baselines = (
        baseline_rows(dataset, args.test_samples, cache_dir=args.cache_dir, options=options) if args.baselines else None
    )
    table = table1_markdown(results, baselines)
    print(table)
    for recipe, by_seed in results.items():
        mean, sd = summarize([r["mean"] for r in by_seed.values()])
        spread = f" ± {sd:.1f} (sd over {len(by_seed)} seeds)" if len(by_seed) > 1 else " (one seed)"
        print(f"{recipe}: {mean:.1f}{spread}; paper: 225 ± 2")
    if not args.no_record and curves:
        plot_validation_curves(curves, args.figure, title=args.title)
        took = {"all": time.time() - started, "scoring": time.time() - scoring_started}
        append_results(args, dataset, table, curves, results, took, argv)
        print(f"-> {args.figure}, {args.results}")
    return 0


def branch_step(run: Path) -> int | None:
    """The step at which ``run`` was branched from another run (`advnets train --branch-from`), or None."""
    first = (read_config_json(run).get("resumes") or [{}])[0]
    return first.get("step") if "branched_from" in first else None


def record_probe(args, run: Path, seed: int, drop: int, curve: list, dataset, cache, options) -> None:
    """The probe's row in --probe-csv: the best on validation among its checkpoints within --probe-window epochs
    of the branch (``drop``, its step) and that checkpoint's test score; an older row of the run is replaced, and
    the file is rewritten atomically."""
    start = next((e["epoch"] for e in curve if e["step"] == drop), None)
    if start is None:  # the branch's own checkpoint is not kept: its epoch from another's steps per epoch
        start = drop * curve[0]["epoch"] / curve[0]["step"]
    window = [e for e in curve if start - 1e-9 <= e["epoch"] <= start + args.probe_window + 1e-9]
    best = score_best(run, dataset, window, num_samples=args.test_samples, cache=cache, options=options)
    row = {"run": run.name, "seed": seed, "drop_epoch": f"{start:.1f}", "valid_ll": f"{best['valid_ll']:.1f}"}
    row["test_ll"] = f"{best['mean']:.1f}"
    rows = []
    if args.probe_csv.is_file():
        with args.probe_csv.open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("run") != run.name]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
    writer.writeheader()
    writer.writerows([*rows, row])
    atomic_write_bytes(args.probe_csv, out.getvalue().encode())
    print(f"{run.name}: probe from epoch {start:.1f}: best on validation within {args.probe_window:g} epochs "
          f"{best['valid_ll']:.1f} (epoch {best['epoch']:.1f}), test {best['mean']:.1f}: {args.probe_csv}")  # fmt: skip


def describe_plateau(fit: dict) -> str:
    """One line of advnets.evaluate.table1.plateau_fit: the recent slope; the asymptote once the curve has bent."""
    if not fit["n_points"]:
        return "no checkpoint past the fit's first epoch yet"
    slope = f"{fit['slope_per_50']:+.1f} nats per 50 epochs" if fit["slope_per_50"] is not None else "no slope yet"
    text = f"epochs {fit['first_epoch']:.0f}-{fit['last_epoch']:.0f}: last 50 epochs {slope}"
    if fit["identified"]:
        return text + (
            f"; a saturating exponential fitted from epoch {fit['first_epoch']:.0f} levels off at "
            f"{fit['asymptote']:.1f} ± {fit['asymptote_se']:.1f} (time constant {fit['tau']:.0f} epochs)"
        )
    return text + "; not yet bent enough to fit a level (no asymptote claimed)"


def append_results(args, dataset, table: str, curves: dict, results: dict, took: dict, argv: list[str] | None) -> None:
    """A dated section at the end of --results (appended; earlier sections stay as they were)."""
    command = "python benchmarks/table1.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    n_valid = min(len(dataset.valid), 1000)
    n_test = next((r["n"] for by_seed in results.values() for r in by_seed.values()), len(dataset.test))
    lines = [
        "",
        f"## Table 1 on {dataset.name}, best checkpoint by validation ({datetime.date.today().isoformat()})",
        "",
        table,
        "",
        f"Validation LL by epoch (σ chosen per checkpoint, {args.valid_samples} samples of G, the first {n_valid} "
        "validation images: MNIST's 50,000-50,999):",
        "",
    ]
    for label, curve in curves.items():
        pts = ", ".join(f"{e['epoch']:.0f}: {e['valid_ll']:.1f}" for e in curve)
        lines.append(f"- {label}: {pts}")
        lines.append(f"  - where it is heading: {describe_plateau(plateau_fit(curve))}")
    lines += [
        "",
        f"- Test: the {n_test} test images, {args.test_samples} samples of G (seed 0), σ from "
        f"numpy.logspace(-1, 0, 10) chosen on the {n_valid} validation images, mean ± std/√N; the checkpoint chosen "
        "on validation only.",
        f"- Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}; {took['all'] / 60:.0f} "
        f"min in all, of which scoring {took['scoring'] / 60:.0f} min. Figure: {args.figure.name}.",
        f"- Command: `{command}`.",
        "",
    ]
    with open(args.results, "a", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AdvnetsError as e:
        print(f"table1: error: {e}", file=sys.stderr)
        sys.exit(2)
