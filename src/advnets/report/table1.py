"""Table 1 as a reader sees it: the Markdown table and the validation-curve figure (issue 15).

The numbers come from :mod:`advnets.evaluate.table1` (validation curves, the best checkpoint's
test score) and :mod:`advnets.evaluate.protocol` (baselines); this module only presents them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from advnets.evaluate.annealing import plateau_fit
from advnets.evaluate.protocol import PAPER_TABLE1_MNIST

__all__ = ["plot_validation_curves", "summarize", "table1_markdown"]


def summarize(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN for one value) over seeds."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def _pm(mean: float, spread: float, digits: int = 1) -> str:
    return f"{mean:.{digits}f}" if math.isnan(spread) else f"{mean:.{digits}f} ± {spread:.{digits}f}"


def table1_markdown(
    results: dict[str, dict[int, dict[str, Any]]], baselines: dict[str, dict[str, Any]] | None = None
) -> str:
    """Table 1 (MNIST) as a Markdown table: the paper's rows, then per recipe one row per seed
    (test LL ± SE, σ, the chosen checkpoint's epoch and validation LL) and the mean ± sd over
    seeds, then the baselines scored by the same protocol.

    ``results``: ``{recipe: {seed: score_best(...)}}``; ``baselines``: reference_protocol's rows.
    """
    lines = [
        "| model | MNIST Parzen LL (nats) | σ | epoch (best on validation) | validation LL |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (mean, se) in PAPER_TABLE1_MNIST.items():
        lines.append(f"| {name} (paper, Table 1) | {mean:g} ± {se:g} |  |  |  |")
    for recipe, by_seed in results.items():
        for seed, r in sorted(by_seed.items()):
            lines.append(
                f"| advnets, {recipe}, seed {seed} | {_pm(r['mean'], r['se'])} | {r['sigma']:.4g} | "
                f"{r['epoch']:.0f} | {r['valid_ll']:.1f} |"
            )
        if len(by_seed) > 1:
            mean, sd = summarize([r["mean"] for r in by_seed.values()])
            epochs = summarize([r["epoch"] for r in by_seed.values()])
            lines.append(
                f"| **advnets, {recipe}, mean ± sd over {len(by_seed)} seeds** | **{_pm(mean, sd)}** |  | "
                f"{_pm(*epochs, digits=0)} |  |"
            )
    for name, row in (baselines or {}).items():
        lines.append(f"| baseline: {name} | {_pm(row['mean'], row['se'])} | {row['sigma']:.4g} |  |  |")
    return "\n".join(lines)


def plot_validation_curves(curves: dict[str, list[dict[str, Any]]], path: str | Path, title: str = "") -> Path:
    """Validation LL against epochs, one line per run label, with the paper's test LL as a reference line."""
    from advnets.figures import new_figure, save_figure

    fig = new_figure(7.0, 4.5, layout="constrained")
    ax = fig.add_subplot()
    for label, curve in curves.items():
        pts = sorted((e["epoch"], e["valid_ll"]) for e in curve)
        if not pts:
            continue
        (line,) = ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=label)
        fit = plateau_fit(curve)
        if fit["identified"]:  # the fitted course, carried a third past the last point
            x = np.linspace(fit["first_epoch"], fit["last_epoch"] * 4 / 3, 100)
            y = fit["asymptote"] - fit["amplitude"] * np.exp(-(x - fit["first_epoch"]) / fit["tau"])
            ax.plot(x, y, linestyle=":", color=line.get_color(), label=f"fit: heading for {fit['asymptote']:.0f}")
    paper, _ = PAPER_TABLE1_MNIST["Adversarial nets"]
    ax.axhline(paper, color="black", linestyle="--", linewidth=1, label=f"paper, Table 1 (test): {paper:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Parzen log-likelihood of validation images (nats)")
    ax.set_title(title or "Validation log-likelihood while training (σ chosen per checkpoint)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
