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

These and D's mean outputs go to :class:`CollapseDetector`,
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

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from advnets.errors import DataError
from advnets.evaluate.diversity import diversity_ratio, finite_number, near_duplicate_fraction

MONITOR_BATCH = 500  # samples per check: enough for stable distances, cheap to compare


# What the stability benchmark measured (benchmarks/RESULTS.md, issue 10), for the warnings:
# on embedded MNIST, the paper's recipe collapsed in about 1 seed of 5, D at twice G's rate
# with instance noise in none of 15, while a slower D or label smoothing collapsed more often.
MEASURED_D_LR_SCALE = 2.0
MEASURED_INSTANCE_NOISE = 0.1
_MEASURED = "no collapse in 15 seeds on MNIST"


def collapse_advice(d_lr_scale: float = 1.0, instance_noise: float = 0.0) -> str:
    """What a collapse warning recommends, given the run's ``optim.d_lr_scale`` and ``train.instance_noise``.

    A pure function of the run's configuration (issue 18): it recommends only the
    measured remedy's options (``--d-lr-scale 2 --instance-noise 0.1``) that the run
    does not already use, naming the run's own value where it differs from the
    paper's, and when the run already uses both it says so and points to what else
    there is to try. The defaults (1, 0) are the paper's recipe.
    """
    # option -> (the measured value, this run's value, the paper's value)
    remedy = {
        "--d-lr-scale": (MEASURED_D_LR_SCALE, float(d_lr_scale), 1.0),
        "--instance-noise": (MEASURED_INSTANCE_NOISE, float(instance_noise), 0.0),
    }
    used = [opt for opt, (measured, run, _) in remedy.items() if math.isclose(run, measured)]
    todo = [opt for opt in remedy if opt not in used]
    if not todo:
        return (
            "This run already uses the remedy measured in advnets' stability benchmark (--d-lr-scale 2 "
            f"--instance-noise 0.1; {_MEASURED}, though 1 run in 5 covered only 8 classes). Try another --seed, "
            "or resume from an earlier checkpoint; docs/stability.md ('When training collapses') has the measured "
            "numbers of every option tried."
        )
    if used:
        head = (
            f"This run already uses {used[0]} {remedy[used[0]][0]:g}; advnets' stability benchmark measured it "
            f"together with {todo[0]} {remedy[todo[0]][0]:g} ({_MEASURED})."
        )
    else:
        head = (
            "What helped most in advnets' stability benchmark: D at twice G's learning rate with instance noise "
            f"(--d-lr-scale 2 --instance-noise 0.1; {_MEASURED}); a slower D and label smoothing made collapse "
            "more likely."
        )
    options = " ".join(f"{opt} {remedy[opt][0]:g}" for opt in todo)
    differs = [f"{opt} {remedy[opt][1]:g}" for opt in todo if not math.isclose(remedy[opt][1], remedy[opt][2])]
    note = f" (this run has {', '.join(differs)})" if differs else ""
    return f"{head} Resume from an earlier checkpoint with {options}{note}, or try another seed."


@dataclass
class CollapseDetector:
    """Warns when collapse statistics stay bad for ``window`` consecutive checks.

    Feed it one call of :meth:`update` per check (every N training steps). Two
    conditions are tracked, each over consecutive checks:

    * **low diversity**: ``diversity_ratio < min_diversity`` (default 0.3: the
      samples are less than a third as spread out as the data, about half the
      spread of the narrowest single digit class; a healthy generator stays
      near 1, one collapsed onto a few images near 0);
    * **D wins**: mean ``D(G(z)) < d_fake_max`` (0.05) while mean
      ``D(x) > d_real_min`` (0.95): D rejects every generated sample, so G's
      gradient vanishes and G tends to collapse or stall.

    A condition warns when it has held for ``window`` (default 3) consecutive
    checks, then stays quiet until a check where it no longer holds: one warning
    per episode. Each message ends with ``advice``, by default
    :func:`collapse_advice` for the paper's recipe; a trainer passes
    ``collapse_advice(cfg.optim.d_lr_scale, cfg.train.instance_noise)``. A
    statistic passed as None (not measured at that check) leaves its
    condition's count unchanged. :meth:`update` returns the message, or
    None; all messages are kept in ``warnings`` as ``(step, message)``.
    """

    min_diversity: float = 0.3
    d_fake_max: float = 0.05
    d_real_min: float = 0.95
    window: int = 3
    advice: str = field(default_factory=collapse_advice)
    warnings: list[tuple[int, str]] = field(default_factory=list, init=False)
    _runs: dict[str, list[tuple[int, float, float]]] = field(
        default_factory=lambda: {"diversity": [], "d_wins": []}, init=False, repr=False
    )
    _warned: dict[str, bool] = field(
        default_factory=lambda: {"diversity": False, "d_wins": False}, init=False, repr=False
    )
    _last_step: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise DataError(f"window must be a positive integer (checks), got {self.window!r}")
        for name in ("min_diversity", "d_fake_max", "d_real_min"):
            setattr(self, name, finite_number(getattr(self, name), name))
        if self.min_diversity < 0:
            raise DataError(f"min_diversity must be >= 0, got {self.min_diversity}")
        for name in ("d_fake_max", "d_real_min"):
            if not 0 <= getattr(self, name) <= 1:
                raise DataError(f"{name} must lie in [0, 1] (D outputs probabilities), got {getattr(self, name)}")

    def update(
        self,
        step: int,
        diversity_ratio: float | None = None,
        d_real: float | None = None,
        d_fake: float | None = None,
    ) -> str | None:
        """Record one check's statistics; return a warning message or None.

        Args:
            step: the training step of this check; must increase from check to check.
            diversity_ratio: :func:`diversity_ratio` of a batch of samples.
            d_real: mean D(x) over a real batch, in [0, 1].
            d_fake: mean D(G(z)) over generated samples, in [0, 1].
        """
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise DataError(f"step must be an integer, got {step!r}")
        step = int(step)
        if self._last_step is not None and step <= self._last_step:
            raise DataError(f"step {step} does not come after the previous check's step {self._last_step}")
        ratio = None if diversity_ratio is None else finite_number(diversity_ratio, "diversity_ratio")
        if ratio is not None and ratio < 0:
            raise DataError(f"diversity_ratio must be >= 0, got {diversity_ratio!r}")
        dr = None if d_real is None else finite_number(d_real, "d_real")
        df = None if d_fake is None else finite_number(d_fake, "d_fake")
        for name, v in (("d_real", dr), ("d_fake", df)):
            if v is not None and not 0 <= v <= 1:
                raise DataError(f"{name} must be a mean probability in [0, 1], got {v!r}")
        self._last_step = step

        messages = []
        if ratio is not None:
            msg = self._advance("diversity", ratio < self.min_diversity, (step, ratio, math.nan))
            if msg:
                messages.append(msg)
        if dr is not None and df is not None:
            msg = self._advance("d_wins", df < self.d_fake_max and dr > self.d_real_min, (step, df, dr))
            if msg:
                messages.append(msg)
        if not messages:
            return None
        message = "\n".join(messages)
        self.warnings.append((step, message))
        return message

    @property
    def healthy(self) -> bool:
        """True when neither condition held at the latest check (or no check yet)."""
        return not any(self._runs.values())

    def _advance(self, name: str, bad: bool, record: tuple[int, float, float]) -> str | None:
        run = self._runs[name]
        if not bad:
            run.clear()
            self._warned[name] = False
            return None
        run.append(record)
        del run[: -self.window]  # only the last `window` checks matter
        if len(run) < self.window or self._warned[name]:
            return None
        self._warned[name] = True
        return self._message(name, run)

    def _message(self, name: str, run: list[tuple[int, float, float]]) -> str:
        step, first = run[-1][0], run[0][0]
        seen = ", ".join(f"{v:.3g}" for _, v, _ in run)
        if name == "diversity":
            return (
                f"step {step}: possible mode collapse (the Helvetica scenario): the samples' diversity ratio "
                f"has stayed below {self.min_diversity:g} for {self.window} consecutive checks "
                f"(steps {first} to {step}: {seen}; 1 = as varied as the data). {self.advice}"
            )
        reals = ", ".join(f"{r:.3g}" for _, _, r in run)
        return (
            f"step {step}: D rejects every generated sample: mean D(G(z)) < {self.d_fake_max:g} while mean "
            f"D(x) > {self.d_real_min:g} for {self.window} consecutive checks (steps {first} to {step}: "
            f"D(G(z)) {seen}; D(x) {reals}). {self.advice}"
        )

    def state_dict(self) -> dict[str, Any]:
        """Plain containers, to store in a checkpoint and resume with :meth:`load_state_dict`."""
        return {
            "runs": {k: [list(r) for r in v] for k, v in self._runs.items()},
            "warned": dict(self._warned),
            "last_step": self._last_step,
            "warnings": [list(w) for w in self.warnings],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self._runs = {k: [(int(s), float(a), float(b)) for s, a, b in state["runs"][k]] for k in self._runs}
            self._warned = {k: bool(state["warned"][k]) for k in self._warned}
            self._last_step = None if state["last_step"] is None else int(state["last_step"])
            self.warnings = [(int(s), str(m)) for s, m in state["warnings"]]
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"not a CollapseDetector state: {type(e).__name__}: {e}") from e


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
