"""Cheap mode-collapse statistics for a batch of samples, to compute while training.

When G collapses (the paper's "Helvetica scenario", §6) its samples become
alike. Three batch statistics, each needing only the samples and a real batch
of the same kind (no classifier), show it:

* :func:`mean_pairwise_distance`: the mean Euclidean distance over all pairs
  ``i < j`` of the flattened images. It estimates ``E‖x − x'‖`` for two
  independent draws, which does not depend on the batch size.
* :func:`diversity_ratio`: that mean for the samples over the same for a real
  batch: about 1 for a generator as varied as the data, 0 when every sample is
  the same image. Two real batches of 500 embedded MNIST or 8×8 digits give
  0.99 to 1.01; the training images of a single class give 0.64 to 0.99 of the
  whole test split's spread on embedded MNIST (the 1s are the narrowest) and
  0.57 to 0.87 on the 8×8 digits, so a ratio well below 0.5 means samples less
  varied than any one digit class: a collapse onto a few images.
* :func:`near_duplicate_fraction`: the fraction of samples whose nearest
  *other* sample lies closer than a threshold. By default the threshold is
  :data:`DEFAULT_DUPLICATE_FACTOR` (0.25) times the median nearest-neighbour
  distance within the real batch: in held-out batches of 500 real images the
  smallest nearest-neighbour distance is about 0.3 (embedded MNIST) or 0.45
  (8×8 digits) times the median, so real data give 0, while copies of one image
  give 1. Nearest-neighbour distances shrink as a batch grows, so pass a real
  batch of the same size as the samples.

Distances are computed in float64 from one matrix product per block of rows
(``‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b``, after centring the rows on their mean).
Where that expansion cancels (a squared distance below 1e-4 of ``‖a‖² + ‖b‖²``)
the pair is recomputed directly from ``a − b``, and exact duplicates are
found first (:func:`numpy.unique`), so identical images are at distance exactly
0 and every distance is accurate to about 1e-9 relative or better. Memory is bounded by
blocks of ~64 MiB; time is O(N²·d), for batches of a few thousand.

:class:`CollapseDetector` turns these statistics, with D's mean outputs, into a
warning when collapse persists over several checks (see its docstring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advnets.errors import DataError

__all__ = [
    "DEFAULT_DUPLICATE_FACTOR",
    "CollapseDetector",
    "diversity_ratio",
    "mean_pairwise_distance",
    "near_duplicate_fraction",
    "nearest_other_distance",
]

#: Default near-duplicate threshold, as a fraction of the real batch's median nearest-neighbour distance.
DEFAULT_DUPLICATE_FACTOR = 0.25

_BLOCK_BYTES = 64 * 2**20
_REFINE = 1e-4  # recompute pairs whose squared distance is below this fraction of ||a||^2 + ||b||^2


# --------------------------------------------------------------------------- distances


def _as_rows(x: Any, name: str, min_rows: int = 2) -> np.ndarray:
    """``x`` (array or tensor, ``N×d`` or ``N×...`` images) as a float64 ``N×d`` array, validated."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor
        x = x.detach().cpu().double().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} must be an array of numbers, got {type(x).__name__}") from e
    if a.ndim < 2:
        raise DataError(f"{name} must have shape N x d or N x C x H x W, got {a.shape}")
    a = a.reshape(a.shape[0], -1)
    if a.shape[0] < min_rows:
        raise DataError(f"{name} has {a.shape[0]} rows; need at least {min_rows}")
    if a.shape[1] == 0:
        raise DataError(f"{name} has rows of size 0")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{name} contain NaN or infinite values (did the generator diverge?)")
    return a


def _unique_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows, centred on the batch mean, with each input row's index into them and their counts."""
    u, inverse, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    u = u - x.mean(axis=0)  # identical rows stay identical: the same subtraction
    return u, inverse.reshape(-1), counts


def _distance_blocks(u: np.ndarray):
    """Yield ``(start, D)``: the Euclidean distances of rows ``start:start+b`` of ``u`` to all of ``u``."""
    m = len(u)
    sq = np.einsum("ij,ij->i", u, u)
    block = max(1, _BLOCK_BYTES // (8 * 3 * m))
    for start in range(0, m, block):
        stop = min(start + block, m)
        scale = sq[start:stop, None] + sq[None, :]
        d2 = scale - 2.0 * (u[start:stop] @ u.T)
        i, j = np.nonzero(d2 <= _REFINE * scale)
        for s in range(0, len(i), 4096):  # cancellation: recompute from the differences
            ii, jj = i[s : s + 4096], j[s : s + 4096]
            diff = u[start + ii] - u[jj]
            d2[ii, jj] = np.einsum("ij,ij->i", diff, diff)
        np.maximum(d2, 0.0, out=d2)
        yield start, np.sqrt(d2, out=d2)


def mean_pairwise_distance(x: Any) -> float:
    """Mean Euclidean distance over all pairs ``i < j`` of the (flattened) rows of ``x``.

    ``x``: ``N×d`` or ``N×C×H×W`` array or tensor with ``N >= 2``. Exact in
    float64 (see the module docstring); 0 when all rows are equal.
    """
    a = _as_rows(x, "x")
    n = len(a)
    u, _, counts = _unique_rows(a)
    if len(u) == 1:
        return 0.0
    w = counts.astype(np.float64)
    total = 0.0
    for start, d in _distance_blocks(u):
        total += float(w[start : start + len(d)] @ d @ w)  # duplicate pairs are at distance 0
    return total / (n * (n - 1))  # the sum counted each pair twice


def diversity_ratio(samples: Any, real: Any) -> float:
    """Mean pairwise distance of ``samples`` over that of a ``real`` batch (~1 healthy, 0 collapsed)."""
    s, r = _as_rows(samples, "samples"), _as_rows(real, "real")
    if s.shape[1] != r.shape[1]:
        raise DataError(f"samples have {s.shape[1]} values per row but real data have {r.shape[1]}")
    ref = mean_pairwise_distance(r)
    if ref == 0:
        raise DataError("the real batch has mean pairwise distance 0 (all rows equal); pass a real batch of data")
    return mean_pairwise_distance(s) / ref


def nearest_other_distance(x: Any) -> np.ndarray:
    """For each row of ``x``, the Euclidean distance to its nearest *other* row (0 for a duplicate)."""
    a = _as_rows(x, "x")
    u, inverse, counts = _unique_rows(a)
    nearest = np.zeros(len(u))
    if len(u) > 1:
        for start, d in _distance_blocks(u):
            b = len(d)
            d[np.arange(b), np.arange(start, start + b)] = np.inf
            nearest[start : start + b] = d.min(axis=1)
    nearest[counts > 1] = 0.0
    return nearest[inverse]


def near_duplicate_fraction(
    samples: Any,
    threshold: float | None = None,
    *,
    real: Any = None,
    factor: float = DEFAULT_DUPLICATE_FACTOR,
) -> float:
    """Fraction of ``samples`` whose nearest other sample is closer than ``threshold``.

    Give either ``threshold`` (a Euclidean distance in pixel units) or ``real``,
    a real batch of about the same size, from which the threshold is derived as
    ``factor`` (default 0.25) times the median nearest-neighbour distance
    within ``real`` (see the module docstring for why).
    """
    s = _as_rows(samples, "samples")
    if threshold is None:
        if real is None:
            raise DataError("near_duplicate_fraction needs a threshold or a real batch (real=...) to derive one from")
        r = _as_rows(real, "real")
        if r.shape[1] != s.shape[1]:
            raise DataError(f"samples have {s.shape[1]} values per row but real data have {r.shape[1]}")
        f = _finite_number(factor, "factor")
        if f <= 0:
            raise DataError(f"factor must be positive, got {factor!r}")
        thr = f * float(np.median(nearest_other_distance(r)))
    else:
        if real is not None:
            raise DataError("give near_duplicate_fraction a threshold or a real batch, not both")
        thr = _finite_number(threshold, "threshold")
        if thr < 0:
            raise DataError(f"threshold must be >= 0, got {threshold!r}")
    return float(np.mean(nearest_other_distance(s) < thr))


def _finite_number(v: Any, name: str) -> float:
    if isinstance(v, bool):
        raise DataError(f"{name} must be a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} must be a number, got {v!r}") from e
    if not math.isfinite(f):
        raise DataError(f"{name} must be finite, got {v!r}")
    return f


# --------------------------------------------------------------------------- detector


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
            "or resume from an earlier checkpoint; the README's 'When training collapses' section has the measured "
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
            setattr(self, name, _finite_number(getattr(self, name), name))
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
        ratio = None if diversity_ratio is None else _finite_number(diversity_ratio, "diversity_ratio")
        if ratio is not None and ratio < 0:
            raise DataError(f"diversity_ratio must be >= 0, got {diversity_ratio!r}")
        dr = None if d_real is None else _finite_number(d_real, "d_real")
        df = None if d_fake is None else _finite_number(d_fake, "d_fake")
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
