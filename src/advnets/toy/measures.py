"""What a toy run measures: G's samples and density, D(x), JSD(p_data || p_g), Figure 1's snapshots and branch,
the animation's frames and the end-of-training numbers (1-D: JSD and |D - 1/2|; 2-D: mode coverage).

Used by :func:`advnets.toy.train_toy` and ``advnets explore``; the toys are described in :mod:`advnets.toy`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

from advnets.data.toy import Mixture1D
from advnets.evaluate.modes import mode_coverage
from advnets.nets import Discriminator, Generator
from advnets.theory import histogram_density, jsd_from_samples
from advnets.toy.config import CORE_FRACTION, FIGURE_SEED_OFFSET, N_GRID, N_Z_LINES, SUPPORT_FRACTION, ToyConfig
from advnets.toy.game import Game
from advnets.toy.results import Frame, Snapshot, ToyResult

__all__ = ["d_prob", "density", "figure_branch", "frame", "jsd_to_data", "measure_final", "samples_of", "snapshot"]


@torch.no_grad()
def samples_of(g: Generator, z: torch.Tensor) -> np.ndarray:
    return g(z).double().numpy()


@torch.no_grad()
def d_prob(d: Discriminator, x: np.ndarray) -> np.ndarray:
    logits = d(torch.as_tensor(x, dtype=torch.float32).reshape(-1, d.data_dim))
    return torch.sigmoid(logits.double()).numpy()


def jsd_to_data(data: Mixture1D, samples: np.ndarray) -> float:
    """JSD(p_data || p_g) on a grid over the data (mass of G outside it counts as outside)."""
    lo, hi = data.bounds(5.0)
    grid = np.linspace(lo, hi, N_GRID)
    s = samples[:, 0]
    method = "kde" if np.ptp(s) > 1e-3 * data.std else "histogram"
    return jsd_from_samples(s, data.pdf, grid, method=method)


def density(samples: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gaussian KDE of 1-D samples on the uniform grid ``x``, binned: the histogram of
    the samples on the grid's cells (:func:`advnets.theory.histogram_density`)
    smoothed with a Gaussian kernel of Scott's bandwidth, at least one grid step (so
    a collapsed G still shows up as a peak). Samples beyond the grid are dropped."""
    h = float(x[1] - x[0])
    edges = np.concatenate([x - 0.5 * h, [x[-1] + 0.5 * h]])
    hist = histogram_density(samples, edges)
    bw = max(1.06 * float(np.std(samples)) * samples.size ** (-0.2), h)
    half = int(math.ceil(4 * bw / h))
    offsets = np.arange(-half, half + 1) * h
    kernel = np.exp(-0.5 * (offsets / bw) ** 2)
    return np.convolve(hist, kernel / kernel.sum(), mode="same")


def snapshot(label: str, step: int, data: Mixture1D, g: Generator, d: Discriminator, eval_z: torch.Tensor) -> Snapshot:
    s = samples_of(g, eval_z)[:, 0]
    lo, hi = data.bounds(4.0)
    q_lo, q_hi = np.quantile(s, [0.001, 0.999])
    margin = 0.05 * (max(hi, q_hi) - min(lo, q_lo))
    x = np.linspace(min(lo, q_lo - margin), max(hi, q_hi + margin), N_GRID)
    z = gz = None
    if g.cfg.noise_dim == 1:
        a = math.sqrt(3.0)
        z = np.linspace(-a, a, N_Z_LINES)
        gz = samples_of(g, torch.as_tensor(z, dtype=torch.float32)[:, None])[:, 0]
    return Snapshot(label=label, step=step, x=x, p_data=data.pdf(x), p_g=density(s, x), d=d_prob(d, x), z=z, gz=gz)


def frame(step: int, data: Any, g: Generator, d: Discriminator, eval_z: torch.Tensor) -> Frame:
    if data.dim == 1:
        return Frame(step=step, snapshot=snapshot("", step, data, g, d, eval_z))
    return Frame(step=step, points=samples_of(g, eval_z[:1000]))


def measure_final(result: ToyResult, eval_z: torch.Tensor) -> None:
    """Fill ``result``'s end-of-training measures: for 1-D, panel (d), the final JSD and how far D is
    from 1/2 where p_data lives (Figure 1 (d), §4.1: D = 1/2 at the optimum); for 2-D, the samples and coverage."""
    cfg, data, g, d = result.config, result.data, result.generator, result.discriminator
    if cfg.dim == 1:
        final = snapshot("d", cfg.steps, data, g, d, eval_z)
        result.snapshots["d"] = final
        result.jsd_final = jsd_to_data(data, samples_of(g, eval_z))
        dev = np.abs(final.d - 0.5)
        result.max_abs_d_minus_half = float(dev[final.p_data > SUPPORT_FRACTION * final.p_data.max()].max())
        result.max_abs_d_minus_half_core = float(dev[final.p_data > CORE_FRACTION * final.p_data.max()].max())
        result.mean_abs_d_minus_half = float(np.sum(final.p_data * dev) / np.sum(final.p_data))
    else:
        result.samples = samples_of(g, eval_z)
        result.coverage = mode_coverage(result.samples, data.modes, data.std)


def figure_branch(
    cfg: ToyConfig, data: Mixture1D, g: Generator, d: Discriminator, eval_z: torch.Tensor, step: int
) -> dict[str, Snapshot]:
    """Figure 1's (a), (b), (c): the current pair; D trained alone against the frozen
    G; G after a few steps against that D. (b) and (c) train copies, on their own
    random streams, so the main run is not disturbed."""
    snaps = {"a": snapshot("a", step, data, g, d, eval_z)}
    branch = Game(cfg, data, copy.deepcopy(g), copy.deepcopy(d), cfg.seed + FIGURE_SEED_OFFSET)
    for _ in range(cfg.figure_d_steps):
        branch.d_step(cfg.figure_d_batch)
    snaps["b"] = snapshot("b", step, data, branch.g, branch.d, eval_z)
    for _ in range(cfg.figure_g_steps):
        branch.g_step(cfg.batch_size)
    snaps["c"] = snapshot("c", step, data, branch.g, branch.d, eval_z)
    return snaps
