"""A run report's plots of its training log: the loss, D-output and schedule curves, and the collapse monitor's checks.

Each is a :class:`~advnets.report.page.Figure` for the renderers; :mod:`advnets.report.content` places them.
"""

from __future__ import annotations

import math
from typing import Any

from advnets.figures import figure_png, new_figure
from advnets.report.page import Figure

__all__ = ["collapse_figure", "curve_figures"]


def collapse_figure(metrics: list[dict[str, Any]]) -> Figure | None:
    """The collapse monitor's rows (advnets.monitor) and warnings, if the run logged any."""
    checks = [r for r in metrics if isinstance(r, dict) and isinstance(r.get("collapse/diversity"), (int, float))]
    if not checks:
        return None
    warned = [r["step"] for r in metrics if isinstance(r, dict) and "warning" in r]
    steps = [r["step"] for r in checks]
    style = {"marker": "o", "markersize": 3} if len(checks) <= 20 else {}
    fig = new_figure(6.4, 3.6, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, [r["collapse/diversity"] for r in checks], color="tab:blue", label="diversity ratio", **style)
    ax.plot(
        steps,
        [r.get("collapse/near_duplicates", float("nan")) for r in checks],
        color="tab:orange",
        label="near-duplicate fraction",
        **style,
    )
    ax.axhline(0.3, color="gray", linestyle=":", linewidth=1, label="warning threshold (0.3)")
    for i, step in enumerate(warned):
        ax.axvline(step, color="tab:red", linewidth=1, label="collapse warning" if i == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylim(-0.02, max(1.05, max(r["collapse/diversity"] for r in checks) + 0.05))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    said = f"The monitor warned at step {', '.join(map(str, warned))}." if warned else "The monitor never warned."
    return Figure(
        "curves-collapse.png",
        figure_png(fig),
        alt="line plot of the samples' diversity ratio and near-duplicate fraction against the training step",
        caption="Mode-collapse checks on a fixed noise batch: the samples' mean pairwise distance over a real "
        "batch's (1 = as varied as the data, 0 = one image) and the fraction of samples with a near-identical "
        f"neighbour. {said}",
    )


def curve_figures(rows: list[dict[str, Any]], g_loss: str) -> list[Figure]:
    """The training curves of the run's logged rows: the losses, D's outputs and the optimiser's schedules."""
    steps = [r["step"] for r in rows]
    style = {"marker": "o", "markersize": 3} if len(rows) <= 20 else {}
    return [
        _loss_figure(rows, steps, style, g_loss),
        _d_outputs_figure(rows, steps, style),
        _schedules_figure(rows, steps, style),
    ]


def _loss_figure(rows: list[dict[str, Any]], steps: list[int], style: dict[str, Any], g_loss: str) -> Figure:
    ln2 = math.log(2)
    fig = new_figure(6.4, 3.6, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, [r["d_loss"] for r in rows], color="tab:blue", label="D loss", **style)
    ax.plot(steps, [r["g_loss"] for r in rows], color="tab:green", label=f"G loss ({g_loss})", **style)
    ax.axhline(ln2, color="gray", linestyle=":", linewidth=1, label="D = 1/2 everywhere (ln 2)")
    if g_loss == "minimax":
        ax.axhline(-ln2, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    at_half = "ln 2 and −ln 2" if g_loss == "minimax" else "both ln 2"
    return Figure(
        "curves-loss.png",
        figure_png(fig),
        alt="line plot of D's and G's loss against the training step",
        caption=f"Losses against the step. D's loss is the mean of its two cross-entropies, G's the {g_loss} "
        f"loss; where D outputs 1/2 everywhere (the optimum of §4) they are {at_half}.",
    )


def _d_outputs_figure(rows: list[dict[str, Any]], steps: list[int], style: dict[str, Any]) -> Figure:
    fig = new_figure(6.4, 3.6, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, [r["d_real"] for r in rows], color="tab:blue", label="mean D(x), training images", **style)
    ax.plot(steps, [r["d_fake"] for r in rows], color="tab:red", label="mean D(G(z)), samples", **style)
    ax.axhline(0.5, color="gray", linestyle=":", linewidth=1, label="1/2 (optimum, §4)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("D's output")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return Figure(
        "curves-d-outputs.png",
        figure_png(fig),
        alt="line plot of mean D(x) and mean D(G(z)) against the training step",
        caption="D's mean output on training images, D(x), and on G's samples, D(G(z)) (with D's dropout "
        "active, as in training). At the game's optimum both are 1/2.",
    )


def _schedules_figure(rows: list[dict[str, Any]], steps: list[int], style: dict[str, Any]) -> Figure:
    fig = new_figure(6.4, 3.6, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, [r.get("lr", float("nan")) for r in rows], color="tab:purple", label="learning rate", **style)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate", color="tab:purple")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3), useOffset=False)
    ax2 = ax.twinx()
    ax2.plot(steps, [r.get("momentum", float("nan")) for r in rows], color="tab:orange", label="momentum", **style)
    ax2.set_ylabel("momentum", color="tab:orange")
    ax2.ticklabel_format(axis="y", useOffset=False)
    ax.grid(alpha=0.3)
    return Figure(
        "curves-schedules.png",
        figure_png(fig),
        alt="line plot of the learning rate (left axis) and momentum (right axis) against the training step",
        caption="The optimiser's schedules: learning rate (left axis) and momentum (right axis).",
    )
