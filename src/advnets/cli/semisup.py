"""``advnets semisup``: semi-supervised learning with D's features, a linear classifier on few labels (§7.4)."""

from __future__ import annotations

import argparse
from pathlib import Path

from advnets.cli.common import add_command, add_data_dir, add_run, positive_int, positive_int_list, seed_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    ss = add_command(
        sub,
        "semisup",
        help="semi-supervised learning with D's features: a linear classifier on few labels (§7.4)",
        description="Freeze D's hidden layers (and the encoder's with --with-encoder) and fit a linear classifier "
        "(multinomial logistic regression on standardised features, C chosen by cross-validation on the labelled "
        "set only) on n labelled training examples drawn balanced by class, several random draws; report test "
        "accuracy mean +- std (the paper's Section 7.4). Baselines in the same table: raw pixels and an untrained "
        "D of the same architecture and seed. Prints a Markdown table and writes RUN/semisup.json.",
        epilog="examples:\n  advnets semisup --run runs/00001-mnist-embedded --labels 100,600,1000\n"
        "  advnets semisup --run runs/00001-mnist-embedded --labels 100 --draws 10 --with-encoder\n",
    )
    add_run(ss)
    add_data_dir(ss)
    ss.add_argument(
        "--labels",
        type=positive_int_list,
        default=(100, 600, 1000),
        metavar="N,N,...",
        help="sizes of the labelled set, each at least the number of classes (default 100,600,1000)",
    )
    ss.add_argument(
        "--draws", type=positive_int, default=5, help="random balanced draws of each labelled set (default 5)"
    )
    ss.add_argument("--seed", type=seed_int, default=0, help="seed of the draws (default 0)")
    ss.add_argument(
        "--with-encoder",
        action="store_true",
        help="add a row for the encoder's features (needs `advnets infer --run DIR` first)",
    )
    ss.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="write the result here (default RUN/semisup.json)"
    )
    ss.set_defaults(func=cmd_semisup)


def cmd_semisup(args: argparse.Namespace) -> int:
    from advnets.semisup import SemisupConfig, format_table, run_semisup

    cfg = SemisupConfig(labels=tuple(args.labels), draws=args.draws, seed=args.seed)
    result = run_semisup(args.run, cfg, with_encoder=args.with_encoder, data_dir=args.data_dir, out=args.json)
    print(f"{result['dataset']}, {result['checkpoint']} (step {result['step']}):\n")
    print(format_table(result))
    print(f"-> {result['json']}, {result['figure']}")
    return 0
