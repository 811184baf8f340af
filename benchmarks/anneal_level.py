"""Where the paper's recipe would land if annealed where the reference's schedule anneals it (issue 15).

Reads the learning-rate probes (a CSV: ``run, seed, drop_epoch, valid_ll, test_ll``; each row a checkpoint of
the paper's recipe at ``drop_epoch`` continued at the constant rate 0.01, ``valid_ll`` the best validation
log-likelihood within 10 epochs after the drop and ``test_ll`` that checkpoint's test score, blank if not
measured; benchmarks/RESULTS.md, "The learning rate", has the commands), fits the annealed level against the
epochs before the drop with both models of advnets.evaluate.annealing, and prints, side by side, what each
predicts at the epoch where the mnist preset's own rate reaches 0.01 (~1,151) — on validation, and on test
by adding the mean test-minus-validation offset of the probes — beside the paper's 225 ± 2. Draws the points,
both fits and the prediction (``--figure``).

Why that epoch: the probes drop the rate abruptly, the reference lowers it smoothly; at epoch ~1,151 the
reference's own rate is 0.01, so a drop to 0.01 there is no drop at all, and the fitted level there stands for
the reference's run itself at that epoch. It is an extrapolation 1.5 doublings past the last probe (epoch 400),
with the fit's error alone.

    python benchmarks/anneal_level.py                                   # the recorded probes, figure in docs/
    python benchmarks/anneal_level.py --points my_probes.csv --at 800 --figure /tmp/level.png
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

from advnets.errors import AdvnetsError
from advnets.evaluate.annealing import MODELS, fit_annealed_level
from advnets.evaluate.protocol import PAPER_TABLE1_MNIST
from advnets.presets import get_preset

REPO = Path(__file__).resolve().parent.parent
BATCHES_PER_EPOCH = 50_000 // 100  # full MNIST's 50,000 training images, minibatches of 100
ANNEALED_RATE = 0.01


def reference_drop_epoch(rate: float = ANNEALED_RATE) -> float:
    """The epoch at which the mnist preset's rate (lr divided by lr_decay per minibatch) falls to ``rate``."""
    o = get_preset("mnist").optim
    return math.log(o.lr / rate) / math.log(o.lr_decay) / BATCHES_PER_EPOCH


def read_points(path: Path) -> list[dict[str, float | str | None]]:
    """The probes of the CSV at ``path``; AdvnetsError naming the file (and the line) when it is malformed."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"run", "drop_epoch", "valid_ll"} - set(reader.fieldnames or ())
            if missing:
                raise AdvnetsError(
                    f"--points {path}: its header lacks {', '.join(sorted(missing))} (expected the columns run, "
                    "seed, drop_epoch, valid_ll, test_ll; test_ll may be blank)"
                )
            rows = list(reader)
    except OSError as err:
        raise AdvnetsError(f"--points {path}: cannot read it ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise AdvnetsError(f"--points {path}: not a UTF-8 text file (byte {err.start})") from err
    points = []
    for i, row in enumerate(rows, start=2):
        try:
            points.append(
                {
                    "run": row["run"],
                    "drop_epoch": float(row["drop_epoch"]),
                    "valid_ll": float(row["valid_ll"]),
                    "test_ll": float(row["test_ll"]) if row.get("test_ll") else None,
                }
            )
        except (TypeError, ValueError) as err:
            raise AdvnetsError(
                f"--points {path}, line {i}: expected numbers in drop_epoch, valid_ll, test_ll ({err})"
            ) from err
    if not points:
        raise AdvnetsError(f"--points {path}: no probes in it")
    return points


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--points",
        type=Path,
        default=REPO / "benchmarks" / "table1_anneal_probes.csv",
        help="the probes' CSV (default: the recorded ones, benchmarks/table1_anneal_probes.csv)",
    )
    p.add_argument("--at", type=float, default=None, help="extrapolate to this epoch (default: where the rate is 0.01)")
    p.add_argument(
        "--figure",
        type=Path,
        default=REPO / "docs" / "table1_anneal_level.png",
        help="where to draw the figure (default: docs/table1_anneal_level.png, docs/table1.md's)",
    )
    p.add_argument("--no-figure", action="store_true", help="print the table only")
    args = p.parse_args(argv)
    try:
        points = read_points(args.points)
        at = args.at if args.at is not None else reference_drop_epoch()
        epochs = np.array([q["drop_epoch"] for q in points])
        valid = np.array([q["valid_ll"] for q in points])
        fits = {model: fit_annealed_level(epochs, valid, model) for model in MODELS}
    except AdvnetsError as err:
        print(f"anneal_level: error: {err}", file=sys.stderr)
        return 2
    offsets = np.array([q["test_ll"] - q["valid_ll"] for q in points if q["test_ll"] is not None])
    print(f"{len(points)} probes from {args.points}, drop epochs {epochs.min():g}-{epochs.max():g}")
    print(report(fits, at, offsets))
    offset = float(offsets.mean()) if offsets.size else 0.0
    if not args.no_figure:
        print(f"\nfigure: {draw(points, fits, at, offset, args.figure)}")
    return 0


def report(fits, at: float, offsets: np.ndarray) -> str:
    """Each fit's prediction at epoch ``at`` as a Markdown table: on validation, and where any probe has a test
    score, on test (validation + the mean of ``offsets``, the probes' test - validation) beside the paper's."""
    paper, paper_se = PAPER_TABLE1_MNIST["Adversarial nets"]
    with_test = offsets.size > 0
    offset = float(offsets.mean()) if with_test else 0.0
    offset_se = float(offsets.std(ddof=1) / math.sqrt(offsets.size)) if offsets.size > 1 else 0.0
    lines = [
        f"test runs {offset:.1f} ± {offset_se:.1f} nats above validation ({offsets.size} probes with both)\n"
        if with_test
        else "no probe has a test score: validation only\n",
        f"| model | parameters | residual sd | validation LL at epoch {at:.0f} |"
        + (f" test LL at epoch {at:.0f} | paper (test) | test − paper |" if with_test else ""),
        "|---|---|---:|---:|" + ("---:|---:|---:|" if with_test else ""),
    ]
    for model, fit in fits.items():
        value, se = (float(v) for v in fit.predict(at))
        params = ", ".join(f"{k} {v:.3g}" for k, v in fit.params.items())
        row = f"| {model} | {params} | {fit.residual_sd:.2f} | {value:.1f} ± {se:.1f} |"
        if with_test:
            test, test_se = value + offset, math.hypot(se, offset_se)
            row += (f" {test:.1f} ± {test_se:.1f} | {paper:g} ± {paper_se:g} | {test - paper:+.1f} ± "
                    f"{math.hypot(test_se, paper_se):.1f} |")  # fmt: skip
        lines.append(row)
    return "\n".join(lines)


def draw(points, fits, at: float, offset: float, path: Path) -> Path:
    """The probes' validation levels against the drop epoch (log scale), both fits with their ±1 SE bands
    carried to ``at``, and the paper's test LL moved onto the validation scale by ``offset``."""
    from advnets.figures import new_figure, save_figure

    fig = new_figure(7.0, 4.5, layout="constrained")
    ax = fig.add_subplot()
    ax.scatter([q["drop_epoch"] for q in points], [q["valid_ll"] for q in points], color="black", zorder=3,
               label="probes: best validation LL within 10 epochs of the drop to 0.01")  # fmt: skip
    x = np.geomspace(min(q["drop_epoch"] for q in points), at * 1.3, 200)
    for (model, fit), color in zip(fits.items(), ("tab:blue", "tab:orange"), strict=True):
        y, se = fit.predict(x)
        value, value_se = (float(v) for v in fit.predict(at))
        ax.plot(x, y, color=color, label=f"{model} fit: {value:.1f} ± {value_se:.1f} at epoch {at:.0f}")
        ax.fill_between(x, y - se, y + se, color=color, alpha=0.15)
    paper, paper_se = PAPER_TABLE1_MNIST["Adversarial nets"]
    shifted = "minus the mean test − validation offset" if offset else "(test; no probe has a test score)"
    ax.axhspan(paper - paper_se - offset, paper + paper_se - offset, color="gray", alpha=0.3,
               label=f"paper's {paper:g} ± {paper_se:g} (test) {shifted}")  # fmt: skip
    ax.axvline(at, color="black", linestyle=":", linewidth=1, label=f"epoch {at:.0f}: the reference's rate is 0.01")
    ax.set_xscale("log")
    ticks = [e for e in (100, 200, 400, 800) if e < at] + [round(at)]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("epochs of the paper's recipe before the rate drops to 0.01 (log scale)")
    ax.set_ylabel("validation Parzen LL after the drop (nats)")
    ax.set_title("The annealed level against the epochs trained before the drop")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
