"""``advnets evaluate``: the Parzen-window log-likelihood of Table 1 (advnets.evaluate.protocol)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from advnets.cli.common import (
    PRETRAINED_OUT_HELP,
    add_command,
    add_data_dir,
    check_output_path,
    load_array,
    positive_int,
    pretrained_outputs,
    seed_int,
)

EXAMPLES = """\
examples:
  advnets evaluate --run runs/00001-mnist-embedded               # the paper's protocol, a Table-1 row
  advnets evaluate --run runs/00001-mnist-embedded --baselines   # plus real/k-means/Gaussian "samples"
  advnets evaluate --run runs/00001-mnist-embedded --sigmas 0.1,0.15,0.2 --split valid
  advnets evaluate --samples S.npy --valid V.npy --test T.npy    # any model's samples, same code
  advnets evaluate --run runs/00001-mnist-embedded --metrics fd,kid,precision,recall,density,coverage
  advnets evaluate --run runs/00001-mnist-embedded --metrics all --num-samples 2000
  advnets evaluate --samples S.npy --test T.npy --metrics fd,kid --features digits
  advnets evaluate --pretrained mnist-paper --data mnist            # the shipped number
  advnets evaluate --pretrained mnist-paper --data mnist --baselines
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = add_command(
        sub,
        "evaluate",
        help="Parzen-window log-likelihood (Table 1); with --metrics FD, KID, precision/recall, density/coverage",
        description="The paper's Parzen-window evaluation (Table 1): a Gaussian Parzen window on samples of G, "
        "sigma chosen on validation images, the mean log-likelihood of the test images +- std/sqrt(N). "
        "Exact (float64) and chunked. Scores assume pixels in [0, 1]; a Parzen score is not a sample-quality "
        "measure (Theis et al., 2016): --baselines shows what trivial 'models' score.",
        epilog=EXAMPLES,
    )
    _add_inputs(e)
    _add_metrics_options(e)
    _add_parzen_options(e)
    _add_compute_and_output(e)
    e.set_defaults(func=cmd_evaluate)


def _add_inputs(e: argparse.ArgumentParser) -> None:
    """What to score: a run, samples in a file, or a shipped model (and the data a model is scored against)."""
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, metavar="DIR", help="run directory or checkpoint file to evaluate")
    src.add_argument("--samples", type=Path, metavar="S.npy", help="score these samples (N x d or N x H x W[x C])")
    src.add_argument(
        "--pretrained",
        metavar="NAME",
        help="a model shipped inside the package (advnets.pretrained): reproduce its stated number (needs --data)",
    )
    e.add_argument(
        "--data",
        metavar="SOURCE",
        help="with --pretrained (required) or --samples --metrics: the dataset to score against, "
        "e.g. the MNIST IDX directory or embedded-digits",
    )


def _add_metrics_options(e: argparse.ArgumentParser) -> None:
    """--metrics and the options only the metrics table reads."""
    e.add_argument(
        "--metrics",
        metavar="LIST",
        default=None,
        help="the sample-quality table instead of Parzen alone: 'all' or a comma-separated list of "
        "fd, kid, precision, recall, density, coverage, parzen, mnist_score, class_coverage (docs/metrics.md; "
        "no spaces on the command line, e.g. fd,kid); "
        "with the context rows (real training images = the floor, k-means centroids, Gaussian fit)",
    )
    e.add_argument(
        "--features",
        metavar="NAME",
        default=None,
        help="--metrics: feature network, digits | inception | file:PATH (default digits for grey 28x28/8x8)",
    )
    e.add_argument("--no-tensorboard", action="store_true", help="--metrics on a run: log to metrics.jsonl only")
    e.add_argument(
        "--no-context",
        action="store_true",
        help="--metrics: score only the model, without the context rows (real training images, k-means "
        "centroids, a Gaussian fit; their k-means fit takes tens of minutes on full MNIST the first time, then "
        "comes from the cache under --data-dir)",
    )


def _add_parzen_options(e: argparse.ArgumentParser) -> None:
    """The reference protocol's settings (paper §5): the images, samples, sigma grid and split."""
    e.add_argument("--valid", type=Path, metavar="V.npy", help="with --samples: validation images to choose sigma")
    e.add_argument("--test", type=Path, metavar="T.npy", help="with --samples: images to score")
    add_data_dir(e)
    e.add_argument(
        "--num-samples",
        type=positive_int,
        default=None,
        metavar="M",
        help="samples of G in the window (default 10000, the reference protocol; --pretrained: the model's "
        "stated one); with --metrics, images "
        "per row (and at most this many test images)",
    )
    e.add_argument(
        "--valid-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="validation images used to choose sigma (default 1000, --pretrained: the model's; capped at the "
        "split's size)",
    )
    e.add_argument(
        "--sigmas",
        default="logspace:-1:0:10",
        metavar="GRID",
        help="candidate bandwidths: 'logspace:A:B:N' or a list like 0.1,0.2 (default logspace:-1:0:10)",
    )
    e.add_argument("--split", choices=("test", "valid", "train"), default="test", help="images to score (default test)")
    e.add_argument("--seed", type=seed_int, default=None, help="seed of G's noise (default 0; --pretrained: its own)")
    e.add_argument(
        "--baselines",
        action="store_true",
        help="add rows for real training images, k-means centroids and a Gaussian fit as the 'samples' "
        "(the k-means fit is kept under --data-dir's baselines/ for the next evaluation)",
    )
    e.add_argument(
        "--folds",
        type=positive_int,
        default=None,
        metavar="K",
        help="TFD runs: the paper's protocol over folds 0..K-1 (sigma per fold, SE across folds; the paper uses 5)",
    )


def _add_compute_and_output(e: argparse.ArgumentParser) -> None:
    """How to compute (precision, device) and where the result goes."""
    e.add_argument("--float32", action="store_true", help="faster float32 mode (about 1e-3 nats error at 784-d)")
    e.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    e.add_argument(
        "--json",
        "--out",
        dest="json",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the result here, atomically (default with --run: RUN/parzen.json, or RUN/quality.json with "
        f"--metrics; {PRETRAINED_OUT_HELP.format('parzen.json or quality.json')}; --samples: not written)",
    )
    e.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_combination(args: argparse.Namespace) -> None:
    """Options that would be silently ignored in this combination are refused, naming what they go with."""
    from advnets.errors import AdvnetsError

    if args.data is not None and args.run is not None:
        raise AdvnetsError("--data goes with --pretrained or --samples --metrics; a run scores against its own data")
    if args.data is not None and args.samples is not None and args.metrics is None:
        raise AdvnetsError("--samples --data goes with --metrics; Parzen alone takes --valid V.npy --test T.npy")
    if args.samples is None and (args.test is not None or args.valid is not None):
        raise AdvnetsError("--test and --valid go with --samples; a run or shipped model is scored against its dataset")
    if args.samples is not None and args.metrics is None and (args.split != "test" or args.folds or args.baselines):
        raise AdvnetsError(
            "--split, --folds and --baselines need a run's or shipped model's dataset; --samples scores --test"
        )
    if args.baselines and args.metrics is not None:
        raise AdvnetsError("--baselines goes with Parzen alone; --metrics adds the same rows itself (see --no-context)")
    if args.no_context and args.metrics is None:
        raise AdvnetsError("--no-context goes with --metrics (Parzen adds reference rows only with --baselines)")
    if args.features is not None and args.metrics is None:
        raise AdvnetsError("--features goes with --metrics (the Parzen window works on pixels)")
    if args.metrics is not None and (args.folds is not None or args.split != "test"):
        raise AdvnetsError("--metrics scores the test split; --folds and --split are Parzen options")
    if args.pretrained is not None and args.data is None:
        raise AdvnetsError("--pretrained needs --data SOURCE: the dataset to score against (e.g. the MNIST IDX dir)")
    if args.samples is not None and args.metrics is not None and args.test is None and args.data is None:
        raise AdvnetsError("--samples with --metrics needs the real images: --test T.npy, or a dataset with --data")


def _parzen_arrays(args: argparse.Namespace) -> tuple:
    """``--samples S.npy --valid V.npy --test T.npy`` as rows, checked against each other by file name."""
    from advnets.errors import AdvnetsError

    samples = load_array(args.samples, "--samples")
    valid, test = load_array(args.valid, "--valid"), load_array(args.test, "--test")
    for option, path, array in (("--valid", args.valid, valid), ("--test", args.test, test)):
        if array.shape[1] != samples.shape[1]:  # named by the files, before the library's own check
            raise AdvnetsError(
                f"{option} {path}: {array.shape[1]} features per image, but --samples "
                f"{args.samples} has {samples.shape[1]}"
            )
    return samples, valid, test


def _request(args: argparse.Namespace, sigmas):
    """The options as one advnets.evaluate.scoring.ScoreRequest (the .npy files read, their errors named)."""
    from advnets.cli.evaluate_metrics import npy_images
    from advnets.evaluate.scoring import ScoreRequest

    samples = valid = test = None
    if args.samples is not None and args.metrics is None:
        samples, valid, test = _parzen_arrays(args)
    elif args.samples is not None:
        samples = npy_images(args.samples, "--samples")
        test = npy_images(args.test, "--test") if args.test is not None else None
        valid = npy_images(args.valid, "--valid") if args.valid is not None else None
    return ScoreRequest(
        run=args.run,
        pretrained=args.pretrained,
        samples=samples,
        metrics=args.metrics,
        data=args.data,
        data_dir=args.data_dir,
        test=test,
        valid=valid,
        num_samples=args.num_samples,
        seed=args.seed,
        valid_size=args.valid_size,
        split=args.split,
        folds=args.folds,
        baselines=args.baselines,
        sigmas=sigmas,
        context=not args.no_context,
        features=args.features,
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from advnets.devices import resolve_device
    from advnets.evaluate.options import MetricOptions
    from advnets.evaluate.protocol import parse_sigmas
    from advnets.evaluate.scoring import score

    if args.pretrained is not None and args.json is None:  # as a run's RUN/parzen.json, in the model's own folder
        name = "quality.json" if args.metrics is not None else "parzen.json"
        args.json = pretrained_outputs(args.pretrained, args.data_dir) / name
    check_output_path(args.json, "--json")
    sigmas = parse_sigmas(args.sigmas)
    device = resolve_device(args.device, float64=not args.float32)
    dtype = torch.float32 if args.float32 else torch.float64
    options = MetricOptions(dtype=dtype, device=device, progress=not args.no_progress)
    _check_combination(args)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)  # --out sub/q.json: made, as RUN/ is
    result = score(_request(args, sigmas), options, note=lambda text: print(f"advnets: note: {text}", file=sys.stderr))
    if result["kind"] == "quality":
        from advnets.cli.evaluate_metrics import report_quality

        report_quality(args, result)
    elif result["kind"] == "pretrained":
        _report_pretrained(args, result)
    else:
        _print_parzen(args, result)
        _record_parzen(args, result)
    return 0


def _print_parzen(args: argparse.Namespace, result: dict) -> None:
    """The Table-1 rows, with the paper's row beside them where the dataset has one."""
    from advnets.evaluate.protocol import format_row, paper_row_for

    rows, dataset_name = result["rows"], result["dataset"]
    first = next(iter(rows.values()))
    print(
        f"Parzen-window log-likelihood of {first['n']} {args.split if args.run else 'test'} images "
        f"(d = {first['d']}; mean ± std/√N, σ chosen on {result['valid_size']} validation images):"
    )
    for name, row in rows.items():
        print("  " + format_row(name, row))
    paper = paper_row_for(dataset_name or "")
    if paper is not None:
        pname, (pm, pse) = paper
        note = " — a 5k subset: not comparable" if dataset_name and dataset_name.startswith("embedded") else ""
        print(f"  {'paper, Table 1 (' + pname + ')':<28s} {pm:8.1f} ± {pse:<6.1f}(full {pname}{note})")


def _record_parzen(args: argparse.Namespace, result: dict) -> None:
    """``--json`` (default ``RUN/parzen.json``) written atomically, and the model's row logged in the run."""
    from advnets.io import atomic_write_json
    from advnets.runlog import append_metrics

    run_dir = result["run_dir"]
    out = args.json or (run_dir / "parzen.json" if run_dir is not None else None)
    if out is not None:
        atomic_write_json(out, result["record"])
        print(f"-> {out}")
    if run_dir is not None:
        row = result["rows"][result["label"]]
        append_metrics(
            run_dir,
            {
                "step": result["step"],
                "parzen_ll": row["mean"],
                "parzen_se": row["se"],
                "parzen_sigma": row["sigma"],
                "parzen_split": args.split,
            },
        )


def _report_pretrained(args: argparse.Namespace, r: dict) -> None:
    """A shipped model's Parzen rows beside the number its registry entry states; ``--json`` written."""
    from advnets.evaluate.protocol import format_row
    from advnets.io import atomic_write_json

    p, res, exp = r["protocol"], r["result"], r["expected"]
    print(
        f"Parzen-window log-likelihood of {res['n']} test images of {p['dataset']} under {p['num_samples']} "
        f"samples of {r['model']} (seed {p['seed']}; σ chosen on {p['valid_size']} validation images):"
    )
    for name, row in r["rows"].items():
        print("  " + format_row(name, row))
    print(f"  {'stated (registry)':<28s} {exp['mean']:8.1f} ± {exp['se']:<6.1f}(σ = {exp['sigma']:.4g})")
    print(f"  difference: {r['difference']:+.3f} nats (measured σ = {res['sigma']:.4g})")
    if r["differs_from_stated"]:
        print(f"  not the stated protocol ({'; '.join(r['differs_from_stated'])}): not a reproduction check")
    if args.json is not None:
        atomic_write_json(args.json, {k: v for k, v in r.items() if k != "kind"})
        print(f"-> {args.json}")
