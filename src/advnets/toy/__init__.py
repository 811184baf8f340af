"""The paper's Figure 1 and the mode-collapse scenario of §6, on toy data with known densities.

:func:`train_toy` trains a small G and D with Algorithm 1 (k D steps on fresh
minibatches, then G steps with the non-saturating loss) on a 1-D toy
(``gaussian``, ``mixture``) or a 2-D one (``ring8``, ``grid25``) of
:mod:`advnets.data.toy`. Data are drawn fresh from the toy for every minibatch
(the density is known, so there is no finite training set). The players are the
package's own nets (:class:`~advnets.nets.Generator`, the maxout
:class:`~advnets.nets.Discriminator`), small and without dropout.

Optimiser: Adam (betas (0.5, 0.999)) by default, not the paper's SGD with
momentum: on toys it is the common choice and converges in a few thousand steps
without tuning (``optimizer="sgd"``, momentum 0.5, is available). D's learning
rate is ``lr`` = 1e-3; on the 1-D toys G's is 4 times smaller (``g_lr`` = 2.5e-4),
so that D keeps up with G -- with equal rates the 1-D game keeps circling
(final JSD 0.05-0.2 instead of 0.02). Two departures from the reference nets,
needed on 1-2 dimensional inputs: biases start U(-r, r) rather than at zero
(otherwise every ReLU/maxout kink starts at the origin), and D sees its input
standardised with the data's known mean and scale.

1-D: the paper's four moments of Figure 1 (paper §4) are recorded as
:class:`Snapshot` objects -- (a) the pair at iteration ``snapshot_at``; (b) D
trained alone, to near-optimum, against the frozen G of (a); (c) G after a few
steps against that D; (d) the end of training. (b) and (c) are computed on
*copies* of the players with their own random stream, so the training run itself
is plain Algorithm 1 and its numbers do not depend on the figure. Each snapshot
holds a grid of x, ``p_data(x)``, a KDE of ``p_g`` from many G(z), ``D(x)`` and
the map ``z -> G(z)`` for evenly spaced z. The summary reports
``JSD(p_data || p_g)`` at initialisation and at the end
(:func:`advnets.theory.jsd_from_samples`) and ``max |D(x) - 1/2|`` where
``p_data`` exceeds 1 % of its maximum -- about 0.5 in practice: G maps a bounded
uniform z to a bounded range, so it never reaches the Gaussian's far tails, where
D* = 1 -- and, as measures of "D = 1/2 at equilibrium", the same max where
``p_data`` exceeds half its maximum and the mean ``E_pdata |D - 1/2|``.

2-D: :func:`advnets.evaluate.modes.mode_coverage` of 2,500 final samples. With
``g_steps_per_d_step`` > 1 G takes several steps against each D, the "Helvetica
scenario" of §6 (G trained too much without updating D), which collapses it onto
few modes.

Everything is seeded (weights, data, noise, the figure branch and the evaluation
noise each get their own :class:`torch.Generator`): on CPU the same config gives
the same numbers, bit for bit.

Public API: ``ToyConfig``, ``toy_config``, ``train_toy``, ``ToyResult`` (``.summary()``), ``Snapshot``,
``Frame``, ``start_game`` and ``iterate``; the figures of a result are in :mod:`advnets.toy_figures`.
The package, one module per concern: :mod:`~advnets.toy.config` (the settings), :mod:`~advnets.toy.game`
(the players and Algorithm 1's iteration), :mod:`~advnets.toy.measures` (snapshots, JSD, |D - 1/2|,
coverage) and :mod:`~advnets.toy.results` (what a run returns); this module trains.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from advnets.errors import AdvnetsError, ConfigError
from advnets.nets import sample_noise
from advnets.toy.config import (
    CORE_FRACTION,
    EVAL_SEED_OFFSET,
    N_COVERAGE,
    N_DENSITY,
    N_GRID,
    N_Z_LINES,
    SUPPORT_FRACTION,
    TOY_DATASETS,
    TOY_DEFAULTS,
    ToyConfig,
    toy_config,
)
from advnets.toy.game import iterate, start_game
from advnets.toy.measures import figure_branch, frame, jsd_to_data, measure_final, samples_of
from advnets.toy.results import Frame, Snapshot, ToyResult

__all__ = [
    "CORE_FRACTION",
    "EVAL_SEED_OFFSET",
    "N_COVERAGE",
    "N_DENSITY",
    "N_GRID",
    "N_Z_LINES",
    "SUPPORT_FRACTION",
    "TOY_DATASETS",
    "TOY_DEFAULTS",
    "ToyConfig",
    "toy_config",
    "Snapshot",
    "Frame",
    "ToyResult",
    "iterate",
    "start_game",
    "train_toy",
]


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def train_toy(
    cfg: ToyConfig,
    *,
    snapshot_at: int | None = None,
    frames: int = 0,
    progress: bool = False,
) -> ToyResult:
    """Train G and D on ``cfg.dataset`` with Algorithm 1; return a :class:`ToyResult`.

    ``snapshot_at`` (1-D only): the iteration of Figure 1's moment (a), from which
    (b) and (c) branch off; default ``steps // 5`` (at least 1). As in the paper's
    panel (a), that is "near convergence": with the default 1-D configs p_g then
    overlaps p_data (JSD about 0.05-0.1), so that D* of (b) is not trivially 0 or 1.
    ``frames``: record about this many evenly spaced animation frames (plus the
    initial state) for :func:`animate`; 0 records none.
    """
    from tqdm.auto import tqdm

    if not isinstance(cfg, ToyConfig):
        raise ConfigError(f"cfg must be a ToyConfig, got {type(cfg).__name__}")
    frames = _check_int(frames, "frames", 0)
    one_d = cfg.dim == 1
    if snapshot_at is None:
        snapshot_at = max(1, cfg.steps // 5)
    snapshot_at = _check_int(snapshot_at, "snapshot_at", 1)
    if snapshot_at > cfg.steps:
        raise ConfigError(f"snapshot_at ({snapshot_at}) must be at most steps ({cfg.steps})")
    frame_every = max(1, cfg.steps // frames) if frames else 0
    log_every = max(1, cfg.steps // 200)

    start = time.perf_counter()
    game = start_game(cfg)
    data, g, d = game.data, game.g, game.d
    eval_gen = torch.Generator().manual_seed(cfg.seed + EVAL_SEED_OFFSET)
    eval_z = sample_noise(g.cfg, N_DENSITY if one_d else N_COVERAGE, generator=eval_gen)

    result = ToyResult(config=cfg, data=data, generator=g, discriminator=d)
    if one_d:
        result.jsd_init = jsd_to_data(data, samples_of(g, eval_z))
    if frame_every:
        result.frames.append(frame(0, data, g, d, eval_z))

    running: dict[str, float] = {}
    n_running = 0
    bar = tqdm(total=cfg.steps, disable=not progress, unit="step", dynamic_ncols=True, desc=cfg.dataset)
    try:
        for step in range(1, cfg.steps + 1):
            row = iterate(game, cfg, step)
            for key, value in row.items():
                running[key] = running.get(key, 0.0) + float(value)
            n_running += 1
            if step % log_every == 0 or step == cfg.steps:
                means = {key: value / n_running for key, value in running.items()}
                if not all(math.isfinite(v) for v in means.values()):
                    raise AdvnetsError(f"toy training diverged at step {step}: {means}")
                result.history.append({"step": step, **means})
                running, n_running = {}, 0
                bar.set_postfix(D=f"{means['d_loss']:.3f}", G=f"{means['g_loss']:.3f}", refresh=False)
            bar.update(1)
            if one_d and step == snapshot_at:
                result.snapshots.update(figure_branch(cfg, data, g, d, eval_z, step))
            if frame_every and (step % frame_every == 0 or step == cfg.steps):
                result.frames.append(frame(step, data, g, d, eval_z))
    finally:
        bar.close()

    measure_final(result, eval_z)
    result.seconds = time.perf_counter() - start
    return result
