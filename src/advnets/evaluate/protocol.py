"""The paper's Table 1 protocol around the Parzen estimator.

Reference protocol (paper §5; the authors' parzen_ll.py): draw 10,000 samples of
G, choose σ from numpy.logspace(-1, 0, 10) by the mean log-likelihood of
1,000 validation images, score the test set, report mean ± std/√N. On TFD σ
is chosen per fold and the standard error is taken across folds.

A Parzen score can be high for models that generate nothing useful (Theis,
van den Oord & Bethge, 2016), so ``baselines=True`` scores stand-ins built from
the training data itself (:mod:`advnets.evaluate.baselines`) by the same code
beside the model. Scoring a run or a shipped model end to end is
:mod:`advnets.evaluate.scoring`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advnets.errors import AdvnetsError, DataError
from advnets.evaluate.baselines import baseline_rows
from advnets.evaluate.options import MetricOptions
from advnets.evaluate.parzen import DEFAULT_SIGMAS, parzen_evaluate

# Table 1 of the paper: Parzen-window log-likelihood of the adversarial nets.
PAPER_TABLE1 = {
    "MNIST": (225.0, 2.0),
    "TFD": (2057.0, 26.0),
}

# Table 1's MNIST column in full (paper §5 and Table 1): every model, mean ± SE, in the paper's order.
PAPER_TABLE1_MNIST = {
    "DBN": (138.0, 2.0),
    "Stacked CAE": (121.0, 1.6),
    "Deep GSN": (214.0, 1.1),
    "Adversarial nets": PAPER_TABLE1["MNIST"],
}

#: Validation images the reference protocol chooses σ on (MNIST: train images 50,000-50,999).
REFERENCE_VALID_SIZE = 1000
#: Samples of G in the reference protocol's Parzen window.
REFERENCE_NUM_SAMPLES = 10000


def paper_row_for(dataset_name: str) -> tuple[str, tuple[float, float]] | None:
    """The paper's Table 1 entry comparable (at least in kind) with a dataset."""
    name = dataset_name.lower()
    if "mnist" in name and "fashion" not in name:
        return "MNIST", PAPER_TABLE1["MNIST"]
    if "tfd" in name:
        return "TFD", PAPER_TABLE1["TFD"]
    return None


def parse_sigmas(text: str) -> np.ndarray:
    """'logspace:A:B:N' (numpy.logspace(A, B, N)) or a comma-separated list."""
    try:
        if text.startswith("logspace:"):
            a, b, n = text.split(":")[1:]
            sigmas = np.logspace(float(a), float(b), int(n))
        else:
            sigmas = np.array([float(s) for s in text.split(",") if s.strip()])
    except ValueError:
        raise DataError(f"--sigmas {text}: expected 'logspace:A:B:N' or a comma-separated list of numbers") from None
    if sigmas.size == 0 or not np.all(np.isfinite(sigmas)) or np.any(sigmas <= 0):
        raise DataError(f"--sigmas {text}: expected at least one positive, finite bandwidth")
    return sigmas


def format_row(label: str, result: dict[str, Any]) -> str:
    """A Table-1-style row: 'label  225 ± 2  (σ = 0.2, N = 10000, M = 10000)'."""
    return (
        f"{label:<28s} {result['mean']:8.1f} ± {result['se']:<6.1f}"
        f"(σ = {result['sigma']:.4g}, N = {result['n']}, M = {result['m']})"
    )


def evaluate_folds(
    folds: list[dict[str, Any]],
    sigmas: Any = DEFAULT_SIGMAS,
    *,
    check_range: bool = True,
    options: MetricOptions = MetricOptions(),
) -> dict[str, Any]:
    """The paper's TFD protocol: for each fold (a dict with 'samples', 'valid',
    'test'), choose σ on that fold's validation set and score its test set;
    report the mean over folds and the standard error *across folds*
    (std over fold means / √folds, ddof=0 as numpy.std)."""
    if not folds:
        raise DataError("folds: expected at least one fold")
    kw = {**options.kwargs(), "check_range": check_range}
    per_fold = [parzen_evaluate(f["test"], f["samples"], valid=f["valid"], sigmas=sigmas, **kw) for f in folds]
    means = np.array([r["mean"] for r in per_fold])
    return {
        "mean": float(means.mean()),
        "se": float(means.std() / math.sqrt(len(means))),
        "folds": per_fold,
        "sigma": float(np.median([r["sigma"] for r in per_fold])),
        "n": int(sum(r["n"] for r in per_fold)),
        "m": per_fold[0]["m"],
        "d": per_fold[0]["d"],
    }


def reference_protocol(
    samples: Any,
    dataset: Any,
    *,
    valid_size: int = REFERENCE_VALID_SIZE,
    split: str = "test",
    sigmas: Any = DEFAULT_SIGMAS,
    label: str = "model",
    baselines: bool = False,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    options: MetricOptions = MetricOptions(),
) -> dict[str, dict[str, Any]]:
    """The reference protocol (paper §5 and Table 1) on an :class:`advnets.data.Dataset`.

    σ is chosen from ``sigmas`` on the first ``valid_size`` validation images
    (MNIST's split: train images 50,000-50,999; all of them when fewer) and the
    ``split`` images are scored under ``samples`` (M x d or image-shaped, e.g.
    10,000 samples of G). With ``baselines`` the same protocol also scores
    :func:`advnets.evaluate.baselines.baseline_samples` of the training split (as many as ``samples``,
    built with ``seed``, cached in ``cache_dir``), computed as ``options`` say.

    Returns ``{label: row, <baseline name>: row, ...}``; each row is
    :func:`parzen_evaluate`'s dict plus ``n_valid``. Raises
    :class:`DataError` for an unknown split or mismatched dimensions.
    """
    valid, test = dataset.valid[:valid_size], dataset.split(split)
    scored = parzen_evaluate(test, samples, valid=valid, sigmas=sigmas, **options.kwargs())
    rows = {label: {**scored, "n_valid": len(valid)}}
    if baselines:
        rows.update(
            baseline_rows(
                dataset,
                len(samples),
                valid_size=valid_size,
                split=split,
                sigmas=sigmas,
                seed=seed,
                cache_dir=cache_dir,
                options=options,
            )
        )
    return rows


def tfd_fold_sets(
    data_cfg: Any, folds: int, samples: torch.Tensor, split: str, valid_size: int, data_dir: Any = None
) -> list[dict[str, Any]]:
    """The inputs of :func:`evaluate_folds` for TFD folds 0..``folds``-1: the same ``samples`` of G,
    each fold's first ``valid_size`` validation images (to choose σ) and its ``split`` to score.

    Raises:
        AdvnetsError: ``data_cfg`` is not a TFD source (only TFD has folds).
    """
    from advnets.config import override
    from advnets.data import load_dataset

    if not data_cfg.source.startswith("tfd"):
        raise AdvnetsError(f"--folds: only TFD has folds; this run was trained on {data_cfg.source!r}")
    sets = []
    for k in range(folds):
        fold_data = load_dataset(override(data_cfg, fold=k), data_dir=data_dir)
        sets.append({"samples": samples, "valid": fold_data.valid[:valid_size], "test": fold_data.split(split)})
    return sets


def protocol_settings(
    *,
    num_samples: int,
    seed: int | None,
    sigmas: Any,
    valid_size: int,
    split: str = "test",
    options: MetricOptions = MetricOptions(),
) -> dict[str, Any]:
    """The settings that make two Parzen numbers comparable, as every record and cache writes them:
    ``num_samples`` (M, samples of G), ``seed`` (of G's noise; None for samples given as an array),
    ``sigmas`` (the grid, as floats), ``valid_size`` (validation images σ was chosen on: the number used,
    not asked for), ``split`` (the images scored) and ``dtype`` (``"float64"`` or ``"float32"``)."""
    return {
        "num_samples": int(num_samples),
        "seed": None if seed is None else int(seed),
        "sigmas": [float(x) for x in np.atleast_1d(np.asarray(sigmas, dtype=np.float64))],
        "valid_size": int(valid_size),
        "split": split,
        "dtype": options.dtype_name,
    }


def parzen_record(
    result: dict[str, Any],
    *,
    num_samples: int,
    split: str,
    seed: int | None,
    sigmas: Any,
    options: MetricOptions = MetricOptions(),
) -> dict[str, Any]:
    """The JSON document of an evaluation (``RUN/parzen.json``): the protocol's settings
    (:func:`protocol_settings`), the dataset, the step and every row of ``result`` (from
    :func:`advnets.evaluate.scoring.evaluate_run`, or built alike)."""
    settings = protocol_settings(
        num_samples=num_samples, seed=seed, sigmas=sigmas, valid_size=result["valid_size"], split=split, options=options
    )
    return {
        "protocol": {**settings, "se": "std/sqrt(N), population std (ddof=0) as numpy.std in the reference code"},
        "dataset": result["dataset"],
        "step": result["step"],
        "rows": result["rows"],
    }
