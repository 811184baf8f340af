"""A toy run's settings: :class:`ToyConfig`, the per-dataset defaults and the measurement constants.

Re-exported by :mod:`advnets.toy`, where the toys are described.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from advnets.config import DiscriminatorConfig, GeneratorConfig
from advnets.data.toy import TOY_1D, TOY_2D
from advnets.errors import ConfigError, DataError
from advnets.losses import GENERATOR_LOSSES

__all__ = ["EVAL_SEED_OFFSET", "TOY_DATASETS", "TOY_DEFAULTS", "ToyConfig", "toy_config"]

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
DATA_SEED_OFFSET, NOISE_SEED_OFFSET, EVAL_SEED_OFFSET, FIGURE_SEED_OFFSET = 1, 2, 3, 1_000_000


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
