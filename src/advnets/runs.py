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
from pathlib import Path
from typing import Any

from advnets.checkpoint import CHECKPOINT_DIR, LATEST, latest_checkpoint, load_checkpoint, resolve_checkpoint
from advnets.config import RunConfig, from_dict, get_preset, to_dict
from advnets.errors import AdvnetsError, CheckpointError
from advnets.io import atomic_write_json

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
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


def prepare_run_dir(out: Path | None, cfg: RunConfig, root: Path = RUNS_ROOT) -> Path:
    """The directory of a new run: ``out`` (created; refused when it already holds a run), or
    ``root/NNNNN-PRESET-DATA`` with the next free number when ``out`` is None.

    Raises:
        AdvnetsError: ``out`` already holds a run (it has checkpoints; resume it instead).
    """
    if out is not None:
        out = Path(out)
        if (out / CHECKPOINT_DIR).exists():
            raise AdvnetsError(f"--out {out} already holds a run; add --resume to continue it")
        out.mkdir(parents=True, exist_ok=True)
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
    and every command (report, evaluate, sample, classes, train --resume) works on it.

    Raises:
        AdvnetsError: ``out`` already holds a run.
    """
    run_dir = prepare_run_dir(out, cfg, root)
    write_run_config(run_dir, cfg, dataset)
    return run_dir


def read_config_json(run_dir: Path) -> dict[str, Any]:
    """config.json of a run as a plain dict ({} when missing or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def open_run(run_dir: Path, purpose: str = "this") -> dict[str, Any]:
    """config.json of a run, after checking that ``run_dir`` is a run with a checkpoint
    (``purpose`` names, in the error, what needs the checkpoint: "a report").

    Raises:
        AdvnetsError: no such directory, or no readable config.json in it.
        CheckpointError: the run has no checkpoint yet.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AdvnetsError(f"{run_dir}: no such run directory")
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise AdvnetsError(f"{run_dir} is not an advnets run: it has no {CONFIG_FILE}")
    try:
        doc = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AdvnetsError(f"{config_path}: not a readable JSON file ({e})") from None
    if not isinstance(doc, dict):
        raise AdvnetsError(f"{config_path}: expected a JSON object, got {type(doc).__name__}")
    if latest_checkpoint(run_dir) is None:
        raise CheckpointError(
            f"{run_dir} has no checkpoint yet (expected {run_dir / CHECKPOINT_DIR / LATEST}); "
            f"{purpose} needs a trained generator"
        )
    return doc


# ---------------------------------------------------------------------------- resume


def resume_state(run_dir: Path, preset: str | None = None) -> tuple[RunConfig, dict[str, Any]]:
    """The stored config and the state of a run's latest checkpoint (or of a checkpoint file).

    Raises:
        CheckpointError: no checkpoint, or one that cannot be loaded.
        AdvnetsError: ``preset`` is given and is not the one the run was trained with.
    """
    state = load_checkpoint(resolve_checkpoint(run_dir))
    cfg = from_dict(RunConfig, state["config"])
    if preset is not None and preset != cfg.preset:
        raise AdvnetsError(f"--preset {preset}: the run in {run_dir} was trained with {cfg.preset!r}")
    return cfg, state


def base_config(preset: str | None = None, resume: Path | None = None) -> tuple[RunConfig, dict[str, Any] | None]:
    """The config that options are applied to: a resumed run's own (with its checkpoint's state),
    else the preset's (default mnist)."""
    if resume is not None:
        return resume_state(resume, preset)
    return get_preset(preset or "mnist"), None


# ---------------------------------------------------------------------------- metrics.jsonl


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All rows of metrics.jsonl (a torn last line from a killed process is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    """Append one row to metrics.jsonl (what ``advnets evaluate`` adds to a run's history)."""
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


class MetricsLog:
    """Append-only metrics.jsonl plus the same scalars in TensorBoard."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self._file = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir))

    def log(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = row["step"]
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)

    def image(self, tag: str, hwc_or_hw, step: int) -> None:
        if self._tb is not None:
            fmt = "HW" if hwc_or_hw.ndim == 2 else "HWC"
            self._tb.add_image(tag, hwc_or_hw, step, dataformats=fmt)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
