"""The Trainer: one run's G and D, their optimisers, random streams and conditioning, stepped by Algorithm 1.

It composes the parts and holds none of their logic: the updates are advnets.train.algorithm's, the streams and
the data order advnets.train.streams', what G is given and D sees advnets.conditioning's, the bookkeeping of
fit() advnets.train.loop's, and how processes coordinate the ``parallel`` object's (advnets.train.parallel for
one process, advnets.distributed.DataParallel for N), given to it: there is no Trainer subclass per kind of
parallelism.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from advnets.conditioning import conditioning_for
from advnets.config import RunConfig, config_changes, from_dict, override, to_dict
from advnets.data import Dataset
from advnets.devices import resolve_device
from advnets.errors import AdvnetsError, CheckpointError
from advnets.losses import GENERATOR_LOSSES
from advnets.monitor import MONITOR_BATCH, CollapseDetector, CollapseMonitor, collapse_advice
from advnets.nets import build_nets, sample_noise
from advnets.train import algorithm, compiled, loop
from advnets.train.parallel import MonitorOnRank0, SingleProcess
from advnets.train.streams import DataOrder, Streams, one_off
from advnets.train.validation import ValidationMonitor

GRID_SIZE = 100  # fixed-noise samples drawn into every progress grid (10 x 10)


class Trainer:
    """Holds G, D, their optimisers and the data/noise streams of one run.

    ``Trainer(cfg, dataset).fit(run_dir)`` trains by Algorithm 1 with ``cfg``'s hyperparameters and writes a run
    directory that every ``advnets`` command reads (config.json, metrics.jsonl, sample grids, checkpoints).
    ``device`` overrides ``cfg.train.device``; ``parallel`` is the coordination with other processes (default:
    none, advnets.train.parallel.SingleProcess); ``classifier`` is the digit classifier the collapse monitor
    counts classes with when ``train.monitor_classes`` is on (advnets.monitor.digit_classifier). A dataset from
    advnets.data.load_dataset replaces ``cfg.data`` with what it was loaded from, so that the run records the
    data it was trained on. Raises AdvnetsError when the data do not fit the config (too few images, missing
    labels, a wrong cond_dim)."""

    def __init__(
        self,
        cfg: RunConfig,
        dataset: Dataset,
        device: str | torch.device | None = None,
        *,
        parallel: Any = None,
        classifier: Any = None,
    ) -> None:
        if dataset.origin is not None and dataset.origin != cfg.data:
            cfg = override(cfg, data=dataset.origin)  # the run records the data it was given
        self.cfg, self.dataset = cfg, dataset
        self.parallel = parallel if parallel is not None else SingleProcess()
        self.device = torch.device(device) if device is not None else resolve_device(cfg.train.device)
        t = cfg.train
        self._check_batch(len(dataset.train), t.batch_size)
        self._build_players(cfg, dataset)
        # Every random draw from here on has its own stream (each rank's own in a data-parallel run).
        self.streams = Streams(t.seed, self.device, rank=self.parallel.rank)
        self.d.dropout_generator = self.streams.dropout
        self.order = DataOrder(len(self.data), t.batch_size, self.streams.data, self.parallel.rank, self.world_size)
        self.conditioning = conditioning_for(cfg, dataset, self.data, self.streams)
        self.conditioning.refill = self.next_real_batch  # (inpainting: G's batch after a resume)
        fixed = one_off(t.seed, "fixed")
        z = sample_noise(cfg.generator, GRID_SIZE, generator=fixed).to(self.device)
        self.fixed_noise = self.conditioning.grid_input(z, self.data, dataset.image_shape, fixed)

        self.k = t.k if t.update == "alternating" else 1  # D updates per iteration
        self.total_steps = t.epochs * self.order.batches_per_epoch // self.k
        self.step = 0  # completed Algorithm-1 iterations
        self.d_steps_done = 0  # D updates done in the current iteration (a stop can fall inside the k-loop)
        self.d_updates = self.g_updates = 0  # updates applied (skipped ones not counted)
        self.skip = algorithm.SkipNonfinite(t.skip_nonfinite)
        self._resumed: dict[str, Any] | None = None  # a resume that fit() is yet to record in config.json
        self._continues_run = False  # whether config.json's earlier resumes belong to this trainer's run
        # One line for the user when a resume or branch starts another optimiser fresh ("" otherwise).
        self.optimizer_note = ""
        # The update functions: advnets.train.algorithm's (eager), or the compiled whole updates of
        # advnets.train.compiled (train.compile; same random streams, same checkpoints).
        self.updates: algorithm.Updates = compiled.select(self, t.compile)
        self.monitor = self._build_monitor(classifier)
        # The sums of the logged values since the last log row (advnets.train.loop): checkpointed, so
        # that a run stopped between two rows logs, once resumed, the row an uninterrupted run logs.
        self.running = self.parallel.running(self.device)
        self.validation = None
        if t.eval_every:
            self.validation = ValidationMonitor(
                dataset.valid, t.eval_every, t.eval_sigma, t.seed, metrics=t.eval_metrics
            )

    def _check_batch(self, rows: int, m: int) -> None:
        if rows < self.world_size * m:
            what = (
                f"--batch-size {m} is larger than"
                if self.world_size == 1
                else f"{self.world_size} processes x --batch-size {m} is more than"
            )
            raise AdvnetsError(f"{what} the training split ({rows} images)")

    def _build_players(self, cfg: RunConfig, dataset: Dataset) -> None:
        """G and D from the seed, their optimisers and losses, and the data on the device: what
        advnets.train.algorithm.Players lists."""
        # Initial weights come from the seed without disturbing the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed)
            self.g, self.d = build_nets(cfg.generator, cfg.discriminator, dataset.image_shape)
        self.data = dataset.train.reshape(len(dataset.train), -1).to(self.device)
        if cfg.generator.output_bias_from_data and cfg.generator.output_activation == "sigmoid":
            self.g.init_output_bias_from_data(dataset.train)
        self.g.to(self.device).train()
        self.d.to(self.device).train()
        self.g_params, self.d_params = list(self.g.parameters()), list(self.d.parameters())
        self.opt_g = algorithm.make_optimizer(cfg.optim, self.g_params, self.device)
        self.opt_d = algorithm.make_optimizer(cfg.optim, self.d_params, self.device)
        self.g_loss_fn = GENERATOR_LOSSES[cfg.train.g_loss]
        self.real_label = cfg.train.real_label
        self.m = cfg.train.batch_size  # per process
        self.g_max_col_norm, self.d_max_col_norm = cfg.generator.max_col_norm, cfg.discriminator.max_col_norm
        # The modules whose backward pass is reduced across processes (the nets themselves in one process).
        self.g_train = self.parallel.reduced(self.g, self.device)
        self.d_train = self.parallel.reduced(self.d, self.device)

    # ----- where the run stands -------------------------------------------------------------
    @property
    def world_size(self) -> int:
        """The processes training this run together (1 alone): a step takes world_size * m examples."""
        return self.parallel.world_size

    @property
    def epoch(self) -> int:
        """Completed passes over the training split."""
        return self.order.epoch

    # ----- what Algorithm 1 draws (advnets.train.algorithm.Players) ---------------------------
    def next_real_batch(self) -> torch.Tensor:
        """D's rows for the next minibatch of m examples; a new epoch starts a new permutation."""
        idx = self.order.next_indices().to(self.device)
        return self.conditioning.real_rows(self.data.index_select(0, idx), idx)

    def noise(self, n: int) -> torch.Tensor:
        """G's input: n noise vectors, with what a conditional G is given appended (advnets.conditioning)."""
        return self.conditioning.g_input(sample_noise(self.cfg.generator, n, generator=self.streams.noise))

    def d_rows(self, fake: torch.Tensor, g_input: torch.Tensor) -> torch.Tensor:
        """D's rows for G's output ``fake`` from ``g_input``."""
        return self.conditioning.d_rows(fake, g_input)

    def seen_by_d(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows as D sees them: with train.instance_noise = s > 0, Gaussian noise of
        standard deviation s * (1 - step / total_steps) is added to the image columns
        (not to a label or mask appended after them); unchanged otherwise."""
        sigma = self.cfg.train.instance_noise * max(0.0, 1.0 - self.step / self.total_steps)
        if sigma == 0.0:
            return rows
        n = self.data.shape[1]
        gen = self.streams.instance_noise
        noise = torch.randn(len(rows), n, generator=gen, device=rows.device, dtype=rows.dtype)
        return torch.cat([rows[:, :n] + sigma * noise, rows[:, n:]], dim=1)

    def autocast(self):
        """Forward passes in bfloat16 with train.precision = "bf16" (weights,
        gradients, losses and optimiser state stay float32); a no-op otherwise."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.precision == "bf16")

    def may_step(self, *values: torch.Tensor) -> bool:
        """Whether to apply an update (train.skip_nonfinite; always with the default 0, without a host sync)."""
        if self.cfg.train.skip_nonfinite == 0:
            return True
        return self.skip(self.parallel.all_finite(values), self.step + 1)

    # ----- Algorithm 1 -----------------------------------------------------------------------
    def train_step(self, stop=None) -> dict[str, torch.Tensor] | None:
        """One Algorithm-1 iteration (advnets.train.algorithm.iteration); returns on-device scalars for logging,
        or None when ``stop`` turned true inside the k-loop (the next call continues it)."""
        return algorithm.iteration(self, stop)

    # ----- drawing from G --------------------------------------------------------------------
    def sample(
        self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n samples of G as N x C x H x W images on the training device (advnets.sampling.draw); a conditional G
        takes ``labels`` (default: drawn uniformly from ``generator`` after the noise)."""
        from advnets.sampling import draw

        z = sample_noise(self.cfg.generator, n, generator=generator, device=self.device)
        if labels is None and self.conditioning.kind == "class":
            labels = torch.randint(self.cfg.generator.cond_dim, (n,), generator=generator, device=z.device)
        return draw(self.g, z, self.dataset.image_shape, labels=labels, batch=max(n, 1))

    @torch.no_grad()
    def fixed_samples(self) -> torch.Tensor:
        """The progress grid: G's images for the run's fixed noise (G in its current mode)."""
        out = self.conditioning.grid_images(self.g(self.fixed_noise), self.fixed_noise)
        return out.reshape(GRID_SIZE, *self.dataset.image_shape)

    # ----- the collapse monitor --------------------------------------------------------------
    def _build_monitor(self, classifier: Any) -> CollapseMonitor | None:
        t = self.cfg.train
        if t.monitor_every == 0:
            return None
        # Its own generator: the checks never disturb the training streams.
        gen = one_off(t.seed, "monitor")
        noise = self.conditioning.monitor_input(sample_noise(self.cfg.generator, MONITOR_BATCH, generator=gen), gen)
        if noise is None:
            return None  # (decided alike on every rank: each either joins the checks' verdict or none does)
        if self.parallel.rank > 0:
            return MonitorOnRank0()
        if t.monitor_classes and classifier is None:
            raise AdvnetsError(
                "train.monitor_classes: pass the digit classifier to Trainer(..., classifier=...) "
                "(advnets.monitor.digit_classifier; `advnets train --monitor-classes` does)"
            )
        real = self.data[torch.randperm(len(self.data), generator=gen)[:MONITOR_BATCH].to(self.device)]
        # The warning's advice names what this run does not already do (collapse_advice).
        detector = CollapseDetector(advice=collapse_advice(self.cfg.optim.d_lr_scale, t.instance_noise))
        return CollapseMonitor(real, noise.to(self.device), classifier, detector, warmup_steps=self.total_steps // 4)

    # ----- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, in plain containers (advnets.checkpoint loads it with weights_only=True)."""
        state = {
            "generator": self.g.state_dict(),
            "discriminator": self.d.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "config": to_dict(self.cfg),
            "image_shape": list(self.dataset.image_shape),
            "dataset": self.dataset.name,
            "step": self.step,
            **self.order.state_dict(),  # epoch, batch_in_epoch, perm
            "d_updates": self.d_updates,
            "g_updates": self.g_updates,
            "skipped_updates": self.skip.skipped,
            "d_steps_done": self.d_steps_done,
            "inpaint_context": self.conditioning.state_dict(),
            "rng": self.streams.state_dict(),
            "monitor": self.monitor.state_dict() if self.monitor is not None else None,
            "validation": self.validation.state_dict() if self.validation is not None else None,
            "running": self.running.state_dict(),
        }
        self.parallel.annotate_state(self, state)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (a checkpoint's); CheckpointError for another architecture or image shape.

        The optimisers continue the checkpoint's state, with the current config's hyperparameters (betas); when
        ``optim.optimizer`` differs from the checkpoint's, the new optimiser starts fresh instead, which
        :attr:`optimizer_note` says in one line and config.json's resume record notes as
        ``"optimizer_state": "fresh"``."""
        stored = from_dict(RunConfig, state["config"])
        self._check_architecture(stored, "in the checkpoint")
        stored_shape = tuple(int(n) for n in state["image_shape"])
        if stored_shape != self.dataset.image_shape:
            raise CheckpointError(
                f"cannot resume: the checkpoint was trained on {stored_shape} images, this dataset "
                f"({self.dataset.name}) has {self.dataset.image_shape}; resume on the run's own data "
                "(leave out --data, or give the one it was trained on)"
            )
        self.g.load_state_dict(state["generator"])
        self.d.load_state_dict(state["discriminator"])
        # Another optimiser starts fresh: its state has another shape (issue 26: torch raised KeyError here).
        fresh = stored.optim.optimizer != self.cfg.optim.optimizer
        if not fresh:
            algorithm.load_optimizer_state(self.opt_g, state["opt_g"])
            algorithm.load_optimizer_state(self.opt_d, state["opt_d"])
        self.step, self.d_updates, self.g_updates = (int(state[k]) for k in ("step", "d_updates", "g_updates"))
        self.skip.skipped = int(state.get("skipped_updates", 0))
        self.d_steps_done = int(state.get("d_steps_done", 0))
        if self.monitor is not None and state.get("monitor") is not None:
            self.monitor.load_state_dict(state["monitor"])
        if self.validation is not None:
            self.validation.load_state_dict(state.get("validation"))
        self.order.load_state_dict(state)
        self.streams.load_state_dict(state["rng"])
        self.conditioning.load_state_dict(state.get("inpaint_context"))
        self.running.load_state_dict(state.get("running"), self.device)
        self.parallel.load_rank_state(self, state)
        self.total_steps = self._total_steps_from_position()
        self._resumed = {"step": self.step, "changes": config_changes(stored, self.cfg)}
        self.optimizer_note = ""
        if fresh:
            algorithm.set_schedules(self)  # a resumed half iteration's D steps use this step's lr and momentum
            self._resumed["optimizer_state"] = "fresh"
            self.optimizer_note = algorithm.fresh_optimizer_note(stored.optim.optimizer, self.cfg.optim.optimizer)
        self._continues_run = True

    def branch_from(self, state: dict[str, Any], origin: Path) -> None:
        """Start a new run from another run's checkpoint ``state`` (read from the file ``origin``): as
        load_state_dict, but the new run's config.json lists the branch as its first resume,
        ``{"step", "changes", "branched_from": origin}``, rather than continuing the other run's list. With
        train.eval_every, ``checkpoints/best`` is chosen among the new run's own checkpoints."""
        self.load_state_dict(state)
        if self.validation is not None:
            self.validation.best = None
        self._resumed = {**(self._resumed or {}), "branched_from": str(Path(origin).resolve())}
        self._continues_run = False

    def continue_run(self, stored: RunConfig) -> None:
        """Continue, from step 0, a run that stopped before its first checkpoint (its config.json holds
        ``stored``): fit() records the resume and what ``self.cfg`` changes; CheckpointError for another
        architecture, as load_state_dict."""
        self._check_architecture(stored, "stored")
        self._resumed = {"step": self.step, "changes": config_changes(stored, self.cfg)}
        self._continues_run = True

    def _check_architecture(self, stored: RunConfig, where: str) -> None:
        for part in ("generator", "discriminator"):
            old, new = to_dict(getattr(stored, part)), to_dict(getattr(self.cfg, part))
            diff = [f"{part}.{k}: {old[k]!r} {where}, {new[k]!r} now" for k in old if old[k] != new[k]]
            if diff:
                raise CheckpointError("cannot resume with a different architecture: " + "; ".join(diff))

    def _total_steps_from_position(self) -> int:
        """The step at which train.epochs epochs are done, counted from where the run stands: for
        a run resumed as it was saved this equals epochs * batches_per_epoch // k (each step takes
        k batches); after a resume with another number of processes (advnets.distributed), whose
        steps take another number of examples, the run still ends after train.epochs epochs."""
        t = self.cfg.train
        order = self.order
        batches_left = (t.epochs - order.epoch) * order.batches_per_epoch - order.batch_in_epoch + self.d_steps_done
        return self.step + max(batches_left, 0) // self.k

    def save(self, run_dir: Path) -> Path:
        """Write a checkpoint into ``run_dir``/checkpoints and point ``latest`` at it; returns its path."""
        return self.parallel.save(self, Path(run_dir))

    # ----- a run ---------------------------------------------------------------------------
    def write_run_config(self, run_dir: Path) -> None:
        """``run_dir``/config.json: the resolved config, the data's name, image shape and split sizes, and every
        resume with what it changed (what `advnets train` writes; report, evaluate, sample and resume read it)."""
        from advnets.runs import read_config_json, write_run_config

        resumes = read_config_json(run_dir).get("resumes", []) if self._continues_run else []
        if self._resumed is not None:
            resumes = [*resumes, self._resumed]
        write_run_config(run_dir, self.cfg, self.dataset, resumes)
        self._resumed, self._continues_run = None, True

    def _open_run_dir(self, run_dir: Path, tensorboard: bool) -> tuple[Any, Any]:
        """The run directory made, config.json written (a new run) or its write deferred (a resume), and the
        log opened at this step: ``(log or None, the deferred config write or None)``."""
        from advnets.runlog import MetricsLog, describe_rewind

        run_dir.mkdir(parents=True, exist_ok=True)
        if not self.parallel.writes_files:
            return None, None
        record = None
        # A new run's config.json comes first (it marks the directory as a run); a resume's record waits
        # for the first step, so a resume refused or crashed before it leaves config.json as it was.
        if self._resumed is None:
            self.write_run_config(run_dir)
        else:
            record = lambda: self.write_run_config(run_dir)  # noqa: E731
        # One row per step: the log continues at this step, without the rows a killed attempt
        # logged after it (they are trained and logged again).
        log = MetricsLog(run_dir, tensorboard=tensorboard, start_step=self.step)
        if log.dropped:
            print(describe_rewind(log.dropped, self.step), file=sys.stderr)
        return log, record

    def fit(self, run_dir: Path | None = None, progress: bool = True, tensorboard: bool = True) -> dict[str, float]:
        """Train until ``total_steps``, writing a run directory ``run_dir`` (if given): config.json, the log
        (metrics.jsonl and, with ``tensorboard``, TensorBoard events), sample grids and checkpoints. Returns the
        last logged row.

        SIGINT/SIGTERM finish the current D or G update, write a checkpoint and
        raise TrainingInterrupted; a non-finite loss or gradient raises
        TrainingDiverged naming the first bad step and network, before any bad
        weights are saved; a sustained collapse warns or, with on_collapse =
        "stop", raises TrainingCollapsed.

        The process that writes ``run_dir`` holds its lock throughout (advnets.runlock; joined when this
        process holds it already): RunLocked, before anything is written, when another training holds it."""
        from advnets.runlock import ensure_held

        if run_dir is None or not self.parallel.writes_files:
            return self._fit(run_dir, progress, tensorboard)
        with ensure_held(Path(run_dir)):
            return self._fit(run_dir, progress, tensorboard)

    def _fit(self, run_dir: Path | None, progress: bool, tensorboard: bool) -> dict[str, float]:
        self.parallel.announce(self.cfg)
        log = None
        record = None  # a resume is recorded in config.json once its first step is taken (loop.fit calls this)
        failed = True
        try:
            if run_dir is not None:
                run_dir = Path(run_dir)
                log, record = self._open_run_dir(run_dir, tensorboard)
            last = loop.fit(self, run_dir, progress and self.parallel.writes_files, log, first_step=record)
            if log is not None:
                log.close()  # the last rows' writes can fail too
            failed = False
            return last
        except (OSError, CheckpointError) as e:
            # A full or read-only disk, whichever file it hit: one line naming it, what is kept, how to go on.
            err = loop.failed_write(e)
            if err is None or run_dir is None:
                raise
            raise loop.write_error(err, run_dir) from e
        finally:
            if log is not None and failed:
                log.close(failed=True)


# The loop's outcomes, importable from here as before.
TrainingCollapsed = loop.TrainingCollapsed
TrainingInterrupted = loop.TrainingInterrupted
TrainingDiverged = algorithm.TrainingDiverged
