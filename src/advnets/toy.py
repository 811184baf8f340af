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
``Frame``; the figures of a result are in :mod:`advnets.toy_figures`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from advnets.config import DiscriminatorConfig, GeneratorConfig
from advnets.data.toy import TOY_1D, TOY_2D, GaussianMixture2D, Mixture1D, make_toy
from advnets.errors import AdvnetsError, ConfigError, DataError
from advnets.evaluate.modes import mode_coverage
from advnets.losses import GENERATOR_LOSSES
from advnets.nets import Discriminator, Generator, sample_noise
from advnets.theory import histogram_density, jsd_from_samples
from advnets.train import algorithm

__all__ = [
    "TOY_DATASETS",
    "ToyConfig",
    "toy_config",
    "Snapshot",
    "Frame",
    "ToyResult",
    "iterate",
    "start_game",
    "train_toy",
]

#: Every toy :func:`train_toy` accepts, 1-D first.
TOY_DATASETS = (*TOY_1D, *TOY_2D)

_OPTIMIZERS = ("adam", "sgd")
_SCHEDULES = ("constant", "linear")
#: Samples of G behind every density estimate (1-D) and the mode coverage (2-D, as in PacGAN).
N_DENSITY = 20_000
N_COVERAGE = 2_500
#: Points of the x grid of a 1-D snapshot, and z points drawn in Figure 1's lower line.
N_GRID = 401
N_Z_LINES = 25
#: The data's "support" for max |D - 1/2|: where p_data exceeds this fraction of its maximum.
SUPPORT_FRACTION = 0.01
#: The data's core, where G can match p_data closely: p_data above half its maximum.
CORE_FRACTION = 0.5

# Seeds of the independent streams, offsets from ToyConfig.seed (as train.Trainer does).
_DATA, _NOISE, EVAL_SEED_OFFSET, _FIGURE = 1, 2, 3, 1_000_000


# ------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class ToyConfig:
    """One toy run. ``steps`` counts Algorithm-1 iterations: each is ``k`` D steps
    followed by ``g_steps_per_d_step`` G steps (Algorithm 1 as printed: 1)."""

    dataset: str = "gaussian"
    steps: int = 2000
    batch_size: int = 128  # m in Algorithm 1
    k: int = 1  # D steps per iteration
    g_steps_per_d_step: int = 1  # G steps per iteration; > 1 is the Helvetica scenario of §6
    g_loss: str = "nonsaturating"
    optimizer: str = "adam"  # "adam" (betas 0.5, 0.999) or "sgd" (momentum 0.5)
    lr: float = 1e-3
    g_lr: float | None = 2.5e-4  # G's learning rate (None: ``lr``); slower than D's, so D keeps up
    lr_schedule: str = "constant"  # or "linear": decays linearly to 0 over the run
    seed: int = 0
    noise_dim: int = 1  # Figure 1 draws a 1-D uniform z line
    g_hidden: tuple[int, ...] = (32, 32)  # hidden layers, linear output
    g_activation: str = "relu"
    g_init_range: float = 0.1
    d_hidden: tuple[int, ...] = (32, 32)  # maxout units per layer
    d_pieces: int = 3
    d_init_range: float = 0.1
    # Figure 1, (b) and (c): D-only steps on larger batches, then G-only steps.
    figure_d_steps: int = 500
    figure_d_batch: int = 512
    figure_g_steps: int = 100

    def __post_init__(self) -> None:
        for name in ("g_hidden", "d_hidden"):  # accept lists (JSON, CLI) for the tuple fields
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if not isinstance(self.dataset, str) or self.dataset not in TOY_DATASETS:
            raise DataError(f"unknown toy dataset {self.dataset!r}; choose one of {', '.join(TOY_DATASETS)}")

        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ConfigError(f"toy {name} must be {expected}, got {getattr(self, name)!r}")

        for name in ("steps", "batch_size", "k", "g_steps_per_d_step", "noise_dim", "d_pieces", "figure_d_batch"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, "a positive integer")
        for name in ("figure_d_steps", "figure_g_steps", "seed"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 0, name, "an integer >= 0")
        need(self.g_loss in GENERATOR_LOSSES, "g_loss", f"one of {tuple(GENERATOR_LOSSES)}")
        need(self.optimizer in _OPTIMIZERS, "optimizer", f"one of {_OPTIMIZERS}")
        need(self.lr_schedule in _SCHEDULES, "lr_schedule", f"one of {_SCHEDULES}")
        need(self.g_activation in ("relu", "tanh", "sigmoid"), "g_activation", "relu, tanh or sigmoid")
        need(self.g_lr is None or (isinstance(self.g_lr, (int, float)) and self.g_lr > 0), "g_lr", "None or > 0")
        for name in ("lr", "g_init_range", "d_init_range"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and math.isfinite(value) and value > 0, name, "a positive number")
        for name in ("g_hidden", "d_hidden"):
            value = getattr(self, name)
            need(
                isinstance(value, tuple) and all(isinstance(v, int) and v >= 1 for v in value),
                name,
                "a tuple of positive integers",
            )
        need(len(self.d_hidden) >= 1, "d_hidden", "non-empty")

    @property
    def dim(self) -> int:
        """The data dimension of :attr:`dataset` (1 or 2)."""
        return 1 if self.dataset in TOY_1D else 2

    def generator_config(self) -> GeneratorConfig:
        """G: uniform z, ReLU hidden layers, linear output (no data-based bias)."""
        return GeneratorConfig(
            noise_dim=self.noise_dim,
            noise="uniform",
            hidden_sizes=self.g_hidden,
            hidden_activations=(self.g_activation,) * len(self.g_hidden),
            output_activation="linear",
            init_range=self.g_init_range,
            output_bias_from_data=False,
        )

    def discriminator_config(self) -> DiscriminatorConfig:
        """D: maxout layers, no dropout."""
        return DiscriminatorConfig(
            hidden_units=self.d_hidden,
            pieces=(self.d_pieces,) * len(self.d_hidden),
            init_range=self.d_init_range,
            input_include_prob=1.0,
            hidden_include_prob=1.0,
        )


#: Per-dataset defaults; :func:`toy_config` starts from these.
TOY_DEFAULTS: dict[str, dict[str, Any]] = {
    "gaussian": {},
    "mixture": {"steps": 4000},
    "ring8": {"steps": 3000, "noise_dim": 16, "g_lr": None, "g_hidden": (64, 64), "d_hidden": (64, 64)},
    "grid25": {"steps": 5000, "noise_dim": 16, "g_lr": None, "g_hidden": (128, 128), "d_hidden": (128, 128)},
}


def toy_config(dataset: str = "gaussian", **changes: Any) -> ToyConfig:
    """The default :class:`ToyConfig` for ``dataset``, with ``changes`` applied
    (an unknown option is a :class:`~advnets.errors.ConfigError`)."""
    if dataset not in TOY_DEFAULTS:
        raise DataError(f"unknown toy dataset {dataset!r}; choose one of {', '.join(TOY_DATASETS)}")
    names = {f.name for f in dataclasses.fields(ToyConfig)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) for ToyConfig: {', '.join(unknown)}")
    return ToyConfig(dataset=dataset, **{**TOY_DEFAULTS[dataset], **changes})


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Snapshot:
    """G and D at one moment of a 1-D run, tabulated on the grid ``x``."""

    label: str  # "a".."d" for Figure 1's panels, "" for animation frames
    step: int  # Algorithm-1 iterations of the main run completed
    x: np.ndarray  # the grid
    p_data: np.ndarray
    p_g: np.ndarray  # Gaussian KDE of N_DENSITY samples of G
    d: np.ndarray  # D(x) = sigmoid(logit)
    z: np.ndarray | None  # evenly spaced z on the uniform prior's line (noise_dim == 1)
    gz: np.ndarray | None  # G(z) for those z


@dataclass(frozen=True)
class Frame:
    """One animation frame: a 1-D :class:`Snapshot`, or 2-D generated points."""

    step: int
    snapshot: Snapshot | None = None
    points: np.ndarray | None = None


@dataclass
class ToyResult:
    config: ToyConfig
    data: Mixture1D | GaussianMixture2D
    generator: Generator
    discriminator: torch.nn.Module  # the maxout Discriminator behind a fixed input standardisation
    snapshots: dict[str, Snapshot] = field(default_factory=dict)  # 1-D: "a".."d"
    frames: list[Frame] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)  # step, d_loss, g_loss, d_real, d_fake
    jsd_init: float | None = None  # 1-D
    jsd_final: float | None = None
    max_abs_d_minus_half: float | None = None  # over p_data > SUPPORT_FRACTION * max
    max_abs_d_minus_half_core: float | None = None  # over p_data > CORE_FRACTION * max
    mean_abs_d_minus_half: float | None = None  # E_{x ~ p_data} |D(x) - 1/2|
    samples: np.ndarray | None = None  # 2-D: the N_COVERAGE final samples
    coverage: dict[str, Any] | None = None  # 2-D: mode_coverage() of them
    seconds: float = 0.0

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def modes_reached(self) -> int | None:
        """2-D: modes that are the nearest mode of at least ``min_count`` samples, whatever
        their distance -- where G's mass sits, even before its samples are sharp."""
        if self.coverage is None:
            return None
        nearest = self.coverage["nearest_mode"]
        counts = np.bincount(nearest[nearest >= 0], minlength=self.coverage["n_modes"])
        return int(np.sum(counts >= self.coverage["min_count"]))

    def summary(self) -> dict[str, Any]:
        """The run's numbers, JSON-ready (no wall-clock time: equal seeds give equal summaries)."""
        out: dict[str, Any] = {
            "dataset": self.config.dataset,
            "steps": self.config.steps,
            "seed": self.config.seed,
            "k": self.config.k,
            "g_steps_per_d_step": self.config.g_steps_per_d_step,
        }
        if self.dim == 1:
            out.update(
                jsd_init=self.jsd_init,
                jsd_final=self.jsd_final,
                max_abs_d_minus_half=self.max_abs_d_minus_half,
                max_abs_d_minus_half_core=self.max_abs_d_minus_half_core,
                mean_abs_d_minus_half=self.mean_abs_d_minus_half,
            )
        else:
            assert self.coverage is not None
            out.update(
                modes_covered=self.coverage["modes_covered"],
                modes_reached=self.modes_reached,
                n_modes=self.coverage["n_modes"],
                high_quality_fraction=self.coverage["high_quality_fraction"],
                kl_to_uniform=self.coverage["kl_to_uniform"],
            )
        if self.history:
            last = self.history[-1]
            out.update(d_loss=last["d_loss"], g_loss=last["g_loss"])
        return out


# ---------------------------------------------------------------------------- training


class _Game:
    """G, D, their optimisers and random streams: Algorithm 1's moving parts, stepped by advnets.train.algorithm
    (the package's own D and G steps; toy data need no conditioning, instance noise or update skipping)."""

    real_label = 1.0
    g_max_col_norm = d_max_col_norm = None

    def __init__(self, cfg: ToyConfig, data: Any, g: Generator, d: torch.nn.Module, seed: int) -> None:
        self.cfg, self.data, self.g, self.d = cfg, data, g, d
        self.g_train, self.d_train = g, d
        self.g_params, self.d_params = list(g.parameters()), list(d.parameters())
        self.m = cfg.batch_size  # the minibatch size of the next step
        self.opt_g = _optimizer(cfg, g.parameters(), cfg.lr if cfg.g_lr is None else cfg.g_lr)
        self.opt_d = _optimizer(cfg, d.parameters(), cfg.lr)
        self.g_loss_fn = GENERATOR_LOSSES[cfg.g_loss]
        self.data_gen = torch.Generator().manual_seed(seed + _DATA)
        self.noise_gen = torch.Generator().manual_seed(seed + _NOISE)
        self.d_updates = self.g_updates = 0

    def scale_lr(self, factor: float) -> None:
        """Set both learning rates to ``factor`` times their configured values."""
        g_lr = self.cfg.lr if self.cfg.g_lr is None else self.cfg.g_lr
        for opt, lr in ((self.opt_g, g_lr), (self.opt_d, self.cfg.lr)):
            for group in opt.param_groups:
                group["lr"] = lr * factor

    # What algorithm.d_step / g_step draw: fresh toy data, fresh noise; D sees them as they are.
    def next_real_batch(self) -> torch.Tensor:
        return self.data.sample(self.m, generator=self.data_gen)

    def noise(self, n: int) -> torch.Tensor:
        return sample_noise(self.g.cfg, n, generator=self.noise_gen)

    def d_rows(self, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return fake

    def seen_by_d(self, rows: torch.Tensor) -> torch.Tensor:
        return rows

    def autocast(self) -> contextlib.nullcontext:
        return contextlib.nullcontext()

    def may_step(self, *values: torch.Tensor) -> bool:
        return True

    def d_step(self, m: int) -> dict[str, torch.Tensor]:
        """Ascend V's gradient for D on m fresh examples and m fresh samples of G."""
        self.m = m
        out = algorithm.d_step(self)
        return {
            "d_loss": out["d_loss"].detach(),
            "real": out["real_logits"].detach(),
            "fake": out["fake_logits"].detach(),
        }

    def g_step(self, m: int) -> torch.Tensor:
        """Descend G's loss on m fresh noise vectors, D held fixed."""
        self.m = m
        return algorithm.g_step(self)["g_loss"].detach()


class _Standardized(torch.nn.Module):
    """D(x) = D'((x - mean) / std) with the data's mean and std: the maxout units' kinks
    start where the data are, wherever the toy sits (the 1-D Gaussian is centred at 4)."""

    def __init__(self, d: Discriminator, data: Any) -> None:
        super().__init__()
        self.d, self.data_dim = d, d.data_dim
        if data.dim == 1:
            mean, std = [data.mean], [data.std]
        else:
            mean, std = data.modes.mean(axis=0), data.modes.std(axis=0) + data.std
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.asarray(std), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d((x.reshape(len(x), -1) - self.mean) / self.std)


@torch.no_grad()
def _spread_biases(net: torch.nn.Module, init_range: float) -> None:
    """Biases U(-r, r) instead of the reference's zeros: with zero biases every
    ReLU/maxout kink of a net on 1-D (or 2-D) input sits at the origin, and the net
    is linear on each side of it until the biases have been learnt."""
    for m in net.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.uniform_(m.bias, -init_range, init_range)


def _optimizer(cfg: ToyConfig, params: Any, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999), fused=True)
    return torch.optim.SGD(params, lr=lr, momentum=0.5)


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _build_nets(cfg: ToyConfig, data: Any) -> tuple[Generator, _Standardized]:
    """G and the standardised D, initialised from ``cfg.seed`` (the caller's RNG untouched), in train mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        g = Generator(cfg.generator_config(), data.dim)
        d = Discriminator(cfg.discriminator_config(), data.dim)
        _spread_biases(g, cfg.g_init_range)
        _spread_biases(d, cfg.d_init_range)
    d = _Standardized(d, data)
    g.train()
    d.train()
    return g, d


def _measure_final(result: ToyResult, eval_z: torch.Tensor) -> None:
    """Fill ``result``'s end-of-training measures: for 1-D, panel (d), the final JSD and how far D is
    from 1/2 where p_data lives (Figure 1 (d), §4.1: D = 1/2 at the optimum); for 2-D, the samples and coverage."""
    cfg, data, g, d = result.config, result.data, result.generator, result.discriminator
    if cfg.dim == 1:
        final = _snapshot("d", cfg.steps, data, g, d, eval_z)
        result.snapshots["d"] = final
        result.jsd_final = _jsd(data, _samples(g, eval_z))
        dev = np.abs(final.d - 0.5)
        result.max_abs_d_minus_half = float(dev[final.p_data > SUPPORT_FRACTION * final.p_data.max()].max())
        result.max_abs_d_minus_half_core = float(dev[final.p_data > CORE_FRACTION * final.p_data.max()].max())
        result.mean_abs_d_minus_half = float(np.sum(final.p_data * dev) / np.sum(final.p_data))
    else:
        result.samples = _samples(g, eval_z)
        result.coverage = mode_coverage(result.samples, data.modes, data.std)


def start_game(cfg: ToyConfig, data: Mixture1D | GaussianMixture2D | None = None) -> _Game:
    """The players of a fresh run of ``cfg`` as :func:`train_toy` starts them: G and D initialised from
    ``cfg.seed``, their optimisers and the data and noise streams. ``data`` replaces ``cfg.dataset``'s toy with
    another of the same dimension (``advnets explore``'s user-drawn points). Step it with :func:`iterate`."""
    data = make_toy(cfg.dataset) if data is None else data
    g, d = _build_nets(cfg, data)
    return _Game(cfg, data, g, d, cfg.seed)


def iterate(game: _Game, cfg: ToyConfig, step: int) -> dict[str, torch.Tensor]:
    """Iteration ``step`` (1-based) of Algorithm 1 on ``game``, exactly as :func:`train_toy` takes it: k D steps,
    then ``g_steps_per_d_step`` G steps. Returns d_loss, g_loss, d_real, d_fake (tensors)."""
    return _iteration(game, cfg, step)


def _iteration(game: _Game, cfg: ToyConfig, step: int) -> dict[str, torch.Tensor]:
    """One iteration of Algorithm 1 (k steps of D, then G's); the values to log, as tensors."""
    if cfg.lr_schedule == "linear":
        game.scale_lr(1.0 - (step - 1) / cfg.steps)
    for _ in range(cfg.k):
        out = game.d_step(cfg.batch_size)
    for _ in range(cfg.g_steps_per_d_step):
        g_loss = game.g_step(cfg.batch_size)
    return {
        "d_loss": out["d_loss"],
        "g_loss": g_loss,
        "d_real": torch.sigmoid(out["real"]).mean(),
        "d_fake": torch.sigmoid(out["fake"]).mean(),
    }


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
        result.jsd_init = _jsd(data, _samples(g, eval_z))
    if frame_every:
        result.frames.append(_frame(0, data, g, d, eval_z))

    running: dict[str, float] = {}
    n_running = 0
    bar = tqdm(total=cfg.steps, disable=not progress, unit="step", dynamic_ncols=True, desc=cfg.dataset)
    try:
        for step in range(1, cfg.steps + 1):
            row = _iteration(game, cfg, step)
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
                result.snapshots.update(_figure_branch(cfg, data, g, d, eval_z, step))
            if frame_every and (step % frame_every == 0 or step == cfg.steps):
                result.frames.append(_frame(step, data, g, d, eval_z))
    finally:
        bar.close()

    _measure_final(result, eval_z)
    result.seconds = time.perf_counter() - start
    return result


def _figure_branch(
    cfg: ToyConfig, data: Mixture1D, g: Generator, d: Discriminator, eval_z: torch.Tensor, step: int
) -> dict[str, Snapshot]:
    """Figure 1's (a), (b), (c): the current pair; D trained alone against the frozen
    G; G after a few steps against that D. (b) and (c) train copies, on their own
    random streams, so the main run is not disturbed."""
    snaps = {"a": _snapshot("a", step, data, g, d, eval_z)}
    branch = _Game(cfg, data, copy.deepcopy(g), copy.deepcopy(d), cfg.seed + _FIGURE)
    for _ in range(cfg.figure_d_steps):
        branch.d_step(cfg.figure_d_batch)
    snaps["b"] = _snapshot("b", step, data, branch.g, branch.d, eval_z)
    for _ in range(cfg.figure_g_steps):
        branch.g_step(cfg.batch_size)
    snaps["c"] = _snapshot("c", step, data, branch.g, branch.d, eval_z)
    return snaps


# -------------------------------------------------------------------------- evaluation


@torch.no_grad()
def _samples(g: Generator, z: torch.Tensor) -> np.ndarray:
    return g(z).double().numpy()


@torch.no_grad()
def _d_prob(d: Discriminator, x: np.ndarray) -> np.ndarray:
    logits = d(torch.as_tensor(x, dtype=torch.float32).reshape(-1, d.data_dim))
    return torch.sigmoid(logits.double()).numpy()


def _jsd(data: Mixture1D, samples: np.ndarray) -> float:
    """JSD(p_data || p_g) on a grid over the data (mass of G outside it counts as outside)."""
    lo, hi = data.bounds(5.0)
    grid = np.linspace(lo, hi, N_GRID)
    s = samples[:, 0]
    method = "kde" if np.ptp(s) > 1e-3 * data.std else "histogram"
    return jsd_from_samples(s, data.pdf, grid, method=method)


def _density(samples: np.ndarray, x: np.ndarray) -> np.ndarray:
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


def _snapshot(label: str, step: int, data: Mixture1D, g: Generator, d: Discriminator, eval_z: torch.Tensor) -> Snapshot:
    s = _samples(g, eval_z)[:, 0]
    lo, hi = data.bounds(4.0)
    q_lo, q_hi = np.quantile(s, [0.001, 0.999])
    margin = 0.05 * (max(hi, q_hi) - min(lo, q_lo))
    x = np.linspace(min(lo, q_lo - margin), max(hi, q_hi + margin), N_GRID)
    z = gz = None
    if g.cfg.noise_dim == 1:
        a = math.sqrt(3.0)
        z = np.linspace(-a, a, N_Z_LINES)
        gz = _samples(g, torch.as_tensor(z, dtype=torch.float32)[:, None])[:, 0]
    return Snapshot(label=label, step=step, x=x, p_data=data.pdf(x), p_g=_density(s, x), d=_d_prob(d, x), z=z, gz=gz)


def _frame(step: int, data: Any, g: Generator, d: Discriminator, eval_z: torch.Tensor) -> Frame:
    if data.dim == 1:
        return Frame(step=step, snapshot=_snapshot("", step, data, g, d, eval_z))
    return Frame(step=step, points=_samples(g, eval_z[:1000]))
