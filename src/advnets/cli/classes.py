"""``advnets classes``: which digit classes G draws; for conditional models, how well it obeys the label."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from advnets.cli.common import add_command, add_data_dir, add_run, positive_int, seed_int

# Two MNIST scores, one formula (advnets.evaluate.classifier.class_coverage), two classifiers: this command's is
# trained on the run's own data (as the collapse monitor's), `evaluate --metrics mnist_score` uses the shipped
# digit network, so that its number compares across runs. They differ, so they are named apart (docs/metrics.md).
RUN_SCORE = "MNIST score with this run's classifier"
NOT_THE_METRIC = "`evaluate --metrics mnist_score` uses the shipped digit network instead (docs/metrics.md)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = add_command(
        sub,
        "classes",
        help="which digit classes G draws; for conditional models, how well it obeys the label",
        description="Label samples of G with a small digit classifier trained on the run's real training split "
        "(trained once and cached in the data directory under classifiers/): the classes covered (at least 2% "
        "of the samples each), the entropy of the class histogram and the MNIST score (the Inception Score's "
        "formula) with that classifier; `evaluate --metrics mnist_score` uses the shipped digit network instead, so "
        "the two numbers differ. For a model trained with --conditional (Section 7.1), also the fraction "
        "of samples of class c labelled c, per class, and the accuracy on real test images of a classifier "
        "trained on generated samples only. Writes RUN/classes.json.",
        epilog="examples:\n  advnets classes --run runs/00001-mnist-embedded\n"
        "  advnets classes --run runs/cond -n 2000\n",
    )
    add_run(c)
    add_data_dir(c)
    c.add_argument("-n", type=positive_int, default=1000, help="samples to classify (default 1000)")
    c.add_argument("--seed", type=seed_int, default=0, help="noise seed (default 0)")
    c.add_argument("--out", type=Path, default=None, metavar="FILE.json", help="default: RUN/classes.json")
    c.set_defaults(func=cmd_classes)


def cmd_classes(args: argparse.Namespace) -> int:
    from advnets.conditional import class_evaluation
    from advnets.data.fetch import data_root
    from advnets.errors import AdvnetsError
    from advnets.evaluate.classifier import load_or_train_classifier
    from advnets.generators import load_generator
    from advnets.io import atomic_write_json
    from advnets.runs import run_dir_of

    model = load_generator(args.run)
    data = model.load_data(data_dir=args.data_dir)
    if data.train_labels is None:
        raise AdvnetsError(f"--run {args.run}: {data.name} has no class labels to classify against")
    say = functools.partial(print, file=sys.stderr)
    classifier = load_or_train_classifier(data, data_root(args.data_dir) / "classifiers", announce=say)
    result = class_evaluation(model.generator, data, classifier, n=args.n, seed=args.seed)
    result["step"] = model.step
    result["mnist_score_classifier"] = f"trained on {data.name}'s training split (cached under classifiers/)"
    cov = result["coverage"]
    print(f"{data.name}, step {model.step}; classifier test accuracy {classifier.test_accuracy:.3f}")
    print(
        f"{cov['n']} samples (seed {args.seed}): {cov['classes_covered']} of {cov['num_classes']} classes covered, "
        f"counts {cov['counts']}, entropy {cov['entropy']:.3f} of {cov['max_entropy']:.3f} nats"
    )
    print(f"{RUN_SCORE} {cov['mnist_score']:.2f}; {NOT_THE_METRIC}")
    if "conditional" in result:
        c = result["conditional"]
        per = " ".join(f"{y}:{a:.2f}" for y, a in enumerate(c["per_class"]))
        print(f"samples of class c labelled c by the classifier: {c['accuracy']:.3f} overall; per class {per}")
        print(
            f"classifier trained on generated samples only, tested on real test images: "
            f"{result['classification_accuracy_score']:.3f} (trained on real images: {classifier.test_accuracy:.3f})"
        )
    out = args.out or run_dir_of(args.run) / "classes.json"
    atomic_write_json(out, result)
    print(f"-> {out}")
    return 0
