"""How often does the paper's MNIST model collapse? (issue 10)

Trains the `mnist` preset on the embedded MNIST digits for a fixed budget for
every combination of

    update    in {alternating (Algorithm 1 as printed, k = 1), simultaneous (the reference code)}
    optimizer in {sgd (the paper's recipe: lr 0.1, momentum 0.5 -> 0.7), adam (lr 2e-4, beta1 0.5)}
    seed      in 0..4

and scores each run on 1,000 samples of its final generator:

* class coverage from the cached digit classifier (advnets.evaluate.classifier):
  classes that receive at least 2 % of the samples, the entropy of the predicted
  class histogram and the "MNIST score";
* the diversity ratio (mean pairwise distance of the samples over that of 500
  real validation images) and the near-duplicate fraction (of 500 samples);
* the Parzen-window log-likelihood of the 500 test images under 10,000 samples,
  sigma chosen on the 500 validation images (the paper's protocol, §5).

Configurations added after those four, each a remedy for a D that wins early
(run them with --configs NAME ...): alternating-sgd-slow-d (D at half G's
learning rate), the *-smooth ones (one-sided label smoothing, real_label 0.9),
the *-noise ones (instance noise of std 0.1, or 0.2, decaying to 0) and the
*-fast-d ones (D at twice G's learning rate). simultaneous-sgd-fast-d-noise is
the demo's configuration (`make demo`).

--device cuda trains on a GPU (many runs can share one: --jobs 8 or more); the
table says which device its runs used.

A run is **collapsed** when its diversity ratio is below 0.5 (samples less varied
than any single digit class) or it covers 5 classes or fewer; **partial** when it
covers 6 to 9 classes; **healthy** when it covers all 10.

Each run is a separate single-threaded process (two at a time by default);
finished runs are kept under --out and skipped when the script is run again,
so an interrupted benchmark continues where it stopped. Usage:

    python benchmarks/stability.py                 # every configuration x seeds 0..4 (75 runs)
    python benchmarks/stability.py --epochs 5 --seeds 0 1   # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workers import run_workers  # noqa: E402

SEEDS = (0, 1, 2, 3, 4)  # the default --seeds
CONFIGS = {
    "alternating-sgd": {"update": "alternating", "optim": {}},
    "alternating-adam": {"update": "alternating", "optim": {"optimizer": "adam", "lr": 2e-4, "lr_decay": 1.0}},
    "simultaneous-sgd": {"update": "simultaneous", "optim": {}},
    "simultaneous-adam": {"update": "simultaneous", "optim": {"optimizer": "adam", "lr": 2e-4, "lr_decay": 1.0}},
    # Added after the four above: their collapsed runs all had D winning early
    # (mean D(G(z)) < 0.03 by step 550), so D learns at half G's rate here.
    "alternating-sgd-slow-d": {"update": "alternating", "optim": {"d_lr_scale": 0.5}},
    # Remedies for a D that wins early (beyond the paper; issue 10): one-sided label
    # smoothing (real_label 0.9) and instance noise (std 0.1 decaying to 0), alone and together.
    "simultaneous-sgd-smooth": {"update": "simultaneous", "optim": {}, "train": {"real_label": 0.9}},
    "alternating-sgd-smooth": {"update": "alternating", "optim": {}, "train": {"real_label": 0.9}},
    "simultaneous-sgd-noise": {"update": "simultaneous", "optim": {}, "train": {"instance_noise": 0.1}},
    "alternating-sgd-noise": {"update": "alternating", "optim": {}, "train": {"instance_noise": 0.1}},
    "simultaneous-sgd-smooth-noise": {
        "update": "simultaneous",
        "optim": {},
        "train": {"real_label": 0.9, "instance_noise": 0.1},
    },
    "alternating-sgd-smooth-noise": {
        "update": "alternating",
        "optim": {},
        "train": {"real_label": 0.9, "instance_noise": 0.1},
    },
    # Added after those: a slower D collapsed every seed, so D learns at twice G's rate here.
    "simultaneous-sgd-fast-d": {"update": "simultaneous", "optim": {"d_lr_scale": 2.0}},
    "alternating-sgd-fast-d": {"update": "alternating", "optim": {"d_lr_scale": 2.0}},
    "simultaneous-sgd-fast-d-noise": {
        "update": "simultaneous",
        "optim": {"d_lr_scale": 2.0},
        "train": {"instance_noise": 0.1},
    },
    "simultaneous-sgd-noise-0.2": {"update": "simultaneous", "optim": {}, "train": {"instance_noise": 0.2}},
}


def status_of(result: dict) -> str:
    if result["diversity_ratio"] < 0.5 or result["classes_covered"] <= 5:
        return "collapsed"
    return "healthy" if result["classes_covered"] == 10 else "partial"


def run_one(name: str, seed: int, epochs: int, out: Path, device: str = "cpu") -> dict:
    """Train one configuration and score it; writes out/<name>-seed<seed>/result.json."""
    import torch

    torch.set_num_threads(1)
    from advnets.config import override
    from advnets.data import load_dataset
    from advnets.evaluate.classifier import class_coverage, load_or_train_classifier
    from advnets.evaluate.diversity import diversity_ratio, near_duplicate_fraction
    from advnets.evaluate.parzen import parzen_evaluate
    from advnets.presets import get_preset
    from advnets.train import Trainer

    spec = CONFIGS[name]
    base = get_preset("mnist")
    cfg = override(
        base,
        train=override(
            base.train, update=spec["update"], seed=seed, epochs=epochs, device=device, **spec.get("train", {})
        ),
        optim=override(base.optim, **spec["optim"]),
    )
    dataset = load_dataset(cfg.data)
    run_dir = out / f"{name}-seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, dataset)
    t0 = time.perf_counter()
    last = trainer.fit(run_dir, progress=False, tensorboard=False)
    train_s = time.perf_counter() - t0

    gen = torch.Generator().manual_seed(1234)
    samples = trainer.sample(10_000, generator=gen).cpu()
    classifier = load_or_train_classifier(dataset, out / "classifier-cache")
    coverage = class_coverage(classifier, samples[:1000])
    flat = samples[:1000].reshape(1000, -1).double().numpy()
    valid = dataset.valid.reshape(len(dataset.valid), -1).double().numpy()
    parzen = parzen_evaluate(dataset.test.reshape(len(dataset.test), -1), samples.reshape(10_000, -1), valid)
    result = {
        "config": name,
        "seed": seed,
        "epochs": epochs,
        "steps": trainer.step,
        "device": device,
        "train_seconds": round(train_s, 1),
        "d_real": last.get("d_real"),
        "d_fake": last.get("d_fake"),
        "classes_covered": coverage["classes_covered"],
        "counts": coverage["counts"],
        "entropy": coverage["entropy"],
        "mnist_score": coverage["mnist_score"],
        "mean_confidence": coverage["mean_confidence"],
        "diversity_ratio": diversity_ratio(flat, valid),
        "near_duplicates": near_duplicate_fraction(flat[: len(valid)], real=valid),  # equal sizes, see its doc
        "parzen_mean": parzen["mean"],
        "parzen_se": parzen["se"],
        "parzen_sigma": parzen["sigma"],
        "classifier_test_accuracy": classifier.test_accuracy,
    }
    result["status"] = status_of(result)
    (run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def detector_verdict(out: Path, r: dict) -> str | None:
    """Whether the in-training collapse monitor warned during this run: "warned",
    "quiet", or None for runs trained before the monitor existed (no collapse rows)."""
    path = out / f"{r['config']}-seed{r['seed']}" / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    if not any("collapse/diversity" in row for row in rows):
        return None
    return "warned" if any("warning" in row for row in rows) else "quiet"


def table(results: list[dict], out: Path | None = None) -> str:
    import numpy as np

    lines = [
        "| configuration | runs | collapsed | partial | healthy | classes covered (min–max) | entropy (nats) "
        "| MNIST score | diversity ratio | near-duplicates | Parzen LL (valid σ) | monitor warned |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in CONFIGS:
        rows = [r for r in results if r["config"] == name]
        if not rows:
            continue

        def ms(key, fmt="{:.2f}", rows=rows):
            v = np.array([r[key] for r in rows], dtype=float)
            return f"{fmt.format(v.mean())} ± {fmt.format(v.std())}"

        covered = [r["classes_covered"] for r in rows]
        status = [r["status"] for r in rows]
        verdicts = [detector_verdict(out, r) for r in rows] if out is not None else []
        watched = [(v, r["status"]) for v, r in zip(verdicts, rows, strict=True) if v is not None]
        warned = (
            ", ".join(
                f"{st}: {sum(v == 'warned' for v, s in watched if s == st)}/{sum(s == st for _, s in watched)}"
                for st in ("collapsed", "partial", "healthy")
                if any(s == st for _, s in watched)
            )
            if watched
            else "—"
        )
        lines.append(
            f"| {name} | {len(rows)} | {status.count('collapsed')} | {status.count('partial')} | "
            f"{status.count('healthy')} | {np.mean(covered):.1f} ({min(covered)}–{max(covered)}) | "
            f"{ms('entropy')} | {ms('mnist_score')} | {ms('diversity_ratio')} | {ms('near_duplicates', '{:.3f}')} | "
            f"{ms('parzen_mean', '{:.1f}')} | {warned} |"
        )
    lines.append("")
    lines.append("Per run (seed: classes covered / diversity ratio / Parzen LL / status):")
    lines.append("")
    for name in CONFIGS:
        rows = sorted((r for r in results if r["config"] == name), key=lambda r: r["seed"])
        if rows:
            cells = "; ".join(
                f"{r['seed']}: {r['classes_covered']} / {r['diversity_ratio']:.2f} / {r['parzen_mean']:.0f} / "
                f"{r['status']}"
                for r in rows
            )
            lines.append(f"- {name}: {cells}")
    return "\n".join(lines)


def seed_figure(results: list[dict], out: Path, name: str) -> Path | None:
    """One panel per seed: the run's last fixed-noise sample grid, titled with its scores."""
    rows = sorted((r for r in results if r["config"] == name), key=lambda r: r["seed"])
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.6), squeeze=False)
    for ax, r in zip(axes[0], rows, strict=True):
        grid = out / f"{name}-seed{r['seed']}" / "samples" / f"step-{r['steps']:08d}.png"
        ax.imshow(Image.open(grid), cmap="gray")
        ax.set_title(
            f"seed {r['seed']}: {r['status']}\n{r['classes_covered']} classes, diversity {r['diversity_ratio']:.2f}",
            fontsize=9,
        )
        ax.axis("off")
    fig.suptitle(f"{name}, {rows[0]['epochs']} epochs on embedded MNIST: the final fixed-noise grid of each seed")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    path = out / f"seeds-{name}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=100, help="training budget per run (default 100, the demo's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each (default 2)")
    ap.add_argument(
        "--device", default="cpu", help="where to train (default cpu; the table says which device each run used)"
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "stability")
    ap.add_argument("--worker", nargs=2, metavar=("CONFIG", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = args.out / f"epochs{args.epochs}"
    if args.worker:
        run_one(args.worker[0], int(args.worker[1]), args.epochs, out, args.device)
        return 0

    done = lambda c, s: (out / f"{c}-seed{s}" / "result.json").exists()  # noqa: E731
    todo = [(c, s) for c, s in itertools.product(args.configs, args.seeds) if not done(c, s)]
    if todo:  # train the classifier once, before the workers race to cache it
        from advnets.data import load_dataset
        from advnets.evaluate.classifier import load_or_train_classifier

        load_or_train_classifier(load_dataset("embedded"), out / "classifier-cache")
    base = [sys.executable, __file__, "--epochs", str(args.epochs), "--out", str(args.out), "--device", args.device]
    failed = run_workers([(f"{c} seed {s}", [*base, "--worker", c, str(s)]) for c, s in todo], args.jobs)
    results = [
        json.loads((out / f"{c}-seed{s}" / "result.json").read_text())
        for c, s in itertools.product(args.configs, args.seeds)
        if done(c, s)
    ]
    devices = ", ".join(sorted({r.get("device", "cpu") for r in results}))
    print(
        f"Embedded MNIST (4,000 training digits), mnist preset, {args.epochs} epochs per run, 1,000 samples "
        f"scored; trained on: {devices}."
    )
    print()
    print(table(results, out))
    for name in args.configs:
        path = seed_figure(results, out, name)
        if path is not None:
            print(f"figure: {path}", file=sys.stderr)
    if failed:
        print(f"\nfailed runs: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
