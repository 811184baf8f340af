"""``advnets sample``: sample grids, Figure 2 (nearest training example) and Figure 3 (paths in z)."""

from __future__ import annotations

import argparse
from pathlib import Path

from advnets.cli.common import (
    PRETRAINED_OUT_HELP,
    add_command,
    add_data_dir,
    check_png,
    figure_count,
    nonneg_int,
    positive_int,
    pretrained_outputs,
    seed_int,
)

EXAMPLES = """\
examples:
  advnets sample --run runs/00001-mnist-embedded
  advnets sample --run runs/00001-mnist-embedded -n 64 --seed 3 --out grid.png
  advnets sample --run runs/00001-mnist-embedded --nearest           # Figure 2 + memorisation check
  advnets sample --run runs/00001-mnist-embedded --interpolate --rows 10 --steps 12   # Figure 3
  advnets sample --run runs/cond --class 3 -n 25                     # a conditional model's 3s
  advnets sample --pretrained mnist-paper --data mnist --nearest   # Figure 2, shipped G
  advnets sample --pretrained mnist-paper --interpolate --out figure3.png         # Figure 3, shipped G
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = add_command(
        sub,
        "sample",
        help="write a grid of samples from a trained G",
        description="Draw fair random samples from a run's generator and write them as a PNG grid.",
        epilog=EXAMPLES,
    )
    _add_source_and_grid(s)
    _add_figure_options(s)
    s.set_defaults(func=cmd_sample)


def _add_source_and_grid(s: argparse.ArgumentParser) -> None:
    """Which G to draw from and the plain grid's options (how many, which noise, where to)."""
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, metavar="DIR", help="run directory or checkpoint file")
    src.add_argument(
        "--pretrained", metavar="NAME", help="a model shipped inside the package (advnets.pretrained), hash checked"
    )
    s.add_argument(
        "--data",
        metavar="SOURCE",
        help="--pretrained --nearest: the training images to search (e.g. the MNIST IDX directory: its whole "
        "training split)",
    )
    add_data_dir(s)
    s.add_argument("-n", type=figure_count, default=100, help="number of samples (default 100)")
    s.add_argument(
        "--class",
        dest="label",
        type=nonneg_int,
        default=None,
        metavar="K",
        help="conditional models: samples of class K only (default: one class per grid row)",
    )
    s.add_argument("--seed", type=seed_int, default=0, help="noise seed (default 0); the same seed gives the same grid")
    s.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="output PNG (default: RUN/samples/KIND-seedS.png, KIND one of sample, sample-classK, nearest, "
        f"interpolation; {PRETRAINED_OUT_HELP.format('KIND-seedS.png')})",
    )


def _add_figure_options(s: argparse.ArgumentParser) -> None:
    """Figure 2 (--nearest) and Figure 3 (--interpolate), and their own options."""
    mode = s.add_mutually_exclusive_group()
    mode.add_argument(
        "--nearest",
        action="store_true",
        help="Figure 2: the rightmost column, after a red bar, shows the training example nearest to the sample "
        "beside it; also prints and writes (next to the PNG, as .json) a memorisation check of samples drawn with "
        "the same --seed",
    )
    mode.add_argument(
        "--interpolate",
        action="store_true",
        help="Figure 3: each row a linear path in z space between two random noise vectors",
    )
    s.add_argument("--rows", type=positive_int, default=None, help="--interpolate: number of paths (default 10)")
    s.add_argument("--steps", type=positive_int, default=None, help="--interpolate: images per path (default 10)")
    s.add_argument(
        "--spherical",
        action="store_true",
        help="--interpolate along great circles (slerp) instead of straight lines (not the paper's)",
    )
    s.add_argument(
        "--check-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="--nearest: generated and held-out images compared in the memorisation check (default 1000, "
        "at most the test split's size)",
    )


def cmd_sample(args: argparse.Namespace) -> int:
    from advnets.data import to_display
    from advnets.errors import AdvnetsError
    from advnets.figures import save_grid
    from advnets.generators import load_generator
    from advnets.runs import run_dir_of
    from advnets.sampling import grid_columns, interpolate

    _refuse_ignored_options(args)
    for option, default in (("rows", 10), ("steps", 10), ("check_size", 1000)):  # None: not given
        setattr(args, option, default if getattr(args, option) is None else getattr(args, option))
    if args.steps < 2 and args.interpolate:
        raise AdvnetsError("--steps must be at least 2 (the two endpoints of each path)")
    if args.label is not None and (args.nearest or args.interpolate):
        raise AdvnetsError("--class works with plain sample grids, not with --nearest or --interpolate")
    kind = "nearest" if args.nearest else "interpolation" if args.interpolate else "sample"
    kind += "" if args.label is None else f"-class{args.label}"  # not over the grid of every class
    if args.pretrained is not None:
        model = load_generator(pretrained=args.pretrained)
        folder = pretrained_outputs(args.pretrained, args.data_dir)
    else:
        model = load_generator(args.run)
        folder = run_dir_of(args.run) / "samples"
    out = check_png(args.out or folder / f"{kind}-seed{args.seed}.png")
    step, preprocess = model.step, model.config.data.preprocess
    if args.interpolate:
        images = interpolate(model.generator, args.rows, args.steps, args.seed, model.image_shape, args.spherical)
        save_grid(to_display(images, preprocess), out, nrow=args.steps, scale=2)
        how = "spherical" if args.spherical else "linear"
        print(f"{args.rows} {how} paths x {args.steps} steps in z (seed {args.seed}) from step {step} -> {out}")
        return 0
    if not args.nearest:
        import torch

        labels = None if args.label is None else torch.full((args.n,), args.label)
        images = model.sample(args.n, args.seed, labels=labels)
        save_grid(to_display(images, preprocess), out, nrow=grid_columns(args.n), scale=2)
        print(f"{args.n} samples (seed {args.seed}) from step {step} -> {out}")
        return 0
    if args.pretrained is not None and args.data is None:
        raise AdvnetsError("--pretrained --nearest needs --data SOURCE: the training images to search")
    return _nearest(args, model, out)


def _nearest(args: argparse.Namespace, model, out: Path) -> int:
    """Figure 2 and the memorisation check beside it (as RUN/samples/nearest-seedS.json), against the
    run's own training images or, for a shipped model, those of ``--data``."""
    from advnets.data import to_display
    from advnets.evaluate.nearest import memorization_verdict
    from advnets.evaluate.scoring import memorization_check
    from advnets.figures import nearest_grid, png_bytes
    from advnets.io import atomic_write_bytes, atomic_write_json
    from advnets.sampling import grid_columns, nearest_figure

    data = model.load_data(args.data, args.data_dir)
    step = model.step
    columns = grid_columns(args.n) + 1
    rows = -(-args.n // (columns - 1))
    images, neighbours = nearest_figure(model.sample(rows * (columns - 1), args.seed), data.train, columns)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid = nearest_grid(to_display(images, model.config.data.preprocess), columns)
    atomic_write_bytes(out, png_bytes(grid, scale=2))
    check = memorization_check(model, data.train, data.test, args.seed, args.check_size)
    json_path = out.with_suffix(".json")
    atomic_write_json(
        json_path,
        {
            "seed": args.seed,
            "step": step,
            "dataset": data.name,
            "figure": str(out),
            "rightmost_column": neighbours,
            "memorization": check,
        },
    )
    s, h = check["samples"], check["heldout"]
    n = h["n"]
    print(f"{rows} rows of samples, nearest training example after the red bar (seed {args.seed}) -> {out}")
    print(f"distance to the nearest of {len(data.train)} training images (Euclidean, pixel space):")
    print(f"  {n:5d} samples of G:     median {s['median']:.3f}  p5 {s['p5']:.3f}  min {s['min']:.3f}")
    print(f"  {n:5d} held-out images:  median {h['median']:.3f}  p5 {h['p5']:.3f}  min {h['min']:.3f}")
    if n < args.check_size:  # memorization_check takes at most the whole test split
        print(f"  (--check-size {args.check_size} capped at {n}: the test split holds {len(data.test)} images)")
    print(f"  ratio of medians {check['ratio']:.3f}: {memorization_verdict(check['ratio'])} -> {json_path}")
    return 0


def _refuse_ignored_options(args: argparse.Namespace) -> None:
    """Options of one figure given for another would be ignored: refuse them, naming what they go with."""
    from advnets.errors import AdvnetsError

    figure3 = [flag for flag, value in (("--rows", args.rows), ("--steps", args.steps)) if value is not None]
    figure3 += ["--spherical"] if args.spherical else []
    if figure3 and not args.interpolate:
        which = f"{', '.join(figure3)}: these go with" if len(figure3) > 1 else f"{figure3[0]} goes with"
        raise AdvnetsError(f"{which} --interpolate (Figure 3)")
    if args.check_size is not None and not args.nearest:
        raise AdvnetsError("--check-size goes with --nearest (Figure 2's memorisation check)")
    if args.pretrained is None and args.data is not None:
        raise AdvnetsError("--data goes with --pretrained --nearest; a run searches its own training images")
