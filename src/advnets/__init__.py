"""advnets: Generative Adversarial Nets (Goodfellow et al., 2014), faithfully and fast.

The public face: ``from advnets import Trainer, PRESETS, load_dataset, ...``. Each name is
imported from its module on first use (PEP 562), so ``import advnets`` stays instant and
the modules below can import ``advnets.__version__`` without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it (the README's "Python API" section lists the same names).
_HOME = {
    "PRESETS": "advnets.presets",
    "RunConfig": "advnets.config",
    "get_preset": "advnets.presets",
    "override": "advnets.config",
    "train_config_from_options": "advnets.presets",
    "load_dataset": "advnets.data",
    "Trainer": "advnets.train",
    "train_run": "advnets.train.session",
    "plan_run": "advnets.train.session",
    "create_run": "advnets.runs",
    "read_metrics": "advnets.runlog",
    "load_generator": "advnets.generators",
    "LoadedGenerator": "advnets.generators",
    "generate": "advnets.sampling",
    "interpolate": "advnets.sampling",
    "parzen_evaluate": "advnets.evaluate.parzen",
    "parzen_log_likelihood": "advnets.evaluate.parzen",
    "score": "advnets.evaluate.scoring",
    "ScoreRequest": "advnets.evaluate.scoring",
    "evaluate_run": "advnets.evaluate.scoring",
    "evaluate_pretrained": "advnets.evaluate.scoring",
    "MetricOptions": "advnets.evaluate.options",
    "write_report": "advnets.report",
    "AdvnetsError": "advnets.errors",
    "ConfigError": "advnets.errors",
    "DataError": "advnets.errors",
    "CheckpointError": "advnets.errors",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'advnets' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
