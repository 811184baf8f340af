"""``advnets report``: one self-contained HTML report of a run (advnets.report)."""

from __future__ import annotations

import argparse
from pathlib import Path

from advnets.cli.common import add_command, add_run, figure_count, positive_int, seed_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = add_command(
        sub,
        "report",
        help="one self-contained HTML report of a run (and a Markdown twin)",
        description="Write RUN/report.html (images embedded, viewable offline) and report.md: the config, training "
        "curves, the latest samples, Figure 2 with the memorisation check, Figure 3, the Parzen result from "
        "`advnets evaluate` when there is one, timings and the environment.",
        epilog="examples:\n  advnets report --run runs/00001-mnist-embedded\n"
        "  advnets report --run runs/00001-mnist-embedded --out report.html --seed 3\n",
    )
    add_run(r, help="run directory")
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.html",
        help="default RUN/report.html; FILE.md and FILE_files/ are written beside it",
    )
    r.add_argument("--seed", type=seed_int, default=0, help="noise seed of Figures 2 and 3 (default 0)")
    r.add_argument("-n", type=figure_count, default=100, help="samples in Figure 2 (default 100)")
    r.add_argument(
        "--check-size",
        type=positive_int,
        default=500,
        metavar="N",
        help="held-out images (and samples) in the memorisation check (default 500)",
    )
    r.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from advnets.report import write_report

    html, md = write_report(args.run, args.out, seed=args.seed, nearest_n=args.n, check_size=args.check_size)
    print(f"report: {html}\nmarkdown: {md}")
    return 0
