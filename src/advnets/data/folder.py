"""A dataset from any directory tree of PNG/JPEG images.

:func:`load_image_folder` walks the tree (following no directory symlinks),
takes every file whose name ends in ``.png``, ``.jpg`` or ``.jpeg`` (any case),
sorts them by relative path (``/``-separated) and decodes each with Pillow,
which is restricted to its PNG and JPEG decoders.

Each image is converted to ``L`` (``channels=1``) or ``RGB`` (``channels=3``;
an alpha channel is dropped, 16-bit greyscale is scaled to 8 bits), rotated
according to its EXIF orientation, then resized so that it covers
``image_size`` and centre-cropped to it (``PIL.ImageOps.fit``: the largest
centred region with the target aspect ratio is resampled bicubically, i.e.
"resize the shorter side, then centre-crop"). An image that already has the
target size is used unchanged.

The split is deterministic: a permutation of the sorted candidate files from
``numpy.random.default_rng(seed)`` puts the first ``round(n * test_fraction)``
in ``test``, the next ``round(n * valid_fraction)`` in ``valid`` and the rest in
``train``; within a split images stay in path order. The split is decided
before decoding, so an unreadable file does not move any other file to a
different split.

Unreadable files are skipped, not fatal: zero-byte files, files Pillow cannot
identify or decode (corrupt or truncated data, or not really PNG/JPEG) and
images with more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's
decompression-bomb limit, 89,478,485 by default; set it to change the limit,
or to ``None`` to disable it) are skipped, and a single
:class:`SkippedImagesWarning` reports how many were skipped and the first few
paths with reasons. If no image can be used at all a
:class:`~advnets.errors.DataError` naming the folder is raised.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from advnets.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "SkippedImagesWarning", "load_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_FORMATS = ("PNG", "JPEG")
_SHOW = 5


class SkippedImagesWarning(UserWarning):
    """Some image files in the folder were empty, corrupt or too large and were skipped."""


class _Skip(Exception):
    pass


def _positive_pair(value, what: str, folder) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = value
    except (TypeError, ValueError):
        raise DataError(f"{what} must be (height, width), got {value!r} for {folder}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise DataError(f"{what} must be positive integers (height, width), got {value!r} for {folder}")
    return int(h), int(w)


def _fraction(value, what: str, folder) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise DataError(f"{what} must be a number in [0, 1), got {value!r} for {folder}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise DataError(f"{what} must be in [0, 1), got {value} for {folder}")
    return value


def _list_images(root: Path) -> list[str]:
    def fail(err: OSError):
        raise DataError(f"{root}: cannot list {err.filename}: {err.strerror or err}")

    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        dirnames.sort()
        for name in filenames:
            if name.lower().endswith(IMAGE_SUFFIXES):
                rel = Path(dirpath, name).relative_to(root).as_posix()
                found.append(rel)
    found.sort()
    return found


def _decode(path: Path, size_hw: tuple[int, int], mode: str) -> np.ndarray:
    try:
        if path.stat().st_size == 0:
            raise _Skip("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_FORMATS) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                if img.mode.startswith("I;16") or img.mode == "I":
                    wide = np.asarray(img, dtype=np.float64)
                    img = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8))
                elif img.mode == "F":
                    raise _Skip("floating-point image")
                if img.mode != mode:
                    if img.mode in ("P", "PA") and mode == "RGB":
                        img = img.convert("RGBA")
                    img = img.convert(mode)
                h, w = size_hw
                if img.size != (w, h):
                    img = ImageOps.fit(img, (w, h), method=Image.Resampling.BICUBIC)
                arr = np.asarray(img, dtype=np.uint8)
    except _Skip:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        limit = Image.MAX_IMAGE_PIXELS
        raise _Skip(f"larger than PIL.Image.MAX_IMAGE_PIXELS ({limit} pixels)") from None
    except Exception as exc:  # Pillow raises many types for corrupt data
        reason = f"{type(exc).__name__}: {exc}"
        raise _Skip(reason if len(reason) < 120 else reason[:120] + "...") from None
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return arr


def load_image_folder(
    path: str | os.PathLike,
    *,
    image_size: tuple[int, int] | int = (64, 64),
    channels: int = 3,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Load every PNG/JPEG under ``path`` as a dataset split into train/valid/test.

    ``image_size`` is ``(height, width)`` (or one int for square images);
    ``channels`` is 1 (greyscale) or 3 (RGB). Returns
    ``{"train": X, "valid": X, "test": X}``, each float32
    ``N x channels x height x width`` in [0, 1] (pixel / 255); a split may be
    empty (``N = 0``) but ``train`` never is. See the module docstring for the
    resizing, the deterministic split and how unreadable files are skipped
    (with one :class:`SkippedImagesWarning`).

    Raises :class:`~advnets.errors.DataError` naming the folder when it does
    not exist, holds no PNG/JPEG files or none that can be read, when the
    options are invalid, or when the fractions leave ``train`` empty.
    """
    root = Path(path)
    size_hw = _positive_pair(image_size, "image_size", root)
    if isinstance(channels, bool) or channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r} for {root}")
    vf = _fraction(valid_fraction, "valid_fraction", root)
    tf = _fraction(test_fraction, "test_fraction", root)
    if vf + tf >= 1.0:
        raise DataError(f"valid_fraction + test_fraction must be below 1 (got {vf} + {tf}) for {root}")
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found (expected a directory of PNG/JPEG files)")
    rel_paths = _list_images(root)
    if not rel_paths:
        raise DataError(f"{root}: no images found; expected .png, .jpg or .jpeg files")

    n = len(rel_paths)
    assign = _assign_splits(n, vf, tf, seed)
    images, skipped = _decode_all(root, rel_paths, size_hw, "L" if channels == 1 else "RGB")

    h, w = size_hw
    out = {}
    for code, split in ((0, "train"), (1, "valid"), (2, "test")):
        keep = [images[i] for i in range(n) if assign[i] == code and images[i] is not None]
        X = np.empty((len(keep), channels, h, w), dtype=np.float32)
        for j, arr in enumerate(keep):
            X[j] = arr
        X /= np.float32(255.0)
        out[split] = X
    if out["train"].shape[0] == 0:
        raise DataError(
            f"{root}: no images left for training with valid_fraction={vf} and "
            f"test_fraction={tf} ({n} files, {len(skipped)} skipped)"
        )
    return out


def _assign_splits(n: int, vf: float, tf: float, seed: int) -> np.ndarray:
    """Each file's split, 0 train, 1 valid, 2 test: a seeded permutation's first ``round(n·tf)`` go to test,
    the next ``round(n·vf)`` to valid."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = round(n * tf), round(n * vf)
    assign = np.zeros(n, dtype=np.int8)  # 0 train, 1 valid, 2 test
    assign[perm[:n_test]] = 2
    assign[perm[n_test : n_test + n_valid]] = 1
    return assign


def _decode_all(
    root: Path, rel_paths: list[str], size_hw: tuple[int, int], mode: str
) -> tuple[list[np.ndarray | None], list[tuple[str, str]]]:
    """Every file decoded (None where skipped) and the ``(path, reason)`` of the skipped ones.

    Warns once (:class:`SkippedImagesWarning`, at :func:`load_image_folder`'s caller) when some are skipped;
    raises :class:`~advnets.errors.DataError` when all are.
    """
    n = len(rel_paths)
    images: list[np.ndarray | None] = []
    skipped: list[tuple[str, str]] = []
    for rel in rel_paths:
        try:
            images.append(_decode(root / rel, size_hw, mode))
        except _Skip as why:
            images.append(None)
            skipped.append((rel, str(why)))
    if len(skipped) == n:
        shown = "; ".join(f"{p} ({why})" for p, why in skipped[:_SHOW])
        raise DataError(f"{root}: none of the {n} image files could be read: {shown}")
    if skipped:
        shown = "; ".join(f"{p} ({why})" for p, why in skipped[:_SHOW])
        more = f" and {len(skipped) - _SHOW} more" if len(skipped) > _SHOW else ""
        warnings.warn(
            f"{root}: skipped {len(skipped)} of {n} image files that are empty, corrupt or too large: {shown}{more}",
            SkippedImagesWarning,
            stacklevel=3,
        )
    return images, skipped
