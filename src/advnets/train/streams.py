"""The run's named random streams and its position in the data: the one list of both, checkpointed.

Every random draw of training comes from a generator seeded from ``train.seed``, so that a run is a function of
its config, and a resumed run continues the very same streams (their states are in every checkpoint under
``rng``). The streams, with the offset added to the seed (the values of the first versions, kept so that old
checkpoints and published numbers stay reproducible) and where each draws:

* ``data`` (+1, CPU): the per-epoch permutation of the training split (the same on every rank);
* ``noise`` (+2, training device): G's z (Algorithm 1's "sample minibatch of m noise samples");
* ``fixed`` (+3, CPU): the progress grid's noise (drawn once at the start, not checkpointed);
* ``dropout`` (+4, training device): D's dropout masks (the paper trains D with dropout, §5);
* ``monitor`` (+5, CPU): the collapse monitor's fixed noise and real rows (drawn once, not checkpointed);
* ``labels`` (+6, training device): class labels of generated rows (conditional nets, §7.1);
* ``masks`` (+7, CPU): inpainting masks of real rows (§7.3);
* ``instance_noise`` (+8, training device): Gaussian noise added to D's input (train.instance_noise).
* ``validation`` (+9, CPU): the noise of the validation checks (train.eval_every; drawn afresh, alike, each time).

In a data-parallel run every rank draws the same data order; the others are drawn per rank (rank 0 keeps the
seeds above, see :func:`stream_seed`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

# name: (seed offset, whether it lives on the training device rather than the CPU).
STREAMS: dict[str, tuple[int, bool]] = {
    "data": (1, False),
    "noise": (2, True),
    "fixed": (3, False),
    "dropout": (4, True),
    "monitor": (5, False),
    "labels": (6, True),
    "masks": (7, False),
    "instance_noise": (8, True),
    "validation": (9, False),
}
#: The streams a checkpoint carries (the others are drawn from once, at the start).
CHECKPOINTED = ("data", "noise", "dropout", "labels", "masks", "instance_noise")
#: The streams each rank of a data-parallel run draws for itself (all but the data order).
PER_RANK = tuple(name for name in CHECKPOINTED if name != "data")


def stream_seed(seed: int, stream: str, rank: int = 0, step: int = 0) -> int:
    """The seed of a stream. Rank 0 at the start keeps the single-process seed (``seed`` + the stream's offset, so
    a 1-process group trains exactly like a plain run); every other (rank, step) gets a 64-bit seed hashed from
    (seed, stream, rank, step), unrelated to any other run's seeds."""
    if rank == 0 and step == 0:
        return seed + STREAMS[stream][0]
    digest = hashlib.sha256(f"advnets/{stream}/seed={seed}/rank={rank}/step={step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # non-negative, below 2**63


def one_off(seed: int, name: str) -> torch.Generator:
    """A CPU generator for a stream drawn from once at the start ("fixed", "monitor")."""
    return torch.Generator(device="cpu").manual_seed(stream_seed(seed, name))


class Streams:
    """The checkpointed generators of one process, by name (``streams.noise``, ``streams.dropout``, ...)."""

    def __init__(self, seed: int, device: torch.device, rank: int = 0) -> None:
        """The streams of ``rank`` (0 alone) at the start of a run: the data order is every rank's, the others
        this rank's own (:func:`stream_seed`)."""
        self.seed = seed
        self.generators: dict[str, torch.Generator] = {}
        for name in CHECKPOINTED:
            on_device = STREAMS[name][1]
            self.generators[name] = torch.Generator(device=device if on_device else "cpu").manual_seed(
                stream_seed(seed, name, rank if name in PER_RANK else 0)
            )

    def __getattr__(self, name: str) -> torch.Generator:
        try:
            return self.__dict__["generators"][name]
        except KeyError:
            raise AttributeError(name) from None

    def reseed_for_rank(self, rank: int, step: int) -> None:
        """Fresh per-rank streams for ``rank`` from ``step`` on (rank 0 at step 0: the single-process seeds)."""
        for name in PER_RANK:
            self.generators[name].manual_seed(stream_seed(self.seed, name, rank, step))

    def state_dict(self, names: tuple[str, ...] = CHECKPOINTED) -> dict[str, torch.Tensor]:
        return {name: self.generators[name].get_state() for name in names}

    def load_state_dict(self, states: dict[str, Any]) -> None:
        """Set every stream that ``states`` holds (checkpoints of older versions lack some)."""
        for name, gen in self.generators.items():
            if name in states:
                gen.set_state(states[name])


class DataOrder:
    """Where the run stands in the training split: minibatches are index slices of a per-epoch permutation.

    With ``world_size`` N > 1 a step takes a global batch of N x m rows of the permutation and this rank (r) its
    rows r*m .. (r+1)*m - 1; the examples and their order are those of one process with batch N x m. Checkpoints
    hold the global permutation and the position in it counted in m-row batches, whatever N was."""

    def __init__(self, n: int, m: int, generator: torch.Generator, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.m, self.generator = n, m, generator
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = n // (world_size * m)  # the last partial (global) batch is dropped
        self.epoch = 0  # completed passes over the training split
        self.batch_in_epoch = 0  # global batches taken in this epoch
        self.global_perm = torch.randperm(n, generator=generator)
        self.perm = self._shard(self.global_perm)

    def _shard(self, perm: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a permutation, in order: m of each global batch of N x m."""
        if self.world_size == 1:
            return perm
        m, n = self.m, self.world_size
        batches = len(perm) // (n * m)
        return perm[: batches * n * m].view(batches, n, m)[:, self.rank].reshape(-1)

    def _new_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        self.global_perm = torch.randperm(self.n, generator=self.generator)
        self.perm = self._shard(self.global_perm)

    def next_indices(self) -> torch.Tensor:
        """The training-split indices of this rank's next minibatch of m; an epoch's end starts a new one at once
        (so that the schedules see it)."""
        m = self.m
        idx = self.perm[self.batch_in_epoch * m : (self.batch_in_epoch + 1) * m]
        self.batch_in_epoch += 1
        if self.batch_in_epoch == self.batches_per_epoch:
            self._new_epoch()
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch * self.world_size, "perm": self.global_perm}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The stored position, rounded down to a whole global batch when N differs from the saving run's (up to
        N x m - 1 examples of that epoch are then seen again)."""
        self.epoch = int(state["epoch"])
        self.global_perm = state["perm"].to(torch.int64)
        self.batch_in_epoch = int(state["batch_in_epoch"]) // self.world_size
        self.perm = self._shard(self.global_perm)
        if self.batch_in_epoch >= self.batches_per_epoch:  # past this world size's last whole batch
            self._new_epoch()
