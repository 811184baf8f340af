"""Low-dimensional toy data with known densities.

1-D (for the paper's Figure 1 and for checking Section 4 on a grid):

* :class:`Gaussian1D` -- ``N(mean, std^2)``, default ``N(4, 0.5^2)``;
* :class:`Mixture1D` -- a Gaussian mixture, default two equal modes
  ``0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2)``.

2-D (the usual mode-collapse benchmarks, equal-weight isotropic Gaussians):

* :func:`ring8` -- 8 modes evenly spaced on a circle of radius 2 (the first at
  ``(2, 0)``, then every 45 degrees counter-clockwise), std 0.02;
* :func:`grid25` -- 25 modes on the 5 x 5 grid ``{-4, -2, 0, 2, 4}^2``, std 0.05.

Every toy has ``sample(n, generator=None) -> torch.Tensor`` of shape ``(n, dim)``
(float32, drawn with the given :class:`torch.Generator`, so the same seed gives the
same samples) and ``pdf(x) -> np.ndarray``. The registries map names to zero-argument
constructors: ``TOY_1D["mixture"]()`` or ``make_toy("ring8")``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from advnets.errors import DataError

__all__ = [
    "Gaussian1D",
    "Mixture1D",
    "GaussianMixture2D",
    "ring8",
    "grid25",
    "TOY_1D",
    "TOY_2D",
    "make_toy",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"n (number of samples) must be a non-negative integer, got {n!r}")
    return int(n)


def _check_generator(generator: Any) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise DataError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def _positive(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a number, got {value!r}") from exc
    if not (math.isfinite(v) and v > 0):
        raise DataError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _finite(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise DataError(f"{name} must be finite, got {value!r}")
    return v


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


# ---------------------------------------------------------------------------- 1-D


class Mixture1D:
    """A 1-D Gaussian mixture ``sum_k w_k N(means_k, stds_k^2)``.

    ``weights`` must be non-negative with a positive sum; they are normalised.
    Defaults: two equal modes at -2 and 2 with std 0.5 (well separated: the density
    between them drops to about 1e-3 of its peak).
    """

    dim = 1

    def __init__(
        self,
        means: Sequence[float] = (-2.0, 2.0),
        stds: Sequence[float] = (0.5, 0.5),
        weights: Sequence[float] | None = None,
    ) -> None:
        means_l = [_finite(m, "mean") for m in np.atleast_1d(np.asarray(means, dtype=object))]
        stds_l = [_positive(s, "std") for s in np.atleast_1d(np.asarray(stds, dtype=object))]
        if not means_l:
            raise DataError("a mixture needs at least one component")
        if len(stds_l) != len(means_l):
            raise DataError(f"got {len(means_l)} means but {len(stds_l)} stds")
        if weights is None:
            w = np.full(len(means_l), 1.0 / len(means_l))
        else:
            try:
                w = np.asarray(weights, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise DataError(f"weights must be numbers, got {weights!r}") from exc
            if w.size != len(means_l):
                raise DataError(f"got {len(means_l)} means but {w.size} weights")
            if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise DataError(f"weights must be non-negative with a positive sum, got {weights!r}")
            w = w / w.sum()
        self.means = np.asarray(means_l, dtype=np.float64)
        self.stds = np.asarray(stds_l, dtype=np.float64)
        self.weights = w

    @property
    def mean(self) -> float:
        """The mixture's mean."""
        return float(np.sum(self.weights * self.means))

    @property
    def std(self) -> float:
        """The mixture's standard deviation."""
        var = np.sum(self.weights * (self.stds**2 + (self.means - self.mean) ** 2))
        return float(math.sqrt(var))

    def bounds(self, n_std: float = 5.0) -> tuple[float, float]:
        """An interval holding all components to ``n_std`` of their stds (for grids/plots)."""
        return (
            float(np.min(self.means - n_std * self.stds)),
            float(np.max(self.means + n_std * self.stds)),
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples as a float32 tensor of shape ``(n, 1)``."""
        n = _check_n(n)
        generator = _check_generator(generator)
        if len(self.means) == 1:
            k = torch.zeros(n, dtype=torch.long)
        elif n == 0:
            k = torch.zeros(0, dtype=torch.long)
        else:
            k = torch.multinomial(torch.as_tensor(self.weights), n, replacement=True, generator=generator)
        eps = torch.randn(n, 1, generator=generator, dtype=torch.float64)
        mu = torch.as_tensor(self.means)[k].unsqueeze(1)
        sd = torch.as_tensor(self.stds)[k].unsqueeze(1)
        return (mu + sd * eps).to(torch.float32)

    def log_pdf(self, x: Any) -> np.ndarray:
        """Log density at ``x`` (any shape; the result has the same shape)."""
        xa = np.asarray(x, dtype=np.float64)
        z = (xa[..., None] - self.means) / self.stds
        comp = np.log(self.weights) - 0.5 * z**2 - np.log(self.stds) - _LOG_SQRT_2PI
        return _logsumexp(comp, axis=-1)

    def pdf(self, x: Any) -> np.ndarray:
        """Density at ``x`` (any shape; the result has the same shape)."""
        return np.exp(self.log_pdf(x))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(means={self.means.tolist()}, stds={self.stds.tolist()}, "
            f"weights={self.weights.tolist()})"
        )


class Gaussian1D(Mixture1D):
    """``N(mean, std^2)`` in 1-D; default ``N(4, 0.5^2)``."""

    def __init__(self, mean: float = 4.0, std: float = 0.5) -> None:
        super().__init__(means=(mean,), stds=(std,))

    def __repr__(self) -> str:
        return f"Gaussian1D(mean={float(self.means[0])!r}, std={float(self.stds[0])!r})"


# ---------------------------------------------------------------------------- 2-D


class GaussianMixture2D:
    """Equal-weight mixture of isotropic 2-D Gaussians centred on ``modes``.

    Attributes: ``modes`` (K x 2 float64 array), ``std`` (per-coordinate standard
    deviation of every component), ``name``.
    """

    dim = 2

    def __init__(self, modes: Any, std: float, name: str = "custom") -> None:
        try:
            m = np.asarray(modes, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"modes must be a (K, 2) array of numbers, got {modes!r}") from exc
        if m.ndim != 2 or m.shape[1] != 2 or m.shape[0] < 1:
            raise DataError(f"modes must have shape (K, 2) with K >= 1, got {m.shape}")
        if not np.all(np.isfinite(m)):
            raise DataError("modes must be finite")
        self.modes = m
        self.std = _positive(std, "std")
        self.name = name

    @property
    def n_modes(self) -> int:
        return int(self.modes.shape[0])

    def bounds(self, n_std: float = 5.0) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((xmin, xmax), (ymin, ymax))`` holding every mode to ``n_std`` stds."""
        lo = self.modes.min(axis=0) - n_std * self.std
        hi = self.modes.max(axis=0) + n_std * self.std
        return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples as a float32 tensor of shape ``(n, 2)``; modes chosen uniformly."""
        n = _check_n(n)
        generator = _check_generator(generator)
        k = torch.randint(self.n_modes, (n,), generator=generator)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (torch.as_tensor(self.modes)[k] + self.std * eps).to(torch.float32)

    def log_pdf(self, x: Any) -> np.ndarray:
        """Log density at points ``x`` of shape ``(..., 2)``; result has shape ``(...)``."""
        xa = np.asarray(x, dtype=np.float64)
        if xa.ndim < 1 or xa.shape[-1] != 2:
            raise DataError(f"points must have shape (..., 2), got {xa.shape}")
        d2 = np.sum((xa[..., None, :] - self.modes) ** 2, axis=-1)
        comp = -0.5 * d2 / self.std**2 - 2.0 * math.log(self.std) - 2.0 * _LOG_SQRT_2PI
        return _logsumexp(comp, axis=-1) - math.log(self.n_modes)

    def pdf(self, x: Any) -> np.ndarray:
        """Density at points ``x`` of shape ``(..., 2)``."""
        return np.exp(self.log_pdf(x))

    def __repr__(self) -> str:
        return f"GaussianMixture2D(name={self.name!r}, n_modes={self.n_modes}, std={self.std!r})"


def ring8(radius: float = 2.0, std: float = 0.02) -> GaussianMixture2D:
    """8 equal Gaussians on a circle: modes at ``radius * (cos 2 pi k/8, sin 2 pi k/8)``."""
    r = _positive(radius, "radius")
    angles = 2.0 * np.pi * np.arange(8) / 8
    modes = np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)
    return GaussianMixture2D(modes, std, name="ring8")


def grid25(spacing: float = 2.0, std: float = 0.05) -> GaussianMixture2D:
    """25 equal Gaussians on a 5 x 5 grid centred at 0 (default ``{-4,-2,0,2,4}^2``).

    Modes are ordered row-major by x then y: ``(-4,-4), (-4,-2), ..., (4,4)``.
    """
    h = _positive(spacing, "spacing")
    ticks = h * np.arange(-2, 3, dtype=np.float64)
    xx, yy = np.meshgrid(ticks, ticks, indexing="ij")
    modes = np.stack([xx.ravel(), yy.ravel()], axis=1)
    return GaussianMixture2D(modes, std, name="grid25")


#: 1-D toys by name; each value builds the default instance when called.
TOY_1D: dict[str, Callable[[], Mixture1D]] = {"gaussian": Gaussian1D, "mixture": Mixture1D}

#: 2-D toys by name; each value builds the default instance when called.
TOY_2D: dict[str, Callable[[], GaussianMixture2D]] = {"ring8": ring8, "grid25": grid25}


def make_toy(name: str, **kwargs: Any) -> Mixture1D | GaussianMixture2D:
    """Build a toy by registry name (``gaussian``, ``mixture``, ``ring8``, ``grid25``)."""
    registry: dict[str, Callable[..., Any]] = {**TOY_1D, **TOY_2D}
    if name not in registry:
        raise DataError(f"unknown toy dataset {name!r}; choose one of {', '.join(registry)}")
    try:
        return registry[name](**kwargs)
    except TypeError as exc:
        raise DataError(f"bad options for toy dataset {name!r}: {exc}") from exc
