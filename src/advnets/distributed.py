"""Data-parallel training on torch.distributed: DistributedDataParallel under torchrun.

``torchrun --nproc-per-node N -m advnets train ...`` (or ``advnets train --nproc N ...``,
which runs torchrun itself) starts N processes. Each one builds the same G and D from
the seed and wraps both in DistributedDataParallel (gloo on CPU, NCCL on CUDA, one GPU
per local rank); DDP all-reduces (averages) their gradients during backward, so every
rank applies the same update and the weights never drift apart.

The pieces, and why each one is there:

* Data: every rank draws the same per-epoch permutation from the seed and takes its m
  rows of each global batch of N x m (rank r: rows r*m .. (r+1)*m - 1 of it). The
  examples, and their order, are those of a single process with batch N x m; a step
  consumes N x m examples, and an epoch has len(train) // (N x m) steps.
* Noise, D's dropout masks, and in conditional nets the labels of generated rows and the
  inpainting masks: a stream per rank. Rank 0 keeps the single-process seeds; the
  others' seeds are hashed from (seed, stream, rank).
* Which gradients are reduced: the training steps call ``g_train`` / ``d_train`` (here
  the DDP wrappers) for the network that a backward pass updates, and the plain module
  for the other one (G under no_grad in D's step; D, its weights frozen, in G's step),
  so no gradient of a network that is not being updated is all-reduced, and
  ``find_unused_parameters`` stays off: a step that left a parameter without gradient
  would be an error, not papered over.
* Decisions all ranks must share: a signal can reach the ranks at different moments, so
  the stop flag is all-reduced once per step (and after each of the k D updates); the
  divergence guard's flags are all-reduced before it decides; the collapse monitor runs
  on rank 0, which broadcasts its verdict; with --skip-nonfinite the skip decision is
  all-reduced. The logged means are averaged over ranks.
* Files: only rank 0 writes (metrics, TensorBoard, sample grids, checkpoints). A
  checkpoint is written after a barrier, holds rank 0's state in the single-process
  format (position in the permutation counted in m-row batches, the global
  permutation), plus every rank's own streams (and inpainting batch) and the world
  size, and the other ranks wait until it is complete.

Resuming: a checkpoint from N processes resumes exactly on N processes. On another
number of processes, or from a single-process checkpoint (and vice versa), weights,
optimiser state, step and epoch counters (so the lr and momentum schedules), the data
permutation and rank 0's streams carry over; the position in the epoch is rounded down
to a whole new global batch (up to N x m - 1 examples of that epoch are seen again),
the other ranks' streams are re-seeded from (seed, rank, step), and the run still ends
after --epochs epochs.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout
from torch.nn.parallel import DistributedDataParallel

from advnets.config import RunConfig
from advnets.devices import resolve_device
from advnets.errors import AdvnetsError, CheckpointError
from advnets.train import Trainer, TrainingCollapsed
from advnets.train.parallel import Running, SingleProcess, StopOnSignal
from advnets.train.streams import PER_RANK, stream_seed  # noqa: F401 (stream_seed: imported from here by tests)

LOOPBACK = "127.0.0.1"
# The scalars of Trainer.train_step's output, averaged over ranks for the log (a fixed
# order: every rank must send the same vector, even one that has logged no step).
LOGGED = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm", "d_real", "d_fake", "value")


# ----- the process group ------------------------------------------------------------------------
@dataclass(frozen=True)
class TorchrunEnv:
    """What torchrun tells each process it starts."""

    rank: int
    world_size: int
    local_rank: int
    restart_count: int  # how often torchrun has restarted the group (--max-restarts)


def torchrun_env() -> TorchrunEnv | None:
    """This process's place in a torchrun group, or None when torchrun did not start it."""
    if not all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        return None
    return TorchrunEnv(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ["LOCAL_RANK"]),
        restart_count=int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
    )


@dataclass(frozen=True)
class Group:
    """The joined process group: this rank, its device, and the group for host-side decisions."""

    rank: int
    world_size: int
    device: torch.device
    backend: str
    # Stop flags, barriers and small objects go through gloo on the CPU, so that with NCCL
    # they never wait for the GPU's queue of work (the default group when that is gloo).
    control: Any


def join(env: TorchrunEnv, device_name: str = "auto") -> Group:
    """Join the process group of the processes torchrun started: NCCL with one GPU per local
    rank when the device is CUDA, gloo on the CPU otherwise."""
    device = resolve_device(device_name)
    if device.type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise AdvnetsError(
                f"local rank {env.local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                "start at most that many processes per node"
            )
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise AdvnetsError(f"--device {device.type}: data-parallel training runs on CPU (gloo) or CUDA (NCCL)")
    if not dist.is_initialized():
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # torchrun's agent serves the store. Under this attempt's own prefix: with a static
            # rendezvous (advnets train --nproc) the store outlives a restart of the group, and the
            # new group must not read the dead one's addresses.
            store = dist.TCPStore(
                os.environ["MASTER_ADDR"],
                int(os.environ["MASTER_PORT"]),
                world_size=env.world_size,
                is_master=False,
                timeout=default_pg_timeout,
            )
            store = dist.PrefixStore(f"advnets/attempt-{env.restart_count}", store)
            dist.init_process_group(backend, store=store, rank=env.rank, world_size=env.world_size)
        else:
            dist.init_process_group(backend)  # env://, rank 0 serving the store
        atexit.register(leave)  # tear the group down before exit (NCCL warns otherwise)
    control = dist.new_group(backend="gloo") if backend == "nccl" else dist.group.WORLD
    return Group(env.rank, env.world_size, device, backend, control)


def leave() -> None:
    """Tear the group down at exit, together with the other ranks."""
    if dist.is_initialized():
        # A Trainer sits in a reference cycle (its conditioning calls back into it), so its DDP wrappers, which
        # hold the process group, are freed by the cyclic collector whenever it runs, possibly during the
        # interpreter's shutdown, after the group is gone: gloo's worker threads are then destroyed still
        # joinable and the process aborts ("terminate called without an active exception", exit -6, seen twice
        # at the end of a finished two-process run). Collected here, they go while the group is whole.
        gc.collect()
        try:
            # Leave together: a rank that tears its group down while another still
            # talks to it can abort that one ("terminate called ...", seen in CI).
            dist.barrier()
        except Exception:  # a peer is already gone (its failure is reported by torchrun)
            pass
        finally:
            dist.destroy_process_group()


# ----- the coordination of the ranks -----------------------------------------------------------------
class _GroupStop(StopOnSignal):
    """SIGINT/SIGTERM as for one process, but the stop flag changes only in poll(), where
    the ranks agree on it (the highest signal number any rank received), so that every rank
    stops after the same step and none waits forever in a collective the others skipped."""

    def __init__(self, group: Any) -> None:
        super().__init__()
        self.received: int | None = None  # what reached this process, not yet agreed
        self._group = group

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            self._second_sigint()
        self.received = signum

    def poll(self) -> bool:
        flag = torch.tensor([self.received or 0], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
        if self.signum is None and int(flag) != 0:
            self.signum = int(flag)
        return self.signum is not None


class _GroupRunning(Running):
    """The on-device sums between two log rows (advnets.train.parallel.Running), averaged over all ranks
    when read: one all-reduce per log row. Each rank checkpoints its own sums (DataParallel._rank_state)."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device

    def add(self, **values: torch.Tensor) -> None:
        for k, v in values.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.steps += 1

    def means(self) -> dict[str, float]:
        zero = torch.zeros((), device=self.device)
        parts = [self.sums.get(k, zero).float() for k in LOGGED]
        totals = torch.stack([*parts, torch.tensor(float(self.steps), device=self.device)])
        dist.all_reduce(totals)  # sums over ranks of the sums and of the step counts
        values = totals.cpu().tolist()
        steps = values.pop()
        return {k: v / steps for k, v in zip(LOGGED, values, strict=True)} if steps else {}


class DataParallel(SingleProcess):
    """The coordination of one rank of a data-parallel run (see the module docstring), given to a Trainer as its
    ``parallel``."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self.rank, self.world_size, self.device = group.rank, group.world_size, group.device
        self._rank_states: list[dict[str, Any]] | None = None  # gathered by save() for annotate_state()

    def reduced(self, net: torch.nn.Module, device: torch.device) -> DistributedDataParallel:
        """``net`` in DistributedDataParallel: its backward pass all-reduces (averages) the gradients. DDP starts
        by broadcasting rank 0's weights (every rank built the same ones from the seed; neither net has buffers
        to keep in sync); a checkpoint loaded later is loaded in place into the same parameters on every rank."""
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=False)

    def all_finite(self, values: tuple[torch.Tensor, ...]) -> bool:
        """--skip-nonfinite: the ranks skip an update together (the losses differ between
        ranks; the reduced gradients do not)."""
        finite = torch.stack([torch.isfinite(v).all() for v in values]).all().to(torch.int32).reshape(1)
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(int(finite))

    def any_rank(self, flag: bool) -> bool:
        # Each rank's own clock says when --checkpoint-minutes is up; they save together.
        flags = torch.tensor([int(flag)], dtype=torch.int32)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.group.control)
        return bool(int(flags))

    def earliest_bad_step(self, first_bad: torch.Tensor) -> torch.Tensor:
        # The earliest bad step of any rank, so that all ranks raise (or go on) together.
        none = torch.iinfo(torch.long).max
        earliest = torch.where(first_bad < 0, none, first_bad)
        dist.all_reduce(earliest, op=dist.ReduceOp.MIN)
        return torch.where(earliest == none, -1, earliest)

    def stop_on_signal(self) -> StopOnSignal:
        return _GroupStop(self.group.control)

    def running(self, device: torch.device) -> _GroupRunning:
        return _GroupRunning(device)

    def collapse_verdict(self, check) -> None:
        verdict: list[str | None] = [None]
        if self.rank == 0:
            try:
                check()
            except TrainingCollapsed as e:
                verdict = [str(e)]
        dist.broadcast_object_list(verdict, src=0, group=self.group.control)
        if verdict[0] is not None:
            raise TrainingCollapsed(verdict[0])

    def announce(self, cfg: RunConfig) -> None:
        if self.rank == 0:
            m = cfg.train.batch_size
            print(
                f"data-parallel: {self.world_size} processes ({self.group.backend}), global batch "
                f"{self.world_size} x {m} = {self.world_size * m}",
                file=sys.stderr,
            )

    def resume_hint(self, run_dir: Path) -> str:
        n = self.world_size
        return f"; on {n} processes as before: advnets train --nproc {n} --out {run_dir} --resume"

    # ----- checkpoints --------------------------------------------------------------------------------
    def _rank_state(self, trainer: Trainer) -> dict[str, Any]:
        """What only this rank has: its streams' states, its sums of the logged values since the last row,
        and when inpainting the real batch (with its masks) that its next G step completes."""
        return {
            **trainer.streams.state_dict(PER_RANK),
            "inpaint_context": trainer.conditioning.state_dict(),
            "running": trainer.running.state_dict(),
        }

    def annotate_state(self, trainer: Trainer, state: dict[str, Any]) -> None:
        """Rank 0's state is in the single-process format (the global permutation and the position in it in m-row
        batches); add the world size and, when save() gathered them, every rank's own state."""
        state["world_size"] = self.world_size
        if self._rank_states is not None:
            state["rng"]["ranks"] = self._rank_states

    def load_rank_state(self, trainer: Trainer, state: dict[str, Any]) -> None:
        ranks = state["rng"].get("ranks")
        if ranks is not None and len(ranks) == self.world_size:  # saved by as many processes: exact
            mine = ranks[self.rank]
            trainer.streams.load_state_dict({k: v for k, v in mine.items() if k in PER_RANK})
            trainer.conditioning.load_state_dict(mine.get("inpaint_context"))
            trainer.running.load_state_dict(mine.get("running"), trainer.device)
        elif self.rank > 0:  # saved by another number of processes: fresh streams from here on
            trainer.streams.reseed_for_rank(self.rank, step=trainer.step)
            trainer.running.load_state_dict(None, trainer.device)  # rank 0's sums stand for the rows so far

    def save(self, trainer: Trainer, run_dir: Path) -> Path:
        """Rank 0 writes the checkpoint after a barrier; every rank returns once it is complete
        (or raises, if rank 0 could not write it)."""
        ctl = self.group.control
        dist.barrier(group=ctl)  # every rank has finished the step being saved
        ranks: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        dist.gather_object(self._rank_state(trainer), ranks, dst=0, group=ctl)
        outcome: list[Any] = [None]
        error: CheckpointError | None = None
        if self.rank == 0:
            self._rank_states = ranks
            try:
                outcome = [("saved", str(super().save(trainer, run_dir)))]
            except CheckpointError as e:
                error, outcome = e, [("failed", str(e))]
            finally:
                self._rank_states = None
        dist.broadcast_object_list(outcome, src=0, group=ctl)  # the others wait here until it is written
        what, text = outcome[0]
        if what == "failed":
            raise error if error is not None else CheckpointError(f"rank 0 could not write a checkpoint: {text}")
        return Path(text)


def rank_trainer(cfg: RunConfig, dataset: Any, group: Group, classifier: Any = None) -> Trainer:
    """This rank's Trainer of a data-parallel run: a plain Trainer on the rank's device, given a
    :class:`DataParallel` as its ``parallel`` (see the module docstring)."""
    return Trainer(cfg, dataset, group.device, parallel=DataParallel(group), classifier=classifier)


# ----- `advnets train --nproc N`: torchrun on this machine, bound to loopback --------------------
_LAUNCHER_OPTIONS = ("--nproc", "--max-restarts")


def without_launcher_options(argv: list[str]) -> list[str]:
    """argv less --nproc N and --max-restarts R (also as --opt=V or an abbreviation argparse
    accepted), for the processes torchrun starts."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        name = token.split("=", 1)[0]
        if len(name) > 3 and any(option.startswith(name) for option in _LAUNCHER_OPTIONS):
            skip = "=" not in token
            continue
        out.append(token)
    return out


def _loopback_interface() -> str | None:
    names = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    return names[0] if names else None


def run_torchrun(nproc: int, max_restarts: int, target: list[str]) -> int:
    """Run torchrun's own launcher (torch.distributed.run) in this process for ``nproc`` workers
    on this machine running ``target`` (e.g. ["-m", "advnets", "train", ...]); returns an exit
    code: 0, the first failed worker's, or 128 + the signal that stopped the launcher.

    c10d has no authentication, so nothing may listen beyond this machine. torchrun's own
    --standalone store listens on every interface; instead this binds a socket to 127.0.0.1,
    serves a multi-tenant TCPStore on it, and points torchrun's static rendezvous at that
    address and port: torchrun's store, multi-tenant too, then shares this server rather than
    opening its own, and the workers connect to it (torchrun's agent store). gloo's and NCCL's
    own sockets are kept on the loopback interface unless GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME
    say otherwise."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    store = dist.TCPStore(  # noqa: F841 (kept alive: torchrun's store shares its server)
        LOOPBACK, port, is_master=True, multi_tenant=True, master_listen_fd=sock.detach(), wait_for_workers=False
    )
    interface = _loopback_interface()
    if interface is not None:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", interface)
    options = ["--nnodes", "1", "--node-rank", "0", "--nproc-per-node", str(nproc), "--max-restarts", str(max_restarts)]
    rendezvous = ["--rdzv-backend", "static", "--master-addr", LOOPBACK, "--master-port", str(port)]
    try:
        torchrun([*options, *rendezvous, *target])
    except SignalException as e:  # torchrun has passed the signal on to the workers and waited for them
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        _, failure = e.get_first_failure()
        code = failure.exitcode
        return 128 - code if code < 0 else code  # a negative exit code is the signal that killed the worker
    return 0
