"""Does a conditional G draw the class it is asked for? (issue 9 §1)

The paper's Section 7.1: "A conditional generative model p(x | c) can be
obtained by adding c as input to both G and D." Here c is a one-hot label of
the 10 digit classes (advnets.conditional). For every seed (default 0..2) this
trains the `mnist` preset with exactly the configuration of
`advnets train --preset mnist --conditional --epochs E --d-lr-scale 2
--instance-noise 0.1` (the CLI's own config path: generator.condition =
"class", generator.cond_dim = discriminator.cond_dim = 10; the last two options
are the demo's remedy for collapse, --train-args replaces them) on the embedded
MNIST digits (4,000 training images) for --epochs (default 300: at 100 epochs
G follows its label only about 40 % of the time), with the simultaneous update
(the preset's, the reference code's) or --update alternating (Algorithm 1 as
printed), and scores the final G with advnets.conditional.class_evaluation, as
`advnets classes` does:

* **conditional accuracy**: G draws --n samples (default 1,000: 100 per
  class) for given labels; the cached digit classifier (a small CNN trained on
  the real *training* split only, advnets.evaluate.classifier) labels them;
  the fraction labelled with the class they were drawn for, overall and per
  class;
* **classification accuracy score** (CAS; Ravuri & Vinyals, 2019): the same
  classifier architecture and recipe trained on 5,000 generated, labelled
  samples only (500 per class), tested on the real test split (500 images);
* for reference, the real-data classifier's own accuracy on the real test
  split, overall and per class (what the two scores above can reach at most,
  roughly).

Evaluation noise and the CAS classifier are seeded with the run's seed.

Pass rule: the **mean over seeds** of the conditional accuracy is at least
--target (default 0.80), and every requested seed finished. Each seed is
listed with its own accuracy and a mark against the target, so a single bad
seed stays visible; the mean decides because one seed of a GAN can fail for
reasons the conditioning does not cause (a collapse of the unconditional kind).
Exit status: 0 pass, 1 below the target, 2 a run failed (no verdict).

Per seed, under --out/epochs<E>/<update><train args>-seed<S>/: the run directory (config,
metrics.jsonl, progress sample grids, checkpoints), result.json with every
number above, and classes-grid.png: 10 samples per class, one row per class
(row y = class y), each row titled with its conditional accuracy. Finished
seeds (result.json present) are skipped, so an interrupted benchmark
continues; a seed that was interrupted mid-training is retrained from scratch.
Each seed is a separate single-threaded process (--jobs at a time).

Usage:

    python benchmarks/conditional.py                              # 3 seeds x 300 epochs, CPU (~15 min each)
    python benchmarks/conditional.py --device cuda --jobs 3       # the same on a GPU
    python benchmarks/conditional.py --epochs 1 --seeds 0         # a quick look (fails the target)
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workers import run_workers  # noqa: E402

HERE = Path(__file__).resolve().parent
# The digit classifier cached by benchmarks/stability.py (same dataset, same
# recipe); load_or_train_classifier checks its fingerprint and retrains on a mismatch.
STABILITY_CACHE = HERE / "out" / "stability" / "epochs100" / "classifier-cache"
NUM_CLASSES = 10


def conditional_config(epochs: int, seed: int, update: str, device: str, extra: str = ""):
    """The config of `advnets train --preset mnist --conditional --epochs E --seed S
    --update U --device D EXTRA`, resolved by the CLI's own code (not a copy of it)."""
    from advnets.cli.train import config_from_argv

    argv = ["--preset", "mnist", "--conditional", "--epochs", str(epochs), "--seed", str(seed)]
    argv += ["--update", update, "--device", device, *shlex.split(extra)]
    cfg = config_from_argv(argv)
    assert cfg.generator.condition == "class" and cfg.discriminator.cond_dim == NUM_CLASSES
    return cfg


def run_dir_of(out: Path, args: argparse.Namespace, seed: int) -> Path:
    tag = "".join("-" + word.lstrip("-") for word in shlex.split(args.train_args))
    return out / f"{args.update}{tag}-seed{seed}"


def class_grid_figure(g, image_shape, preprocess: str, per_class: list[float], seed: int, title: str, path: Path):
    """10 samples per class, row y drawn for class y, each row labelled with its accuracy."""

    from advnets.data import to_display
    from advnets.figures import image_grid, new_figure, save_figure
    from advnets.sampling import generate

    k = len(per_class)
    images = generate(g, k * 10, seed, image_shape)  # default labels: one class per grid row
    grid = image_grid(to_display(images, preprocess), nrow=10)
    h = image_shape[1]
    fig = new_figure(5.2, 5.6, layout="tight")
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([2 + y * (h + 2) + h / 2 for y in range(k)])
    ax.set_yticklabels([f"{y}: {a:.2f}" for y, a in enumerate(per_class)], fontsize=8)
    ax.set_xticks([])
    ax.set_ylabel("conditioning class: accuracy")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def run_one(seed: int, args: argparse.Namespace, out: Path) -> dict:
    """Train one seed and score it; writes result.json and classes-grid.png in its run directory."""
    import torch

    torch.set_num_threads(1)
    from advnets.conditional import class_evaluation
    from advnets.data import load_dataset
    from advnets.evaluate.classifier import load_or_train_classifier
    from advnets.train import Trainer

    cfg = conditional_config(args.epochs, seed, args.update, args.device, args.train_args)
    dataset = load_dataset(cfg.data)
    run_dir = run_dir_of(out, args, seed)
    if run_dir.exists():  # an interrupted run: start it again (metrics.jsonl would otherwise get appended to)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    trainer = Trainer(cfg, dataset, device=args.device)
    t0 = time.perf_counter()
    last = trainer.fit(run_dir, progress=False, tensorboard=False)
    train_s = time.perf_counter() - t0

    classifier = load_or_train_classifier(dataset, args.classifier_cache)
    t0 = time.perf_counter()
    ev = class_evaluation(trainer.g, dataset, classifier, n=args.n, seed=seed)
    eval_s = time.perf_counter() - t0
    real_pred = classifier.predict(dataset.test)
    real_per_class = [float((real_pred[dataset.test_labels == y] == y).double().mean()) for y in range(NUM_CLASSES)]
    per = ev["conditional"]["per_class"]
    worst = min(range(len(per)), key=per.__getitem__)
    result = {
        "seed": seed,
        "epochs": args.epochs,
        "update": args.update,
        "train_args": args.train_args,
        "device": str(trainer.device),
        "steps": trainer.step,
        "train_seconds": round(train_s, 1),
        "seconds_per_epoch": round(train_s / args.epochs, 2),
        "eval_seconds": round(eval_s, 1),
        "d_real": last.get("d_real"),
        "d_fake": last.get("d_fake"),
        "conditional_accuracy": ev["conditional"]["accuracy"],
        "per_class_accuracy": per,
        "per_class_samples": ev["conditional"]["per_class_samples"],
        "min_class": worst,
        "min_class_accuracy": per[worst],
        "classification_accuracy_score": ev["classification_accuracy_score"],
        "classifier_test_accuracy": ev["classifier_test_accuracy"],
        "classifier_test_per_class": real_per_class,
        "coverage": ev["coverage"],
    }
    figure = class_grid_figure(
        trainer.g,
        dataset.image_shape,
        cfg.data.preprocess,
        per,
        seed,
        f"conditional G, seed {seed}, {args.epochs} epochs, {args.update} update\n"
        f"row y drawn for class y; accuracy {result['conditional_accuracy']:.3f}, "
        f"CAS {result['classification_accuracy_score']:.3f}",
        run_dir / "classes-grid.png",
    )
    result["figure"] = str(figure)
    (run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def tables(results: list[dict], target: float) -> str:
    import numpy as np

    def ms(values, fmt="{:.3f}"):
        v = np.asarray(values, dtype=float)
        return f"{fmt.format(v.mean())} ± {fmt.format(v.std())}"

    lines = [
        "| seed | conditional accuracy | CAS | lowest class (accuracy) | real-data classifier | train time |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        mark = "✓" if r["conditional_accuracy"] >= target else "✗"
        lines.append(
            f"| {r['seed']} | {r['conditional_accuracy']:.3f} {mark} | {r['classification_accuracy_score']:.3f} | "
            f"{r['min_class']} ({r['min_class_accuracy']:.2f}) | {r['classifier_test_accuracy']:.3f} | "
            f"{r['train_seconds']:.0f} s |"
        )
    lines.append(
        f"| mean ± std | **{ms([r['conditional_accuracy'] for r in results])}** | "
        f"{ms([r['classification_accuracy_score'] for r in results])} | "
        f"{ms([r['min_class_accuracy'] for r in results], '{:.2f}')} | "
        f"{ms([r['classifier_test_accuracy'] for r in results])} | |"
    )
    lines += ["", "Per-class conditional accuracy (samples drawn for class y that the classifier labels y):", ""]
    lines.append("| seed | " + " | ".join(str(y) for y in range(NUM_CLASSES)) + " |")
    lines.append("|---:|" + "---:|" * NUM_CLASSES)
    for r in results:
        lines.append(f"| {r['seed']} | " + " | ".join(f"{a:.2f}" for a in r["per_class_accuracy"]) + " |")
    per = np.array([r["per_class_accuracy"] for r in results], dtype=float)
    lines.append("| mean | " + " | ".join(f"{a:.2f}" for a in per.mean(axis=0)) + " |")
    real = np.array([r["classifier_test_per_class"] for r in results], dtype=float)
    lines.append("| real test images | " + " | ".join(f"{a:.2f}" for a in real.mean(axis=0)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=300, help="training budget per seed (default 300)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--update", choices=("simultaneous", "alternating"), default="simultaneous")
    ap.add_argument(
        "--train-args",
        default="--d-lr-scale 2 --instance-noise 0.1",
        metavar="OPTIONS",
        help='more `advnets train` options (default: "%(default)s"; "" for the paper\'s recipe)',
    )
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where G and D train (default cpu)")
    ap.add_argument("--target", type=float, default=0.80, help="pass if the mean conditional accuracy is >= this")
    ap.add_argument("-n", "--n", type=int, default=1000, help="samples for the conditional accuracy (default 1000)")
    ap.add_argument("--jobs", type=int, default=2, help="seeds in parallel, one thread each (default 2)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "conditional")
    ap.add_argument(
        "--classifier-cache",
        type=Path,
        default=STABILITY_CACHE if STABILITY_CACHE.exists() else None,
        help="the real-data digit classifier's cache (default: benchmarks/stability.py's if present, "
        "else OUT/classifier-cache)",
    )
    ap.add_argument("--worker", type=int, metavar="SEED", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.n < NUM_CLASSES:
        ap.error(f"-n must be at least {NUM_CLASSES} (one sample per class)")
    out = args.out / f"epochs{args.epochs}"
    if args.classifier_cache is None:
        args.classifier_cache = out / "classifier-cache"
    if args.worker is not None:
        run_one(args.worker, args, out)
        return 0

    done = lambda s: (run_dir_of(out, args, s) / "result.json").exists()  # noqa: E731
    todo = [s for s in args.seeds if not done(s)]
    if todo:  # train the classifier once, before the workers race to cache it
        from advnets.data import load_dataset
        from advnets.evaluate.classifier import load_or_train_classifier

        load_or_train_classifier(load_dataset("embedded"), args.classifier_cache)
    base = [sys.executable, __file__, "--epochs", str(args.epochs), "--out", str(args.out)]
    base += ["--update", args.update, "--device", args.device, "--n", str(args.n)]
    base += ["--train-args", args.train_args, "--classifier-cache", str(args.classifier_cache)]
    jobs = [(f"seed {s} ({args.update}, {args.device})", [*base, "--worker", str(s)]) for s in todo]
    failed = run_workers(jobs, args.jobs)
    results = [json.loads((run_dir_of(out, args, s) / "result.json").read_text()) for s in args.seeds if done(s)]
    devices = sorted({r["device"] for r in results})
    print(
        f"Conditional nets p(x | c) (§7.1) on embedded MNIST (4,000 training digits), mnist preset --conditional, "
        f"{args.epochs} epochs, {args.update} update, device {', '.join(devices) or args.device}; "
        f"{args.n} samples per seed scored ({args.n // NUM_CLASSES} per class)."
    )
    print()
    if results:
        print(tables(results, args.target))
        print()
    for r in results:
        print(f"figure: {r['figure']}")
    if failed:
        print(f"\nNO VERDICT: seeds {failed} failed (see the messages above); rerun to retry them.")
        return 2
    import numpy as np

    mean = float(np.mean([r["conditional_accuracy"] for r in results]))
    below = [r["seed"] for r in results if r["conditional_accuracy"] < args.target]
    note = f" (below it on their own: seeds {below})" if below else ""
    if mean >= args.target:
        print(f"\nPASS: mean conditional accuracy {mean:.3f} >= target {args.target:.2f} over seeds {args.seeds}{note}")
        return 0
    print(f"\nFAIL: mean conditional accuracy {mean:.3f} < target {args.target:.2f} over seeds {args.seeds}{note}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
