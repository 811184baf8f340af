"""``advnets evaluate --metrics ...``: reading ``--samples``-style .npy images, and reporting the sample-quality
table that :func:`advnets.evaluate.scoring.score` returns (issue 17's metrics, advnets.evaluate.metrics).

It prints :func:`~advnets.evaluate.metrics.format_table`, writes the JSON atomically and, for a run, logs one
row per metric through :class:`advnets.runlog.MetricsLog` (metrics.jsonl and TensorBoard).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def npy_images(path: Path, option: str):
    """A float image array from ``option``'s .npy file, its shape kept (N x d or N x [C x] H x W); a warning
    when its values are not in [0, 1] (8-bit images not divided by 255 would otherwise score silently wrong)."""
    import warnings

    import numpy as np

    from advnets.cli.common import load_array
    from advnets.evaluate.parzen import check_unit_range

    flat = load_array(path, option)  # the clear errors for missing / unreadable / empty files
    shape = np.load(path, mmap_mode="r").shape
    if not check_unit_range(flat):
        warnings.warn(
            f"{option} {path}: values lie in [{float(flat.min()):.4g}, {float(flat.max()):.4g}], not [0, 1]; "
            "the feature networks, Parzen's σ grid and the paper's numbers assume pixels in [0, 1] "
            "(divide 8-bit images by 255)",
            UserWarning,
            stacklevel=2,
        )
    return flat.reshape(shape) if len(shape) > 2 else flat


def report_quality(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """Print the table, write ``--json`` (default ``RUN/quality.json``) and log the rows in the run."""
    from advnets.io import atomic_write_json
    from advnets.report.content import QUALITY_FILE

    run_dir = doc.pop("run_dir")
    doc.pop("kind")
    _print_table(doc, doc["dataset"] is not None)
    out = args.json or (run_dir / QUALITY_FILE if run_dir is not None else None)
    if out is not None:
        atomic_write_json(out, doc)
        print(f"-> {out}")
    if run_dir is not None:
        _log_rows(run_dir, doc, doc["step"], tensorboard=not args.no_tensorboard)


def _print_table(doc: dict[str, Any], with_context: bool) -> None:
    from advnets.evaluate.metrics import format_table

    if not with_context:  # --samples with --test files: no training images to build the context rows from
        print("advnets: note: no context rows (real images, k-means, Gaussian fit): they need --data", file=sys.stderr)
    first = doc["rows"][doc["model"]]
    print(
        f"Sample quality of {first['n_generated']} images against {first['n_real']} test images"
        + (f" (features: {first['features']})" if first["features"] else "")
        + ":"
    )
    print(format_table(doc["rows"], doc["metrics"]))
    if len(doc["rows"]) > 1:
        print(
            "(context rows: real training images = the floor a perfect G reaches at this N; k-means centroids "
            "and a Gaussian fit, built from the training split)"
        )


def _log_rows(run_dir: Path, doc: dict[str, Any], step: int, tensorboard: bool) -> None:
    """One row per metric in the run's metrics.jsonl and TensorBoard, its numbers prefixed "eval_" (fd -> eval_fd)."""
    from advnets.evaluate.metrics import REGISTRY
    from advnets.runlog import MetricsLog

    first = doc["rows"][doc["model"]]
    log = MetricsLog(run_dir, tensorboard=tensorboard)
    try:
        for name in doc["metrics"]:
            keys = REGISTRY[name].keys + (("kid_std",) if name == "kid" else ())
            log.log(
                {
                    "step": step,
                    "eval_metric": name,
                    "eval_features": first["features"] if REGISTRY[name].inputs == "features" else None,
                    "eval_n": first["n_generated"],
                    **{f"eval_{k}": first[k] for k in keys},
                }
            )
    finally:
        log.close()
