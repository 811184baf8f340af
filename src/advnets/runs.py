"""A run is a directory (StyleGAN2-ADA's habit); this module is the one place that knows its layout.

runs/00001-mnist-embedded/
  config.json        the fully resolved RunConfig, the dataset's name, image shape and split
                     sizes, and a record of every resume and what it changed
  metrics.jsonl      one JSON object per logged step, append-only
  events.out.tfevents.*   TensorBoard: the same scalars and sample grids
  samples/step-NNNNNNNN.png   grids from one fixed noise batch
  checkpoints/step-NNNNNNNN.pt (+ .sha256) and checkpoints/latest   (advnets.checkpoint)

The command line (``advnets train``) and the Python API create, open and resume
runs through the same functions here, so a run made either way works with
every command.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advnets.checkpoint import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LATEST,
    checkpoint_config,
    latest_checkpoint,
    load_checkpoint,
    newest_at_or_before,
    not_a_run,
    prune_checkpoints,
    require_run,
    resolve_checkpoint,
)
from advnets.config import RunConfig, from_dict, to_dict
from advnets.errors import AdvnetsError, CheckpointError
from advnets.io import atomic_write_json
from advnets.presets import get_preset
from advnets.runlock import LOCK_FILE, ensure_held

_RUN_KEYS = ("dataset", "image_shape", "splits", "resumes")  # what config.json holds beside the RunConfig
RUNS_ROOT = Path("runs")  # where `advnets train` without --out numbers its runs
_NUMBERED = re.compile(r"^(\d{5})-")


# ---------------------------------------------------------------------------- where a run is


def run_dir_of(path: Path) -> Path:
    """The run directory of ``path``: ``path`` itself when it is a directory, else the run that
    holds the checkpoint file ``path`` (``RUN/checkpoints/step-NNNNNNNN.pt`` -> ``RUN``)."""
    path = Path(path)
    return path if path.is_dir() else path.parent.parent


def new_run_dir(root: Path, name: str) -> Path:
    """Create ``root/NNNNN-name`` with the next free number."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _NUMBERED.match(p.name))]
    nxt = max(numbers, default=0) + 1
    while True:
        path = root / f"{nxt:05d}-{name}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another process took this number
            nxt += 1


def holds_run(out: Path) -> bool:
    """Whether ``out`` holds a run: a config.json (written before the first step) or a checkpoint.
    A run killed before its first checkpoint holds one too, so that the same command with
    ``--resume`` continues it rather than a second run appending to its log."""
    out = Path(out)
    return (out / CONFIG_FILE).is_file() or (out / CHECKPOINT_DIR / LATEST).is_file()


def check_new_run_dir(out: Path) -> Path:
    """``out`` as a Path, after checking that a new run may start there (what ``train --dry-run`` checks).

    Raises:
        AdvnetsError: ``out`` already holds a run (:func:`holds_run`; resume it instead), or is a file.
    """
    out = Path(out)
    if holds_run(out):
        raise AdvnetsError(f"--out {out} already holds a run; add --resume to continue it")
    if out.exists() and not out.is_dir():
        raise AdvnetsError(f"--out {out} is a file; expected a directory for the run")
    return out


def prepare_run_dir(out: Path | None, cfg: RunConfig, root: Path = RUNS_ROOT) -> Path:
    """The directory of a new run: ``out`` (created; refused when it already holds a run), or
    ``root/NNNNN-PRESET-DATA`` with the next free number when ``out`` is None.

    Raises:
        AdvnetsError: ``out`` already holds a run (:func:`holds_run`; resume it instead).
    """
    if out is not None:
        out = check_new_run_dir(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AdvnetsError(f"--out {out}: cannot create the run directory ({e.strerror or e})") from None
        return out
    data_name = Path(cfg.data.source).name if cfg.data.source not in ("embedded",) else "embedded"
    return new_run_dir(Path(root), f"{cfg.preset}-{data_name}")


# ---------------------------------------------------------------------------- config.json


def write_config(run_dir: Path, cfg: RunConfig, extra: dict[str, Any] | None = None) -> None:
    """Write ``run_dir/config.json``: ``to_dict(cfg)`` and the keys of ``extra`` (atomically)."""
    atomic_write_json(Path(run_dir) / CONFIG_FILE, {**to_dict(cfg), **(extra or {})})


def dataset_record(dataset: Any) -> dict[str, Any]:
    """What config.json records of the training data: its name, image shape and split sizes."""
    return {
        "dataset": dataset.name,
        "image_shape": list(dataset.image_shape),
        "splits": {k: len(dataset.split(k)) for k in ("train", "valid", "test")},
    }


def write_run_config(run_dir: Path, cfg: RunConfig, dataset: Any, resumes: list[dict[str, Any]] | None = None) -> None:
    """config.json of a run trained on ``dataset``; ``resumes`` lists every resume as
    ``{"step": S, "changes": {"train.epochs": [100, 200]}}`` (Trainer.fit keeps it)."""
    write_config(run_dir, cfg, {**dataset_record(dataset), **({"resumes": resumes} if resumes else {})})


def create_run(cfg: RunConfig, dataset: Any, out: Path | None = None, root: Path = RUNS_ROOT) -> Path:
    """A new run directory for training ``cfg`` on ``dataset``, with its config.json, laid out as
    ``advnets train`` lays it out (:func:`prepare_run_dir`): pass it to ``Trainer.fit(run_dir)``
    and every command (report, evaluate, sample, classes, train --resume) works on it. It is made under
    the run's lock (advnets.runlock), taken before ``out`` is checked, so that it never writes into a run
    that another process is training.

    Raises:
        AdvnetsError: ``out`` already holds a run.
        advnets.runlock.RunLocked: another process holds ``out``'s lock.
    """
    if out is None:
        run_dir = prepare_run_dir(out, cfg, root)  # a new numbered directory: no one else writes there
        with ensure_held(run_dir):
            write_run_config(run_dir, cfg, dataset)
        return run_dir
    with ensure_held(check_new_run_dir(out)):
        run_dir = prepare_run_dir(out, cfg, root)
        write_run_config(run_dir, cfg, dataset)
    return run_dir


def prune_run_checkpoints(run_dir: Path, keep: int, healthy_step: int | None = None) -> list[Path]:
    """Keep a run's newest ``keep`` checkpoints (``train.keep_checkpoints``; 0 keeps all) besides those ``latest``
    and ``best`` name, the one each branch recorded in config.json began with, and, given ``healthy_step``
    (the collapse monitor's last healthy check, with ``--on-collapse stop``), the newest one at or before it,
    which a stop points ``latest`` back at (advnets.checkpoint.prune_checkpoints). Call it after a save; returns
    the deleted checkpoints. A file that cannot be deleted is said in one line on stderr, and training goes on.
    """
    if keep <= 0:
        return []
    began = [r["step"] for r in read_config_json(run_dir).get("resumes", []) if isinstance(r, dict)
             and "branched_from" in r and isinstance(r.get("step"), int)]  # fmt: skip
    protect = [f"step-{s:08d}.pt" for s in began]
    healthy = newest_at_or_before(run_dir, healthy_step) if healthy_step is not None else None
    if healthy is not None:
        protect.append(healthy.name)
    try:
        return prune_checkpoints(run_dir, keep, protect=tuple(protect))
    except OSError as e:  # the new checkpoint is complete: training goes on, with more files kept than asked
        name = f"{e.filename} " if e.filename else ""
        print(f"advnets: warning: could not delete the old checkpoint {name}({e.strerror or e}); "
              f"--keep-checkpoints {keep} is not kept to until it can be", file=sys.stderr)  # fmt: skip
        return []


def read_config_json(run_dir: Path) -> dict[str, Any]:
    """config.json of a run as a plain dict ({} when missing or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def open_run(run_dir: Path, purpose: str = "this", option: str = "--run") -> dict[str, Any]:
    """config.json of a run, after checking that ``run_dir`` is a run with a checkpoint
    (``purpose`` names, in the error, what needs the checkpoint: "a report"; ``option`` the flag
    that named ``run_dir``).

    Raises:
        CheckpointError: no such directory, a directory that is not a run (:func:`require_run`, the
            message every command gives), or a run without a checkpoint yet.
        AdvnetsError: a run without a readable config.json.
    """
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise AdvnetsError(f"{option} {run_dir}: {purpose} needs a run directory, not a file")
    require_run(run_dir, option, expected="a run directory")
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise AdvnetsError(f"{option} {run_dir}: the run has a checkpoint but no {CONFIG_FILE}; {purpose} needs both")
    try:
        doc = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AdvnetsError(f"{config_path}: not a readable JSON file ({e})") from None
    if not isinstance(doc, dict):
        raise AdvnetsError(f"{config_path}: expected a JSON object, got {type(doc).__name__}")
    if latest_checkpoint(run_dir) is None:
        raise CheckpointError(
            f"{option} {run_dir}: no checkpoint yet (expected {run_dir / CHECKPOINT_DIR / LATEST}); "
            f"{purpose} needs a trained generator"
        )
    return doc


# ---------------------------------------------------------------------------- resume


def resume_state(run_dir: Path, preset: str | None = None, option: str = "--run") -> tuple[RunConfig, dict[str, Any]]:
    """The stored config and the state of a run's latest checkpoint (or of a checkpoint file);
    ``option`` is the flag that named ``run_dir``, for messages.

    Raises:
        CheckpointError: no checkpoint, or one that cannot be loaded.
        AdvnetsError: ``preset`` is given and is not the one the run was trained with.
    """
    path = resolve_checkpoint(run_dir, option)
    state = load_checkpoint(path)
    train = state["config"].get("train") if isinstance(state["config"], dict) else None
    if isinstance(train, dict):
        # A run begun before train.keep_checkpoints existed kept every checkpoint (a Table 1 curve scores them
        # all); resumed or branched, it goes on keeping them unless --keep-checkpoints says otherwise.
        train.setdefault("keep_checkpoints", 0)
    cfg = checkpoint_config(state["config"], state.get("version"), f"checkpoint {path}")
    _check_preset(cfg, preset, run_dir)
    return cfg, state


@dataclass(frozen=True)
class StartPoint:
    """Where ``advnets train`` (or the API) begins: the config that options are applied to and what
    the run directory already holds.

    ``state``: the latest checkpoint's state (resume from its step), or None. ``stored``: the config of
    a run that has a config.json but no checkpoint yet (it restarts from step 0 with it), or None.
    ``origin``: the checkpoint file ``state`` was read from when a new run branches from another
    run's checkpoint (:func:`branch_point`), else None. ``note``: one line to print about the choice, or ""."""

    base: RunConfig
    state: dict[str, Any] | None = None
    stored: RunConfig | None = None
    origin: Path | None = None
    note: str = ""


def stored_config(run_dir: Path) -> RunConfig:
    """The RunConfig in ``run_dir``/config.json (without the keys the run directory adds to it).

    Raises:
        AdvnetsError: config.json cannot be read or is not a run config (names the file).
    """
    path = Path(run_dir) / CONFIG_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return from_dict(RunConfig, {k: v for k, v in doc.items() if k not in _RUN_KEYS})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, AdvnetsError) as e:
        raise AdvnetsError(f"{path}: not a readable run configuration ({e})") from None


def start_point(preset: str | None = None, resume: Path | None = None, option: str = "--out") -> StartPoint:
    """The config that options are applied to, by the resume rules (issue 18): the same command line
    with ``--resume``, run again after any kill, continues the run.

    - ``resume`` None: the preset's config (default mnist), a new run.
    - ``resume`` holds a checkpoint: its config and state (resume at its step).
    - ``resume`` holds a config.json but no checkpoint (killed before the first): that config, from step 0.
    - ``resume`` is missing or empty (empty subfolders allowed): the preset's config, a new run (said in ``note``).
    - ``resume`` holds other files but no run: refused.

    ``option`` is the flag that named ``resume``, for messages.

    Raises:
        CheckpointError: the latest checkpoint cannot be loaded (names the file).
        AdvnetsError: ``preset`` is not the run's, config.json is unreadable, or ``resume`` holds files
            but no run.
    """
    if resume is None:
        return StartPoint(get_preset(preset or "mnist"))
    resume = Path(resume)
    if resume.is_file() or latest_checkpoint(resume) is not None:
        cfg, state = resume_state(resume, preset, option)
        return StartPoint(cfg, state=state)
    if (resume / CONFIG_FILE).is_file():
        stored = stored_config(resume)
        _check_preset(stored, preset, resume)
        return StartPoint(
            stored,
            stored=stored,
            note=f"{option} {resume} has no checkpoint yet (stopped before the first): "
            "starting its run again from step 0 with its stored configuration",
        )
    if resume.is_dir() and any(f.is_file() and not _leftover(resume, f) for f in resume.rglob("*")):
        # Files but no run: another run's subfolder, or someone's data. Training into it would mix the two.
        raise not_a_run(resume, option, expected="a run directory, or a missing or empty one to start a new run in")
    what = "does not exist" if not resume.exists() else "holds no run"
    return StartPoint(get_preset(preset or "mnist"), note=f"{option} {resume} {what} yet: starting a new run there")


def _leftover(run_dir: Path, path: Path) -> bool:
    """Whether ``path`` is what a job killed before its run's config.json leaves behind: the run's lock file, or
    the temporary file of an atomic write (``.NAME.XXXXXXXX.tmp``, advnets.io) cut short."""
    return path == run_dir / LOCK_FILE or (path.name.startswith(".") and path.name.endswith(".tmp"))


def branch_point(source: Path, preset: str | None = None, option: str = "--branch-from") -> StartPoint:
    """Where a new run that branches from another run's checkpoint begins: ``source`` is a run directory (its
    latest checkpoint) or a checkpoint file; the new run continues that checkpoint's step, weights, optimiser
    state, schedules and random streams in a directory of its own, and ``source`` is only read.

    Raises:
        CheckpointError: ``source`` is neither a run with a checkpoint nor a checkpoint file, or cannot be loaded.
        AdvnetsError: ``preset`` is given and is not the one ``source`` was trained with.
    """
    origin = resolve_checkpoint(source, option)
    cfg, state = resume_state(origin, preset, option)
    return StartPoint(cfg, state=state, origin=origin)


def _check_preset(stored: RunConfig, preset: str | None, run_dir: Path) -> None:
    if preset is not None and preset != stored.preset:
        raise AdvnetsError(f"--preset {preset}: the run in {run_dir} was trained with {stored.preset!r}")


# ---------------------------------------------------------------------------- metrics.jsonl
