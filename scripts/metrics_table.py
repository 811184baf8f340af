"""The issue-17 table's reference rows on a dataset: every metric for the honest context "models".

Usage (full MNIST; one CPU thread, about ten minutes):
    OMP_NUM_THREADS=1 python scripts/metrics_table.py --data mnist [--json out.json]

Rows, each scored against the test split with advnets.evaluate.metrics.evaluate_table
(features: the shipped digit network; Parzen σ chosen on --valid-size validation images):

  (a) real training images: --num-samples training images, the floor a perfect G reaches at this N;
  (d) k-means centroids of the training split;
  (e) a Gaussian fitted to the training split (not clipped to [0, 1]).

Rows (b) and (c), trained models, come from `advnets evaluate --run DIR --metrics all`.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: the machine is shared

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from advnets.data import load_dataset  # noqa: E402
from advnets.errors import AdvnetsError  # noqa: E402
from advnets.evaluate.baselines import context_samples  # noqa: E402
from advnets.evaluate.metrics import evaluate_table, format_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="mnist (the data directory's) or a directory of IDX files")
    p.add_argument("--metrics", default="all", help="default all")
    p.add_argument("--num-samples", type=int, default=10000, help="'samples' per row (default 10000)")
    p.add_argument("--valid-size", type=int, default=1000, help="validation images for Parzen's σ (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="cache of the test split's features and of the context rows"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    data = load_dataset(args.data)
    start = time.perf_counter()
    rows = context_samples(data.train, args.num_samples, args.seed, cache_dir=args.cache_dir, note=print)
    print(f"built the context rows in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the Gaussian fit lies outside [0, 1] by construction
        table = evaluate_table(
            data.test,
            rows,
            args.metrics,
            seed=args.seed,
            cache_dir=args.cache_dir,
            options={"parzen": {"valid": data.valid[: args.valid_size]}},
        )
    seconds = time.perf_counter() - start
    print(f"{data.name}: {len(data.test)} test images against {args.num_samples} 'samples' per row ({seconds:.0f} s)")
    print(format_table(table, args.metrics))
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AdvnetsError as e:
        print(f"metrics_table: {e}", file=sys.stderr)
        sys.exit(2)
