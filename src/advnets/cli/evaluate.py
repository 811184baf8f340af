"""``advnets evaluate``: the Parzen-window log-likelihood of Table 1 (advnets.evaluate.protocol)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from advnets.cli.common import add_command, add_data_dir, load_array, positive_int

EXAMPLES = """\
examples:
  advnets evaluate --run runs/00001-mnist-embedded               # the paper's protocol, a Table-1 row
  advnets evaluate --run runs/00001-mnist-embedded --baselines   # plus real/k-means/Gaussian "samples"
  advnets evaluate --run runs/00001-mnist-embedded --sigmas 0.1,0.15,0.2 --split valid
  advnets evaluate --samples S.npy --valid V.npy --test T.npy    # any model's samples, same code
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = add_command(
        sub,
        "evaluate",
        help="Parzen-window log-likelihood (Table 1)",
        description="The paper's Parzen-window evaluation (Table 1): a Gaussian Parzen window on samples of G, "
        "sigma chosen on validation images, the mean log-likelihood of the test images +- std/sqrt(N). "
        "Exact (float64) and chunked. Scores assume pixels in [0, 1]; a Parzen score is not a sample-quality "
        "measure (Theis et al., 2016): --baselines shows what trivial 'models' score.",
        epilog=EXAMPLES,
    )
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, metavar="DIR", help="run directory or checkpoint file to evaluate")
    src.add_argument("--samples", type=Path, metavar="S.npy", help="score these samples (N x d or N x H x W[x C])")
    e.add_argument("--valid", type=Path, metavar="V.npy", help="with --samples: validation images to choose sigma")
    e.add_argument("--test", type=Path, metavar="T.npy", help="with --samples: images to score")
    add_data_dir(e)
    e.add_argument(
        "--num-samples",
        type=positive_int,
        default=10000,
        metavar="M",
        help="samples of G in the window (default 10000, the reference protocol)",
    )
    e.add_argument(
        "--valid-size",
        type=positive_int,
        default=1000,
        metavar="N",
        help="validation images used to choose sigma (default 1000; capped at the split's size)",
    )
    e.add_argument(
        "--sigmas",
        default="logspace:-1:0:10",
        metavar="GRID",
        help="candidate bandwidths: 'logspace:A:B:N' or a list like 0.1,0.2 (default logspace:-1:0:10)",
    )
    e.add_argument("--split", choices=("test", "valid", "train"), default="test", help="images to score (default test)")
    e.add_argument("--seed", type=int, default=0, help="seed of G's noise (default 0)")
    e.add_argument(
        "--baselines",
        action="store_true",
        help="add rows for real training images, k-means centroids and a Gaussian fit as the 'samples'",
    )
    e.add_argument(
        "--folds",
        type=positive_int,
        default=None,
        metavar="K",
        help="TFD runs: the paper's protocol over folds 0..K-1 (sigma per fold, SE across folds; the paper uses 5)",
    )
    e.add_argument("--float32", action="store_true", help="faster float32 mode (about 1e-3 nats error at 784-d)")
    e.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    e.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the result here (default: RUN/parzen.json with --run)",
    )
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_evaluate)


def _scores_of_samples(args: argparse.Namespace, sigmas, kw: dict) -> dict:
    """``--samples S.npy --valid V.npy --test T.npy``: any model's samples, scored by the same code."""
    from advnets.errors import AdvnetsError
    from advnets.evaluate.parzen import parzen_evaluate

    samples = load_array(args.samples, "--samples")
    valid, test = load_array(args.valid, "--valid"), load_array(args.test, "--test")
    for option, path, array in (("--valid", args.valid, valid), ("--test", args.test, test)):
        if array.shape[1] != samples.shape[1]:
            raise AdvnetsError(
                f"{option} {path}: {array.shape[1]} features per image, but --samples "
                f"{args.samples} has {samples.shape[1]}"
            )
    rows = {"samples": parzen_evaluate(test, samples, valid=valid, sigmas=sigmas, **kw)}
    return {"rows": rows, "label": "samples", "dataset": None, "step": None, "valid_size": len(valid)}


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from advnets.errors import AdvnetsError
    from advnets.evaluate.protocol import evaluate_run, format_row, paper_row_for, parse_sigmas, parzen_record
    from advnets.io import atomic_write_json
    from advnets.runs import append_metrics, run_dir_of

    sigmas = parse_sigmas(args.sigmas)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    if device == "cuda" and not torch.cuda.is_available():
        raise AdvnetsError("--device cuda: no CUDA device is available here")
    dtype = torch.float32 if args.float32 else torch.float64
    kw = {"dtype": dtype, "device": device, "progress": not args.no_progress}
    if args.samples is not None:
        result, run_dir = _scores_of_samples(args, sigmas, kw), None
    else:
        result = evaluate_run(
            args.run,
            num_samples=args.num_samples,
            valid_size=args.valid_size,
            split=args.split,
            seed=args.seed,
            sigmas=sigmas,
            folds=args.folds,
            baselines=args.baselines,
            data_dir=args.data_dir,
            note=lambda text: print(f"advnets: note: {text}", file=sys.stderr),
            **kw,
        )
        run_dir = run_dir_of(args.run)
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
    out = args.json or (run_dir / "parzen.json" if run_dir is not None else None)
    doc = parzen_record(
        result, num_samples=args.num_samples, split=args.split, seed=args.seed, sigmas=sigmas, dtype=dtype
    )
    if out is not None:
        atomic_write_json(out, doc)
        print(f"-> {out}")
    if run_dir is not None:
        main_row = rows[result["label"]]
        append_metrics(
            run_dir,
            {
                "step": result["step"],
                "parzen_ll": main_row["mean"],
                "parzen_se": main_row["se"],
                "parzen_sigma": main_row["sigma"],
                "parzen_split": args.split,
            },
        )
    return 0
