"""Figures of advnets.toy's results: the paper's Figure 1 (four moments of the 1-D game, paper §4), its
animation, and the final samples of a 2-D toy against its modes."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from advnets.errors import AdvnetsError
from advnets.figures import new_figure, save_figure
from advnets.io import atomic_write_bytes
from advnets.toy import EVAL_SEED_OFFSET, ToyResult

if TYPE_CHECKING:
    from advnets.data.toy import GaussianMixture2D
    from advnets.toy import Snapshot


_PANEL_COLORS = {"data": "black", "g": "green", "d": "blue"}


def _is_toy_result(result: Any) -> bool:
    return isinstance(result, ToyResult)


def _need_1d(result: ToyResult, what: str) -> None:
    if not _is_toy_result(result):
        raise AdvnetsError(f"{what} needs a ToyResult from train_toy, got {type(result).__name__}")
    if result.dim != 1:
        raise AdvnetsError(f"{what} is for the 1-D toys (gaussian, mixture), not {result.config.dataset!r}")


def _draw_densities(ax: Any, snap: Snapshot, ymax: float, xlim: tuple[float, float]) -> None:
    ax.plot(snap.x, snap.p_data, color="black", linestyle=":", linewidth=2.0, label="data $p_{data}$")
    ax.plot(snap.x, snap.p_g, color="green", linestyle="-", linewidth=1.6, label="$p_g$")
    ax.plot(snap.x, snap.d, color="blue", linestyle="--", linewidth=1.6, label="$D(x)$")
    ax.set_xlim(*xlim)
    ax.set_ylim(0.0, ymax)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def _draw_mapping(ax: Any, snap: Snapshot, xlim: tuple[float, float]) -> None:
    """Figure 1's lower part: the z line (uniform ticks) below the x line, an arrow from each z to G(z)."""
    ax.set_xlim(*xlim)
    ax.set_ylim(-0.25, 1.2)
    ax.axis("off")
    ax.axhline(1.0, color="black", linewidth=1.0)
    ax.axhline(0.0, color="black", linewidth=1.0)
    ax.text(xlim[0], 1.05, "x", fontsize=10, va="bottom")
    ax.text(xlim[0], 0.05, "z", fontsize=10, va="bottom")
    if snap.z is None or snap.gz is None:
        return
    a = math.sqrt(3.0)
    lo, hi = xlim[0] + 0.05 * (xlim[1] - xlim[0]), xlim[1] - 0.05 * (xlim[1] - xlim[0])
    z_pos = lo + (snap.z + a) / (2 * a) * (hi - lo)  # the z domain drawn across the panel
    ax.plot(z_pos, np.zeros_like(z_pos), "|", color="black", markersize=8)
    for zp, gx in zip(z_pos, snap.gz, strict=True):
        target = float(np.clip(gx, *xlim))
        ax.annotate(
            "",
            xy=(target, 1.0),
            xytext=(zp, 0.0),
            arrowprops={"arrowstyle": "->", "color": "0.3", "linewidth": 0.7, "shrinkA": 0, "shrinkB": 0},
        )


def _shared_limits(snaps: list[Snapshot]) -> tuple[tuple[float, float], float]:
    """Common x range of the snapshots; y up to 1.5 x the data's peak (or D's 1): taller
    peaks of p_g (a collapsed G) are clipped, so that the curves stay readable."""
    xlim = (min(float(s.x[0]) for s in snaps), max(float(s.x[-1]) for s in snaps))
    ymax = 1.08 * max(1.0, 1.5 * max(float(s.p_data.max()) for s in snaps))
    return xlim, ymax


def plot_figure1(result: ToyResult, path: Path | str) -> Path:
    """Figure 1 of the paper from a 1-D run: panels (a)-(d), each with p_data (black
    dotted), p_g (green), D (blue dashed) and the map z -> x = G(z) below. Written
    atomically as a PNG; returns the path."""
    _need_1d(result, "plot_figure1")
    missing = [k for k in "abcd" if k not in result.snapshots]
    if missing:
        raise AdvnetsError(f"the result has no Figure 1 snapshot(s) {', '.join(missing)}")
    snaps = [result.snapshots[k] for k in "abcd"]
    xlim, ymax = _shared_limits(snaps)
    fig = new_figure(16, 4.2)
    grid = fig.add_gridspec(2, 4, height_ratios=(3, 1), hspace=0.05, wspace=0.08)
    titles = {
        "a": "(a) step {step}",
        "b": "(b) D trained against the G of (a)",
        "c": "(c) after G steps against that D",
        "d": "(d) end, step {step}",
    }
    for i, snap in enumerate(snaps):
        top = fig.add_subplot(grid[0, i])
        _draw_densities(top, snap, ymax, xlim)
        top.set_xticklabels([])
        top.set_title(titles[snap.label].format(step=snap.step), fontsize=11)
        if i == 0:
            top.legend(loc="upper left", fontsize=8, frameon=False)
        _draw_mapping(fig.add_subplot(grid[1, i]), snap, xlim)
    fig.suptitle(f"{result.config.dataset}: Figure 1 (Goodfellow et al., 2014)", fontsize=12)
    return save_figure(fig, path)


def _figure_image(fig: Any) -> Any:
    """The rendered figure as an RGB PIL image."""
    from PIL import Image

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return Image.fromarray(rgba[..., :3].copy())


def animate(result: ToyResult, path: Path | str, *, fps: float = 8.0) -> Path:
    """An animated GIF of training from ``result.frames`` (record them with
    ``train_toy(..., frames=N)``): p_data, p_g and D for a 1-D toy, generated points
    over the mode centres for a 2-D one. Written atomically; returns the path."""
    if not _is_toy_result(result):
        raise AdvnetsError(f"animate needs a ToyResult from train_toy, got {type(result).__name__}")
    if len(result.frames) < 2:
        raise AdvnetsError("animate needs at least 2 recorded frames: train with train_toy(..., frames=N), N >= 1")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise AdvnetsError(f"fps must be a positive number, got {fps!r}")
    images = []
    if result.dim == 1:
        snaps = [f.snapshot for f in result.frames if f.snapshot is not None]
        xlim, ymax = _shared_limits(snaps)
        for snap in snaps:
            fig = new_figure(6.4, 3.6)
            ax = fig.add_subplot(1, 1, 1)
            _draw_densities(ax, snap, ymax, xlim)
            ax.legend(loc="upper left", fontsize=8, frameon=False)
            ax.set_title(f"{result.config.dataset}: step {snap.step} of {result.config.steps}", fontsize=11)
            fig.tight_layout()
            images.append(_figure_image(fig))
    else:
        data = result.data
        (x0, x1), (y0, y1) = data.bounds(40.0 if data.std < 0.1 else 5.0)
        for frame in result.frames:
            fig = new_figure(4.8, 4.8)
            ax = fig.add_subplot(1, 1, 1)
            _draw_points(ax, data, frame.points, (x0, x1), (y0, y1))
            ax.set_title(f"{result.config.dataset}: step {frame.step} of {result.config.steps}", fontsize=11)
            fig.tight_layout()
            images.append(_figure_image(fig))
    # Quantise every frame to one shared palette: no colour flicker, small file.
    palette_source = images[-1].quantize(colors=64)
    frames_p = [im.quantize(palette=palette_source) for im in images]
    buf = io.BytesIO()
    duration = int(round(1000.0 / fps))
    frames_p[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=frames_p[1:],
        duration=[duration] * (len(frames_p) - 1) + [duration * 8],  # hold the last frame
        loop=0,
        optimize=False,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _draw_points(
    ax: Any,
    data: GaussianMixture2D,
    points: np.ndarray | None,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    real: np.ndarray | None = None,
) -> None:
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=4, color="0.55", alpha=0.5, linewidths=0, label="data")
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=4, color="green", alpha=0.5, linewidths=0, label="G(z)")
    ax.scatter(data.modes[:, 0], data.modes[:, 1], s=40, marker="x", color="red", linewidths=1.5, label="modes")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")


def plot_points(result: ToyResult, path: Path | str) -> Path:
    """A 2-D run's final samples (green) against real samples (grey) and the mode
    centres (red crosses), titled with the mode coverage. Written atomically as PNG."""
    if not _is_toy_result(result):
        raise AdvnetsError(f"plot_points needs a ToyResult from train_toy, got {type(result).__name__}")
    if result.dim != 2 or result.samples is None or result.coverage is None:
        raise AdvnetsError(f"plot_points is for the 2-D toys (ring8, grid25), not {result.config.dataset!r}")

    data = result.data
    real = data.sample(
        len(result.samples), generator=torch.Generator().manual_seed(result.config.seed + EVAL_SEED_OFFSET)
    )  # the data drawn beside G's samples
    (x0, x1), (y0, y1) = data.bounds(40.0 if data.std < 0.1 else 5.0)
    fig = new_figure(5.6, 5.6)
    ax = fig.add_subplot(1, 1, 1)
    _draw_points(ax, data, result.samples, (x0, x1), (y0, y1), real=real.numpy())
    cov = result.coverage
    cfg = result.config
    ax.set_title(
        f"{cfg.dataset}, k={cfg.k}, G steps per D step={cfg.g_steps_per_d_step}, {cfg.steps} steps\n"
        f"modes covered {cov['modes_covered']}/{cov['n_modes']}, "
        f"high-quality samples {100 * cov['high_quality_fraction']:.1f} %",
        fontsize=10,
    )
    ax.legend(loc="upper right", fontsize=8, markerscale=2)
    fig.tight_layout()
    return save_figure(fig, path)
