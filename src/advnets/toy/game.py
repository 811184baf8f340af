"""The toy game's players: G, the standardised D, their optimisers and random streams, and Algorithm 1's iteration.

:func:`start_game` builds the players of a fresh run exactly as :func:`advnets.toy.train_toy` does and
:func:`iterate` takes one iteration (k D steps, then G's) through :mod:`advnets.train.algorithm`'s own steps,
so ``advnets explore`` trains the same game live. Re-exported by :mod:`advnets.toy`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from advnets.data.toy import GaussianMixture2D, Mixture1D, make_toy
from advnets.losses import GENERATOR_LOSSES
from advnets.nets import Discriminator, Generator, sample_noise
from advnets.toy.config import DATA_SEED_OFFSET, NOISE_SEED_OFFSET, ToyConfig
from advnets.train import algorithm

__all__ = ["Game", "build_nets", "iterate", "make_optimizer", "start_game"]


class Game:
    """G, D, their optimisers and random streams: Algorithm 1's moving parts, stepped by advnets.train.algorithm
    (the package's own D and G steps; toy data need no conditioning, instance noise or update skipping)."""

    real_label = 1.0
    g_max_col_norm = d_max_col_norm = None

    def __init__(self, cfg: ToyConfig, data: Any, g: Generator, d: torch.nn.Module, seed: int) -> None:
        self.cfg, self.data, self.g, self.d = cfg, data, g, d
        self.g_train, self.d_train = g, d
        self.g_params, self.d_params = list(g.parameters()), list(d.parameters())
        self.m = cfg.batch_size  # the minibatch size of the next step
        self.opt_g = make_optimizer(cfg, g.parameters(), cfg.lr if cfg.g_lr is None else cfg.g_lr)
        self.opt_d = make_optimizer(cfg, d.parameters(), cfg.lr)
        self.g_loss_fn = GENERATOR_LOSSES[cfg.g_loss]
        self.data_gen = torch.Generator().manual_seed(seed + DATA_SEED_OFFSET)
        self.noise_gen = torch.Generator().manual_seed(seed + NOISE_SEED_OFFSET)
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


class Standardized(torch.nn.Module):
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
def spread_biases(net: torch.nn.Module, init_range: float) -> None:
    """Biases U(-r, r) instead of the reference's zeros: with zero biases every
    ReLU/maxout kink of a net on 1-D (or 2-D) input sits at the origin, and the net
    is linear on each side of it until the biases have been learnt."""
    for m in net.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.uniform_(m.bias, -init_range, init_range)


def make_optimizer(cfg: ToyConfig, params: Any, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999), fused=True)
    return torch.optim.SGD(params, lr=lr, momentum=0.5)


def build_nets(cfg: ToyConfig, data: Any) -> tuple[Generator, Standardized]:
    """G and the standardised D, initialised from ``cfg.seed`` (the caller's RNG untouched), in train mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        g = Generator(cfg.generator_config(), data.dim)
        d = Discriminator(cfg.discriminator_config(), data.dim)
        spread_biases(g, cfg.g_init_range)
        spread_biases(d, cfg.d_init_range)
    d = Standardized(d, data)
    g.train()
    d.train()
    return g, d


def start_game(cfg: ToyConfig, data: Mixture1D | GaussianMixture2D | None = None) -> Game:
    """The players of a fresh run of ``cfg`` as :func:`train_toy` starts them: G and D initialised from
    ``cfg.seed``, their optimisers and the data and noise streams. ``data`` replaces ``cfg.dataset``'s toy with
    another of the same dimension (``advnets explore``'s user-drawn points). Step it with :func:`iterate`."""
    data = make_toy(cfg.dataset) if data is None else data
    g, d = build_nets(cfg, data)
    return Game(cfg, data, g, d, cfg.seed)


def iterate(game: Game, cfg: ToyConfig, step: int) -> dict[str, torch.Tensor]:
    """Iteration ``step`` (1-based) of Algorithm 1 on ``game``, exactly as :func:`train_toy` takes it: k D steps,
    then ``g_steps_per_d_step`` G steps. Returns d_loss, g_loss, d_real, d_fake (tensors)."""
    return _iteration(game, cfg, step)


def _iteration(game: Game, cfg: ToyConfig, step: int) -> dict[str, torch.Tensor]:
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
