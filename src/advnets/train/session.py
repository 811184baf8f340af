"""A run's life in the library: a new run, a resume, a continuation or a branch, decided in one place.

``advnets train``, its ``--dry-run`` and the Python API (:func:`train_run`) all go the same way:

1. :func:`plan_run` reads what the run directory (or the checkpoint to branch from) holds and applies the
   options to the right configuration (the resume rules of issue 18): a :class:`RunPlan` of kind
   ``"new"``, ``"resume"`` (from the latest checkpoint), ``"continue"`` (a run killed before its first
   checkpoint, again from step 0 with its stored configuration) or ``"branch"`` (a new run from another
   run's checkpoint, which is only read).
2. :func:`start` loads the plan into a :class:`~advnets.train.Trainer` (weights, optimisers, counters,
   random streams) and says whether anything is left to train.
3. :func:`open_run_dir` lays out the run directory: a new run's config.json, a branch's first checkpoint
   and log, or nothing for a resume (its config.json records the resume after its first step).

The process that writes the run directory holds its lock (:mod:`advnets.runlock`) from before step 1 reads a
run until training ends, so two trainings never share one directory (StyleGAN2-ADA's ``training_loop``
takes ``resume_pkl`` the same way: the caller says what to start from, the library does the rest).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advnets.config import RunConfig, config_changes, from_dict, with_condition
from advnets.errors import AdvnetsError
from advnets.presets import train_config_from_options
from advnets.runs import StartPoint, branch_point, holds_run, start_point

__all__ = [
    "KINDS",
    "RunPlan",
    "TrainResult",
    "collapse_classifier",
    "complete_note",
    "open_run_dir",
    "plan_run",
    "size_for_data",
    "start",
    "train_run",
]

#: What a training call does with its run directory.
KINDS = ("new", "resume", "continue", "branch")


@dataclass(frozen=True)
class RunPlan:
    """What a training call will do, decided before anything is built or written.

    Attributes:
        kind: one of :data:`KINDS`.
        cfg: the configuration to train with: the stored run's (or the checkpoint's) with the options applied,
            or the preset's for a new run.
        out: the run directory (None: a new numbered one under ``runs/``).
        start: what the directory or the branch's source holds (:class:`advnets.runs.StartPoint`).
    """

    kind: str
    cfg: RunConfig
    out: Path | None
    start: StartPoint

    @property
    def stored(self) -> RunConfig | None:
        """The run's configuration before this call's options (None for a new run)."""
        if self.start.state is not None:
            return from_dict(RunConfig, self.start.state["config"])
        return self.start.stored

    def changes(self) -> dict[str, list[Any]]:
        """``{field: [stored value, new value]}`` for the options that change the stored run."""
        return {} if self.stored is None else config_changes(self.stored, self.cfg)

    def describe(self, trainer: Any, run_dir: Path | None = None) -> str:
        """The one line `advnets train` prints about the plan, once ``trainer`` holds it (:func:`start`)."""
        changes = "; ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in self.changes().items())
        tail = f" with changes: {changes}" if changes else ""
        if self.kind == "branch":
            return f"branching {self.start.origin} at step {trainer.step} into {run_dir or self.out}{tail}"
        if self.kind == "resume":
            return f"resuming {self.out} at step {trainer.step} of {trainer.total_steps}{tail}"
        return self.start.note + (tail if self.kind == "continue" else "")


def plan_run(
    options: Mapping[str, Any] | None = None,
    *,
    preset: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    branch_from: str | Path | None = None,
    conditional: bool = False,
) -> RunPlan:
    """Decide what training with ``options`` (``{config field: value}``, None values ignored, as
    :func:`advnets.presets.train_config_from_options` takes them) does with ``out``.

    With ``resume``, ``out`` holding a checkpoint is resumed at its step; holding only a config.json (killed
    before its first checkpoint) it is continued from step 0 with that config; missing or empty, it is a new
    run there. Without ``resume``, ``out`` must not hold a run. ``branch_from`` (a run or a checkpoint file)
    starts a new run in ``out`` from that checkpoint, unless ``resume`` finds the branch already there.

    Raises:
        AdvnetsError: ``resume`` without ``out``, a ``preset`` that is not the stored run's, or a directory that
            holds files but no run. ConfigError: an option's value (its message starts with the field's name).
        CheckpointError: the checkpoint cannot be loaded.
    """
    out = Path(out) if out is not None else None
    if resume and out is None:
        raise AdvnetsError("--resume needs --out DIR, the run to continue")
    if branch_from is not None and not (resume and holds_run(out)):
        where = branch_point(Path(branch_from), preset)
        kind = "branch"
    else:
        where = start_point(preset, out if resume else None, option="--out")
        kind = "resume" if where.state is not None else "continue" if where.stored is not None else "new"
    cfg = train_config_from_options(dict(options or {}), where.base, conditional=conditional)
    return RunPlan(kind, cfg, out, where)


def size_for_data(plan: RunPlan, dataset: Any) -> RunPlan:
    """The plan with G's and D's inputs sized for §7.3's inpainting on ``dataset`` (a new run with
    ``train.condition = "inpaint"`` asked for: the mask and the visible pixels have the image's size)."""
    return RunPlan(plan.kind, with_condition(plan.cfg, "inpaint", math.prod(dataset.image_shape)), plan.out, plan.start)


def start(plan: RunPlan, trainer: Any) -> bool:
    """Load ``plan`` into ``trainer``; whether there is anything left to train.

    Raises:
        CheckpointError: the checkpoint is of another architecture or image shape than ``plan.cfg``.
        AdvnetsError: ``train.epochs`` ends before the epochs already trained (a resume), or leaves nothing to
            train after the checkpoint (a branch).
    """
    if plan.kind == "branch":
        trainer.branch_from(plan.start.state, plan.start.origin)
        if trainer.step >= trainer.total_steps:
            raise AdvnetsError(
                f"--epochs {trainer.cfg.train.epochs}: {plan.start.origin} has already trained {trainer.epoch} "
                f"epochs (step {trainer.step}); give more epochs to branch from it"
            )
        return True
    if plan.kind == "resume":
        trainer.load_state_dict(plan.start.state)
    elif plan.kind == "continue":
        trainer.continue_run(plan.start.stored)
    if trainer.step < trainer.total_steps:
        return True
    epochs = trainer.cfg.train.epochs
    if epochs < trainer.epoch:
        raise AdvnetsError(
            f"--epochs {epochs}: the run in {plan.out} has already trained {trainer.epoch} epochs "
            f"(step {trainer.step}); give more epochs to continue it"
        )
    return False


def complete_note(plan: RunPlan, trainer: Any) -> str:
    """What to say when :func:`start` finds nothing to train."""
    epochs = trainer.cfg.train.epochs
    return (
        f"{plan.out} is complete: step {trainer.step} of {trainer.total_steps} ({epochs} epochs); nothing to train "
        f"(continue it with --resume --epochs N, N > {epochs})"
    )


def open_run_dir(plan: RunPlan, trainer: Any, dataset: Any, held: ExitStack | None = None) -> Path:
    """The run directory ``trainer`` trains into, laid out for ``plan`` (after :func:`start`).

    A new run: a directory made (``plan.out`` or the next numbered one under ``runs/``) with its config.json;
    a branch: a new directory holding, before its first step, the checkpoint it starts from (so a kill then
    ``--resume`` continues the branch, never a run from step 0), its config.json with the branch recorded,
    and the source's log up to the branch; a resume or continuation: ``plan.out`` as it is. With ``held``, the
    new directory's lock is taken into it before anything is written there.

    Raises:
        AdvnetsError: ``plan.out`` holds a run already (a new run or a branch).
        advnets.runlock.RunLocked: another training holds the new directory.
    """
    from advnets.runlock import hold_run
    from advnets.runlog import copy_metrics
    from advnets.runs import create_run, prepare_run_dir, run_dir_of

    if plan.kind in ("resume", "continue"):
        return plan.out
    run_dir = prepare_run_dir(plan.out, plan.cfg)
    if held is not None:
        held.enter_context(hold_run(run_dir))
    if plan.kind == "new":
        return create_run(plan.cfg, dataset, run_dir)
    trainer.save(run_dir)
    trainer.write_run_config(run_dir)
    copy_metrics(run_dir_of(plan.start.origin), run_dir, trainer.step)
    return run_dir


def collapse_classifier(cfg: RunConfig, dataset: Any, device: Any) -> Any:
    """The digit classifier the collapse monitor counts classes with (``train.monitor_classes``), or None."""
    if not (cfg.train.monitor_classes and cfg.train.monitor_every):
        return None
    from advnets.monitor import digit_classifier

    return digit_classifier(dataset, device)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_run` did: the plan it followed, the run directory, the trainer (its nets and counters)
    and the last log row (None when nothing was trained: the run was complete, or a dry run)."""

    plan: RunPlan
    run_dir: Path | None
    trainer: Any
    last: dict[str, float] | None


def train_run(
    options: Mapping[str, Any] | None = None,
    data: Any = None,
    *,
    preset: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    branch_from: str | Path | None = None,
    conditional: bool = False,
    inpaint: bool = False,
    data_dir: str | Path | None = None,
    dry_run: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
    say: Callable[[str], None] | None = None,
    parallel: Any = None,
    check: Callable[[RunPlan], None] | None = None,
) -> TrainResult:
    """Train a run from Python as ``advnets train`` does (it calls this): new, resumed (bit-identically),
    continued or branched, with its run directory locked throughout and one log row per step.

    Args:
        options: ``{config field: value}``, e.g. ``{"train.epochs": 40, "optim.lr": 0.01}`` (None values are
            ignored); applied to the preset's config, or to the stored run's when resuming or branching.
        data: a :class:`~advnets.data.Dataset` to train on (default: the configuration's ``data.source``, read
            from ``data_dir``).
        preset: as :func:`plan_run`.
        out: as :func:`plan_run`.
        resume: as :func:`plan_run`.
        branch_from: as :func:`plan_run`.
        conditional: as :func:`plan_run`.
        inpaint: a new run of §7.3's inpainting model, G's and D's inputs sized for the data (:func:`size_for_data`).
        dry_run: do everything the run does before its first step (data, nets, checkpoint, ``out`` checked) and
            write nothing.
        say: called with each line for the user (`advnets train` prints them to stderr; default: none).
        parallel: this process's coordination with others (advnets.distributed.DataParallel under torchrun;
            default one process). Only the process that writes files takes the lock and lays out ``out``.
        check: called with the plan before any data are read (the CLI refuses options the plan's data ignore).

    Returns:
        :class:`TrainResult`.

    Raises:
        AdvnetsError: everything :func:`plan_run`, :func:`start` and :func:`open_run_dir` raise.
        advnets.runlock.RunLocked: another training holds ``out``.
        TrainingInterrupted: from fit (a signal); likewise TrainingDiverged and TrainingCollapsed.
    """
    from advnets.runlock import hold_run
    from advnets.train.parallel import SingleProcess

    say = _unless_empty(say or (lambda line: None))
    parallel = parallel if parallel is not None else SingleProcess()
    writes = parallel.writes_files and not dry_run
    with ExitStack() as held:
        if writes and out is not None and holds_run(Path(out)):  # locked before the run is read
            held.enter_context(hold_run(Path(out)))
        plan = plan_run(
            options, preset=preset, out=out, resume=resume, branch_from=branch_from, conditional=conditional
        )
        if check is not None:
            check(plan)
        dataset = data if data is not None else _load_data(plan, data_dir)
        if inpaint and plan.kind == "new":
            plan = size_for_data(plan, dataset)
        trainer = _trainer(plan, dataset, parallel)
        if dry_run:
            return _dry_run(plan, trainer, dataset, say)
        # A finished run has nothing to do and writes nothing (under torchrun every rank reaches fit(), which
        # ends at once: a rank that stopped here would leave the others waiting).
        if not start(plan, trainer) and trainer.world_size == 1:
            say(complete_note(plan, trainer))
            return TrainResult(plan, plan.out, trainer, None)
        run_dir = plan.out
        if parallel.writes_files:
            run_dir = open_run_dir(plan, trainer, dataset, held if plan.kind in ("new", "branch") else None)
            for line in (
                plan.describe(trainer, run_dir),
                trainer.optimizer_note,
                _training_line(trainer, run_dir),
            ):
                say(line)
        last = trainer.fit(run_dir, progress=progress and parallel.writes_files, tensorboard=tensorboard)
        return TrainResult(plan, run_dir, trainer, last)


def _unless_empty(say: Callable[[str], None]) -> Callable[[str], None]:
    return lambda line: say(line) if line else None


def _load_data(plan: RunPlan, data_dir: Any) -> Any:
    from advnets.data import load_dataset

    return load_dataset(plan.cfg.data, data_dir=data_dir)


def _trainer(plan: RunPlan, dataset: Any, parallel: Any) -> Any:
    """This process's Trainer of ``plan``, on ``parallel``'s device (or the config's); the collapse monitor's
    classifier is built where the checks run (rank 0)."""
    from advnets.devices import resolve_device
    from advnets.train import Trainer

    device = parallel.device or resolve_device(plan.cfg.train.device)
    classifier = collapse_classifier(plan.cfg, dataset, device) if parallel.rank == 0 else None
    return Trainer(plan.cfg, dataset, device, parallel=parallel, classifier=classifier)


def _training_line(trainer: Any, run_dir: Path) -> str:
    d, cfg = trainer.dataset, trainer.cfg
    return (
        f"training {cfg.preset} on {d.name} ({len(d.train)} train images, {trainer.total_steps} steps, "
        f"{cfg.train.update} update, device {trainer.device}) -> {run_dir}"
    )


def _dry_run(plan: RunPlan, trainer: Any, dataset: Any, say: Callable[[str], None]) -> TrainResult:
    """Everything the run does before its first step, nothing written: the plan loaded into ``trainer`` (a
    checkpoint's architecture and image shape), or ``plan.out`` checked free for a new run; what it would do said."""
    from advnets.runlock import check_free
    from advnets.runs import check_new_run_dir

    if plan.out is not None:
        check_free(plan.out)  # another training holds it: say so now
    if not start(plan, trainer):
        say(complete_note(plan, trainer))
        return TrainResult(plan, plan.out, trainer, None)
    if plan.kind in ("new", "branch") and plan.out is not None:
        check_new_run_dir(plan.out)
    what = {
        "branch": f"would branch {plan.start.origin} at step {trainer.step} into a new run of {trainer.total_steps} "
        "steps",
        "resume": f"would resume {plan.out} at step {trainer.step} of {trainer.total_steps}",
        "continue": f"would continue {plan.out} from step 0 (it has no checkpoint yet)",
        "new": f"would train {trainer.total_steps} steps",
    }[plan.kind]
    say(f"dry run: {dataset.name} ({len(dataset.train)} train images); {what}; nothing written")
    say(trainer.optimizer_note)
    return TrainResult(plan, plan.out, trainer, None)
