"""How the processes of a run coordinate: here, the single process; advnets.distributed.DataParallel for N.

A Trainer is given one of these and asks it, rather than deciding itself, every question whose answer depends
on there being other processes: which modules a backward pass reduces, whether every rank saw finite values,
the logged means, whether a stop was asked for, who writes files, what a checkpoint holds of each rank. In one
process every answer is the plain one below; nothing here talks to another process.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


class StopOnSignal:
    """While active, SIGINT/SIGTERM only ask the loop to stop after the current
    step (it then checkpoints and exits); a second SIGINT aborts at once, or,
    while a checkpoint is being written (:meth:`writing`), as soon as it is
    whole. Only the main thread can own signal handlers, elsewhere this does
    nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._writing = False
        self._abort_when_written = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            self._second_sigint()
        self.signum = signum

    def _second_sigint(self) -> None:
        """Ctrl-C pressed again: abort now, unless a checkpoint is being written (then right after it)."""
        if self._writing:
            self._abort_when_written = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A block that writes a checkpoint: a second Ctrl-C inside it aborts only once the block is done, so
        that the checkpoint, its digest and ``latest`` are written together (an abort between them would leave
        ``latest`` on the previous checkpoint, losing the steps since)."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        if self._abort_when_written:
            raise KeyboardInterrupt

    def __enter__(self) -> StopOnSignal:
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


@dataclass
class Running:
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

    def state_dict(self) -> dict[str, Any]:
        """The sums so far, for a checkpoint between two log rows: resumed, the next row is the one an
        uninterrupted run logs (issue 18)."""
        return {"sums": {k: v.cpu() for k, v in self.sums.items()}, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any] | None, device: torch.device) -> None:
        """Continue the sums of :meth:`state_dict` (None: from nothing, as after an older checkpoint)."""
        state = state or {"sums": {}, "steps": 0}
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
        self.steps = int(state["steps"])


class MonitorOnRank0:
    """Stands in for the collapse monitor on ranks other than 0 of a data-parallel run: rank 0 checks G's samples
    and tells the others its verdict (``collapse_verdict``); nothing of it is checkpointed."""

    def state_dict(self) -> None:
        return None

    def load_state_dict(self, state: Any) -> None:
        pass


class SingleProcess:
    """One process: it is rank 0 of 1, writes every file, and decides alone."""

    rank = 0
    world_size = 1
    device: torch.device | None = None  # this process's device (None: the config's train.device)

    @property
    def writes_files(self) -> bool:
        """Whether this process writes the run directory (metrics, grids, checkpoints, config.json)."""
        return self.rank == 0

    def reduced(self, net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module a backward pass through ``net`` reduces across processes: ``net`` itself here."""
        return net

    def all_finite(self, values: tuple[torch.Tensor, ...]) -> bool:
        """Whether every value is finite (on every rank): one host sync per value."""
        return all(bool(torch.isfinite(v).all()) for v in values)

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank (a decision every rank must take together)."""
        return flag

    def earliest_bad_step(self, first_bad: torch.Tensor) -> torch.Tensor:
        """The divergence guard's first non-finite steps (-1: none), the earliest of every rank."""
        return first_bad

    def stop_on_signal(self) -> StopOnSignal:
        return StopOnSignal()

    def running(self, device: torch.device) -> Running:
        return Running()

    def collapse_verdict(self, check: Callable[[], None]) -> None:
        """Run the collapse monitor's ``check`` (which raises TrainingCollapsed to stop) where it runs."""
        check()

    def announce(self, cfg: Any) -> None:
        """A line for the user at the start of fit(), if this coordination has something to say."""

    def resume_hint(self, run_dir: Path) -> str:
        return ""

    def save(self, trainer: Any, run_dir: Path) -> Path:
        """Write the trainer's checkpoint into ``run_dir`` and then, ``latest`` pointing at it, delete the ones
        ``train.keep_checkpoints`` no longer keeps; returns its path."""
        from advnets.checkpoint import save_checkpoint
        from advnets.runs import prune_run_checkpoints

        path = save_checkpoint(run_dir, trainer.state_dict())
        t, monitor = trainer.cfg.train, trainer.monitor
        healthy = getattr(monitor, "last_healthy_step", None) if t.on_collapse == "stop" else None
        prune_run_checkpoints(run_dir, t.keep_checkpoints, healthy_step=healthy)
        return path

    def annotate_state(self, trainer: Any, state: dict[str, Any]) -> None:
        """Add what a checkpoint holds of the other ranks (nothing here)."""

    def load_rank_state(self, trainer: Any, state: dict[str, Any]) -> None:
        """Restore this rank's own part of a checkpoint (here all of it came with the common part)."""
