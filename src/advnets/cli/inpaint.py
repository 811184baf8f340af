"""``advnets inpaint``: complete hidden parts of images with a model trained with --inpaint (§7.3)."""

from __future__ import annotations

import argparse
from pathlib import Path

from advnets.cli.common import (
    add_command,
    add_data_dir,
    add_run,
    check_png,
    figure_count,
    load_array,
    positive_int,
    seed_int,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    ip = add_command(
        sub,
        "inpaint",
        help="complete hidden parts of images with a model trained with --inpaint (Section 7.3)",
        description="The paper's Section 7.3: one model for every conditional p(x_hidden | x_visible). Hides a part "
        "of each input image (--mask), lets G fill it in from several noise vectors, and writes rows of (masked "
        "input with the hidden part grey, the completions, the original) plus a JSON of how close the completions "
        "of --eval-size held-out images come to the truth, beside a random training image pasted in and the mean "
        "image.",
        epilog="examples:\n  advnets train --data embedded --inpaint --out runs/inpaint\n"
        "  advnets inpaint --run runs/inpaint --mask right-half\n"
        "  advnets inpaint --run runs/inpaint --mask block --input my_digits.npy -n 8 --completions 6\n",
    )
    add_run(ip)
    add_data_dir(ip)
    ip.add_argument(
        "--mask",
        default="right-half",
        choices=("right-half", "left-half", "top-half", "bottom-half", "block", "mixed"),
        help="which part to hide: a half, a random square of half the side (block), or a random kind per image "
        "(default right-half)",
    )
    ip.add_argument(
        "--input",
        default="test",
        metavar="IMAGES",
        help="'test' or 'valid' (the run's dataset split), or a .npy array of images (N x H x W or N x d, "
        "in the model's pixel range); default test",
    )
    ip.add_argument("-n", type=figure_count, default=10, help="images in the figure (default 10)")
    ip.add_argument("--completions", type=positive_int, default=5, help="completions per image (default 5)")
    ip.add_argument("--eval-size", type=positive_int, default=500, help="held-out images scored (default 500)")
    ip.add_argument("--seed", type=seed_int, default=0, help="seed of the masks and noise (default 0)")
    ip.add_argument("--out", type=Path, default=None, metavar="FILE.png", help="default: RUN/inpainting/MASK-seedS.png")
    ip.set_defaults(func=cmd_inpaint)


def cmd_inpaint(args: argparse.Namespace) -> int:
    import math

    import torch

    from advnets.data import to_display
    from advnets.errors import AdvnetsError
    from advnets.figures import save_grid
    from advnets.generators import load_generator
    from advnets.inpaint import completions, evaluate_inpainting, figure_rows, make_masks
    from advnets.io import atomic_write_json
    from advnets.runs import run_dir_of

    model = load_generator(args.run)
    g, cfg = model.generator, model.config
    if cfg.generator.condition != "inpaint":
        raise AdvnetsError(f"--run {args.run}: this model was not trained for inpainting (train with --inpaint)")
    shape = model.image_shape
    data = model.load_data(data_dir=args.data_dir)
    if args.input in ("test", "valid"):
        images = data.split(args.input)
    else:
        array = load_array(Path(args.input), "--input")
        if array.shape[1] != math.prod(shape):
            raise AdvnetsError(f"--input {args.input}: {array.shape[1]} values per image, this model needs {shape}")
        images = torch.from_numpy(array).float().reshape(len(array), *shape)
    # n images spread evenly over the input, not its first n: the embedded splits are sorted by class.
    shown = images[torch.linspace(0, len(images) - 1, min(args.n, len(images))).round().long()]
    gen = torch.Generator().manual_seed(args.seed)
    masks = make_masks(len(shown), shape, args.mask, generator=gen)
    done = completions(g, shown, masks, args.completions, seed=args.seed)
    out = check_png(args.out or run_dir_of(args.run) / "inpainting" / f"{args.mask}-seed{args.seed}.png")
    rows = figure_rows(shown, masks, done)
    save_grid(to_display(rows, cfg.data.preprocess), out, nrow=args.completions + 2, scale=2)
    held_out = images[: args.eval_size]
    metrics = evaluate_inpainting(g, held_out, data.train, args.mask, k=args.completions, seed=args.seed)
    metrics.update(step=model.step, input=str(args.input), figure=str(out))
    atomic_write_json(out.with_suffix(".json"), metrics)
    print(f"{len(shown)} rows of (masked input, {args.completions} completions, original), step {model.step} -> {out}")
    print(
        f"RMS error over the hidden pixels of {metrics['images']} {args.input} images ({args.mask}): completions "
        f"{metrics['rmse_completion']:.4f} (best of {args.completions}: {metrics['rmse_best_of_k']:.4f}); "
        f"a random training image pasted in {metrics['rmse_random_training_image']:.4f}; the mean image "
        f"{metrics['rmse_mean_image']:.4f}; two completions of one image differ by "
        f"{metrics['completion_diversity']:.4f}"
    )
    print(f"-> {out.with_suffix('.json')}")
    return 0
