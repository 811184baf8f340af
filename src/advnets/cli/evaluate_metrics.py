"""``advnets evaluate --metrics ...``: the sample-quality table of issue 17 (advnets.evaluate.metrics).

A thin layer: it gathers the images (a run's or a shipped model's samples of G, or ``--samples S.npy``), the
real test images, the validation images Parzen needs and the honest context rows
(:func:`advnets.evaluate.baselines.context_samples`) through :func:`advnets.evaluate.scoring.quality_table`,
prints :func:`~advnets.evaluate.metrics.format_table`, writes the JSON atomically and, for a run, logs
one row per metric through :class:`advnets.runlog.MetricsLog` (metrics.jsonl and TensorBoard).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _npy_images(path: Path, option: str):
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


def _real_sets(args: argparse.Namespace, dataset) -> tuple[Any, Any, Any]:
    """(test, valid, train) images: from the dataset when there is one, else --test / --valid files."""
    from advnets.errors import AdvnetsError

    if dataset is not None:
        return dataset.test, dataset.valid[: args.valid_size], dataset.train
    if args.test is None:
        raise AdvnetsError("--samples with --metrics needs the real images: --test T.npy, or a dataset with --data")
    valid = _npy_images(args.valid, "--valid") if args.valid is not None else None
    return _npy_images(args.test, "--test"), valid, None


def _images_to_score(args: argparse.Namespace) -> dict[str, Any]:
    """{"label", "images", "dataset" (or None), "step", "run_dir"} for --run, --pretrained or --samples."""
    from advnets.errors import AdvnetsError

    if args.samples is not None:
        dataset = None
        if args.data is not None:
            from advnets.config import DataConfig
            from advnets.data import load_dataset

            dataset = load_dataset(DataConfig(source=args.data), data_dir=args.data_dir)
        return {
            "label": "samples",
            "images": _npy_images(args.samples, "--samples"),
            "dataset": dataset,
            "step": None,
            "run_dir": None,
        }
    from advnets.generators import load_generator
    from advnets.runs import run_dir_of

    if args.pretrained is not None and args.data is None:
        raise AdvnetsError("--pretrained needs --data SOURCE: the dataset to score against (e.g. the MNIST IDX dir)")
    if args.pretrained is not None:
        model = load_generator(pretrained=args.pretrained)
    else:
        model = load_generator(args.run)
    return {
        "label": model.label,
        "images": model.sample(args.num_samples, args.seed),
        "dataset": model.load_data(args.data, args.data_dir),
        "step": model.step,
        "run_dir": run_dir_of(args.run) if args.run is not None else None,
    }


def cmd_metrics(args: argparse.Namespace, device) -> int:
    """Score, print, write the JSON and log the rows; the caller has chosen the device."""
    from advnets.cli.common import baseline_cache
    from advnets.data.fetch import data_root
    from advnets.evaluate.options import MetricOptions
    from advnets.evaluate.protocol import parse_sigmas
    from advnets.evaluate.scoring import quality_table
    from advnets.io import atomic_write_json
    from advnets.report.content import QUALITY_FILE

    what = _images_to_score(args)
    test, valid, train = _real_sets(args, what["dataset"])
    doc = quality_table(
        what["images"],
        test,
        args.metrics,
        label=what["label"],
        valid=valid,
        train=train,
        context=not args.no_context,
        features=args.features,
        num_samples=args.num_samples,
        seed=args.seed,
        sigmas=parse_sigmas(args.sigmas),
        cache_dir=baseline_cache(args.data_dir),
        feature_cache=data_root(args.data_dir) / "features",
        note=lambda text: print(f"advnets: note: {text}", file=sys.stderr),
        options=MetricOptions(device=device),
    )
    _print_table(doc, train is not None)
    doc.update(step=what["step"], dataset=what["dataset"].name if what["dataset"] is not None else None)
    run_dir = what["run_dir"]
    out = args.json or (run_dir / QUALITY_FILE if run_dir is not None else None)
    if out is not None:
        atomic_write_json(out, doc)
        print(f"-> {out}")
    if run_dir is not None:
        _log_rows(run_dir, doc, what["step"], tensorboard=not args.no_tensorboard)
    return 0


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
