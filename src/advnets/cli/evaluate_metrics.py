"""``advnets evaluate --metrics ...``: the sample-quality table of issue 17 (advnets.evaluate.metrics).

A thin layer: it gathers the images (a run's or a shipped model's samples of G, or ``--samples S.npy``), the
real test images, the validation images Parzen needs and the honest context rows
(:func:`advnets.evaluate.baselines.context_samples`), calls :func:`~advnets.evaluate.metrics.evaluate_table`
once, prints :func:`~advnets.evaluate.metrics.format_table`, writes the JSON atomically and, for a run, logs
one row per metric through :class:`advnets.runs.MetricsLog` (metrics.jsonl and TensorBoard).
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


def cmd_metrics(args: argparse.Namespace, device: str) -> int:
    """Score, print, write the JSON and log the rows; the caller has chosen the device."""
    from advnets.cli.common import baseline_cache
    from advnets.data.fetch import data_root
    from advnets.evaluate.baselines import context_samples
    from advnets.evaluate.metrics import REGISTRY, evaluate_table, format_table, parse_metrics
    from advnets.evaluate.protocol import parse_sigmas
    from advnets.io import atomic_write_json
    from advnets.report.content import QUALITY_FILE

    names = parse_metrics(args.metrics)
    what = _images_to_score(args)
    test, valid, train = _real_sets(args, what["dataset"])
    rows = {what["label"]: what["images"]}
    # Every row at the model's N (metrics such as FD are biased by N: compare them only at equal N).
    n = min(args.num_samples, len(what["images"]))
    if train is not None and not args.no_context:  # the honest context: the floor, k-means, the Gaussian fit
        rows.update(
            context_samples(
                train,
                n,
                args.seed,
                cache_dir=baseline_cache(args.data_dir),
                note=lambda text: print(f"advnets: note: {text}", file=sys.stderr),
            )
        )
    options = {}
    if "parzen" in names:
        if valid is None:
            from advnets.errors import AdvnetsError

            raise AdvnetsError("--metrics parzen with --samples needs --valid V.npy (to choose sigma) or --data")
        # The Gaussian fit is not clipped to [0, 1]; its out-of-range warning would be noise beside a model.
        check = train is None
        options["parzen"] = {
            "valid": valid,
            "sigmas": parse_sigmas(args.sigmas),
            "progress": False,
            "check_range": check,
        }
    table = evaluate_table(
        test,
        rows,
        names,
        features=args.features,
        num_samples=n,
        seed=args.seed,
        cache_dir=data_root(args.data_dir) / "features",
        device=device,
        options=options,
    )
    if train is None:  # --samples with --test files: no training images to build the context rows from
        print("advnets: note: no context rows (real images, k-means, Gaussian fit): they need --data", file=sys.stderr)
    first = table[what["label"]]
    print(
        f"Sample quality of {first['n_generated']} images against {first['n_real']} test images"
        + (f" (features: {first['features']})" if first["features"] else "")
        + ":"
    )
    print(format_table(table, names))
    if len(rows) > 1:
        print(
            "(context rows: real training images = the floor a perfect G reaches at this N; k-means centroids "
            "and a Gaussian fit, built from the training split)"
        )
    run_dir = what["run_dir"]
    out = args.json or (run_dir / QUALITY_FILE if run_dir is not None else None)
    doc = {
        "metrics": list(names),
        "features": first["features"],
        "num_samples": n,
        "seed": args.seed,
        "step": what["step"],
        "dataset": what["dataset"].name if what["dataset"] is not None else None,
        "model": what["label"],
        "rows": table,
    }
    if out is not None:
        atomic_write_json(out, doc)
        print(f"-> {out}")
    if run_dir is not None:
        from advnets.runs import MetricsLog

        log = MetricsLog(run_dir, tensorboard=not args.no_tensorboard)
        try:
            for name in names:  # one row per metric, its numbers prefixed "eval_" (fd -> eval_fd)
                keys = REGISTRY[name].keys + (("kid_std",) if name == "kid" else ())
                log.log(
                    {
                        "step": what["step"],
                        "eval_metric": name,
                        "eval_features": first["features"] if REGISTRY[name].inputs == "features" else None,
                        "eval_n": first["n_generated"],
                        **{f"eval_{k}": first[k] for k in keys},
                    }
                )
        finally:
            log.close()
    return 0
