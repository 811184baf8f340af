"""The honest context rows of a metrics table: what trivial "models" built from the training split score.

A metric means little without its floor and its failure modes beside it (the
Parzen table already shows these, Theis et al. 2016): real training images
scored as if they were samples (the floor a perfect G reaches at this N),
k-means centroids (blurry averages that beat real images on Parzen) and a
Gaussian fitted to the training split. They are built by
:func:`advnets.evaluate.protocol.baseline_samples` and returned as images, to be
scored by :func:`advnets.evaluate.metrics.evaluate_table` beside a model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from advnets.errors import DataError

__all__ = ["context_samples"]


def context_samples(
    train_images: Any,
    num_samples: int,
    seed: int = 0,
    *,
    cache_dir: str | Path | None = None,
    note: Callable[[str], None] | None = None,
) -> dict[str, torch.Tensor]:
    """The honest context rows as images shaped like ``train_images``, from the training split only:
    ``real training images`` (the floor: what a perfect G scores at this N), ``k-means centroids`` and
    ``Gaussian fit`` (:func:`advnets.evaluate.protocol.baseline_samples`; the fit is not clipped to [0, 1]).
    ``cache_dir`` keeps the slow k-means fit between calls; ``note`` is told when a fit starts.

    Raises:
        DataError: ``train_images`` are not float images with at least two rows.
    """
    from advnets.evaluate.protocol import baseline_samples

    train = torch.as_tensor(train_images).detach()
    if not train.is_floating_point() or train.ndim < 2 or len(train) < 2:
        raise DataError(f"training images: expected float images N x C x H x W with N >= 2, got {tuple(train.shape)}")
    rows = baseline_samples(train, int(num_samples), int(seed), cache_dir=cache_dir, note=note)
    return {k: v.float().reshape(len(v), *train.shape[1:]) for k, v in rows.items()}
