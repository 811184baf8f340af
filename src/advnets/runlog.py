"""A run's log: metrics.jsonl (one JSON row per logged step) and its TensorBoard twin.

:class:`MetricsLog` writes both while training, keeping one row per step across resumes (a resume
from step S drops the rows a killed attempt logged after S, and TensorBoard purges its events from
S + 1). The readers (:func:`read_metrics`) skip a torn last line, so a run can be looked at while it
trains. The run directory's other files are :mod:`advnets.runs`'s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from advnets.io import atomic_write_bytes, naming

METRICS_FILE = "metrics.jsonl"


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
    path = Path(run_dir) / METRICS_FILE
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    except OSError as e:  # a write() error names no file
        raise naming(e, path) from e


def rewind_metrics(run_dir: Path, step: int) -> list[int]:
    """Keep one row per step when a run continues from ``step``: drop the rows of metrics.jsonl
    logged after it (by the attempt that was killed; training repeats those steps and logs them
    again) and a torn last line. The file is rewritten to a temporary and renamed, so a kill
    during the rewind leaves the old file or the new one. Returns the steps of the dropped rows
    (a torn line counts as step -1), in file order; an untouched file returns [].

    Raises:
        OSError: metrics.jsonl exists but cannot be read or rewritten.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    kept, dropped = [], []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = {"step": -1}  # torn by a kill in the middle of a write
            line = ""
        if not line.endswith("\n") or (isinstance(row.get("step"), int) and not 0 <= row["step"] <= step):
            dropped.append(row.get("step", -1))
        else:
            kept.append(line)
    if dropped:
        atomic_write_bytes(path, "".join(kept).encode())
    return dropped


def copy_metrics(source_run: Path, run_dir: Path, step: int) -> int:
    """Start ``run_dir``'s metrics.jsonl with the rows of ``source_run``'s logged at steps 0 to ``step`` (a
    branch's history up to where it branched), written to a temporary and renamed; returns how many.

    Raises:
        OSError: the source's metrics.jsonl exists but cannot be read, or the new one cannot be written.
    """
    path = Path(source_run) / METRICS_FILE
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.is_file() else []
    kept = []
    for line in lines:
        try:
            row_step = json.loads(line).get("step")
        except (json.JSONDecodeError, AttributeError):
            continue  # a torn last line of a killed run
        if line.endswith("\n") and isinstance(row_step, int) and 0 <= row_step <= step:
            kept.append(line)
    atomic_write_bytes(Path(run_dir) / METRICS_FILE, "".join(kept).encode())
    return len(kept)


def describe_rewind(dropped: list[int], step: int) -> str:
    """One line about what :func:`rewind_metrics` dropped ("" when nothing was)."""
    if not dropped:
        return ""
    steps = sorted({s for s in dropped if s >= 0})
    shown = ", ".join(map(str, steps)) if len(steps) <= 6 else f"{steps[0]} to {steps[-1]}"
    torn = dropped.count(-1)
    parts = [f"{len(dropped) - torn} row(s) of steps {shown}"] if steps else []
    parts += [f"{torn} torn line"] if torn else []
    what = " and ".join(parts)
    return (
        f"metrics.jsonl: dropped {what} logged after step {step}, where this run continues "
        "(the steps are trained and logged again)"
    )


class MetricsLog:
    """metrics.jsonl plus the same scalars in TensorBoard, one row per step.

    ``start_step``: the step training continues from. Rows logged after it by an earlier, killed
    attempt are dropped first (:func:`rewind_metrics`; :attr:`dropped` lists their steps) and
    TensorBoard discards its events after it (``purge_step``), so the log equals an uninterrupted
    run's. None: a new log, nothing dropped.

    A write that fails (a full disk, a read-only filesystem) raises :class:`OSError` whose ``filename`` is
    metrics.jsonl or the TensorBoard events file. TensorBoard writes on a thread of its own, which keeps its
    error; the error is raised again by the next :meth:`log`, :meth:`image` or :meth:`flush` (the trainer
    flushes before every checkpoint, so a failure is found before the checkpoint that would cover it).
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, start_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / METRICS_FILE
        self.dropped = rewind_metrics(self.run_dir, start_step) if start_step is not None else []
        try:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise naming(e, self.path) from e
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            _quiet_tensorboard_thread()
            # TensorBoard drops the earlier events whose step is >= purge_step; the row of
            # start_step itself was logged before its checkpoint and stays, hence + 1.
            purge = start_step + 1 if start_step is not None else None
            try:
                self._tb = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge)
            except OSError as e:
                raise naming(e, self.run_dir / "events.out.tfevents.*") from e

    def _events(self) -> str:
        """The TensorBoard events file's name (tensorboard keeps it in a private attribute; a pattern if not)."""
        writer = getattr(self._tb, "file_writer", None)
        name = getattr(getattr(writer, "event_writer", None), "_file_name", None)
        return str(name) if name else str(self.run_dir / "events.out.tfevents.*")

    def log(self, row: dict[str, Any]) -> None:
        try:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
        except OSError as e:
            raise naming(e, self.path) from e
        if self._tb is not None:
            step = row["step"]
            try:
                for key, value in row.items():
                    if key != "step" and isinstance(value, (int, float)):
                        self._tb.add_scalar(key, value, step)
            except OSError as e:
                raise naming(e, self._events()) from e

    def image(self, tag: str, hwc_or_hw, step: int) -> None:
        if self._tb is not None:
            fmt = "HW" if hwc_or_hw.ndim == 2 else "HWC"
            try:
                self._tb.add_image(tag, hwc_or_hw, step, dataformats=fmt)
            except OSError as e:
                raise naming(e, self._events()) from e

    def flush(self) -> None:
        """Put every row logged so far on disk (metrics.jsonl fsynced, TensorBoard's queue written), or raise
        the OSError of the write that failed, naming its file."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            raise naming(e, self.path) from e
        if self._tb is not None:
            try:
                self._tb.flush()
            except OSError as e:
                raise naming(e, self._events()) from e

    def close(self, failed: bool = False) -> None:
        """Flush and close both files. ``failed``: training is already ending with an error, so a second
        failure here (the same full disk) is not raised over it."""
        try:
            try:
                self._file.close()
            except OSError as e:
                raise naming(e, self.path) from e
            if self._tb is not None:
                try:
                    self._tb.close()
                except OSError as e:
                    raise naming(e, self._events()) from e
        except OSError:
            if not failed:
                raise


def _quiet_tensorboard_thread() -> None:
    """Keep Python from printing the traceback of TensorBoard's writer thread when a write of it fails.

    The thread stores its exception and TensorBoard raises it again in the caller's thread at the next
    add_*/flush/close, where :class:`MetricsLog` names the file; the thread's own print was a 76-line
    traceback beside that (issue 26). Only an OSError of that thread is dropped; everything else still goes
    to the previous ``threading.excepthook``."""
    import threading

    previous = threading.excepthook
    if getattr(previous, "advnets_tensorboard", False):
        return

    def hook(args: Any) -> None:
        if type(args.thread).__name__ == "_AsyncWriterThread" and issubclass(args.exc_type, OSError):
            return
        previous(args)

    hook.advnets_tensorboard = True  # type: ignore[attr-defined]
    threading.excepthook = hook
