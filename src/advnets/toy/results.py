"""What a toy run returns: :class:`ToyResult`, Figure 1's :class:`Snapshot` and the animation's :class:`Frame`.

Re-exported by :mod:`advnets.toy`, where the toys are described.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from advnets.data.toy import GaussianMixture2D, Mixture1D
from advnets.nets import Generator
from advnets.toy.config import ToyConfig

__all__ = ["Frame", "Snapshot", "ToyResult"]


@dataclass(frozen=True)
class Snapshot:
    """G and D at one moment of a 1-D run, tabulated on the grid ``x``."""

    label: str  # "a".."d" for Figure 1's panels, "" for animation frames
    step: int  # Algorithm-1 iterations of the main run completed
    x: np.ndarray  # the grid
    p_data: np.ndarray
    p_g: np.ndarray  # Gaussian KDE of N_DENSITY samples of G
    d: np.ndarray  # D(x) = sigmoid(logit)
    z: np.ndarray | None  # evenly spaced z on the uniform prior's line (noise_dim == 1)
    gz: np.ndarray | None  # G(z) for those z


@dataclass(frozen=True)
class Frame:
    """One animation frame: a 1-D :class:`Snapshot`, or 2-D generated points."""

    step: int
    snapshot: Snapshot | None = None
    points: np.ndarray | None = None


@dataclass
class ToyResult:
    config: ToyConfig
    data: Mixture1D | GaussianMixture2D
    generator: Generator
    discriminator: torch.nn.Module  # the maxout Discriminator behind a fixed input standardisation
    snapshots: dict[str, Snapshot] = field(default_factory=dict)  # 1-D: "a".."d"
    frames: list[Frame] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)  # step, d_loss, g_loss, d_real, d_fake
    jsd_init: float | None = None  # 1-D
    jsd_final: float | None = None
    max_abs_d_minus_half: float | None = None  # over p_data > SUPPORT_FRACTION * max
    max_abs_d_minus_half_core: float | None = None  # over p_data > CORE_FRACTION * max
    mean_abs_d_minus_half: float | None = None  # E_{x ~ p_data} |D(x) - 1/2|
    samples: np.ndarray | None = None  # 2-D: the N_COVERAGE final samples
    coverage: dict[str, Any] | None = None  # 2-D: mode_coverage() of them
    seconds: float = 0.0

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def modes_reached(self) -> int | None:
        """2-D: modes that are the nearest mode of at least ``min_count`` samples, whatever
        their distance -- where G's mass sits, even before its samples are sharp."""
        if self.coverage is None:
            return None
        nearest = self.coverage["nearest_mode"]
        counts = np.bincount(nearest[nearest >= 0], minlength=self.coverage["n_modes"])
        return int(np.sum(counts >= self.coverage["min_count"]))

    def summary(self) -> dict[str, Any]:
        """The run's numbers, JSON-ready (no wall-clock time: equal seeds give equal summaries)."""
        out: dict[str, Any] = {
            "dataset": self.config.dataset,
            "steps": self.config.steps,
            "seed": self.config.seed,
            "k": self.config.k,
            "g_steps_per_d_step": self.config.g_steps_per_d_step,
        }
        if self.dim == 1:
            out.update(
                jsd_init=self.jsd_init,
                jsd_final=self.jsd_final,
                max_abs_d_minus_half=self.max_abs_d_minus_half,
                max_abs_d_minus_half_core=self.max_abs_d_minus_half_core,
                mean_abs_d_minus_half=self.mean_abs_d_minus_half,
            )
        else:
            assert self.coverage is not None
            out.update(
                modes_covered=self.coverage["modes_covered"],
                modes_reached=self.modes_reached,
                n_modes=self.coverage["n_modes"],
                high_quality_fraction=self.coverage["high_quality_fraction"],
                kl_to_uniform=self.coverage["kl_to_uniform"],
            )
        if self.history:
            last = self.history[-1]
            out.update(d_loss=last["d_loss"], g_loss=last["g_loss"])
        return out
