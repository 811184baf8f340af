"""Training adversarial nets: Algorithm 1 of Goodfellow et al. 2014 (paper §3) and its bookkeeping.

One *step* is one iteration of Algorithm 1's outer loop: k discriminator updates, each on a fresh minibatch of m
examples and m noise vectors, then one generator update on m fresh noise vectors ("alternating"). The reference
code instead updates D and G in one step from the same batch of G samples ("simultaneous", k = 1); both are
available by name.

Data live on the device as one tensor and minibatches are index slices of a per-epoch permutation (no
DataLoader). All randomness flows from the run's seed through named generators whose states are checkpointed, so
a resumed run continues the same streams.

The rooms:

* :mod:`advnets.train.algorithm`: Algorithm 1 in one place: the k-loop (:func:`~advnets.train.algorithm.iteration`),
  the D step, the G step and the reference code's simultaneous step, line by line beside the pseudo-code, against
  a typed contract of what the players provide (``Players``, ``Iteration``); the lr and momentum schedules (the
  reference code, github.com/goodfeli/adversarial).
* :mod:`advnets.train.streams`: the named, seeded random streams (one list) and the position in the data.
* :mod:`advnets.train.loop`: fit(): when to log, sample, check for collapse and checkpoint; signals; the
  divergence guard.
* :mod:`advnets.train.parallel`: how processes coordinate (one process here; advnets.distributed for N), an object
  the Trainer is given.
* :mod:`advnets.train.trainer`: :class:`Trainer`, which composes them with the nets and advnets.conditioning.
"""

from advnets.train.algorithm import TrainingDiverged, lr_at, momentum_at
from advnets.train.loop import TrainingCollapsed, TrainingInterrupted
from advnets.train.trainer import GRID_SIZE, Trainer

__all__ = [
    "GRID_SIZE",
    "Trainer",
    "TrainingCollapsed",
    "TrainingDiverged",
    "TrainingInterrupted",
    "lr_at",
    "momentum_at",
]
