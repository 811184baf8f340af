"""Table 1 from a run's kept checkpoints: the validation curve, the best checkpoint, its test score (issue 15).

The reference code watched a Parzen estimate on the validation set while
training and kept the best model; the paper reports the test log-likelihood of
that model under the reference protocol (paper §5 and Table 1). Here, for a finished (or
running) run directory:

1. :func:`validation_curve` scores every kept checkpoint
   (``checkpoints/step-*.pt``) on the validation images: ``num_samples``
   samples of its G from a fixed seed, σ from the protocol's grid
   (``numpy.logspace(-1, 0, 10)``), the mean log-likelihood of the first
   ``valid_size`` validation images (MNIST: train images 50,000-50,999) at the
   best σ. One G forward and one distance pass per checkpoint
   (:func:`advnets.evaluate.parzen.select_sigma`). Results are cached in a JSON
   file (by default beside the checkpoints, or anywhere else so that a run
   directory can be read without writing to it), keyed by checkpoint name and
   SHA-256 and the protocol's settings, so that scored checkpoints are skipped.
2. :func:`best_entry` picks the checkpoint with the highest validation score
   (never the test score).
3. :func:`score_best` scores it with the full reference protocol
   (:func:`advnets.evaluate.protocol.reference_protocol`) on the test images,
   cached likewise.

The table and the figure built from these results are in :mod:`advnets.report.table1`; where a
curve is heading, in :func:`advnets.evaluate.annealing.plateau_fit`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch

from advnets.checkpoint import CHECKPOINT_DIR
from advnets.errors import CheckpointError
from advnets.evaluate.options import MetricOptions
from advnets.evaluate.parzen import DEFAULT_SIGMAS, select_sigma
from advnets.evaluate.protocol import (
    REFERENCE_NUM_SAMPLES,
    REFERENCE_VALID_SIZE,
    protocol_settings,
    reference_protocol,
)
from advnets.generators import load_generator
from advnets.io import atomic_write_bytes

__all__ = [
    "CACHE_FILE",
    "best_entry",
    "kept_checkpoints",
    "score_best",
    "validation_curve",
]

#: The cache's default name, inside the run directory.
CACHE_FILE = "parzen_validation.json"
_STEP_FILE = re.compile(r"^step-(\d{8})\.pt$")


def kept_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's complete checkpoints ``checkpoints/step-NNNNNNNN.pt``, by step (temporaries excluded)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        raise CheckpointError(f"{run_dir}: no checkpoints (expected {folder}/step-NNNNNNNN.pt)")
    return sorted(p for p in folder.iterdir() if _STEP_FILE.match(p.name))


def _digest(path: Path) -> str:
    """The checkpoint's SHA-256: from its ``.sha256`` file when there, else computed."""
    sidecar = path.with_suffix(".sha256")
    if sidecar.is_file():
        return sidecar.read_text().strip()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_cache(path: Path, section: str, protocol: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cache document and its ``section``'s entries ({} unless made with the same protocol settings)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    part = doc.get(section)
    if not isinstance(part, dict) or part.get("protocol") != protocol or not isinstance(part.get("entries"), dict):
        part = doc[section] = {"protocol": protocol, "entries": {}}
    return doc, part["entries"]


def _write_cache(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(doc, indent=1) + "\n").encode())


def _protocol(num_samples: int, seed: int, sigmas: Any, valid: torch.Tensor, options: MetricOptions) -> dict[str, Any]:
    return protocol_settings(num_samples=num_samples, seed=seed, sigmas=sigmas, valid_size=len(valid), options=options)


def validation_curve(
    run_dir: str | Path,
    dataset: Any,
    *,
    num_samples: int = REFERENCE_NUM_SAMPLES,
    valid_size: int = REFERENCE_VALID_SIZE,
    seed: int = 0,
    sigmas: Any = DEFAULT_SIGMAS,
    cache: str | Path | None = None,
    checkpoints: list[Path] | None = None,
    options: MetricOptions = MetricOptions(),
) -> list[dict[str, Any]]:
    """The validation Parzen log-likelihood of every kept checkpoint of ``run_dir``, by step.

    ``dataset`` is an :class:`advnets.data.Dataset` (its first ``valid_size``
    validation images are scored); ``checkpoints`` restricts the work to some of
    them (default: all kept). Each entry: ``checkpoint`` (file name), ``sha256``,
    ``step``, ``epoch`` (fractional), ``valid_ll`` (mean at the best σ),
    ``sigma``, ``valid_means`` (per σ of the grid). Entries are cached in
    ``cache`` (default ``run_dir/parzen_validation.json``) after each checkpoint,
    atomically; a rerun with the same settings skips scored checkpoints. ``options`` say how to compute
    (its progress bar counts checkpoints).
    Raises :class:`CheckpointError` for a run without checkpoints or a damaged one.
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    cache_path = Path(cache) if cache is not None else run_dir / CACHE_FILE
    valid = dataset.valid[:valid_size]
    protocol = _protocol(num_samples, seed, sigmas, valid, options)
    doc, done = _read_cache(cache_path, "validation", protocol)
    paths = checkpoints if checkpoints is not None else kept_checkpoints(run_dir)
    out = []
    for path in tqdm(paths, desc=f"validation LL {run_dir.name}", unit="ckpt", disable=not options.progress):
        digest = _digest(path)
        entry = done.get(path.name)
        if entry is None or entry.get("sha256") != digest:
            model = load_generator(path)
            sel = select_sigma(valid, model.sample(num_samples, seed), sigmas, **options.kwargs(progress=False))
            entry = {
                "checkpoint": path.name,
                "sha256": digest,
                "step": model.step,
                "epoch": model.epoch,
                "valid_ll": sel["valid_means"][sel["index"]],
                "sigma": sel["sigma"],
                "valid_means": sel["valid_means"],
            }
            done[path.name] = entry
            _write_cache(cache_path, doc)
        out.append(entry)
    return sorted(out, key=lambda e: e["step"])


def best_entry(curve: list[dict[str, Any]]) -> dict[str, Any]:
    """The entry with the highest validation LL (the earliest on ties); never chosen on test."""
    if not curve:
        raise CheckpointError("no scored checkpoints to choose from")
    return max(curve, key=lambda e: (e["valid_ll"], -e["step"]))


def score_best(
    run_dir: str | Path,
    dataset: Any,
    curve: list[dict[str, Any]],
    *,
    num_samples: int = REFERENCE_NUM_SAMPLES,
    valid_size: int = REFERENCE_VALID_SIZE,
    seed: int = 0,
    sigmas: Any = DEFAULT_SIGMAS,
    cache: str | Path | None = None,
    options: MetricOptions = MetricOptions(),
) -> dict[str, Any]:
    """The full reference protocol on the test images for the best-by-validation checkpoint.

    Returns :func:`reference_protocol`'s model row plus ``checkpoint``,
    ``step``, ``epoch`` and ``valid_ll`` of the chosen checkpoint; cached in
    the same JSON as the curve, in its own section (keyed by checkpoint name
    and SHA-256, and the protocol's settings).
    """
    run_dir = Path(run_dir)
    cache_path = Path(cache) if cache is not None else run_dir / CACHE_FILE
    valid = dataset.valid[:valid_size]
    doc, done = _read_cache(cache_path, "test", _protocol(num_samples, seed, sigmas, valid, options))
    best = best_entry(curve)
    cached = done.get(best["checkpoint"])
    if cached is not None and cached.get("sha256") == best["sha256"]:
        return cached
    model = load_generator(run_dir / CHECKPOINT_DIR / best["checkpoint"])
    samples = model.sample(num_samples, seed)
    rows = reference_protocol(samples, dataset, valid_size=valid_size, sigmas=sigmas, seed=seed, options=options)
    keep = ("checkpoint", "sha256", "step", "epoch", "valid_ll")
    result = {**rows["model"], **{k: best[k] for k in keep}}
    done[best["checkpoint"]] = result
    _write_cache(cache_path, doc)
    return result
