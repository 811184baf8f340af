"""Validation log-likelihood while training, as the reference code watched it (issue 15).

The reference's MNIST model (github.com/goodfeli/adversarial) logged a Parzen-window estimate on validation images
every epoch (``monitor_ll``: 100 samples, σ = 0.2). With ``train.eval_every`` = E > 0 a run does the same every E
epochs and at its end: :data:`EVAL_SAMPLES` samples of G from one fixed noise batch (the ``validation`` stream of
advnets.train.streams, the same z at every check, so that checks differ only by G), scored on the whole validation
split by advnets.evaluate.parzen, with σ chosen on that split from the protocol's grid (``logspace(-1, 0, 10)``)
or fixed by ``train.eval_sigma``. The result is logged (``valid_parzen_ll``, ``valid_parzen_sigma``; with
``train.eval_metrics`` also the named advnets.evaluate.metrics of the same samples against the validation split,
as ``valid_fd``, ``valid_kid``, ..., so their curves show beside the losses), and when it
is the best so far the step's checkpoint is written and ``checkpoints/best`` names it (swapped atomically after the
checkpoint is complete, as ``latest``). The choice uses validation images only, never test ones; the best so far
is part of every checkpoint, so a resumed run keeps it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from advnets.checkpoint import BEST, CHECKPOINT_DIR
from advnets.evaluate.parzen import DEFAULT_SIGMAS, parzen_log_likelihood, select_sigma
from advnets.io import atomic_write_bytes
from advnets.train.streams import one_off

EVAL_SAMPLES = 1000  # samples of G per check: ten times the reference's 100, a few seconds on full MNIST


class ValidationMonitor:
    """The validation checks of one run: when they are due, what they measure, and the best one so far."""

    def __init__(
        self, valid: torch.Tensor, every: int, sigma: float | None, seed: int, metrics: str = "parzen"
    ) -> None:
        from advnets.evaluate.features import default_extractor, get_extractor
        from advnets.evaluate.metrics import REGISTRY, parse_metrics

        if len(valid) == 0:
            from advnets.errors import AdvnetsError

            raise AdvnetsError("--eval-every needs validation images, and this dataset's validation split is empty")
        self.images = valid.cpu()  # N x C x H x W, for the metrics of train.eval_metrics
        self.valid = valid.reshape(len(valid), -1).double().cpu()
        self.every, self.sigma, self.seed = every, sigma, seed
        # Parzen is measured at every check (it chooses `best`); these are logged beside it. Unknown names fail here,
        # before any training, as a ConfigError naming --eval-metrics' choices.
        self.metrics = tuple(n for n in parse_metrics(metrics, "--eval-metrics") if n != "parzen")
        self._extractor = self._real_features = None  # the validation split's features: computed once, kept
        if any(REGISTRY[n].inputs == "features" for n in self.metrics):  # an unavailable network fails here
            self._extractor = get_extractor(default_extractor(tuple(self.images.shape[1:])))
        self.best: dict[str, Any] | None = None  # {"step", "epoch", "ll", "sigma"} of the best check so far

    def due(self, epoch_before: int, epoch_after: int, done: bool) -> bool:
        """Whether a check falls after a step that went from ``epoch_before`` to ``epoch_after`` completed
        epochs (every ``every`` epochs, and at the end of the run)."""
        return done or epoch_after // self.every > epoch_before // self.every

    def measure(self, trainer: Any) -> dict[str, float]:
        """The validation log-likelihood (nats, mean over the split) of G's samples now, and its σ."""
        gen = one_off(self.seed, "validation")
        images = trainer.sample(EVAL_SAMPLES, generator=gen).cpu()
        samples = images.reshape(EVAL_SAMPLES, -1).double()
        if self.sigma is None:
            chosen = select_sigma(self.valid, samples, DEFAULT_SIGMAS, device="cpu")
            row = {"valid_parzen_ll": chosen["valid_means"][chosen["index"]], "valid_parzen_sigma": chosen["sigma"]}
        else:
            ll = parzen_log_likelihood(self.valid, samples, self.sigma, device="cpu")
            row = {"valid_parzen_ll": float(ll.mean()), "valid_parzen_sigma": self.sigma}
        if self.metrics:
            from advnets.evaluate.metrics import REGISTRY, evaluate_metrics

            if self._extractor is not None and self._real_features is None:  # ~6 s for MNIST's 10,000: once
                self._real_features = self._extractor(self.images)
            kw = {"features": self._extractor, "real_features": self._real_features}
            scores = evaluate_metrics(self.images, images.float(), self.metrics, **kw)
            row.update({f"valid_{k}": scores[k] for n in self.metrics for k in REGISTRY[n].keys})
        return row

    def check(self, trainer: Any, run_dir: Path | None, log) -> dict[str, float]:
        """Measure, log, and keep the checkpoint of a new best (written by every rank's ``trainer.save``, which
        coordinates them: the check is deterministic, so every rank decides alike). Returns the logged row."""
        row = {"step": trainer.step, "epoch": trainer.epoch, **self.measure(trainer)}
        improved = self.best is None or row["valid_parzen_ll"] > self.best["ll"]
        if improved:
            self.best = {
                "step": trainer.step,
                "epoch": trainer.epoch,
                "ll": row["valid_parzen_ll"],
                "sigma": row["valid_parzen_sigma"],
            }
        row["valid_parzen_best"] = self.best["ll"]
        if log is not None:
            log.log(row)
        if improved and run_dir is not None:
            if log is not None:
                log.flush()  # as before every checkpoint: a failed log write is found before it
            path = trainer.save(run_dir)
            if trainer.parallel.writes_files:
                atomic_write_bytes(Path(run_dir) / CHECKPOINT_DIR / BEST, (path.name + "\n").encode())
        return row

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.best is None else dict(self.best)

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        self.best = None if state is None else dict(state)
