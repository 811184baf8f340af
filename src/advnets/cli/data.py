"""``advnets data list`` / ``advnets data fetch``: the datasets of the data directory (advnets.data.fetch)."""

from __future__ import annotations

import argparse

from advnets.cli.common import Parser, add_command, add_data_dir, positive_float

EXAMPLES = """\
examples:
  advnets data list
  advnets data fetch mnist                 # the four IDX files, checked against pinned SHA-256
  advnets data fetch cifar10 --data-dir /data
  advnets train --preset mnist --data mnist
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    dp = add_command(
        sub,
        "data",
        help="list and fetch datasets",
        description="Datasets live in the data directory: --data-dir, else $ADVNETS_DATA, else ~/.cache/advnets.",
        epilog=EXAMPLES,
    )
    dsub = dp.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser)
    dsub.required = True
    dl = add_command(
        dsub,
        "list",
        help="every dataset: present or not, size, splits, how to get it, licence",
        description="One row per dataset advnets knows (embedded, mnist, cifar10, tfd, folder:DIR): whether it is in "
        "the data directory (--data-dir, else $ADVNETS_DATA, else ~/.cache/advnets), its size and splits, how to "
        "get it and its licence.",
        epilog="examples:\n  advnets data list\n  advnets data list --data-dir /data\n",
    )
    add_data_dir(dl)
    dl.set_defaults(func=cmd_data_list)
    df = add_command(
        dsub,
        "fetch",
        help="download a dataset and verify its SHA-256 checksums",
        description="Download a dataset into the data directory (--data-dir, else $ADVNETS_DATA, else "
        "~/.cache/advnets) and check every file against its pinned SHA-256; files already there and intact are not "
        "downloaded again, and a file is moved into place only once it is whole and verified. Then train with "
        "--data NAME.",
        epilog="examples:\n"
        "  advnets data fetch mnist                 # the four IDX files, about 11.6 MB\n"
        "  advnets data fetch cifar10 --data-dir /data\n"
        "  advnets data fetch mnist --mirror https://example.org/mnist/ --timeout 60\n",
    )
    df.add_argument("name", choices=("mnist", "cifar10"), help="dataset to download")
    add_data_dir(df)
    df.add_argument(
        "--mirror",
        action="append",
        default=None,
        metavar="URL",
        help="base URL to try instead of the built-in mirrors (repeatable)",
    )
    df.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="connect/read timeout per request in seconds (default 30)",
    )
    df.add_argument("--quiet", action="store_true", help="no progress output")
    df.set_defaults(func=cmd_data_fetch)


def cmd_data_list(args: argparse.Namespace) -> int:
    from advnets.data.fetch import dataset_status, format_status_table

    print(format_status_table(dataset_status(args.data_dir)))
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from advnets.data.fetch import fetch

    path = fetch(args.name, args.data_dir, mirrors=args.mirror, timeout=args.timeout, progress=not args.quiet)
    print(f"{args.name}: verified in {path}; train with --data {args.name}")
    return 0
