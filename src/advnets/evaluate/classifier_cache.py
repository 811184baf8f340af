"""The digit classifier's cache: its files, the dataset fingerprint, and reading and writing them.

:func:`advnets.evaluate.classifier.load_or_train_classifier` keeps the weights as safetensors
next to a JSON file of what they are (architecture, image shape, dataset name and fingerprint,
recipe, seed, test accuracy, the SHA-256 of the weights file). This module holds the files'
side of it: where they are (:func:`cache_paths`), the fingerprint of a dataset
(:func:`dataset_fingerprint`), reading a cache back only when its metadata match and its files
are sound (:func:`read_cache`), and writing both files atomically, the weights first, so that
the JSON, written last, commits them (:func:`write_cache`). The names are re-exported by
:mod:`advnets.evaluate.classifier`, where they are documented.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advnets.errors import DataError
from advnets.io import atomic_write_bytes, write_failure

__all__ = ["CACHE_FORMAT", "cache_paths", "dataset_fingerprint", "read_cache", "write_cache"]

#: Version of the cache files' layout; a cache of another format is retrained.
CACHE_FORMAT = 1


def dataset_fingerprint(dataset: Any) -> str:
    """SHA-256 over the shapes and contents of the train and test images and labels."""
    h = hashlib.sha256()
    for t in (dataset.train, dataset.train_labels, dataset.test, dataset.test_labels):
        a = t.detach().cpu().contiguous()
        h.update(f"{a.dtype}:{tuple(a.shape)};".encode())
        h.update(a.numpy().tobytes())
    return h.hexdigest()


def cache_paths(cache_dir: Path, dataset_name: str, seed: int = 0) -> tuple[Path, Path]:
    """The (weights, metadata) files of a dataset's cached classifier."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(dataset_name)).strip("._") or "dataset"
    stem = Path(cache_dir) / f"digit-classifier-{slug}-seed{int(seed)}"
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def read_cache(
    weights_path: Path,
    meta_path: Path,
    expected: Mapping[str, Any],
    build: Callable[[dict[str, Any]], nn.Module],
) -> tuple[Any, dict[str, Any]] | None:
    """``(model, metadata)`` of the cache if its metadata match ``expected`` and its files are sound.

    ``build`` makes the empty model from the recorded architecture; the weights are loaded into
    it. None (and a ``UserWarning`` at the caller's caller, for unreadable metadata or damaged
    weights) when the cache is missing, is another model's or cannot be used.
    """
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        warnings.warn(f"{meta_path}: unreadable cache metadata ({e}); retraining the classifier", stacklevel=3)
        return None
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expected.items()):
        return None  # another dataset, shape, seed, recipe or format: not this classifier
    try:
        from safetensors.torch import load as load_safetensors

        data = weights_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("weights_sha256"):
            raise ValueError(f"{weights_path.name} does not match the SHA-256 recorded in {meta_path.name}")
        model = build(meta["architecture"])
        model.load_state_dict(load_safetensors(data))
        float(meta["test_accuracy"])  # a cache without a readable accuracy is damaged too
    except Exception as e:  # missing file, truncated safetensors, wrong keys, ...
        msg = str(e).splitlines()[0] if str(e) else ""
        warnings.warn(f"{weights_path}: damaged classifier cache ({type(e).__name__}: {msg}); retraining", stacklevel=3)
        return None
    return model, meta


def write_cache(
    cache_dir: Path,
    weights_path: Path,
    meta_path: Path,
    state: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
) -> None:
    """Write ``state`` as safetensors, then ``meta`` (with the weights' file name and SHA-256) as JSON.

    Both atomically, the weights first: the JSON, written last, commits them.

    Raises:
        DataError: a file cannot be written (one line naming it and what to do: :func:`advnets.io.write_failure`).
    """
    from safetensors.torch import save as save_safetensors

    data = save_safetensors({k: v.detach().cpu().contiguous() for k, v in state.items()})
    meta = {**meta, "weights_file": weights_path.name, "weights_sha256": hashlib.sha256(data).hexdigest()}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(weights_path, data)
        atomic_write_bytes(meta_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    except OSError as e:
        raise DataError(
            write_failure(e.filename or cache_dir, e, "the classifier cache", "another --data-dir or $ADVNETS_DATA")
        ) from e
