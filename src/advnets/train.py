"""Algorithm 1: minibatch stochastic gradient training of adversarial nets.

One *step* is one iteration of Algorithm 1's outer loop: k discriminator
updates, each on a fresh minibatch of m examples and m noise vectors, then one
generator update on m fresh noise vectors ("alternating"). The reference code
instead updates D and G in one step from the same batch of G samples
("simultaneous", k = 1); both are available by name.

Data live on the device as one tensor and minibatches are index slices of a
per-epoch permutation (no DataLoader). All randomness flows from the run's
seed through explicit generators: data order, noise, and D's dropout masks.
Their states are checkpointed, so a resumed run continues the same streams.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from advnets.checkpoint import point_latest_at_or_before, save_checkpoint
from advnets.conditional import check_labels, grid_labels, with_condition
from advnets.config import OptimConfig, RunConfig, from_dict, to_dict
from advnets.data import Dataset, to_display
from advnets.errors import AdvnetsError, CheckpointError
from advnets.figures import image_grid, save_grid
from advnets.inpaint import MASKS, complete, make_masks
from advnets.inpaint import g_input as inpaint_input
from advnets.losses import GENERATOR_LOSSES, discriminator_loss, value_function
from advnets.monitor import MONITOR_BATCH, CollapseMonitor
from advnets.nets import apply_max_col_norm, build_nets, sample_noise

GRID_SIZE = 100  # fixed-noise samples drawn into every progress grid (10 x 10)
# What the divergence guard watches: (network, what, key of train_step's output).
_WATCHED = (
    ("D", "loss", "d_loss"),
    ("G", "loss", "g_loss"),
    ("D", "gradient", "d_grad_norm"),
    ("G", "gradient", "g_grad_norm"),
)


class TrainingDiverged(AdvnetsError):
    """A loss or a weight became NaN or infinite."""


class TrainingCollapsed(AdvnetsError):
    """The collapse monitor saw a sustained collapse and train.on_collapse is "stop"."""

    exit_code = 3


class TrainingInterrupted(AdvnetsError):
    """SIGINT or SIGTERM stopped training after a checkpoint was written."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _StopOnSignal:
    """While active, SIGINT/SIGTERM only ask the loop to stop after the current
    step (it then checkpoints and exits); a second SIGINT aborts at once. Only
    the main thread can own signal handlers, elsewhere this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: abort now; checkpoints on disk stay whole
        self.signum = signum

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def poll(self) -> bool:
        """Whether a stop was asked for. The loop asks once per step (and after
        each of the k D updates); advnets.distributed makes every rank agree here."""
        return self.signum is not None


def momentum_at(cfg: OptimConfig, epoch: int) -> float:
    """Momentum after ``epoch`` completed epochs: linear from momentum_start
    to momentum_end over momentum_saturate_epoch epochs, then constant."""
    frac = min(epoch / cfg.momentum_saturate_epoch, 1.0)
    return cfg.momentum_start + (cfg.momentum_end - cfg.momentum_start) * frac


def lr_at(cfg: OptimConfig, step: int) -> float:
    """Learning rate for iteration ``step`` (0-based): divided by lr_decay
    after every minibatch, floored at min_lr (the reference's ExponentialDecay)."""
    return max(cfg.lr / cfg.lr_decay**step, cfg.min_lr)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AdvnetsError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise AdvnetsError("--device mps: MPS is not available here; use --device cpu or auto")
    if name not in ("cpu", "cuda", "mps"):
        raise AdvnetsError(f"--device {name}: expected auto, cpu, cuda or mps")
    return torch.device(name)


def _grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """The gradients' total L2 norm, on the device: NaN or inf when any gradient is."""
    return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])


def _make_optimizer(cfg: OptimConfig, params, device: torch.device) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.adam_betas)
    # torch's SGD applies lr to the velocity (p -= lr * v, v = mu v + g); the
    # reference's pylearn2 keeps lr inside it (v = mu v - lr g). The two agree
    # exactly while lr is constant and differ negligibly under the 1/1.000004 decay.
    # The fused kernel does the same update in one pass per tensor (benchmarks/NOTES.md).
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum_start, fused=device.type in ("cpu", "cuda"))


@dataclass
class _Running:
    """On-device sums between two log rows (no host sync per step)."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: int = 0

    def add(self, **values: torch.Tensor) -> None:
        for k, v in values.items():
            v = v.detach()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.steps += 1

    def means(self) -> dict[str, float]:
        if not self.sums:
            return {}
        keys = list(self.sums)
        vals = torch.stack([self.sums[k].float() for k in keys]).cpu().tolist()
        return {k: v / self.steps for k, v in zip(keys, vals, strict=True)}


class Trainer:
    """Holds G, D, their optimisers and the data/noise streams of one run."""

    # This process's place in a data-parallel run (advnets.distributed sets them):
    # a step then takes world_size * m examples, and only rank 0 writes files.
    rank = 0
    world_size = 1

    def __init__(self, cfg: RunConfig, dataset: Dataset, device: str | torch.device | None = None) -> None:
        self.cfg = cfg
        self.dataset = dataset
        self.device = torch.device(device) if device is not None else resolve_device(cfg.train.device)
        t = cfg.train
        if len(dataset.train) < t.batch_size:
            raise AdvnetsError(
                f"--batch-size {t.batch_size} is larger than the training split ({len(dataset.train)} images)"
            )
        # Initial weights come from the seed without disturbing the caller's
        # global RNG; after that every random draw has its own generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(t.seed)
            self.g, self.d = build_nets(cfg.generator, cfg.discriminator, dataset.image_shape)
        self.data = dataset.train.reshape(len(dataset.train), -1).to(self.device)
        if cfg.generator.output_bias_from_data and cfg.generator.output_activation == "sigmoid":
            self.g.init_output_bias_from_data(dataset.train)
        self.g.to(self.device).train()
        self.d.to(self.device).train()
        self.opt_g = _make_optimizer(cfg.optim, self.g.parameters(), self.device)
        self.opt_d = _make_optimizer(cfg.optim, self.d.parameters(), self.device)
        self.g_loss_fn = GENERATOR_LOSSES[t.g_loss]
        self.d_params = list(self.d.parameters())
        self.g_params = list(self.g.parameters())

        self.data_gen = torch.Generator(device="cpu").manual_seed(t.seed + 1)
        self.noise_gen = torch.Generator(device=self.device).manual_seed(t.seed + 2)
        self.d.dropout_generator = torch.Generator(device=self.device).manual_seed(t.seed + 4)
        fixed_gen = torch.Generator(device="cpu").manual_seed(t.seed + 3)
        self.fixed_noise = sample_noise(cfg.generator, GRID_SIZE, generator=fixed_gen).to(self.device)
        # Conditional nets. "class" (§7.1): the real rows' labels, and a stream of
        # labels for generated rows. "inpaint" (§7.3): a stream of masks, and the
        # last real batch with its masks, which generated rows complete.
        self.condition, self.cond_dim = cfg.generator.condition, cfg.generator.cond_dim
        self.labels = None
        self.label_gen = torch.Generator(device=self.device).manual_seed(t.seed + 6)
        self.mask_gen = torch.Generator(device="cpu").manual_seed(t.seed + 7)
        self.instance_noise_gen = torch.Generator(device=self.device).manual_seed(t.seed + 8)
        self.context: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.condition == "class":
            self.labels = check_labels(dataset.train_labels, self.cond_dim, dataset.name).to(self.device)
            grid = grid_labels(GRID_SIZE, self.cond_dim, columns=10).to(self.device)  # one class per grid row
            self.fixed_noise = with_condition(self.fixed_noise, grid, self.cond_dim)
        elif self.condition == "inpaint":
            pixels = self.data.shape[1]
            if self.cond_dim != 2 * pixels:
                raise AdvnetsError(
                    f"an inpainting model for {pixels}-pixel images needs generator.cond_dim {2 * pixels}, "
                    f"got {self.cond_dim}"
                )
            # The progress grid: row i completes training image i under mask kind i mod 5, with 10 noise vectors.
            masks = torch.cat([make_masks(1, dataset.image_shape, MASKS[i % 5], fixed_gen) for i in range(10)])
            images = self.data[:10].repeat_interleave(10, dim=0)
            self.fixed_noise = inpaint_input(
                self.fixed_noise, images, masks.repeat_interleave(10, dim=0).to(self.device)
            )

        self.batches_per_epoch = len(self.data) // t.batch_size  # the last partial batch is dropped
        self.total_steps = t.epochs * self.batches_per_epoch // t.k
        self.step = 0  # completed Algorithm-1 iterations
        self.epoch = 0  # completed passes over the training split
        self.batch_in_epoch = 0
        self.perm = self._new_perm()
        self.d_updates = 0  # counters that tests of Algorithm 1 read
        self.g_updates = 0
        self.skipped_updates = 0  # updates skipped for a non-finite loss (train.skip_nonfinite)
        self.bad_streak = 0
        # D updates already done in the current iteration: a stop can fall
        # inside Algorithm 1's k-step inner loop and resume exactly there.
        self.d_steps_done = 0
        # The modules the training steps call. Plain G and D here; a data-parallel
        # run (advnets.distributed) swaps in their DDP wrappers.
        self.g_train: torch.nn.Module = self.g
        self.d_train: torch.nn.Module = self.d
        self.monitor = self._make_monitor()

    # ----- data and noise streams ---------------------------------------------------------
    def _new_perm(self) -> torch.Tensor:
        return torch.randperm(len(self.data), generator=self.data_gen)

    def next_real_batch(self) -> torch.Tensor:
        """The next minibatch of m examples; a new epoch starts a new permutation."""
        m = self.cfg.train.batch_size
        idx = self.perm[self.batch_in_epoch * m : (self.batch_in_epoch + 1) * m].to(self.device)
        self.batch_in_epoch += 1
        if self.batch_in_epoch == self.batches_per_epoch:  # roll over at once, so schedules see it
            self.epoch += 1
            self.batch_in_epoch = 0
            self.perm = self._new_perm()
        x = self.data.index_select(0, idx)
        if self.condition == "class":  # D's real rows [x, c] carry their own labels
            x = with_condition(x, self.labels.index_select(0, idx), self.cond_dim)
        elif self.condition == "inpaint":  # real rows [x, M] with a fresh mask; G completes this batch next
            masks = make_masks(len(x), self.dataset.image_shape, "mixed", self.mask_gen).to(self.device)
            self.context = (x, masks)
            x = torch.cat([x, masks], dim=1)
        return x

    def noise(self, n: int) -> torch.Tensor:
        """G's input: n noise vectors, with uniformly drawn one-hot labels appended in conditional nets."""
        z = sample_noise(self.cfg.generator, n, generator=self.noise_gen)
        if self.condition == "class":
            labels = torch.randint(self.cond_dim, (n,), generator=self.label_gen, device=self.device)
            z = with_condition(z, labels, self.cond_dim)
        elif self.condition == "inpaint":
            if self.context is None:  # (the G step of a run resumed just before it draws its own)
                self.next_real_batch()
            x, masks = self.context
            z = inpaint_input(z, x[:n], masks[:n])
        return z

    def _d_rows(self, fake: torch.Tensor, g_input: torch.Tensor) -> torch.Tensor:
        """D's rows for generated samples: the samples, with G's condition appended in
        class-conditional nets; the completed images with their masks when inpainting."""
        if self.condition == "class":
            return torch.cat([fake, g_input[:, -self.cond_dim :]], dim=1)
        if self.condition == "inpaint":
            return torch.cat(complete(fake, g_input, self.data.shape[1]), dim=1)
        return fake

    def _seen_by_d(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows as D sees them: with train.instance_noise = s > 0, Gaussian noise of
        standard deviation s * (1 - step / total_steps) is added to the image columns
        (not to a label or mask appended after them); unchanged otherwise."""
        sigma = self.cfg.train.instance_noise * max(0.0, 1.0 - self.step / self.total_steps)
        if sigma == 0.0:
            return rows
        n = self.data.shape[1]
        noise = torch.randn(len(rows), n, generator=self.instance_noise_gen, device=rows.device, dtype=rows.dtype)
        return torch.cat([rows[:, :n] + sigma * noise, rows[:, n:]], dim=1)

    # ----- Algorithm 1 ---------------------------------------------------------------------
    def _set_schedules(self) -> None:
        o = self.cfg.optim
        lr = lr_at(o, self.step)
        for opt, scale in ((self.opt_g, 1.0), (self.opt_d, o.d_lr_scale)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
                if o.optimizer == "sgd":
                    group["momentum"] = momentum_at(o, self.epoch)

    def _d_step(self) -> dict[str, torch.Tensor]:
        """Algorithm 1, inner loop: ascend V's gradient for D on a fresh minibatch."""
        m = self.cfg.train.batch_size
        x = self.next_real_batch()
        with torch.no_grad(), self._autocast():
            z = self.noise(m)
            fake = self._d_rows(self.g(z), z)
        # One D forward over real and generated rows: dropout masks are drawn
        # per row, so this equals two separate calls.
        with self._autocast():
            logits = self.d_train(self._seen_by_d(torch.cat([x, fake]))).float()
        real_logits, fake_logits = logits[:m], logits[m:]
        loss_d = discriminator_loss(real_logits, fake_logits, self.cfg.train.real_label)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        d_grad = _grad_norm(self.d_params)
        if self._may_step(loss_d, d_grad):
            self.opt_d.step()
            apply_max_col_norm(self.d, self.cfg.discriminator.max_col_norm)
            self.d_updates += 1
        return {"d_loss": loss_d, "d_grad_norm": d_grad, "real_logits": real_logits, "fake_logits": fake_logits}

    def _g_step(self) -> dict[str, torch.Tensor]:
        """Algorithm 1, outer loop: descend G's loss on fresh noise, D held fixed."""
        for p in self.d_params:  # no weight gradients for D during G's step
            p.requires_grad_(False)
        try:
            # D is called unwrapped: under data parallelism nothing of D is reduced here.
            with self._autocast():
                z = self.noise(self.cfg.train.batch_size)
                logits = self.d(self._seen_by_d(self._d_rows(self.g_train(z), z))).float()
            loss_g = self.g_loss_fn(logits)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:
            for p in self.d_params:
                p.requires_grad_(True)
        g_grad = _grad_norm(self.g_params)
        if self._may_step(loss_g, g_grad):
            self.opt_g.step()
            apply_max_col_norm(self.g, self.cfg.generator.max_col_norm)
            self.g_updates += 1
        return {"g_loss": loss_g, "g_grad_norm": g_grad}

    def _simultaneous_step(self) -> dict[str, torch.Tensor]:
        """The reference code's update: one batch of G samples, D's gradient of
        its loss and G's gradient of its loss from the same forward pass (and the
        same dropout masks), then both players step."""
        m = self.cfg.train.batch_size
        x = self.next_real_batch()
        with self._autocast():
            z = self.noise(m)
            fake = self._d_rows(self.g_train(z), z)
            # D(x, fake): the values and dropout masks of D(cat([x, fake])), but
            # no input gradient of D's first layer for the real rows (nets.py).
            logits = self.d_train(self._seen_by_d(x), self._seen_by_d(fake)).float()
        real_logits, fake_logits = logits[:m], logits[m:]
        loss_d = discriminator_loss(real_logits, fake_logits, self.cfg.train.real_label)
        loss_g = self.g_loss_fn(fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        loss_d.backward(inputs=self.d_params, retain_graph=True)
        loss_g.backward(inputs=self.g_params)
        d_grad, g_grad = _grad_norm(self.d_params), _grad_norm(self.g_params)
        if self._may_step(loss_d, loss_g, d_grad, g_grad):
            self.opt_d.step()
            self.opt_g.step()
            apply_max_col_norm(self.d, self.cfg.discriminator.max_col_norm)
            apply_max_col_norm(self.g, self.cfg.generator.max_col_norm)
            self.d_updates += 1
            self.g_updates += 1
        return {
            "d_loss": loss_d,
            "g_loss": loss_g,
            "d_grad_norm": d_grad,
            "g_grad_norm": g_grad,
            "real_logits": real_logits,
            "fake_logits": fake_logits,
        }

    def _autocast(self):
        """Forward passes in bfloat16 with train.precision = "bf16" (weights,
        gradients, losses and optimiser state stay float32); a no-op otherwise."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.precision == "bf16")

    def _may_step(self, *losses: torch.Tensor) -> bool:
        """With train.skip_nonfinite = K > 0, an update whose loss or gradient
        norm is NaN or infinite is skipped (the weights stay as they were) and
        training stops after K consecutive skips. K = 0 (default) never syncs
        here: the fit loop's divergence guard stops at the first one instead."""
        limit = self.cfg.train.skip_nonfinite
        if limit == 0:
            return True
        if all(bool(torch.isfinite(loss)) for loss in losses):
            self.bad_streak = 0
            return True
        self.bad_streak += 1
        self.skipped_updates += 1
        if self.bad_streak >= limit:
            raise TrainingDiverged(
                f"training diverged: {limit} consecutive updates had a NaN or infinite loss or gradient, the last "
                f"at step {self.step + 1}; the last checkpoint (if any) holds the weights from before"
            )
        return False

    def train_step(self, stop: Callable[[], bool] | None = None) -> dict[str, torch.Tensor] | None:
        """One Algorithm-1 iteration; returns on-device scalars for logging.

        With ``stop``, asked after each of the k D updates: when it turns true
        inside the inner loop the iteration is left half done (None is
        returned, ``d_steps_done`` says how far it got) and the next call,
        also after a checkpoint and resume, continues it where it stopped."""
        k = self.cfg.train.k if self.cfg.train.update == "alternating" else 1
        if self.d_steps_done == 0:  # a resumed half iteration keeps the schedules it started with
            self._set_schedules()
        if self.cfg.train.update == "simultaneous":
            out = self._simultaneous_step()
        else:
            while self.d_steps_done < k:
                out = self._d_step()
                self.d_steps_done += 1
                if self.d_steps_done < k and stop is not None and stop():
                    return None
            out.update(self._g_step())
        self.d_steps_done = 0
        self.step += 1
        return {
            "d_loss": out["d_loss"],
            "g_loss": out["g_loss"],
            "d_grad_norm": out["d_grad_norm"],
            "g_grad_norm": out["g_grad_norm"],
            "d_real": torch.sigmoid(out["real_logits"]).mean(),
            "d_fake": torch.sigmoid(out["fake_logits"]).mean(),
            "value": value_function(out["real_logits"], out["fake_logits"]),
        }

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n samples of G as N x C x H x W images (G in eval mode for the call);
        conditional nets take ``labels`` (default: uniform from ``generator``)."""
        was_training = self.g.training
        self.g.eval()
        if self.condition == "inpaint":
            raise AdvnetsError("an inpainting model completes images: use advnets.inpaint.completions")
        z = sample_noise(self.cfg.generator, n, generator=generator, device=self.device)
        if self.condition == "class":
            if labels is None:
                labels = torch.randint(self.cond_dim, (n,), generator=generator, device=z.device)
            z = with_condition(z, labels.to(z.device), self.cond_dim)
        out = self.g(z).reshape(n, *self.dataset.image_shape)
        self.g.train(was_training)
        return out

    @torch.no_grad()
    def fixed_samples(self) -> torch.Tensor:
        out = self.g(self.fixed_noise)
        if self.condition == "inpaint":  # rows of one image's completions
            out, _ = complete(out, self.fixed_noise, self.data.shape[1])
        return out.reshape(GRID_SIZE, *self.dataset.image_shape)

    # ----- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        rng = {
            "data": self.data_gen.get_state(),
            "noise": self.noise_gen.get_state(),
            "dropout": self.d.dropout_generator.get_state(),
            "labels": self.label_gen.get_state(),
            "masks": self.mask_gen.get_state(),
            "instance_noise": self.instance_noise_gen.get_state(),
        }
        return {
            "generator": self.g.state_dict(),
            "discriminator": self.d.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "config": to_dict(self.cfg),
            "image_shape": list(self.dataset.image_shape),
            "dataset": self.dataset.name,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "perm": self.perm,
            "d_updates": self.d_updates,
            "g_updates": self.g_updates,
            "skipped_updates": self.skipped_updates,
            "d_steps_done": self.d_steps_done,
            "inpaint_context": self.context,
            "rng": rng,
            "monitor": self.monitor.state_dict() if self.monitor is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stored = from_dict(RunConfig, state["config"])
        for part in ("generator", "discriminator"):
            old, new = to_dict(getattr(stored, part)), to_dict(getattr(self.cfg, part))
            diff = [f"{part}.{k}: {old[k]!r} in the checkpoint, {new[k]!r} now" for k in old if old[k] != new[k]]
            if diff:
                raise CheckpointError("cannot resume with a different architecture: " + "; ".join(diff))
        stored_shape = tuple(int(n) for n in state["image_shape"])
        if stored_shape != self.dataset.image_shape:
            raise CheckpointError(
                f"cannot resume: the checkpoint was trained on {stored_shape} images, this dataset has "
                f"{self.dataset.image_shape}"
            )
        self.g.load_state_dict(state["generator"])
        self.d.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for key in ("step", "epoch", "batch_in_epoch", "d_updates", "g_updates"):
            setattr(self, key, int(state[key]))
        self.skipped_updates = int(state.get("skipped_updates", 0))
        self.d_steps_done = int(state.get("d_steps_done", 0))
        if self.monitor is not None and state.get("monitor") is not None:
            self.monitor.load_state_dict(state["monitor"])
        self.perm = state["perm"].to(torch.int64)
        self.data_gen.set_state(state["rng"]["data"])
        self.noise_gen.set_state(state["rng"]["noise"])
        self.d.dropout_generator.set_state(state["rng"]["dropout"])
        streams = (("labels", self.label_gen), ("masks", self.mask_gen), ("instance_noise", self.instance_noise_gen))
        for key, gen in streams:
            if key in state["rng"]:  # checkpoints from older versions lack some
                gen.set_state(state["rng"][key])
        if state.get("inpaint_context") is not None:
            self.context = tuple(t.to(self.device) for t in state["inpaint_context"])
        self.total_steps = self._total_steps_from_position()

    def _total_steps_from_position(self) -> int:
        """The step at which train.epochs epochs are done, counted from where the run stands: for
        a run resumed as it was saved this equals epochs * batches_per_epoch // k (each step takes
        k batches); after a resume with another number of processes (advnets.distributed), whose
        steps take another number of examples, the run still ends after train.epochs epochs."""
        t = self.cfg.train
        k = t.k if t.update == "alternating" else 1
        batches_left = (t.epochs - self.epoch) * self.batches_per_epoch - self.batch_in_epoch + self.d_steps_done
        return self.step + max(batches_left, 0) // k

    def save(self, run_dir: Path) -> Path:
        return save_checkpoint(run_dir, self.state_dict())

    # ----- the loop --------------------------------------------------------------------------
    def _check_finite(self, first_bad: torch.Tensor) -> None:
        """Raise TrainingDiverged if a loss or gradient was non-finite at some
        step or a weight is non-finite now; called before anything is logged
        or saved, so a checkpoint never holds diverged weights."""
        bad = [(step, i) for i, step in enumerate(first_bad.tolist()) if step >= 0]
        if bad:
            # The earliest (a NaN spreads to the other values a step later), losses before gradients.
            step, i = min(bad)
            net, what, _ = _WATCHED[i]
            raise TrainingDiverged(
                f"training diverged: {net}'s {what} became NaN or infinite at step {step}; the last checkpoint "
                "(if any) holds the weights from before. Try a lower --lr or another --seed."
            )
        for name, net in (("D", self.d), ("G", self.g)):
            if not all(torch.isfinite(p).all() for p in net.parameters()):
                raise TrainingDiverged(f"training diverged: {name}'s weights hold NaN or infinity at step {self.step}")

    def _make_monitor(self) -> CollapseMonitor | None:
        t = self.cfg.train
        if t.monitor_every == 0:
            return None
        # Its own generator: the checks never disturb the training streams.
        gen = torch.Generator(device="cpu").manual_seed(t.seed + 5)
        noise = sample_noise(self.cfg.generator, MONITOR_BATCH, generator=gen).to(self.device)
        if self.condition == "inpaint":
            return None  # completions share their visible pixels: the diversity statistics do not apply
        if self.condition == "class":
            labels = torch.randint(self.cond_dim, (MONITOR_BATCH,), generator=gen).to(self.device)
            noise = with_condition(noise, labels, self.cond_dim)
        real = self.data[torch.randperm(len(self.data), generator=gen)[:MONITOR_BATCH].to(self.device)]
        classifier = None
        if t.monitor_classes:
            from advnets.data.fetch import data_root
            from advnets.evaluate.classifier import load_or_train_classifier

            if self.dataset.train_labels is None:
                raise AdvnetsError(f"--monitor-classes needs labelled digit data; {self.dataset.name} has no labels")
            classifier = load_or_train_classifier(self.dataset, data_root() / "classifiers", device=self.device)
        return CollapseMonitor(real, noise, classifier, warmup_steps=self.total_steps // 4)

    def _monitor(self, out: dict[str, torch.Tensor], run_dir: Path | None, log) -> None:
        """One collapse check (advnets.monitor): log it, warn, and with
        on_collapse = "stop" end training at the last healthy checkpoint."""
        from tqdm.auto import tqdm

        assert self.monitor is not None
        d_real, d_fake = torch.stack([out["d_real"], out["d_fake"]]).float().cpu().tolist()
        stats, warning = self.monitor.check(self.step, self.g, self.dataset.image_shape, d_real, d_fake)
        if log is not None:
            log.log({"step": self.step, **{f"collapse/{k}": v for k, v in stats.items()}})
        if warning is None:
            return
        tqdm.write(f"advnets: warning: {warning}", file=sys.stderr)
        if log is not None:
            log.log({"step": self.step, "warning": warning})
        if self.cfg.train.on_collapse != "stop":
            return
        healthy = None
        if run_dir is not None and self.monitor.last_healthy_step is not None:
            healthy = point_latest_at_or_before(run_dir, self.monitor.last_healthy_step)
        where = (
            f"`latest` now names {healthy}, saved at or before the last healthy check (step "
            f"{self.monitor.last_healthy_step})"
            if healthy is not None
            else "no checkpoint predates the collapse, so none was kept as healthy"
        )
        raise TrainingCollapsed(f"training stopped (--on-collapse stop) at step {self.step}: {where}")

    # What fit() asks for its log, its running means and its stop flag; advnets.distributed
    # replaces them (rank 0 writes, means over all ranks, a stop agreed by all ranks).
    def _open_log(self, run_dir: Path | None, tensorboard: bool):
        from advnets.runs import MetricsLog

        return MetricsLog(run_dir, tensorboard=tensorboard) if run_dir is not None else None

    def _new_running(self) -> _Running:
        return _Running()

    def _stop_on_signal(self) -> _StopOnSignal:
        return _StopOnSignal()

    def fit(self, run_dir: Path | None = None, progress: bool = True, tensorboard: bool = True) -> dict[str, float]:
        """Train until ``total_steps``, logging, sampling and checkpointing into
        ``run_dir`` (if given). Returns the last logged row.

        SIGINT/SIGTERM finish the current D or G update, write a checkpoint and
        raise TrainingInterrupted; a non-finite loss or gradient raises
        TrainingDiverged naming the first bad step and network, before any bad
        weights are saved; a sustained collapse warns or, with on_collapse =
        "stop", raises TrainingCollapsed."""
        from tqdm.auto import tqdm

        t = self.cfg.train
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        log = self._open_log(run_dir, tensorboard)
        running = self._new_running()
        # First step at which each watched value was non-finite (-1: none), kept
        # on the device so that the check costs no host sync per step.
        first_bad = torch.full((len(_WATCHED),), -1, dtype=torch.long, device=self.device)
        last: dict[str, float] = {}
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not progress, unit="step", dynamic_ncols=True)
        tick, tick_step = time.perf_counter(), self.step
        path = None
        try:
            with self._stop_on_signal() as stop:
                while self.step < self.total_steps:
                    out = self.train_step(stop=stop.poll)
                    stop.poll()  # a stop asked for during the step counts from here (on every rank)
                    if out is not None:
                        watched = torch.stack([out[key].detach() for _, _, key in _WATCHED])
                        if t.skip_nonfinite == 0:
                            bad = ~torch.isfinite(watched)
                            first_bad = torch.where(bad & (first_bad < 0), self.step, first_bad)
                            running.add(**out)
                        elif bool(torch.isfinite(watched).all()):
                            running.add(**out)  # skipped steps stay out of the logged means
                        bar.update(1)
                    done = self.step >= self.total_steps
                    if out is not None and (self.step % t.log_every == 0 or done or stop.signum is not None):
                        self._check_finite(first_bad)
                        now = time.perf_counter()
                        means = running.means()
                        running = self._new_running()
                        seen = (self.step - tick_step) * t.batch_size * self.world_size
                        seen *= t.k if t.update == "alternating" else 1
                        last = {
                            "step": self.step,
                            "epoch": self.epoch + self.batch_in_epoch / self.batches_per_epoch,
                            **means,
                            "lr": self.opt_g.param_groups[0]["lr"],
                            "momentum": self.opt_g.param_groups[0].get("momentum", 0.0),
                            "samples_per_s": seen / max(now - tick, 1e-9),
                        }
                        if self.skipped_updates:
                            last["skipped_updates"] = self.skipped_updates
                        tick, tick_step = now, self.step
                        if means:  # empty only when every step since the last row was skipped
                            bar.set_postfix(D=f"{means['d_loss']:.3f}", G=f"{means['g_loss']:.3f}", refresh=False)
                            if log is not None:
                                log.log(last)
                    if out is not None and self.monitor is not None and (self.step % t.monitor_every == 0 or done):
                        self._check_finite(first_bad)
                        self._monitor(out, run_dir, log)
                    if run_dir is not None:
                        if out is not None and (self.step % t.sample_every == 0 or done):
                            self._write_grid(run_dir, log)
                        if (out is not None and (self.step % t.checkpoint_every == 0 or done)) or (
                            stop.signum is not None
                        ):
                            self._check_finite(first_bad)
                            path = self.save(run_dir)
                    if stop.signum is not None:
                        name = signal.Signals(stop.signum).name
                        where = f"checkpoint {path}" if run_dir is not None else "no run directory, nothing saved"
                        if self.d_steps_done:
                            where += f" (inside iteration {self.step + 1}, after {self.d_steps_done} of {t.k} D steps)"
                        resume = f"; continue with: advnets train --out {run_dir} --resume" if run_dir else ""
                        raise TrainingInterrupted(
                            f"stopped by {name} at step {self.step} of {self.total_steps}: {where}{resume}",
                            128 + stop.signum,
                        )
        finally:
            bar.close()
            if log is not None:
                log.close()
        return last

    def _write_grid(self, run_dir: Path, log) -> None:
        images = to_display(self.fixed_samples(), self.dataset.preprocess)
        save_grid(images, Path(run_dir) / "samples" / f"step-{self.step:08d}.png", nrow=10, scale=2)
        if log is not None:
            log.image("samples", image_grid(images, nrow=10), self.step)
