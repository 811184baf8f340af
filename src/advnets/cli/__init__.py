"""The ``advnets`` command: one module per command (parse, call the library, print).

Every user mistake (a bad option, a missing path, an impossible value) ends
with one line on stderr and exit code 2; ``--debug`` shows the traceback before that line (still exit 2).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import traceback

from advnets import __version__
from advnets.cli import classes, data, evaluate, explore, infer, inpaint, report, sample, semisup, toy, train
from advnets.cli.common import FORMATTER, Parser
from advnets.errors import AdvnetsError

__all__ = ["build_parser", "main"]

EXAMPLES = """\
examples:
  advnets train --preset mnist                      # the paper's MNIST model on the embedded 5k digits
  advnets train --preset mnist --data ~/mnist       # ... on full MNIST (a directory of IDX files)
  advnets train --preset mnist --epochs 5 --dry-run # print the resolved config and exit
  advnets sample --run runs/00001-mnist-embedded -n 100 --seed 7
  advnets evaluate --run runs/00001-mnist-embedded --baselines
  advnets report --run runs/00001-mnist-embedded
  advnets data list
  advnets explore                                   # Figure 1 and the toys, live in the browser
"""

# In `advnets --help` order; each module adds its parser and the function that runs it.
COMMANDS = (train, sample, evaluate, inpaint, classes, toy, explore, report, data, infer, semisup)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="advnets",
        description="Generative Adversarial Nets (Goodfellow et al., 2014): train, sample, evaluate.",
        epilog=EXAMPLES,
        formatter_class=FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"advnets {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `train --nproc` passes on to torchrun
    # Library warnings (data outside [0, 1], skipped files) read as one line each.
    warnings.formatwarning = lambda message, *_, **__: f"advnets: warning: {message}\n"
    try:
        return args.func(args)
    except AdvnetsError as e:
        from advnets.train import TrainingCollapsed, TrainingInterrupted

        if isinstance(e, (TrainingInterrupted, TrainingCollapsed)):  # not user errors: 130/143 for signals, 3
            print(f"advnets: {e}", file=sys.stderr)
            return e.exit_code
        if args.debug:  # the traceback as well, not instead: still a user error, still exit 2
            traceback.print_exc(file=sys.stderr)
        print(f"advnets: error: {textwrap.shorten(str(e), 2000)}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system refused (permissions, a full disk, ...): name the file, exit 2
        from advnets.io import NO_ROOM, READ_ONLY, write_advice, write_failure

        full = e.errno in NO_ROOM | READ_ONLY  # only a write meets these: say so, and what to do
        if e.filename is None and not full:
            raise
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        if full:
            line = write_failure(e.filename, e) if e.filename is not None else f"{e.strerror}; {write_advice(e)}"
        else:
            line = f"{e.filename}: {e.strerror or e}"
        print(f"advnets: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("advnets: interrupted", file=sys.stderr)
        return 130
