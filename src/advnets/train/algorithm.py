"""Algorithm 1 of Goodfellow et al. 2014 (paper §3), one update at a time, and the reference code's variant.

    for number of training iterations do
        for k steps do
            sample minibatch of m noise samples {z(1), ..., z(m)} from noise prior p_g(z)
            sample minibatch of m examples {x(1), ..., x(m)} from data generating distribution p_data(x)
            update the discriminator by ascending its stochastic gradient
                grad_theta_d 1/m sum_i [log D(x(i)) + log(1 - D(G(z(i))))]             -> d_step
        end for
        sample minibatch of m noise samples {z(1), ..., z(m)} from noise prior p_g(z)
        update the generator by descending its stochastic gradient
            grad_theta_g 1/m sum_i log(1 - D(G(z(i))))  (or ascending log D(G(z)), Sec. 3) -> g_step
    end for

"The gradient-based updates can use any standard gradient-based learning rule. We used momentum in our
experiments" (Algorithm 1's caption); the hyperparameters are the reference code's
(github.com/goodfeli/adversarial): SGD, lr 0.1 divided by 1.000004 per minibatch down to 1e-6, momentum 0.5
rising to 0.7 by epoch 250 (:func:`lr_at`, :func:`momentum_at`). The reference code itself updates both players
from one batch of G's samples: :func:`simultaneous_step` (the mnist preset's default).

Each step takes the run's players, anything that provides :class:`Players` (an advnets.train.Trainer, or
advnets.toy's game), and :func:`iteration` runs the k-loop above over an :class:`Iteration` (a Trainer), so that
the lines below stay those of the algorithm whatever kind of model or parallelism is in use.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import torch

from advnets.config import OptimConfig, RunConfig
from advnets.errors import AdvnetsError
from advnets.losses import discriminator_loss, value_function
from advnets.nets import apply_max_col_norm


class TrainingDiverged(AdvnetsError):
    """A loss or a weight became NaN or infinite."""


@runtime_checkable
class Players(Protocol):
    """What Algorithm 1's updates (:func:`d_step`, :func:`g_step`, :func:`simultaneous_step`) take from a run."""

    g: torch.nn.Module  # G: noise rows -> data rows
    d: torch.nn.Module  # D: rows -> logits (N,)
    # The modules whose backward pass an update reduces across processes: g and d themselves in one process,
    # their DistributedDataParallel wrappers in a data-parallel run (advnets.distributed).
    g_train: torch.nn.Module
    d_train: torch.nn.Module
    g_params: list[torch.Tensor]
    d_params: list[torch.Tensor]
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g_loss_fn: Callable[[torch.Tensor], torch.Tensor]  # G's loss of D's logits on its samples (advnets.losses)
    real_label: float  # D's target for real rows (1; one-sided label smoothing < 1)
    m: int  # the minibatch size (per process)
    g_max_col_norm: float | None  # the reference's max-col-norm constraints (None: none)
    d_max_col_norm: float | None
    d_updates: int  # the updates applied so far (skipped ones not counted)
    g_updates: int

    def next_real_batch(self) -> torch.Tensor:
        """D's rows for the next m real examples, (m, D's input width)."""

    def noise(self, n: int) -> torch.Tensor:
        """G's input for n samples, (n, G's input width): z, with what a conditional G is given appended."""

    def d_rows(self, fake: torch.Tensor, g_input: torch.Tensor) -> torch.Tensor:
        """D's rows for G's output ``fake`` made from ``g_input`` (a conditional D's columns appended)."""

    def seen_by_d(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` as D sees them (with instance noise, if any)."""

    def autocast(self) -> AbstractContextManager[Any]:
        """The forward passes' precision (bfloat16 autocast or nothing)."""

    def may_step(self, *values: torch.Tensor) -> bool:
        """Whether to apply an update whose losses and gradient norms are ``values``."""


class Updates(Protocol):
    """The update functions: this module's (eager) or advnets.train.compiled.CompiledSteps (one compiled function
    per update, same random draws, same results to float tolerance).

    Each returns on-device values: d_step d_loss, d_grad_norm, real_logits and fake_logits; g_step g_loss and
    g_grad_norm; simultaneous_step all six. An implementation may add d_real, d_fake and value, computed as
    :func:`logged` would compute them from the logits (the compiled step does, inside its graph)."""

    def d_step(self, players: Players) -> dict[str, torch.Tensor]: ...

    def g_step(self, players: Players) -> dict[str, torch.Tensor]: ...

    def simultaneous_step(self, players: Players) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class Iteration(Players, Protocol):
    """A run that :func:`iteration` steps: players, the update functions and where the run stands."""

    cfg: RunConfig  # train.update, optim (the schedules)
    updates: Updates
    k: int  # D updates per iteration (1 for the simultaneous update)
    step: int  # completed iterations
    d_steps_done: int  # D updates done in the current iteration (a stop can fall inside the k-loop)

    @property
    def epoch(self) -> int:
        """Completed passes over the training split (the momentum schedule's clock)."""


def momentum_at(cfg: OptimConfig, epoch: int) -> float:
    """Momentum after ``epoch`` completed epochs: linear from momentum_start
    to momentum_end over momentum_saturate_epoch epochs, then constant."""
    frac = min(epoch / cfg.momentum_saturate_epoch, 1.0)
    return cfg.momentum_start + (cfg.momentum_end - cfg.momentum_start) * frac


def lr_at(cfg: OptimConfig, step: int) -> float:
    """Learning rate for iteration ``step`` (0-based): divided by lr_decay
    after every minibatch, floored at min_lr (the reference's ExponentialDecay)."""
    return max(cfg.lr / cfg.lr_decay**step, cfg.min_lr)


def make_optimizer(cfg: OptimConfig, params, device: torch.device) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.adam_betas)
    # torch's SGD applies lr to the velocity (p -= lr * v, v = mu v + g); the
    # reference's pylearn2 keeps lr inside it (v = mu v - lr g). The two agree
    # exactly while lr is constant and differ negligibly under the 1/1.000004 decay.
    # The fused kernel does the same update in one pass per tensor (benchmarks/NOTES.md).
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum_start, fused=device.type in ("cpu", "cuda"))


# The hyperparameters that make_optimizer takes from the config besides the schedules (lr and SGD's momentum, which
# set_schedules sets before every iteration). The others (the fused kernel, eps, ...) stay as saved: a checkpoint
# from before the fused SGD resumes bit-identically (tests/test_compat_checkpoint.py).
_FROM_CONFIG = ("betas",)
_CARRIED = {"sgd": "momentum buffers", "adam": "moment estimates and step counts"}


def load_optimizer_state(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Continue ``opt`` from ``saved``, a checkpoint's state dict of the same kind of optimiser: the per-parameter
    state (SGD's momentum buffers, Adam's moments), the scheduled values (lr, momentum: a resumed half iteration
    keeps those it started with) and torch's own settings come from ``saved``; the hyperparameters the config
    sets (Adam's betas) stay as ``opt`` was built from the current config, where torch's ``load_state_dict``
    alone would put back the checkpoint's (a resume with new betas would silently keep the old ones)."""
    built = [{k: group[k] for k in _FROM_CONFIG if k in group} for group in opt.param_groups]
    opt.load_state_dict(saved)
    for group, values in zip(opt.param_groups, built, strict=True):
        group.update(values)


def fresh_optimizer_note(old: str, new: str) -> str:
    """The line said when a resume or branch changes the optimiser from ``old`` to ``new``: the new one starts
    with empty state (the old one's state has another shape: Adam's moments are not SGD's velocity)."""
    return (
        f"optim.optimizer {old!r} -> {new!r}: {new} starts fresh; the checkpoint's {old} state "
        f"({_CARRIED.get(old, 'its state')}) is not carried over"
    )


def grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """The gradients' total L2 norm, on the device: NaN or inf when any gradient is."""
    return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])


def set_schedules(players: Iteration) -> None:
    """The learning rate of this iteration and the momentum of this epoch, into both optimisers."""
    o = players.cfg.optim
    lr = lr_at(o, players.step)
    for opt, scale in ((players.opt_g, 1.0), (players.opt_d, o.d_lr_scale)):
        for group in opt.param_groups:
            group["lr"] = lr * scale
            if o.optimizer == "sgd":
                group["momentum"] = momentum_at(o, players.epoch)


def d_step(players: Players) -> dict[str, torch.Tensor]:
    """Algorithm 1, inner loop: ascend V's gradient for D on a fresh minibatch of m examples and m noise samples."""
    p = players
    m = p.m
    x = p.next_real_batch()
    with torch.no_grad(), p.autocast():
        z = p.noise(m)
        fake = p.d_rows(p.g(z), z)
    # One D forward over real and generated rows: dropout masks are drawn
    # per row, so this equals two separate calls.
    with p.autocast():
        logits = p.d_train(p.seen_by_d(torch.cat([x, fake]))).float()
    real_logits, fake_logits = logits[:m], logits[m:]
    loss_d = discriminator_loss(real_logits, fake_logits, p.real_label)
    p.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    d_grad = grad_norm(p.d_params)
    if p.may_step(loss_d, d_grad):
        p.opt_d.step()
        apply_max_col_norm(p.d, p.d_max_col_norm)
        p.d_updates += 1
    return {"d_loss": loss_d, "d_grad_norm": d_grad, "real_logits": real_logits, "fake_logits": fake_logits}


def g_step(players: Players) -> dict[str, torch.Tensor]:
    """Algorithm 1, outer loop: descend G's loss on m fresh noise samples, D held fixed."""
    p = players
    for w in p.d_params:  # no weight gradients for D during G's step
        w.requires_grad_(False)
    try:
        # D is called unwrapped: under data parallelism nothing of D is reduced here.
        with p.autocast():
            z = p.noise(p.m)
            logits = p.d(p.seen_by_d(p.d_rows(p.g_train(z), z))).float()
        loss_g = p.g_loss_fn(logits)
        p.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
    finally:
        for w in p.d_params:
            w.requires_grad_(True)
    g_grad = grad_norm(p.g_params)
    if p.may_step(loss_g, g_grad):
        p.opt_g.step()
        apply_max_col_norm(p.g, p.g_max_col_norm)
        p.g_updates += 1
    return {"g_loss": loss_g, "g_grad_norm": g_grad}


def simultaneous_step(players: Players) -> dict[str, torch.Tensor]:
    """The reference code's update: one batch of G samples, D's gradient of
    its loss and G's gradient of its loss from the same forward pass (and the
    same dropout masks), then both players step."""
    p = players
    m = p.m
    x = p.next_real_batch()
    with p.autocast():
        z = p.noise(m)
        fake = p.d_rows(p.g_train(z), z)
        # D(x, fake): the values and dropout masks of D(cat([x, fake])), but
        # no input gradient of D's first layer for the real rows (nets.py).
        logits = p.d_train(p.seen_by_d(x), p.seen_by_d(fake)).float()
    real_logits, fake_logits = logits[:m], logits[m:]
    loss_d = discriminator_loss(real_logits, fake_logits, p.real_label)
    loss_g = p.g_loss_fn(fake_logits)
    p.opt_d.zero_grad(set_to_none=True)
    p.opt_g.zero_grad(set_to_none=True)
    loss_d.backward(inputs=p.d_params, retain_graph=True)
    loss_g.backward(inputs=p.g_params)
    d_grad, g_grad = grad_norm(p.d_params), grad_norm(p.g_params)
    if p.may_step(loss_d, loss_g, d_grad, g_grad):
        p.opt_d.step()
        p.opt_g.step()
        apply_max_col_norm(p.d, p.d_max_col_norm)
        apply_max_col_norm(p.g, p.g_max_col_norm)
        p.d_updates += 1
        p.g_updates += 1
    return {
        "d_loss": loss_d,
        "g_loss": loss_g,
        "d_grad_norm": d_grad,
        "g_grad_norm": g_grad,
        "real_logits": real_logits,
        "fake_logits": fake_logits,
    }


def iteration(run: Iteration, stop: Callable[[], bool] | None = None) -> dict[str, torch.Tensor] | None:
    """One iteration of Algorithm 1's outer loop: k D updates, then G's (train.update = "alternating"), or the
    reference code's one simultaneous update; returns what it logs (:func:`logged`, on-device scalars).

    ``stop`` is asked after each of the k D updates: when it turns true inside the k-loop the iteration is left
    half done (None is returned, ``run.d_steps_done`` says how far it got) and the next call, also after a
    checkpoint and resume, continues it where it stopped."""
    if run.d_steps_done == 0:  # a resumed half iteration keeps the schedules it started with
        set_schedules(run)
    if run.cfg.train.update == "simultaneous":
        out = run.updates.simultaneous_step(run)
    else:
        while run.d_steps_done < run.k:
            out = run.updates.d_step(run)
            run.d_steps_done += 1
            if run.d_steps_done < run.k and stop is not None and stop():
                return None
        out.update(run.updates.g_step(run))
    run.d_steps_done = 0
    run.step += 1
    return logged(out)


def logged(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What an iteration reports (on-device scalars): both losses and gradient norms, D's mean output on real
    and generated rows, and the value V(D, G) of Eq. 1 on this minibatch. The last three come from the logits,
    unless the step computed them already (the compiled step does, inside its graph)."""
    real, fake = out["real_logits"], out["fake_logits"]
    return {
        "d_loss": out["d_loss"],
        "g_loss": out["g_loss"],
        "d_grad_norm": out["d_grad_norm"],
        "g_grad_norm": out["g_grad_norm"],
        "d_real": out["d_real"] if "d_real" in out else torch.sigmoid(real).mean(),
        "d_fake": out["d_fake"] if "d_fake" in out else torch.sigmoid(fake).mean(),
        "value": out["value"] if "value" in out else value_function(real, fake),
    }


class SkipNonfinite:
    """train.skip_nonfinite = K > 0: an update whose loss or gradient norm is NaN or infinite is skipped (the
    weights stay as they were) and training stops after K consecutive skips. K = 0 (default) never syncs here:
    the fit loop's divergence guard stops at the first one instead."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bad_streak = 0
        self.skipped = 0  # updates skipped so far (checkpointed as skipped_updates)

    def __call__(self, finite: bool, step: int) -> bool:
        """Whether to apply an update whose values were all finite (``finite``), in iteration ``step`` (1-based)."""
        if finite:
            self.bad_streak = 0
            return True
        self.bad_streak += 1
        self.skipped += 1
        if self.bad_streak >= self.limit:
            raise TrainingDiverged(
                f"training diverged: {self.limit} consecutive updates had a NaN or infinite loss or gradient, the "
                f"last at step {step}; the last checkpoint (if any) holds the weights from before"
            )
        return False
