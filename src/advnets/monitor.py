"""Watching for mode collapse while training (the paper's "Helvetica scenario", §6).

Every ``train.monitor_every`` steps the trainer asks a :class:`CollapseMonitor`
to look at G: it draws a fixed batch of noise (the same at every check, so the
numbers are comparable from check to check) through G and computes

* ``diversity``: the samples' mean pairwise distance over that of a fixed batch
  of real images (about 1 when G is as varied as the data, 0 when collapsed);
* ``near_duplicates``: the fraction of samples whose nearest other sample is
  much closer than real images ever are to each other;
* for labelled digit data, with ``train.monitor_classes``: the number of digit
  classes the cached classifier finds among the samples, the entropy of that
  histogram and the "MNIST score" (advnets.evaluate.classifier).

These and D's mean outputs go to :class:`advnets.evaluate.diversity.CollapseDetector`,
which returns a warning when low diversity or "D rejects everything" persists
for several checks. A GAN starts collapsed: G's first samples are all close to
the data's mean image (on embedded MNIST the mnist preset's diversity is about
0.1 at step 500 and 0.4 at step 1000 of 4000 in runs that end healthy). So the
detector only judges once G has been diverse (ratio at or above the
threshold) or ``warmup_steps`` have passed, whichever comes first; the
trainer sets that to a quarter of the run. The checks cost one G forward of ``MONITOR_BATCH`` rows and
an O(N²·d) distance computation (a few ms to tens of ms on a CPU).
"""

from __future__ import annotations

from typing import Any

import torch

from advnets.evaluate.diversity import CollapseDetector, diversity_ratio, near_duplicate_fraction

MONITOR_BATCH = 500  # samples per check: enough for stable distances, cheap to compare


class CollapseMonitor:
    """Fixed noise, a fixed real batch, and the detector's state across checks."""

    def __init__(
        self,
        real: torch.Tensor,
        noise: torch.Tensor,
        classifier: Any | None = None,
        detector: CollapseDetector | None = None,
        warmup_steps: int = 0,
    ) -> None:
        n = min(len(real), len(noise))
        # Compare equally large batches: nearest-neighbour distances shrink with N.
        self.real = real[:n].reshape(n, -1).detach().cpu().double().numpy()
        self.noise = noise[:n]
        self.classifier = classifier
        self.detector = detector or CollapseDetector()
        self.warmup_steps = warmup_steps
        self.armed = False  # whether the detector judges yet (see the module docstring)
        self.last_healthy_step: int | None = None  # the last check where no condition held

    @torch.no_grad()
    def check(self, step: int, g: torch.nn.Module, image_shape: tuple[int, ...], d_real: float, d_fake: float):
        """Statistics of G's samples at ``step``; returns (metrics dict, warning message or None)."""
        was_training = g.training
        g.eval()
        try:
            samples = g(self.noise).detach().cpu()
        finally:
            g.train(was_training)
        flat = samples.reshape(len(samples), -1).double().numpy()
        metrics: dict[str, float] = {}
        if torch.isfinite(samples).all():
            metrics["diversity"] = diversity_ratio(flat, self.real)
            metrics["near_duplicates"] = near_duplicate_fraction(flat, real=self.real)
            if self.classifier is not None:
                from advnets.evaluate.classifier import class_coverage

                cov = class_coverage(self.classifier, samples.reshape(len(samples), *image_shape))
                metrics.update(
                    classes_covered=cov["classes_covered"], class_entropy=cov["entropy"], mnist_score=cov["mnist_score"]
                )
        diverse = metrics.get("diversity", 0.0) >= self.detector.min_diversity
        self.armed = self.armed or diverse or step >= self.warmup_steps
        if not self.armed:
            return metrics, None
        warning = self.detector.update(step, metrics.get("diversity"), d_real=d_real, d_fake=d_fake)
        if self.detector.healthy:
            self.last_healthy_step = step
        return metrics, warning

    def state_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector.state_dict(),
            "armed": self.armed,
            "last_healthy_step": self.last_healthy_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.detector.load_state_dict(state["detector"])
        self.armed = bool(state["armed"])
        self.last_healthy_step = state["last_healthy_step"]


def digit_classifier(dataset: Any, device: torch.device | str = "cpu") -> Any:
    """The cached digit classifier for ``train.monitor_classes`` (advnets.evaluate.classifier; the first use
    trains it, about a minute on a CPU), to give to ``Trainer(..., classifier=...)``. Raises AdvnetsError for
    data without labels."""
    from advnets.data.fetch import data_root
    from advnets.errors import AdvnetsError
    from advnets.evaluate.classifier import load_or_train_classifier

    if dataset.train_labels is None:
        raise AdvnetsError(f"--monitor-classes needs labelled digit data; {dataset.name} has no labels")
    return load_or_train_classifier(dataset, data_root() / "classifiers", device=device)
