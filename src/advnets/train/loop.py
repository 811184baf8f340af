"""The bookkeeping around Algorithm 1: when to log, draw the progress grid, check for collapse, checkpoint; what a
signal, a non-finite value or a collapse does. Algorithm 1 itself is advnets.train.algorithm.

:func:`fit` runs a Trainer's iterations to ``total_steps``. Everything it shares with other processes goes through
the trainer's coordination object (advnets.train.parallel), so this loop is the same for one process and for N.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

from advnets.checkpoint import latest_checkpoint, point_latest_at_or_before
from advnets.data import to_display
from advnets.errors import AdvnetsError, CheckpointError, WriteError
from advnets.figures import image_grid, save_grid
from advnets.io import NO_ROOM, READ_ONLY, write_failure
from advnets.train.algorithm import TrainingDiverged

# What the divergence guard watches: (network, what, key of train_step's output).
WATCHED = (
    ("D", "loss", "d_loss"),
    ("G", "loss", "g_loss"),
    ("D", "gradient", "d_grad_norm"),
    ("G", "gradient", "g_grad_norm"),
)


class TrainingCollapsed(AdvnetsError):
    """The collapse monitor saw a sustained collapse and train.on_collapse is "stop"."""

    exit_code = 3


class TrainingInterrupted(AdvnetsError):
    """SIGINT or SIGTERM stopped training after a checkpoint was written."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_finite(trainer: Any, first_bad: torch.Tensor) -> None:
    """Raise TrainingDiverged if a loss or gradient was non-finite at some step (on any rank) or a weight is
    non-finite now; called before anything is logged or saved, so a checkpoint never holds diverged weights."""
    first_bad = trainer.parallel.earliest_bad_step(first_bad)
    bad = [(step, i) for i, step in enumerate(first_bad.tolist()) if step >= 0]
    if bad:
        # The earliest (a NaN spreads to the other values a step later), losses before gradients.
        step, i = min(bad)
        net, what, _ = WATCHED[i]
        raise TrainingDiverged(
            f"training diverged: {net}'s {what} became NaN or infinite at step {step}; the last checkpoint "
            "(if any) holds the weights from before. Try a lower --lr or another --seed."
        )
    for name, net in (("D", trainer.d), ("G", trainer.g)):
        if not all(torch.isfinite(p).all() for p in net.parameters()):
            raise TrainingDiverged(f"training diverged: {name}'s weights hold NaN or infinity at step {trainer.step}")


def monitor_check(trainer: Any, out: dict[str, torch.Tensor], run_dir: Path | None, log) -> None:
    """One collapse check (advnets.monitor): log it, warn, and with on_collapse = "stop" end training at the
    last healthy checkpoint (raises TrainingCollapsed)."""
    from tqdm.auto import tqdm

    monitor = trainer.monitor
    d_real, d_fake = torch.stack([out["d_real"], out["d_fake"]]).float().cpu().tolist()
    stats, warning = monitor.check(trainer.step, trainer.g, trainer.dataset.image_shape, d_real, d_fake)
    if log is not None:
        log.log({"step": trainer.step, **{f"collapse/{k}": v for k, v in stats.items()}})
    if warning is None:
        return
    tqdm.write(f"advnets: warning: {warning}", file=sys.stderr)
    if log is not None:
        log.log({"step": trainer.step, "warning": warning})
    if trainer.cfg.train.on_collapse != "stop":
        return
    healthy = None
    if run_dir is not None and monitor.last_healthy_step is not None:
        healthy = point_latest_at_or_before(run_dir, monitor.last_healthy_step)
    where = (
        f"`latest` now names {healthy}, saved at or before the last healthy check (step {monitor.last_healthy_step})"
        if healthy is not None
        else "no checkpoint predates the collapse, so none was kept as healthy"
    )
    raise TrainingCollapsed(f"training stopped (--on-collapse stop) at step {trainer.step}: {where}")


def write_grid(trainer: Any, run_dir: Path, log) -> None:
    """The fixed-noise progress grid of this step: samples/step-NNNNNNNN.png and TensorBoard."""
    images = to_display(trainer.fixed_samples(), trainer.dataset.preprocess)
    save_grid(images, Path(run_dir) / "samples" / f"step-{trainer.step:08d}.png", nrow=10, scale=2)
    if log is not None:
        log.image("samples", image_grid(images, nrow=10), trainer.step)


class _Rows:
    """The means of the trainer's running sums (``trainer.running``, checkpointed) at each log row, and the
    throughput since the last row of this process (a timing field: it differs after a resume)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.tick, self.tick_step = time.perf_counter(), trainer.step

    def row(self) -> tuple[dict[str, float], dict[str, float]]:
        """(the log row, the means in it) since the last call."""
        tr, t = self.trainer, self.trainer.cfg.train
        now = time.perf_counter()
        means = tr.running.means()
        tr.running = tr.parallel.running(tr.device)
        seen = (tr.step - self.tick_step) * t.batch_size * tr.parallel.world_size
        seen *= t.k if t.update == "alternating" else 1
        row = {
            "step": tr.step,
            "epoch": tr.epoch + tr.order.batch_in_epoch / tr.order.batches_per_epoch,
            **means,
            "lr": tr.opt_g.param_groups[0]["lr"],
            "momentum": tr.opt_g.param_groups[0].get("momentum", 0.0),
            "samples_per_s": seen / max(now - self.tick, 1e-9),
        }
        if tr.skip.skipped:
            row["skipped_updates"] = tr.skip.skipped
        self.tick, self.tick_step = now, tr.step
        return row, means


def failed_write(err: BaseException) -> OSError | None:
    """The OSError of a full, over-quota or read-only filesystem behind ``err`` (``err`` itself, or the cause of
    a checkpoint's CheckpointError), or None when ``err`` is something else."""
    for e in (err, err.__cause__):
        if isinstance(e, OSError) and e.errno in NO_ROOM | READ_ONLY:
            return e
    return None


def write_error(err: OSError, run_dir: Path) -> WriteError:
    """One line for a write into ``run_dir`` that failed during training: the file, why, what the run still
    holds (the last complete checkpoint: every write before it was flushed first) and how to continue."""
    try:
        latest = latest_checkpoint(run_dir)
    except (OSError, CheckpointError):
        latest = None
    kept = (
        f"the last complete checkpoint, {latest}, is intact"
        if latest is not None and latest.is_file()
        else "no checkpoint was written yet (a resume starts at step 0)"
    )
    fix = (
        f"{run_dir} is on a read-only filesystem: remount it read-write (or copy {run_dir} elsewhere)"
        if err.errno in READ_ONLY
        else f"free some space there (or copy {run_dir} to a roomier place)"
    )
    what = write_failure(err.filename if err.filename is not None else run_dir, err).split("; ")[0]
    return WriteError(f"{what}; {kept}: {fix}, then continue with: advnets train --out {run_dir} --resume")


def _interrupted(trainer: Any, signum: int, run_dir: Path | None, path: Path | None) -> TrainingInterrupted:
    t = trainer.cfg.train
    name = signal.Signals(signum).name
    where = f"checkpoint {path}" if run_dir is not None else "no run directory, nothing saved"
    if trainer.d_steps_done:
        where += f" (inside iteration {trainer.step + 1}, after {trainer.d_steps_done} of {t.k} D steps)"
    resume = f"; continue with: advnets train --out {run_dir} --resume" if run_dir else ""
    hint = trainer.parallel.resume_hint(run_dir) if run_dir is not None else ""
    return TrainingInterrupted(
        f"stopped by {name} at step {trainer.step} of {trainer.total_steps}: {where}{resume}{hint}", 128 + signum
    )


def fit(trainer: Any, run_dir: Path | None, progress: bool, log, first_step=None) -> dict[str, float]:
    """Train ``trainer`` until its ``total_steps``, logging to ``log`` (a MetricsLog or None) and sampling and
    checkpointing into ``run_dir`` (if given); returns the last logged row. ``first_step``, if given, is called
    once the first update has been taken (before anything is logged or saved): Trainer.fit records a resume in
    config.json there. See Trainer.fit."""
    from tqdm.auto import tqdm

    tr, t, parallel = trainer, trainer.cfg.train, trainer.parallel
    rows = _Rows(tr)
    # First step at which each watched value was non-finite (-1: none), kept
    # on the device so that the check costs no host sync per step.
    first_bad = torch.full((len(WATCHED),), -1, dtype=torch.long, device=tr.device)
    last: dict[str, float] = {}
    bar = tqdm(total=tr.total_steps, initial=tr.step, disable=not progress, unit="step", dynamic_ncols=True)
    path = None
    every_s, saved_at = t.checkpoint_minutes * 60, time.monotonic()
    try:
        with parallel.stop_on_signal() as stop:
            while tr.step < tr.total_steps:
                epoch_before = tr.epoch
                out = tr.train_step(stop=stop.poll)
                if first_step is not None:
                    first_step()
                    first_step = None
                stop.poll()  # a stop asked for during the step counts from here (on every rank)
                if out is not None:
                    first_bad = _account(tr, out, tr.running, first_bad)
                    bar.update(1)
                done = tr.step >= tr.total_steps
                stopping = stop.signum is not None
                # No extra row at a stop: the row at the next log step, after a resume, holds the sums
                # since the last row (checkpointed), so the log is an uninterrupted run's (issue 18).
                if out is not None and (tr.step % t.log_every == 0 or done):
                    check_finite(tr, first_bad)
                    last, means = rows.row()
                    if means:  # empty only when every step since the last row was skipped
                        bar.set_postfix(D=f"{means['d_loss']:.3f}", G=f"{means['g_loss']:.3f}", refresh=False)
                        if log is not None:
                            log.log(last)
                if out is not None and tr.monitor is not None and (tr.step % t.monitor_every == 0 or done):
                    check_finite(tr, first_bad)
                    parallel.collapse_verdict(lambda out=out: monitor_check(tr, out, run_dir, log))
                if out is not None and tr.validation is not None and tr.validation.due(epoch_before, tr.epoch, done):
                    check_finite(tr, first_bad)
                    tr.validation.check(tr, run_dir, log)
                if run_dir is not None:
                    if out is not None and parallel.writes_files and (tr.step % t.sample_every == 0 or done):
                        write_grid(tr, run_dir, log)
                    due = out is not None and (tr.step % t.checkpoint_every == 0 or done)
                    if out is not None and every_s and not due:  # --checkpoint-minutes
                        due = parallel.any_rank(time.monotonic() - saved_at >= every_s)
                    if due or stopping:
                        check_finite(tr, first_bad)
                        if log is not None:  # the rows this checkpoint covers are on disk first, or the
                            log.flush()  # failed write is found here, with the previous checkpoint intact
                        with stop.writing():
                            path = tr.save(run_dir)
                        saved_at = time.monotonic()
                if stopping:
                    raise _interrupted(tr, stop.signum, run_dir, path)
    finally:
        bar.close()
    return last


def _account(tr: Any, out: dict[str, torch.Tensor], running, first_bad: torch.Tensor) -> torch.Tensor:
    """Add an iteration's values to the running means and note the first non-finite ones (no host sync unless
    train.skip_nonfinite is on, which leaves skipped steps out of the logged means)."""
    watched = torch.stack([out[key].detach() for _, _, key in WATCHED])
    if tr.cfg.train.skip_nonfinite == 0:
        bad = ~torch.isfinite(watched)
        first_bad = torch.where(bad & (first_bad < 0), tr.step, first_bad)
        running.add(**out)
    elif bool(torch.isfinite(watched).all()):
        running.add(**out)
    return first_bad
