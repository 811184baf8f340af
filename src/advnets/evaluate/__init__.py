"""Evaluation: every metric takes arrays (or a generator) and returns plain numbers or dicts.

``from advnets.evaluate import parzen_log_likelihood``: each name is imported from its
module on first use (PEP 562), so importing one metric does not load the others.

- parzen: the Parzen-window log-likelihood of Table 1 (exact, float64, chunked) and σ selection
- protocol: the paper's protocol around it (10,000 samples, σ on validation, TFD folds) and its record
- baselines: stand-ins built from the training split (real images, k-means, a Gaussian fit), the honest context
- scoring: a run, a checkpoint or a shipped model scored end to end; Figure 2's memorisation check
- options: MetricOptions, how every metric computes (dtype, device, block sizes, progress)
- nearest: exact nearest training examples (Figure 2) and the memorisation check
- classifier: a small digit classifier for class coverage and the MNIST score
- diversity, modes: mode-collapse measures (sample diversity, modes covered on the 2-D toys)
- distances: the chunked squared-distance engine the others share
- metrics: the registry of sample-quality metrics (fd, kid, precision, recall, density, coverage, parzen,
  mnist_score, class_coverage), one signature, and evaluate_metrics / evaluate_table over them
- frechet, kid, manifold: Fréchet distance, KID, precision/recall/density/coverage on feature arrays
- features, digit_features: feature extractors (the shipped digit network, Inception-v3, a file) and their cache
- table1: Table 1 from a run's kept checkpoints (validation curve, best by validation, test score)
- annealing: the level a learning-rate drop reaches against the epochs before it, fitted and extrapolated
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "parzen_log_likelihood": "advnets.evaluate.parzen",
    "parzen_evaluate": "advnets.evaluate.parzen",
    "select_sigma": "advnets.evaluate.parzen",
    "evaluate_run": "advnets.evaluate.scoring",
    "evaluate_pretrained": "advnets.evaluate.scoring",
    "MetricOptions": "advnets.evaluate.options",
    "evaluate_folds": "advnets.evaluate.protocol",
    "baseline_samples": "advnets.evaluate.baselines",
    "context_samples": "advnets.evaluate.baselines",
    "paper_row_for": "advnets.evaluate.protocol",
    "nearest_neighbors": "advnets.evaluate.nearest",
    "memorization_stats": "advnets.evaluate.nearest",
    "memorization_check": "advnets.evaluate.scoring",
    "memorization_verdict": "advnets.evaluate.nearest",
    "load_or_train_classifier": "advnets.evaluate.classifier",
    "class_coverage": "advnets.evaluate.classifier",
    "diversity_ratio": "advnets.evaluate.diversity",
    "near_duplicate_fraction": "advnets.evaluate.diversity",
    "mode_coverage": "advnets.evaluate.modes",
    "evaluate_metrics": "advnets.evaluate.metrics",
    "evaluate_table": "advnets.evaluate.metrics",
    "format_table": "advnets.evaluate.metrics",
    "frechet_distance": "advnets.evaluate.frechet",
    "kernel_distance": "advnets.evaluate.kid",
    "manifold_metrics": "advnets.evaluate.manifold",
    "get_extractor": "advnets.evaluate.features",
    "reference_protocol": "advnets.evaluate.protocol",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'advnets.evaluate' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
