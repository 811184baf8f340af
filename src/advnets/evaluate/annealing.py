"""Where a later learning-rate drop would lead: the annealed level against the epochs trained before it (issue 15).

The reference code (github.com/goodfeli/adversarial, mnist.yaml) divides the learning rate by 1.000004 per
minibatch and never stops, so its rate reaches 0.01 only after ~1,150 epochs of MNIST. Training that long is out
of reach on a CPU; instead, checkpoints of the paper's recipe taken at epochs 100-400 were continued at 0.01
(benchmarks/RESULTS.md, "The learning rate"), and the validation log-likelihood each reached (its *annealed
level*) grows with the epochs trained before the drop, by less for each doubling. :func:`fit_annealed_level`
fits that relation with one of two models and :meth:`LevelFit.predict` extrapolates it, with the standard error
of the extrapolation:

- ``"log-linear"``: ``level(E) = a + b * log2(E)``, the same gain for every doubling of E (no ceiling);
- ``"power-law"``: ``level(E) = L - c * (E / 100) ** -alpha`` (c, alpha > 0), each doubling gaining
  ``2 ** -alpha`` times the one before, rising to the ceiling L.

The first assumes the gains do not shrink, the second fits how fast they do; near the points they agree, far from
them they part, which is why both are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advnets.errors import AdvnetsError

__all__ = ["MODELS", "LevelFit", "fit_annealed_level"]

MODELS = ("log-linear", "power-law")


def _log_linear(epochs: np.ndarray, a: float, b: float) -> np.ndarray:
    return a + b * np.log2(epochs)


def _log_linear_jacobian(epochs: np.ndarray, a: float, b: float) -> np.ndarray:
    return np.stack([np.ones_like(epochs), np.log2(epochs)], axis=-1)


def _power_law(epochs: np.ndarray, ceiling: float, c: float, alpha: float) -> np.ndarray:
    return ceiling - c * (epochs / 100.0) ** -alpha


def _power_law_jacobian(epochs: np.ndarray, ceiling: float, c: float, alpha: float) -> np.ndarray:
    u = (epochs / 100.0) ** -alpha
    return np.stack([np.ones_like(epochs), -u, c * u * np.log(epochs / 100.0)], axis=-1)


_FORMS = {
    "log-linear": (_log_linear, _log_linear_jacobian, ("a", "b")),
    "power-law": (_power_law, _power_law_jacobian, ("ceiling", "c", "alpha")),
}


@dataclass(frozen=True)
class LevelFit:
    """A fitted annealed level. ``params``: the model's parameters by name (nats; alpha has none);
    ``cov``: their covariance (scaled by the residual variance, as scipy.optimize.curve_fit returns it);
    ``residual_sd``: the root mean square of the residuals (nats); ``n_points``: the points fitted."""

    model: str
    params: dict[str, float]
    cov: np.ndarray
    residual_sd: float
    n_points: int

    def predict(self, epochs) -> tuple[np.ndarray, np.ndarray]:
        """The level at ``epochs`` (any shape, epochs > 0) and its standard error by the delta method
        (sqrt(J cov J^T), J the model's gradient in its parameters), both in nats. The error is the fit's
        alone: it does not include the chance that neither model holds that far out."""
        f, jac, _ = _FORMS[self.model]
        e = np.asarray(epochs, dtype=np.float64)
        theta = list(self.params.values())
        j = jac(e, *theta)
        var = np.einsum("...i,ij,...j->...", j, self.cov, j)
        return f(e, *theta), np.sqrt(np.maximum(var, 0.0))


def fit_annealed_level(epochs, levels, model: str) -> LevelFit:
    """Fit ``model`` (one of :data:`MODELS`) to annealed levels (nats) against the epochs trained before the
    drop, by least squares (scipy.optimize.curve_fit, float64).

    Args:
        epochs: shape (N,), the epoch each probe's drop started from; > 0.
        levels: shape (N,), the validation log-likelihood each reached after the drop (nats).
        model: ``"log-linear"`` or ``"power-law"`` (see the module docstring).

    Raises:
        AdvnetsError: an unknown model, shapes that differ, a non-positive or non-finite epoch or level, fewer
            points than the model's parameters plus one (no residual left to estimate the error from), fewer
            distinct epochs than parameters, or a fit that does not converge or leaves a parameter undetermined.
    """
    from scipy.optimize import curve_fit

    if model not in _FORMS:
        raise AdvnetsError(f"model {model!r}: expected one of {', '.join(MODELS)}")
    f, _, names = _FORMS[model]
    e = np.asarray(epochs, dtype=np.float64)
    y = np.asarray(levels, dtype=np.float64)
    if e.shape != y.shape or e.ndim != 1:
        raise AdvnetsError(f"epochs {e.shape} and levels {y.shape}: expected two 1-d arrays of the same length")
    if not (np.isfinite(e).all() and np.isfinite(y).all() and (e > 0).all()):
        raise AdvnetsError("epochs must be finite and > 0, levels finite")
    if len(e) < len(names) + 1:
        raise AdvnetsError(f"{model}: {len(e)} points; at least {len(names) + 1} are needed to fit it with an error")
    if len(np.unique(e)) < len(names):
        raise AdvnetsError(f"{model}: the points have {len(np.unique(e))} distinct epochs; it needs {len(names)}")
    if model == "log-linear":
        p0, bounds = (float(y.mean()), 10.0), (-np.inf, np.inf)
    else:
        p0 = (float(y.max()) + 20.0, max(float(np.ptp(y)), 1.0) + 20.0, 0.5)
        bounds = ([-np.inf, 0.0, 1e-3], [np.inf, np.inf, 10.0])
    try:
        params, cov = curve_fit(f, e, y, p0=p0, bounds=bounds, maxfev=50000)
    except (RuntimeError, ValueError) as err:
        raise AdvnetsError(f"{model}: the fit did not converge ({err})") from err
    if not np.isfinite(cov).all():  # curve_fit's sign that the points do not determine every parameter
        raise AdvnetsError(f"{model}: these points do not determine its parameters (infinite covariance)")
    residual_sd = float(np.sqrt(np.mean((y - f(e, *params)) ** 2)))
    return LevelFit(model, dict(zip(names, map(float, params), strict=True)), cov, residual_sd, len(e))
