"""Datasets held in memory as tensors: one module per format, one entry point
(:func:`load_dataset`, which turns a ``--data`` value into a :class:`Dataset`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from advnets.config import DataConfig
from advnets.errors import DataError

EMBEDDED = ("embedded", "embedded-digits")
NAMED = ("mnist", "cifar10", "tfd")  # found in the data directory


@dataclass(frozen=True)
class Dataset:
    """Splits as float32 tensors of shape N x C x H x W in [0, 1], with labels."""

    name: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor
    valid_labels: torch.Tensor
    test_labels: torch.Tensor  # -1 where a dataset has no labels
    preprocess: str = "none"
    # What load_dataset() loaded it from (None for a Dataset built by hand): a Trainer records it as its run's
    # data config, so that `advnets evaluate` and `train --resume` load the same data.
    origin: DataConfig | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])  # type: ignore[return-value]

    def split(self, name: str) -> torch.Tensor:
        if name not in ("train", "valid", "test"):
            raise DataError(f"unknown split {name!r}; expected train, valid or test")
        return getattr(self, name)


def _as_dataset(name: str, splits: dict, preprocess: str = "none") -> Dataset:
    """Splits of (images, labels) or bare images (labels -1) -> a Dataset of tensors."""

    def parts(value) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = value if isinstance(value, tuple) else (value, None)
        x = np.ascontiguousarray(images, dtype=np.float32)
        if preprocess == "gcn":
            from advnets.data.cifar import global_contrast_normalize

            x = global_contrast_normalize(x)[0].astype(np.float32)
        t = torch.from_numpy(x)
        t = t.unsqueeze(1) if t.ndim == 3 else t  # grey N x H x W -> N x 1 x H x W
        y = (
            torch.full((len(t),), -1, dtype=torch.int64)
            if labels is None
            else torch.from_numpy(np.asarray(labels, dtype=np.int64))
        )
        return t, y

    (train, ytr), (valid, yva), (test, yte) = (parts(splits[k]) for k in ("train", "valid", "test"))
    return Dataset(name, train, valid, test, ytr, yva, yte, preprocess)


def to_display(images: torch.Tensor, preprocess: str) -> torch.Tensor:
    """Images as [0, 1] pixels for a picture: contrast-normalised ones are
    rescaled per image (min -> 0, max -> 1), [0, 1] ones are clamped."""
    if preprocess != "gcn":
        return images.clamp(0, 1)
    flat = images.reshape(len(images), -1)
    lo, hi = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).reshape(images.shape)


def _tfd_splits(path: Path, fold: int) -> dict:
    from advnets.data.tfd import load_tfd

    # The paper trains on TFD's 'unlabeled' split; fold k gives valid and test.
    return {
        "train": load_tfd(path, fold=fold, split="unlabeled"),
        "valid": load_tfd(path, fold=fold, split="valid"),
        "test": load_tfd(path, fold=fold, split="test"),
    }


def _looks_like_cifar(path: Path) -> bool:
    return any((path / sub).is_dir() for sub in ("cifar-10-batches-py", "cifar-10-batches-bin")) or any(
        (path / name).is_file() for name in ("data_batch_1", "data_batch_1.bin")
    )


def load_dataset(
    source: str | DataConfig, valid_size: int | None = None, data_dir: str | Path | None = None
) -> Dataset:
    """Load a dataset by its ``--data`` name, or from a DataConfig (which also
    says how to preprocess, and the image size for folders). Sources:

    - ``embedded`` / ``embedded-digits``: shipped inside PyPI packages;
    - ``mnist`` / ``cifar10`` / ``tfd``: in the data directory (``--data-dir``,
      ``$ADVNETS_DATA`` or ``~/.cache/advnets``), see ``advnets data list``;
    - ``tfd:FILE.mat``, ``folder:DIR`` (any tree of PNG/JPEG images);
    - a directory of IDX files or of CIFAR-10 batches, or a TFD ``.mat`` file.

    A leading ``~`` in a path (``folder:~/sprites``, ``tfd:~/TFD_48x48.mat``) is the home directory, as in a
    shell, which expands it only at the start of a word and so not after ``folder:``.
    """
    cfg = source if isinstance(source, DataConfig) else DataConfig(source=source, valid_size=valid_size)
    return replace(_load(cfg, data_dir), origin=cfg)


def _load(cfg: DataConfig, data_dir: str | Path | None) -> Dataset:
    src, pre = cfg.source, cfg.preprocess
    kwargs = {} if cfg.valid_size is None else {"valid_size": cfg.valid_size}
    if src == "embedded":
        from advnets.data.embedded import load_embedded_mnist

        return _as_dataset("embedded-mnist", load_embedded_mnist(), pre)
    if src == "embedded-digits":
        from advnets.data.embedded import load_embedded_digits

        return _as_dataset("embedded-digits", load_embedded_digits(), pre)
    if src.startswith("folder:"):
        from advnets.data.folder import load_image_folder

        path = Path(src.removeprefix("folder:")).expanduser()  # the shell leaves ~ after "folder:" as it is
        splits = load_image_folder(path, image_size=cfg.image_size, channels=cfg.channels)
        return _as_dataset(f"folder:{path.name}", splits, pre)
    if src in NAMED or src.startswith("tfd:"):
        from advnets.data.fetch import data_root

        root = data_root(data_dir)
        if src == "mnist":
            path = root / "mnist"
        elif src == "cifar10":
            path = root / "cifar10"
        else:
            path = root / "tfd" / "TFD_48x48.mat"
            if src.startswith("tfd:"):
                path = Path(src.removeprefix("tfd:")).expanduser()
        if not path.exists():
            how = (
                "bring TFD_48x48.mat (the Toronto Face Database is not public)"
                if "tfd" in src
                else f"run: advnets data fetch {src}"
            )
            raise DataError(f"--data {src}: {path} does not exist; {how}")
        if src.startswith("tfd"):
            return _as_dataset(f"tfd:fold{cfg.fold}", _tfd_splits(path, cfg.fold), pre)
    else:
        path = Path(src).expanduser()  # a config file or the Python API: no shell to expand ~
        if not path.exists():
            raise DataError(
                f"--data {src}: no such file or directory; expected one of {', '.join(EMBEDDED + NAMED)}, "
                "'folder:DIR', 'tfd:FILE.mat', or a directory of MNIST-format IDX files or CIFAR-10 batches"
            )
        if path.is_file():
            if path.suffix.lower() == ".mat":
                return _as_dataset(f"tfd:fold{cfg.fold}", _tfd_splits(path, cfg.fold), pre)
            raise DataError(f"--data {src}: expected a directory (IDX files or CIFAR-10 batches) or a TFD .mat file")
    if _looks_like_cifar(path):
        from advnets.data.cifar import load_cifar10

        return _as_dataset("cifar10", load_cifar10(path, **kwargs), pre)
    from advnets.data.idx import load_idx_dataset

    return _as_dataset("mnist" if src == "mnist" else f"idx:{path.name}", load_idx_dataset(path, **kwargs), pre)
